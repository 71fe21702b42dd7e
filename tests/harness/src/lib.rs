//! Run any collector component under siphon's real engine, imports and
//! egress policy, with an in-memory checkpoint and sink and a scripted HTTP
//! responder in place of the network.
//!
//! A collector test then reads: given these vendor responses and this
//! cursor, it emits these records, commits this cursor and sends these
//! requests.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use siphon_harness::{Harness, Reply, When};
//! let mut h = Harness::new("netskope_alerts")?
//!     .allow_host("tenant.goskope.com")
//!     .setting("base_url", "https://tenant.goskope.com")
//!     .secret("api_token", "t0ken");
//! h.script(When::get("https://tenant.goskope.com/api/v2/events/dataexport/alerts/dlp"),
//!          Reply::json(200, r#"{"ok":1,"wait_time":0,"result":[]}"#));
//! let run = h.run().await?;
//! assert!(run.report.ok());
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use siphon::config::{SinkSettings, SinkTarget, SourceSpec};
use siphon::egress::{BufferedRequest, HostPattern, Upstream};
use siphon::engine::SiphonEngine;
use siphon::runner::{self, RunReport};
use siphon::services::Runtime;
use siphon::sink::memory::MemorySink;
use siphon::state::memory::MemoryStateStore;
use siphon::state::{STATE_VERSION, SourceState, StateStore};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

/// Where `make guests` puts components: `$SIPHON_GUEST_DIR`, or
/// `target/guests` at the workspace root.
pub fn guest_dir() -> PathBuf {
    match std::env::var_os("SIPHON_GUEST_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/guests"),
    }
}

/// Path of a built guest component (`netskope_alerts` → `netskope_alerts.wasm`),
/// with an error saying how to build it when it is missing.
pub fn guest(name: &str) -> anyhow::Result<PathBuf> {
    let path = guest_dir().join(format!("{name}.wasm"));
    anyhow::ensure!(path.is_file(), "guest component {} is missing: build it with `make guests`", path.display());
    Ok(path)
}

/// Which requests a scripted reply answers. Every given part must match.
#[derive(Debug, Clone)]
pub struct When {
    method: String,
    url: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
}

impl When {
    /// A request with `method` to `url` (scheme, authority and path; a query
    /// in `url` is ignored — use [`When::query`]).
    pub fn new(method: &str, url: &str) -> When {
        let url = url.split('?').next().unwrap_or(url).to_owned();
        When { method: method.to_ascii_uppercase(), url, query: Vec::new(), headers: Vec::new() }
    }

    /// A GET to `url`.
    pub fn get(url: &str) -> When {
        When::new("GET", url)
    }

    /// Also require query parameter `key` to equal `value`.
    pub fn query(mut self, key: &str, value: &str) -> When {
        self.query.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Also require header `name` (case-insensitive) to equal `value`.
    pub fn header(mut self, name: &str, value: &str) -> When {
        self.headers.push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    fn matches(&self, r: &Recorded) -> bool {
        self.method == r.method
            && self.url == r.url
            && self.query.iter().all(|(k, v)| r.param(k) == Some(v.as_str()))
            && self.headers.iter().all(|(k, v)| r.header(k) == Some(v.as_str()))
    }
}

/// A canned response.
#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
}

impl Reply {
    /// A response with `status` and `body`.
    pub fn new(status: u16, body: impl Into<Bytes>) -> Reply {
        Reply { status, headers: Vec::new(), body: body.into() }
    }

    /// A JSON response.
    pub fn json(status: u16, body: impl Into<Bytes>) -> Reply {
        Reply::new(status, body).header("content-type", "application/json")
    }

    /// Add a response header.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// A request the collector sent (after the host's allow-list let it out).
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Upper-case method.
    pub method: String,
    /// Scheme, authority and path.
    pub url: String,
    /// Decoded query parameters in order.
    pub query: Vec<(String, String)>,
    /// Headers with lower-case names.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Bytes,
}

impl Recorded {
    /// First value of query parameter `key`.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }
}

struct Rule {
    when: When,
    reply: Reply,
    /// `Some(n)`: answers n more times; `None`: always.
    remaining: Option<usize>,
}

/// The scripted upstream: first matching rule with uses left answers;
/// an unscripted request gets 599 and is recorded as unmatched.
#[derive(Default)]
struct Script {
    rules: Mutex<Vec<Rule>>,
    requests: Mutex<Vec<Recorded>>,
    unmatched: Mutex<Vec<Recorded>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn decode_query(q: &str) -> Vec<(String, String)> {
    let unescape = |s: &str| -> String {
        let bytes = s.replace('+', " ").into_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%'
                && i + 2 < bytes.len()
                && let Ok(v) = u8::from_str_radix(&String::from_utf8_lossy(&bytes[i + 1..i + 3]), 16)
            {
                out.push(v);
                i += 3;
                continue;
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (unescape(k), unescape(v)),
            None => (unescape(p), String::new()),
        })
        .collect()
}

impl Upstream for Script {
    fn send(
        &self,
        request: BufferedRequest,
        _options: RequestOptions,
    ) -> futures::future::BoxFuture<'static, Result<http::Response<WasiBody>, HttpError>> {
        let uri = request.uri();
        let recorded = Recorded {
            method: request.method().as_str().to_owned(),
            url: format!(
                "{}://{}{}",
                uri.scheme_str().unwrap_or("https"),
                uri.authority().map(|a| a.as_str()).unwrap_or(""),
                uri.path()
            ),
            query: decode_query(uri.query().unwrap_or("")),
            headers: request
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect(),
            body: request.body().clone(),
        };
        lock(&self.requests).push(recorded.clone());
        let reply = {
            let mut rules = lock(&self.rules);
            rules.iter_mut().find(|r| r.remaining != Some(0) && r.when.matches(&recorded)).map(|r| {
                if let Some(n) = r.remaining.as_mut() {
                    *n -= 1;
                }
                r.reply.clone()
            })
        };
        let reply = reply.unwrap_or_else(|| {
            let text = format!("siphon-harness: no scripted reply for {} {}", recorded.method, recorded.url);
            lock(&self.unmatched).push(recorded);
            Reply::new(599, text)
        });
        Box::pin(async move {
            let mut builder = http::Response::builder().status(reply.status);
            for (k, v) in &reply.headers {
                builder = builder.header(k, v);
            }
            builder
                .body(Full::new(reply.body).map_err(|never| match never {}).boxed_unsync())
                .map_err(|e| HttpError::InternalError(Some(e.to_string())))
        })
    }
}

/// One collector, one source, scripted vendor.
pub struct Harness {
    component: PathBuf,
    spec: SourceSpec,
    script: Arc<Script>,
    sink: MemorySink,
    state: MemoryStateStore,
    sink_settings: SinkSettings,
}

/// What one run did.
#[derive(Debug)]
pub struct Run {
    /// The host's report of the run.
    pub report: RunReport,
    /// Every record in the sink after the run (all runs so far), in object order.
    pub records: Vec<String>,
    /// Requests sent during this run.
    pub requests: Vec<Recorded>,
    /// Requests no rule answered during this run.
    pub unmatched: Vec<Recorded>,
    /// The committed cursor after the run.
    pub cursor: Option<String>,
}

impl Harness {
    /// A harness for guest `name` (see [`guest`]) as source `test`.
    pub fn new(name: &str) -> anyhow::Result<Harness> {
        Harness::from_path(&guest(name)?)
    }

    /// A harness for the component at `path`.
    pub fn from_path(path: &Path) -> anyhow::Result<Harness> {
        let mut spec = SourceSpec::placeholder()?;
        spec.name = "test".to_owned();
        spec.prefix = "test".to_owned();
        spec.collector = path.to_owned();
        spec.limits.run_timeout = Duration::from_secs(60);
        Ok(Harness {
            component: path.to_owned(),
            spec,
            script: Arc::new(Script::default()),
            sink: MemorySink::default(),
            state: MemoryStateStore::default(),
            sink_settings: SinkSettings {
                target: SinkTarget::Local { dir: PathBuf::from("/nonexistent") },
                prefix: String::new(),
                gzip: false,
                max_records: 100_000,
                max_bytes: 64 << 20,
            },
        })
    }

    /// Allow requests to `host` (an `allowed_hosts` entry).
    pub fn allow_host(mut self, host: &str) -> Harness {
        if let Ok(p) = HostPattern::parse(host) {
            self.spec.allowed_hosts.push(p);
        }
        self
    }

    /// Allow plain http.
    pub fn allow_http(mut self) -> Harness {
        self.spec.allow_http = true;
        self
    }

    /// Set a setting.
    pub fn setting(mut self, name: &str, value: &str) -> Harness {
        self.spec.settings.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Set a secret.
    pub fn secret(mut self, name: &str, value: &str) -> Harness {
        self.spec.secrets.insert(name.to_owned(), value.to_owned().into());
        self
    }

    /// Change the source's limits.
    pub fn limits(mut self, f: impl FnOnce(&mut siphon::limits::Limits)) -> Harness {
        f(&mut self.spec.limits);
        self
    }

    /// Answer requests matching `when` with `reply`, every time.
    pub fn script(&mut self, when: When, reply: Reply) {
        lock(&self.script.rules).push(Rule { when, reply, remaining: None });
    }

    /// Answer the next `times` requests matching `when` with `reply`; rules
    /// are tried in the order they were added.
    pub fn script_times(&mut self, when: When, reply: Reply, times: usize) {
        lock(&self.script.rules).push(Rule { when, reply, remaining: Some(times) });
    }

    /// Forget all scripted replies.
    pub fn clear_script(&mut self) {
        lock(&self.script.rules).clear();
    }

    /// Set the committed cursor before the next run.
    pub async fn set_cursor(&mut self, cursor: Option<&str>) -> anyhow::Result<()> {
        let current = self.state.load(&self.spec.name).await?;
        let state = SourceState { version: STATE_VERSION, cursor: cursor.map(str::to_owned), ..SourceState::default() };
        self.state.store(&self.spec.name, &state, current.map(|s| s.generation)).await?;
        Ok(())
    }

    /// The committed cursor.
    pub async fn cursor(&self) -> anyhow::Result<Option<String>> {
        Ok(self.state.load(&self.spec.name).await?.and_then(|s| s.state.cursor))
    }

    /// Every record in the sink, in object-name order.
    pub fn records(&self) -> Vec<String> {
        self.sink
            .objects()
            .iter()
            .flat_map(|(_, o)| String::from_utf8_lossy(&o.body).lines().map(str::to_owned).collect::<Vec<_>>())
            .collect()
    }

    /// Run `collect` once under the real engine.
    pub async fn run(&mut self) -> anyhow::Result<Run> {
        let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/siphon-test-cache");
        let engine = SiphonEngine::new(Some(&cache))?;
        let mut runtime =
            Runtime::new(engine, Arc::new(self.sink.clone()), Arc::new(self.state.clone()), self.sink_settings.clone());
        runtime
            .add_source(self.spec.clone(), self.script.clone())
            .await
            .map_err(|e| anyhow::anyhow!(e))
            .with_context(|| format!("loading {}", self.component.display()))?;
        let source = runtime.source(&self.spec.name).context("source not loaded")?;
        let before = lock(&self.script.requests).len();
        let before_unmatched = lock(&self.script.unmatched).len();
        let report = tokio::time::timeout(Duration::from_secs(120), runner::run(&runtime, &source))
            .await
            .context("run did not finish within 120 s")?;
        let requests = lock(&self.script.requests)[before..].to_vec();
        let unmatched = lock(&self.script.unmatched)[before_unmatched..].to_vec();
        Ok(Run { records: self.records(), requests, unmatched, cursor: self.cursor().await?, report })
    }

    /// Settings currently configured, for assertions.
    pub fn settings(&self) -> &BTreeMap<String, String> {
        &self.spec.settings
    }
}
