//! Two `siphon collect` processes for the same source against one GCS state
//! at the same time (a daemon started twice, or an old pod still running
//! during a rolling update): one wins; the other stops before it asks the
//! vendor for anything, and the bucket never holds a record twice. A clean
//! run afterwards completes delivery exactly once.
//!
//! - Started together: both read the state before either has taken the
//!   run lease (`siphon::lease`) and the generation-conditional write lets
//!   one take it ("changed by another writer"), or one finds the other's
//!   lease ("busy").
//! - Started while the first is mid-commit (intent recorded, objects still
//!   uploading): the second finds the first's live lease and stops as busy
//!   without touching the commit in progress or the state.
//!
//! The proxy slows GCS down so the runs overlap for seconds. Both processes
//! consume the same Netskope iterator index; the lease is what makes that
//! safe, since a second run on a consume-once cursor could otherwise have
//! its `resend` served before the first run's in-flight `next` and lose
//! that page. What happens when a lease's holder is gone (killed) is the
//! crash tests' subject; a live writer fenced off by commit recovery's claim
//! is covered in `siphon::delivery`'s tests.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use siphon_tests::gcs_emulator::GcsEmulator;
use siphon_tests::gcs_proxy::{Fault, GcsProxy, Rule};

use crate::common::{Install, id_of, siphon_bin, within};
use crate::gcs::{BUCKET, bucket_lines, config, emulator, netskope, netskope_source};
use crate::vendor::{NetskopeTenant, Tenant};

const DATA: &str = "siem/netskope/";
const STATE_OBJECT: &str = "siphon/state/netskope.json";

fn start_collect(config: &Path) -> tokio::process::Child {
    tokio::process::Command::new(siphon_bin())
        .args(["collect", "--config"])
        .arg(config)
        .arg("netskope")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("siphon starts")
}

async fn finish(child: tokio::process::Child) -> Output {
    within(120, "siphon collect", child.wait_with_output()).await.expect("siphon output")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Every `_id` in the bucket's data objects, with how often it is there.
async fn id_counts(gcs: &GcsEmulator) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for line in bucket_lines(gcs, DATA).await {
        *counts.entry(id_of(&line)).or_default() += 1;
    }
    counts
}

fn assert_at_most_once(counts: &HashMap<String, usize>) {
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "{} records are in the bucket more than once, e.g. {:?}", twice.len(), twice.first());
}

/// The two outputs: exactly one run succeeded; the other's error says one
/// of `expected`. Returns which won (0 or 1).
fn assert_one_won(a: &Output, b: &Output, expected: &[String]) -> usize {
    let (won, lost, winner) = match (a.status.success(), b.status.success()) {
        (true, false) => (a, b, 0),
        (false, true) => (b, a, 1),
        _ => panic!("exactly one run should win:\n--- first ---\n{}\n--- second ---\n{}", text(a), text(b)),
    };
    assert!(text(won).contains("outcome:   ok"), "{}", text(won));
    let t = text(lost);
    let error = t.lines().find(|l| l.starts_with("error:")).unwrap_or_else(|| panic!("no error line:\n{t}"));
    assert!(expected.iter().any(|e| error.contains(e.as_str())), "expected one of {expected:?}: {error}");
    winner
}

/// What the loser of a race for the state says.
fn state_conflict() -> String {
    format!(
        "checkpoint of source `netskope` was changed by another writer (gs://{BUCKET}/{STATE_OBJECT} is at generation"
    )
}

/// What a run says that finds another live run holding the source.
fn busy() -> String {
    "source `netskope` is busy: run ".to_owned()
}

struct Setup {
    gcs: GcsEmulator,
    proxy: GcsProxy,
    tenant: NetskopeTenant,
    install: Install,
}

async fn setup(alerts: usize) -> Setup {
    let gcs = emulator().await;
    let proxy = GcsProxy::start(&gcs.endpoint()).await.expect("proxy");
    let (tenant, install) = netskope().await;
    tenant.add_records(alerts);
    Setup { gcs, proxy, tenant, install }
}

impl Setup {
    /// `siphon.toml`: the Netskope source, GCS sink and state through the proxy.
    fn config(&self) -> std::path::PathBuf {
        let source = netskope_source(&self.tenant.mock.base_url());
        config(&self.install, &self.proxy.endpoint(), BUCKET, false, &source)
    }

    /// A clean run completes delivery: every alert exactly once.
    async fn assert_clean_run_completes(&self, config: &Path) {
        self.proxy.clear();
        let out = finish(start_collect(config)).await;
        assert!(out.status.success(), "{}", text(&out));
        let counts = id_counts(&self.gcs).await;
        assert_at_most_once(&counts);
        let expected: HashSet<String> = self.tenant.expected_keys().into_iter().collect();
        let delivered: HashSet<String> = counts.into_keys().collect();
        let missing: Vec<_> = expected.difference(&delivered).collect();
        assert!(
            missing.is_empty(),
            "{} of {} alerts were lost, e.g. {:?}",
            missing.len(),
            expected.len(),
            missing.first()
        );
        assert_eq!(delivered.len(), expected.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_collects_started_together_one_wins_the_other_reports_the_conflict() {
    let s = setup(250).await;
    let config = s.config();
    // Slow GCS: each run takes seconds, so the two overlap throughout.
    let slow = Fault::delay(Duration::from_millis(80));
    s.proxy.add(Rule::new("POST", slow).object(DATA));
    s.proxy.add(Rule::new("POST", slow).object(STATE_OBJECT));

    let (a, b) = (start_collect(&config), start_collect(&config));
    let (a, b) = tokio::join!(finish(a), finish(b));
    // Both read the state before either took the lease (the conditional
    // write decides), or one finds the other's lease.
    assert_one_won(&a, &b, &[state_conflict(), busy()]);
    let counts = id_counts(&s.gcs).await;
    assert_at_most_once(&counts);
    println!("started together: one run won and delivered {} records, the other reported the conflict", counts.len());
    s.assert_clean_run_completes(&config).await;
}

/// Wait until the state holds a commit in progress (step 1 done, its
/// objects still uploading).
async fn wait_for_intent(gcs: &GcsEmulator) {
    within(30, "a commit in progress", async {
        loop {
            if let Some(body) = gcs.get(BUCKET, STATE_OBJECT).await.expect("get") {
                let state: serde_json::Value = serde_json::from_slice(&body).expect("state JSON");
                if !state["pending"].is_null() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collect_started_during_a_commit_finds_the_source_busy_and_touches_nothing() {
    let s = setup(150).await;
    let config = s.config();
    // The first process's data uploads take 1.5 s; the second starts once
    // the first has recorded its intent, so it opens the state mid-commit.
    s.proxy.add(Rule::new("POST", Fault::delay(Duration::from_millis(1500))).object(DATA));
    let first = start_collect(&config);
    wait_for_intent(&s.gcs).await;
    let before = s.gcs.get(BUCKET, STATE_OBJECT).await.expect("get").expect("state");
    let second = finish(start_collect(&config)).await;
    assert_eq!(
        s.gcs.get(BUCKET, STATE_OBJECT).await.expect("get").as_ref(),
        Some(&before),
        "the busy run wrote nothing"
    );
    let first = finish(first).await;

    assert_eq!(assert_one_won(&first, &second, &[busy()]), 0);
    let t = text(&second);
    assert!(!t.contains("interrupted commit"), "the busy run did not touch the commit in progress: {t}");
    let counts = id_counts(&s.gcs).await;
    assert_at_most_once(&counts);
    assert_eq!(counts.len(), 450, "the first run delivered everything");
    s.assert_clean_run_completes(&config).await;
    println!("started mid-commit: the second run found the source busy; the first delivered {} records", counts.len());
}
