//! The collector's settings: their declarations for `info`, their defaults,
//! and parsing plus validation from the source's configuration.
//!
//! Parsing takes a lookup function instead of calling the host, so every rule
//! here is unit-tested natively.

use siphon_sdk::config::{invalid, parse_list, parse_u64};
use siphon_sdk::{Error, SettingSpec};

/// The standard alert types of the dataexport iterator (vendor-apis.md §4.2).
/// `device` and `content` exist only on newer tenants, so they are opt-in.
pub const DEFAULT_ALERT_TYPES: [&str; 11] = [
    "compromisedcredential",
    "ctep",
    "dlp",
    "malsite",
    "malware",
    "policy",
    "quarantine",
    "remediation",
    "securityassessment",
    "uba",
    "watchlist",
];

/// Name of the secret holding the REST API v2 token.
pub const API_TOKEN: &str = "api_token";

const DEFAULT_LOOKBACK_HOURS: u64 = 24;
const DEFAULT_MAX_PAGES_PER_RUN: u64 = 50;
const DEFAULT_MAX_WAIT_SECONDS: u64 = 60;
/// Netskope's page size: a page this long means more data is waiting.
const DEFAULT_FULL_PAGE: u64 = 10_000;

/// Validated settings of one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `https://<tenant>.goskope.com`, without a trailing slash.
    pub base_url: String,
    /// Alert types to read, in order, lowercase, without duplicates.
    pub alert_types: Vec<String>,
    /// Name of the server-side iterator bookmark.
    pub index: String,
    /// How far back a type's first run starts.
    pub lookback_hours: u64,
    /// Most fetches per alert type in one run.
    pub max_pages_per_run: u32,
    /// Longest sleep within a run; longer waits end the type for this run.
    pub max_wait_seconds: u64,
    /// Records in a full page; a shorter page means caught up.
    pub full_page: usize,
}

/// Declarations of every setting and secret, for `info`.
pub fn specs() -> Vec<SettingSpec> {
    vec![
        SettingSpec::required(
            "base_url",
            "Tenant URL, e.g. https://acme.goskope.com (regional tenants: the full host name)",
        ),
        SettingSpec::optional(
            "alert_types",
            "Alert types to read, as a list or comma-separated (add device or content on tenants that have them)",
            DEFAULT_ALERT_TYPES.join(","),
        ),
        SettingSpec::optional(
            "index",
            "Name of the server-side iterator bookmark; must be unique per deployment: \
             two consumers of one index split the data between them",
            "siphon-<source name>",
        ),
        SettingSpec::optional(
            "lookback_hours",
            "Hours of history a type's first run starts from",
            DEFAULT_LOOKBACK_HOURS.to_string(),
        ),
        SettingSpec::optional(
            "max_pages_per_run",
            "Most pages fetched per alert type in one run",
            DEFAULT_MAX_PAGES_PER_RUN.to_string(),
        ),
        SettingSpec::optional(
            "max_wait_seconds",
            "Longest in-run sleep for Netskope's wait_time or rate-limit reset; \
             longer waits end the alert type for this run",
            DEFAULT_MAX_WAIT_SECONDS.to_string(),
        ),
        SettingSpec::optional(
            "full_page",
            "Records in a full page; a shorter page means the type is caught up",
            DEFAULT_FULL_PAGE.to_string(),
        ),
        SettingSpec::secret(
            API_TOKEN,
            "REST API v2 token with read scope on each alert type's dataexport endpoint",
            true,
        ),
    ]
}

impl Settings {
    /// Parses and validates the settings of source `source_name`, reading
    /// each key through `get`.
    pub fn parse(source_name: &str, get: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let u64_or = |key: &str, default: u64| -> Result<u64, Error> {
            get(key).map_or(Ok(default), |v| parse_u64(&v).map_err(|why| invalid(key, &v, &why)))
        };
        let at_least_one = |key: &str, value: u64| -> Result<u64, Error> {
            if value == 0 { Err(invalid(key, "0", "must be at least 1")) } else { Ok(value) }
        };

        let base_url = match get("base_url") {
            Some(v) => parse_base_url(&v)?,
            None => {
                return Err(Error::Config("setting `base_url` is required, e.g. https://acme.goskope.com".into()));
            }
        };
        let alert_types = match get("alert_types") {
            Some(v) => parse_alert_types(&v)?,
            None => DEFAULT_ALERT_TYPES.iter().map(|t| t.to_string()).collect(),
        };
        let index = match get("index") {
            Some(v) if v.trim().is_empty() => {
                return Err(invalid("index", &v, "must not be empty"));
            }
            Some(v) => v.trim().to_string(),
            None => format!("siphon-{source_name}"),
        };
        let max_pages = at_least_one("max_pages_per_run", u64_or("max_pages_per_run", DEFAULT_MAX_PAGES_PER_RUN)?)?;
        let full_page = at_least_one("full_page", u64_or("full_page", DEFAULT_FULL_PAGE)?)?;
        Ok(Self {
            base_url,
            alert_types,
            index,
            lookback_hours: u64_or("lookback_hours", DEFAULT_LOOKBACK_HOURS)?,
            max_pages_per_run: u32::try_from(max_pages).unwrap_or(u32::MAX),
            max_wait_seconds: u64_or("max_wait_seconds", DEFAULT_MAX_WAIT_SECONDS)?,
            full_page: usize::try_from(full_page).unwrap_or(usize::MAX),
        })
    }
}

fn parse_base_url(value: &str) -> Result<String, Error> {
    let url = value.trim().trim_end_matches('/');
    let lower = url.to_ascii_lowercase();
    let host = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://"));
    match host {
        None => Err(invalid("base_url", value, "must start with https://")),
        Some("") => Err(invalid("base_url", value, "has no host name")),
        Some(h) if h.contains(['?', '#']) => Err(invalid("base_url", value, "must not contain a query or fragment")),
        Some(_) => Ok(url.to_string()),
    }
}

fn parse_alert_types(value: &str) -> Result<Vec<String>, Error> {
    let items = parse_list(value).map_err(|why| invalid("alert_types", value, &why))?;
    let mut types: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let t = item.to_ascii_lowercase();
        // The type becomes a path segment: allow only what Netskope names use.
        if !t.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-') {
            return Err(invalid("alert_types", value, &format!("`{item}` is not an alert type name")));
        }
        if !types.contains(&t) {
            types.push(t);
        }
    }
    if types.is_empty() {
        return Err(invalid("alert_types", value, "names no alert type"));
    }
    Ok(types)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<Settings, Error> {
        Settings::parse("prod", |k| pairs.iter().find(|(key, _)| *key == k).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn defaults() {
        let s = parse(&[("base_url", "https://acme.goskope.com/")]).unwrap();
        assert_eq!(s.base_url, "https://acme.goskope.com");
        assert_eq!(s.alert_types.len(), 11);
        assert_eq!(s.index, "siphon-prod");
        assert_eq!((s.lookback_hours, s.max_pages_per_run, s.max_wait_seconds, s.full_page), (24, 50, 60, 10_000));
    }

    #[test]
    fn explicit_values() {
        let s = parse(&[
            ("base_url", "http://127.0.0.1:8080"),
            ("alert_types", r#"["DLP", "malware", "dlp"]"#),
            ("index", " acme-siem-01 "),
            ("lookback_hours", "0"),
            ("max_pages_per_run", "3"),
            ("max_wait_seconds", "5"),
            ("full_page", "100"),
        ])
        .unwrap();
        assert_eq!(s.alert_types, ["dlp", "malware"]);
        assert_eq!(s.index, "acme-siem-01");
        assert_eq!((s.lookback_hours, s.max_pages_per_run, s.max_wait_seconds, s.full_page), (0, 3, 5, 100));
    }

    #[test]
    fn rejects_bad_values() {
        let cases: &[&[(&str, &str)]] = &[
            &[],
            &[("base_url", "acme.goskope.com")],
            &[("base_url", "https://")],
            &[("base_url", "https://a/?x")],
            &[("base_url", "https://a"), ("alert_types", "dlp,../events")],
            &[("base_url", "https://a"), ("alert_types", " , ")],
            &[("base_url", "https://a"), ("index", " ")],
            &[("base_url", "https://a"), ("max_pages_per_run", "0")],
            &[("base_url", "https://a"), ("full_page", "-1")],
            &[("base_url", "https://a"), ("lookback_hours", "1.5")],
        ];
        for case in cases {
            assert!(matches!(parse(case), Err(Error::Config(_))), "{case:?}");
        }
    }

    #[test]
    fn every_spec_has_a_description_and_defaults_only_when_optional() {
        for s in specs() {
            assert!(!s.description.is_empty());
            assert!(!(s.required && s.default_value.is_some()), "{}", s.name);
        }
    }
}
