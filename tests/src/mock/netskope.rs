//! A mock of the Netskope REST API v2 dataexport alert iterator
//! (`GET /api/v2/events/dataexport/alerts/{alert_type}?index=…&operation=…`) on the generic
//! [`MockServer`]. It follows `shared/vendor-apis.md` §4: token header auth with per-type scopes,
//! server-side bookmarks per (path, index) with epoch/head/tail/next/resend, `wait_time`
//! back-pressure (violations are recorded), per-token rate-limit headers, and Netskope-shaped
//! faults (429, 503, 204, 409) besides the server's generic ones.
//!
//! This file owns the public API and the handler; `state` holds the iterator logic and `alerts`
//! the synthetic records.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use siphon_tests::mock::netskope::{MockConfig, MockNetskope};
//! let mock = MockNetskope::start(MockConfig { page_size: 100, ..MockConfig::default() }).await?;
//! mock.add_alerts("dlp", 250);
//! // point a collector at mock.base_url() with header `Netskope-Api-Token: test-token`
//! # Ok(()) }
//! ```

mod alerts;
mod state;
#[cfg(test)]
mod tests;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::ensure;

pub use super::server::RecordedRequest;
use super::server::{self, FaultRule, Response};
use super::vendor::{MockVendor, Streams};
use state::Body;
pub use state::{ALERTS_PREFIX, Tenant};

/// The alert types of §4.2, all known to the mock by default.
pub const ALERT_TYPES: [&str; 13] = [
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
    "device",
    "content",
];

/// The largest page Netskope serves (§4.2); a full page means "more is waiting".
pub const MAX_PAGE_SIZE: usize = 10_000;

/// How the mock tenant behaves. Build it with `..MockConfig::default()`.
#[derive(Clone, Debug)]
pub struct MockConfig {
    /// The one valid `Netskope-Api-Token` value. Any other value gets 403.
    pub token: String,
    /// Alert types (lowercase, as in the path) that exist; any other type gets 404
    /// "This dataexporter does not exist". Default: the 13 types of §4.2.
    pub alert_types: Vec<String>,
    /// Records per page, 1..=10,000. Default 10,000, the real maximum.
    pub page_size: usize,
    /// Seconds reported as `wait_time` in every 200 response. Default 0.
    pub wait_time: u64,
    /// When set, the token may read only these alert types; the others get 403, as a token
    /// lacking the endpoint's scope does (§4.6). `None` grants every type.
    pub scopes: Option<Vec<String>>,
    /// Epoch seconds of the first alert of each type. `None` means two hours before start.
    pub base_epoch: Option<u64>,
    /// Seed of the record generator: the same seed and calls give the same bytes.
    pub seed: u64,
    /// Requests per token per window before the mock answers 429 itself. Default 600, so
    /// ordinary tests never hit it; lower it to test rate limiting.
    pub rate_limit: u32,
    /// Length of the rate-limit window in seconds. Default 60.
    pub rate_window_secs: u64,
    /// Print one line per request to stderr (the `mock-vendor` binary turns this on).
    pub log_requests: bool,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            token: "test-token".to_string(),
            alert_types: ALERT_TYPES.iter().map(|t| t.to_string()).collect(),
            page_size: MAX_PAGE_SIZE,
            wait_time: 0,
            scopes: None,
            base_epoch: None,
            seed: 0x5195_0a1e,
            rate_limit: 600,
            rate_window_secs: 60,
            log_requests: false,
        }
    }
}

/// A Netskope-shaped fault served instead of data by [`MockNetskope::fail_next`]. Like every
/// queued fault it is served before the tenant sees the request, so it never moves a bookmark
/// (nor counts against the rate limit). Transport faults — resets, cut bodies, delays, HTML
/// pages — go to [`MockNetskope::server`]'s queue directly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 429 with `Retry-After: N`, `ratelimit-remaining: 0` and `ratelimit-reset: N`.
    TooManyRequests {
        /// The `Retry-After` value in seconds.
        retry_after_secs: u64,
    },
    /// 503 with a `{"message":…}` body.
    ServiceUnavailable,
    /// 204 with no body, which some tenants send for an empty page.
    NoContent,
    /// 409, seen when one index is used concurrently.
    Conflict,
}

impl Fault {
    fn served(self) -> server::Fault {
        match self {
            Fault::TooManyRequests { retry_after_secs } => server::Fault::too_many_requests(retry_after_secs),
            Fault::ServiceUnavailable => server::Fault::Respond(message(503, "Service temporarily unavailable")),
            Fault::NoContent => server::Fault::Respond(Response::new(204)),
            Fault::Conflict => server::Fault::Respond(message(409, "Conflict: the index is in use by another request")),
        }
    }
}

/// A running mock tenant. The server stops on [`MockVendor::shutdown`] or when this is dropped.
pub type MockNetskope = MockVendor<Tenant>;

impl MockVendor<Tenant> {
    /// Starts the mock on `127.0.0.1` with a port the OS picks.
    pub async fn start(cfg: MockConfig) -> anyhow::Result<MockNetskope> {
        Self::start_on(cfg, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Starts the mock on `addr` (port 0 picks a free port).
    pub async fn start_on(cfg: MockConfig, addr: SocketAddr) -> anyhow::Result<MockNetskope> {
        ensure!(
            (1..=MAX_PAGE_SIZE).contains(&cfg.page_size),
            "page_size must be 1..={MAX_PAGE_SIZE}, got {}",
            cfg.page_size
        );
        let log = cfg.log_requests;
        MockVendor::serve("netskope", addr, log, Tenant::new(cfg), None, |tenant, req| {
            // The page is joined outside the lock: a full one is 10,000 records.
            let reply = tenant.state().handle(req);
            let body = match reply.body {
                Body::Text(text) => text,
                Body::Page { wait_time, records } => render_page(wait_time, &records),
            };
            let mut response = Response::json(reply.status, body);
            response.headers.extend(reply.headers);
            response
        })
        .await
    }

    /// Appends `n` alerts to `alert_type` and returns their `_id`s. Timestamps never
    /// decrease and do not pass the wall clock. A type outside `alert_types` stores data
    /// that is never served.
    pub fn add_alerts(&self, alert_type: &str, n: usize) -> Vec<String> {
        self.state().add(alert_type, n)
    }

    /// Every `_id` generated for `alert_type`, in order.
    pub fn ids(&self, alert_type: &str) -> Vec<String> {
        self.state().keys(alert_type)
    }

    /// The exact JSON text of every alert of `alert_type`, in order, as it appears in pages.
    pub fn records(&self, alert_type: &str) -> Vec<String> {
        Streams::records(&*self.state(), alert_type)
    }

    /// How many records of `alert_type` the bookmark of `index` has moved past, or `None` if
    /// that index was never started.
    pub fn bookmark(&self, alert_type: &str, index: &str) -> Option<usize> {
        self.state().bookmark(alert_type, index)
    }

    /// Every request received (the last [`server::MAX_LOGGED`]), in the order they were answered.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.server().requests()
    }

    /// Serves `fault` to the next `n` alert requests of any type. Calls queue up: the first
    /// queued faults are used first.
    pub fn fail_next(&self, n: usize, fault: Fault) {
        self.server().push_fault(FaultRule::new(fault.served()).method("GET").path(ALERTS_PREFIX).times(n));
    }

    /// Like [`MockNetskope::fail_next`], but only requests for `alert_type` match.
    pub fn fail_next_for(&self, alert_type: &str, n: usize, fault: Fault) {
        let path = format!("{ALERTS_PREFIX}{alert_type}");
        self.server().push_fault(FaultRule::new(fault.served()).method("GET").path(&path).times(n));
    }

    /// Changes the `wait_time` reported from now on.
    pub fn set_wait_time(&self, secs: u64) {
        self.state().set_wait_time(secs);
    }

    /// Descriptions of `next`/`resend` calls that came before the previous response's
    /// `wait_time` had elapsed on that index. Such calls are still answered normally.
    pub fn wait_violations(&self) -> Vec<String> {
        self.state().violations.clone()
    }
}

/// `{"message": …}` with `status`, Netskope's error shape.
fn message(status: u16, message: &str) -> Response {
    Response::json(status, message_json(message))
}

/// `{"message": …}`.
fn message_json(message: &str) -> String {
    serde_json::json!({ "message": message }).to_string()
}

/// `{"ok":1,"wait_time":W,"result":[…]}` joined from pre-rendered records, so a full page
/// costs one allocation and a copy.
fn render_page(wait_time: u64, records: &[Arc<str>]) -> String {
    let head = format!("{{\"ok\":1,\"wait_time\":{wait_time},\"result\":[");
    let len = head.len() + records.iter().map(|r| r.len() + 1).sum::<usize>() + 2;
    let mut out = String::with_capacity(len);
    out.push_str(&head);
    for (i, record) in records.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(record);
    }
    out.push_str("]}");
    out
}

/// Wall-clock epoch seconds (0 if the clock is before 1970).
pub(crate) fn epoch_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
