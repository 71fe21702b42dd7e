//! The source's settings and secrets, each declared once: what `info` lists
//! (with its default) and how the configured text is validated.

use siphon_sdk::Error;
use siphon_sdk::config::{Declared, Secret, Setting, parse};
use siphon_sdk::io::Io;

const BASE_URL: Setting<String> = Setting::new(
    "base_url",
    "Tenant URL, e.g. https://acme.verify.ibm.com (legacy *.ice.ibmcloud.com tenants work too)",
    None,
    parse::base_url,
);
const EVENT_TYPES: Setting<Option<Vec<String>>> = Setting::new(
    "event_types",
    "Event types to collect, e.g. [\"authentication\", \"sso\", \"management\"]; `all` = every type",
    Some("all"),
    event_types,
);
const LOOKBACK_HOURS: Setting<u64> = Setting::new(
    "lookback_hours",
    "First run only: collect events indexed this many hours back (Verify keeps 90 days)",
    Some("24"),
    |v| parse::u64_in(v, 0, 90 * 24),
);
const PAGE_SIZE: Setting<u64> =
    Setting::new("page_size", "Events per request, 1..10000 (the API maximum)", Some("1000"), |v| {
        parse::u64_in(v, 1, 10_000)
    });
const MAX_PAGES: Setting<u64> =
    Setting::new("max_pages_per_run", "Pages fetched per run; the rest waits for the next run", Some("100"), |v| {
        parse::u64_in(v, 1, 100_000)
    });
const CLIENT_ID: Secret = Secret::required("client_id", "API client ID (Security > API access)");
const CLIENT_SECRET: Secret = Secret::required("client_secret", "API client secret");

/// Every declaration, in the order `siphon inspect` lists them.
pub const DECLARED: [&dyn Declared; 7] =
    [&BASE_URL, &EVENT_TYPES, &LOOKBACK_HOURS, &PAGE_SIZE, &MAX_PAGES, &CLIENT_ID, &CLIENT_SECRET];

/// `all` (the default) or a list of event type names. Tenants differ in
/// which types exist, so any name is accepted; quotes are not (the API wants
/// each name quoted, and the collector adds them).
fn event_types(v: &str) -> Result<Option<Vec<String>>, String> {
    let names = parse::names(v)?;
    let all = names.iter().any(|n| n.eq_ignore_ascii_case("all"));
    match all {
        true if names.len() > 1 => Err("`all` cannot be combined with other types".into()),
        true => Ok(None),
        false => Ok(Some(names)),
    }
}

/// The validated configuration of one run (no `Debug`: it holds the secret).
#[derive(Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Config {
    pub base_url: String,
    /// `None` = every event type.
    pub event_types: Option<Vec<String>>,
    pub lookback_ms: u64,
    pub page_size: u64,
    pub max_pages: u32,
    pub client_id: String,
    pub client_secret: String,
}

impl Config {
    /// Every setting and secret, validated; the first problem is an
    /// [`Error::Config`] naming its key.
    pub fn read(io: &dyn Io) -> Result<Self, Error> {
        Ok(Self {
            base_url: BASE_URL.get(io)?,
            event_types: EVENT_TYPES.get(io)?,
            lookback_ms: LOOKBACK_HOURS.get(io)? * 3_600_000,
            page_size: PAGE_SIZE.get(io)?,
            max_pages: u32::try_from(MAX_PAGES.get(io)?).unwrap_or(u32::MAX),
            client_id: CLIENT_ID.get(io)?,
            client_secret: CLIENT_SECRET.get(io)?,
        })
    }
}

#[cfg(test)]
#[path = "settings_tests.rs"]
mod tests;
