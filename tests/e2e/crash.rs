//! Crash safety: `siphon collect` as a subprocess, killed with SIGKILL at
//! seeded random moments, then run to completion. Every alert the mock
//! produced must be in the sink exactly once.
//!
//! The seed is printed; set `SIPHON_CRASH_SEED` to replay a failure.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use siphon_tests::mock_netskope::{MockConfig, MockNetskope};

use crate::common::{Install, TOKEN, guest, id_of, siphon_bin};

/// What a crash loop did, for the test's report line.
pub struct CrashReport {
    /// Processes killed mid-run.
    pub kills: usize,
    /// Runs that finished before their kill time.
    pub completed: usize,
    /// Interrupted commits found complete (cursor adopted) by a later run.
    pub recovered: usize,
    /// Interrupted commits found incomplete (undone) by a later run.
    pub undone: usize,
    /// Records checked in the sink.
    pub records: usize,
}

fn seed() -> u64 {
    std::env::var("SIPHON_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x51_9404)
}

/// Run `siphon collect` `kills` times, killing each at a random moment in
/// `[0, window)`, feeding the mock new alerts as it goes; then run to
/// completion and check exactly-once delivery with `read_ids`.
pub async fn crash_loop(
    config: &Path,
    mock: &MockNetskope,
    types: &[&str],
    kills: usize,
    window: Duration,
    read_ids: impl Fn() -> Vec<String>,
) -> CrashReport {
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    println!("crash loop: seed {seed} (SIPHON_CRASH_SEED), {kills} kills, window {window:?}");
    let mut report = CrashReport { kills: 0, completed: 0, recovered: 0, undone: 0, records: 0 };
    let mut attempts = 0;
    while report.kills < kills {
        attempts += 1;
        assert!(attempts < kills * 8, "too few runs could be killed: the window is too long for the workload");
        for t in types {
            mock.add_alerts(t, rng.random_range(0..40));
        }
        let delay = window.mul_f64(rng.random::<f64>());
        let (killed, stderr) = run_and_kill(config, delay).await;
        count_recoveries(&stderr, &mut report);
        if killed { report.kills += 1 } else { report.completed += 1 }
    }
    // Let it finish: a few clean runs until a run delivers nothing new.
    for _ in 0..10 {
        let before = read_ids().len();
        let (killed, stderr) = run_and_kill(config, Duration::from_secs(120)).await;
        assert!(!killed, "a clean run did not finish in 120 s");
        count_recoveries(&stderr, &mut report);
        if read_ids().len() == before {
            break;
        }
    }
    let ids = read_ids();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for id in &ids {
        *seen.entry(id.as_str()).or_default() += 1;
    }
    let duplicated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicated.is_empty(), "{} duplicated ids, e.g. {:?}", duplicated.len(), duplicated.first());
    let expected: Vec<String> = types.iter().flat_map(|t| mock.ids(t)).collect();
    let missing: Vec<_> = expected.iter().filter(|id| !seen.contains_key(id.as_str())).collect();
    assert!(missing.is_empty(), "{} of {} ids missing, e.g. {:?}", missing.len(), expected.len(), missing.first());
    assert_eq!(ids.len(), expected.len());
    report.records = ids.len();
    report
}

fn count_recoveries(stderr: &str, report: &mut CrashReport) {
    report.recovered += stderr.matches("Recovered an interrupted commit").count();
    report.undone += stderr.matches("Undid an interrupted commit").count();
}

/// Start `siphon collect`, SIGKILL it after `delay` unless it ended; returns
/// whether it was killed, and its stderr.
async fn run_and_kill(config: &Path, delay: Duration) -> (bool, String) {
    let config = config.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(siphon_bin())
            .args(["collect", "--config"])
            .arg(&config)
            .arg("netskope")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("siphon starts");
        let started = Instant::now();
        let killed = loop {
            if child.try_wait().expect("wait").is_some() {
                break false;
            }
            if started.elapsed() >= delay {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_never_loses_or_duplicates_local_local() {
    let m = MockNetskope::start(MockConfig { token: TOKEN.to_owned(), page_size: 20, ..MockConfig::default() })
        .await
        .expect("mock");
    m.add_alerts("dlp", 300);
    m.add_alerts("malware", 200);
    let install = Install::new(TOKEN);
    let source = format!(
        r#"[sources.netskope]
collector = "{wasm}"
schedule = "0 * * * *"
allowed_hosts = ["{authority}"]
allow_http = true
settings = {{ base_url = "{base}", alert_types = ["dlp", "malware"], index = "crash", full_page = 20 }}
secrets = {{ api_token = {{ file = "token.txt" }} }}
"#,
        wasm = guest("netskope_alerts").display(),
        authority = m.authority(),
        base = m.base_url(),
    );
    // Small objects: several per commit, so kills also land between objects.
    let config = install.config_with(&source, "max_records = 7");
    let report = crash_loop(&config, &m, &["dlp", "malware"], 50, Duration::from_millis(600), || {
        install.sink_lines().iter().map(|l| id_of(l)).collect()
    })
    .await;
    println!(
        "local/local: {} kills, {} runs completed before their kill, {} interrupted commits recovered, {} undone; \
         {} records checked, each exactly once",
        report.kills, report.completed, report.recovered, report.undone, report.records
    );
    assert_eq!(report.kills, 50);
}
