//! Whole runs against the shared mock tenant (`siphon_tests::mock::maas360`) behind
//! `FakeIo`: settings, paging every list to its end, second runs, exactly-once under a crash at
//! every step, bad credentials, token expiry and refresh, 429 and 5xx.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use siphon_sdk::http::{Request, Response};
use siphon_sdk::testing::{Crash, FakeIo, START_MS, Server, crash_everywhere};
use siphon_sdk::{Collector, Error};
use siphon_tests::mock::Streams;
use siphon_tests::mock::fake::Fake;
use siphon_tests::mock::http as mock_http;
use siphon_tests::mock::maas360::{self, Clock, MockConfig, STREAMS, key_of};

use super::*;

pub(crate) const BASE: &str = "https://services.m3.maas360.com";
const PASSWORD: &str = "s3cret-pass";
const ALL: &str = r#"["devices","action_history","admin_changes","admin_logins","compliance_events"]"#;

/// The mock tenant, shared by the test and the `FakeIo` server.
pub(crate) type Shared = Arc<Mutex<maas360::Tenant>>;

/// The tenant, locked.
pub(crate) fn m(t: &Shared) -> MutexGuard<'_, maas360::Tenant> {
    t.lock().unwrap_or_else(|p| p.into_inner())
}

type Handler = Box<dyn Fn(&mock_http::Request) -> mock_http::Response>;

/// The mock tenant behind the vendor kit's `Fake` (faults first), and the tenant itself for
/// the checks after a crash.
pub(crate) struct Tenant {
    pub tenant: Shared,
    pub fake: Fake<Handler>,
}

impl Server for Tenant {
    fn handle(&mut self, r: &Request) -> Response {
        self.fake.handle(r)
    }
}

/// A tenant on a manual clock at `START_MS`, `n` records in every list.
pub(crate) fn tenant(n: usize) -> Shared {
    let mut t = maas360::Tenant::new(MockConfig::default(), Clock::manual(START_MS));
    for s in STREAMS {
        t.add(s, n);
    }
    Arc::new(Mutex::new(t))
}

/// A source reading all five lists of `t`, 25 records a page.
pub(crate) fn io(t: &Shared) -> FakeIo<Tenant> {
    let shared = Arc::clone(t);
    let handler: Handler = Box::new(move |r| m(&shared).handle(r));
    FakeIo::new(Tenant { tenant: Arc::clone(t), fake: Fake::new(handler) })
        .setting("base_url", BASE)
        .setting("billing_id", "30012345")
        .setting("app_id", "com.30012345.api")
        .setting("user_name", "svc_siem")
        .setting("streams", ALL)
        .setting("page_size", "25")
        .secret("password", PASSWORD)
        .secret("app_access_key", "Xk29fQ7pLm")
}

/// One run, as the host does it.
pub(crate) fn go(io: &mut FakeIo<Tenant>) -> Result<siphon_sdk::Summary, Error> {
    run(io)
}

/// Delivered keys per stream (as the mock keys them), in delivery order.
fn delivered(io: &FakeIo<Tenant>) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in &io.delivered {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON record");
        let kind = KINDS.iter().find(|k| v["_maas360_record_type"] == k.record_type).expect("a tagged record");
        out.entry(kind.name.to_string()).or_default().push(key_of(kind.name, line));
    }
    out
}

/// Every stream delivered each of the tenant's records exactly once.
fn assert_exactly_once(io: &FakeIo<Tenant>, t: &Shared, why: &str) {
    let got = delivered(io);
    for s in STREAMS {
        let mut want = m(t).keys(s);
        let mut have = got.get(s).cloned().unwrap_or_default();
        want.sort();
        have.sort();
        assert_eq!(have.len(), want.len(), "{why}: {s}: {} delivered, {} expected", have.len(), want.len());
        assert_eq!(have, want, "{why}: {s}");
    }
}

#[test]
fn info_lists_every_setting_with_its_default_and_both_secrets() {
    let info = Maas360::info();
    assert_eq!(info.name, "maas360");
    let get = |n: &str| info.settings.iter().find(|s| s.name == n).unwrap_or_else(|| panic!("{n}"));
    for required in ["base_url", "billing_id", "app_id", "user_name"] {
        assert!(get(required).required, "{required}");
    }
    assert_eq!(get("platform_id").default_value.as_deref(), Some("3"));
    assert_eq!(get("app_version").default_value.as_deref(), Some("1.0"));
    assert_eq!(get("page_size").default_value.as_deref(), Some("250"));
    assert_eq!(get("lookback_hours").default_value.as_deref(), Some("24"));
    assert_eq!(get("max_pages_per_run").default_value.as_deref(), Some("200"));
    assert!(
        get("streams")
            .default_value
            .as_deref()
            .is_some_and(|d| d.contains("admin_logins") && !d.contains("compliance"))
    );
    for secret in ["app_access_key", "password"] {
        assert!(get(secret).secret && get(secret).required, "{secret}");
    }
}

#[test]
fn each_bad_setting_is_a_config_error_naming_its_key() {
    let t = tenant(0);
    let cases = [
        ("page_size", "300"),
        ("page_size", "0"),
        ("streams", "devices,bogus"),
        ("base_url", "services.m3.maas360.com"),
        ("billing_id", "300/12"),
        ("lookback_hours", "a day"),
        ("max_pages_per_run", "0"),
    ];
    for (key, value) in cases {
        let mut io = io(&t).setting(key, value);
        let e = io.run(go).expect_err(value);
        assert!(matches!(e, Error::Config(_)) && e.to_string().contains(&format!("`{key}`")), "{key}={value}: {e}");
        assert_eq!(io.sent(), 0, "nothing is sent with a bad setting");
    }
    for key in ["billing_id", "app_id", "user_name"] {
        let mut io = io(&t);
        io.settings.remove(key);
        assert!(io.run(go).unwrap_err().to_string().contains(&format!("setting `{key}` is required")));
    }
    for key in ["password", "app_access_key"] {
        let mut io = io(&t);
        io.secrets.remove(key);
        assert!(io.run(go).unwrap_err().to_string().contains(&format!("secret `{key}` is required")));
    }
    for size in ["25", "50", "100", "200", "250"] {
        let mut io = io(&t).setting("page_size", size);
        assert!(io.run(go).is_ok(), "{size}");
    }
}

#[test]
fn validate_names_every_problem_of_the_source_at_once() {
    let t = tenant(0);
    let mut io = io(&t).setting("page_size", "300").setting("streams", "devices, audit");
    io.secrets.remove("password");
    assert_eq!(
        siphon_sdk::config::problems(&DECLARED, &io),
        [
            r#"setting `streams` = "devices, audit" is invalid: `audit` is not one of devices, action_history, admin_changes, admin_logins, compliance_events"#,
            r#"setting `page_size` = "300" is invalid: must be one of 25, 50, 100, 200, 250"#,
            "secret `password` is required",
        ]
    );
    assert!(siphon_sdk::config::problems(&DECLARED, &super::run_tests::io(&t)).is_empty());
}

#[test]
fn pages_every_list_to_its_end_then_a_second_run_collects_only_new_records() {
    let t = tenant(60);
    let mut io = io(&t);
    let summary = io.run(go).expect("first run");
    assert!(summary.caught_up, "{summary:?}");
    assert_exactly_once(&io, &t, "first run");
    let first = &io.delivered[0];
    assert!(first.starts_with(r#"{"_maas360_record_type":"device","maas360DeviceID":"#), "{first}");
    assert!(m(&t).records("devices").iter().any(|r| first.ends_with(&r[1..])), "byte-exact after the tag: {first}");
    assert_eq!(m(&t).auth_stats().logins, 1, "one login per run");

    let (sent, delivered) = (io.sent(), io.delivered.len());
    io.now_ms += 60_000;
    m(&t).clock().set(io.now_ms);
    for s in STREAMS {
        m(&t).add(s, 30);
    }
    io.run(go).expect("second run");
    assert_eq!(io.delivered.len() - delivered, 5 * 30, "only the new records");
    assert_exactly_once(&io, &t, "second run");
    assert!(io.sent() - sent < 30, "no re-read of old pages: {} requests", io.sent() - sent);

    io.now_ms += 60_000;
    m(&t).clock().set(io.now_ms);
    let delivered = io.delivered.len();
    io.run(go).expect("idle run");
    assert_eq!(io.delivered.len(), delivered, "an idle tenant gives nothing");
}

#[test]
fn exactly_once_with_a_crash_at_every_commit_and_around_every_request() {
    let make = || {
        let t = tenant(40);
        let mut io = io(&t);
        io.run(go).expect("first run");
        io.now_ms += 60_000;
        m(&t).clock().set(io.now_ms);
        for s in STREAMS {
            m(&t).add(s, 30);
        }
        // Devices that report while we page move to the end of the list.
        m(&t).report_again(&["ApplC39XK000003".into(), "ApplC39XK000017".into()]);
        io
    };
    let tried = crash_everywhere(make, go, |io, crash| {
        assert_exactly_once(io, &io.server.tenant, &format!("{crash:?}"));
        assert!(!io.committed.as_deref().unwrap_or_default().contains("mtok-"), "no token in the checkpoint");
    });
    assert!(tried > 60, "{tried} crash points");
}

#[test]
fn a_wrong_password_is_one_auth_error_naming_the_billing_id_and_leaves_the_cursor() {
    let t = tenant(30);
    let mut io = io(&t);
    io.run(go).expect("a good run first");
    let before = io.committed.clone();
    let sent = io.sent();
    io.secrets.insert("password".into(), "wrong-password".into());
    m(&t).clock().set(io.now_ms + 60_000);
    m(&t).add("admin_logins", 3);
    let e = io.run(go).expect_err("refused");
    assert!(matches!(e, Error::Auth(_)), "{e}");
    let text = e.to_string();
    assert!(text.contains("billing id 30012345") && text.contains("errorCode 1002"), "{text}");
    assert!(!text.contains("wrong-password") && !text.contains(PASSWORD), "{text}");
    assert_eq!(io.sent() - sent, 1, "the login only; no data call without a token");
    assert_eq!(io.committed, before, "cursor unchanged");
    for (_, line) in &io.logs {
        assert!(!line.contains("wrong-password") && !line.contains("mtok-") && !line.contains("mref-"), "{line}");
    }
}

#[test]
fn an_expired_token_is_refreshed_with_the_rotating_refresh_token_and_a_refused_refresh_logs_in_again() {
    let t = tenant(60);
    m(&t).expire_tokens_after(3, false);
    let mut io = io(&t);
    io.run(go).expect("run with a forced expiry");
    assert_exactly_once(&io, &t, "forced expiry");
    let stats = m(&t).auth_stats();
    assert_eq!((stats.logins, stats.refreshes), (1, 1), "{stats:?}");
    assert_eq!(stats.unauthorized, 1, "{stats:?}");
    let refresh = io.requests.iter().find(|s| s.url.contains("/refreshToken/")).expect("a refresh");
    let body = String::from_utf8_lossy(refresh.request.body_bytes().unwrap_or_default()).to_string();
    assert!(body.contains("mref-") && !body.contains(PASSWORD), "{body}");

    // Refresh tokens revoked too: the refresh is refused (HTTP 200 + errorCode) → a new login.
    io.now_ms += 60_000;
    m(&t).clock().set(io.now_ms);
    m(&t).add("devices", 40);
    m(&t).expire_tokens_after(2, true);
    io.run(go).expect("refused refresh → new login");
    assert_exactly_once(&io, &t, "refused refresh");
    let after = m(&t).auth_stats();
    assert_eq!((after.logins, after.refreshes, after.refused), (3, 1, 1), "{after:?}");
    assert_eq!(io.logged("Token refresh failed"), 1);
}

#[test]
fn tokens_are_renewed_ahead_of_their_sixty_minutes() {
    let t = tenant(100);
    let mut io = io(&t);
    io.request_ms = 20 * 60_000; // every call takes 20 minutes
    io.run(go).expect("a slow run");
    let stats = m(&t).auth_stats();
    assert_eq!(stats.logins, 1, "{stats:?}");
    assert!(stats.refreshes >= 2, "renewed before expiry: {stats:?}");
    // Every data call carries a token issued less than 55 minutes before.
    let mut issued = 0;
    for sent in &io.requests {
        if sent.url.contains("/auth-apis/") {
            issued = sent.at_ms + io.request_ms;
        } else {
            assert!(sent.at_ms - issued <= TOKEN_LIFETIME_MS - 5 * 60_000, "{} used an old token", sent.url);
        }
    }
}

#[test]
fn rate_limits_are_waited_out_and_a_server_error_fails_only_its_stream() {
    let t = tenant(30);
    let mut io = io(&t);
    io.server.fake.fail_next("/device-apis/", mock_http::Response::json(429, "{}").header("retry-after", 7));
    io.run(go).expect("a 429 is retried");
    assert!(io.sleeps.contains(&std::time::Duration::from_secs(7)), "{:?}", io.sleeps);
    assert_exactly_once(&io, &t, "429");

    io.now_ms += 60_000;
    m(&t).clock().set(io.now_ms);
    for s in STREAMS {
        m(&t).add(s, 5);
    }
    let before = io.committed.clone().unwrap_or_default();
    io.server.fake.fail_next("/device-apis/", mock_http::Response::json(500, r#"{"errorDesc":"Internal error"}"#));
    let e = io.run(go).expect_err("devices fails");
    assert!(e.to_string().contains("`devices`") && e.to_string().contains("1 of 5 streams failed"), "{e}");
    let cp: serde_json::Value = serde_json::from_str(io.committed.as_deref().unwrap_or_default()).unwrap();
    let old: serde_json::Value = serde_json::from_str(&before).unwrap();
    assert_eq!(cp["streams"]["devices"], old["streams"]["devices"], "the failed stream keeps its cursor");
    assert_ne!(cp["streams"]["admin_logins"], old["streams"]["admin_logins"], "the others advanced");
    io.run(go).expect("the next run catches up");
    assert_exactly_once(&io, &t, "after a 500");
}

#[test]
fn admin_audit_records_written_late_are_collected_once_through_the_overlap() {
    let t = tenant(30);
    let mut io = io(&t);
    io.run(go).expect("first run");
    for late in [20_000, 45_000, 120_000, OVERLAP_MS] {
        io.now_ms += 20_000;
        m(&t).clock().set(io.now_ms);
        m(&t).add("admin_logins", 2);
        // Stamped before the last run's `toDate`, written only now (vendor-apis.md §1.5).
        m(&t).add_late("admin_logins", 2, late);
        m(&t).add_late("admin_changes", 1, late);
        io.run(go).expect("run");
        assert_exactly_once(&io, &t, &format!("{late} ms late"));
    }
    // Written late while a sweep pages: records move down a page and come up again.
    io.now_ms += 20_000;
    m(&t).clock().set(io.now_ms);
    m(&t).add("admin_changes", 60);
    io.crash_next_run(Crash::AtCommit(2));
    assert!(io.run(go).is_err());
    m(&t).add_late("admin_changes", 7, 1_000);
    io.run(go).expect("resume");
    assert_exactly_once(&io, &t, "late writes during a sweep");
    let cp: serde_json::Value = serde_json::from_str(io.committed.as_deref().unwrap_or_default()).unwrap();
    let c = &cp["streams"]["admin_changes"]["cursor"];
    let (mark, seen) = (c["mark"]["at"].as_u64().unwrap(), c["seen"].as_array().unwrap());
    assert!(!seen.is_empty() && seen.iter().all(|s| s[0].as_u64().unwrap() + OVERLAP_MS >= mark), "{c}");
}

#[test]
fn action_times_without_an_offset_are_read_as_utc() {
    // Action history's fields are not public (§1.8): a time may look like device search's `lastReported`.
    let t = tenant(0);
    let mut io = io(&t).setting("streams", r#"["action_history"]"#);
    let naive = |ago: u64| siphon_sdk::data::time::format_rfc3339(START_MS - ago).trim_end_matches('Z').to_owned();
    let page = format!(
        r#"{{"actionHistory":{{"count":"2","pageNumber":1,"pageSize":25,"action":[{{"actionID":9007199254740995,"actionType":"Locate Device","actionTime":"{}"}},{{"actionID":9007199254740993,"actionType":"Buzz Device","actionTime":"{}"}}]}}}}"#,
        naive(60_000),
        naive(120_000)
    );
    let path = "/device-apis/devices/1.0/searchActionHistory/";
    for run in 0..2 {
        io.server.fake.fail_next(path, mock_http::Response::json(200, page.clone()));
        io.run(go).expect("naive action times");
        assert_eq!(io.delivered.len(), 2, "run {run}: {:?}", io.delivered);
    }
    assert!(io.delivered[0].starts_with(r#"{"_maas360_record_type":"action_history","actionID":9007199254740995,"#));
}

#[test]
fn the_checkpoint_belongs_to_the_billing_id() {
    let t = tenant(10);
    let mut io = io(&t);
    io.run(go).expect("run");
    let cp: serde_json::Value = serde_json::from_str(io.committed.as_deref().unwrap_or_default()).unwrap();
    assert_eq!(cp["version"], CHECKPOINT_VERSION);
    assert_eq!(cp["scope"], "30012345");
    io.committed = Some(io.committed.clone().unwrap_or_default().replace("30012345", "40000001"));
    let delivered = io.delivered.len();
    io.run(go).expect("run");
    assert_eq!(io.logged("Dropped the checkpoint of billing id 40000001"), 1);
    assert_eq!(io.delivered.len() - delivered, 50, "another account's cursor is not ours: start over");
}

#[test]
fn a_crash_right_after_the_first_page_resumes_without_loss_or_repeat() {
    let t = tenant(80);
    let mut io = io(&t);
    io.crash_next_run(Crash::AtCommit(2));
    assert!(io.run(go).is_err());
    io.run(go).expect("recovery");
    assert_exactly_once(&io, &t, "resume");
}

#[test]
fn exactly_once_through_many_random_crashes_with_records_arriving_between_runs() {
    let t = tenant(150);
    let mut io = io(&t);
    let mut seed: u64 = 0x5eed_1234;
    let mut next = |n: u64| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n.max(1)
    };
    for _ in 0..120 {
        // Sometimes the same millisecond again, sometimes later.
        io.now_ms += next(3) * next(1_500);
        m(&t).clock().set(io.now_ms);
        for s in STREAMS {
            let n = next(40) as usize;
            m(&t).add(s, n);
        }
        for s in ["admin_changes", "admin_logins"] {
            let (n, late) = (next(4) as usize, next(OVERLAP_MS));
            m(&t).add_late(s, n, late);
        }
        let crash = match next(3) {
            0 => Crash::AtCommit(1 + next(12) as usize),
            1 => Crash::AfterServer(1 + next(20) as usize),
            _ => Crash::BeforeServer(1 + next(20) as usize),
        };
        io.crash_next_run(crash);
        let _ = io.run(go);
    }
    // Recovery: runs until one finishes with nothing new.
    for _ in 0..10 {
        let before = io.delivered.len();
        if io.run(go).is_ok() && io.delivered.len() == before {
            break;
        }
    }
    assert_exactly_once(&io, &t, "random crashes");
}
