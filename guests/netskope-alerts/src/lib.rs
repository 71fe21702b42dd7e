//! siphon collector for Netskope REST API v2 alerts, read through the
//! dataexport iterator (`/api/v2/events/dataexport/alerts/{type}`).
//!
//! Each alert type is one consume-once stream of the SDK's driver: the
//! iterator moves on Netskope's side with every `next`, so the driver commits
//! an in-flight marker before each request and asks with `resend` after a
//! crash (see `siphon_sdk::driver`).
//!
//! | Module | Owns |
//! |---|---|
//! | this file | settings, the run: auth, checkpoint, budget, one stream per alert type |
//! | `stream` | the request per operation, the response envelope and its quirks |
//! | `checkpoint` | the index a checkpoint belongs to, and migration of version 1 |

mod checkpoint;
mod stream;

use std::time::Duration;

use siphon_sdk::auth::StaticHeader;
use siphon_sdk::config::{Declared, Secret, Setting, parse};
use siphon_sdk::driver::{Budget, collect_streams};
use siphon_sdk::{Collector, Error, HostIo, Info, Io, SettingSpec, Summary, export_collector};

pub use stream::AlertType;

/// The standard alert types of the dataexport iterator (vendor-apis.md §4.2).
/// `device` and `content` exist only on newer tenants, so they are opt-in.
pub const DEFAULT_ALERT_TYPES: &str = "compromisedcredential,ctep,dlp,malsite,malware,policy,quarantine,\
                                       remediation,securityassessment,uba,watchlist";

const BASE_URL: Setting<String> = Setting::new(
    "base_url",
    "Tenant URL, e.g. https://acme.goskope.com (regional tenants: the full host name)",
    None,
    parse::base_url,
);
const ALERT_TYPES: Setting<Vec<String>> = Setting::new(
    "alert_types",
    "Alert types to read, as a list or comma-separated (add device or content on tenants that have them)",
    Some(DEFAULT_ALERT_TYPES),
    alert_types,
);
const LOOKBACK_HOURS: Setting<u64> =
    Setting::new("lookback_hours", "Hours of history a type's first run starts from", Some("24"), parse::u64);
const MAX_PAGES: Setting<u64> =
    Setting::new("max_pages_per_run", "Most pages fetched per alert type in one run", Some("50"), parse::positive);
const MAX_WAIT: Setting<u64> = Setting::new(
    "max_wait_seconds",
    "Longest in-run sleep for Netskope's wait_time or rate-limit reset; longer waits end the alert type for this run",
    Some("60"),
    parse::u64,
);
const FULL_PAGE: Setting<u64> = Setting::new(
    "full_page",
    "Records in a full page; a shorter page means the type is caught up",
    Some("10000"),
    parse::positive,
);
const API_TOKEN: Secret =
    Secret::required("api_token", "REST API v2 token with read scope on each alert type's dataexport endpoint");
/// Read by hand: its default depends on the source name.
const INDEX: &str = "index";

/// The Netskope alerts collector.
pub struct NetskopeAlerts;

impl Collector for NetskopeAlerts {
    fn info() -> Info {
        let declared: [&dyn Declared; 7] =
            [&BASE_URL, &ALERT_TYPES, &LOOKBACK_HOURS, &MAX_PAGES, &MAX_WAIT, &FULL_PAGE, &API_TOKEN];
        let info = Info::new(
            "netskope-alerts",
            env!("CARGO_PKG_VERSION"),
            "Netskope REST API v2 (dataexport iterator, alerts)",
        )
        .setting(SettingSpec::optional(
            INDEX,
            "Name of the server-side iterator bookmark; must be unique per deployment: \
                 two consumers of one index split the data between them",
            "siphon-<source name>",
        ));
        declared.iter().fold(info, |info, d| info.setting(d.spec()))
    }

    fn collect() -> Result<Summary, Error> {
        run(&mut HostIo)
    }
}

export_collector!(NetskopeAlerts);

/// One run over `io`: every configured alert type in order.
pub fn run(io: &mut dyn Io) -> Result<Summary, Error> {
    let base_url = BASE_URL.get(io)?;
    let index = index(io)?;
    let lookback_s = LOOKBACK_HOURS.get(io)?.saturating_mul(3_600);
    let full_page = usize::try_from(FULL_PAGE.get(io)?).unwrap_or(usize::MAX);
    let types: Vec<AlertType> = ALERT_TYPES
        .get(io)?
        .into_iter()
        .map(|name| AlertType { base_url: base_url.clone(), index: index.clone(), name, lookback_s, full_page })
        .collect();
    let budget = Budget {
        max_pages: u32::try_from(MAX_PAGES.get(io)?).unwrap_or(u32::MAX),
        max_wait: Duration::from_secs(MAX_WAIT.get(io)?),
        ..Budget::default()
    };
    let mut auth = StaticHeader::new("Netskope-Api-Token", API_TOKEN.get(io)?);
    let checkpoint = checkpoint::load(io.checkpoint().as_deref(), &index)?;
    collect_streams(io, &mut auth, checkpoint, budget, &types)
}

fn index(io: &dyn Io) -> Result<String, Error> {
    match io.setting(INDEX) {
        None => Ok(format!("siphon-{}", io.source_name())),
        Some(v) => parse::text(&v).map_err(|why| siphon_sdk::config::invalid(INDEX, &v, &why)),
    }
}

/// Alert type names: lowercase, and only what Netskope names use, because a
/// type becomes a path segment.
fn alert_types(text: &str) -> Result<Vec<String>, String> {
    let mut types: Vec<String> = Vec::new();
    for item in siphon_sdk::config::parse_list(text)? {
        let t = item.to_ascii_lowercase();
        if !t.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-') {
            return Err(format!("`{item}` is not an alert type name"));
        }
        if !types.contains(&t) {
            types.push(t);
        }
    }
    if types.is_empty() { Err("names no alert type".into()) } else { Ok(types) }
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
