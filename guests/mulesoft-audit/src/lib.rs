//! siphon collector for the MuleSoft Anypoint Platform audit log (Audit Log
//! Query API v2) read with a Connected App's client credentials: settings,
//! token and run here; the query, its boundary and MuleSoft's answers in `query`.

mod query;

use std::time::Duration;

use siphon_sdk::auth::{ClientCredentials, Session};
use siphon_sdk::config::{self, Declared, Secret, Setting, parse};
use siphon_sdk::driver::{Budget, Checkpoint, collect_streams};
use siphon_sdk::log::Level;
use siphon_sdk::{Collector, Error, HostIo, Info, Io, Summary, export_collector};

pub use query::{AuditLog, Position, Query, quota_wait};

const BASE_URL: Setting<String> = Setting::new(
    "base_url",
    "Control plane: https://anypoint.mulesoft.com (US), https://eu1.anypoint.mulesoft.com (EU), \
     https://gov.anypoint.mulesoft.com (Gov)",
    Some("https://anypoint.mulesoft.com"),
    parse::base_url,
);
const ORG_ID: Setting<String> =
    Setting::new("organization_id", "Organization (business group) id, a UUID", None, parse::uuid);
const LOOKBACK_HOURS: Setting<u64> =
    Setting::new("lookback_hours", "Hours the first run looks back", Some("24"), |v| parse::u64_in(v, 0, 52_560));
const PAGE_SIZE: Setting<u64> =
    Setting::new("page_size", "Entries per request, 1..200", Some("200"), |v| parse::u64_in(v, 1, 200));
// Entries newer than now − settle are left for the next run: the audit store is eventually consistent.
const SETTLE_SECONDS: Setting<u64> =
    Setting::new("settle_seconds", "Stay this many seconds behind now", Some("60"), |v| parse::u64_in(v, 0, 3_600));
const MAX_PAGES: Setting<u64> =
    Setting::new("max_pages_per_run", "Most query requests in one run", Some("200"), |v| parse::u64_in(v, 1, 100_000));
const CLIENT_ID: Secret = Secret::required("client_id", "Client id of a Connected App acting on its own behalf");
const CLIENT_SECRET: Secret =
    Secret::required("client_secret", "Its client secret; the app needs the View Audit Log permission");
const DECLARED: [&dyn Declared; 8] =
    [&BASE_URL, &ORG_ID, &LOOKBACK_HOURS, &PAGE_SIZE, &SETTLE_SECONDS, &MAX_PAGES, &CLIENT_ID, &CLIENT_SECRET];

/// Checkpoint schema version.
const VERSION: u32 = 1;
/// A token's lifetime when the answer has no `expires_in` (documented: 60 min).
const TOKEN_LIFETIME: Duration = Duration::from_secs(3_600);
/// Longest wait inside a run; a longer one (a second quota answer in a row)
/// ends the run, and the next run waits out the rest. Keeps runs short.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// Quota answers in a row (a minute's wait each) before the run gives up.
const QUOTA_RETRIES: u32 = 5;
/// No page is started after this long: inside the host's default 10 min run timeout.
const MAX_RUN_TIME: Duration = Duration::from_secs(240);

/// The MuleSoft audit log collector.
pub struct MulesoftAudit;

impl Collector for MulesoftAudit {
    fn info() -> Info {
        let info = Info::new("mulesoft-audit", env!("CARGO_PKG_VERSION"), "MuleSoft Anypoint Platform audit log");
        DECLARED.iter().fold(info, |info, d| info.setting(d.spec()))
    }

    fn collect() -> Result<Summary, Error> {
        run(&mut HostIo)
    }

    fn validate() -> Vec<String> {
        config::problems(&DECLARED, &HostIo)
    }
}

export_collector!(MulesoftAudit);

/// One run over `io`.
pub fn run(io: &mut dyn Io) -> Result<Summary, Error> {
    let audit = AuditLog {
        base_url: BASE_URL.get(io)?,
        org: ORG_ID.get(io)?,
        lookback_ms: LOOKBACK_HOURS.get(io)?.saturating_mul(3_600_000),
        page_size: PAGE_SIZE.get(io)?,
        settle_ms: SETTLE_SECONDS.get(io)?.saturating_mul(1_000),
    };
    let budget = Budget {
        max_pages: u32::try_from(MAX_PAGES.get(io)?).unwrap_or(u32::MAX),
        max_wait: MAX_WAIT,
        max_run_time: Some(MAX_RUN_TIME),
        rate_limit_retries: QUOTA_RETRIES,
        ..Budget::default()
    };
    let token_url = format!("{}/accounts/api/v2/oauth2/token", audit.base_url);
    // The token endpoint counts against the same minute quota.
    let credentials = ClientCredentials::new(token_url, CLIENT_ID.get(io)?, CLIENT_SECRET.get(io)?, TOKEN_LIFETIME)
        .rate_limited(quota_wait, 2, MAX_WAIT);
    let mut auth = Session::new(credentials);
    let checkpoint = load(io, &audit.org)?;
    collect_streams(io, &mut auth, checkpoint, budget, &[audit])
}

/// The checkpoint for `org` (another org's is dropped) without an open query:
/// each run starts a fresh one at the boundary, never reusing an old cursor.
fn load(io: &mut dyn Io, org: &str) -> Result<Checkpoint, Error> {
    let mut checkpoint = Checkpoint::parse(io.checkpoint().as_deref(), VERSION, |_, _| None)?;
    if checkpoint.scope.as_deref() != Some(org) {
        if let Some(old) = checkpoint.scope.replace(org.to_string()) {
            io.log(Level::Warn, &format!("The checkpoint was for organization {old}; {org} starts afresh"));
        }
        checkpoint.streams.clear();
    }
    if let Some(position) = checkpoint.streams.get_mut("audit").and_then(|s| s.cursor.as_object_mut()) {
        position.remove("query");
    }
    Ok(checkpoint)
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
