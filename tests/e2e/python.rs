//! Collectors written in Python (componentize-py, `guests/python`) under the real host, with no
//! host change: the Python and the Rust IBM Security Verify collectors continue each other's
//! checkpoint, run side by side in one daemon within their memory limits, and look alike to
//! `siphon inspect` and `siphon check`. (The vendor suite runs the Python collector as its own
//! row, `ibm-verify-py`: paging, faults, 50 kills, secret scan.)

use std::path::Path;
use std::time::Duration;

use siphon_tests::config::{SecretRef, SourceToml};
use siphon_tests::mock::ibm_verify::MockConfig;

use crate::common::{Install, assert_exactly_once, guest, run_once, siphon, spawn_daemon, text, within};
use crate::ops::free_port;
use crate::vendor::{Tenant, VerifyPyTenant, warm_compile_cache, warm_compile_cache_blocking};

/// `table` running the Rust collector instead of the Python one.
fn rust(table: &SourceToml) -> SourceToml {
    SourceToml { collector: guest("ibm_verify").display().to_string(), ..table.clone() }
}

/// The `id` of every NDJSON line under `out/<prefix>/`.
fn keys_under(install: &Install, tenant: &dyn Tenant, prefix: &str) -> Vec<String> {
    install.lines_under(prefix).iter().map(|l| tenant.key_of(l)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_and_python_verify_collectors_continue_each_others_checkpoint() {
    warm_compile_cache().await;
    let tenant = VerifyPyTenant::start(MockConfig::default()).await;
    tenant.add_records(40); // 160 events: eight pages of 20
    let install = Install::for_tenant(&tenant);
    // Two pages a run, so that every run ends mid-stream and the other collector goes on.
    let python = tenant.source("verify").set_raw("max_pages_per_run", "2");
    let mut handovers = Vec::new();
    for round in 0..7 {
        let (who, table) = if round % 2 == 0 { ("rust", rust(&python)) } else { ("python", python.clone()) };
        let before = install.cursor("verify");
        let runtime = install.runtime(&install.config(&table.render())).await;
        let report = run_once(&runtime, "verify").await;
        assert!(report.ok(), "round {round} ({who}): {:?}", report.outcome);
        // Rounds 0-3 each take the next two pages from where the other collector stopped,
        // round 4 finds nothing new, round 5 the events added after round 4.
        let expected = match round {
            0..=3 => 40,
            5 => 20,
            _ => 0,
        };
        assert_eq!(report.delivered.records, expected, "round {round} ({who})");
        if round == 4 {
            tenant.add_records(5);
        }
        let cursor = install.cursor("verify").expect("a cursor");
        let v: serde_json::Value = serde_json::from_str(&cursor).expect("JSON cursor");
        let at = &v["streams"]["events"]["cursor"];
        assert!(v["version"] == 1 && at["id"].is_string() && at["indexed_at"].is_u64(), "{who} wrote {cursor}");
        handovers.push((who, before, report.delivered.records));
    }
    println!("handovers (collector, cursor before, records): {handovers:?}");
    let lines = install.sink_lines();
    let keys: Vec<String> = lines.iter().map(|l| tenant.key_of(l)).collect();
    assert_eq!(assert_exactly_once(&keys, &tenant.expected_keys()), 180);
    let (mut lines, mut records) = (lines, tenant.expected_records());
    lines.sort();
    records.sort();
    assert!(lines == records, "records changed on the way to the sink");
}

/// The value of the sample of `name` carrying every one of `labels` in Prometheus text.
fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let set = series.strip_prefix(name)?.strip_prefix('{')?.strip_suffix('}')?;
        let have: Vec<&str> = set.split(',').collect();
        labels.iter().all(|l| have.contains(l)).then(|| value.parse().ok())?
    })
}

/// `VmHWM` (peak resident set) of process `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("a number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(unsafe_code, reason = "kill(2) has no safe wrapper; the test signals the child it started")]
async fn python_and_rust_collectors_run_side_by_side_in_one_daemon_within_their_memory_limits() {
    warm_compile_cache().await;
    let tenant = VerifyPyTenant::start(MockConfig::default()).await;
    tenant.add_records(25);
    let install = Install::for_tenant(&tenant);
    // Every 3 s, each on its own checkpoint and prefix; the Python one with the row's 64 MiB,
    // the Rust one with the host's minimum.
    let python = tenant.source("py").schedule("*/3 * * * * *").prefix("py");
    let rust = rust(&tenant.source("rs")).schedule("*/3 * * * * *").prefix("rs").limit("memory", "\"16MiB\"");
    let port = free_port();
    let config =
        install.config(&format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n\n{}\n{}", python.render(), rust.render()));
    let child = spawn_daemon(&config);
    let pid = child.id().expect("running");
    let url = format!("http://127.0.0.1:{port}/metrics");
    let http = siphon_tests::http_client(Some(Duration::from_secs(5))).expect("client");
    let runs = |metrics: &str, source: &str| {
        sample(metrics, "siphon_runs_total", &[&format!("source=\"{source}\""), "outcome=\"ok\""]).unwrap_or(0.0)
    };
    // Three good runs of each, with new events arriving in between.
    let mut added = 0;
    let metrics = within(180, "three runs of each source", async {
        loop {
            if let Ok(resp) = http.get(&url).send().await
                && let Ok(text) = resp.text().await
            {
                let done = runs(&text, "py").min(runs(&text, "rs"));
                if done >= 3.0 {
                    return text;
                }
                if done >= 1.0 && added < 2 {
                    tenant.add_records(5);
                    added += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await;
    let peak = peak_rss_kib(pid);
    for source in ["py", "rs"] {
        let label = format!("source=\"{source}\"");
        let sum = sample(&metrics, "siphon_run_duration_seconds_sum", &[&label]).unwrap_or(0.0);
        let count = sample(&metrics, "siphon_run_duration_seconds_count", &[&label]).unwrap_or(1.0);
        println!("{source}: {count} runs, {:.0} ms a run on average", 1000.0 * sum / count);
    }
    for source in ["py", "rs"] {
        let refused = sample(&metrics, "siphon_memory_refusals_total", &[&format!("source=\"{source}\"")]);
        assert_eq!(refused.unwrap_or(0.0), 0.0, "{source} hit its memory limit: {metrics}");
        let failed = sample(&metrics, "siphon_runs_total", &[&format!("source=\"{source}\""), "outcome=\"failed\""]);
        assert_eq!(failed.unwrap_or(0.0), 0.0, "{source} failed a run: {metrics}");
    }
    // SAFETY: kill(2) on the PID of the child this test started and still owns.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) }, 0);
    let out = within(60, "shutdown on SIGTERM", child.wait_with_output()).await.expect("siphon output");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Both delivered every event once, each into its own prefix (events that arrived after a
    // source's last run are not required).
    for prefix in ["py", "rs"] {
        let keys = keys_under(&install, &tenant, prefix);
        let expected: Vec<String> = tenant.expected_keys().into_iter().filter(|k| keys.contains(k)).collect();
        assert_exactly_once(&keys, &expected);
        assert!(keys.len() >= 100, "{prefix}: {} events", keys.len());
    }
    // The daemon's own peak, for the README: host, both compiled collectors and their runs.
    println!("daemon peak RSS with the Python and the Rust Verify collector: {} MiB", peak / 1024);
    assert!(peak < 512 * 1024, "peak RSS {} MiB", peak / 1024);
}

/// What `siphon inspect` says about the collector itself: everything from `name:` on.
fn described(wasm: &Path) -> String {
    let out = siphon(&["inspect", wasm.to_str().expect("utf-8 path")], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    t[t.find("name:").unwrap_or_else(|| panic!("no name: {t}"))..].to_owned()
}

#[test]
fn inspect_describes_the_python_collector_exactly_as_the_rust_one() {
    let python = described(&guest("ibm_verify_py"));
    assert!(python.contains("name:    ibm-verify-events") && python.contains("page_size"), "{python}");
    assert_eq!(python, described(&guest("ibm_verify")), "settings, defaults and descriptions differ");
}

#[test]
fn check_reports_the_same_problems_for_the_python_and_the_rust_collector() {
    warm_compile_cache_blocking();
    let install = Install::new("unused");
    let table = |name: &str| {
        SourceToml::new(name, guest("ibm_verify_py"))
            .host("127.0.0.1:9")
            .set("base_url", "http://127.0.0.1:9")
            .secret("client_id", SecretRef::Env("SIPHON_E2E_ID".into()))
            .secret("client_secret", SecretRef::Env("SIPHON_E2E_SECRET".into()))
    };
    let env = [("SIPHON_E2E_ID", "id"), ("SIPHON_E2E_SECRET", "secret")];
    let good = [table("py"), rust(&table("rs"))];
    let out = siphon(&["check", "--config", install.config_sources(&good).to_str().expect("path")], &env);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("ok: source `py`: ibm-verify-events@") && t.contains("ok: source `rs`: ibm-verify-events@"),
        "{t}"
    );

    let bad = [table("py").set_raw("page_size", "20000"), rust(&table("rs")).set_raw("page_size", "20000")];
    let out = siphon(&["check", "--config", install.config_sources(&bad).to_str().expect("path")], &env);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    for source in ["py", "rs"] {
        let line = format!("sources.{source}: setting `page_size` = \"20000\" is invalid: must be between 1 and 10000");
        assert!(t.contains(&line), "{t}");
    }
}
