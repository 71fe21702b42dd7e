//! The one mock HTTP/1.1 server every vendor mock is written on: it listens on loopback, hands each
//! request — method, path, decoded query, headers, body — to a vendor [`Handler`], keeps a log of
//! what came and what went back, and serves queued [`Fault`]s before the handler sees a request.
//!
//! Everything is bounded: the log keeps the last [`MAX_LOGGED`] requests, bodies over [`MAX_BODY`]
//! get 413, at most [`MAX_CONNECTIONS`] connections are served at once, headers and bodies must
//! arrive within [`READ_TIMEOUT`], a fault queue holds at most [`MAX_FAULT_RULES`] rules and a delay
//! lasts at most [`MAX_DELAY`]. Dropping the server stops it: the listener closes at once, requests
//! in progress get [`SHUTDOWN_GRACE`] to finish, then their connections are closed.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use siphon_tests::mock::server::{Fault, FaultRule, MockServer, Request, Response};
//! let server = MockServer::start(|req: &Request| match req.path.as_str() {
//!     "/v1/events" => Response::json(200, r#"{"events":[]}"#),
//!     _ => Response::json(404, r#"{"error":"not found"}"#),
//! })
//! .await?;
//! server.push_fault(FaultRule::new(Fault::too_many_requests(1)).path("/v1/").times(2));
//! server.push_fault(FaultRule::new(Fault::Truncate).method("GET"));
//! // point a collector at server.base_url(); later: server.requests() to see what it sent
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Deref;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::http::parse_query;
pub use super::http::{Request, Response};

/// Requests kept in the log; older ones are dropped first (see [`MockServer::dropped_from_log`]).
pub const MAX_LOGGED: usize = 50_000;
/// Largest request body accepted; a larger one gets 413 without reaching the handler.
pub const MAX_BODY: usize = 16 << 20;
/// Connections served at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 256;
/// Time a client has to send a request's headers, and then its body.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Rules a fault queue holds at once.
pub const MAX_FAULT_RULES: usize = 1_000;
/// Longest [`Fault::Delay`].
pub const MAX_DELAY: Duration = Duration::from_secs(300);
/// How long requests in progress may still run after the server is stopped.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// How long a [`Fault::Truncate`] answer stays open after the partial body, so it is flushed before
/// the connection closes.
const TRUNCATE_LINGER: Duration = Duration::from_millis(50);

/// A vendor's request logic: one answer per request, computed without blocking (delays are
/// [`Fault::Delay`]s). Any `Fn(&Request) -> Response` is one.
pub trait Handler: Send + Sync + 'static {
    /// The answer to `request`.
    fn handle(&self, request: &Request) -> Response;
}

impl<F> Handler for F
where
    F: Fn(&Request) -> Response + Send + Sync + 'static,
{
    fn handle(&self, request: &Request) -> Response {
        self(request)
    }
}

/// What a request matching a [`FaultRule`] gets instead of (or on top of) the handler's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// This answer; the handler never sees the request.
    Respond(Response),
    /// Wait this long (at most [`MAX_DELAY`]), then let the handler answer.
    Delay(Duration),
    /// Reset the connection (TCP RST) without answering; the handler never sees the request.
    Reset,
    /// The handler answers (and its state moves on: a consume-once page is gone), then the
    /// connection is reset instead of sending that answer.
    LostAnswer,
    /// The handler's answer with its full `Content-Length`, but only the first half of the body
    /// (none of an empty one, declared as one byte); then the connection closes.
    Truncate,
}

impl Fault {
    /// `status` with `body`: JSON when it looks like JSON, else plain text.
    pub fn status(status: u16, body: &str) -> Fault {
        let trimmed = body.trim_start();
        let response = if trimmed.starts_with('{') || trimmed.starts_with('[') {
            Response::json(status, body.to_owned())
        } else {
            Response::text(status, body.to_owned())
        };
        Fault::Respond(response)
    }

    /// 503 with an HTML page, as a load balancer in front of a vendor (or MuleSoft over its
    /// per-minute quota) answers.
    pub fn html_503() -> Fault {
        Fault::Respond(Response::html(
            503,
            "<html><head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n\
             <center><h1>503 Service Temporarily Unavailable</h1></center>\r\n</body></html>\r\n",
        ))
    }

    /// 429 with `Retry-After: secs` and the RateLimit headers of an exhausted window.
    pub fn too_many_requests(retry_after_secs: u64) -> Fault {
        Fault::Respond(
            Response::json(429, r#"{"message":"Too many requests"}"#)
                .header("retry-after", retry_after_secs)
                .header("ratelimit-remaining", 0)
                .header("ratelimit-reset", retry_after_secs),
        )
    }

    /// A short name for the request log.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Respond(_) => "respond",
            Fault::Delay(_) => "delay",
            Fault::Reset => "reset",
            Fault::LostAnswer => "lost-answer",
            Fault::Truncate => "truncate",
        }
    }
}

/// Which requests get a [`Fault`], and how many times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultRule {
    /// What a matching request gets.
    pub fault: Fault,
    /// Only requests with this method (upper case); `None` matches every method.
    pub method: Option<String>,
    /// Only requests whose path starts with this; `None` matches every path.
    pub path_prefix: Option<String>,
    /// How many more requests this rule applies to.
    pub times: usize,
}

impl FaultRule {
    /// `fault` for the next request, whatever its path and method.
    pub fn new(fault: Fault) -> FaultRule {
        FaultRule { fault, method: None, path_prefix: None, times: 1 }
    }

    /// Only for paths starting with `prefix`.
    pub fn path(mut self, prefix: &str) -> FaultRule {
        self.path_prefix = Some(prefix.to_owned());
        self
    }

    /// Only for `method` requests.
    pub fn method(mut self, method: &str) -> FaultRule {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    /// For the next `n` matching requests instead of one.
    pub fn times(mut self, n: usize) -> FaultRule {
        self.times = n;
        self
    }

    fn matches(&self, request: &Request) -> bool {
        self.times > 0
            && self.method.as_deref().is_none_or(|m| m == request.method)
            && self.path_prefix.as_deref().is_none_or(|p| request.path.starts_with(p))
    }
}

/// A request in the log, with what it got. Derefs to the [`Request`].
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// The request as the handler saw it (or would have).
    pub request: Request,
    /// The status line sent; 0 when none was (a reset or lost answer).
    pub status: u16,
    /// The fault applied, by [`Fault::name`].
    pub fault: Option<&'static str>,
}

impl Deref for RecordedRequest {
    type Target = Request;

    fn deref(&self) -> &Request {
        &self.request
    }
}

/// Where and how a [`MockServer`] listens.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Address to bind; port 0 picks a free one. Default `127.0.0.1:0`.
    pub addr: SocketAddr,
    /// When set, one line per request goes to stderr, prefixed with this label.
    pub log_label: Option<String>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions { addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), log_label: None }
    }
}

/// A running mock server. Stops when dropped, or with [`MockServer::shutdown`].
pub struct MockServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

struct Shared {
    handler: Box<dyn Handler>,
    log_label: Option<String>,
    faults: Mutex<VecDeque<FaultRule>>,
    log: Mutex<Log>,
}

#[derive(Default)]
struct Log {
    entries: VecDeque<RecordedRequest>,
    dropped: usize,
}

/// Locks `m`, also after a test panicked while holding it: the others still need the data.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MockServer {
    /// Serves `handler` on `127.0.0.1` with a port the OS picks.
    pub async fn start(handler: impl Handler) -> anyhow::Result<MockServer> {
        MockServer::start_with(ServerOptions::default(), handler).await
    }

    /// Serves `handler` as `options` say.
    pub async fn start_with(options: ServerOptions, handler: impl Handler) -> anyhow::Result<MockServer> {
        let listener = TcpListener::bind(options.addr)
            .await
            .with_context(|| format!("binding a mock server to {}", options.addr))?;
        let addr = listener.local_addr().context("reading the mock server's address")?;
        let shared = Arc::new(Shared {
            handler: Box::new(handler),
            log_label: options.log_label,
            faults: Mutex::default(),
            log: Mutex::default(),
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared), stopped));
        Ok(MockServer { addr, shared, stop, task: Some(task) })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT`, the authority a collector's allow-list must contain.
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    /// Queues `rule`. The first queued rule that matches a request applies to it, before the
    /// handler sees it; a rule is used up after `times` requests.
    ///
    /// # Panics
    /// When [`MAX_FAULT_RULES`] rules are queued already, or a delay is longer than [`MAX_DELAY`]:
    /// both are mistakes in the test.
    pub fn push_fault(&self, rule: FaultRule) {
        if let Fault::Delay(d) = rule.fault {
            assert!(d <= MAX_DELAY, "a mock delay of {d:?} is longer than {MAX_DELAY:?}");
        }
        let mut faults = lock(&self.shared.faults);
        assert!(faults.len() < MAX_FAULT_RULES, "more than {MAX_FAULT_RULES} fault rules queued");
        if rule.times > 0 {
            faults.push_back(rule);
        }
    }

    /// Removes every queued fault.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// How many more requests queued faults will hit.
    pub fn pending_faults(&self) -> usize {
        lock(&self.shared.faults).iter().map(|r| r.times).sum()
    }

    /// The logged requests, oldest first, in the order they were answered.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.log).entries.iter().cloned().collect()
    }

    /// How many requests were logged and answered so far (including any dropped from the log).
    pub fn request_count(&self) -> usize {
        let log = lock(&self.shared.log);
        log.entries.len() + log.dropped
    }

    /// How many of the oldest requests the bounded log no longer holds.
    pub fn dropped_from_log(&self) -> usize {
        lock(&self.shared.log).dropped
    }

    /// Empties the log.
    pub fn clear_requests(&self) {
        let mut log = lock(&self.shared.log);
        log.dropped += log.entries.len();
        log.entries.clear();
    }

    /// Stops accepting, lets requests in progress finish (at most [`SHUTDOWN_GRACE`]) and waits
    /// until every connection is closed.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            // Bounded twice over: the loop itself gives up on connections after the grace period.
            let _ = tokio::time::timeout(SHUTDOWN_GRACE * 2, task).await;
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        // The accept loop sees this at once, closes the listener and winds connections down by
        // itself; without a runtime left to do that, the task is gone anyway.
        let _ = self.stop.send(true);
    }
}

impl Shared {
    fn take_fault(&self, request: &Request) -> Option<Fault> {
        let mut faults = lock(&self.faults);
        let pos = faults.iter().position(|r| r.matches(request))?;
        let rule = &mut faults[pos];
        rule.times -= 1;
        let fault = rule.fault.clone();
        if rule.times == 0 {
            faults.remove(pos);
        }
        Some(fault)
    }

    fn record(&self, request: Request, status: u16, fault: Option<&'static str>, sent: usize) {
        if let Some(label) = &self.log_label {
            let query = if request.query.is_empty() {
                String::new()
            } else {
                let pairs: Vec<String> = request.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("?{}", pairs.join("&"))
            };
            let fault = fault.map(|f| format!(" [fault: {f}]")).unwrap_or_default();
            eprintln!("{label}: {} {}{query} -> {status} ({sent} bytes){fault}", request.method, request.path);
        }
        let mut log = lock(&self.log);
        if log.entries.len() == MAX_LOGGED {
            log.entries.pop_front();
            log.dropped += 1;
        }
        log.entries.push_back(RecordedRequest { request, status, fault });
    }
}

/// Accepts connections until told to stop, then closes the listener, asks every connection to
/// finish its request in progress and, after [`SHUTDOWN_GRACE`], drops the rest.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break, // never closed
            },
            _ = stop.changed() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            _ = stop.changed() => break,
        };
        let Ok(local) = stream.local_addr() else { continue };
        // Kept for resets; valid while hyper owns the stream, i.e. while its requests run.
        let fd = stream.as_raw_fd();
        let shared = Arc::clone(&shared);
        let mut stop = stop.clone();
        conns.spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req| answer(Arc::clone(&shared), local, fd, req));
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            let mut stopping = false;
            loop {
                tokio::select! {
                    // A client hanging up mid-request is its business, not the mock's.
                    _ = conn.as_mut() => break,
                    _ = stop.changed(), if !stopping => {
                        stopping = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async { while conns.join_next().await.is_some() {} }).await;
    conns.abort_all();
}

/// The service's error: hyper then drops the connection without an answer.
#[derive(Debug)]
pub(crate) struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the mock server")
    }
}

impl std::error::Error for Dropped {}

async fn answer(
    shared: Arc<Shared>,
    local: SocketAddr,
    fd: RawFd,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Body>, Dropped> {
    let at = Instant::now();
    let (parts, body) = req.into_parts();
    let collected = tokio::time::timeout(READ_TIMEOUT, Limited::new(body, MAX_BODY).collect()).await;
    let (body, too_large) = match collected {
        Ok(Ok(b)) => (b.to_bytes(), false),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => (Bytes::new(), true),
        // The client went away or stalled mid-body.
        _ => return Err(Dropped),
    };
    let request = Request {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parse_query(parts.uri.query().unwrap_or("")),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        body,
        at,
        local,
    };
    if too_large {
        let response = Response::text(413, format!("request body over {MAX_BODY} bytes"));
        shared.record(request, 413, None, response.body.len());
        return Ok(into_hyper(response, false));
    }
    let fault = shared.take_fault(&request);
    let name = fault.as_ref().map(Fault::name);
    let response = match fault {
        Some(Fault::Respond(response)) => response,
        Some(Fault::Reset) => {
            shared.record(request, 0, name, 0);
            return Err(reset_on_close(fd));
        }
        Some(Fault::LostAnswer) => {
            let _ = shared.handler.handle(&request);
            shared.record(request, 0, name, 0);
            return Err(reset_on_close(fd));
        }
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d.min(MAX_DELAY)).await;
            shared.handler.handle(&request)
        }
        Some(Fault::Truncate) | None => shared.handler.handle(&request),
    };
    let truncate = name == Some("truncate");
    let sent = if truncate { response.body.len() / 2 } else { response.body.len() };
    shared.record(request, response.status, name, sent);
    Ok(into_hyper(response, truncate))
}

fn into_hyper(response: Response, truncate: bool) -> hyper::Response<Body> {
    let Response { status, headers, body } = response;
    let body = if truncate {
        let declared = body.len().max(1);
        let cut = body.slice(..body.len() / 2);
        Body::Cut { data: Some(cut), declared, linger: Box::pin(tokio::time::sleep(TRUNCATE_LINGER)) }
    } else {
        Body::Full(Some(body))
    };
    let declared = match &body {
        Body::Cut { declared, .. } => Some(*declared),
        Body::Full(_) => None,
    };
    let mut out = hyper::Response::new(body);
    *out.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let map = out.headers_mut();
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) =
            (http::HeaderName::from_bytes(name.as_bytes()), http::HeaderValue::from_str(&value))
        {
            map.append(name, value);
        }
    }
    if let Some(declared) = declared {
        map.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(declared));
    }
    out
}

/// A response body: all of it, or a cut one that ends the connection after a pause (so hyper
/// flushes the part first) instead of ending cleanly.
enum Body {
    Full(Option<Bytes>),
    Cut { data: Option<Bytes>, declared: usize, linger: Pin<Box<tokio::time::Sleep>> },
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Dropped;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Result<Frame<Bytes>, Dropped>>> {
        match self.get_mut() {
            Body::Full(data) => Poll::Ready(data.take().filter(|d| !d.is_empty()).map(|d| Ok(Frame::data(d)))),
            Body::Cut { data, linger, .. } => match data.take().filter(|d| !d.is_empty()) {
                Some(d) => Poll::Ready(Some(Ok(Frame::data(d)))),
                None => linger.as_mut().poll(cx).map(|()| Some(Err(Dropped))),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Body::Cut { declared, .. } => SizeHint::with_exact(*declared as u64),
        }
    }
}

/// Makes the coming close of `fd` a TCP reset (SO_LINGER 0) instead of a FIN.
#[allow(unsafe_code, reason = "setsockopt(2) on a socket the caller's connection owns; no safe API sets SO_LINGER")]
pub(crate) fn reset_on_close(fd: RawFd) -> Dropped {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: `fd` is the connection's socket, open while its request runs; setsockopt only
    // reads `linger`.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    Dropped
}

#[cfg(test)]
mod tests;
