//! What only MaaS360 does, end to end (the real component and host against the MaaS360 mock):
//! issue 10's acceptance run — 72 h of data in all five lists, `lookback_hours = 80`, access tokens
//! that die in the middle of every run (refreshed with the rotating refresh token), admin audit
//! records written 2 minutes late, `siphon collect` killed with SIGKILL at random moments — then
//! every record of every list exactly once; and a wrong password failing the run as `auth` naming
//! the billing id, the cursor kept.
//! What every vendor does is in the vendor suite (`vendor::suite`).

use std::time::Duration;

use siphon_tests::mock::maas360::MockConfig;

use crate::common::{Install, run_once};
use crate::crash::{Plan, crash_loop};
use crate::vendor::{Maas360Tenant, Tenant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seventy_two_hours_of_every_list_exactly_once_through_kills_and_forced_token_expiry() {
    // Tokens good for 9 data calls: every run longer than that meets a 401 mid-run. Half the
    // admin records arriving meanwhile were written 2 minutes late (behind records already read).
    let (history_ms, late_writes_ms) = (72 * 3_600_000, 120_000);
    let cfg = MockConfig { history_ms, token_calls: Some(9), late_writes_ms, ..Maas360Tenant::config() };
    let tenant = Maas360Tenant::start(cfg).await;
    tenant.add_records(120);
    let install = Install::for_tenant(&tenant);
    let config = install.config(&tenant.source("maas360").set_raw("lookback_hours", "80").render());
    let plan = Plan { kills: 30, max_new: 25, window: Duration::from_millis(800), targets: Vec::new() };
    let read = async || install.sink_lines().iter().map(|l| tenant.key_of(l)).collect();
    let report = crash_loop(&config, "maas360", &tenant, plan, read).await;
    println!("{}", report.line("maas360 72 h, lookback 80 h, forced token expiry"));
    assert_eq!(report.kills, 30);
    let stats = tenant.mock.state().auth_stats();
    assert!(stats.unauthorized > 0 && stats.refreshes > 0, "tokens expired mid-run and were refreshed: {stats:?}");
    let state = install.cursor("maas360").expect("a cursor");
    assert!(!tenant.mock.state().issued().iter().any(|t| state.contains(t.as_str())), "no token in the checkpoint");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_one_auth_error_naming_the_billing_id_and_the_cursor_stays() {
    let tenant = Maas360Tenant::start(Maas360Tenant::config()).await;
    tenant.add_records(30);
    let install = Install::for_tenant(&tenant);
    let config = install.config(&tenant.source("maas360").render());
    assert!(run_once(&install.runtime(&config).await, "maas360").await.ok());
    let (cursor, lines) = (install.cursor("maas360"), install.sink_lines().len());

    install.write_secrets(&[("password", "S3CRET-not-the-password".into())]);
    let report = run_once(&install.runtime(&config).await, "maas360").await;
    let err = report.outcome.as_ref().expect_err("refused");
    let text = err.to_string();
    assert_eq!(err.kind(), "auth", "{text}");
    assert!(text.contains("billing id 30012345") && text.contains("errorCode 1002"), "{text}");
    assert!(!text.contains("S3CRET"), "{text}");
    assert_eq!(install.cursor("maas360"), cursor, "cursor unchanged");
    assert_eq!(install.sink_lines().len(), lines, "nothing delivered");
    let logins = tenant.mock.server().requests().iter().filter(|r| r.path.contains("/authenticate/")).count();
    assert_eq!(logins, 2, "one login per run, no retry storm with a refused password");
}
