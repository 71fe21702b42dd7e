//! Misbehaving collectors (the `fault` guest) are contained: each failure
//! is reported for what it is, and the other sources keep running.

use std::time::Duration;

use siphon::runner::RunError;
use siphon::scheduler::{self, SchedulerOptions};
use siphon_tests::config::SourceToml;
use siphon_tests::mock::server::{MockServer, Request, Response};

use crate::common::{Install, TOKEN, guest, run_once, within};

/// A source `name` running the fault guest in `mode`, allowed to reach only `example.com`.
fn fault_source(name: &str, mode: &str) -> SourceToml {
    SourceToml::new(name, guest("fault")).schedule("0 0 * * *").host("example.com").set("mode", mode)
}

/// A guest that spins until `run_timeout`, one that allocates past 32 MiB and one that panics.
fn misbehaving(run_timeout: &str) -> [SourceToml; 3] {
    [
        fault_source("spin", "spin").limit("run_timeout", &format!("\"{run_timeout}\"")),
        fault_source("bomb", "alloc-bomb").limit("memory", r#""32MiB""#),
        fault_source("panic", "panic"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_is_reported_for_what_it_is() {
    let install = Install::new(TOKEN);
    let config = install.config_sources(&misbehaving("2s"));
    let runtime = install.runtime(&config).await;

    let report = run_once(&runtime, "spin").await;
    assert!(
        matches!(report.outcome, Err(RunError::Deadline(d)) if d == Duration::from_secs(2)),
        "{:?}",
        report.outcome
    );

    let report = run_once(&runtime, "bomb").await;
    match &report.outcome {
        Err(RunError::OutOfMemory { limit, requested }) => {
            assert_eq!(*limit, 32 << 20);
            assert!(requested > limit);
        }
        other => panic!("expected out-of-memory, got {other:?}"),
    }
    assert!(report.outcome.as_ref().unwrap_err().to_string().contains("limits.memory"));

    let report = run_once(&runtime, "panic").await;
    match &report.outcome {
        Err(RunError::Panic(message)) => assert!(message.contains("fault guest panicked on purpose"), "{message}"),
        other => panic!("expected a panic, got {other:?}"),
    }
    // Nothing was committed by any of them.
    for s in ["spin", "bomb", "panic"] {
        assert_eq!(install.cursor(s), None, "{s}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_outside_the_allow_list_is_denied_without_a_connection() {
    let m = MockServer::start(|_: &Request| Response::json(200, "{}")).await.expect("server");
    let install = Install::new(TOKEN);
    // The server answers on 127.0.0.1; the source may only reach another port.
    // `localhost` resolves to the server too, so only the allow-list stops it.
    let port = m.addr().port();
    let other_port = if port == 65535 { 65534 } else { port + 1 };
    let source = SourceToml {
        allowed_hosts: vec![format!("127.0.0.1:{other_port}")],
        ..fault_source("sneaky", "forbidden-host")
    }
    .set("url", &format!("http://localhost:{port}/api/v2/events/dataexport/alerts/dlp"));
    let config = install.config(&source.render());
    let runtime = install.runtime(&config).await;
    let report = run_once(&runtime, "sneaky").await;
    match &report.outcome {
        Err(RunError::Collector { kind: "transport", message }) => {
            assert!(message.to_lowercase().contains("denied"), "{message}")
        }
        other => panic!("expected a denied request, got {other:?}"),
    }
    assert!(m.requests().is_empty(), "no request reached the server: {:?}", m.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_keeps_healthy_sources_running_beside_faulty_ones() {
    let install = Install::new(TOKEN);
    let [spin, bomb, panic] = misbehaving("10m");
    let config = install.config_sources(&[spin, bomb, panic, fault_source("healthy", "emit").set_raw("count", "5")]);
    let runtime = std::sync::Arc::new(install.runtime(&config).await);
    let options =
        SchedulerOptions { max_concurrent_runs: 4, shutdown_grace: Duration::from_millis(500), run_on_start: true };
    let state_file = install.path("state/healthy.json");
    let healthy_done = async {
        while !state_file.exists() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    // The spinning source is still running (10 min deadline) when the
    // healthy one finishes; shutdown then abandons it after the grace period
    // (a guest that never calls the host still yields every epoch tick), so
    // the scheduler stops well within the 60 s bound.
    within(
        60,
        "scheduler",
        scheduler::run(runtime, options, async {
            within(45, "healthy source", healthy_done).await;
        }),
    )
    .await;
    let lines = install.sink_lines();
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert!(lines.iter().all(|l| l.contains(r#""source":"healthy""#)));
    assert_eq!(install.cursor("healthy").as_deref(), Some(r#"{"done":true}"#));
    assert_eq!(install.cursor("spin"), None, "the abandoned run committed nothing");
}
