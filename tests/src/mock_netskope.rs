//! An in-process mock of the Netskope REST API v2 dataexport alert iterator
//! (`GET /api/v2/events/dataexport/alerts/{alert_type}?index=…&operation=…`), served over
//! HTTP/1.1 on loopback. It follows `shared/vendor-apis.md` §4: token header auth with
//! per-type scopes, server-side bookmarks per (path, index) with epoch/head/tail/next/resend,
//! `wait_time` back-pressure (violations are recorded), per-token rate-limit headers, and
//! injectable faults (429, 503, 204, 409).
//!
//! This file owns the public API and the HTTP plumbing; `state` holds the iterator logic and
//! `alerts` the synthetic records.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use siphon_tests::mock_netskope::{MockConfig, MockNetskope};
//! let mock = MockNetskope::start(MockConfig { page_size: 100, ..MockConfig::default() }).await?;
//! mock.add_alerts("dlp", 250);
//! // point a collector at mock.base_url() with header `Netskope-Api-Token: test-token`
//! # Ok(()) }
//! ```

mod alerts;
mod state;
#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, ensure};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming as IncomingBody;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use state::{Body, Incoming, Inner};

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
    /// Print one line per request to stderr (the `mock-netskope` binary turns this on).
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

/// A fault served instead of data by [`MockNetskope::fail_next`]. Faults apply only to
/// requests that pass auth and validation, and never move the bookmark.
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

/// One request the mock received, with the status it was answered with.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// HTTP method, e.g. `GET`.
    pub method: String,
    /// Request path without the query.
    pub path: String,
    /// Query parameters, percent-decoded, in order.
    pub query: Vec<(String, String)>,
    /// Headers as received (names lowercase).
    pub headers: Vec<(String, String)>,
    /// When the request arrived.
    pub at: Instant,
    /// The status code sent back.
    pub status: u16,
}

impl RecordedRequest {
    /// The first query parameter named `key`.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The first header named `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A running mock tenant. The server stops on [`MockNetskope::shutdown`] or when this is
/// dropped.
pub struct MockNetskope {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
}

struct Shared {
    inner: Mutex<Inner>,
    log_requests: bool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, Inner> {
        // A test that panicked while holding the lock must not hide the state from the others.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl MockNetskope {
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
        let listener = TcpListener::bind(addr).await.with_context(|| format!("binding mock Netskope to {addr}"))?;
        let addr = listener.local_addr().context("reading the mock's bound address")?;
        let shared = Arc::new(Shared { log_requests: cfg.log_requests, inner: Mutex::new(Inner::new(cfg)) });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(MockNetskope { addr, shared, task: Some(task) })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT`, the authority a collector's allow-list must contain.
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    /// Appends `n` alerts to `alert_type` and returns their `_id`s. Timestamps never
    /// decrease and do not pass the wall clock. A type outside `alert_types` stores data
    /// that is never served.
    pub fn add_alerts(&self, alert_type: &str, n: usize) -> Vec<String> {
        self.shared.state().add_alerts(alert_type, n)
    }

    /// Every `_id` generated for `alert_type`, in order.
    pub fn ids(&self, alert_type: &str) -> Vec<String> {
        self.shared.state().ids(alert_type)
    }

    /// The exact JSON text of every alert of `alert_type`, in order, as it appears in pages.
    pub fn records(&self, alert_type: &str) -> Vec<String> {
        self.shared.state().records(alert_type)
    }

    /// How many records of `alert_type` the bookmark of `index` has moved past, or `None` if
    /// that index was never started.
    pub fn bookmark(&self, alert_type: &str, index: &str) -> Option<usize> {
        self.shared.state().bookmark(alert_type, index)
    }

    /// Every request received, in the order they were answered.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.state().requests.clone()
    }

    /// Serves `fault` to the next `n` requests of any alert type that would otherwise get
    /// data. Calls queue up: the first queued faults are used first.
    pub fn fail_next(&self, n: usize, fault: Fault) {
        self.shared.state().fail_next(n, fault, None);
    }

    /// Like [`MockNetskope::fail_next`], but only requests for `alert_type` match.
    pub fn fail_next_for(&self, alert_type: &str, n: usize, fault: Fault) {
        self.shared.state().fail_next(n, fault, Some(alert_type.to_string()));
    }

    /// Changes the `wait_time` reported from now on.
    pub fn set_wait_time(&self, secs: u64) {
        self.shared.state().set_wait_time(secs);
    }

    /// Descriptions of `next`/`resend` calls that came before the previous response's
    /// `wait_time` had elapsed on that index. Such calls are still answered normally.
    pub fn wait_violations(&self) -> Vec<String> {
        self.shared.state().violations.clone()
    }

    /// Stops accepting and drops open connections.
    pub async fn shutdown(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            // The task was aborted on purpose; its JoinError says only that.
            let _ = task.await;
        }
    }
}

impl Drop for MockNetskope {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Accepts connections until aborted. Connection tasks live in a `JoinSet` owned by this
/// future, so aborting it closes every connection too.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = Arc::clone(&shared);
                    conns.spawn(async move {
                        let service = service_fn(move |req| {
                            let shared = Arc::clone(&shared);
                            async move { Ok::<_, Infallible>(respond(&shared, req)) }
                        });
                        // A client hanging up mid-request is its business, not the mock's.
                        let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                    });
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

fn respond(shared: &Shared, req: Request<IncomingBody>) -> Response<Full<Bytes>> {
    let at = Instant::now();
    let incoming = Incoming {
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
        query: parse_query(req.uri().query().unwrap_or("")),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        at,
    };
    let line = shared.log_requests.then(|| {
        format!(
            "{} {}{}",
            incoming.method,
            incoming.path,
            req.uri().query().map(|q| format!("?{q}")).unwrap_or_default()
        )
    });
    let reply = shared.state().handle(incoming);
    let (content_type, body) = match reply.body {
        Body::Empty => (None, Bytes::new()),
        Body::Text(text) => (Some("application/json"), Bytes::from(text)),
        Body::Page { wait_time, records } => (Some("application/json"), render_page(wait_time, &records)),
    };
    if let Some(line) = line {
        eprintln!("mock-netskope: {line} -> {} ({} bytes)", reply.status, body.len());
    }
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = http::StatusCode::from_u16(reply.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = resp.headers_mut();
    if let Some(ct) = content_type {
        headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(ct));
    }
    for (name, value) in reply.headers {
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    resp
}

/// `{"ok":1,"wait_time":W,"result":[…]}` joined from pre-rendered records, so a full page
/// costs one allocation and a copy.
fn render_page(wait_time: u64, records: &[Arc<str>]) -> Bytes {
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
    Bytes::from(out)
}

/// Splits and percent-decodes an `application/x-www-form-urlencoded` query string.
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                // A stray '%' is kept as is, as lenient servers do.
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Wall-clock epoch seconds (0 if the clock is before 1970).
pub(crate) fn epoch_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
