//! What only Netskope does, end to end (the real component, host and local sink against the
//! dataexport iterator mock): one server-side index per deployment paged with an epoch start
//! then `next`, a renamed index reseeded from the last delivered second, `wait_time` honoured,
//! and `resend` after a page was consumed but not delivered. What every vendor does (paging to
//! the end, byte-exact records, bad credentials, fault storms, kills, secrets) is in the vendor
//! suite (`vendor::suite`).

use std::collections::HashMap;
use std::path::PathBuf;
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
use siphon_tests::mock::netskope::{Fault, MockConfig};

use crate::common::{Install, assert_exactly_once, id_of, run_once};
use crate::vendor::{NetskopeTenant, Tenant};

async fn tenant(page_size: usize, wait_time: u64, types: &[&str]) -> NetskopeTenant {
    NetskopeTenant::start(MockConfig { wait_time, ..NetskopeTenant::config(page_size) }, types).await
}

/// An installation and config with the tenant's source `netskope`.
fn install(t: &NetskopeTenant) -> (Install, PathBuf) {
    let install = Install::for_tenant(t);
    let config = install.config(&t.source("netskope").render());
    (install, config)
}

fn sink_ids(install: &Install) -> Vec<String> {
    install.sink_lines().iter().map(|l| id_of(l)).collect()
}

/// `(alert type, operation, status)` of each request from the `from`th on.
fn calls(t: &NetskopeTenant, from: usize) -> Vec<(String, String, u16)> {
    t.mock.requests()[from..]
        .iter()
        .map(|r| {
            let alert_type = r.path.rsplit('/').next().unwrap_or_default().to_owned();
            (alert_type, r.param("operation").unwrap_or_default().to_owned(), r.status)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_type_starts_its_index_at_an_epoch_then_pages_with_next() {
    let t = tenant(100, 0, &["dlp", "malware", "policy"]).await;
    t.mock.add_alerts("dlp", 250);
    t.mock.add_alerts("malware", 120);
    let (install, config) = install(&t);
    let runtime = install.runtime(&config).await;
    let report = run_once(&runtime, "netskope").await;
    assert!(report.ok(), "{:?}", report.outcome);
    assert_eq!(assert_exactly_once(&sink_ids(&install), &t.expected_keys()), 370);

    let dlp: Vec<String> = calls(&t, 0).into_iter().filter(|(t, ..)| t == "dlp").map(|(_, op, _)| op).collect();
    assert!(dlp[0].parse::<u64>().is_ok(), "the first dlp call starts the index at an epoch: {dlp:?}");
    assert_eq!(&dlp[1..], ["next", "next"], "250 alerts at 100 per page");
    let requests = t.mock.requests();
    let token = t.secrets()[0].1.clone();
    assert!(requests.iter().all(|r| r.header("netskope-api-token") == Some(token.as_str())), "the token on every call");
    assert!(requests.iter().all(|r| r.param("index") == Some("e2e")), "one index for every type");

    // The next run goes on with `next` on the same index, for every type.
    let before = requests.len();
    t.mock.add_alerts("dlp", 30);
    t.mock.add_alerts("policy", 7);
    let report = run_once(&runtime, "netskope").await;
    assert!(report.ok(), "{:?}", report.outcome);
    assert_eq!(report.delivered.records, 37);
    assert_exactly_once(&sink_ids(&install), &t.expected_keys());
    assert!(calls(&t, before).iter().all(|(_, op, _)| op == "next"), "{:?}", calls(&t, before));
    assert!(t.mock.wait_violations().is_empty(), "{:?}", t.mock.wait_violations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_index_restarts_at_the_last_delivered_second() {
    let t = tenant(100, 0, &["dlp"]).await;
    t.mock.add_alerts("dlp", 150);
    let (install, config) = install(&t);
    assert!(run_once(&install.runtime(&config).await, "netskope").await.ok());
    let records = t.mock.records("dlp");
    let timestamp = |r: &str| serde_json::from_str::<serde_json::Value>(r).expect("JSON")["timestamp"].as_u64();
    let last_second = records.last().and_then(|r| timestamp(r)).expect("a timestamp");

    // The operator renames the index: the old bookmark is gone for this deployment.
    let fresh = t.mock.add_alerts("dlp", 20);
    let config = install.config(&t.source("netskope").set("index", "renamed").render());
    let before = t.mock.requests().len();
    let report = run_once(&install.runtime(&config).await, "netskope").await;
    assert!(report.ok(), "{:?}", report.outcome);
    let first = &t.mock.requests()[before];
    assert_eq!(first.param("index"), Some("renamed"));
    assert_eq!(first.param("operation"), Some(last_second.to_string().as_str()), "restarted at the last second");
    // Everything new arrives; only records of that last second may come twice.
    let ids = sink_ids(&install);
    assert!(fresh.iter().all(|id| ids.contains(id)), "the new alerts were delivered");
    let mut seen = HashMap::<&str, usize>::new();
    for id in &ids {
        *seen.entry(id.as_str()).or_default() += 1;
    }
    for record in &records {
        let id = id_of(record);
        if timestamp(record) != Some(last_second) {
            assert_eq!(seen.get(id.as_str()), Some(&1), "{record} was delivered again");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_time_is_honoured_between_pages() {
    let t = tenant(40, 1, &["dlp"]).await;
    t.mock.add_alerts("dlp", 100);
    let (install, config) = install(&t);
    let report = run_once(&install.runtime(&config).await, "netskope").await;
    assert!(report.ok(), "{:?}", report.outcome);
    assert_exactly_once(&sink_ids(&install), &t.expected_keys());
    let requests = t.mock.requests();
    assert_eq!(requests.len(), 3, "three pages of 40, 40, 20");
    for pair in requests.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(gap >= Duration::from_millis(950), "next call after {gap:?}, wait_time is 1 s");
    }
    assert!(t.mock.wait_violations().is_empty(), "{:?}", t.mock.wait_violations());
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
async fn a_page_consumed_but_not_delivered_is_resent() {
    let t = tenant(100, 0, &["dlp"]).await;
    t.mock.add_alerts("dlp", 150);
    let (install, config) = install(&t);
    let settings = Settings::load(&config).expect("config");
    let broken = Arc::new(AtomicBool::new(false));
    let sink = Flaky { inner: LocalDirSink::open(&install.path("out")).expect("sink"), broken: broken.clone() };
    let state = LocalStateStore::open(&install.path("state")).expect("state");
    let engine = SiphonEngine::new(Some(&settings.engine.cache_dir)).expect("engine");
    let mut runtime = Runtime::new(engine, Arc::new(sink), Arc::new(state), settings.sink.clone());
    runtime.add_source(settings.sources["netskope"].clone(), Arc::new(Network)).await.expect("source");

    // The first run delivers; then the sink breaks while a page fetched with `next` (consumed on
    // the vendor side) is being delivered.
    assert!(run_once(&runtime, "netskope").await.ok());
    assert_eq!(install.sink_lines().len(), 150);
    t.mock.add_alerts("dlp", 120);
    broken.store(true, Ordering::SeqCst);
    let report = run_once(&runtime, "netskope").await;
    assert!(!report.ok(), "delivery failure fails the run");
    assert!(report.outcome.as_ref().unwrap_err().to_string().contains("disk full"), "{:?}", report.outcome);
    assert_eq!(report.discarded, 0, "the failed commit's records were never made durable");
    assert_eq!(install.sink_lines().len(), 150);
    let fetched = t.mock.requests().len();

    // Repaired: the next run asks for the lost page again and continues.
    broken.store(false, Ordering::SeqCst);
    let report = run_once(&runtime, "netskope").await;
    assert!(report.ok(), "{:?}", report.outcome);
    assert_eq!(calls(&t, fetched).first().map(|(_, op, _)| op.as_str()), Some("resend"), "{:?}", calls(&t, fetched));
    assert_eq!(assert_exactly_once(&sink_ids(&install), &t.expected_keys()), 270);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_on_next_is_answered_by_resend_never_by_a_blind_retry() {
    let t = tenant(100, 0, &["dlp"]).await;
    t.mock.add_alerts("dlp", 60);
    let (install, config) = install(&t);
    let runtime = install.runtime(&config).await;
    assert!(run_once(&runtime, "netskope").await.ok());

    // A 503 may come after the vendor served (and consumed) the page, so `next` must not be sent
    // again: that would skip the page. The collector asks with `resend` instead, in the same run
    // or the next.
    t.mock.add_alerts("dlp", 40);
    t.mock.fail_next(1, Fault::ServiceUnavailable);
    let before = t.mock.requests().len();
    if !run_once(&runtime, "netskope").await.ok() {
        assert!(run_once(&runtime, "netskope").await.ok());
    }
    let ops: Vec<(String, u16)> = calls(&t, before).into_iter().map(|(_, op, status)| (op, status)).collect();
    assert_eq!(ops[..2], [("next".to_owned(), 503), ("resend".to_owned(), 200)], "{ops:?}");
    assert!(t.mock.requests().iter().all(|r| r.header("siphon-retry").is_none()), "the host strips its own header");
    assert_eq!(assert_exactly_once(&sink_ids(&install), &t.expected_keys()), 100);
}
