//! siphon with GCS as sink and state, against a real emulator
//! (fake-gcs-server, `make gcs-emulator`): Netskope mock → collector →
//! bucket, plain and gzip; create-only objects and bounded retries; the
//! start-up health check for a wrong bucket and a read-only credential
//! (injected by `gcs_proxy`, the emulator has no IAM); conditional state
//! writes; `siphon state show|reset` and `check` through the binary.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use siphon::config::{GcsCredentials, GcsRetryConfig, GcsSettings, Settings, SinkSettings, SinkTarget};
use siphon::delivery::{Delivery, DeliveryError};
use siphon::services::Runtime;
use siphon::sink::gcs::GcsSink;
use siphon::sink::{Layout, Object, Sink, SinkError};
use siphon::state::gcs::GcsStateStore;
use siphon::state::{PendingCommit, SourceState, StateError, StateStore};
use siphon_tests::gcs_emulator::GcsEmulator;
use siphon_tests::gcs_proxy::{GcsProxy, Rule};

use crate::common::{Install, cache_dir, id_of, run_once, siphon_bin, text, within};
use crate::vendor::{NetskopeTenant, Tenant, netskope_source as source_table};

pub(crate) const BUCKET: &str = "siphon-e2e";

pub(crate) async fn emulator() -> GcsEmulator {
    let gcs = within(20, "GCS emulator start", GcsEmulator::start()).await.expect("emulator starts");
    gcs.create_bucket(BUCKET).await.expect("bucket");
    gcs
}

/// Fast retries so failure tests finish in milliseconds.
pub(crate) const RETRY: &str =
    r#"{ max_attempts = 3, initial_backoff = "10ms", max_backoff = "50ms", timeout = "20s" }"#;

fn retry() -> GcsRetryConfig {
    GcsRetryConfig {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        timeout: Duration::from_secs(20),
    }
}

fn settings(endpoint: &str, bucket: &str) -> GcsSettings {
    GcsSettings {
        bucket: bucket.to_owned(),
        credentials: GcsCredentials::Anonymous,
        endpoint: Some(endpoint.to_owned()),
        resumable_upload_threshold: usize::MAX,
        retry: retry(),
    }
}

/// `siphon.toml` with GCS sink (root prefix `siem`) and GCS state in `bucket`.
pub(crate) fn config(install: &Install, endpoint: &str, bucket: &str, gzip: bool, sources: &str) -> PathBuf {
    let text = format!(
        r#"[engine]
cache_dir = "{cache}"
max_concurrent_runs = 2
shutdown_grace = "1s"

[sink]
backend = "gcs"
prefix = "siem"
gzip = {gzip}
max_records = 100
[sink.gcs]
bucket = "{bucket}"
endpoint = "{endpoint}"
credentials = "anonymous"
resumable_upload_threshold = "1GiB"
retry = {RETRY}

[state]
backend = "gcs"
[state.gcs]
bucket = "{bucket}"
endpoint = "{endpoint}"
credentials = "anonymous"
retry = {RETRY}

{sources}"#,
        cache = cache_dir().display()
    );
    let path = install.path("siphon.toml");
    std::fs::write(&path, text).expect("config");
    path
}

/// The alert types the GCS tests' Netskope source reads.
pub(crate) const TYPES: [&str; 3] = ["dlp", "malware", "policy"];

/// The Netskope source of the GCS tests, for a tenant at `base_url`: objects under
/// `netskope/alerts/`.
pub(crate) fn netskope_source(base_url: &str) -> String {
    source_table("netskope", base_url, &TYPES, 100).prefix("netskope/alerts").set("index", "e2e-gcs").render()
}

/// A Netskope tenant serving pages of 100 and an installation holding its token.
pub(crate) async fn netskope() -> (NetskopeTenant, Install) {
    let tenant = NetskopeTenant::start(NetskopeTenant::config(100), &TYPES).await;
    let install = Install::for_tenant(&tenant);
    (tenant, install)
}

/// An installation for a source whose tenant is not running (start-up and `check` tests).
fn idle_install() -> (Install, String) {
    let (install, source) = (Install::new("unused"), netskope_source("http://127.0.0.1:9"));
    install.write_secrets(&[("api_token", "S3CRET-idle-token".to_owned())]);
    (install, source)
}

async fn runtime_error(config: &Path) -> String {
    let settings = Settings::load(config).unwrap_or_else(|e| panic!("config: {e}"));
    match within(60, "runtime start", Runtime::from_settings(&settings, None)).await {
        Ok(_) => panic!("start-up should fail"),
        Err(e) => format!("{e:#}"),
    }
}

/// NDJSON lines of every object under `prefix`, gunzipped where named `.gz`
/// (which must then really be gzip bytes). Empty objects are skipped: they
/// are claims left by commit recovery (see `siphon::delivery`); a gzip
/// claim decodes to no lines.
pub(crate) async fn bucket_lines(gcs: &GcsEmulator, prefix: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for o in gcs.list(BUCKET, prefix).await.expect("list").into_iter().filter(|o| o.size > 0) {
        let body = gcs.get(BUCKET, &o.name).await.expect("get").expect("listed object exists");
        let text = if o.name.ends_with(".ndjson.gz") {
            assert_eq!(&body[..2], [0x1f, 0x8b], "{} is stored as gzip bytes", o.name);
            let mut s = String::new();
            flate2::read::GzDecoder::new(&body[..]).read_to_string(&mut s).expect("gzip decodes");
            s
        } else {
            assert!(o.name.ends_with(".ndjson"), "unexpected object {}", o.name);
            String::from_utf8(body.to_vec()).expect("utf-8")
        };
        if text.is_empty() {
            continue; // a gzip claim
        }
        assert!(text.ends_with('\n'), "{} ends with a newline", o.name);
        lines.extend(text.lines().map(str::to_owned));
    }
    lines
}

pub(crate) fn assert_each_id_once(lines: &[String], expected: HashSet<String>) {
    let mut seen = HashSet::new();
    for line in lines {
        assert!(seen.insert(id_of(line)), "duplicate record {line}");
    }
    assert_eq!(seen, expected, "bucket ids differ from the mock's ids");
}

async fn netskope_into_bucket(gzip: bool) {
    let gcs = emulator().await;
    let (t, install) = netskope().await;
    let m = &t.mock;
    m.add_alerts("dlp", 250);
    m.add_alerts("malware", 60);
    let cfg = config(&install, &gcs.endpoint(), BUCKET, gzip, &netskope_source(&m.base_url()));
    let runtime = install.runtime(&cfg).await;
    assert!(runtime.sink.describe().contains("gs://siphon-e2e/siem"), "{}", runtime.sink.describe());

    let report = run_once(&runtime, "netskope").await;
    assert!(report.ok(), "{:?}", report.outcome);
    assert_eq!(report.delivered.records, 310);
    let ext = if gzip { ".ndjson.gz" } else { ".ndjson" };
    let listed = gcs.list(BUCKET, "siem/").await.expect("list");
    let names: HashSet<String> = listed.iter().map(|o| o.name.clone()).collect();
    let delivered: HashSet<String> = report.delivered.objects.iter().cloned().collect();
    assert_eq!(names, delivered, "the bucket holds exactly the delivered objects");
    assert!(names.len() >= 4, "max_records = 100 splits 310 records: {names:?}");
    for name in &names {
        // siem/netskope/alerts/<yyyy>/<mm>/<dd>/netskope-<stamp>-<seq>.ndjson[.gz]
        let parts: Vec<&str> = name.split('/').collect();
        assert_eq!(parts.len(), 7, "{name}");
        assert_eq!(parts[..3], ["siem", "netskope", "alerts"], "{name}");
        assert!(parts[6].starts_with("netskope-") && parts[6].ends_with(ext), "{name}");
        assert!(!parts[6].ends_with(".ndjson.gz") || gzip, "{name}");
    }
    let lines = bucket_lines(&gcs, "siem/").await;
    assert_each_id_once(&lines, t.expected_keys().into_iter().collect());
    // Byte-exact: every record as the vendor sent it.
    let stored: HashSet<&String> = lines.iter().collect();
    assert!(m.records("dlp").iter().all(|r| stored.contains(r)), "records changed on the way");

    // Second run: only the new alerts, in new objects.
    m.add_alerts("dlp", 30);
    m.add_alerts("policy", 7);
    let report = run_once(&runtime, "netskope").await;
    assert!(report.ok(), "{:?}", report.outcome);
    assert_eq!(report.delivered.records, 37);
    assert!(report.delivered.objects.iter().all(|o| !names.contains(o)), "no object is rewritten");
    assert_each_id_once(&bucket_lines(&gcs, "siem/").await, t.expected_keys().into_iter().collect());

    // The checkpoint is one object outside the feed's prefix; no probe is left.
    let all: Vec<String> = gcs.list(BUCKET, "").await.expect("list").into_iter().map(|o| o.name).collect();
    assert!(all.iter().all(|n| n.starts_with("siem/netskope/alerts/") || n == "siphon/state/netskope.json"), "{all:?}");
    let state = gcs.get(BUCKET, "siphon/state/netskope.json").await.expect("get").expect("state object");
    let state: serde_json::Value = serde_json::from_slice(&state).expect("state is JSON");
    assert!(state["cursor"].is_string() && state["pending"].is_null(), "{state}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netskope_alerts_land_in_the_bucket_once_each() {
    netskope_into_bucket(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netskope_alerts_land_in_the_bucket_gzipped() {
    netskope_into_bucket(true).await;
}

fn object(text: &str) -> Object {
    Object {
        body: Bytes::from(text.to_owned()),
        content_type: "application/x-ndjson",
        content_encoding: None,
        records: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_are_created_once_and_transient_failures_are_retried_boundedly() {
    let gcs = emulator().await;
    let proxy = GcsProxy::start(&gcs.endpoint()).await.expect("proxy");
    let sink = GcsSink::connect(&settings(&proxy.endpoint(), BUCKET), "siem").await.expect("client");
    let posts = |p: &GcsProxy| p.seen().iter().filter(|s| s.method == "POST").count();

    // Two 503s, then the upload goes through: three attempts, one object.
    proxy.add(Rule::status("POST", 503).times(2));
    within(30, "create", sink.create("a/x.ndjson", &object("{\"n\":1}\n"))).await.expect("retried into success");
    assert_eq!(posts(&proxy), 3);
    assert_eq!(gcs.get(BUCKET, "a/x.ndjson").await.unwrap().as_deref(), Some(&b"{\"n\":1}\n"[..]));

    // Create-only: other bytes under the same name are refused, not written,
    // and the 412 is not retried.
    let err = within(30, "create", sink.create("a/x.ndjson", &object("{\"n\":2}\n"))).await.unwrap_err();
    assert!(matches!(&err, SinkError::AlreadyExists(n) if n == "gs://siphon-e2e/a/x.ndjson"), "{err}");
    assert_eq!(posts(&proxy), 4);
    assert_eq!(gcs.get(BUCKET, "a/x.ndjson").await.unwrap().as_deref(), Some(&b"{\"n\":1}\n"[..]));
    // The same bytes again are the lost-answer case: this write already landed.
    within(30, "create", sink.create("a/x.ndjson", &object("{\"n\":1}\n"))).await.expect("same bytes");

    assert!(sink.exists("a/x.ndjson").await.unwrap());
    assert!(!sink.exists("a/none.ndjson").await.unwrap());
    sink.delete("a/x.ndjson").await.unwrap();
    sink.delete("a/x.ndjson").await.expect("deleting a missing object is fine");
    assert!(!sink.exists("a/x.ndjson").await.unwrap());

    // A failure that does not go away: exactly max_attempts tries, then an
    // error naming the object.
    proxy.add(Rule::status("POST", 503));
    let before = posts(&proxy);
    let err = within(30, "create", sink.create("a/y.ndjson", &object("{}\n"))).await.unwrap_err().to_string();
    assert_eq!(posts(&proxy) - before, 3, "max_attempts = 3");
    assert!(err.contains("gs://siphon-e2e/a/y.ndjson") && err.contains("503"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_bucket_stops_start_up_naming_the_bucket() {
    let gcs = emulator().await;
    let (install, source) = idle_install();
    let cfg = config(&install, &gcs.endpoint(), "no-such-bucket", false, &source);
    let err = runtime_error(&cfg).await;
    assert!(err.contains("bucket gs://no-such-bucket does not exist"), "{err}");
    assert!(err.starts_with("sink"), "says which backend: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_credential_stops_start_up_naming_bucket_and_permission() {
    let gcs = emulator().await;
    let proxy = GcsProxy::start(&gcs.endpoint()).await.expect("proxy");
    proxy.add(Rule::read_only());
    let (install, source) = idle_install();
    let cfg = config(&install, &proxy.endpoint(), BUCKET, false, &source);
    let err = runtime_error(&cfg).await;
    for needle in ["gs://siphon-e2e", "storage.objects.create", "roles/storage.objectAdmin", "Storage Object Admin"] {
        assert!(err.contains(needle), "missing {needle:?} in: {err}");
    }
    assert_eq!(proxy.seen().iter().filter(|s| s.method == "POST").count(), 1, "a 403 is not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_writes_are_conditional_on_the_generation_read() {
    let gcs = emulator().await;
    let s = settings(&gcs.endpoint(), BUCKET);
    let daemon_a = GcsStateStore::connect(&s, "siphon/state").await.expect("client");
    let daemon_b = GcsStateStore::connect(&s, "siphon/state/").await.expect("client");
    daemon_a.health_check().await.expect("writable");
    let state = |c: &str| SourceState { version: 1, cursor: Some(c.to_owned()), ..Default::default() };

    assert!(daemon_a.load("ns").await.unwrap().is_none());
    let g1 = daemon_a.store("ns", &state("c1"), None).await.expect("first write");
    let err = daemon_b.store("ns", &state("b1"), None).await.unwrap_err();
    assert!(matches!(err, StateError::Conflict { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("`ns`") && text.contains("gs://siphon-e2e/siphon/state/ns.json"), "{text}");

    let loaded = daemon_b.load("ns").await.unwrap().expect("state");
    assert_eq!((loaded.generation, loaded.state.cursor.as_deref()), (g1, Some("c1")));
    let g2 = daemon_b.store("ns", &state("b2"), Some(g1)).await.expect("b read g1");
    assert!(g2 > g1);
    // A keeps its stale generation: refused, and B's checkpoint is intact.
    assert!(matches!(daemon_a.store("ns", &state("c2"), Some(g1)).await, Err(StateError::Conflict { .. })));
    // The same bytes with the same stale generation are B's own write
    // repeated (a lost answer): accepted without a new generation.
    assert_eq!(daemon_b.store("ns", &state("b2"), Some(g1)).await.unwrap(), g2);
    assert_eq!(daemon_a.load("ns").await.unwrap().unwrap().state.cursor.as_deref(), Some("b2"));

    // A local state file copied into the bucket is read; garbage is reported.
    gcs.put(
        BUCKET,
        "siphon/state/moved.json",
        r#"{"generation":7,"state":{"version":1,"cursor":"x","pending":null,"updated_at":null}}"#,
    )
    .await
    .unwrap();
    assert_eq!(daemon_a.load("moved").await.unwrap().unwrap().state.cursor.as_deref(), Some("x"));
    gcs.put(BUCKET, "siphon/state/bad.json", "{not json").await.unwrap();
    let err = daemon_a.load("bad").await.unwrap_err().to_string();
    assert!(err.contains("gs://siphon-e2e/siphon/state/bad.json is corrupt"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_conflict_aborts_the_commit_before_any_object_is_written() {
    let gcs = emulator().await;
    let s = settings(&gcs.endpoint(), BUCKET);
    let sink = std::sync::Arc::new(GcsSink::connect(&s, "siem").await.unwrap());
    let state = std::sync::Arc::new(GcsStateStore::connect(&s, "siphon/state").await.unwrap());
    let sink_settings = SinkSettings {
        target: SinkTarget::Gcs(s.clone()),
        prefix: "siem".into(),
        gzip: false,
        max_records: 10,
        max_bytes: 1 << 20,
    };
    let layout = Layout::new(&sink_settings, "ns", "ns");
    let lease = siphon::lease::Lease::for_run("e2e", Utc::now(), std::time::Duration::from_secs(60));
    let mut delivery = Delivery::open("ns", sink, state.clone(), layout, Utc::now(), 1 << 20, lease).await.unwrap();
    delivery.push(vec![r#"{"_id":"1"}"#.to_owned()]).unwrap();
    // Another daemon commits first (over the lease: say its run ignored it).
    let other = SourceState { version: 1, cursor: Some("theirs".into()), ..Default::default() };
    let leased = state.load("ns").await.unwrap().expect("opening took the lease").generation;
    state.store("ns", &other, Some(leased)).await.unwrap();
    let err = delivery.commit(Some("mine".into())).await.unwrap_err();
    assert!(matches!(err, DeliveryError::State(StateError::Conflict { .. })), "{err}");
    assert!(gcs.list(BUCKET, "siem/").await.unwrap().is_empty(), "nothing was written");
    assert_eq!(state.load("ns").await.unwrap().unwrap().state.cursor.as_deref(), Some("theirs"));
}

async fn siphon(args: &[&str]) -> Output {
    let run = tokio::process::Command::new(siphon_bin()).args(args).env_remove("RUST_LOG").output();
    within(60, "siphon", run).await.expect("siphon runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_show_reset_and_check_through_the_binary() {
    let gcs = emulator().await;
    let (install, source) = idle_install();
    let cfg = config(&install, &gcs.endpoint(), BUCKET, true, &source);
    let cfg_arg = cfg.to_str().unwrap();

    let out = siphon(&["check", "--config", cfg_arg]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("ok: GCS buckets are writable"), "{}", text(&out));

    let out = siphon(&["state", "show", "netskope", "--config", cfg_arg]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("state:      none"), "{}", text(&out));

    let store = GcsStateStore::connect(&settings(&gcs.endpoint(), BUCKET), "siphon/state").await.unwrap();
    let pending = SourceState {
        version: 1,
        cursor: Some(r#"{"dlp":"op-1"}"#.into()),
        pending: Some(PendingCommit {
            objects: vec!["siem/x.ndjson.gz".into()],
            cursor: Some("c2".into()),
            records: 4,
        }),
        updated_at: None,
        lease: None,
    };
    let g = store.store("netskope", &pending, None).await.unwrap();
    let out = siphon(&["state", "show", "netskope", "--config", cfg_arg]).await;
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    for needle in [
        "location:   gs://siphon-e2e/siphon/state/netskope.json",
        &format!("generation: {g}"),
        "\"dlp\": \"op-1\"",
        "a commit of 4 records in 1 objects",
        "siem/x.ndjson.gz",
    ] {
        assert!(t.contains(needle), "missing {needle:?} in:\n{t}");
    }

    let out = siphon(&["state", "reset", "netskope", "--to", "c0", "--config", cfg_arg]).await;
    assert!(!out.status.success(), "a pending commit is not dropped silently");
    assert!(text(&out).contains("commit in progress"), "{}", text(&out));
    let out = siphon(&["state", "reset", "netskope", "--to", "c0", "--force", "--config", cfg_arg]).await;
    assert!(out.status.success(), "{}", text(&out));
    let out = siphon(&["state", "show", "netskope", "--config", cfg_arg]).await;
    assert!(text(&out).contains("cursor:     c0") && text(&out).contains("pending:    none"), "{}", text(&out));

    // Behind a read-only credential: `state show` still works, `check` names
    // the bucket and the missing permission.
    let proxy = GcsProxy::start(&gcs.endpoint()).await.expect("proxy");
    proxy.add(Rule::read_only());
    let cfg = config(&install, &proxy.endpoint(), BUCKET, true, &source);
    let cfg_arg = cfg.to_str().unwrap();
    let out = siphon(&["state", "show", "netskope", "--config", cfg_arg]).await;
    assert!(out.status.success() && text(&out).contains("cursor:     c0"), "{}", text(&out));
    let out = siphon(&["check", "--config", cfg_arg]).await;
    assert!(!out.status.success());
    assert!(text(&out).contains("credentials cannot create objects in gs://siphon-e2e"), "{}", text(&out));
}
