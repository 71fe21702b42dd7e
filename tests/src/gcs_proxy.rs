//! A loopback fault proxy in front of the GCS emulator. It forwards every
//! request unchanged, except those matching a [`Rule`], which get a fault:
//!
//! - [`Fault::Status`]: a GCS-style JSON error instead of an answer (the
//!   emulator never sees the request) — 503/429 bursts for siphon's bounded
//!   retries, or 403 for a read-only credential, which fake-gcs-server cannot
//!   model because it does not enforce IAM;
//! - [`Fault::Delay`]: a slow upload or server — the request is held, then
//!   forwarded, and the answer is held too. If the client goes away while the
//!   request is held (it was killed), the request is dropped unforwarded, as
//!   GCS drops an upload whose client died before it finished; holding the
//!   answer keeps a write that has landed unacknowledged. Crash tests use the
//!   two holds to widen "killed during an upload" and "killed after an upload
//!   landed, before the commit" without inventing writes no client made;
//! - [`Fault::Reset`]: the TCP connection is reset without an answer; the
//!   emulator never sees the request;
//! - [`Fault::ResetAfterForward`]: the request is forwarded (the write lands)
//!   and then the connection is reset: a lost answer, which siphon must
//!   resolve by reading the object back.
//!
//! Every request is logged ([`Seen`]): method, path, the object it names and,
//! for uploads, the content type and encoding the client declared. The
//! emulator does not keep an object's content type, so the log is where tests
//! check it. Single-shot uploads (`uploadType=multipart`, what siphon sends)
//! carry those in the JSON metadata part, which is parsed; `media` uploads in
//! the headers; the first request of a `resumable` one in a JSON body.
//!
//! ```no_run
//! # async fn demo(emulator_endpoint: &str) -> anyhow::Result<()> {
//! use std::time::Duration;
//! use siphon_tests::gcs_proxy::{Fault, GcsProxy, Rule};
//! let proxy = GcsProxy::start(emulator_endpoint).await?;
//! proxy.add(Rule::read_only());                                  // 403 for every write, forever
//! proxy.add(Rule::status("POST", 503).times(2));                 // or: the next two uploads fail
//! proxy.add(Rule::new("POST", Fault::delay(Duration::from_millis(50))).object("siem/")); // slow uploads
//! // point siphon at proxy.endpoint(); later: proxy.uploads() to see what was written
//! # Ok(()) }
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::mock::http::percent_decode;
use crate::mock::server::{Dropped, reset_on_close};

/// The service account named in injected 403 messages.
pub const READ_ONLY_PRINCIPAL: &str = "siphon-reader@test-project.iam.gserviceaccount.com";

/// What a matching request gets instead of plain forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// This status with a GCS-style JSON error body; not forwarded.
    Status(u16),
    /// Hold the request for `before`, then forward it (unless the client
    /// left meanwhile), then hold the answer for `after`.
    Delay {
        /// Before forwarding.
        before: Duration,
        /// After forwarding, before answering.
        after: Duration,
    },
    /// Reset the connection without answering; not forwarded.
    Reset,
    /// Forward, then reset the connection instead of answering.
    ResetAfterForward,
}

impl Fault {
    /// A request held for `d` before it is forwarded.
    pub fn delay(d: Duration) -> Fault {
        Fault::Delay { before: d, after: Duration::ZERO }
    }
}

/// Which requests get which fault.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Methods matched (upper case); empty matches every method.
    pub methods: Vec<String>,
    /// Substring of the path that must be present; empty matches every path.
    pub path_contains: String,
    /// Prefix of the object name the request creates, reads or deletes;
    /// `None` matches requests that name no object too.
    pub object_prefix: Option<String>,
    /// What happens to a matching request.
    pub fault: Fault,
    /// How many more requests this rule applies to; `None` is forever.
    pub remaining: Option<usize>,
}

impl Rule {
    /// `fault` for every `method` request.
    pub fn new(method: &str, fault: Fault) -> Rule {
        Rule {
            methods: vec![method.to_uppercase()],
            path_contains: String::new(),
            object_prefix: None,
            fault,
            remaining: None,
        }
    }

    /// Answer `status` to every `method` request.
    pub fn status(method: &str, status: u16) -> Rule {
        Rule::new(method, Fault::Status(status))
    }

    /// A credential with only `storage.objects.get`/`list` (Storage Object
    /// Viewer): every upload, delete or metadata change gets 403.
    pub fn read_only() -> Rule {
        Rule { methods: ["POST", "PUT", "PATCH", "DELETE"].map(str::to_owned).to_vec(), ..Rule::status("POST", 403) }
    }

    /// Only for paths containing `part`.
    pub fn path(mut self, part: &str) -> Rule {
        self.path_contains = part.to_owned();
        self
    }

    /// Only for requests on objects whose name starts with `prefix` (for
    /// uploads, the name declared in the upload).
    pub fn object(mut self, prefix: &str) -> Rule {
        self.object_prefix = Some(prefix.to_owned());
        self
    }

    /// Only for the next `n` matching requests.
    pub fn times(mut self, n: usize) -> Rule {
        self.remaining = Some(n);
        self
    }

    fn matches(&self, method: &str, path: &str, object: Option<&str>) -> bool {
        self.remaining != Some(0)
            && (self.methods.is_empty() || self.methods.iter().any(|m| m == method))
            && path.contains(&self.path_contains)
            && self.object_prefix.as_deref().is_none_or(|p| object.is_some_and(|o| o.starts_with(p)))
    }
}

/// One request the proxy saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The object created (uploads), read or deleted, if the request names one.
    pub object: Option<String>,
    /// For uploads: the content type the client declared.
    pub content_type: Option<String>,
    /// For uploads: the content encoding the client declared, if any.
    pub content_encoding: Option<String>,
    /// For uploads: the object's bytes.
    pub media: Option<Bytes>,
    /// Status the client got; `None` when the connection was reset or the
    /// client left before an answer.
    pub status: Option<u16>,
    /// The fault applied, if any.
    pub fault: Option<Fault>,
    /// Whether the request reached the emulator.
    pub forwarded: bool,
}

impl Seen {
    /// Whether this is an upload (an object create).
    pub fn is_upload(&self) -> bool {
        self.method == "POST" && self.path.starts_with("/upload/")
    }
}

/// Where a held request ([`Fault::Delay`]) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not forwarded yet: a client killed now leaves no trace upstream.
    Request,
    /// Forwarded (an upload has landed), its answer not yet sent.
    Answer,
}

/// A request the proxy is holding right now.
#[derive(Debug, Clone)]
pub struct Held {
    /// The object it names, as in [`Seen::object`].
    pub object: Option<String>,
    /// For uploads: the object's bytes.
    pub media: Option<Bytes>,
    /// Where it is.
    pub phase: Phase,
}

#[derive(Default)]
struct Shared {
    rules: Mutex<Vec<Rule>>,
    seen: Mutex<Vec<Seen>>,
    held: Mutex<Vec<(u64, Held)>>,
    next_hold: AtomicU64,
}

impl Shared {
    /// Mark a request held in `phase` until the returned guard drops.
    fn hold(&self, seen: &Seen, phase: Phase) -> HoldGuard<'_> {
        let id = self.next_hold.fetch_add(1, Ordering::Relaxed);
        let held = Held { object: seen.object.clone(), media: seen.media.clone(), phase };
        lock(&self.held).push((id, held));
        HoldGuard(self, id)
    }
}

struct HoldGuard<'a>(&'a Shared, u64);

impl Drop for HoldGuard<'_> {
    fn drop(&mut self) {
        lock(&self.0.held).retain(|(id, _)| *id != self.1);
    }
}

/// A running proxy; stops when dropped.
pub struct GcsProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl GcsProxy {
    /// Listen on a free 127.0.0.1 port and forward to `upstream`
    /// (e.g. `http://127.0.0.1:4443`).
    pub async fn start(upstream: &str) -> anyhow::Result<GcsProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        // Bounded, so a wedged emulator fails the request instead of the test.
        let client = crate::http_client(Some(Duration::from_secs(60)))?;
        let upstream = upstream.trim_end_matches('/').to_owned();
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared), client, upstream));
        Ok(GcsProxy { addr, shared, task })
    }

    /// Base URL for siphon's `endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Add a rule; the first matching rule applies.
    pub fn add(&self, rule: Rule) {
        lock(&self.shared.rules).push(rule);
    }

    /// Remove every rule: forward everything.
    pub fn clear(&self) {
        lock(&self.shared.rules).clear();
    }

    /// Requests seen so far, in the order they finished.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.shared.seen).clone()
    }

    /// Uploads seen so far (whether or not they were forwarded).
    pub fn uploads(&self) -> Vec<Seen> {
        self.seen().into_iter().filter(Seen::is_upload).collect()
    }

    /// The last finished upload of `object` that reached the emulator.
    pub fn last_upload(&self, object: &str) -> Option<Seen> {
        let seen = lock(&self.shared.seen);
        seen.iter().rev().find(|s| s.is_upload() && s.forwarded && s.object.as_deref() == Some(object)).cloned()
    }

    /// Requests held right now by a [`Fault::Delay`]: crash tests kill a
    /// client at a chosen point of its protocol by watching these.
    pub fn held(&self) -> Vec<Held> {
        lock(&self.shared.held).iter().map(|(_, h)| h.clone()).collect()
    }
}

impl Drop for GcsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, client: reqwest::Client, upstream: String) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Kept for resets and for noticing a client that went away;
                    // valid while hyper owns the stream, i.e. while requests run.
                    let fd = stream.as_raw_fd();
                    let (shared, client, upstream) = (Arc::clone(&shared), client.clone(), upstream.clone());
                    conns.spawn(async move {
                        let service = service_fn(move |req| {
                            let (shared, client, upstream) = (Arc::clone(&shared), client.clone(), upstream.clone());
                            async move { handle(&shared, &client, &upstream, fd, req).await }
                        });
                        let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn handle(
    shared: &Shared,
    client: &reqwest::Client,
    upstream: &str,
    fd: RawFd,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let (parts, body) = req.into_parts();
    let method = parts.method.as_str().to_owned();
    let path = parts.uri.path_and_query().map_or("/".to_owned(), |p| p.as_str().to_owned());
    // The whole body first: an upload's object name and content type are in it.
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Err(Dropped), // the client went away mid-body
    };
    let upload = describe_upload(&parts, &body);
    let object = upload.as_ref().map(|u| u.name.clone()).or_else(|| object_in_path(parts.uri.path()));
    let fault = {
        let mut rules = lock(&shared.rules);
        rules.iter_mut().find(|r| r.matches(&method, parts.uri.path(), object.as_deref())).map(|r| {
            if let Some(n) = r.remaining.as_mut() {
                *n -= 1;
            }
            r.fault
        })
    };
    // Logged when this handler ends, also when hyper drops it because the
    // client went away.
    let mut seen = LogOnDrop(
        shared,
        Seen {
            method,
            path,
            object,
            content_type: upload.as_ref().and_then(|u| u.content_type.clone()),
            content_encoding: upload.as_ref().and_then(|u| u.content_encoding.clone()),
            media: upload.and_then(|u| u.media),
            status: None,
            fault,
            forwarded: false,
        },
    );
    let result = match fault {
        Some(Fault::Status(status)) => Ok(gcs_error(status, &seen.1.method)),
        Some(Fault::Reset) => Err(reset_on_close(fd)),
        Some(Fault::Delay { before, after }) => {
            let holding = shared.hold(&seen.1, Phase::Request);
            if wait_unless_client_left(fd, before).await {
                drop(holding);
                seen.1.forwarded = true;
                let response = forward(client, upstream, parts, body).await;
                let _holding = shared.hold(&seen.1, Phase::Answer);
                tokio::time::sleep(after).await;
                Ok(response)
            } else {
                Err(Dropped)
            }
        }
        None => {
            seen.1.forwarded = true;
            Ok(forward(client, upstream, parts, body).await)
        }
        Some(Fault::ResetAfterForward) => {
            seen.1.forwarded = true;
            let _ = forward(client, upstream, parts, body).await;
            Err(reset_on_close(fd))
        }
    };
    seen.1.status = result.as_ref().ok().map(|r| r.status().as_u16());
    result
}

/// A request's log entry, pushed when the request ends however it ends.
struct LogOnDrop<'a>(&'a Shared, Seen);

impl Drop for LogOnDrop<'_> {
    fn drop(&mut self) {
        let seen = std::mem::take(&mut self.1);
        lock(&self.0.seen).push(seen);
    }
}

/// Sleep for `d`; false as soon as the client closes its end (a killed
/// client's kernel closes the socket), in which case the request must not be
/// forwarded.
#[allow(unsafe_code, reason = "recv(2) with MSG_PEEK is the only way to see a client leave while its request is held")]
async fn wait_unless_client_left(fd: RawFd, d: Duration) -> bool {
    let until = tokio::time::Instant::now() + d;
    loop {
        let mut byte = 0u8;
        // SAFETY: `fd` is the connection's socket, open while its request runs; a non-blocking peek of at most one byte into `byte`.
        let n = unsafe { libc::recv(fd, (&raw mut byte).cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
        let would_block = n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock;
        if !would_block {
            // 0: orderly close; < 0: reset. (> 0 would be a pipelined request,
            // which siphon's client does not send.)
            return n > 0;
        }
        let now = tokio::time::Instant::now();
        if now >= until {
            return true;
        }
        tokio::time::sleep((until - now).min(Duration::from_millis(5))).await;
    }
}

/// What an upload request declares about the object it creates.
struct Upload {
    name: String,
    content_type: Option<String>,
    content_encoding: Option<String>,
    media: Option<Bytes>,
}

fn describe_upload(parts: &http::request::Parts, body: &[u8]) -> Option<Upload> {
    if parts.method != http::Method::POST || !parts.uri.path().starts_with("/upload/storage/v1/b/") {
        return None;
    }
    let query = parts.uri.query().unwrap_or_default();
    let param = |key: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| percent_decode(v, true))
    };
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (metadata, media) = match param("uploadType").as_deref() {
        Some("multipart") => {
            let parts = header("content-type").map(|ct| multipart_parts(&ct, body)).unwrap_or_default();
            (parts.first().and_then(|p| first_json(p)), parts.get(1).map(|p| Bytes::copy_from_slice(p)))
        }
        Some("resumable") => (first_json(body), None),
        _ => (None, Some(Bytes::copy_from_slice(body))),
    };
    let field = |k: &str| metadata.as_ref().and_then(|m| m[k].as_str()).map(str::to_owned);
    Some(Upload {
        name: field("name").or_else(|| param("name")).unwrap_or_default(),
        content_type: field("contentType")
            .or_else(|| header("x-upload-content-type"))
            .or_else(|| if metadata.is_none() { header("content-type") } else { None }),
        content_encoding: field("contentEncoding").or_else(|| param("contentEncoding")),
        media,
    })
}

/// The contents of the parts of a `multipart/related` body (the metadata
/// part first, then the media), without their headers.
fn multipart_parts<'a>(content_type: &str, body: &'a [u8]) -> Vec<&'a [u8]> {
    let Some(boundary) = content_type.split(';').find_map(|p| p.trim().strip_prefix("boundary=")) else {
        return Vec::new();
    };
    let delimiter = format!("\r\n--{}", boundary.trim_matches('"'));
    // The first delimiter has no line break before it.
    let Some(first) = find(body, &delimiter.as_bytes()[2..]) else {
        return Vec::new();
    };
    let mut rest = &body[first + delimiter.len() - 2..];
    let mut parts = Vec::new();
    // Each part: headers, a blank line, content, then the next delimiter.
    while !rest.starts_with(b"--") {
        let Some(headers_end) = find(rest, b"\r\n\r\n") else {
            break;
        };
        let content = &rest[headers_end + 4..];
        let Some(end) = find(content, delimiter.as_bytes()) else {
            break;
        };
        parts.push(&content[..end]);
        rest = &content[end + delimiter.len()..];
    }
    parts
}

fn first_json(bytes: &[u8]) -> Option<serde_json::Value> {
    serde_json::Deserializer::from_slice(bytes).into_iter::<serde_json::Value>().next()?.ok()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The object of `/storage/v1/b/<bucket>/o/<name>` (also under `/download`).
fn object_in_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/download").unwrap_or(path).strip_prefix("/storage/v1/b/")?;
    let (_bucket, name) = rest.split_once("/o/")?;
    Some(percent_decode(name, false))
}

async fn forward(
    client: &reqwest::Client,
    upstream: &str,
    parts: http::request::Parts,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let url = format!("{upstream}{}", parts.uri.path_and_query().map_or("/", |p| p.as_str()));
    let mut out = client.request(parts.method, url).body(body);
    for (name, value) in &parts.headers {
        if !is_hop_by_hop(name.as_str()) {
            out = out.header(name, value);
        }
    }
    let answer = match out.send().await {
        Ok(a) => a,
        Err(e) => return plain(502, format!("proxy: upstream failed: {e}")),
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = answer.bytes().await.unwrap_or_default();
    let mut response = Response::new(Full::new(bytes));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if !is_hop_by_hop(name.as_str()) {
            response.headers_mut().append(name, value.clone());
        }
    }
    response
}

fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "host" | "connection" | "keep-alive" | "transfer-encoding" | "content-length" | "te" | "trailer" | "upgrade"
    )
}

/// The JSON-API error body GCS sends for `status`.
fn gcs_error(status: u16, method: &str) -> Response<Full<Bytes>> {
    let (reason, message) = match status {
        403 => {
            let permission = if method == "DELETE" { "storage.objects.delete" } else { "storage.objects.create" };
            (
                "forbidden",
                format!(
                    "{READ_ONLY_PRINCIPAL} does not have {permission} access to the Google Cloud Storage object. \
                     Permission '{permission}' denied on resource (or it may not exist)."
                ),
            )
        }
        429 => ("rateLimitExceeded", "The object exceeded the rate limit for object mutation operations.".to_owned()),
        503 => ("backendError", "We encountered an internal error. Please try again.".to_owned()),
        _ => ("injected", format!("Injected status {status}.")),
    };
    let body = serde_json::json!({
        "error": { "code": status, "message": message, "errors": [{ "message": message, "domain": "global", "reason": reason }] }
    });
    let mut response = plain(status, body.to_string());
    response.headers_mut().insert("content-type", http::HeaderValue::from_static("application/json; charset=UTF-8"));
    response
}

fn plain(status: u16, text: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_metadata_is_parsed() {
        let body = b"--XyZ\r\ncontent-disposition: form-data; name=\"metadata\"\r\ncontent-type: application/json; charset=UTF-8\r\n\r\n{\"name\":\"siem/a.ndjson.gz\",\"contentType\":\"application/gzip\"}\r\n--XyZ\r\ncontent-disposition: form-data; name=\"media\"\r\n\r\n\x1f\x8b...\r\n--XyZ--\r\n";
        let parts = multipart_parts("multipart/related; boundary=XyZ", body);
        assert_eq!(parts.len(), 2);
        let m = first_json(parts[0]).expect("metadata");
        assert_eq!(m["name"], "siem/a.ndjson.gz");
        assert_eq!(m["contentType"], "application/gzip");
        assert_eq!(parts[1], b"\x1f\x8b...");
    }

    #[test]
    fn object_names_are_found_in_paths() {
        assert_eq!(object_in_path("/storage/v1/b/bk/o/siem%2Fa%20b.ndjson").as_deref(), Some("siem/a b.ndjson"));
        assert_eq!(object_in_path("/download/storage/v1/b/bk/o/x").as_deref(), Some("x"));
        assert_eq!(object_in_path("/storage/v1/b/bk/o"), None);
    }
}
