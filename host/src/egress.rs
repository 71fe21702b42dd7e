//! Outbound HTTP policy for collectors: which hosts and ports a source may
//! reach (matched on the request URI's authority, never a Host header), which
//! addresses a name may resolve to (`connect`), how fast, how long to wait,
//! how large a response may be, how much of them a run may hold, and which
//! failures are retried. The network itself sits behind [`Upstream`], the
//! one seam tests replace with a scripted responder.

mod connect;

use std::collections::VecDeque;
use std::fmt;
use std::io::Read;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited, StreamBody};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

pub use connect::{AddressPolicy, Network, is_public};

use crate::limits::{Charge, LimitExceeded, Limits, Rate, RunBudget, bytes};
use crate::secrets::Redactor;
use crate::telemetry;

/// Which ports an `allowed_hosts` entry allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ports {
    /// No port written: the scheme's default (443 for https, 80 for http).
    Default,
    /// `host:8443`.
    Only(u16),
    /// `host:*`.
    Any,
}

/// One `allowed_hosts` entry: `host`, `host:port`, `host:*`, `*.domain[:port]`,
/// an IPv4 address or a bracketed IPv6 address (`[::1]:8080`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// Lower-cased host, without the `*.` of a wildcard or IPv6 brackets.
    host: String,
    /// The address, when the entry is an IP literal.
    ip: Option<IpAddr>,
    /// Whether subdomains of `host` match (and `host` itself does not).
    wildcard: bool,
    /// Ports the entry allows.
    ports: Ports,
}

impl HostPattern {
    /// Parse an entry; URLs, paths, userinfo and empty labels are rejected.
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        let text = text.trim();
        if text.contains("://") || text.contains('/') || text.contains('@') {
            return Err("write a host name, optionally with `:port`, not a URL".to_owned());
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (v6, after) = rest.split_once(']').ok_or("an IPv6 address needs its closing `]`")?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| format!("unexpected `{p}` after the address"))?),
            };
            (v6, port)
        } else {
            match text.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => (h, Some(p)),
                Some(_) => return Err("write an IPv6 address in brackets: `[::1]:8080`".to_owned()),
                None => (text, None),
            }
        };
        let ports = match port {
            None => Ports::Default,
            Some("*") => Ports::Any,
            Some(p) => Ports::Only(p.parse::<u16>().map_err(|_| format!("invalid port `{p}` (a number or `*`)"))?),
        };
        let (host, wildcard) = match host.strip_prefix("*.") {
            Some(rest) => (rest, true),
            None => (host, false),
        };
        let host = host.to_ascii_lowercase();
        let ip = host.parse::<IpAddr>().ok();
        if text.starts_with('[') && !matches!(ip, Some(IpAddr::V6(_))) {
            return Err("not a valid IPv6 address".to_owned());
        }
        if ip.is_none() {
            let label_ok = |l: &str| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            if host.is_empty() || !host.split('.').all(label_ok) {
                return Err("not a valid host name or IP address".to_owned());
            }
            if host.rsplit('.').next().is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit())) {
                return Err("not a valid host name or IP address (a name cannot end in a number)".to_owned());
            }
        } else if wildcard {
            return Err("a wildcard needs a domain, not an IP address".to_owned());
        }
        Ok(HostPattern { host, ip, wildcard, ports })
    }

    /// Whether the entry is an IP address: requests to it skip the
    /// private-address filter (the operator named the address).
    pub fn is_ip(&self) -> bool {
        self.ip.is_some()
    }

    /// Whether a request to `host` (as in the URI, IPv6 in brackets) on
    /// `port` is allowed, `default_port` being its scheme's.
    pub fn matches(&self, host: &str, port: u16, default_port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase();
        let host_ok = match (self.ip, host.parse::<IpAddr>()) {
            // An address matches only the same address, however written.
            (Some(ip), Ok(requested)) => ip == requested,
            (_, Ok(_)) | (Some(_), Err(_)) => false,
            (None, Err(_)) if self.wildcard => {
                host.strip_suffix(&self.host).is_some_and(|rest| rest.ends_with('.') && rest.len() > 1)
            }
            (None, Err(_)) => host == self.host,
        };
        let port_ok = match self.ports {
            Ports::Default => port == default_port,
            Ports::Only(p) => port == p,
            Ports::Any => true,
        };
        host_ok && port_ok
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            f.write_str("*.")?;
        }
        match self.ip {
            Some(IpAddr::V6(_)) => write!(f, "[{}]", self.host)?,
            _ => f.write_str(&self.host)?,
        }
        match self.ports {
            Ports::Default => Ok(()),
            Ports::Only(port) => write!(f, ":{port}"),
            Ports::Any => f.write_str(":*"),
        }
    }
}

/// A buffered request as sent upstream, so a retry can send it again.
pub type BufferedRequest = Request<Bytes>;

/// Where requests that passed the policy go: the network in production, a
/// scripted responder in tests.
pub trait Upstream: Send + Sync + 'static {
    /// Send one request; the response body is streamed back.
    fn send(
        &self,
        request: BufferedRequest,
        options: RequestOptions,
    ) -> BoxFuture<'static, Result<Response<WasiBody>, HttpError>>;
}

/// The egress policy of one source, shared by all its runs.
pub struct Egress {
    source: String,
    allowed: Vec<HostPattern>,
    allow_http: bool,
    allow_private_addresses: bool,
    redactor: Redactor,
    limits: Limits,
    rate: DefaultDirectRateLimiter,
    upstream: Arc<dyn Upstream>,
}

impl fmt::Debug for Egress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Egress").field("source", &self.source).field("allowed", &self.allowed).finish()
    }
}

/// Request header by which a collector chooses the host's retries; the host
/// removes it before sending. Absent: the host retries 429, 502, 503, 504 and
/// connections that failed to open. [`RETRY_RATE_LIMITED_ONLY`]: only answers
/// that prove the request was not processed (429, a connection that never
/// opened). [`RETRY_NEVER`]: no retries; the first answer or transport error
/// goes to the collector. An unknown value counts as [`RETRY_NEVER`] (retrying
/// less never skips data).
pub const RETRY_HEADER: &str = "siphon-retry";
/// See [`RETRY_HEADER`]. For consume-once requests (Netskope's
/// `operation=next`), where a 502/504 or a timeout may come after the vendor
/// served and consumed a page that a retry would then skip, and for vendors
/// whose 503 means "quota used up" (MuleSoft), where quick retries burn the
/// next window's quota too.
pub const RETRY_RATE_LIMITED_ONLY: &str = "rate-limited-only";
/// See [`RETRY_HEADER`]: the collector handles every failure itself.
pub const RETRY_NEVER: &str = "never";
/// Request header with the longest retry wait, in seconds, the collector
/// accepts (removed before sending). A retry that would wait longer (a
/// `Retry-After`, a rate-limit reset or a backoff) is not slept on: the
/// answer goes to the collector, which can fit the wait into its own budget.
/// The source's `max_retry_wait` still applies when it is shorter.
pub const MAX_WAIT_HEADER: &str = "siphon-max-wait";

/// Which failures the host retries for one request (from [`RETRY_HEADER`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryPolicy {
    /// 429, 502, 503, 504, and connections that failed or timed out opening.
    Transient,
    /// 429 and connections that failed to open.
    RateLimitedOnly,
    /// Nothing.
    Never,
}

impl RetryPolicy {
    /// The policy a header value asks for; `Err` carries an unknown value,
    /// which is treated as [`RetryPolicy::Never`].
    pub fn from_header(value: Option<&HeaderValue>) -> Result<RetryPolicy, String> {
        let Some(value) = value else { return Ok(RetryPolicy::Transient) };
        let text = String::from_utf8_lossy(value.as_bytes()).trim().to_ascii_lowercase();
        match text.as_str() {
            RETRY_RATE_LIMITED_ONLY => Ok(RetryPolicy::RateLimitedOnly),
            RETRY_NEVER => Ok(RetryPolicy::Never),
            _ => Err(text),
        }
    }

    /// Whether an answer with `status` is worth another try.
    pub fn retries_status(self, status: StatusCode) -> bool {
        match (self, status.as_u16()) {
            (RetryPolicy::Never, _) => false,
            (_, 429) => true,
            (RetryPolicy::Transient, 502..=504) => true,
            _ => false,
        }
    }

    /// Whether a transport error is worth another try.
    pub fn retries_error(self, error: &HttpError) -> bool {
        match (self, error) {
            (RetryPolicy::Never, _) => false,
            // Nothing was sent on a connection that never opened.
            (_, HttpError::ConnectionRefused | HttpError::Connect(_)) => true,
            (RetryPolicy::Transient, HttpError::ConnectionTimeout) => true,
            _ => false,
        }
    }
}

/// [`MAX_WAIT_HEADER`]'s value: whole or decimal seconds.
fn parse_max_wait(value: &HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    let secs: f64 = text.parse().ok()?;
    Duration::try_from_secs_f64(secs).ok()
}

impl Egress {
    /// Policy for `source` with its allow-list and limits.
    pub fn new(
        source: &str,
        allowed: Vec<HostPattern>,
        allow_http: bool,
        limits: Limits,
        upstream: Arc<dyn Upstream>,
    ) -> Egress {
        // Config validation rejects a bad rate; only limits built by hand
        // (tests) can get here with one.
        let rate = limits.request_rate().unwrap_or_else(|error| {
            tracing::warn!(source, %error, "Invalid request rate; using the default");
            Rate::DEFAULT
        });
        Egress {
            source: source.to_owned(),
            allowed,
            allow_http,
            allow_private_addresses: false,
            redactor: Redactor::default(),
            rate: RateLimiter::direct(quota(rate)),
            limits,
            upstream,
        }
    }

    /// Let names resolve to private, loopback and link-local addresses
    /// (`allow_private_addresses`; see `connect`).
    pub fn with_private_addresses(mut self, allow: bool) -> Egress {
        self.allow_private_addresses = allow;
        self
    }

    /// Redact these secrets from the request paths this policy logs.
    pub fn with_redactor(mut self, redactor: Redactor) -> Egress {
        self.redactor = redactor;
        self
    }

    /// A request's target for logs: method, scheme, host and port, and the
    /// path with the source's secrets redacted; never userinfo, never the
    /// query (both are where credentials go).
    pub fn describe(&self, method: &http::Method, uri: &http::Uri) -> String {
        let scheme = uri.scheme_str().unwrap_or("https");
        let host = uri.host().unwrap_or("");
        let port = uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
        let path = self.redactor.redact_clipped(uri.path(), 512);
        let query = if uri.query().is_some() { "?[query]" } else { "" };
        telemetry::escape(&format!("{method} {scheme}://{host}{port}{path}{query}")).into_owned()
    }

    /// Decide whether a request may leave, from its URI alone.
    pub fn check(&self, uri: &http::Uri) -> Result<(), String> {
        let scheme = uri.scheme_str().unwrap_or("https");
        let host = uri.host().ok_or("request has no host")?;
        let default_port = if scheme == "http" { 80 } else { 443 };
        let port = uri.port_u16().unwrap_or(default_port);
        match scheme {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => {
                return Err(format!("plain http to {host} is not allowed (set allow_http)"));
            }
            other => return Err(format!("scheme `{other}` is not supported")),
        }
        if self.allowed.iter().any(|p| p.matches(host, port, default_port)) {
            Ok(())
        } else if self.allowed.iter().any(|p| p.matches(host, default_port, default_port) || p.matches(host, 0, 0)) {
            Err(format!(
                "port {port} of {host} is not allowed (allowed_hosts lists the host for other ports; \
                 add `{host}:{port}` or `{host}:*`)"
            ))
        } else {
            Err(format!("host {host}:{port} is not in allowed_hosts"))
        }
    }

    /// Apply the policy and send: allow-list, requests in flight, rate
    /// limit, bounded retries honouring `Retry-After`, response size cap,
    /// gzip decoding, response bytes charged to `budget` until the collector
    /// reads them.
    pub async fn send(
        self: Arc<Self>,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
        budget: &Arc<RunBudget>,
    ) -> Result<Response<WasiBody>, HttpError> {
        let uri = request.uri().clone();
        let target = self.describe(request.method(), &uri);
        if let Err(reason) = self.check(&uri) {
            tracing::warn!(source = %self.source, request = %target, %reason, "Denied outbound request");
            telemetry::http_request(&self.source, "denied");
            return Err(HttpError::HttpRequestDenied);
        }
        let charge = budget.start_request().map_err(limit_error)?;
        let options = self.options(options);
        let (mut parts, body) = request.into_parts();
        let policy = RetryPolicy::from_header(parts.headers.remove(RETRY_HEADER).as_ref()).unwrap_or_else(|value| {
            tracing::warn!(source = %self.source, request = %target, %value,
                "Unknown {RETRY_HEADER} value; not retrying this request");
            RetryPolicy::Never
        });
        let guest_max_wait = parts.headers.remove(MAX_WAIT_HEADER).and_then(|v| {
            let wait = parse_max_wait(&v);
            if wait.is_none() {
                tracing::warn!(source = %self.source, request = %target, value = ?v,
                    "Invalid {MAX_WAIT_HEADER} value (seconds expected); ignored");
            }
            wait
        });
        let max_wait = guest_max_wait.map_or(self.limits.max_retry_wait, |g| g.min(self.limits.max_retry_wait));
        // Collectors send small requests (queries, token forms); buffering
        // makes retries possible.
        let max_request = bytes(self.limits.max_request_size);
        let body = Limited::new(body, max_request)
            .collect()
            .await
            .map_err(|_| HttpError::HttpRequestBodySize(Some(max_request as u64)))?
            .to_bytes();
        // Ask for gzip unless the collector chose an encoding: vendor pages
        // compress 10x, and decoding here keeps every collector simple.
        let decode_gzip = !parts.headers.contains_key(header::ACCEPT_ENCODING);
        if decode_gzip {
            parts.headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        }

        let mut attempt = 0u32;
        loop {
            self.rate.until_ready().await;
            let mut sent = Request::from_parts(parts.clone(), body.clone());
            // The network honours this when it resolves the host (`connect`).
            sent.extensions_mut().insert(AddressPolicy { allow_private: self.allow_private_addresses });
            let started = std::time::Instant::now();
            let outcome = self.upstream.send(sent, options).await;
            telemetry::http_latency(&self.source, started.elapsed());
            let retry_wait = match &outcome {
                Ok(resp) if policy.retries_status(resp.status()) => {
                    Some(retry_hint(resp.status(), resp.headers(), chrono::Utc::now()))
                }
                Ok(_) => None,
                Err(e) if policy.retries_error(e) => Some(None),
                Err(_) => None,
            };
            let status = match &outcome {
                Ok(r) => r.status().as_u16().to_string(),
                Err(e) => format!("error: {}", self.redactor.redact(&e.to_string())),
            };
            match retry_wait {
                Some(hint) if attempt < self.limits.max_retries => {
                    let wait = hint.unwrap_or_else(|| backoff(attempt));
                    if wait > max_wait {
                        if guest_max_wait.is_some_and(|g| g < self.limits.max_retry_wait) {
                            tracing::info!(source = %self.source, request = %target, %status,
                                wait_ms = wait.as_millis() as u64, "Retry wait exceeds the collector's {MAX_WAIT_HEADER}; handing the answer to it");
                        } else {
                            tracing::warn!(source = %self.source, request = %target, %status,
                                wait_s = wait.as_secs(), "Vendor asked to wait longer than max_retry_wait; not retrying");
                        }
                        return self.finish(outcome, decode_gzip, &target, charge).await;
                    }
                    attempt += 1;
                    telemetry::http_request(&self.source, "retried");
                    tracing::info!(source = %self.source, request = %target, %status, attempt,
                        wait_ms = wait.as_millis() as u64, "Retrying request");
                    tokio::time::sleep(wait).await;
                }
                _ => return self.finish(outcome, decode_gzip, &target, charge).await,
            }
        }
    }

    fn options(&self, guest: Option<RequestOptions>) -> RequestOptions {
        // A collector may ask for shorter timeouts, never longer ones.
        let cap = |g: Option<Duration>, l: Duration| Some(g.map_or(l, |g| g.min(l)));
        let guest = guest.unwrap_or_default();
        RequestOptions {
            connect_timeout: cap(guest.connect_timeout, self.limits.connect_timeout),
            first_byte_timeout: cap(guest.first_byte_timeout, self.limits.first_byte_timeout),
            between_bytes_timeout: cap(guest.between_bytes_timeout, self.limits.between_bytes_timeout),
        }
    }

    /// Read the body under the size cap, charging the run's budget as it
    /// arrives, and hand the response on; the collector's reads give the
    /// bytes back.
    async fn finish(
        &self,
        outcome: Result<Response<WasiBody>, HttpError>,
        decode_gzip: bool,
        target: &str,
        mut charge: Charge,
    ) -> Result<Response<WasiBody>, HttpError> {
        let response = match outcome {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(source = %self.source, request = %target,
                    error = %self.redactor.redact(&e.to_string()), "Request failed");
                telemetry::http_request(&self.source, "failed");
                return Err(e);
            }
        };
        let cap = bytes(self.limits.max_response_size);
        let (mut parts, mut body) = response.into_parts();
        let mut chunks = VecDeque::new();
        let mut total = 0usize;
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame?.into_data() else { continue };
            total += data.len();
            if total > cap {
                return Err(self.too_large(target, cap));
            }
            charge.add(data.len()).map_err(limit_error)?;
            chunks.push_back(data);
        }
        drop(body);
        let gzipped =
            parts.headers.get(header::CONTENT_ENCODING).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
        if decode_gzip && gzipped {
            let compressed = std::mem::take(&mut chunks);
            let compressed_len = total;
            (chunks, total) = match gunzip(&compressed, cap, &mut charge) {
                Ok(decoded) => decoded,
                Err(GunzipError::TooLarge) => return Err(self.too_large(target, cap)),
                Err(GunzipError::Limit(e)) => return Err(limit_error(e)),
                Err(GunzipError::Corrupt(e)) => return Err(HttpError::HttpResponseContentCoding(Some(e))),
            };
            drop(compressed);
            charge.release(compressed_len);
            parts.headers.remove(header::CONTENT_ENCODING);
            parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(total));
        }
        telemetry::http_request(&self.source, parts.status.as_str());
        tracing::debug!(source = %self.source, request = %target, status = parts.status.as_u16(),
            bytes = total, "Response");
        Ok(Response::from_parts(parts, charged_body(chunks, charge)))
    }

    fn too_large(&self, target: &str, cap: usize) -> HttpError {
        tracing::warn!(source = %self.source, request = %target, limit = cap, "Response exceeds max_response_size");
        telemetry::http_request(&self.source, "too_large");
        HttpError::HttpResponseBodySize(Some(cap as u64))
    }
}

/// A limit the request hit, as the collector sees it (the run stops too).
fn limit_error(e: LimitExceeded) -> HttpError {
    HttpError::InternalError(Some(format!("limit exceeded: {e}")))
}

/// A response body of buffered chunks that gives each chunk's bytes back to
/// the run's budget as the collector reads it, and the request's in-flight
/// slot when it is read to the end or dropped.
fn charged_body(chunks: VecDeque<Bytes>, charge: Charge) -> WasiBody {
    let frames = futures::stream::unfold((chunks, charge), |(mut chunks, mut charge)| async move {
        let chunk = chunks.pop_front()?;
        charge.release(chunk.len());
        Some((Ok::<_, HttpError>(hyper::body::Frame::data(chunk)), (chunks, charge)))
    });
    StreamBody::new(frames).boxed_unsync()
}

enum GunzipError {
    TooLarge,
    Limit(LimitExceeded),
    Corrupt(String),
}

/// Reads a list of chunks as one stream.
struct ChunkReader<'a> {
    chunks: std::collections::vec_deque::Iter<'a, Bytes>,
    current: &'a [u8],
}

impl Read for ChunkReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.next() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = &self.current[n..];
        Ok(n)
    }
}

/// Size of the decoded chunks handed to the collector.
const DECODED_CHUNK: usize = 64 * 1024;

/// Decode gzip chunks into chunks of at most [`DECODED_CHUNK`], charging
/// each as it is made; a gzip bomb stops at `cap` (or the run's budget).
fn gunzip(
    compressed: &VecDeque<Bytes>,
    cap: usize,
    charge: &mut Charge,
) -> Result<(VecDeque<Bytes>, usize), GunzipError> {
    let mut decoder = flate2::read::GzDecoder::new(ChunkReader { chunks: compressed.iter(), current: &[] });
    let mut out = VecDeque::new();
    let mut total = 0usize;
    loop {
        let mut chunk = vec![0u8; DECODED_CHUNK];
        let mut filled = 0;
        while filled < chunk.len() {
            match decoder.read(&mut chunk[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) => return Err(GunzipError::Corrupt(format!("gzip: {e}"))),
            }
        }
        if filled == 0 {
            return Ok((out, total));
        }
        total += filled;
        if total > cap {
            return Err(GunzipError::TooLarge);
        }
        charge.add(filled).map_err(GunzipError::Limit)?;
        chunk.truncate(filled);
        chunk.shrink_to_fit();
        out.push_back(Bytes::from(chunk));
    }
}

/// The token bucket for a rate: one slot per interval, `burst` at once.
fn quota(rate: Rate) -> Quota {
    Quota::with_period(rate.interval()).map_or_else(|| Quota::per_second(rate.count), |q| q.allow_burst(rate.burst))
}

/// A `ratelimit-reset` value above this is an epoch in seconds (2001-09-09
/// onwards), not a number of seconds to wait (31 years).
const EPOCH_SECONDS_FROM: u64 = 1_000_000_000;
/// A `ratelimit-reset` value above this is an epoch in milliseconds (as
/// seconds it would be the year 33658).
const EPOCH_MILLIS_FROM: u64 = 1_000_000_000_000;

/// The server's hint, from `Retry-After` (seconds or an HTTP date) or the
/// `ratelimit-reset` / `X-RateLimit-Reset` that vendors send as seconds to
/// wait, as an epoch in seconds or as an epoch in milliseconds (Mimecast).
/// A date or epoch already past is no hint (backoff applies). `now` is the
/// wall clock, a parameter for tests.
fn retry_after(headers: &HeaderMap, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let until = |when: chrono::DateTime<chrono::Utc>| (when - now).to_std().ok().filter(|d| !d.is_zero());
    if let Some(v) = text("retry-after") {
        if let Ok(secs) = v.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(when) = chrono::DateTime::parse_from_rfc2822(v) {
            return until(when.with_timezone(&chrono::Utc));
        }
    }
    let reset =
        ["ratelimit-reset", "x-ratelimit-reset"].into_iter().find_map(|name| text(name)?.parse::<u64>().ok())?;
    let epoch_ms = match reset {
        r if r > EPOCH_MILLIS_FROM => r,
        r if r > EPOCH_SECONDS_FROM => r.saturating_mul(1000),
        secs => return Some(Duration::from_secs(secs)),
    };
    let when = chrono::DateTime::from_timestamp_millis(i64::try_from(epoch_ms).ok()?)?;
    until(when)
}

/// The wait a retryable answer asks for. A quota reset on a 502-504 tells when the quota
/// refills, not when the outage ends (Mimecast sends `X-RateLimit-Reset` on every answer, in
/// milliseconds): only `Retry-After` counts there, else backoff.
fn retry_hint(status: StatusCode, headers: &HeaderMap, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    (status == StatusCode::TOO_MANY_REQUESTS || headers.contains_key(header::RETRY_AFTER))
        .then(|| retry_after(headers, now))
        .flatten()
}

/// Exponential backoff with full jitter: 0.5 s, 1 s, 2 s ... capped at 30 s.
fn backoff(attempt: u32) -> Duration {
    let ceiling = Duration::from_millis(500).saturating_mul(1u32 << attempt.min(6)).min(Duration::from_secs(30));
    ceiling.mul_f64(0.5 + rand::random::<f64>() * 0.5)
}

#[cfg(test)]
mod tests;
