//! Crash safety: `siphon collect` as a subprocess, killed with SIGKILL at
//! seeded random moments, then run to completion. Every record the mock
//! produced must be in the sink exactly once. [`crash_loop`] is shared: the
//! vendor suite runs it for every vendor on local sink and state
//! (`vendor::suite`); here it runs for the other sink/state pairings — GCS/GCS,
//! local sink + GCS state, GCS sink + local state — with the Netskope tenant.
//!
//! GCS goes through the fault proxy, which holds data uploads and state
//! writes for a few milliseconds: before forwarding (a kill then lands
//! *during* the upload, which the proxy drops unforwarded as GCS drops an
//! upload whose client died) and after (the object has landed, its answer has
//! not: a kill then lands *between the upload and the commit*). The next run's
//! recovery says which window each interrupted commit was cut in (see
//! [`CrashReport`]), and each test prints those counts.
//!
//! The seed is printed; set `SIPHON_CRASH_SEED` to replay a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use siphon_tests::gcs_emulator::GcsEmulator;
use siphon_tests::gcs_proxy::{Fault, GcsProxy, Phase, Rule};

use crate::common::{Install, assert_exactly_once, cache_dir, siphon_bin};
use crate::gcs::{BUCKET, RETRY, bucket_lines, emulator};
use crate::vendor::{Netskope, Tenant, VendorCase};

/// What a crash loop did, for the test's report line.
#[derive(Debug, Default)]
pub struct CrashReport {
    /// Processes killed mid-run.
    pub kills: usize,
    /// Runs that finished before their kill time.
    pub completed: usize,
    /// Interrupted commits whose objects were all in the sink: the kill came
    /// between the last upload and the commit of the cursor; a later run
    /// adopted the cursor.
    pub recovered: usize,
    /// Interrupted commits cut during the upload after some of their objects
    /// had landed; a later run deleted those and fetched the records again.
    pub undone_partial: usize,
    /// Interrupted commits cut before their first object landed (during the
    /// first upload); a later run fetched the records again.
    pub undone_empty: usize,
    /// Records checked in the sink.
    pub records: usize,
    /// Kills made at each [`Target`], by name.
    pub targeted: Vec<(&'static str, usize)>,
}

impl CrashReport {
    /// The report line: kills, which windows they hit, records checked.
    pub fn line(&self, label: &str) -> String {
        let targeted: Vec<String> = self.targeted.iter().map(|(name, n)| format!("{n} {name}")).collect();
        let targeted = if targeted.is_empty() { "all at random moments".to_owned() } else { targeted.join(", ") };
        format!(
            "{label}: {} kills ({targeted}), {} runs completed before their kill; interrupted commits: {} cut \
             between upload and commit (recovered), {} cut during upload after some objects landed and {} before \
             the first object landed (undone); {} records checked, each exactly once",
            self.kills, self.completed, self.recovered, self.undone_partial, self.undone_empty, self.records
        )
    }
}

fn seed() -> u64 {
    std::env::var("SIPHON_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x51_9404)
}

/// A point of the commit protocol to kill a run at, besides random moments:
/// `reached` is polled while the run goes (it looks at the fault proxy).
pub struct Target {
    /// For the report.
    pub name: &'static str,
    /// Whether the run is at that point now.
    pub reached: Arc<dyn Fn() -> bool + Send + Sync>,
}

/// How a crash loop kills.
pub struct Plan {
    /// Kills to make.
    pub kills: usize,
    /// New records per stream before each run: random below this.
    pub max_new: usize,
    /// Random kills land in `[0, window)` after the start.
    pub window: Duration,
    /// Kills `5n + i` go to `targets[i]` (so with two targets, 2 in 5); the
    /// rest are random.
    pub targets: Vec<Target>,
}

/// Run `siphon collect` of `source` until it was killed `plan.kills` times,
/// feeding `tenant` new records as it goes; then run to completion and check
/// exactly-once delivery of the tenant's records with `read_keys`.
pub async fn crash_loop(
    config: &Path,
    source: &str,
    tenant: &dyn Tenant,
    plan: Plan,
    read_keys: impl AsyncFn() -> Vec<String>,
) -> CrashReport {
    let Plan { kills, max_new, window, targets } = plan;
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    println!("crash loop: seed {seed} (SIPHON_CRASH_SEED), {kills} kills, window {window:?}");
    let mut report = CrashReport { targeted: targets.iter().map(|t| (t.name, 0)).collect(), ..Default::default() };
    let mut attempts = 0;
    // How long the runs that ended before their kill took: random kills aim within the
    // usual run, so a fast collector (or a faster host) is still killed often enough.
    let mut completions: Vec<Duration> = Vec::new();
    while report.kills < kills {
        attempts += 1;
        assert!(attempts < kills * 8, "too few runs could be killed: the window is too long for the workload");
        for stream in tenant.streams() {
            tenant.mock().add_records(&stream, rng.random_range(0..max_new));
        }
        let target = targets.get(report.kills % 5);
        let kill = match target {
            // A point the run may never reach (nothing new to commit): then
            // it completes, and the next run tries again with more records.
            Some(t) => Kill::At(Arc::clone(&t.reached)),
            None => Kill::After(random_window(window, &completions).mul_f64(rng.random::<f64>())),
        };
        let started = Instant::now();
        let (killed, stderr) = run_and_kill(config, source, kill).await;
        count_recoveries(&stderr, &mut report);
        if !killed {
            report.completed += 1;
            completions.push(started.elapsed());
            continue;
        }
        report.kills += 1;
        if let Some(t) = target {
            report.targeted.iter_mut().find(|(name, _)| *name == t.name).expect("listed").1 += 1;
        }
    }
    // Let it finish: clean runs until one says it caught up and delivered nothing new (a run
    // that stops at its page limit may deliver nothing new while older pages still wait).
    for _ in 0..20 {
        let before = read_keys().await.len();
        let (killed, stderr) = run_and_kill(config, source, Kill::After(Duration::from_secs(120))).await;
        assert!(!killed, "a clean run did not finish in 120 s");
        count_recoveries(&stderr, &mut report);
        if read_keys().await.len() == before && caught_up(&stderr) {
            break;
        }
    }
    report.records = assert_exactly_once(&read_keys().await, &tenant.expected_keys());
    report
}

/// Where random kills land: `[0, window)`, or `[0, the 75th percentile of the runs that ended
/// before their kill)` once three did, when that is shorter.
fn random_window(window: Duration, completions: &[Duration]) -> Duration {
    if completions.len() < 3 {
        return window;
    }
    let mut sorted = completions.to_vec();
    sorted.sort();
    window.min(sorted[sorted.len() * 3 / 4])
}

/// Whether a run's JSON log says it succeeded and caught up.
fn caught_up(stderr: &str) -> bool {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .any(|event| event["message"].as_str() == Some("Run succeeded") && event["caught_up"].as_bool() == Some(true))
}

/// Sort the recovery lines of a run's JSON log into the report.
fn count_recoveries(stderr: &str, report: &mut CrashReport) {
    for line in stderr.lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let message = event["message"].as_str().unwrap_or_default();
        if message.starts_with("Recovered an interrupted commit") {
            report.recovered += 1;
        } else if message.starts_with("Undid an interrupted commit") {
            if event["found"].as_u64().unwrap_or(0) > 0 {
                report.undone_partial += 1;
            } else {
                report.undone_empty += 1;
            }
        }
    }
}

/// When [`run_and_kill`] kills.
enum Kill {
    /// This long after the start.
    After(Duration),
    /// As soon as the target is reached (polled every 2 ms, the holds of the
    /// proxy last longer).
    At(Arc<dyn Fn() -> bool + Send + Sync>),
}

/// Start `siphon collect` of `source`, SIGKILL it at `kill` unless it ended
/// first; returns whether it was killed, and its stderr (JSON log lines).
async fn run_and_kill(config: &Path, source: &str, kill: Kill) -> (bool, String) {
    let (config, source) = (config.to_owned(), source.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(siphon_bin())
            .args(["--log-format", "json", "collect", "--config"])
            .arg(&config)
            .arg(&source)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("siphon starts");
        let started = Instant::now();
        let due = || match &kill {
            Kill::After(delay) => started.elapsed() >= *delay,
            // Bounded, so a target the run never reaches cannot hang the test.
            Kill::At(reached) => reached() || started.elapsed() >= Duration::from_secs(120),
        };
        let killed = loop {
            if child.try_wait().expect("wait").is_some() {
                break false;
            }
            if due() {
                child.kill().expect("SIGKILL");
                break true;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let out = child.wait_with_output().expect("siphon output");
        (killed, String::from_utf8_lossy(&out.stderr).into_owned())
    })
    .await
    .expect("runner thread")
}

/// Where the GCS pairings put data objects, and their state object.
const DATA: &str = "siem/netskope/";
const STATE_OBJECT: &str = "siphon/state/netskope.json";

/// Where the sink or the state of a crash test lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Store {
    Local,
    Gcs,
}

/// How long the proxy holds each data upload and each state write, before
/// forwarding it and before answering. Long enough that random kills often
/// land in them, short enough that 50 kills per pairing stay within the
/// suite's time budget on two cores.
const UPLOAD_HOLD: Duration = Duration::from_millis(20);
const STATE_HOLD: Duration = Duration::from_millis(10);

/// `siphon.toml` for the pairing: GCS through `endpoint` (the proxy), local
/// under the installation; data objects under `siem/netskope/`.
fn pairing_config(install: &Install, sink: Store, state: Store, endpoint: &str, source: &str) -> PathBuf {
    let gcs = |extra: &str| {
        format!(
            "bucket = \"{BUCKET}\"\nendpoint = \"{endpoint}\"\ncredentials = \"anonymous\"\nretry = {RETRY}\n{extra}"
        )
    };
    let sink = match sink {
        // gzip on the GCS sink: the crash tests cover `.ndjson.gz` too.
        Store::Gcs => format!(
            "backend = \"gcs\"\nprefix = \"siem\"\ngzip = true\nmax_records = 7\n[sink.gcs]\n{}",
            gcs("resumable_upload_threshold = \"1GiB\"")
        ),
        Store::Local => {
            "backend = \"local\"\nprefix = \"siem\"\nmax_records = 7\n[sink.local]\ndir = \"out\"".to_owned()
        }
    };
    let state = match state {
        Store::Gcs => format!("backend = \"gcs\"\n[state.gcs]\n{}", gcs("")),
        Store::Local => "backend = \"local\"\n[state.local]\ndir = \"state\"".to_owned(),
    };
    let text = format!(
        "[engine]\ncache_dir = \"{cache}\"\nmax_concurrent_runs = 2\nshutdown_grace = \"1s\"\n\n\
         [sink]\n{sink}\n\n[state]\n{state}\n\n{source}",
        cache = cache_dir().display()
    );
    let path = install.path("siphon.toml");
    std::fs::write(&path, text).expect("config");
    path
}

/// The record keys in the sink of a pairing, object by object.
async fn sink_keys(sink: Store, install: &Install, gcs: &GcsEmulator, tenant: &dyn Tenant) -> Vec<String> {
    let lines = match sink {
        Store::Local => install.sink_lines(),
        // Only data objects: a run killed during its start-up probe leaves
        // an empty probe object under `siem/.siphon-health/`.
        Store::Gcs => bucket_lines(gcs, DATA).await,
    };
    lines.iter().map(|l| tenant.key_of(l)).collect()
}

/// The `pending` commit of a state as written (the `SourceState` JSON, or the
/// local store's file around it), if any.
fn pending_of(state: &[u8]) -> Option<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_slice(state).ok()?;
    let pending = if v.get("state").is_some() { &v["state"]["pending"] } else { &v["pending"] };
    (!pending.is_null()).then(|| pending.clone())
}

/// The cursor of a state as written to GCS.
fn cursor_of(state: &[u8]) -> Option<serde_json::Value> {
    serde_json::from_slice::<serde_json::Value>(state).ok().map(|v| v["cursor"].clone())
}

/// The two points of the commit protocol each pairing kills at on purpose
/// (the other kills are random): during an upload, and after the last
/// object landed but before the cursor was committed.
fn targets(sink: Store, state: Store, proxy: &Arc<GcsProxy>, install: &Install) -> Vec<Target> {
    let p = Arc::clone(proxy);
    let during_upload = match sink {
        Store::Gcs => Target {
            name: "during a held data upload",
            reached: Arc::new(move || {
                p.held()
                    .iter()
                    .any(|h| h.phase == Phase::Request && h.object.as_deref().is_some_and(|o| o.starts_with(DATA)))
            }),
        },
        // Local files cannot be held: kill once the intent has landed, just
        // before the objects are written.
        Store::Local => Target {
            name: "after the intent landed, before its objects",
            reached: Arc::new(move || {
                p.held().iter().any(|h| {
                    h.phase == Phase::Answer
                        && h.object.as_deref() == Some(STATE_OBJECT)
                        && h.media.as_deref().and_then(pending_of).is_some()
                })
            }),
        },
    };
    let p = Arc::clone(proxy);
    let before_commit = match state {
        // The write that replaces the intent with the intent's cursor (step
        // 3), held before it reaches the bucket. Undoing an interrupted
        // commit also replaces an intent, but with the old cursor.
        Store::Gcs => Target {
            name: "during the cursor write after all objects landed",
            reached: Arc::new(move || {
                p.held().iter().any(|h| {
                    let Some(next) = h.media.as_deref().filter(|_| h.phase == Phase::Request) else {
                        return false;
                    };
                    let intent = p.last_upload(STATE_OBJECT).and_then(|s| s.media).as_deref().and_then(pending_of);
                    h.object.as_deref() == Some(STATE_OBJECT)
                        && pending_of(next).is_none()
                        && intent.is_some_and(|i| cursor_of(next).as_ref() == Some(&i["cursor"]))
                })
            }),
        },
        // The last object of the intent in the local state file has landed
        // and its answer is held.
        Store::Local => {
            let state_file = install.path("state/netskope.json");
            Target {
                name: "after the last object landed, before the cursor write",
                reached: Arc::new(move || {
                    let held: Vec<_> = p.held().into_iter().filter(|h| h.phase == Phase::Answer).collect();
                    if held.is_empty() {
                        return false;
                    }
                    let last = std::fs::read(&state_file).ok().as_deref().and_then(pending_of).and_then(|pending| {
                        pending["objects"].as_array().and_then(|o| o.last()).and_then(|o| o.as_str()).map(str::to_owned)
                    });
                    held.iter().any(|h| last.is_some() && h.object == last)
                }),
            }
        }
    };
    vec![during_upload, before_commit]
}

async fn crash_pairing(sink: Store, state: Store, label: &str) -> CrashReport {
    let gcs = emulator().await;
    let proxy = Arc::new(GcsProxy::start(&gcs.endpoint()).await.expect("proxy"));
    let hold = |d: Duration| Fault::Delay { before: d, after: d };
    proxy.add(Rule::new("POST", hold(UPLOAD_HOLD)).object(DATA));
    proxy.add(Rule::new("POST", hold(STATE_HOLD)).object("siphon/state/"));
    let tenant = Netskope.start(100).await;
    let install = Install::for_tenant(tenant.as_ref());
    let config = pairing_config(&install, sink, state, &proxy.endpoint(), &tenant.source("netskope").render());
    let plan = Plan {
        kills: 50,
        max_new: 12,
        window: Duration::from_millis(900),
        targets: targets(sink, state, &proxy, &install),
    };
    let read = async || sink_keys(sink, &install, &gcs, tenant.as_ref()).await;
    let report = crash_loop(&config, "netskope", tenant.as_ref(), plan, read).await;
    println!("{}", report.line(label));
    let dropped = proxy.seen().iter().filter(|s| matches!(s.fault, Some(Fault::Delay { .. })) && !s.forwarded).count();
    println!(
        "{label}: {dropped} held uploads or state writes were dropped unforwarded because their client was killed"
    );
    assert_eq!(report.kills, 50);
    // The targeted kills make both windows certain, whatever the timing.
    assert!(report.recovered > 0, "no kill between upload and commit: {report:?}");
    assert!(report.undone_partial + report.undone_empty > 0, "no kill during an upload: {report:?}");
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_never_loses_or_duplicates_gcs_gcs() {
    crash_pairing(Store::Gcs, Store::Gcs, "GCS sink/GCS state").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_never_loses_or_duplicates_local_sink_gcs_state() {
    crash_pairing(Store::Local, Store::Gcs, "local sink/GCS state").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_never_loses_or_duplicates_gcs_sink_local_state() {
    crash_pairing(Store::Gcs, Store::Local, "GCS sink/local state").await;
}
