//! What only IBM Security Verify does, end to end (the shared suite in `vendor` covers paging,
//! byte-exact records, bad credentials, fault storms, the kill loop and the secret scan):
//! `siphon check` naming a missing secret and an out-of-range page size, the 48 h first-run
//! window, events indexed late or not yet visible, tokens that expire mid-run, and a client
//! without the reports entitlement.

use std::process::Command;
use std::time::Duration;

use siphon_tests::config::SourceToml;
use siphon_tests::mock::ibm_verify::MockConfig;

use crate::common::{Install, assert_exactly_once, run_once, siphon_bin};
use crate::vendor::{Tenant, VerifyTenant, verify_source};

const HOUR_MS: u64 = 3_600_000;

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// An installation with the tenant's secrets and a config reading it as source `verify`.
fn install(tenant: &VerifyTenant, table: SourceToml) -> (Install, std::path::PathBuf) {
    let install = Install::for_tenant(tenant);
    let config = install.config(&table.render());
    (install, config)
}

fn keys(install: &Install, tenant: &VerifyTenant) -> Vec<String> {
    install.sink_lines().iter().map(|l| tenant.key_of(l)).collect()
}

#[test]
fn check_names_the_source_and_the_key_of_a_missing_secret_and_an_out_of_range_page_size() {
    let check = |table: SourceToml| {
        let install = Install::new("unused");
        install.write_secrets(&[("client_id", "c".into()), ("client_secret", "s".into())]);
        let config = install.config(&table.render());
        let out = Command::new(siphon_bin()).args(["check", "--config"]).arg(&config).output().expect("siphon runs");
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    let table = verify_source("verify", "http://127.0.0.1:9", 1000);
    let (ok, text) = check(table.clone());
    assert!(ok, "{text}");
    assert!(text.contains("ok: source `verify`: ibm-verify-events@"), "{text}");

    let mut missing = table.clone();
    missing.secrets.retain(|(name, _)| name != "client_secret");
    let (ok, text) = check(missing);
    assert!(!ok);
    assert!(text.contains("sources.verify.secrets.client_secret: required by collector ibm-verify-events"), "{text}");

    let (ok, text) = check(table.set_raw("page_size", "20000"));
    assert!(!ok);
    assert!(
        text.contains(r#"sources.verify: setting `page_size` = "20000" is invalid: must be between 1 and 10000"#),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_run_reads_48_hours_back_and_later_runs_get_late_and_pending_events_once() {
    let tenant = VerifyTenant::start(MockConfig::default()).await;
    let old = tenant.mock.add_events_at("sso", 3, now_ms() - 49 * HOUR_MS);
    tenant.mock.add_events_at("management", 4, now_ms() - 47 * HOUR_MS);
    tenant.add_records(30);
    let pending = tenant.mock.add_pending("authentication", 5, Duration::from_millis(1_500));
    let (install, config) = install(&tenant, tenant.source("verify"));
    let runtime = install.runtime(&config).await;

    let report = run_once(&runtime, "verify").await;
    assert!(report.ok(), "{:?}", report.outcome);
    let got = keys(&install, &tenant);
    assert_eq!(got.len(), 4 + 4 * 30, "the 47 h old events, not the 49 h old ones, nor the pending ones");
    assert!(!got.iter().any(|k| old.contains(k) || pending.contains(k)));

    tokio::time::sleep(Duration::from_millis(1_600)).await;
    tenant.add_records(3);
    let report = run_once(&runtime, "verify").await;
    assert!(report.ok(), "{:?}", report.outcome);
    assert_eq!(report.delivered.records, 5 + 4 * 3, "the pending events once indexed, and the new ones");
    let expected: Vec<String> = tenant.expected_keys().into_iter().filter(|k| !old.contains(k)).collect();
    assert_exactly_once(&keys(&install, &tenant), &expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_that_expire_mid_run_are_renewed_and_nothing_is_lost() {
    let tenant =
        VerifyTenant::start(MockConfig { token_lifetime: Duration::from_millis(700), ..MockConfig::default() }).await;
    tenant.add_records(50);
    // Ten pages at four requests a second outlive several tokens.
    let table = verify_source("verify", &tenant.mock.base_url(), 20).limit("rate", "\"4/s\"");
    let (install, config) = install(&tenant, table);
    let report = run_once(&install.runtime(&config).await, "verify").await;
    assert!(report.ok(), "{:?}", report.outcome);
    assert_exactly_once(&keys(&install, &tenant), &tenant.expected_keys());
    assert!(tenant.mock.oauth().issued() >= 2, "issued {}", tenant.mock.oauth().issued());
    let refused = tenant.mock.server().requests().iter().filter(|r| r.status == 401).count();
    assert!(refused >= 1 && refused < tenant.mock.oauth().issued(), "each 401 got one new token: {refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_read_reports_fails_as_auth_naming_the_permission_and_keeps_the_cursor() {
    let tenant = VerifyTenant::start(MockConfig::default()).await;
    tenant.add_records(5);
    let (install, config) = install(&tenant, tenant.source("verify"));
    let runtime = install.runtime(&config).await;
    assert!(run_once(&runtime, "verify").await.ok());
    let cursor = install.cursor("verify");

    tenant.mock.set_entitled(false);
    tenant.add_records(2);
    let report = run_once(&runtime, "verify").await;
    let err = report.outcome.as_ref().expect_err("a 403 fails the run");
    assert_eq!(err.kind(), "auth");
    assert!(err.to_string().contains("Read reports") && err.to_string().contains("Security > API access"), "{err}");
    assert_eq!(install.cursor("verify"), cursor);
}
