//! Each auth mode against a scripted token endpoint: expiry, refresh ahead
//! of it, one re-authentication after a 401, unauthenticated requests.

use std::time::Duration;

use super::*;
use crate::testing::{FakeIo, Script, json, response};

const TOKEN_URL: &str = "https://idp.example/oauth/token";

fn creds(style: CredentialStyle) -> Session<ClientCredentials> {
    Session::new(
        ClientCredentials::new(TOKEN_URL, "cid".into(), "s3cr3t".into(), Duration::from_secs(3_600)).style(style),
    )
}

fn header(io: &FakeIo<Script>, n: usize, name: &str) -> Option<String> {
    io.requests[n].request.header_value(name).map(str::to_string)
}

#[test]
fn client_credentials_form_basic_and_json() {
    let token = json(200, r#"{"access_token":"T1","expires_in":"1800","token_type":"bearer"}"#);
    for style in [CredentialStyle::Form, CredentialStyle::Basic, CredentialStyle::Json] {
        let mut io = FakeIo::new(Script::new([token.clone(), json(200, "{}")]));
        let mut auth = creds(style).renew_ahead(Duration::ZERO);
        let r = send(&mut io, &mut auth, Request::get("https://api.example/x")).unwrap();
        assert_eq!(r.status, 200);
        let t = &io.requests[0].request;
        let body = String::from_utf8(t.body_bytes().unwrap().to_vec()).unwrap();
        match style {
            CredentialStyle::Form => {
                assert_eq!(body, "grant_type=client_credentials&client_id=cid&client_secret=s3cr3t");
                assert_eq!(t.header_value("content-type"), Some("application/x-www-form-urlencoded"));
            }
            CredentialStyle::Basic => {
                assert_eq!(body, "grant_type=client_credentials");
                assert_eq!(t.header_value("authorization"), Some("Basic Y2lkOnMzY3IzdA=="));
            }
            CredentialStyle::Json => {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                assert_eq!(v["client_secret"], "s3cr3t");
                assert_eq!(t.header_value("content-type"), Some("application/json"));
            }
        }
        assert_eq!(header(&io, 1, "authorization").as_deref(), Some("Bearer T1"), "{style:?}");
    }
}

#[test]
fn token_is_cached_until_shortly_before_expiry_then_renewed() {
    let mut io = FakeIo::new(Script::new([
        json(200, r#"{"access_token":"T1","expires_in":600}"#),
        json(200, "{}"),
        json(200, "{}"),
        json(200, r#"{"access_token":"T2","expires_in":600}"#),
        json(200, "{}"),
    ]));
    let mut auth = creds(CredentialStyle::Form);
    send(&mut io, &mut auth, Request::get("https://api.example/a")).unwrap();
    io.now_ms += 500_000; // 100 s left: more than the 60 s margin
    send(&mut io, &mut auth, Request::get("https://api.example/b")).unwrap();
    io.now_ms += 50_000; // 50 s left: renewed ahead of expiry
    send(&mut io, &mut auth, Request::get("https://api.example/c")).unwrap();
    let urls: Vec<&str> = io.requests.iter().map(|s| s.url.as_str()).collect();
    assert_eq!(urls, [TOKEN_URL, "https://api.example/a", "https://api.example/b", TOKEN_URL, "https://api.example/c"]);
    assert_eq!(header(&io, 4, "authorization").as_deref(), Some("Bearer T2"));
}

#[test]
fn missing_expires_in_uses_the_documented_default() {
    let mut io = FakeIo::new(Script::new([json(200, r#"{"access_token":"T1"}"#)]));
    let mut session =
        Session::new(ClientCredentials::new(TOKEN_URL, "c".into(), "s".into(), Duration::from_secs(3_600)));
    let t = session.token(&mut io).unwrap();
    assert_eq!(t.expires_at_ms, Some(crate::testing::START_MS + 40 + 3_600_000));
}

#[test]
fn a_401_re_authenticates_once_then_fails_as_auth() {
    let mut io = FakeIo::new(Script::new([
        json(200, r#"{"access_token":"T1","expires_in":3600}"#),
        json(401, r#"{"message":"token revoked"}"#),
        json(200, r#"{"access_token":"T2","expires_in":3600}"#),
        json(200, "{}"),
    ]));
    let mut auth = creds(CredentialStyle::Form);
    let r = send(&mut io, &mut auth, Request::get("https://api.example/a")).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(header(&io, 3, "authorization").as_deref(), Some("Bearer T2"));

    let mut io = FakeIo::new(Script::new([
        json(200, r#"{"access_token":"T1"}"#),
        json(401, "{}"),
        json(200, r#"{"access_token":"T2"}"#),
        json(401, r#"{"message":"scope missing"}"#),
    ]));
    let r = send(&mut io, &mut auth_fresh(), Request::get("https://api.example/a")).unwrap();
    let e = r.error_for_status("events").unwrap_err();
    assert_eq!(e, Error::Auth("events: HTTP 401: scope missing".into()));
    assert_eq!(io.sent(), 4, "exactly one re-authentication");
}

fn auth_fresh() -> Session<ClientCredentials> {
    creds(CredentialStyle::Form)
}

#[test]
fn a_refused_login_is_an_auth_error_without_the_secret() {
    let mut io =
        FakeIo::new(Script::new([json(401, r#"{"error":"invalid_client","error_description":"Bad client"}"#)]));
    let e = send(&mut io, &mut auth_fresh(), Request::get("https://api.example/a")).unwrap_err();
    assert!(matches!(&e, Error::Auth(m) if m.contains("Bad client") && m.contains(TOKEN_URL)), "{e}");
    assert!(!e.to_string().contains("s3cr3t"));
    let mut io = FakeIo::new(Script::new([json(200, r#"{"token_type":"bearer"}"#)]));
    assert!(matches!(send(&mut io, &mut auth_fresh(), Request::get("https://a/")), Err(Error::Auth(_))));
    let mut io = FakeIo::new(Script::new([response(200, &[], "<html>")]));
    assert!(matches!(send(&mut io, &mut auth_fresh(), Request::get("https://a/")), Err(Error::Vendor(_))));
}

#[test]
fn unauthenticated_requests_carry_no_credentials() {
    let mut io = FakeIo::new(Script::new([json(200, "{}"), json(200, "{}")]));
    let mut auth = StaticHeader::new("Netskope-Api-Token", "tok");
    send(&mut io, &mut auth, Request::get("https://blob.example/x?sig=1").unauthenticated()).unwrap();
    send(&mut io, &mut auth, Request::get("https://api.example/x")).unwrap();
    assert_eq!(io.requests[0].request.headers().count(), 0);
    assert_eq!(header(&io, 1, "netskope-api-token").as_deref(), Some("tok"));
    assert_eq!(format!("{auth:?}"), "StaticHeader(Netskope-Api-Token: <redacted>)");

    let mut io = FakeIo::new(Script::new([json(200, "{}")]));
    send(&mut io, &mut auth_fresh(), Request::get("https://blob.example/x").unauthenticated()).unwrap();
    assert_eq!(io.sent(), 1, "no login for an unauthenticated request");
    assert!(io.requests[0].request.header_value("authorization").is_none());
}

/// A vendor login with rotating refresh tokens, as MaaS360's.
struct Rotating;

impl Login for Rotating {
    fn login(&mut self, io: &mut dyn Io) -> Result<Token, Error> {
        let r = io.send(Request::post("https://mdm.example/login").unauthenticated())?;
        let v: serde_json::Value = r.json()?;
        let mut t = Token::bearer(v["t"].as_str().unwrap_or_default(), Some(io.now_ms() + 3_600_000));
        t.refresh_token = v["r"].as_str().map(str::to_string);
        Ok(t)
    }

    fn refresh(&mut self, io: &mut dyn Io, refresh_token: &str) -> Result<Token, Error> {
        let r =
            io.send(Request::post("https://mdm.example/refresh").header("x-refresh", refresh_token).unauthenticated())?;
        let r = r.error_for_status("refresh")?;
        let v: serde_json::Value = r.json()?;
        let mut t = Token::bearer(v["t"].as_str().unwrap_or_default(), Some(io.now_ms() + 3_600_000));
        t.refresh_token = v["r"].as_str().map(str::to_string);
        Ok(t)
    }
}

#[test]
fn custom_login_refreshes_with_the_rotated_token_and_falls_back_to_login() {
    let mut io = FakeIo::new(Script::new([
        json(200, r#"{"t":"A","r":"R1"}"#),
        json(200, "{}"),
        json(200, r#"{"t":"B","r":"R2"}"#),
        json(200, "{}"),
        json(401, r#"{"message":"refresh token reused"}"#),
        json(200, r#"{"t":"C","r":"R3"}"#),
        json(200, "{}"),
    ]));
    let mut auth = Session::new(Rotating);
    send(&mut io, &mut auth, Request::get("https://mdm.example/a")).unwrap();
    io.now_ms += 3_590_000;
    send(&mut io, &mut auth, Request::get("https://mdm.example/b")).unwrap();
    assert_eq!(header(&io, 2, "x-refresh").as_deref(), Some("R1"));
    assert_eq!(header(&io, 3, "authorization").as_deref(), Some("Bearer B"));
    io.now_ms += 3_590_000;
    send(&mut io, &mut auth, Request::get("https://mdm.example/c")).unwrap();
    assert_eq!(header(&io, 4, "x-refresh").as_deref(), Some("R2"), "the rotated refresh token");
    assert_eq!(io.requests[5].url, "https://mdm.example/login", "a failed refresh logs in again");
    assert_eq!(header(&io, 6, "authorization").as_deref(), Some("Bearer C"));
    assert_eq!(io.logged("Token refresh failed"), 1);
}

#[test]
fn a_token_endpoint_sharing_a_quota_is_waited_out_then_gives_up_as_rate_limited() {
    fn quota(r: &Response, _now: u64) -> Option<Duration> {
        (r.status == 503).then_some(Duration::from_secs(42))
    }
    let html = response(503, &[("content-type", "text/html")], "<html>quota</html>");
    let creds = || {
        ClientCredentials::new(TOKEN_URL, "cid".into(), "s3cr3t".into(), Duration::from_secs(3_600)).rate_limited(
            quota,
            2,
            Duration::from_secs(75),
        )
    };
    let ok = json(200, r#"{"access_token":"T1"}"#);
    let mut io = FakeIo::new(Script::new([html.clone(), html.clone(), ok]));
    let token = creds().login(&mut io).unwrap();
    assert_eq!(token.value, "Bearer T1");
    assert_eq!(io.sleeps, [Duration::from_secs(42); 2]);
    let sent = &io.requests[0].request;
    assert_eq!(
        sent.header_value(crate::http::RETRY_HEADER),
        Some("rate-limited-only"),
        "the host leaves the 503 to us"
    );
    assert_eq!(sent.header_value(crate::http::MAX_WAIT_HEADER), Some("75"));

    let mut io = FakeIo::new(Script::new([html.clone(), html.clone(), html]));
    let e = creds().login(&mut io).unwrap_err();
    assert_eq!(e.kind(), "rate-limited", "{e}");
    assert!(e.to_string().contains("3 answers in a row were HTTP 503"), "{e}");
    assert_eq!(io.sent(), 3);

    // Without it, other statuses and vendors behave as before.
    let plain = ClientCredentials::new(TOKEN_URL, "cid".into(), "s".into(), Duration::from_secs(60));
    assert_eq!(plain.request().header_value(crate::http::RETRY_HEADER), None);
}
