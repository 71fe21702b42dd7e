//! A source's `rate` limit (e.g. MuleSoft's 40 calls a minute) as the vendor sees it: the
//! request times on the mock's log. `siphon check` naming a bad rate is in `cli`.

use std::time::Duration;

use crate::common::{Install, run_once};
use crate::vendor::{NetskopeTenant, Tenant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_of_40_per_minute_spaces_requests_by_a_second_and_a_half() {
    let t = NetskopeTenant::start(NetskopeTenant::config(10), &["dlp"]).await;
    t.mock.add_alerts("dlp", 35);
    let install = Install::for_tenant(&t);
    let config = install.config(&t.source("rated").limit("rate", "\"40/min\"").render());
    let runtime = install.runtime(&config).await;
    let report = run_once(&runtime, "rated").await;
    assert!(report.ok(), "{:?}", report.outcome);
    assert_eq!(install.sink_lines().len(), 35);

    let log = t.mock.requests();
    assert_eq!(log.len(), 4, "four pages of ten");
    // 40/min: one request every 1.5 s, no burst. A little slack for the timer's resolution.
    for pair in log.windows(2) {
        let gap = pair[1].request.at.duration_since(pair[0].request.at);
        assert!(gap >= Duration::from_millis(1_450), "requests {gap:?} apart under rate = 40/min");
    }
}
