//! A mock IBM Security Verify tenant (`shared/vendor-apis.md` §3) on the generic [`MockServer`]:
//! the client-credentials token endpoint (the shared [`OAuth`], form body only, `expires_in`
//! 7199, tokens that really expire) and `GET /v1.0/events`, as hostile as §3.8 says a tenant is:
//!
//! - `size` 1..=10000, default 50; `sort_order` default **desc**; `range_type` default `time`;
//!   `from`/`to` epoch ms, and without `from` or `after_*` only the **last 24 h**;
//! - `after_time` + `after_id` continue strictly after that `(sort value, id)` pair in the sort
//!   direction; ids are UUIDs compared as text, and events added together share one
//!   `indexed_at`, so ties cross page boundaries;
//! - without `all_events=yes` or `event_type` only management, sso and authentication; each
//!   `event_type` value must be in double quotes;
//! - an event is invisible until its `indexed_at` has passed; some are indexed hours after
//!   their `time` (late), and [`MockVerify::add_pending`] adds ones indexed in the future;
//! - the envelope `response.events.{search_after, events}` with `search_after.time` a string
//!   and `total_events` capped at 10,000; bodies ASCII-escaped;
//! - errors as `{"messageId", "messageDescription"}`: 400 naming the parameter, 401 for a
//!   missing, unknown or expired token, 403 for a client without the reports entitlement, 429
//!   with `Retry-After` past a per-window request budget.

mod events;
#[cfg(test)]
mod tests;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::http::{Request, Response};
use super::oauth::{ClientAuth, OAuth, OAuthConfig};
use super::{MockVendor, Streams};
use events::Event;

/// The token endpoint.
pub const TOKEN_PATH: &str = "/v1.0/endpoint/default/token";
/// The events endpoint.
pub const EVENTS_PATH: &str = "/v1.0/events";
/// Event types of §3.3 (the exact list varies by tenant).
pub const EVENT_TYPES: [&str; 15] = [
    "authentication",
    "sso",
    "management",
    "token",
    "fulfillment",
    "adaptive_risk",
    "cert_campaign",
    "access_request",
    "account_sync",
    "privacy_consent",
    "risk",
    "threat",
    "notice",
    "slo",
    "service",
];
/// What a request without `all_events=yes` or `event_type` gets.
pub const DEFAULT_TYPES: [&str; 3] = ["management", "sso", "authentication"];
/// The largest `size`; also the cap of `total_events`.
pub const MAX_SIZE: u64 = 10_000;

const HOUR_MS: u64 = 3_600_000;

/// How the mock tenant behaves. Build it with `..MockConfig::default()`.
#[derive(Clone, Debug)]
pub struct MockConfig {
    /// The API client's id.
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
    /// How long a token really works (`expires_in` stays 7199). Default 7199 s.
    pub token_lifetime: Duration,
    /// False: the client lacks the reports entitlement, so `/v1.0/events` answers 403.
    pub entitled: bool,
    /// Every this many events one is indexed late: its `time` is [`MockConfig::late_by`] before
    /// its `indexed_at`. 0 turns it off. Default 4.
    pub late_every: u64,
    /// How late a late event is indexed. Default 3 h.
    pub late_by: Duration,
    /// Events requests per window before the mock answers 429 itself. Default 600.
    pub rate_limit: u32,
    /// The window of [`MockConfig::rate_limit`]. Default 60 s.
    pub rate_window: Duration,
    /// `tenantname` of the events.
    pub tenant: String,
    /// Seed of the event generator.
    pub seed: u64,
    /// Print one line per request to stderr (the `mock-vendor` binary turns this on).
    pub log_requests: bool,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            client_id: "verify-client".to_owned(),
            client_secret: "verify-secret".to_owned(),
            token_lifetime: Duration::from_secs(7_199),
            entitled: true,
            late_every: 4,
            late_by: Duration::from_secs(3 * 3_600),
            rate_limit: 600,
            rate_window: Duration::from_secs(60),
            tenant: "acme.verify.ibm.com".to_owned(),
            seed: 0x1b3_7e21f,
            log_requests: false,
        }
    }
}

/// A running mock tenant; stops when dropped.
pub type MockVerify = MockVendor<Tenant>;

impl MockVendor<Tenant> {
    /// Starts the mock on `127.0.0.1` with a port the OS picks.
    pub async fn start(cfg: MockConfig) -> anyhow::Result<MockVerify> {
        Self::start_on(cfg, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Starts the mock on `addr` (port 0 picks a free port).
    pub async fn start_on(cfg: MockConfig, addr: SocketAddr) -> anyhow::Result<MockVerify> {
        let oauth_cfg = OAuthConfig {
            accepted: vec![ClientAuth::Form],
            expires_in: Some(7_199),
            lifetime: Some(cfg.token_lifetime),
            ..OAuthConfig::new(&cfg.client_id, &cfg.client_secret)
        };
        let oauth = OAuth::new(TOKEN_PATH, oauth_cfg);
        let log = cfg.log_requests;
        MockVendor::serve("ibm-verify", addr, log, Tenant::new(cfg), Some(oauth), |v, req| {
            if req.path != EVENTS_PATH {
                return error(404, "CSIAH0404E", &format!("The resource {} was not found.", req.path));
            }
            if req.method != "GET" {
                return error(405, "CSIAH0405E", "The method is not allowed.").header("allow", "GET");
            }
            if let Err(denied) = v.oauth().authorize(req) {
                return error(401, "CSIAH0617E", &format!("The access token is not valid ({denied:?})."));
            }
            // The page is joined outside the lock: a full one is 10,000 events.
            let page = v.state().query(req, now_ms());
            page.map_or_else(|e| e, |p| Response::json(200, p.render()))
        })
        .await
    }

    /// Adds `n` events of `event_type`, indexed now (one shared `indexed_at`, never before the
    /// last one), and returns their ids. They become visible a millisecond later.
    pub fn add_events(&self, event_type: &str, n: usize) -> Vec<String> {
        self.state().add(event_type, n)
    }

    /// Adds `n` events of `event_type` indexed `delay` from now: invisible until then.
    pub fn add_pending(&self, event_type: &str, n: usize, delay: Duration) -> Vec<String> {
        self.state().add_at(event_type, n, now_ms() + delay.as_millis() as u64)
    }

    /// Adds `n` events of `event_type` indexed at `indexed_at` (epoch ms), e.g. older than a
    /// look-back window.
    pub fn add_events_at(&self, event_type: &str, n: usize, indexed_at: u64) -> Vec<String> {
        self.state().add_at(event_type, n, indexed_at)
    }

    /// Grants or withdraws the reports entitlement (403 without it).
    pub fn set_entitled(&self, entitled: bool) {
        self.state().cfg.entitled = entitled;
    }
}

/// The tenant's events and counters.
pub struct Tenant {
    cfg: MockConfig,
    events: Vec<Event>,
    rng: StdRng,
    last_indexed: u64,
    /// Start (epoch ms) and count of the current rate-limit window.
    window: (u64, u32),
}

impl Streams for Tenant {
    fn add(&mut self, event_type: &str, n: usize) -> Vec<String> {
        let at = now_ms().max(self.last_indexed);
        self.add_at(event_type, n, at)
    }

    fn records(&self, event_type: &str) -> Vec<String> {
        self.of_type(event_type, |e| e.text.to_string())
    }

    fn keys(&self, event_type: &str) -> Vec<String> {
        self.of_type(event_type, |e| e.id.clone())
    }
}

/// One answered query: what the envelope needs, events pre-rendered.
struct Page {
    total: usize,
    last: Option<(u64, String)>,
    events: Vec<Arc<str>>,
}

impl Tenant {
    fn new(cfg: MockConfig) -> Tenant {
        let rng = StdRng::seed_from_u64(cfg.seed);
        Tenant { cfg, events: Vec::new(), rng, last_indexed: 0, window: (0, 0) }
    }

    /// `f` of every event of `event_type`, in the order added.
    fn of_type(&self, event_type: &str, f: impl Fn(&Event) -> String) -> Vec<String> {
        self.events.iter().filter(|e| e.event_type == event_type).map(f).collect()
    }

    fn add_at(&mut self, event_type: &str, n: usize, indexed_at: u64) -> Vec<String> {
        self.last_indexed = self.last_indexed.max(indexed_at);
        (0..n)
            .map(|_| {
                let serial = self.events.len() as u64;
                let late = self.cfg.late_every > 0 && serial % self.cfg.late_every == self.cfg.late_every - 1;
                let lag = if late { self.cfg.late_by.as_millis() as u64 } else { self.rng.random_range(20..900) };
                let time = indexed_at.saturating_sub(lag);
                let e = events::event(&mut self.rng, &self.cfg.tenant, event_type, time, indexed_at, serial);
                let id = e.id.clone();
                self.events.push(e);
                id
            })
            .collect()
    }

    fn query(&mut self, req: &Request, now: u64) -> Result<Page, Response> {
        if !self.cfg.entitled {
            let why = "The API client is not entitled to read events: grant it Read reports (readReports).";
            return Err(error(403, "CSIAH0618E", why));
        }
        self.rate_limit(now)?;
        let size = number(req, "size")?.unwrap_or(50);
        if !(1..=MAX_SIZE).contains(&size) {
            return Err(invalid(&format!(
                "The value [{size}] of the [size] parameter must be between 1 and {MAX_SIZE}."
            )));
        }
        let asc = match req.param("sort_order") {
            None | Some("desc") => false,
            Some("asc") => true,
            Some(v) => return Err(invalid(&format!("The value [{v}] of the [sort_order] parameter is not valid."))),
        };
        let by_indexed = match req.param("range_type") {
            None | Some("time") => false,
            Some("indexed_at") => true,
            Some(v) => return Err(invalid(&format!("The value [{v}] of the [range_type] parameter is not valid."))),
        };
        let after = match (number(req, "after_time")?, req.param("after_id")) {
            (Some(t), Some(id)) => Some((t, id.to_owned())),
            (None, None) => None,
            _ => return Err(invalid("The [after_time] and [after_id] parameters must be given together.")),
        };
        // No bounds at all: the last 24 hours only.
        let from = number(req, "from")?.unwrap_or(if after.is_none() { now.saturating_sub(24 * HOUR_MS) } else { 0 });
        let to = number(req, "to")?.unwrap_or(now);
        let types = types(req)?;
        let key = |e: &Event| if by_indexed { e.indexed_at } else { e.time };
        let ordered = |e: &Event, (t, id): &(u64, String)| {
            let c = (key(e), e.id.as_str()).cmp(&(*t, id.as_str()));
            if asc { c.is_gt() } else { c.is_lt() }
        };
        let mut hits: Vec<&Event> = self
            .events
            .iter()
            .filter(|e| e.indexed_at < now && (from..=to).contains(&key(e)))
            .filter(|e| types.as_ref().is_none_or(|t| t.contains(&e.event_type)))
            .filter(|e| after.as_ref().is_none_or(|a| ordered(e, a)))
            .collect();
        hits.sort_by(|a, b| {
            let c = (key(a), &a.id).cmp(&(key(b), &b.id));
            if asc { c } else { c.reverse() }
        });
        let total = hits.len();
        hits.truncate(size as usize);
        let last = hits.last().map(|e| (key(e), e.id.clone()));
        Ok(Page { total, last, events: hits.iter().map(|e| Arc::clone(&e.text)).collect() })
    }

    fn rate_limit(&mut self, now: u64) -> Result<(), Response> {
        let window = self.cfg.rate_window.as_millis() as u64;
        if now >= self.window.0 + window {
            self.window = (now, 0);
        }
        self.window.1 += 1;
        if self.window.1 <= self.cfg.rate_limit {
            return Ok(());
        }
        let wait = (self.window.0 + window - now).div_ceil(1_000);
        Err(error(429, "CSIAH0429E", "Too many requests.").header("retry-after", wait))
    }
}

impl Page {
    fn render(&self) -> String {
        let position = match &self.last {
            Some((t, id)) => format!(r#","time":"{t}","id":"{id}""#),
            None => String::new(),
        };
        let capped = self.total as u64 > MAX_SIZE;
        let mut out = format!(
            "{{\"response\":{{\"events\":{{\"search_after\":{{\"total_events\":{},\"max_size_limit\":\"{capped}\"{position}}},\"events\":[",
            (self.total as u64).min(MAX_SIZE)
        );
        out.reserve(self.events.iter().map(|e| e.len() + 2).sum());
        for (i, e) in self.events.iter().enumerate() {
            out.push_str(if i == 0 { "\n" } else { ",\n" });
            out.push_str(e);
        }
        out.push_str("]}}}");
        out
    }
}

/// The types a request asks for; `None` = all.
fn types(req: &Request) -> Result<Option<Vec<String>>, Response> {
    if let Some(list) = req.param("event_type") {
        let quoted = |v: &str| v.len() >= 2 && v.starts_with('"') && v.ends_with('"');
        return list
            .split(',')
            .map(|v| match v.trim() {
                v if quoted(v) => Ok(v[1..v.len() - 1].to_owned()),
                v => Err(invalid(&format!("The value [{v}] of the [event_type] parameter must be in double quotes."))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some);
    }
    match req.param("all_events") {
        Some("yes") => Ok(None),
        None | Some("no") => Ok(Some(DEFAULT_TYPES.iter().map(|t| t.to_string()).collect())),
        Some(v) => Err(invalid(&format!("The value [{v}] of the [all_events] parameter must be yes or no."))),
    }
}

fn number(req: &Request, key: &str) -> Result<Option<u64>, Response> {
    req.param(key)
        .map(|v| v.parse().map_err(|_| invalid(&format!("The value [{v}] of the [{key}] parameter is not a number."))))
        .transpose()
}

fn invalid(description: &str) -> Response {
    error(400, "CSIAQ0158E", description)
}

/// Verify's error shape.
fn error(status: u16, id: &str, description: &str) -> Response {
    Response::json(status, serde_json::json!({ "messageId": id, "messageDescription": description }).to_string())
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
