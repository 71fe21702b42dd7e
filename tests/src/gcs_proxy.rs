//! A loopback HTTP proxy in front of the GCS emulator that forwards every
//! request unchanged, except those matching a rule, which get an injected
//! status with a GCS-style JSON error body instead (the emulator never sees
//! them). It stands in for what the emulator cannot do: a read-only
//! credential (403 on writes, since fake-gcs-server does not enforce IAM) and
//! transient failures (429/503) to exercise siphon's bounded retries.
//!
//! Every request is recorded (method, path, the status answered) so a test
//! can count attempts.
//!
//! ```no_run
//! # async fn demo(emulator_endpoint: &str) -> anyhow::Result<()> {
//! use siphon_tests::gcs_proxy::{GcsProxy, Rule};
//! let proxy = GcsProxy::start(emulator_endpoint).await?;
//! proxy.add(Rule::read_only());                 // 403 for every write, forever
//! proxy.add(Rule::status("POST", 503).times(2)); // or: the next two uploads fail
//! // point siphon at proxy.endpoint()
//! # Ok(()) }
//! ```

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// The service account named in injected 403 messages.
pub const READ_ONLY_PRINCIPAL: &str = "siphon-reader@test-project.iam.gserviceaccount.com";

/// Which requests get which injected answer.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Methods matched (upper case); empty matches every method.
    pub methods: Vec<String>,
    /// Substring of the path that must be present; empty matches every path.
    pub path_contains: String,
    /// Status to answer.
    pub status: u16,
    /// How many more requests this rule answers; `None` is forever.
    pub remaining: Option<usize>,
}

impl Rule {
    /// Answer `status` to every `method` request.
    pub fn status(method: &str, status: u16) -> Rule {
        Rule { methods: vec![method.to_uppercase()], path_contains: String::new(), status, remaining: None }
    }

    /// A credential with only `storage.objects.get`/`list` (Storage Object
    /// Viewer): every upload, delete or metadata change gets 403.
    pub fn read_only() -> Rule {
        Rule {
            methods: ["POST", "PUT", "PATCH", "DELETE"].map(str::to_owned).to_vec(),
            path_contains: String::new(),
            status: 403,
            remaining: None,
        }
    }

    /// Only for paths containing `part`.
    pub fn path(mut self, part: &str) -> Rule {
        self.path_contains = part.to_owned();
        self
    }

    /// Only for the next `n` matching requests.
    pub fn times(mut self, n: usize) -> Rule {
        self.remaining = Some(n);
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.remaining != Some(0)
            && (self.methods.is_empty() || self.methods.iter().any(|m| m == method))
            && path.contains(&self.path_contains)
    }
}

/// One request the proxy saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Status answered (injected or forwarded).
    pub status: u16,
    /// Whether the status was injected.
    pub injected: bool,
}

#[derive(Default)]
struct Shared {
    rules: Mutex<Vec<Rule>>,
    seen: Mutex<Vec<Seen>>,
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
        let client = crate::http_client(None)?;
        let upstream = upstream.trim_end_matches('/').to_owned();
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared), client, upstream));
        Ok(GcsProxy { addr, shared, task })
    }

    /// Base URL for siphon's `endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Add a rule; the first matching rule answers.
    pub fn add(&self, rule: Rule) {
        lock(&self.shared.rules).push(rule);
    }

    /// Remove every rule: forward everything.
    pub fn clear(&self) {
        lock(&self.shared.rules).clear();
    }

    /// Requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.shared.seen).clone()
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
                    let (shared, client, upstream) = (Arc::clone(&shared), client.clone(), upstream.clone());
                    conns.spawn(async move {
                        let service = service_fn(move |req| {
                            let (shared, client, upstream) = (Arc::clone(&shared), client.clone(), upstream.clone());
                            async move { Ok::<_, Infallible>(handle(&shared, &client, &upstream, req).await) }
                        });
                        let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                    });
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn handle(
    shared: &Shared,
    client: &reqwest::Client,
    upstream: &str,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path_and_query().map_or("/".to_owned(), |p| p.as_str().to_owned());
    let injected = {
        let mut rules = lock(&shared.rules);
        rules.iter_mut().find(|r| r.matches(&method, req.uri().path())).map(|r| {
            if let Some(n) = r.remaining.as_mut() {
                *n -= 1;
            }
            r.status
        })
    };
    let response = match injected {
        Some(status) => {
            // Read the body so the client sees an answer, not a reset.
            let _ = req.into_body().collect().await;
            gcs_error(status, &method)
        }
        None => forward(client, upstream, req).await,
    };
    lock(&shared.seen).push(Seen { method, path, status: response.status().as_u16(), injected: injected.is_some() });
    response
}

async fn forward(client: &reqwest::Client, upstream: &str, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return plain(502, format!("proxy: cannot read the request body: {e}")),
    };
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
