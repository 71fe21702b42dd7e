//! GCS misbehaving, through the fault proxy (`siphon_tests::gcs_proxy`),
//! with `siphon collect` as the operator runs it:
//!
//! - 503 bursts, connection resets and a lost answer (the write landed, the
//!   connection was reset before the answer) on uploads, state writes and
//!   state reads are retried and the run delivers everything exactly once;
//! - a permanent failure (503, or a reset) of every upload stops siphon at
//!   start-up naming the bucket; of every data upload, ends the run with an
//!   error naming the bucket and the checkpoint's delivery position
//!   unchanged (the commit stays recorded as an intent: whether the upload
//!   landed cannot be settled while GCS fails); either way the next healthy
//!   run delivers everything exactly once;
//! - uploads declare `application/x-ndjson` for `.ndjson` and
//!   `application/gzip` without a content encoding for `.ndjson.gz` (checked
//!   on the proxy's request log: the emulator does not keep content types).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Output;

use siphon_tests::gcs_emulator::GcsEmulator;
use siphon_tests::gcs_proxy::{Fault, GcsProxy, Rule, Seen};

use crate::common::{Install, cache_dir, siphon_bin, text, within};
use crate::gcs::{BUCKET, assert_each_id_once, bucket_lines, emulator, netskope, netskope_source};
use crate::vendor::{NetskopeTenant, Tenant};

const DATA: &str = "siem/netskope/";
const STATE_OBJECT: &str = "siphon/state/netskope.json";

/// GCS sink and state through `endpoint`, retrying up to `attempts` times
/// with millisecond backoffs so fault tests stay fast.
fn config(install: &Install, endpoint: &str, gzip: bool, attempts: u32, source: &str) -> PathBuf {
    let gcs = format!(
        "bucket = \"{BUCKET}\"\nendpoint = \"{endpoint}\"\ncredentials = \"anonymous\"\n\
         retry = {{ max_attempts = {attempts}, initial_backoff = \"10ms\", max_backoff = \"50ms\", timeout = \"20s\" }}"
    );
    let text = format!(
        "[engine]\ncache_dir = \"{cache}\"\nshutdown_grace = \"1s\"\n\n\
         [sink]\nbackend = \"gcs\"\nprefix = \"siem\"\ngzip = {gzip}\nmax_records = 100\n\
         [sink.gcs]\n{gcs}\nresumable_upload_threshold = \"1GiB\"\n\n\
         [state]\nbackend = \"gcs\"\n[state.gcs]\n{gcs}\n\n{source}",
        cache = cache_dir().display()
    );
    let path = install.path("siphon.toml");
    std::fs::write(&path, text).expect("config");
    path
}

/// `siphon collect` of the `netskope` source.
async fn collect(config: &Path) -> Output {
    let run = tokio::process::Command::new(siphon_bin())
        .args(["collect", "--config"])
        .arg(config)
        .arg("netskope")
        .env_remove("RUST_LOG")
        .kill_on_drop(true)
        .output();
    within(120, "siphon collect", run).await.expect("siphon runs")
}

struct Setup {
    gcs: GcsEmulator,
    proxy: GcsProxy,
    tenant: NetskopeTenant,
    install: Install,
}

async fn setup() -> Setup {
    let gcs = emulator().await;
    let proxy = GcsProxy::start(&gcs.endpoint()).await.expect("proxy");
    let (tenant, install) = netskope().await;
    Setup { gcs, proxy, tenant, install }
}

impl Setup {
    fn config(&self, gzip: bool, attempts: u32) -> PathBuf {
        let source = netskope_source(&self.tenant.mock.base_url());
        config(&self.install, &self.proxy.endpoint(), gzip, attempts, &source)
    }

    fn mock_ids(&self) -> HashSet<String> {
        self.tenant.expected_keys().into_iter().collect()
    }

    async fn assert_delivered_once(&self) {
        assert_each_id_once(&bucket_lines(&self.gcs, DATA).await, self.mock_ids());
    }

    /// The committed state object, as JSON.
    async fn state(&self) -> serde_json::Value {
        let body = self.gcs.get(BUCKET, STATE_OBJECT).await.expect("get").expect("state object");
        serde_json::from_slice(&body).expect("state is JSON")
    }
}

/// Uploads of data objects the proxy saw.
fn data_uploads(proxy: &GcsProxy) -> Vec<Seen> {
    proxy.uploads().into_iter().filter(|s| s.object.as_deref().is_some_and(|o| o.starts_with(DATA))).collect()
}

/// Every data upload declared `content_type` and no content encoding, and
/// the state object is JSON.
fn assert_declared_types(proxy: &GcsProxy, content_type: &str, ext: &str) {
    let data = data_uploads(proxy);
    assert!(!data.is_empty(), "no data uploads seen");
    for s in &data {
        let name = s.object.as_deref().unwrap_or_default();
        assert!(name.ends_with(ext), "{name}");
        assert_eq!(s.content_type.as_deref(), Some(content_type), "{name}");
        assert_eq!(s.content_encoding, None, "{name}: a content encoding would make GCS transcode");
    }
    for s in proxy.uploads().iter().filter(|s| s.object.as_deref() == Some(STATE_OBJECT)) {
        assert_eq!(s.content_type.as_deref(), Some("application/json"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_503_and_connection_resets_are_retried_and_the_run_succeeds() {
    let s = setup().await;
    s.tenant.mock.add_alerts("dlp", 250);
    s.tenant.mock.add_alerts("malware", 40);
    // Six attempts: the first data object meets two 503s, two resets and a
    // lost answer in a row, then its sixth attempt gets 412 and finds its own
    // bytes in place. State writes and reads get their share too.
    let config = s.config(false, 6);
    let p = &s.proxy;
    p.add(Rule::status("POST", 503).object(DATA).times(2));
    p.add(Rule::new("POST", Fault::Reset).object(DATA).times(2));
    p.add(Rule::new("POST", Fault::ResetAfterForward).object(DATA).times(1));
    p.add(Rule::status("POST", 503).object(STATE_OBJECT).times(1));
    p.add(Rule::new("POST", Fault::Reset).object(STATE_OBJECT).times(1));
    p.add(Rule::new("POST", Fault::ResetAfterForward).object(STATE_OBJECT).times(1));
    p.add(Rule::status("GET", 503).object(STATE_OBJECT).times(1));
    p.add(Rule::new("GET", Fault::Reset).object(STATE_OBJECT).times(1));

    let out = collect(&config).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("outcome:   ok"), "{}", text(&out));
    s.assert_delivered_once().await;

    let injected = |method: &str, object: &str, fault: Fault| {
        p.seen()
            .iter()
            .filter(|x| x.method == method && x.object.as_deref() == Some(object) && x.fault == Some(fault))
            .count()
    };
    let data = data_uploads(p);
    let first = data[0].object.clone().expect("named");
    let attempts: Vec<(Option<Fault>, Option<u16>)> =
        data.iter().filter(|x| x.object.as_ref() == Some(&first)).map(|x| (x.fault, x.status)).collect();
    assert_eq!(
        attempts,
        [
            (Some(Fault::Status(503)), Some(503)),
            (Some(Fault::Status(503)), Some(503)),
            (Some(Fault::Reset), None),
            (Some(Fault::Reset), None),
            (Some(Fault::ResetAfterForward), None),
            (None, Some(412)),
        ],
        "attempts at {first}"
    );
    assert_eq!(injected("POST", STATE_OBJECT, Fault::Status(503)), 1);
    assert_eq!(injected("POST", STATE_OBJECT, Fault::Reset), 1);
    assert_eq!(injected("POST", STATE_OBJECT, Fault::ResetAfterForward), 1);
    assert_eq!(injected("GET", STATE_OBJECT, Fault::Status(503)), 1);
    assert_eq!(injected("GET", STATE_OBJECT, Fault::Reset), 1);
    // Plain NDJSON objects are declared as such.
    assert_declared_types(p, "application/x-ndjson", ".ndjson");
    println!(
        "retried: {} injected faults, {} data uploads for {} objects",
        p.seen().iter().filter(|x| x.fault.is_some()).count(),
        data.len(),
        data.iter().map(|x| &x.object).collect::<HashSet<_>>().len()
    );
}

/// The cursor's delivery position: its JSON with the collector's `inflight`
/// markers removed (it records the request it is about to send before
/// sending it, by design, so a failed run moves only those).
fn position(state: &serde_json::Value) -> serde_json::Value {
    let mut cursor: serde_json::Value =
        serde_json::from_str(state["cursor"].as_str().expect("a committed cursor")).expect("cursor JSON");
    for t in cursor["streams"].as_object_mut().expect("streams").values_mut() {
        t.as_object_mut().expect("stream state").remove("inflight");
    }
    cursor
}

/// Every data upload fails with `fault`, whatever the retries: the run fails
/// naming the bucket, nothing is committed, and once GCS is healthy again the
/// next run delivers everything exactly once.
async fn permanent_upload_failure(fault: Fault) {
    let s = setup().await;
    s.tenant.mock.add_alerts("dlp", 120);
    let config = s.config(true, 3);
    let out = collect(&config).await;
    assert!(out.status.success(), "{}", text(&out));
    let before = s.state().await;
    let objects_before = s.gcs.list(BUCKET, DATA).await.expect("list");
    let state_generation = || async { s.gcs.list(BUCKET, STATE_OBJECT).await.expect("list")[0].generation };
    let generation_before = state_generation().await;
    s.tenant.mock.add_alerts("dlp", 30);
    s.tenant.mock.add_alerts("policy", 20);

    // Every upload, the start-up probe's included: siphon stops before the
    // run, naming the bucket; the checkpoint is not even rewritten.
    s.proxy.add(Rule::new("POST", fault));
    let out = collect(&config).await;
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(
        t.contains(&format!("sink: gs://{BUCKET} is not usable: cannot write gs://{BUCKET}/siem/.siphon-health/")),
        "{t}"
    );
    assert_eq!(state_generation().await, generation_before);

    // Every data upload: the run starts, and its first commit fails.
    s.proxy.clear();
    s.proxy.add(Rule::new("POST", fault).object(DATA));
    let out = collect(&config).await;
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    // The collector sees its commit fail and ends the run with that error.
    let error = t.lines().find(|l| l.starts_with("error:")).unwrap_or_else(|| panic!("no error line: {t}"));
    assert!(error.contains("checkpoint storage failed: sink (GCS bucket gs://siphon-e2e/siem)"), "{error}");
    assert!(error.contains(&format!("cannot write gs://{BUCKET}/{DATA}")), "names the bucket and object: {error}");
    // retry.max_attempts = 3 attempts at the object, then 3 at claiming its
    // name (which would settle whether the upload landed); then the run
    // gives up.
    let failed = data_uploads(&s.proxy).iter().filter(|x| x.fault == Some(fault)).count();
    assert_eq!(failed, 6, "3 attempts at the upload and 3 at the claim, then the run gives up");

    // Nothing delivered, the delivery position kept; the unsettled commit
    // stays recorded as an intent for the next run to settle.
    assert_eq!(s.gcs.list(BUCKET, DATA).await.expect("list"), objects_before, "no object was added");
    let after = s.state().await;
    assert!(!after["pending"].is_null(), "the intent stays until a run can settle it: {after}");
    assert_eq!(position(&after), position(&before));

    s.proxy.clear();
    let out = collect(&config).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("Undid an interrupted commit"), "{}", text(&out));
    assert!(s.state().await["pending"].is_null());
    s.assert_delivered_once().await;
    // gzip objects are declared as gzip, never as an encoding of NDJSON.
    assert_declared_types(&s.proxy, "application/gzip", ".ndjson.gz");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_that_always_get_503_fail_the_run_naming_the_bucket_and_keep_the_checkpoint() {
    permanent_upload_failure(Fault::Status(503)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_whose_connection_is_always_reset_fail_the_run_naming_the_bucket_and_keep_the_checkpoint() {
    permanent_upload_failure(Fault::Reset).await;
}
