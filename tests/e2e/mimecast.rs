//! What only Mimecast does, end to end (the real component and host against the Mimecast mock):
//! `siphon check` and `inspect` name what the chosen API generation needs; batch download URLs
//! that expired before they were fetched are recovered in the same run; an expired API 1.0 key
//! binding and a stale SIEM token stop the run with the operator's fix, cursor kept. What every
//! vendor does is in the vendor suite (`vendor::suite`), for both API generations.

use std::process::Command;

use siphon_tests::mock::blobs::BLOB_PREFIX;
use siphon_tests::mock::http::Response;
use siphon_tests::mock::mimecast::SIEM_PATH;
use siphon_tests::mock::server::{Fault, FaultRule};

use crate::common::{Install, assert_exactly_once, guest, run_once, siphon_bin};
use crate::vendor::{MimecastTenant, Tenant};

fn siphon(args: &[&str]) -> (bool, String) {
    let out = Command::new(siphon_bin()).args(args).env_remove("RUST_LOG").output().expect("siphon runs");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_the_secrets_and_settings_each_api_needs() {
    for api in ["2.0", "1.0"] {
        let t = MimecastTenant::start(api, 0).await;
        let install = Install::for_tenant(&t);
        let good = t.source("mc");
        let (ok, text) = siphon(&["check", "--config", install.config(&good.render()).to_str().unwrap()]);
        assert!(ok, "{api}: {text}");
        // Drop the last secret (client_secret / secret_key): `validate` names it, for this API.
        let (missing, _) = t.secrets().pop().unwrap();
        let mut table = good.clone();
        table.secrets.retain(|(name, _)| name != missing);
        let (ok, text) = siphon(&["check", "--config", install.config(&table.render()).to_str().unwrap()]);
        assert!(!ok, "{api}: {text}");
        let want = format!("sources.mc: secret `{missing}` is required with api = \"{api}\"");
        assert!(text.contains(&want), "{api}: {text}");
        // The other generation's secrets are not asked for.
        let other = if api == "2.0" { "secret_key" } else { "client_secret" };
        assert!(!text.contains(other), "{api}: {text}");
        if api == "1.0" {
            let (ok, text) =
                siphon(&["check", "--config", install.config(&good.unset("base_url").render()).to_str().unwrap()]);
            assert!(!ok && text.contains("sources.mc: setting `base_url` is required with api = \"1.0\""), "{text}");
        }
    }
}

#[test]
fn inspect_lists_every_setting_with_its_default() {
    let (ok, text) = siphon(&["inspect", guest("mimecast").to_str().unwrap()]);
    assert!(ok, "{text}");
    assert!(text.contains("name:    mimecast"), "{text}");
    for line in [
        "setting api ",
        "[default: 2.0]",
        "[default: https://api.services.mimecast.com]",
        "[default: siem]",
        "[default: 24]",
        "[default: 100]",
        "setting app_id ",
        "secret  client_secret",
        "secret  secret_key",
    ] {
        assert!(text.contains(line), "{line:?} in {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_download_urls_are_asked_for_again_in_the_same_run() {
    let t = MimecastTenant::start("2.0", 30).await;
    t.mock.state().expire_urls(2);
    let install = Install::for_tenant(&t);
    let config = install.config(&t.source("mimecast").render());
    let report = run_once(&install.runtime(&config).await, "mimecast").await;
    assert!(report.ok(), "{:?}", report.outcome);
    assert_exactly_once(&install.sink_lines(), &t.expected_keys());
    let refused =
        t.mock.server().requests().iter().filter(|r| r.path.starts_with(BLOB_PREFIX) && r.status == 403).count();
    assert_eq!(refused, 2, "each expired page had one refused download, then fresh URLs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_0_outage_is_retried_although_every_answer_names_the_quota_reset() {
    let t = MimecastTenant::start("1.0", 20).await;
    // A load balancer's 503 with the quota headers every Mimecast 1.0 answer carries (reset in ms):
    // the reset is when the quota refills, not a wait for the outage.
    let busy = Response::html(503, "<html><body>503 Service Unavailable</body></html>")
        .header("x-ratelimit-remaining", 120)
        .header("x-ratelimit-reset", 45_000);
    t.mock.server().push_fault(FaultRule::new(Fault::Respond(busy)).path(SIEM_PATH).times(2));
    let install = Install::for_tenant(&t);
    let config = install.config(&t.source("mimecast-v1").render());
    let report = run_once(&install.runtime(&config).await, "mimecast-v1").await;
    assert!(report.ok(), "{:?}", report.outcome);
    assert_exactly_once(&install.sink_lines(), &t.expected_keys());
    assert_eq!(t.mock.server().pending_faults(), 0, "both 503s were answered, then retried");
}

/// The mock refuses a request id it has seen (the contract asks for a fresh one per call), so a
/// 429, a 5xx or a lost answer to a signed call must be retried with a new signature, never
/// resent as it was (the host's retries would send the same bytes: refused as a replay, 401).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_calls_are_retried_with_a_new_signature_never_replayed() {
    let t = MimecastTenant::start("1.0", 20).await;
    // Resets of 1 (ms to Mimecast): a host would retry these at once, with the same request id.
    t.mock.state().rate_limit(&[1, 1]);
    let busy = Response::html(503, "<html><body>503 Service Unavailable</body></html>");
    t.mock.server().push_fault(FaultRule::new(Fault::Respond(busy)).path(SIEM_PATH).times(1));
    // The mock saw this one (its id is spent), then the connection was reset.
    t.mock.server().push_fault(FaultRule::new(Fault::LostAnswer).path(SIEM_PATH).times(1));
    let install = Install::for_tenant(&t);
    let config = install.config(&t.source("mimecast-v1").render());
    let report = run_once(&install.runtime(&config).await, "mimecast-v1").await;
    assert!(report.ok(), "{:?}", report.outcome);
    assert_exactly_once(&install.sink_lines(), &t.expected_keys());
    assert_eq!(t.mock.server().pending_faults(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_binding_and_a_stale_siem_token_keep_the_cursor_and_name_the_fix() {
    let t = MimecastTenant::start("1.0", 20).await;
    let install = Install::for_tenant(&t);
    let config = install.config(&t.source("mimecast-v1").render());
    let runtime = install.runtime(&config).await;
    assert!(run_once(&runtime, "mimecast-v1").await.ok());
    let cursor = install.cursor("mimecast-v1");

    t.mock.state().expire_binding(true);
    t.add_records(5);
    let report = run_once(&runtime, "mimecast-v1").await;
    let e = report.outcome.expect_err("418 fails the run");
    assert_eq!(e.kind(), "auth");
    assert!(e.to_string().contains("418") && e.to_string().contains("new access key"), "{e}");
    assert_eq!(install.cursor("mimecast-v1"), cursor);
    t.mock.state().expire_binding(false);
    assert!(run_once(&runtime, "mimecast-v1").await.ok());
    assert_exactly_once(&install.sink_lines(), &t.expected_keys());

    // A token Mimecast no longer knows (older than 7 days): a config error asking for a reset.
    let stale = r#"{"version":1,"streams":{"siem":{"cursor":"c2llbTo5OTk5"}}}"#;
    let (ok, text) = siphon(&["state", "reset", "--config", config.to_str().unwrap(), "mimecast-v1", "--to", stale]);
    assert!(ok, "{text}");
    let report = run_once(&runtime, "mimecast-v1").await;
    let e = report.outcome.expect_err("a stale token fails the run");
    assert_eq!(e.kind(), "config", "{e}");
    assert!(e.to_string().contains("err_audit_siem_invalid_token") && e.to_string().contains("reset"), "{e}");
    let cursor: serde_json::Value = serde_json::from_str(&install.cursor("mimecast-v1").unwrap()).unwrap();
    assert_eq!(cursor["streams"]["siem"]["cursor"], "c2llbTo5OTk5", "the SIEM cursor is kept for the operator");
}
