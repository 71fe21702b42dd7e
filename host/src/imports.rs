//! The Store data of a run ([`HostState`]) and the host side of every
//! interface the collector world imports, one module per WIT interface.
//!
//! Capabilities are checked inside the imports, from the source's config:
//! the source's settings and secrets only, its allow-list on every request,
//! its memory cap on every growth.

pub mod checkpoint;
pub mod config;
pub mod http;
pub mod log;
pub mod sink;

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::config::SourceSpec;
use crate::delivery::Delivery;
use crate::egress::Egress;
use crate::secrets::Redactor;

/// Guest stderr kept per run (and logged when the run ends); more is dropped.
const STDERR_CAPTURE: usize = 64 * 1024;

/// Everything a run's Store holds. Fresh for every run.
pub struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: http::Hooks,
    stderr: MemoryOutputPipe,
    /// Memory cap of the instance.
    pub limiter: MemoryLimiter,
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
    /// A checkpoint conflict ends the run; later commits are refused.
    pub conflict: Option<String>,
}

impl HostState {
    /// A store's data for one run of `source`.
    pub fn new(source: Arc<SourceSpec>, egress: Arc<Egress>, delivery: Option<Delivery>) -> HostState {
        let stderr = MemoryOutputPipe::new(STDERR_CAPTURE);
        // No filesystem, no environment, no sockets, no stdin: the component
        // reaches the world only through siphon's imports and wasi:http.
        let wasi = wasmtime_wasi::WasiCtxBuilder::new().stderr(stderr.clone()).build();
        let limit = source.limits.memory.as_u64() as usize;
        let redactor = source.secrets.redactor();
        HostState {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: http::Hooks::new(egress),
            stderr,
            limiter: MemoryLimiter::new(&source.name, limit),
            run: RunContext { source, redactor, delivery, panic: None, records_emitted: 0, conflict: None },
        }
    }

    /// What the guest wrote to stderr, secrets redacted.
    pub fn stderr(&self) -> String {
        self.run.redactor.redact(&String::from_utf8_lossy(&self.stderr.contents()))
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
    Ok(())
}

impl crate::bindings::types::Host for HostState {}

/// Caps linear memory and remembers refusals, so an allocation failure in
/// the guest (which a Rust guest turns into an abort) is reported as
/// out-of-memory rather than as a generic trap.
pub struct MemoryLimiter {
    source: String,
    limit: usize,
    /// Number of refused growth requests.
    pub refused: u32,
    /// Largest size the guest asked for.
    pub largest_request: usize,
}

impl MemoryLimiter {
    fn new(source: &str, limit: usize) -> MemoryLimiter {
        MemoryLimiter { source: source.to_owned(), limit, refused: 0, largest_request: 0 }
    }

    /// The cap in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.refused += 1;
            self.largest_request = self.largest_request.max(desired);
            crate::telemetry::memory_refused(&self.source);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // Tables hold function references; a collector needs a few thousand.
        Ok(desired <= 1_000_000)
    }
}
