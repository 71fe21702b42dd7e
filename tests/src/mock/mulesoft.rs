//! A mock MuleSoft Anypoint control plane (`shared/vendor-apis.md` §2) on the vendor kit
//! ([`MockVendor`]): the Connected App token endpoint (the shared [`OAuth`]: form, JSON or Basic
//! client credentials, **no `expires_in`** as in the documented example, tokens that expire) and
//! the Audit Log Query API v2, as hostile as §2.9 and the collector issue say a tenant is:
//!
//! - `POST /audit/v2/organizations/{org}/query` with a JSON body: `startDate`/`endDate` as epoch ms
//!   or ISO-8601, both **inclusive**; `limit` 1..=200 (more is 400); `ascending` (default true);
//!   **offset mode** (`offset`, answers carry `total`) or **cursor mode** (`?cursorPagination=true`:
//!   `cursor` names the last entry returned, and only non-empty pages carry one);
//! - entries have **no id**; many share a millisecond, some are one action **split** into parts
//!   with one `anypointTransactionId`; payloads hold integers above 2^53 and 2^64;
//! - entries can become visible **late** (eventual consistency), after later ones;
//! - a **per-minute quota** of query calls, answered with an **HTML 503** and no `Retry-After`
//!   until the wall-clock minute ends; [`MockMulesoft::rate_limit_next`] serves 429s with
//!   `X-RateLimit-*` instead;
//! - 401 for a missing, unknown or expired token, 403 without the View Audit Log permission, 404
//!   for another organization, errors as `{"message": …}`.

mod audit;
#[cfg(test)]
mod tests;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::oauth::{OAuth, OAuthConfig};
use super::server::{Fault, FaultRule, Response};
use super::vendor::{MockVendor, Streams};
pub use audit::Tenant;

/// The token endpoint.
pub const TOKEN_PATH: &str = "/accounts/api/v2/oauth2/token";
/// Where every audit request goes (then `{org}/query`).
pub const AUDIT_PREFIX: &str = "/audit/v2/organizations/";
/// The largest `limit` of a JSON query.
pub const MAX_LIMIT: u64 = 200;
/// The one stream: the organization's audit log.
pub const STREAM: &str = "audit";
/// The body of a quota answer, as a load balancer sends it.
pub const QUOTA_PAGE: &str = "<html><head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n\
                              <center><h1>503 Service Temporarily Unavailable</h1></center>\r\n</body></html>\r\n";

/// How the mock control plane behaves. Build it with `..MockConfig::default()`.
#[derive(Clone, Debug)]
pub struct MockConfig {
    /// The organization (business group) whose audit log exists.
    pub org_id: String,
    /// The Connected App's client id.
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
    /// How long a token really works; the answer has no `expires_in`. Default 60 min.
    pub token_lifetime: Duration,
    /// False: the app lacks the View Audit Log permission, so queries get 403.
    pub permitted: bool,
    /// Query calls per wall-clock minute; more get the HTML 503 until the minute ends. Default
    /// 700 (the US plane); the EU and Gov planes allow 40.
    pub quota_per_minute: u32,
    /// Most entries sharing one millisecond. Default 4.
    pub max_group: usize,
    /// Every this many entries one becomes visible [`MockConfig::late_by`] after its timestamp
    /// (0: none). Default 0.
    pub late_every: u64,
    /// How late a late entry becomes visible. Default 2 s.
    pub late_by: Duration,
    /// New entries are timestamped this long before they are added. Default 0.
    pub age: Duration,
    /// Seed of the entry generator.
    pub seed: u64,
    /// Print one line per request to stderr (the `mock-vendor` binary turns this on).
    pub log_requests: bool,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            org_id: "3f1c6a2e-7b5d-4c1e-9a2f-0d8e7c6b5a41".to_owned(),
            client_id: "mule-client".to_owned(),
            client_secret: "mule-secret".to_owned(),
            token_lifetime: Duration::from_secs(3_600),
            permitted: true,
            quota_per_minute: 700,
            max_group: 4,
            late_every: 0,
            late_by: Duration::from_secs(2),
            age: Duration::ZERO,
            seed: 0x4d75_1e50,
            log_requests: false,
        }
    }
}

/// A running mock control plane; stops when dropped.
pub type MockMulesoft = MockVendor<Tenant>;

impl MockVendor<Tenant> {
    /// Starts the mock on `127.0.0.1` with a port the OS picks.
    pub async fn start(cfg: MockConfig) -> anyhow::Result<MockMulesoft> {
        Self::start_on(cfg, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Starts the mock on `addr` (port 0 picks a free port).
    pub async fn start_on(cfg: MockConfig, addr: SocketAddr) -> anyhow::Result<MockMulesoft> {
        let oauth_cfg = OAuthConfig {
            expires_in: None,
            lifetime: Some(cfg.token_lifetime),
            ..OAuthConfig::new(&cfg.client_id, &cfg.client_secret)
        };
        let oauth = OAuth::new(TOKEN_PATH, oauth_cfg);
        let (log, rng) = (cfg.log_requests, StdRng::seed_from_u64(cfg.seed));
        let tenant = Tenant { cfg, entries: Vec::new(), rng, minute: (0, 0) };
        MockVendor::serve("mulesoft", addr, log, tenant, Some(oauth), |vendor, req| {
            let authorized = vendor.oauth().authorize(req).map(drop);
            // The page is built under the lock: at most 200 entries.
            vendor.state().handle(req, authorized, now_ms())
        })
        .await
    }

    /// Path of the organization's query endpoint.
    pub fn query_path(&self) -> String {
        format!("{AUDIT_PREFIX}{}/query", self.state().cfg.org_id)
    }

    /// Adds `n` entries now (see [`MockConfig::age`]) and returns their texts.
    pub fn add_entries(&self, n: usize) -> Vec<String> {
        self.state().add_at(n, now_ms())
    }

    /// Grants or withdraws the View Audit Log permission (403 without it).
    pub fn set_permitted(&self, permitted: bool) {
        self.state().cfg.permitted = permitted;
    }

    /// Changes the per-minute quota.
    pub fn set_quota(&self, per_minute: u32) {
        self.state().cfg.quota_per_minute = per_minute;
    }

    /// Answers the next `times` queries with 429 and `X-RateLimit-*` headers (reset at the next
    /// minute, in epoch seconds), as community reports describe the accounts API.
    pub fn rate_limit_next(&self, times: usize) {
        let reset = now_ms() / 60_000 * 60 + 60;
        let answer = Response::json(429, r#"{"message":"Too many requests"}"#)
            .header("x-ratelimit-limit", 40)
            .header("x-ratelimit-remaining", 0)
            .header("x-ratelimit-reset", reset);
        self.server().push_fault(FaultRule::new(Fault::Respond(answer)).path(AUDIT_PREFIX).times(times));
    }

    /// Every entry, in the order added, as served.
    pub fn entries(&self) -> Vec<String> {
        self.state().entries.iter().map(|e| e.text.clone()).collect()
    }
}

impl Streams for Tenant {
    /// Entries have no key but their content: the keys are the texts.
    fn add(&mut self, stream: &str, n: usize) -> Vec<String> {
        assert_eq!(stream, STREAM, "the MuleSoft mock has one stream");
        self.add_at(n, now_ms())
    }

    fn records(&self, stream: &str) -> Vec<String> {
        assert_eq!(stream, STREAM, "the MuleSoft mock has one stream");
        self.entries.iter().map(|e| e.text.clone()).collect()
    }

    fn keys(&self, stream: &str) -> Vec<String> {
        self.records(stream)
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
