//! Unit tests: settings, request signing against a known vector, request building, what each
//! failure shape means, rate-limit resets.

use siphon_sdk::driver::{Ctx, Stream};
use siphon_sdk::http::{Request, Response};
use siphon_sdk::testing::{FakeIo, Script, response};
use siphon_sdk::{Collector, Error};

use super::*;

fn signer(app_id: &str, app_key: &str, access_key: &str, secret: &[u8]) -> v1::Signer {
    v1::Signer {
        app_id: app_id.into(),
        app_key: app_key.into(),
        access_key: access_key.into(),
        secret: secret.to_vec(),
    }
}

fn io() -> FakeIo<Script> {
    FakeIo::new(Script::default())
}

fn config_error(io: &mut FakeIo<Script>) -> String {
    match io.run(|io| run(io)) {
        Err(Error::Config(m)) => m,
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn info_declares_every_setting_with_its_default() {
    let info = Mimecast::info();
    assert_eq!(info.name, "mimecast");
    let spec = |n: &str| info.settings.iter().find(|s| s.name == n).unwrap_or_else(|| panic!("{n} declared"));
    assert_eq!(spec("api").default_value.as_deref(), Some("2.0"));
    assert_eq!(spec("base_url").default_value.as_deref(), Some(V2_HOST));
    assert_eq!(spec("streams").default_value.as_deref(), Some("siem"));
    assert_eq!(spec("lookback_hours").default_value.as_deref(), Some("24"));
    assert_eq!(spec("max_pages_per_run").default_value.as_deref(), Some("100"));
    assert_eq!(TYPES.read(|_| None).unwrap(), SIEM_TYPES.split(',').collect::<Vec<_>>());
    assert_eq!(TYPES.read(|_| None).unwrap().len(), 10);
    assert!(spec("app_id").default_value.is_none() && !spec("app_id").secret && !spec("app_id").required);
    for s in ["client_id", "client_secret", "app_key", "access_key", "secret_key"] {
        assert!(spec(s).secret && !spec(s).required, "{s}: a secret only one API needs");
    }
}

#[test]
fn each_invalid_setting_is_named() {
    for (key, value) in [
        ("api", "3.0"),
        ("streams", "siem,ttp"),
        ("siem_types", r#"["receipt","bogus"]"#),
        ("lookback_hours", "0"),
        ("lookback_hours", "2000"),
        ("max_pages_per_run", "0"),
        ("base_url", "api.services.mimecast.com"),
    ] {
        let mut io = io().setting(key, value).secret("client_id", "i").secret("client_secret", "s");
        let m = config_error(&mut io);
        assert!(m.contains(&format!("`{key}`")), "{key}={value}: {m}");
    }
}

#[test]
fn each_api_names_what_it_needs() {
    let m = config_error(&mut io().secret("client_secret", "s"));
    assert!(m.contains("`client_id`") && m.contains("2.0"), "{m}");
    let m = config_error(&mut io().secret("client_id", "i"));
    assert!(m.contains("`client_secret`"), "{m}");

    let v1 = || io().setting("api", "1.0").setting("base_url", "https://eu-api.mimecast.com");
    let m = config_error(&mut io().setting("api", "1.0"));
    assert!(m.contains("`base_url`") && m.contains("regional"), "{m}");
    let m = config_error(&mut io().setting("api", "1.0").setting("base_url", V2_HOST));
    assert!(m.contains("`base_url`"), "an API 2.0 host is refused for 1.0: {m}");
    let m = config_error(&mut v1());
    assert!(m.contains("`app_id`"), "{m}");
    let m = config_error(&mut v1().setting("app_id", "a").secret("access_key", "k").secret("secret_key", "c2VjcmV0"));
    assert!(m.contains("`app_key`") && m.contains("1.0"), "{m}");
    let full = v1().setting("app_id", "a").secret("app_key", "k").secret("access_key", "k");
    let m = config_error(&mut full.secret("secret_key", "not base64 !"));
    assert!(m.contains("`secret_key`") && m.contains("base64") && !m.contains("not base64 !"), "{m}");
}

#[test]
fn validate_names_what_the_chosen_api_needs_and_nothing_else() {
    let v2 = io().secret("client_id", "i");
    assert_eq!(problems(&v2), ["secret `client_secret` is required with api = \"2.0\""]);
    assert!(problems(&v2.secret("client_secret", "s")).is_empty());
    let v1 = io().setting("api", "1.0").setting("base_url", "https://eu-api.mimecast.com").setting("app_id", "a");
    let v1 = v1.secret("app_key", "k").secret("access_key", "k");
    assert_eq!(problems(&v1), ["secret `secret_key` is required with api = \"1.0\""]);
    assert!(problems(&v1.secret("secret_key", "c2VjcmV0")).is_empty());
    let bad = io().setting("api", "1.0").setting("lookback_hours", "0").setting("siem_types", "bogus");
    let found = problems(&bad);
    assert_eq!(found.len(), 2, "each bad setting, then the API's needs once they parse: {found:?}");
    assert!(found[0].contains("`siem_types`") && found[1].contains("`lookback_hours`"), "{found:?}");
    assert!(problems(&io().setting("api", "1.0"))[0].contains("`base_url`"));
}

#[test]
fn the_signature_matches_a_known_vector() {
    let mut signer = signer("app", "app-key-123", "access-1", b"secret-key-bytes");
    let (mut io, url) = (io(), "https://eu-api.mimecast.com/api/audit/get-siem-logs");
    io.now_ms = 1_736_935_200_000;
    let r = signer.authorize(&mut io, Request::post(url)).unwrap();
    // The fake host's first random bytes make this request id; python3 then gives the signature:
    // base64(hmac.new(b64decode(secret), "date:id:path:app key", sha1).digest()).
    assert_eq!(r.header_value("x-mc-req-id"), Some("9e3cda78-17b5-43f1-8f2e-cc6a08a745e3"));
    assert_eq!(r.header_value("x-mc-date"), Some("Wed, 15 Jan 2025 10:00:00 UTC"));
    assert_eq!(r.header_value("authorization"), Some("MC access-1:u/hVcXirx/eCv+WdatdFXdDwju4="));
    // The path alone is signed: the same request with a query gets the same signature.
    let (mut io, with_query) = (self::io(), format!("{url}?pageSize=5"));
    io.now_ms = 1_736_935_200_000;
    let q = signer.authorize(&mut io, Request::post(with_query)).unwrap();
    assert_eq!(q.header_value("authorization"), r.header_value("authorization"));
}

#[test]
fn signed_requests_carry_date_uuid_and_app_id() {
    let mut signer = signer("app-1", "k", "a", b"secret");
    let mut io = io();
    io.now_ms = 1_736_935_200_000;
    let r =
        signer.authorize(&mut io, Request::post("https://eu-api.mimecast.com/api/audit/get-siem-logs?x=1")).unwrap();
    let (a, b) = (r.header_value("x-mc-req-id").unwrap().to_string(), r.header_value("authorization").unwrap());
    assert_eq!(r.header_value("x-mc-date"), Some("Wed, 15 Jan 2025 10:00:00 UTC"));
    assert_eq!(r.header_value("x-mc-app-id"), Some("app-1"));
    assert_eq!((a.len(), &a[14..15]), (36, "4"), "a UUID v4: {a}");
    assert!(b.starts_with("MC a:") && b.len() == "MC a:".len() + 28, "{b}");
    let again = signer.authorize(&mut io, Request::post("https://h/p")).unwrap();
    assert_ne!(again.header_value("x-mc-req-id"), Some(a.as_str()), "a fresh id per request");
    let presigned = signer.authorize(&mut io, Request::get("https://s3/x").unauthenticated()).unwrap();
    assert_eq!(presigned.headers().count(), 0, "nothing on an unauthenticated request");
    assert!(!signer.invalidate(), "a 401 is not retried with the same keys");
}

fn with_cx<T>(now_ms: u64, f: impl FnOnce(&mut Ctx) -> T) -> T {
    let mut io = io();
    io.now_ms = now_ms;
    let mut auth = siphon_sdk::auth::NoAuth;
    f(&mut Ctx { io: &mut io, auth: &mut auth, attempt: siphon_sdk::driver::Attempt::Fresh })
}

#[test]
fn batch_requests_send_dates_first_then_only_next_page() {
    let batch = v2::Batch { base: V2_HOST.into(), kind: "url protect", lookback_ms: 30 * 86_400_000 };
    let now = 1_736_935_200_000; // 2025-01-15T10:00Z
    let mut cursor = v2::Cursor::default();
    let r = with_cx(now, |cx| batch.request(cx, &mut cursor)).unwrap().unwrap();
    assert!(
        r.url().starts_with("https://api.services.mimecast.com/siem/v1/batch/events/cg?type=url%20protect&"),
        "{}",
        r.url()
    );
    assert_eq!(r.query_value("dateRangeStartsAt").as_deref(), Some("2025-01-09"), "clamped to 6 days back");
    assert_eq!(r.query_value("dateRangeEndsAt").as_deref(), Some("2025-01-15"));
    assert_eq!(r.query_value("nextPage"), None);
    assert!(r.is_authenticated());
    cursor.next = Some("NDU1NA==".into());
    let r = with_cx(now, |cx| batch.request(cx, &mut cursor)).unwrap().unwrap();
    assert!(r.url().contains("nextPage=NDU1NA%3D%3D"), "{}", r.url());
    assert_eq!(r.query_value("dateRangeStartsAt"), None);
}

#[test]
fn audit_requests_pin_a_window_and_page_with_meta_only() {
    let audit = audit::Audit { base: V2_HOST.into(), lookback_ms: 24 * 3_600_000, run_started_ms: 0 };
    let mut cursor = audit::Cursor::default();
    let r = with_cx(1_736_935_200_500, |cx| audit.request(cx, &mut cursor)).unwrap().unwrap();
    let body: serde_json::Value = serde_json::from_slice(r.body_bytes().unwrap()).unwrap();
    assert_eq!(body["data"][0]["startDateTime"], "2025-01-14T10:00:00+0000");
    assert_eq!(body["data"][0]["endDateTime"], "2025-01-15T10:00:00+0000");
    assert_eq!(body["meta"]["pagination"]["pageSize"], 100);
    assert_eq!((cursor.start, cursor.end), (Some(1_736_848_800_000), Some(1_736_935_200_000)));
    cursor.page = Some("eNpVj0FPg".into());
    let r = with_cx(1_736_935_999_000, |cx| audit.request(cx, &mut cursor)).unwrap().unwrap();
    let body: serde_json::Value = serde_json::from_slice(r.body_bytes().unwrap()).unwrap();
    assert_eq!(body, serde_json::json!({"meta": {"pagination": {"pageSize": 100, "pageToken": "eNpVj0FPg"}}}));
    let mut done = audit::Cursor { start: Some(1_736_935_200_000), ..Default::default() };
    assert!(with_cx(1_736_935_200_900, |cx| audit.request(cx, &mut done)).unwrap().is_none(), "an empty window");
}

#[test]
fn failures_mean_what_mimecast_says() {
    let fail = |status: u16, body: &str| envelope::error("call", &response(status, &[], body));
    let e = fail(
        200,
        r#"{"meta":{"status":200},"fail":[{"errors":[{"code":"err_audit_siem_invalid_token","message":"bad"}]}]}"#,
    );
    assert!(matches!(&e, Error::Config(m) if m.contains("reset") && m.contains("err_audit_siem_invalid_token")), "{e}");
    let e = fail(418, r#"{"fail":[{"errors":[{"code":"err_xdk_binding_expired","message":"expired"}]}]}"#);
    assert!(matches!(&e, Error::Auth(m) if m.contains("new access key") && m.contains("HTTP 418")), "{e}");
    let e = fail(401, r#"{"fail":[{"code":"token_expired","message":"The token has expired"}]}"#);
    assert!(matches!(&e, Error::Auth(m) if m.contains("The token has expired (token_expired)")), "{e}");
    let e = fail(400, r#"{"error":{"code":"400","message":"type must be one"}}"#);
    assert!(matches!(&e, Error::Vendor(m) if m.contains("type must be one")), "{e}");
    let e = fail(404, "<html>nope</html>");
    assert!(matches!(&e, Error::NotFound(m) if m.contains("nope")), "{e}");
    let ok = response(200, &[], r#"{"meta":{"status":200},"data":[],"fail":[]}"#);
    assert!(envelope::check("call", &ok).is_ok());
    let failed =
        response(200, &[], r#"{"data":[],"fail":[{"errors":[{"code":"err_validation_null","message":"x"}]}]}"#);
    assert!(matches!(envelope::check("call", &failed), Err(Error::Vendor(m)) if m.contains("err_validation_null")));
}

#[test]
fn rate_limit_resets_are_milliseconds() {
    let now = 1_736_935_200_000;
    let limited = |headers: &[(&str, &str)]| envelope::rate_limited(&response(429, headers, ""), now);
    use std::time::Duration;
    assert_eq!(limited(&[("X-RateLimit-Reset", "1500")]), Some(Duration::from_millis(1500)));
    assert_eq!(limited(&[("Retry-After", "3"), ("X-RateLimit-Reset", "1500")]), Some(Duration::from_secs(3)));
    assert_eq!(limited(&[("X-RateLimit-Reset", "1736935230000")]), Some(Duration::from_secs(30)), "an epoch in ms");
    assert_eq!(limited(&[]), Some(Duration::ZERO));
    assert_eq!(envelope::rate_limited(&Response { status: 503, ..Response::default() }, now), None);
}
