//! Two `siphon collect` processes for the same source against one GCS state
//! at the same time (a daemon started twice, or a copy left running during a
//! move): the generation-conditional state writes let one win; the other
//! stops with "changed by another writer", and the bucket never holds a
//! record twice. A clean run afterwards completes delivery exactly once.
//!
//! - Started together: both read the same generation; the first `inflight`
//!   commit wins, the other stops before it requests anything.
//! - Started while the first is mid-commit (intent recorded, object still
//!   uploading): the second recovers a commit whose writer is alive. Either
//!   it finds the object landed and adopts the commit (then the two race
//!   for the state, as above), or it claims the missing object (see
//!   `siphon::delivery`), so the writer cannot finish: it stops, and the
//!   records are fetched again by the second run only.
//!
//! The proxy slows GCS down so the runs overlap for seconds. Both processes
//! consume the same Netskope iterator index (shared per index, like the real
//! one); what keeps that safe is that each page is requested only after an
//! `inflight` commit, a conditional write the loser cannot make once the
//! winner has written. One interleaving stays unsafe and is not tested here:
//! if the second process reads the first one's `inflight: next`, commits its
//! `resend` and the vendor serves that `resend` before the first one's
//! in-flight `next`, the page `next` consumed is lost (the first process
//! cannot commit it). Sharing one index between deployments is unsupported
//! for that reason (`shared/vendor-apis.md`: they split the data).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use siphon_tests::gcs_emulator::GcsEmulator;
use siphon_tests::gcs_proxy::{Fault, GcsProxy, Rule};
use siphon_tests::mock_netskope::{MockConfig, MockNetskope};

use crate::common::{Install, TOKEN, id_of, siphon_bin, within};
use crate::gcs::{BUCKET, bucket_lines, config, emulator, netskope_source};

const DATA: &str = "siem/netskope/";
const STATE_OBJECT: &str = "siphon/state/netskope.json";
const TYPES: [&str; 3] = ["dlp", "malware", "policy"];

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

/// The two outputs: exactly one run succeeded; the other names the conflict
/// and says what it was (`detail`). Returns which won (0 or 1).
fn assert_one_won(a: &Output, b: &Output, detail: &str) -> usize {
    let (won, lost, winner) = match (a.status.success(), b.status.success()) {
        (true, false) => (a, b, 0),
        (false, true) => (b, a, 1),
        _ => panic!("exactly one run should win:\n--- first ---\n{}\n--- second ---\n{}", text(a), text(b)),
    };
    assert!(text(won).contains("outcome:   ok"), "{}", text(won));
    let t = text(lost);
    let error = t.lines().find(|l| l.starts_with("error:")).unwrap_or_else(|| panic!("no error line:\n{t}"));
    assert!(error.contains("checkpoint of source `netskope` was changed by another writer"), "{error}");
    assert!(error.contains(detail), "{error}");
    winner
}

/// What the loser of a race for the state says.
fn state_conflict() -> String {
    format!("gs://{BUCKET}/{STATE_OBJECT} is at generation")
}

struct Setup {
    gcs: GcsEmulator,
    proxy: GcsProxy,
    mock: MockNetskope,
    install: Install,
}

async fn setup(alerts: usize) -> Setup {
    let gcs = emulator().await;
    let proxy = GcsProxy::start(&gcs.endpoint()).await.expect("proxy");
    let mock = MockNetskope::start(MockConfig { token: TOKEN.to_owned(), page_size: 100, ..MockConfig::default() })
        .await
        .expect("mock starts");
    for t in TYPES {
        mock.add_alerts(t, alerts);
    }
    Setup { gcs, proxy, mock, install: Install::new(TOKEN) }
}

impl Setup {
    /// A clean run completes delivery: every alert exactly once.
    async fn assert_clean_run_completes(&self, config: &Path) {
        self.proxy.clear();
        let out = finish(start_collect(config)).await;
        assert!(out.status.success(), "{}", text(&out));
        let counts = id_counts(&self.gcs).await;
        assert_at_most_once(&counts);
        let expected: HashSet<String> = TYPES.iter().flat_map(|t| self.mock.ids(t)).collect();
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
    let config = config(
        &s.install,
        &s.proxy.endpoint(),
        BUCKET,
        false,
        &netskope_source(&s.mock.base_url(), &s.mock.authority()),
    );
    // Slow GCS: each run takes seconds, so the two overlap throughout.
    let slow = Fault::delay(Duration::from_millis(80));
    s.proxy.add(Rule::new("POST", slow).object(DATA));
    s.proxy.add(Rule::new("POST", slow).object(STATE_OBJECT));

    let (a, b) = (start_collect(&config), start_collect(&config));
    let (a, b) = tokio::join!(finish(a), finish(b));
    assert_one_won(&a, &b, &state_conflict());
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

/// The first process's data uploads take 1.5 s; the second starts once the
/// first has recorded its intent, so it opens the state mid-commit and must
/// recover a commit whose writer is alive. `direct`: the second process
/// talks to the emulator without the proxy, so its claim on the missing
/// object lands while the first one's upload is still held; otherwise the
/// upload lands first and the commit is complete when checked. Returns the
/// two outputs, first process first.
async fn second_collect_during_a_commit(s: &Setup, direct: bool) -> (Output, Output) {
    let source = netskope_source(&s.mock.base_url(), &s.mock.authority());
    let endpoint = if direct { s.gcs.endpoint() } else { s.proxy.endpoint() };
    let second = config(&s.install, &endpoint, BUCKET, false, &source);
    let second_config = s.install.path("second.toml");
    std::fs::rename(&second, &second_config).expect("second config");
    let first_config = config(&s.install, &s.proxy.endpoint(), BUCKET, false, &source);
    s.proxy.add(Rule::new("POST", Fault::delay(Duration::from_millis(1500))).object(DATA));

    let first = start_collect(&first_config);
    wait_for_intent(&s.gcs).await;
    let second = start_collect(&second_config);
    let (first, second) = tokio::join!(finish(first), finish(second));
    assert_at_most_once(&id_counts(&s.gcs).await);
    s.assert_clean_run_completes(&first_config).await;
    (first, second)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_claims_a_commit_in_progress_stops_its_writer_without_duplicates() {
    let s = setup(150).await;
    let (first, second) = second_collect_during_a_commit(&s, true).await;
    // The second run claimed the object the first was uploading, undid the
    // commit and fetched its records again; the first could not finish.
    assert_eq!(assert_one_won(&first, &second, "was claimed by a run recovering this commit"), 1);
    assert!(text(&second).contains("Undid an interrupted commit"), "{}", text(&second));
    let claims = s.gcs.list(BUCKET, DATA).await.expect("list").into_iter().filter(|o| o.size == 0).count();
    assert_eq!(claims, 1, "the claim stays, holding no records");
    println!("claimed mid-upload: the recovering run won, the writer stopped at the claim");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_finds_a_commit_in_progress_complete_adopts_it_or_loses_the_race() {
    let s = setup(150).await;
    let (first, second) = second_collect_during_a_commit(&s, false).await;
    // Both go for the same state generation: the writer with its cursor,
    // the second run adopting that cursor. Whoever is first wins.
    assert_one_won(&first, &second, &state_conflict());
    assert!(text(&second).contains("Recovered an interrupted commit"), "{}", text(&second));
}
