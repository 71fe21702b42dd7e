//! Netskope alerts collector (real component) → siphon host → local sink,
//! against the mock dataexport iterator on 127.0.0.1.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use siphon::config::Settings;
use siphon::egress::Network;
use siphon::engine::SiphonEngine;
use siphon::services::Runtime;
use siphon::sink::local::LocalDirSink;
use siphon::sink::{Object, Sink, SinkError};
use siphon::state::local::LocalStateStore;
use siphon_tests::mock::netskope::{Fault, MockConfig, MockNetskope};

use crate::common::{Install, TOKEN, guest, id_of, run_once};

async fn mock(page_size: usize, wait_time: u64) -> MockNetskope {
    MockNetskope::start(MockConfig { token: TOKEN.to_owned(), page_size, wait_time, ..MockConfig::default() })
        .await
        .expect("mock starts")
}

fn source(m: &MockNetskope, types: &str, full_page: usize, extra: &str) -> String {
    format!(
        r#"[sources.netskope]
collector = "{wasm}"
schedule = "0 * * * *"
allowed_hosts = ["{authority}"]
allow_http = true
settings = {{ base_url = "{base}", alert_types = "{types}", index = "e2e", full_page = {full_page}{extra} }}
secrets = {{ api_token = {{ file = "token.txt" }} }}
"#,
        wasm = guest("netskope_alerts").display(),
        authority = m.authority(),
        base = m.base_url(),
    )
}

/// Every id of `types` exactly once, and nothing else.
fn assert_exactly_once(install: &Install, m: &MockNetskope, types: &[&str]) -> usize {
    let lines = install.sink_lines();
    let mut seen = HashSet::new();
    for line in &lines {
        assert!(seen.insert(id_of(line)), "duplicate record {line}");
    }
    let expected: HashSet<String> = types.iter().flat_map(|t| m.ids(t)).collect();
    assert_eq!(seen, expected, "sink ids differ from the mock's ids");
    lines.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_through_several_types_byte_exact_then_collects_only_new_alerts() {
    let m = mock(100, 0).await;
    m.add_alerts("dlp", 250);
    m.add_alerts("malware", 120);
    let install = Install::new(TOKEN);
    let config = install.config(&source(&m, "dlp,malware,policy", 100, ""));
    let runtime = install.runtime(&config).await;

    let report = run_once(&runtime, "netskope").await;
    assert!(report.ok(), "{:?}", report.outcome);
    assert_eq!(assert_exactly_once(&install, &m, &["dlp", "malware"]), 370);
    assert_eq!(report.delivered.records, 370);

    // Records reach the sink byte for byte as the vendor sent them
    // (u64 ids above 2^53, non-ASCII text, key order).
    let sink: HashSet<String> = install.sink_lines().into_iter().collect();
    for t in ["dlp", "malware"] {
        for record in m.records(t) {
            assert!(sink.contains(&record), "record changed on the way: {record}");
        }
    }
    assert!(sink.iter().any(|l| l.contains("josé") || l.contains("été") || l.contains("年度")));

    // Paging: the first call per type starts the iterator at an epoch, then `next`.
    let ops: Vec<(String, String)> = m
        .requests()
        .iter()
        .map(|r| (r.path.rsplit('/').next().unwrap_or("").to_owned(), r.param("operation").unwrap_or("").to_owned()))
        .collect();
    let dlp_ops: Vec<&str> = ops.iter().filter(|(t, _)| t == "dlp").map(|(_, o)| o.as_str()).collect();
    assert!(dlp_ops[0].parse::<u64>().is_ok(), "first dlp call starts at an epoch: {dlp_ops:?}");
    assert_eq!(&dlp_ops[1..], ["next", "next"], "250 alerts at 100 per page");
    assert!(m.requests().iter().all(|r| r.header("netskope-api-token") == Some(TOKEN)));

    // Objects follow <prefix>/<yyyy>/<mm>/<dd>/<source>-<timestamp>-<seq>.ndjson
    for name in install.objects() {
        let parts: Vec<&str> = name.split('/').collect();
        assert_eq!(parts.len(), 5, "{name}");
        assert_eq!(parts[0], "netskope");
        assert!(parts[4].starts_with("netskope-") && parts[4].ends_with(".ndjson"), "{name}");
    }

    // Second run: only the new alerts.
    let cursor_before = install.cursor("netskope").expect("cursor after first run");
    m.add_alerts("dlp", 30);
    m.add_alerts("policy", 7);
    let report = run_once(&runtime, "netskope").await;
    assert!(report.ok(), "{:?}", report.outcome);
    assert_eq!(report.delivered.records, 37);
    assert_eq!(assert_exactly_once(&install, &m, &["dlp", "malware", "policy"]), 407);
    assert_ne!(install.cursor("netskope"), Some(cursor_before));
    let second_run_ops: Vec<String> =
        m.requests().iter().rev().take(3).filter_map(|r| r.param("operation").map(str::to_owned)).collect();
    assert!(second_run_ops.iter().all(|o| o == "next"), "{second_run_ops:?}");
    assert!(m.wait_violations().is_empty(), "{:?}", m.wait_violations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_time_is_honoured_between_pages() {
    let m = mock(40, 1).await;
    m.add_alerts("dlp", 100);
    let install = Install::new(TOKEN);
    let config = install.config(&source(&m, "dlp", 40, ""));
    let runtime = install.runtime(&config).await;
    let report = run_once(&runtime, "netskope").await;
    assert!(report.ok(), "{:?}", report.outcome);
    assert_exactly_once(&install, &m, &["dlp"]);
    let requests = m.requests();
    assert_eq!(requests.len(), 3, "three pages of 40, 40, 20");
    for pair in requests.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(gap >= Duration::from_millis(950), "next call after {gap:?}, wait_time is 1 s");
    }
    assert!(m.wait_violations().is_empty(), "{:?}", m.wait_violations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_requests_are_retried_after_retry_after() {
    let m = mock(100, 0).await;
    m.add_alerts("dlp", 30);
    m.fail_next(2, Fault::TooManyRequests { retry_after_secs: 1 });
    let install = Install::new(TOKEN);
    let config = install.config(&source(&m, "dlp", 100, ""));
    let runtime = install.runtime(&config).await;
    let report = run_once(&runtime, "netskope").await;
    assert!(report.ok(), "{:?}", report.outcome);
    assert_exactly_once(&install, &m, &["dlp"]);
    let statuses: Vec<u16> = m.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 429, 200]);
    let r = m.requests();
    assert!(r[1].at.duration_since(r[0].at) >= Duration::from_millis(950), "Retry-After: 1 honoured");
    assert_eq!(r[0].param("operation"), r[2].param("operation"), "the same request is retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_is_a_clear_auth_error_and_keeps_the_checkpoint() {
    let m = mock(100, 0).await;
    m.add_alerts("dlp", 10);
    let install = Install::new(TOKEN);
    let config = install.config(&source(&m, "dlp", 100, ""));
    let report = run_once(&install.runtime(&config).await, "netskope").await;
    assert!(report.ok(), "{:?}", report.outcome);
    let state_before = std::fs::read_to_string(install.path("state/netskope.json")).expect("state");
    let cursor_before = install.cursor("netskope");

    m.add_alerts("dlp", 5);
    std::fs::write(install.path("token.txt"), "revoked-token-000\n").expect("token");
    let report = run_once(&install.runtime(&config).await, "netskope").await;
    let err = report.outcome.as_ref().expect_err("a revoked token fails the run");
    let text = err.to_string();
    assert_eq!(err.kind(), "auth", "{text}");
    assert!(text.contains("403") && text.contains("dlp"), "the error says what was refused: {text}");
    assert!(!text.contains("revoked-token-000"), "the token is not echoed: {text}");
    assert_eq!(install.cursor("netskope"), cursor_before, "checkpoint unchanged");
    assert_eq!(install.sink_lines().len(), 10);
    drop(state_before);
}

/// A local sink that refuses writes while `broken` is set.
struct Flaky {
    inner: LocalDirSink,
    broken: Arc<AtomicBool>,
}

#[async_trait]
impl Sink for Flaky {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn create(&self, name: &str, object: &Object) -> Result<(), SinkError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(SinkError::Backend("disk full (injected)".to_owned()));
        }
        self.inner.create(name, object).await
    }
    async fn exists(&self, name: &str) -> Result<bool, SinkError> {
        self.inner.exists(name).await
    }
    async fn delete(&self, name: &str) -> Result<(), SinkError> {
        self.inner.delete(name).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delivery_is_resent_and_nothing_is_lost_or_duplicated() {
    let m = mock(100, 0).await;
    m.add_alerts("dlp", 150);
    let install = Install::new(TOKEN);
    let config = install.config(&source(&m, "dlp", 100, ""));
    let settings = Settings::load(&config).expect("config");
    let broken = Arc::new(AtomicBool::new(false));
    let sink = Flaky { inner: LocalDirSink::open(&install.path("out")).expect("sink"), broken: broken.clone() };
    let state = LocalStateStore::open(&install.path("state")).expect("state");
    let engine = SiphonEngine::new(Some(&settings.engine.cache_dir)).expect("engine");
    let mut runtime = Runtime::new(engine, Arc::new(sink), Arc::new(state), settings.sink.clone());
    runtime.add_source(settings.sources["netskope"].clone(), Arc::new(Network)).await.expect("source");

    // First page delivered, then the sink breaks while the second page is
    // being delivered: the page was fetched with `next` (consumed on the
    // vendor side) but never reached the sink.
    let report = run_once(&runtime, "netskope").await;
    assert!(report.ok());
    assert_eq!(install.sink_lines().len(), 150);
    m.add_alerts("dlp", 120);
    broken.store(true, Ordering::SeqCst);
    let report = run_once(&runtime, "netskope").await;
    assert!(!report.ok(), "delivery failure fails the run");
    assert!(report.outcome.as_ref().unwrap_err().to_string().contains("disk full"), "{:?}", report.outcome);
    assert_eq!(report.discarded, 0, "the failed commit's records were never made durable");
    assert_eq!(install.sink_lines().len(), 150);
    let fetched = m.requests().iter().filter(|r| r.status == 200).count();

    // Repaired: the next run asks for the lost page again and continues.
    broken.store(false, Ordering::SeqCst);
    let report = run_once(&runtime, "netskope").await;
    assert!(report.ok(), "{:?}", report.outcome);
    let ops: Vec<String> =
        m.requests()[fetched..].iter().filter_map(|r| r.param("operation").map(str::to_owned)).collect();
    assert_eq!(ops.first().map(String::as_str), Some("resend"), "{ops:?}");
    assert_eq!(assert_exactly_once(&install, &m, &["dlp"]), 270);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_error_on_a_consume_once_call_is_not_retried_blindly_and_the_next_run_resends() {
    let m = mock(100, 0).await;
    m.add_alerts("dlp", 60);
    let install = Install::new(TOKEN);
    let config = install.config(&source(&m, "dlp", 100, ""));
    let runtime = install.runtime(&config).await;
    assert!(run_once(&runtime, "netskope").await.ok());

    // A 503 may come after the vendor served (and consumed) the page, so the
    // host must not send `next` again: a retry would skip that page.
    m.add_alerts("dlp", 40);
    m.fail_next(1, Fault::ServiceUnavailable);
    let before = m.requests().len();
    let report = run_once(&runtime, "netskope").await;
    assert!(!report.ok(), "a 5xx on `next` ends the run");
    let calls: Vec<u16> = m.requests()[before..].iter().map(|r| r.status).collect();
    assert_eq!(calls, [503], "no blind retry of a consume-once call");
    assert!(m.requests().iter().all(|r| r.header("siphon-retry").is_none()), "the host strips its own header");

    let before = m.requests().len();
    let report = run_once(&runtime, "netskope").await;
    assert!(report.ok(), "{:?}", report.outcome);
    let ops: Vec<String> =
        m.requests()[before..].iter().filter_map(|r| r.param("operation").map(str::to_owned)).collect();
    assert_eq!(ops.first().map(String::as_str), Some("resend"), "{ops:?}");
    assert_eq!(assert_exactly_once(&install, &m, &["dlp"]), 100);
}
