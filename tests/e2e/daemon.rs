//! The daemon as operators run it: `siphon run` collects on start, serves
//! Prometheus metrics that say what it did (and never a secret), and stops
//! cleanly on SIGTERM.

use std::time::Duration;

use crate::common::{Install, spawn_daemon, within};
use crate::ops::free_port;
use crate::vendor::{NetskopeTenant, Tenant};

/// The value of the sample of `name` carrying every one of `labels` (each
/// `key="value"`) in Prometheus text, if present.
fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let set = series.strip_prefix(name)?.strip_prefix('{')?.strip_suffix('}')?;
        let have: Vec<&str> = set.split(',').collect();
        labels.iter().all(|l| have.contains(l)).then(|| value.parse().ok())?
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(unsafe_code, reason = "kill(2) has no safe wrapper; the test signals the child it started")]
async fn the_daemon_collects_on_start_serves_metrics_and_stops_on_sigterm() {
    let tenant = NetskopeTenant::start(NetskopeTenant::config(100), &["dlp", "malware"]).await;
    tenant.mock.add_alerts("dlp", 150);
    tenant.mock.add_alerts("malware", 30);
    let install = Install::for_tenant(&tenant);
    let token = tenant.secrets()[0].1.clone();
    let source = tenant.source("netskope").schedule("0 0 1 1 *").set("index", "daemon").render();
    let port = free_port();
    // `run_on_start` is set by `Install::config`; the schedule is yearly.
    let config = install.config(&format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n\n{source}"));

    let child = spawn_daemon(&config);
    let url = format!("http://127.0.0.1:{port}/metrics");
    let http = siphon_tests::http_client(Some(Duration::from_secs(5))).expect("client");
    let ok: &[&str] = &[r#"source="netskope""#, r#"outcome="ok""#];
    let metrics = within(60, "the first run's metrics", async {
        loop {
            if let Ok(resp) = http.get(&url).send().await
                && let Ok(text) = resp.text().await
                && sample(&text, "siphon_runs_total", ok).is_some()
            {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;

    let source: &[&str] = &[r#"source="netskope""#];
    assert_eq!(sample(&metrics, "siphon_runs_total", ok), Some(1.0), "{metrics}");
    assert_eq!(sample(&metrics, "siphon_records_delivered_total", source), Some(180.0), "{metrics}");
    let objects = sample(&metrics, "siphon_objects_written_total", source).expect("objects written");
    assert_eq!(objects as usize, install.objects().len(), "{metrics}");
    let last = sample(&metrics, "siphon_last_success_timestamp_seconds", source).expect("last success");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
    assert!(last > now - 120.0 && last <= now + 1.0, "last success {last}, now {now}");
    assert!(metrics.contains("siphon_http_requests_total{"), "{metrics}");
    assert!(!metrics.contains(&token), "no secret in metrics");
    assert_eq!(install.sink_lines().len(), 180);

    // SIGTERM: the scheduler stops and the process exits 0.
    let pid = child.id().expect("running") as libc::pid_t;
    // SAFETY: kill(2) on the PID of the child this test started and still owns.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let out = within(30, "shutdown on SIGTERM", child.wait_with_output()).await.expect("siphon output");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("Scheduler stopped"), "{log}");
    assert!(!log.contains(&token), "no secret in logs");
}
