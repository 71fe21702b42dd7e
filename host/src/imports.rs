//! The Store data of a run ([`HostState`]) and the host side of every
//! interface the collector world imports, one module per WIT interface.
//!
//! Capabilities are checked inside the imports, from the source's config:
//! the source's settings and secrets only, its allow-list on every request,
//! its limits on every allocation made for the guest (see `limits`).
//!
//! Four imports take their arguments lazily (`sink.emit`, `log.log`,
//! `log.panicked`, `checkpoint.commit`): the generated bindings would copy a
//! whole `list<string>` into host `String`s before any check, and a list of
//! tiny strings costs the host about six times the guest memory it occupies.
//! These are linked by hand over the generated ones (see [`add_to_linker`])
//! and read only what the limits let through.

pub mod checkpoint;
pub mod config;
pub mod http;
pub mod json;
pub mod log;
pub mod sink;

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::p2::pipe::{ClosedInputStream, SinkOutputStream};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::config::SourceSpec;
use crate::delivery::Delivery;
use crate::egress::Egress;
use crate::limits::{LogBudget, MAX_RANDOM_BYTES, MemoryLimiter, RunBudget, bytes};
use crate::secrets::Redactor;

/// What a socket address check answers with (always "no").
type SocketCheck = std::pin::Pin<Box<dyn Future<Output = bool> + Send + Sync>>;

/// Everything a run's Store holds. Fresh for every run.
pub struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: http::Hooks,
    stderr: CappedPipe,
    /// Linear memory and table cap of the instance.
    pub limiter: MemoryLimiter,
    /// Host-side allocations of the run and the first limit it went past.
    pub budget: Arc<RunBudget>,
    /// Guest log lines per level.
    pub log_budget: LogBudget,
    /// The run this store belongs to.
    pub run: RunContext,
}

/// Per-run facts the imports need.
pub struct RunContext {
    /// The source's validated config.
    pub source: Arc<SourceSpec>,
    /// Scrubs the source's secrets from guest text.
    pub redactor: Redactor,
    /// Sink and checkpoint for this run; `None` while only `info` is called.
    pub delivery: Option<Delivery>,
    /// Message from the guest's panic hook, if it panicked.
    pub panic: Option<String>,
    /// Records accepted by `sink.emit` during the run.
    pub records_emitted: u64,
    /// Commits asked for by the collector during the run.
    pub commits: u32,
    /// A checkpoint conflict ends the run; later commits are refused.
    pub conflict: Option<String>,
    /// A record with a configured secret in it ends the run: it is refused,
    /// with everything pending, and later commits are refused.
    pub secret_in_record: Option<String>,
}

impl HostState {
    /// A store's data for one run of `source`.
    pub fn new(source: Arc<SourceSpec>, egress: Arc<Egress>, delivery: Option<Delivery>) -> HostState {
        let limits = &source.limits;
        let stderr = CappedPipe::new(bytes(limits.max_stderr_size));
        // The component reaches the world only through siphon's imports and
        // wasi:http. Every other door is shut here, explicitly, rather than
        // left to the builder's defaults: no preopened directory (so
        // wasi:filesystem has nothing to open), no environment variables, no
        // arguments, stdin closed, stdout discarded, no TCP, no UDP, no name
        // resolution, and every socket address refused.
        let wasi = wasmtime_wasi::WasiCtxBuilder::new()
            .stdin(ClosedInputStream)
            .stdout(SinkOutputStream)
            .stderr(stderr.clone())
            .envs(&[] as &[(&str, &str)])
            .args(&[] as &[&str])
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| -> SocketCheck { Box::pin(async { false }) })
            .allow_blocking_current_thread(false)
            .max_random_size(MAX_RANDOM_BYTES)
            .build();
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(bytes(limits.max_field_size));
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits.max_resources);
        let budget = RunBudget::new(limits);
        let redactor = source.secrets.redactor();
        HostState {
            wasi,
            http,
            table,
            hooks: http::Hooks::new(egress, budget.clone()),
            stderr,
            limiter: MemoryLimiter::new(&source.name, limits),
            log_budget: LogBudget::new(limits),
            budget,
            run: RunContext {
                source,
                redactor,
                delivery,
                panic: None,
                records_emitted: 0,
                commits: 0,
                conflict: None,
                secret_in_record: None,
            },
        }
    }

    /// What the guest wrote to stderr (the first `max_stderr_size` bytes),
    /// secrets redacted, and how many bytes past that were dropped.
    pub fn stderr(&self) -> (String, u64) {
        let (kept, dropped) = self.stderr.contents();
        (self.run.redactor.redact(&String::from_utf8_lossy(&kept)), dropped)
    }

    /// Guest text made fit for logs and messages: secrets redacted, cut to
    /// `max_message_size`, control characters escaped.
    pub fn guest_text(&self, text: &str) -> String {
        guest_text(&self.run.redactor, &self.run.source.limits, text)
    }
}

/// See [`HostState::guest_text`].
pub fn guest_text(redactor: &Redactor, limits: &crate::limits::Limits, text: &str) -> String {
    let clipped = redactor.redact_clipped(text, bytes(limits.max_message_size));
    crate::telemetry::escape(&clipped).into_owned()
}

/// Guest stderr: keeps the first `capacity` bytes and drops the rest
/// without telling the guest (wasmtime's `MemoryOutputPipe` closes the
/// stream when full, and Rust's `eprintln!` then panics: a chatty collector
/// would crash instead of being clipped).
#[derive(Clone)]
pub struct CappedPipe {
    capacity: usize,
    kept: Arc<std::sync::Mutex<(bytes::BytesMut, u64)>>,
}

impl CappedPipe {
    fn new(capacity: usize) -> CappedPipe {
        CappedPipe { capacity, kept: Arc::new(std::sync::Mutex::new((bytes::BytesMut::new(), 0))) }
    }

    fn keep(&self, data: &[u8]) {
        let mut kept = self.kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let room = self.capacity.saturating_sub(kept.0.len()).min(data.len());
        kept.0.extend_from_slice(&data[..room]);
        kept.1 += (data.len() - room) as u64;
    }

    /// The bytes kept and the number dropped.
    fn contents(&self) -> (bytes::Bytes, u64) {
        let kept = self.kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (kept.0.clone().freeze(), kept.1)
    }
}

#[async_trait::async_trait]
impl wasmtime_wasi::p2::OutputStream for CappedPipe {
    fn write(&mut self, bytes: bytes::Bytes) -> Result<(), wasmtime_wasi::p2::StreamError> {
        self.keep(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), wasmtime_wasi::p2::StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, wasmtime_wasi::p2::StreamError> {
        Ok(64 * 1024)
    }
}

#[async_trait::async_trait]
impl wasmtime_wasi::p2::Pollable for CappedPipe {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CappedPipe {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.keep(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

impl wasmtime_wasi::cli::IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for CappedPipe {
    fn p2_stream(&self) -> Box<dyn wasmtime_wasi::p2::OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

/// Add every import of the collector world to `linker`: WASI (for Rust std
/// and clocks), wasi:http through siphon's hooks, and siphon's interfaces.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    use crate::bindings::siphon::collector as wit;
    wit::checkpoint::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?;
    wit::sink::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?;
    wit::log::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?;
    wit::config::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?;
    wit::json::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?;
    // The lazily read versions replace the generated ones (module docs).
    linker.allow_shadowing(true);
    sink::add_lazy_to_linker(linker)?;
    log::add_lazy_to_linker(linker)?;
    checkpoint::add_lazy_to_linker(linker)?;
    json::add_in_place_to_linker(linker)?;
    linker.allow_shadowing(false);
    Ok(())
}

impl crate::bindings::types::Host for HostState {}
