//! Whole runs against the shared mock tenant (`siphon_tests::mock::mimecast`) behind `FakeIo`:
//! both APIs paging every stream to its end, second runs, exactly-once under a crash at every
//! step, expired download URLs, bad credentials, token expiry, 418, a stale SIEM token, 429 and
//! 5xx, and audit windows that shift while they are paged.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use siphon_sdk::testing::{Crash, FakeIo, crash_everywhere};
use siphon_sdk::{Error, Summary};
use siphon_tests::mock::Streams;
use siphon_tests::mock::fake::Fake;
use siphon_tests::mock::http::{Request, Response};
use siphon_tests::mock::mimecast::{MockConfig, Tenant, now_ms};
use siphon_tests::mock::oauth::OAuth;

use super::*;

type Io = FakeIo<Fake<Box<dyn Fn(&Request) -> Response>>>;

const V2_TYPES: &str = r#"["receipt","url protect","attachment protect"]"#;

/// The mock tenant and its token endpoint, as the mock server holds them.
struct Vendor {
    tenant: Mutex<Tenant>,
    oauth: OAuth,
}

impl Vendor {
    fn lock(&self) -> MutexGuard<'_, Tenant> {
        self.tenant.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn records(&self, stream: &str) -> Vec<String> {
        self.lock().records(stream)
    }
}

fn tenant(per_stream: usize) -> Arc<Vendor> {
    let cfg = MockConfig::default();
    let t = Arc::new(Vendor { oauth: Tenant::oauth(&cfg), tenant: Mutex::new(Tenant::new(cfg)) });
    for s in ["receipt", "url protect", "attachment protect", "siem", "audit"] {
        t.lock().add(s, per_stream);
    }
    t
}

/// A fake host on the wall clock in front of `t`.
fn fake(t: &Arc<Vendor>) -> Io {
    let v = Arc::clone(t);
    let handler = move |r: &Request| v.lock().handle(&v.oauth, r);
    let mut io = FakeIo::new(Fake::new(Box::new(handler) as Box<dyn Fn(&Request) -> Response>));
    io.now_ms = now_ms();
    io
}

/// A source reading `streams` over API 2.0.
fn v2(t: &Arc<Vendor>, streams: &str) -> Io {
    let c = t.lock().config().clone();
    fake(t)
        .setting("base_url", "https://api.services.mimecast.com")
        .setting("streams", streams)
        .setting("siem_types", V2_TYPES)
        .secret("client_id", &c.client_id)
        .secret("client_secret", &c.client_secret)
}

/// A source reading `streams` over API 1.0.
fn v1(t: &Arc<Vendor>, streams: &str) -> Io {
    let c = t.lock().config().clone();
    fake(t)
        .setting("api", "1.0")
        .setting("base_url", "https://eu-api.mimecast.com")
        .setting("streams", streams)
        .setting("app_id", &c.app_id)
        .secret("app_key", &c.app_key)
        .secret("access_key", &c.access_key)
        .secret("secret_key", &c.secret_key)
}

const BOTH: &str = r#"["siem","audit"]"#;

fn expected(t: &Vendor, api: &str) -> Vec<String> {
    let streams: &[&str] = match api {
        "2.0" => &["receipt", "url protect", "attachment protect", "audit"],
        _ => &["siem", "audit"],
    };
    let mut all: Vec<String> = streams.iter().flat_map(|s| t.records(s)).collect();
    all.sort();
    all
}

fn delivered(io: &Io) -> Vec<String> {
    let mut d = io.delivered.clone();
    d.sort();
    d
}

/// Asserts `got` and `want` hold the same records, naming a few that differ (not all of them).
#[track_caller]
fn same(got: Vec<String>, want: Vec<String>, what: &str) {
    if got != want {
        let missing: Vec<&String> = want.iter().filter(|w| !got.contains(w)).take(2).collect();
        let extra: Vec<&String> = got.iter().filter(|g| !want.contains(g)).take(2).collect();
        let mut dup = got.clone();
        dup.dedup();
        panic!(
            "{what}: {} records, want {}; {} duplicates; missing {missing:?}; extra {extra:?}",
            got.len(),
            want.len(),
            got.len() - dup.len()
        );
    }
}

fn collect(io: &mut Io) -> Result<Summary, Error> {
    io.run(|io| run(io))
}

#[test]
fn api_2_pages_every_type_and_audit_to_the_end_then_only_new() {
    let t = tenant(40);
    let mut io = v2(&t, BOTH);
    let summary = collect(&mut io).unwrap();
    assert!(summary.caught_up, "{summary:?}");
    same(delivered(&io), expected(&t, "2.0"), "every record once, byte-exact");
    assert_eq!(t.oauth.issued(), 1, "one token per run");
    // The downloads went to the pre-signed URLs without credentials; the API calls had them.
    let (blobs, api): (Vec<_>, Vec<_>) = io.requests.iter().partition(|r| r.url.contains("/blob/"));
    assert!(blobs.len() >= 3 * 40 / 7, "{} downloads", blobs.len());
    assert!(blobs.iter().all(|r| r.request.header_value("authorization").is_none()));
    assert!(
        api.iter()
            .filter(|r| !r.url.ends_with("/oauth/token"))
            .all(|r| r.request.header_value("authorization").is_some())
    );

    for s in ["receipt", "attachment protect", "audit"] {
        t.lock().add(s, 9);
    }
    let before = io.delivered.len();
    collect(&mut io).unwrap();
    assert_eq!(io.delivered.len() - before, 27);
    same(delivered(&io), expected(&t, "2.0"), "");
    let before = io.delivered.len();
    collect(&mut io).unwrap();
    assert_eq!(io.delivered.len(), before, "nothing new, nothing delivered");
}

#[test]
fn api_1_pages_siem_files_and_audit_with_signed_calls() {
    let t = tenant(40);
    let mut io = v1(&t, BOTH);
    let summary = collect(&mut io).unwrap();
    assert!(summary.caught_up, "{summary:?}");
    same(delivered(&io), expected(&t, "1.0"), "");
    assert!(io.requests.iter().all(|r| r.request.header_value("authorization").is_some_and(|a| a.starts_with("MC "))));
    t.lock().add("siem", 10);
    t.lock().add("audit", 3);
    collect(&mut io).unwrap();
    same(delivered(&io), expected(&t, "1.0"), "");
    let checkpoint: serde_json::Value = serde_json::from_str(io.committed.as_deref().unwrap()).unwrap();
    assert!(checkpoint["streams"]["siem"]["cursor"].is_string(), "{checkpoint}");
}

#[test]
fn exactly_once_under_a_crash_at_every_step() {
    for api in ["2.0", "1.0"] {
        // Each crash point gets a fresh tenant of the same shape; `check` sees the last one.
        let tenants = std::cell::RefCell::new(Vec::new());
        let make = || {
            let t = tenant(30);
            let io = if api == "2.0" { v2(&t, BOTH) } else { v1(&t, BOTH) };
            tenants.borrow_mut().push(t);
            io
        };
        let points = crash_everywhere(
            make,
            |io: &mut Io| run(io),
            |io, crash| {
                let tenants = tenants.borrow();
                same(delivered(io), expected(tenants.last().unwrap(), api), &format!("api {api}, {crash:?}"));
            },
        );
        assert!(points >= 15, "{points} crash points");
    }
}

#[test]
fn expired_download_urls_ask_for_the_page_again() {
    let t = tenant(30);
    t.lock().expire_urls(2);
    let mut io = v2(&t, "siem");
    collect(&mut io).unwrap();
    let mut all: Vec<String> =
        ["receipt", "url protect", "attachment protect"].iter().flat_map(|s| t.records(s)).collect();
    all.sort();
    same(delivered(&io), all, "after expired URLs");
    assert_eq!(io.logged("the URL expired"), 2);

    // URLs that keep expiring fail the stream, cursor where it was; the next run recovers.
    let t = tenant(5);
    t.lock().expire_urls(3);
    let mut io = v2(&t, "siem").setting("siem_types", "receipt");
    let e = collect(&mut io).unwrap_err();
    assert!(matches!(&e, Error::Vendor(m) if m.contains("kept expiring")), "{e}");
    assert!(io.delivered.is_empty() && io.committed.is_none());
    collect(&mut io).unwrap();
    assert_eq!(io.delivered, t.records("receipt"));
}

#[test]
fn bad_credentials_are_one_auth_error_with_the_cursor_unchanged() {
    for api in ["2.0", "1.0"] {
        let t = tenant(10);
        let mut io = if api == "2.0" { v2(&t, BOTH) } else { v1(&t, BOTH) };
        collect(&mut io).unwrap();
        let (cursor, count) = (io.committed.clone(), io.delivered.len());
        t.lock().add("audit", 5);
        let (name, bad) = match api {
            "2.0" => ("client_secret", "S3CRET-wrong-client-secret"),
            _ => ("secret_key", "d3JvbmctaG1hYy1rZXk="),
        };
        io.secrets.insert(name.into(), bad.into());
        let e = collect(&mut io).unwrap_err();
        assert_eq!(e.kind(), "auth", "{api}: {e}");
        assert!(e.to_string().contains("401"), "{e}");
        assert_eq!((io.committed.clone(), io.delivered.len()), (cursor, count), "{api}: nothing moved");
        let c = t.lock().config().clone();
        for secret in [bad, &c.client_secret, &c.secret_key, &c.app_key] {
            assert!(!e.to_string().contains(secret));
            assert!(io.logs.iter().all(|(_, l)| !l.contains(secret)));
            assert!(io.commit_log.iter().all(|l| !l.contains(secret)));
        }
    }
}

#[test]
fn a_refused_token_is_renewed_once_and_the_run_goes_on() {
    let t = tenant(20);
    let mut io = v2(&t, "siem");
    let expired = Response::json(401, r#"{"fail":[{"code":"token_expired","message":"The token has expired"}]}"#);
    io.server.fail_next("/siem/v1/batch", expired.clone());
    collect(&mut io).unwrap();
    assert_eq!((t.oauth.issued(), io.logged("authenticating again")), (2, 1));
    // Refused again after the new token: the stream fails as `auth`, the others go on.
    io.server.fail_next("/siem/v1/batch", expired.clone());
    io.server.fail_next("/siem/v1/batch", expired);
    t.lock().add("receipt", 3);
    t.lock().add("url protect", 3);
    let e = collect(&mut io).unwrap_err();
    assert!(matches!(&e, Error::Auth(m) if m.contains("receipt") && m.contains("token_expired")), "{e}");
    assert!(io.delivered.iter().filter(|r| r.contains("url protect")).count() == 23);
}

#[test]
fn binding_expiry_and_a_stale_siem_token_tell_the_operator_what_to_do() {
    let t = tenant(5);
    let mut io = v1(&t, "siem");
    t.lock().expire_binding(true);
    let e = collect(&mut io).unwrap_err();
    assert!(matches!(&e, Error::Auth(m) if m.contains("418") && m.contains("new access key")), "{e}");
    t.lock().expire_binding(false);
    collect(&mut io).unwrap();

    let stale = r#"{"version":1,"streams":{"siem":{"cursor":"bm90LWEtdG9rZW4="}}}"#;
    io.committed = Some(stale.into());
    let e = collect(&mut io).unwrap_err();
    assert!(matches!(&e, Error::Config(m) if m.contains("err_audit_siem_invalid_token") && m.contains("reset")), "{e}");
    assert_eq!(io.committed.as_deref(), Some(stale));
}

#[test]
fn rate_limits_wait_the_reset_in_milliseconds_and_server_errors_fail_only_their_stream() {
    let t = tenant(10);
    let mut io = v1(&t, BOTH);
    t.lock().rate_limit(&[1500, 2500]);
    collect(&mut io).unwrap();
    assert!(io.sleeps.contains(&Duration::from_millis(1500)) && io.sleeps.contains(&Duration::from_millis(2500)));
    same(delivered(&io), expected(&t, "1.0"), "");

    let t = tenant(10);
    let mut io = v2(&t, BOTH);
    io.server.fail_next("/siem/v1/batch", Response::json(500, r#"{"error":{"code":"500","message":"boom"}}"#));
    let e = collect(&mut io).unwrap_err();
    assert!(matches!(&e, Error::Vendor(m) if m.contains("receipt") && m.contains("boom")), "{e}");
    assert_eq!(io.delivered.len(), 30, "url protect, attachment protect and audit went on");
    let retry = Response::json(429, r#"{"fail":[{"code":"rate","message":"slow down"}]}"#).header("retry-after", 2);
    io.server.fail_next("/siem/v1/batch", retry);
    collect(&mut io).unwrap();
    assert!(io.sleeps.contains(&Duration::from_secs(2)));
    same(delivered(&io), expected(&t, "2.0"), "");
}

#[test]
fn audit_events_that_shift_a_window_while_it_is_paged_are_not_delivered_twice() {
    let t = tenant(0);
    t.lock().add("audit", 60);
    let mut io = v2(&t, "audit");
    // The collector's clock runs ahead: events the tenant stamps later still fall in its window.
    io.now_ms += 5_000;
    io.crash_next_run(Crash::AtCommit(2));
    let _ = collect(&mut io);
    assert_eq!(io.delivered.len(), 25, "one page delivered before the crash");
    t.lock().add("audit", 40); // at the front of the window: the rest moves down by more than a page
    collect(&mut io).unwrap();
    let mut unique = delivered(&io);
    unique.dedup();
    assert_eq!(unique.len(), io.delivered.len(), "the window ends without repeating what moved down");
    collect(&mut io).unwrap(); // the next window overlaps the last: the 40 come now
    let mut all = t.records("audit");
    all.sort();
    same(delivered(&io), all, "");

    // The next window starts at the last end, inclusive: events of that second come once.
    t.lock().add("audit", 4);
    collect(&mut io).unwrap();
    collect(&mut io).unwrap();
    let mut all = t.records("audit");
    all.sort();
    same(delivered(&io), all, "");
}

#[test]
fn a_run_that_finishes_an_earlier_window_goes_on_to_what_came_since() {
    let t = tenant(0);
    t.lock().add("audit", 30);
    let mut io = v2(&t, "audit");
    io.crash_next_run(Crash::AtCommit(2));
    let _ = collect(&mut io);
    assert_eq!(io.delivered.len(), 25, "a window of 30 pinned, its first page delivered");
    std::thread::sleep(Duration::from_millis(1_100)); // the tenant stamps events in whole seconds
    t.lock().add("audit", 10);
    io.now_ms = now_ms() + 6_000;
    collect(&mut io).unwrap();
    assert_eq!(io.delivered.len(), 40, "the rest of the old window, then the 10 that came after it");
}

#[test]
fn a_window_this_run_pinned_ends_the_run_caught_up_however_long_it_took() {
    let t = tenant(0);
    t.lock().add("audit", 60);
    let mut io = v2(&t, "audit");
    io.request_ms = 3_000; // a slow tenant: the window ends 12 s after it was pinned
    let summary = collect(&mut io).unwrap();
    assert_eq!(io.delivered.len(), 60);
    assert!(summary.caught_up, "{summary:?}: no new window that would read the same overlap again");
    let audit_calls = io.requests.iter().filter(|r| r.url.ends_with("/get-audit-events")).count();
    assert_eq!(audit_calls, 4, "three pages and the window's empty end");
}

#[test]
fn a_line_that_a_later_runs_page_repeats_is_delivered_once() {
    // The mock starts each batch file with the last line of the file before (Mimecast repeats events).
    let t = tenant(7);
    let mut io = v2(&t, r#"["siem"]"#).setting("siem_types", r#"["receipt"]"#);
    assert!(collect(&mut io).unwrap().caught_up);
    t.lock().add("receipt", 7);
    assert!(collect(&mut io).unwrap().caught_up);
    let mut want = t.records("receipt");
    want.sort();
    same(delivered(&io), want, "the first run's last line, repeated by the second run's file, is dropped");
}
