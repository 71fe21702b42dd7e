//! Outbound HTTP policy for collectors: which hosts a source may reach
//! (matched on the request URI's authority, never a Host header), how fast,
//! how long to wait, how large a response may be, and which failures are
//! retried. The network itself sits behind [`Upstream`], the one seam tests
//! replace with a scripted responder.

use std::fmt;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

use crate::limits::{Limits, Rate};
use crate::telemetry;

/// One `allowed_hosts` entry: `host`, `host:port` or `*.domain[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// Lower-cased host, without the `*.` of a wildcard.
    host: String,
    /// Whether subdomains of `host` match (and `host` itself does not).
    wildcard: bool,
    /// Port the entry is limited to, if any.
    port: Option<u16>,
}

impl HostPattern {
    /// Parse an entry; URLs, paths and empty labels are rejected.
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        let text = text.trim();
        if text.contains("://") || text.contains('/') || text.contains('@') {
            return Err("write a host name, optionally with `:port`, not a URL".to_owned());
        }
        let (host, port) = match text.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => {
                let port = p.parse::<u16>().map_err(|_| format!("invalid port `{p}`"))?;
                (h, Some(port))
            }
            _ => (text, None),
        };
        let (host, wildcard) = match host.strip_prefix("*.") {
            Some(rest) => (rest, true),
            None => (host, false),
        };
        let host = host.to_ascii_lowercase();
        let label_ok = |l: &str| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if host.is_empty() || !host.split('.').all(label_ok) {
            return Err("not a valid host name or IPv4 address".to_owned());
        }
        Ok(HostPattern { host, wildcard, port })
    }

    /// Whether a request to `host` (as in the URI) on `port` is allowed.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let host_ok = if self.wildcard {
            host.strip_suffix(&self.host).is_some_and(|rest| rest.ends_with('.') && rest.len() > 1)
        } else {
            host == self.host
        };
        host_ok && self.port.is_none_or(|p| p == port)
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            f.write_str("*.")?;
        }
        f.write_str(&self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

/// A buffered request as sent upstream, so a retry can send it again.
pub type BufferedRequest = Request<Bytes>;

/// Where requests that passed the policy go: the network in production, a
/// scripted responder in tests.
pub trait Upstream: Send + Sync + 'static {
    /// Send one request; the response body is streamed back.
    fn send(
        &self,
        request: BufferedRequest,
        options: RequestOptions,
    ) -> BoxFuture<'static, Result<Response<WasiBody>, HttpError>>;
}

/// The real network, through wasmtime-wasi-http's client (hyper + rustls
/// with the webpki roots).
pub struct Network;

impl Upstream for Network {
    fn send(
        &self,
        request: BufferedRequest,
        options: RequestOptions,
    ) -> BoxFuture<'static, Result<Response<WasiBody>, HttpError>> {
        Box::pin(async move {
            let request = request.map(|b| Full::new(b).map_err(|never| match never {}));
            let (response, io) = wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            // The connection task drives the body; it ends with the body.
            tokio::spawn(async move {
                if let Err(e) = io.await {
                    tracing::debug!(error = ?e, "Upstream connection ended with an error");
                }
            });
            Ok(response.map(BodyExt::boxed_unsync))
        })
    }
}

/// The egress policy of one source, shared by all its runs.
pub struct Egress {
    source: String,
    allowed: Vec<HostPattern>,
    allow_http: bool,
    limits: Limits,
    rate: DefaultDirectRateLimiter,
    upstream: Arc<dyn Upstream>,
}

impl fmt::Debug for Egress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Egress").field("source", &self.source).field("allowed", &self.allowed).finish()
    }
}

/// Request header by which a collector chooses the host's retries; the host
/// removes it before sending. Absent: the host retries 429, 502, 503, 504 and
/// connections that failed to open. [`RETRY_RATE_LIMITED_ONLY`]: only answers
/// that prove the request was not processed (429, a connection that never
/// opened). [`RETRY_NEVER`]: no retries; the first answer or transport error
/// goes to the collector. An unknown value counts as [`RETRY_NEVER`] (retrying
/// less never skips data).
pub const RETRY_HEADER: &str = "siphon-retry";
/// See [`RETRY_HEADER`]. For consume-once requests (Netskope's
/// `operation=next`), where a 502/504 or a timeout may come after the vendor
/// served and consumed a page that a retry would then skip, and for vendors
/// whose 503 means "quota used up" (MuleSoft), where quick retries burn the
/// next window's quota too.
pub const RETRY_RATE_LIMITED_ONLY: &str = "rate-limited-only";
/// See [`RETRY_HEADER`]: the collector handles every failure itself.
pub const RETRY_NEVER: &str = "never";
/// Request header with the longest retry wait, in seconds, the collector
/// accepts (removed before sending). A retry that would wait longer (a
/// `Retry-After`, a rate-limit reset or a backoff) is not slept on: the
/// answer goes to the collector, which can fit the wait into its own budget.
/// The source's `max_retry_wait` still applies when it is shorter.
pub const MAX_WAIT_HEADER: &str = "siphon-max-wait";

/// Which failures the host retries for one request (from [`RETRY_HEADER`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryPolicy {
    /// 429, 502, 503, 504, and connections that failed or timed out opening.
    Transient,
    /// 429 and connections that failed to open.
    RateLimitedOnly,
    /// Nothing.
    Never,
}

impl RetryPolicy {
    /// The policy a header value asks for; `Err` carries an unknown value,
    /// which is treated as [`RetryPolicy::Never`].
    pub fn from_header(value: Option<&HeaderValue>) -> Result<RetryPolicy, String> {
        let Some(value) = value else { return Ok(RetryPolicy::Transient) };
        let text = String::from_utf8_lossy(value.as_bytes()).trim().to_ascii_lowercase();
        match text.as_str() {
            RETRY_RATE_LIMITED_ONLY => Ok(RetryPolicy::RateLimitedOnly),
            RETRY_NEVER => Ok(RetryPolicy::Never),
            _ => Err(text),
        }
    }

    /// Whether an answer with `status` is worth another try.
    pub fn retries_status(self, status: StatusCode) -> bool {
        match (self, status.as_u16()) {
            (RetryPolicy::Never, _) => false,
            (_, 429) => true,
            (RetryPolicy::Transient, 502..=504) => true,
            _ => false,
        }
    }

    /// Whether a transport error is worth another try.
    pub fn retries_error(self, error: &HttpError) -> bool {
        match (self, error) {
            (RetryPolicy::Never, _) => false,
            // Nothing was sent on a connection that never opened.
            (_, HttpError::ConnectionRefused | HttpError::Connect(_)) => true,
            (RetryPolicy::Transient, HttpError::ConnectionTimeout) => true,
            _ => false,
        }
    }
}

/// [`MAX_WAIT_HEADER`]'s value: whole or decimal seconds.
fn parse_max_wait(value: &HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    let secs: f64 = text.parse().ok()?;
    Duration::try_from_secs_f64(secs).ok()
}

impl Egress {
    /// Policy for `source` with its allow-list and limits.
    pub fn new(
        source: &str,
        allowed: Vec<HostPattern>,
        allow_http: bool,
        limits: Limits,
        upstream: Arc<dyn Upstream>,
    ) -> Egress {
        // Config validation rejects a bad rate; only limits built by hand
        // (tests) can get here with one.
        let rate = limits.request_rate().unwrap_or_else(|error| {
            tracing::warn!(source, %error, "Invalid request rate; using the default");
            Rate::DEFAULT
        });
        Egress {
            source: source.to_owned(),
            allowed,
            allow_http,
            rate: RateLimiter::direct(quota(rate)),
            limits,
            upstream,
        }
    }

    /// Decide whether a request may leave, from its URI alone.
    pub fn check(&self, uri: &http::Uri) -> Result<(), String> {
        let scheme = uri.scheme_str().unwrap_or("https");
        let host = uri.host().ok_or("request has no host")?;
        let port = uri.port_u16().unwrap_or(if scheme == "http" { 80 } else { 443 });
        match scheme {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => {
                return Err(format!("plain http to {host} is not allowed (set allow_http)"));
            }
            other => return Err(format!("scheme `{other}` is not supported")),
        }
        if self.allowed.iter().any(|p| p.matches(host, port)) {
            Ok(())
        } else {
            Err(format!("host {host}:{port} is not in allowed_hosts"))
        }
    }

    /// Apply the policy and send: allow-list, rate limit, bounded retries
    /// honouring `Retry-After`, response size cap, gzip decoding.
    pub async fn send(
        self: Arc<Self>,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<Response<WasiBody>, HttpError> {
        let uri = request.uri().clone();
        let target = format!("{} {}", request.method(), redact_query(&uri));
        if let Err(reason) = self.check(&uri) {
            tracing::warn!(source = %self.source, request = %target, %reason, "Denied outbound request");
            telemetry::http_request(&self.source, "denied");
            return Err(HttpError::HttpRequestDenied);
        }
        let options = self.options(options);
        let (mut parts, body) = request.into_parts();
        let policy = RetryPolicy::from_header(parts.headers.remove(RETRY_HEADER).as_ref()).unwrap_or_else(|value| {
            tracing::warn!(source = %self.source, request = %target, %value,
                "Unknown {RETRY_HEADER} value; not retrying this request");
            RetryPolicy::Never
        });
        let guest_max_wait = parts.headers.remove(MAX_WAIT_HEADER).and_then(|v| {
            let wait = parse_max_wait(&v);
            if wait.is_none() {
                tracing::warn!(source = %self.source, request = %target, value = ?v,
                    "Invalid {MAX_WAIT_HEADER} value (seconds expected); ignored");
            }
            wait
        });
        let max_wait = guest_max_wait.map_or(self.limits.max_retry_wait, |g| g.min(self.limits.max_retry_wait));
        // Collectors send small requests (queries, token forms); buffering
        // makes retries possible.
        let body =
            Limited::new(body, 1 << 20).collect().await.map_err(|_| HttpError::HttpRequestBodySize(None))?.to_bytes();
        // Ask for gzip unless the collector chose an encoding: vendor pages
        // compress 10x, and decoding here keeps every collector simple.
        let decode_gzip = !parts.headers.contains_key(header::ACCEPT_ENCODING);
        if decode_gzip {
            parts.headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        }

        let mut attempt = 0u32;
        loop {
            self.rate.until_ready().await;
            let sent = Request::from_parts(parts.clone(), body.clone());
            let started = std::time::Instant::now();
            let outcome = self.upstream.send(sent, options).await;
            telemetry::http_latency(&self.source, started.elapsed());
            let retry_wait = match &outcome {
                Ok(resp) if policy.retries_status(resp.status()) => {
                    Some(retry_after(resp.headers(), chrono::Utc::now()))
                }
                Ok(_) => None,
                Err(e) if policy.retries_error(e) => Some(None),
                Err(_) => None,
            };
            let status = match &outcome {
                Ok(r) => r.status().as_u16().to_string(),
                Err(e) => format!("error: {e}"),
            };
            match retry_wait {
                Some(hint) if attempt < self.limits.max_retries => {
                    let wait = hint.unwrap_or_else(|| backoff(attempt));
                    if wait > max_wait {
                        if guest_max_wait.is_some_and(|g| g < self.limits.max_retry_wait) {
                            tracing::info!(source = %self.source, request = %target, %status,
                                wait_ms = wait.as_millis() as u64, "Retry wait exceeds the collector's {MAX_WAIT_HEADER}; handing the answer to it");
                        } else {
                            tracing::warn!(source = %self.source, request = %target, %status,
                                wait_s = wait.as_secs(), "Vendor asked to wait longer than max_retry_wait; not retrying");
                        }
                        return self.finish(outcome, decode_gzip, &target).await;
                    }
                    attempt += 1;
                    telemetry::http_request(&self.source, "retried");
                    tracing::info!(source = %self.source, request = %target, %status, attempt,
                        wait_ms = wait.as_millis() as u64, "Retrying request");
                    tokio::time::sleep(wait).await;
                }
                _ => return self.finish(outcome, decode_gzip, &target).await,
            }
        }
    }

    fn options(&self, guest: Option<RequestOptions>) -> RequestOptions {
        // A collector may ask for shorter timeouts, never longer ones.
        let cap = |g: Option<Duration>, l: Duration| Some(g.map_or(l, |g| g.min(l)));
        let guest = guest.unwrap_or_default();
        RequestOptions {
            connect_timeout: cap(guest.connect_timeout, self.limits.connect_timeout),
            first_byte_timeout: cap(guest.first_byte_timeout, self.limits.first_byte_timeout),
            between_bytes_timeout: cap(guest.between_bytes_timeout, self.limits.between_bytes_timeout),
        }
    }

    /// Read the body under the size cap and hand the response on.
    async fn finish(
        &self,
        outcome: Result<Response<WasiBody>, HttpError>,
        decode_gzip: bool,
        target: &str,
    ) -> Result<Response<WasiBody>, HttpError> {
        let response = match outcome {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(source = %self.source, request = %target, error = %e, "Request failed");
                telemetry::http_request(&self.source, "failed");
                return Err(e);
            }
        };
        let cap = self.limits.max_response_size.as_u64() as usize;
        let (mut parts, body) = response.into_parts();
        let mut bytes = match Limited::new(body, cap).collect().await {
            Ok(c) => c.to_bytes(),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
                tracing::warn!(source = %self.source, request = %target, limit = cap, "Response exceeds max_response_size");
                telemetry::http_request(&self.source, "too_large");
                return Err(HttpError::HttpResponseBodySize(Some(cap as u64)));
            }
            Err(e) => {
                return Err(match e.downcast::<HttpError>() {
                    Ok(e) => *e,
                    Err(_) => HttpError::HttpResponseIncomplete,
                });
            }
        };
        let gzipped =
            parts.headers.get(header::CONTENT_ENCODING).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
        if decode_gzip && gzipped {
            bytes = gunzip(&bytes, cap)?;
            parts.headers.remove(header::CONTENT_ENCODING);
            parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        }
        telemetry::http_request(&self.source, parts.status.as_str());
        tracing::debug!(source = %self.source, request = %target, status = parts.status.as_u16(),
            bytes = bytes.len(), "Response");
        Ok(Response::from_parts(parts, Full::new(bytes).map_err(|never| match never {}).boxed_unsync()))
    }
}

fn gunzip(bytes: &[u8], cap: usize) -> Result<Bytes, HttpError> {
    let mut out = Vec::new();
    let decoder = flate2::read::GzDecoder::new(bytes);
    decoder
        .take(cap as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| HttpError::HttpResponseContentCoding(Some(format!("gzip: {e}"))))?;
    if out.len() > cap {
        return Err(HttpError::HttpResponseBodySize(Some(cap as u64)));
    }
    Ok(Bytes::from(out))
}

/// The token bucket for a rate: one slot per interval, `burst` at once.
fn quota(rate: Rate) -> Quota {
    Quota::with_period(rate.interval()).map_or_else(|| Quota::per_second(rate.count), |q| q.allow_burst(rate.burst))
}

/// A `ratelimit-reset` value above this is an epoch in seconds (2001-09-09
/// onwards), not a number of seconds to wait (31 years).
const EPOCH_SECONDS_FROM: u64 = 1_000_000_000;
/// A `ratelimit-reset` value above this is an epoch in milliseconds (as
/// seconds it would be the year 33658).
const EPOCH_MILLIS_FROM: u64 = 1_000_000_000_000;

/// The server's hint, from `Retry-After` (seconds or an HTTP date) or the
/// `ratelimit-reset` / `X-RateLimit-Reset` that vendors send as seconds to
/// wait, as an epoch in seconds or as an epoch in milliseconds (Mimecast).
/// A date or epoch already past is no hint (backoff applies). `now` is the
/// wall clock, a parameter for tests.
fn retry_after(headers: &HeaderMap, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let until = |when: chrono::DateTime<chrono::Utc>| (when - now).to_std().ok().filter(|d| !d.is_zero());
    if let Some(v) = text("retry-after") {
        if let Ok(secs) = v.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(when) = chrono::DateTime::parse_from_rfc2822(v) {
            return until(when.with_timezone(&chrono::Utc));
        }
    }
    let reset =
        ["ratelimit-reset", "x-ratelimit-reset"].into_iter().find_map(|name| text(name)?.parse::<u64>().ok())?;
    let epoch_ms = match reset {
        r if r > EPOCH_MILLIS_FROM => r,
        r if r > EPOCH_SECONDS_FROM => r.saturating_mul(1000),
        secs => return Some(Duration::from_secs(secs)),
    };
    let when = chrono::DateTime::from_timestamp_millis(i64::try_from(epoch_ms).ok()?)?;
    until(when)
}

/// Exponential backoff with full jitter: 0.5 s, 1 s, 2 s ... capped at 30 s.
fn backoff(attempt: u32) -> Duration {
    let ceiling = Duration::from_millis(500).saturating_mul(1u32 << attempt.min(6)).min(Duration::from_secs(30));
    ceiling.mul_f64(0.5 + rand::random::<f64>() * 0.5)
}

/// The URI for logs, without its query (which may carry tokens).
pub fn redact_query(uri: &http::Uri) -> String {
    format!(
        "{}://{}{}",
        uri.scheme_str().unwrap_or("https"),
        uri.authority().map(|a| a.as_str()).unwrap_or(""),
        uri.path()
    )
}

#[cfg(test)]
mod tests;
