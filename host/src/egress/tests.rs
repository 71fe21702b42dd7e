//! Egress policy: allow-list, retry hints and policies, and `send` against a
//! scripted upstream.

use super::*;
use http_body_util::Full;

fn egress(allowed: &[&str], allow_http: bool) -> Egress {
    Egress::new(
        "src",
        allowed.iter().map(|h| HostPattern::parse(h).unwrap()).collect(),
        allow_http,
        Limits::default(),
        Arc::new(Network),
    )
}

#[test]
fn allow_list_matches_authority_exactly() {
    let e = egress(&["tenant.goskope.com", "*.example.com", "127.0.0.1:8089"], true);
    let ok = |u: &str| e.check(&u.parse().unwrap()).is_ok();
    assert!(ok("https://tenant.goskope.com/api"));
    assert!(ok("https://TENANT.goskope.com./api"));
    assert!(!ok("https://evil.goskope.com/api"));
    assert!(!ok("https://tenant.goskope.com.evil.net/api"));
    assert!(ok("https://a.example.com/"));
    assert!(ok("https://a.b.example.com/"));
    assert!(!ok("https://example.com/"), "a wildcard does not match the bare domain");
    assert!(!ok("https://badexample.com/"));
    assert!(ok("http://127.0.0.1:8089/x"));
    assert!(!ok("http://127.0.0.1:8090/x"), "port-limited entries check the port");
    assert!(!ok("https://user@evil.net/"), "userinfo does not confuse the match");
    assert!(!ok("https://tenant.goskope.com@evil.net/"), "userinfo is not the host");
}

#[test]
fn a_bare_host_allows_only_its_schemes_default_port() {
    let e = egress(&["acme.goskope.com", "api.example.com:8443", "any.example.com:*", "[::1]:8089", "10.0.0.1"], true);
    let ok = |u: &str| e.check(&u.parse().unwrap()).is_ok();
    assert!(ok("https://acme.goskope.com/"));
    assert!(ok("https://acme.goskope.com:443/"));
    assert!(ok("http://acme.goskope.com/"), "port 80 is http's default");
    assert!(!ok("http://acme.goskope.com:443/"));
    for port in [22, 6379, 8443] {
        let err = e.check(&format!("https://acme.goskope.com:{port}/").parse().unwrap()).unwrap_err();
        assert!(err.contains(&format!("add `acme.goskope.com:{port}` or `acme.goskope.com:*`")), "{err}");
    }
    assert!(ok("https://api.example.com:8443/"));
    assert!(!ok("https://api.example.com/"), "a listed port is the only one");
    assert!(ok("https://any.example.com:1/") && ok("https://any.example.com:65535/"));
    assert!(ok("http://[::1]:8089/") && !ok("http://[::1]:8090/"));
    assert!(ok("https://10.0.0.1/") && !ok("https://10.0.0.1:22/"));
    assert!(!ok("https://[::ffff:10.0.0.1]/"), "an address matches only as written in the list");
}

#[test]
fn ip_literal_entries_are_told_apart_from_names() {
    assert!(HostPattern::parse("127.0.0.1:8089").unwrap().is_ip());
    assert!(HostPattern::parse("[fd00::1]:*").unwrap().is_ip());
    assert!(!HostPattern::parse("h.example.com").unwrap().is_ip());
    assert_eq!(HostPattern::parse("[::1]:*").unwrap().to_string(), "[::1]:*");
    assert!(HostPattern::parse("*.0.1").is_err(), "a wildcard cannot cover addresses");
    assert!(HostPattern::parse("*.10.0.0.1").is_err());
    assert!(HostPattern::parse("::1").unwrap_err().contains("brackets"));
    assert!(HostPattern::parse("[::1").is_err());
    assert!(HostPattern::parse("h.com:x").unwrap_err().contains("invalid port"));
}

#[test]
fn plain_http_needs_opt_in() {
    let e = egress(&["127.0.0.1:8089"], false);
    let err = e.check(&"http://127.0.0.1:8089/".parse().unwrap()).unwrap_err();
    assert!(err.contains("allow_http"), "{err}");
}

#[test]
fn patterns_reject_urls_and_junk() {
    assert!(HostPattern::parse("https://x.com").is_err());
    assert!(HostPattern::parse("x.com/path").is_err());
    assert!(HostPattern::parse("x..com").is_err());
    assert!(HostPattern::parse("x.com:99999").is_err());
    assert_eq!(HostPattern::parse("*.A.com:443").unwrap().to_string(), "*.a.com:443");
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    pairs.iter().map(|(k, v)| (http::HeaderName::from_static(k), HeaderValue::from_str(v).unwrap())).collect()
}

/// 2024-07-29T19:55:00Z, the "now" of the hint tests.
fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_722_282_900, 0).unwrap()
}

#[test]
fn retry_after_is_seconds_or_a_date() {
    assert_eq!(retry_after(&headers(&[("retry-after", "7")]), now()), Some(Duration::from_secs(7)));
    let date = headers(&[("retry-after", "Mon, 29 Jul 2024 19:56:30 GMT")]);
    assert_eq!(retry_after(&date, now()), Some(Duration::from_secs(90)));
    let past = headers(&[("retry-after", "Mon, 29 Jul 2024 19:00:00 GMT")]);
    assert_eq!(retry_after(&past, now()), None, "a past date is no hint");
    let both = headers(&[("retry-after", "7"), ("x-ratelimit-reset", "30")]);
    assert_eq!(retry_after(&both, now()), Some(Duration::from_secs(7)), "Retry-After wins");
    assert!(backoff(10) <= Duration::from_secs(30));
}

#[test]
fn ratelimit_reset_as_seconds_to_wait() {
    assert_eq!(retry_after(&headers(&[("ratelimit-reset", "3")]), now()), Some(Duration::from_secs(3)));
    let long = headers(&[("x-ratelimit-reset", "86400")]);
    assert_eq!(retry_after(&long, now()), Some(Duration::from_secs(86_400)), "max_retry_wait decides");
    assert_eq!(retry_after(&headers(&[("ratelimit-reset", "soon")]), now()), None);
}

#[test]
fn a_quota_reset_is_no_hint_for_an_outage() {
    let reset = headers(&[("x-ratelimit-reset", "45000"), ("x-ratelimit-remaining", "120")]);
    assert_eq!(retry_hint(StatusCode::SERVICE_UNAVAILABLE, &reset, now()), None, "backoff, not 45000 s");
    assert_eq!(retry_hint(StatusCode::TOO_MANY_REQUESTS, &reset, now()), Some(Duration::from_secs(45_000)));
    let both = headers(&[("retry-after", "3"), ("x-ratelimit-reset", "45000")]);
    assert_eq!(retry_hint(StatusCode::BAD_GATEWAY, &both, now()), Some(Duration::from_secs(3)));
}

#[tokio::test]
async fn a_5xx_with_a_quota_reset_is_retried_with_backoff() {
    let reset: &[(&str, &str)] = &[("x-ratelimit-reset", "45000")];
    let upstream = Scripted::new([Step::Answer(504, reset, ""), Step::Answer(200, reset, "page")]);
    let e = scripted_egress(upstream.clone(), Limits::default());
    assert_eq!(get(&e, &[(MAX_WAIT_HEADER, "60")]).await.unwrap(), (200, "page".to_owned()));
    assert_eq!(upstream.sent().len(), 2);
}

#[test]
fn ratelimit_reset_as_epoch_seconds() {
    let h = headers(&[("x-ratelimit-reset", "1722282945")]);
    assert_eq!(retry_after(&h, now()), Some(Duration::from_secs(45)));
    let past = headers(&[("x-ratelimit-reset", "1722282000")]);
    assert_eq!(retry_after(&past, now()), None, "a reset already past is no hint");
    let at_now = headers(&[("x-ratelimit-reset", "1722282900")]);
    assert_eq!(retry_after(&at_now, now()), None);
}

#[test]
fn ratelimit_reset_as_epoch_milliseconds() {
    let h = headers(&[("x-ratelimit-reset", "1722282901500")]);
    assert_eq!(retry_after(&h, now()), Some(Duration::from_millis(1500)));
    let past = headers(&[("ratelimit-reset", "1722282899999")]);
    assert_eq!(retry_after(&past, now()), None);
}

#[test]
fn retry_policies_follow_the_header() {
    let policy = |v: Option<&str>| RetryPolicy::from_header(v.map(|v| HeaderValue::from_str(v).unwrap()).as_ref());
    assert_eq!(policy(None), Ok(RetryPolicy::Transient));
    assert_eq!(policy(Some("rate-limited-only")), Ok(RetryPolicy::RateLimitedOnly));
    assert_eq!(policy(Some(" Never ")), Ok(RetryPolicy::Never));
    assert_eq!(policy(Some("sometimes")), Err("sometimes".to_owned()));
    assert_eq!(parse_max_wait(&HeaderValue::from_static("60")), Some(Duration::from_secs(60)));
    assert_eq!(parse_max_wait(&HeaderValue::from_static("0.5")), Some(Duration::from_millis(500)));
    assert_eq!(parse_max_wait(&HeaderValue::from_static("-1")), None);
    assert_eq!(parse_max_wait(&HeaderValue::from_static("1m")), None);
}

#[test]
fn consume_once_requests_retry_only_provably_unprocessed_answers() {
    use RetryPolicy::*;
    for status in [429, 502, 503, 504] {
        assert!(Transient.retries_status(StatusCode::from_u16(status).unwrap()), "{status}");
    }
    assert!(!Transient.retries_status(StatusCode::FORBIDDEN));
    assert!(!Transient.retries_status(StatusCode::INTERNAL_SERVER_ERROR));
    assert!(RateLimitedOnly.retries_status(StatusCode::TOO_MANY_REQUESTS));
    assert!(!RateLimitedOnly.retries_status(StatusCode::BAD_GATEWAY));
    assert!(!RateLimitedOnly.retries_status(StatusCode::SERVICE_UNAVAILABLE), "MuleSoft's quota 503");
    assert!(!RateLimitedOnly.retries_status(StatusCode::GATEWAY_TIMEOUT));
    assert!(!Never.retries_status(StatusCode::TOO_MANY_REQUESTS));
    assert!(Transient.retries_error(&HttpError::ConnectionRefused));
    assert!(Transient.retries_error(&HttpError::ConnectionTimeout));
    assert!(RateLimitedOnly.retries_error(&HttpError::ConnectionRefused));
    assert!(!RateLimitedOnly.retries_error(&HttpError::ConnectionTimeout));
    assert!(!Never.retries_error(&HttpError::ConnectionRefused));
    assert!(!Transient.retries_error(&HttpError::HttpResponseTimeout));
}

#[test]
fn logged_targets_carry_no_credentials() {
    let e = egress(&["h.com"], false).with_redactor(Redactor::new(["S3cr3t-t0ken/x"]));
    let target = |u: &str| e.describe(&http::Method::GET, &u.parse().unwrap());
    assert_eq!(target("https://h.com/p?token=abc"), "GET https://h.com/p?[query]");
    assert_eq!(target("https://user:S3cr3t-t0ken%2Fx@h.com:8443/p"), "GET https://h.com:8443/p", "no userinfo");
    assert_eq!(target("https://h.com/api/S3cr3t-t0ken/x/alerts"), "GET https://h.com/api/[REDACTED]/alerts");
    assert_eq!(target("https://h.com/api/S3cr3t-t0ken%2Fx/alerts"), "GET https://h.com/api/[REDACTED]/alerts");
    assert_eq!(target("https://h.com/api/S3cr3t-t0ken%2fx"), "GET https://h.com/api/[REDACTED]");
}

/// One scripted upstream answer.
enum Step {
    Answer(u16, &'static [(&'static str, &'static str)], &'static str),
    Refused,
}

/// Answers from a queue (then 200) and records what reached the vendor.
#[derive(Default)]
struct Scripted {
    steps: std::sync::Mutex<std::collections::VecDeque<Step>>,
    sent: std::sync::Mutex<Vec<(std::time::Instant, HeaderMap)>>,
}

impl Scripted {
    fn new(steps: impl IntoIterator<Item = Step>) -> Arc<Scripted> {
        Arc::new(Scripted { steps: std::sync::Mutex::new(steps.into_iter().collect()), ..Default::default() })
    }

    fn sent(&self) -> Vec<(std::time::Instant, HeaderMap)> {
        self.sent.lock().unwrap().clone()
    }
}

impl Upstream for Scripted {
    fn send(
        &self,
        request: BufferedRequest,
        _options: RequestOptions,
    ) -> BoxFuture<'static, Result<Response<WasiBody>, HttpError>> {
        self.sent.lock().unwrap().push((std::time::Instant::now(), request.headers().clone()));
        let step = self.steps.lock().unwrap().pop_front().unwrap_or(Step::Answer(200, &[], "ok"));
        Box::pin(async move {
            match step {
                Step::Refused => Err(HttpError::ConnectionRefused),
                Step::Answer(status, headers, body) => {
                    let mut response = Response::builder().status(status);
                    for (k, v) in headers {
                        response = response.header(*k, *v);
                    }
                    Ok(response
                        .body(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed_unsync())
                        .unwrap())
                }
            }
        })
    }
}

fn scripted_egress(upstream: Arc<Scripted>, limits: Limits) -> Arc<Egress> {
    Arc::new(Egress::new("src", vec![HostPattern::parse("api.example.com").unwrap()], false, limits, upstream))
}

/// Send a GET with `headers` through `egress`; the status and body the
/// collector gets, or the transport error.
async fn get(egress: &Arc<Egress>, headers: &[(&str, &str)]) -> Result<(u16, String), HttpError> {
    let mut request = Request::builder().uri("https://api.example.com/v1/events");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let request = request.body(Full::new(Bytes::new()).map_err(|never| match never {}).boxed_unsync()).unwrap();
    let budget = crate::limits::RunBudget::new(&Limits::default());
    let send = egress.clone().send(request, None, &budget);
    let response = tokio::time::timeout(Duration::from_secs(20), send).await.expect("send finishes")?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

const NOW: &[(&str, &str)] = &[("retry-after", "0")];
const HTML_503: &str = "<html><body>Quota exceeded for this minute</body></html>";

#[tokio::test]
async fn transient_answers_are_retried_by_default() {
    let upstream =
        Scripted::new([Step::Answer(503, NOW, "busy"), Step::Answer(502, NOW, ""), Step::Answer(200, &[], "page")]);
    let e = scripted_egress(upstream.clone(), Limits::default());
    assert_eq!(get(&e, &[]).await.unwrap(), (200, "page".to_owned()));
    assert_eq!(upstream.sent().len(), 3);
}

#[tokio::test]
async fn rate_limited_only_hands_a_quota_503_to_the_collector() {
    let upstream = Scripted::new([Step::Answer(503, &[("content-type", "text/html")], HTML_503)]);
    let e = scripted_egress(upstream.clone(), Limits::default());
    let answer = get(&e, &[(RETRY_HEADER, RETRY_RATE_LIMITED_ONLY)]).await.unwrap();
    assert_eq!(answer, (503, HTML_503.to_owned()));
    let sent = upstream.sent();
    assert_eq!(sent.len(), 1, "no host retry burns the next window's quota");
    assert!(sent[0].1.get(RETRY_HEADER).is_none(), "the host strips its own header");

    let upstream = Scripted::new([Step::Answer(429, NOW, "slow down"), Step::Answer(200, &[], "page")]);
    let e = scripted_egress(upstream.clone(), Limits::default());
    assert_eq!(get(&e, &[(RETRY_HEADER, RETRY_RATE_LIMITED_ONLY)]).await.unwrap().0, 200);
    assert_eq!(upstream.sent().len(), 2, "a 429 is still retried");
}

#[tokio::test]
async fn never_sends_exactly_once() {
    let upstream = Scripted::new([Step::Answer(429, NOW, "slow down")]);
    let e = scripted_egress(upstream.clone(), Limits::default());
    assert_eq!(get(&e, &[(RETRY_HEADER, RETRY_NEVER)]).await.unwrap().0, 429);
    assert_eq!(upstream.sent().len(), 1);

    let upstream = Scripted::new([Step::Refused]);
    let e = scripted_egress(upstream.clone(), Limits::default());
    let error = get(&e, &[(RETRY_HEADER, "never")]).await.unwrap_err();
    assert!(matches!(error, HttpError::ConnectionRefused), "{error:?}");
    assert_eq!(upstream.sent().len(), 1);

    let upstream = Scripted::new([Step::Answer(503, NOW, "")]);
    let e = scripted_egress(upstream.clone(), Limits::default());
    assert_eq!(get(&e, &[(RETRY_HEADER, "sometimes")]).await.unwrap().0, 503, "unknown policy: no retries");
    assert_eq!(upstream.sent().len(), 1);
}

#[tokio::test]
async fn a_wait_longer_than_the_collectors_max_wait_is_handed_to_it() {
    let upstream = Scripted::new([Step::Answer(429, &[("retry-after", "90")], "wait")]);
    let e = scripted_egress(upstream.clone(), Limits::default());
    let started = std::time::Instant::now();
    assert_eq!(get(&e, &[(MAX_WAIT_HEADER, "60")]).await.unwrap(), (429, "wait".to_owned()));
    assert!(started.elapsed() < Duration::from_secs(10), "the host did not sleep on it");
    let sent = upstream.sent();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].1.get(MAX_WAIT_HEADER).is_none(), "the host strips its own header");

    // Within the collector's budget the host still retries.
    let upstream = Scripted::new([Step::Answer(503, &[("retry-after", "1")], ""), Step::Answer(200, &[], "page")]);
    let e = scripted_egress(upstream.clone(), Limits::default());
    assert_eq!(get(&e, &[(MAX_WAIT_HEADER, "60")]).await.unwrap().0, 200);
    assert_eq!(upstream.sent().len(), 2);

    // max_retry_wait still applies when it is the shorter one.
    let upstream = Scripted::new([Step::Answer(429, &[("retry-after", "5")], "")]);
    let limits = Limits { max_retry_wait: Duration::from_secs(2), ..Limits::default() };
    let e = scripted_egress(upstream.clone(), limits);
    assert_eq!(get(&e, &[(MAX_WAIT_HEADER, "60")]).await.unwrap().0, 429);
    assert_eq!(upstream.sent().len(), 1);
}

#[tokio::test]
async fn a_rate_spaces_requests_evenly() {
    let upstream = Scripted::new([]);
    let limits = Limits { rate: Some("10/s".to_owned()), ..Limits::default() };
    let e = scripted_egress(upstream.clone(), limits);
    for _ in 0..4 {
        get(&e, &[]).await.unwrap();
    }
    let sent = upstream.sent();
    for pair in sent.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        // governor's clock and Instant differ by a little.
        assert!(gap >= Duration::from_millis(90), "no burst: {gap:?}");
    }
}

fn get_request() -> Request<WasiBody> {
    Request::builder()
        .uri("https://api.example.com/v1/events")
        .body(Full::new(Bytes::new()).map_err(|never| match never {}).boxed_unsync())
        .unwrap()
}

#[tokio::test]
async fn unread_responses_are_charged_and_requests_in_flight_are_capped() {
    let page: &'static str = Box::leak("x".repeat(100_000).into_boxed_str());
    let upstream = Scripted::new([Step::Answer(200, &[], page), Step::Answer(200, &[], page)]);
    let e = scripted_egress(upstream, Limits::default());
    let limits = Limits { max_requests_in_flight: 2, ..Limits::default() };
    let budget = crate::limits::RunBudget::new(&limits);
    let first = e.clone().send(get_request(), None, &budget).await.unwrap();
    let second = e.clone().send(get_request(), None, &budget).await.unwrap();
    assert_eq!(budget.response_bytes(), 200_000, "both pages are held for the collector");
    let third = e.clone().send(get_request(), None, &budget).await.unwrap_err();
    assert!(matches!(&third, HttpError::InternalError(Some(m)) if m.contains("max_requests_in_flight")), "{third:?}");
    assert!(budget.stopped(), "the run stops");
    let body = first.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len(), 100_000);
    assert_eq!(budget.response_bytes(), 100_000, "a page read is given back");
    drop(second);
    assert_eq!(budget.response_bytes(), 0, "a page dropped unread is given back");
}

#[tokio::test]
async fn the_response_buffer_caps_what_a_run_holds() {
    let page: &'static str = Box::leak("y".repeat(100_000).into_boxed_str());
    let upstream = Scripted::new([Step::Answer(200, &[], page), Step::Answer(200, &[], page)]);
    let limits = Limits {
        max_response_buffer: bytesize::ByteSize::kb(150),
        max_response_size: bytesize::ByteSize::kb(100),
        ..Limits::default()
    };
    let e = scripted_egress(upstream, limits.clone());
    let budget = crate::limits::RunBudget::new(&limits);
    let _held = e.clone().send(get_request(), None, &budget).await.unwrap();
    let err = e.clone().send(get_request(), None, &budget).await.unwrap_err();
    assert!(matches!(&err, HttpError::InternalError(Some(m)) if m.contains("max_response_buffer")), "{err:?}");
    assert_eq!(budget.exceeded().unwrap().key, "max_response_buffer");
    assert_eq!(budget.response_bytes(), 100_000, "the refused page was given back");
}
