//! What only MuleSoft does, end to end (the real component and host against the Anypoint mock):
//! `siphon check` naming a missing organization id and an out-of-range page size together; a
//! per-minute quota answered with an HTML 503 is waited out until the next minute window,
//! never retried at once and never failing a run; entries that reach the eventually consistent
//! store late are still delivered exactly once when the source stays `settle_seconds` behind.
//! What every vendor does is in the vendor suite (`vendor::suite`).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use siphon_tests::mock::mulesoft::MockConfig;

use crate::common::{Install, assert_exactly_once, run_once, siphon_bin};
use crate::vendor::{MulesoftTenant, Tenant, mulesoft_source};

fn install(t: &MulesoftTenant) -> (Install, PathBuf) {
    let install = Install::for_tenant(t);
    let config = install.config(&t.source("mulesoft").render());
    (install, config)
}

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as u64
}

#[test]
fn check_names_a_missing_organization_id_and_a_page_size_of_500_in_one_report() {
    let install = Install::new("unused");
    install.write_secrets(&[("client_id", "c".into()), ("client_secret", "s".into())]);
    let check = |table: &siphon_tests::config::SourceToml| {
        let config = install.config(&table.render());
        let out = Command::new(siphon_bin()).args(["check", "--config"]).arg(&config).output().expect("siphon runs");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    };
    let table = mulesoft_source("mule", "http://127.0.0.1:9", &MockConfig::default().org_id, 200, 60);
    let (ok, text) = check(&table);
    assert!(ok && text.contains("ok: source `mule`: mulesoft-audit"), "{text}");

    let (ok, text) = check(&table.unset("organization_id").set_raw("page_size", "500"));
    assert!(!ok);
    assert!(text.contains("sources.mule.settings.organization_id: required by collector mulesoft-audit"), "{text}");
    assert!(
        text.contains(r#"sources.mule: setting `page_size` = "500" is invalid: must be between 1 and 200"#),
        "{text}"
    );
    assert!(!text.contains("setting `organization_id` is required"), "named once: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_minute_quota_is_waited_out_to_the_next_window_and_no_run_fails() {
    // 8 calls a minute, 45 entries at 5 a page: 10 queries and a token, so the quota runs out.
    let cfg = MockConfig { quota_per_minute: 8, ..MulesoftTenant::config() };
    let t = MulesoftTenant::start(cfg, 5, 0).await;
    t.mock.add_entries(45);
    let (install, config) = install(&t);
    let runtime = install.runtime(&config).await;
    // Start late in a minute, so the test waits seconds rather than a minute.
    let into_minute = wall_ms() % 60_000;
    if into_minute < 50_000 {
        tokio::time::sleep(Duration::from_millis(50_000 - into_minute)).await;
    }
    let (wall0, t0) = (wall_ms(), Instant::now());
    let mut runs = 0;
    loop {
        runs += 1;
        let report = run_once(&runtime, "mulesoft").await;
        assert!(report.ok(), "run {runs} failed: {:?}", report.outcome);
        let note = report.outcome.as_ref().ok().and_then(|s| s.note.clone()).unwrap_or_default();
        if !note.contains("next call in") || runs == 40 {
            break;
        }
        // Waiting longer than a run waits: the next scheduled run goes on.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert_exactly_once(&install.sink_lines(), &t.expected_keys());

    let log = t.mock.server().requests();
    let quota: Vec<_> = log.iter().enumerate().filter(|(_, r)| r.status == 503).collect();
    assert!(!quota.is_empty(), "the quota was hit");
    for (i, answer) in quota {
        let Some(next) = log.get(i + 1) else { continue };
        // The next call comes in the next wall-clock minute, not a quick retry.
        let at = |r: &siphon_tests::mock::server::RecordedRequest| wall0 + r.at.duration_since(t0).as_millis() as u64;
        assert!(at(next) / 60_000 > at(answer) / 60_000, "a call {} ms after a quota answer", at(next) - at(answer));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_that_reach_the_store_late_are_delivered_once_within_the_settle_time() {
    // Every third entry becomes visible 1.5 s after its timestamp, after later ones; the source
    // stays 3 s behind now.
    let cfg = MockConfig { late_every: 3, late_by: Duration::from_millis(1_500), ..MulesoftTenant::config() };
    let t = MulesoftTenant::start(cfg, 7, 3).await;
    let (install, config) = install(&t);
    let runtime = install.runtime(&config).await;
    for _ in 0..8 {
        t.mock.add_entries(9);
        let report = run_once(&runtime, "mulesoft").await;
        assert!(report.ok(), "{:?}", report.outcome);
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let report = run_once(&runtime, "mulesoft").await;
    assert!(report.ok(), "{:?}", report.outcome);
    assert_eq!(assert_exactly_once(&install.sink_lines(), &t.expected_keys()), 72);
}
