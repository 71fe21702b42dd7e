//! The wasmtime engine: configured once (async, epoch interruption, compile
//! cache), collectors compiled once and kept as `InstancePre`, and a
//! background ticker that advances the epoch for run deadlines.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{Cache, CacheConfig, Config, Engine, Store, UpdateDeadline};

use crate::bindings::CollectorPre;
use crate::bindings::types::CollectorInfo;
use crate::egress::{Egress, Network};
use crate::imports::{self, HostState};

mod loaded;

/// How often the epoch advances; deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(50);

/// Longest the `info` and `validate` exports may take (they do no I/O).
const INFO_DEADLINE: Duration = Duration::from_secs(5);

/// Why a collector component cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file cannot be read.
    #[error("collector {path}: cannot read: {error}")]
    Read {
        /// The `.wasm` file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The bytes are not a valid WebAssembly component.
    #[error("collector {path}: not a valid WebAssembly component: {message}")]
    Invalid {
        /// The `.wasm` file.
        path: PathBuf,
        /// wasmtime's explanation.
        message: String,
    },
    /// The component does not fit the `siphon:collector` world.
    #[error("collector {path}: does not match the siphon:collector@0.1.0 world: {message}")]
    Mismatch {
        /// The `.wasm` file.
        path: PathBuf,
        /// Which import or export does not fit.
        message: String,
    },
    /// Calling `info` failed.
    #[error("collector {path}: `info` failed: {message}")]
    Info {
        /// The `.wasm` file.
        path: PathBuf,
        /// The trap or error.
        message: String,
    },
}

/// A compiled collector, ready to instantiate many times.
#[derive(Clone)]
pub struct LoadedCollector {
    /// The `.wasm` file it came from.
    pub path: PathBuf,
    /// What the collector says about itself.
    pub info: CollectorInfo,
    /// Pre-linked instance.
    pub pre: CollectorPre<HostState>,
}

/// The engine and linker shared by every run.
pub struct SiphonEngine {
    engine: Engine,
    linker: Linker<HostState>,
    stop: Arc<AtomicBool>,
    loaded: loaded::LoadCache,
}

impl SiphonEngine {
    /// An engine caching compiled components under `cache_dir` (no cache
    /// when `None`).
    pub fn new(cache_dir: Option<&Path>) -> anyhow::Result<SiphonEngine> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        if std::env::var_os("SIPHON_PERFMAP").is_some() {
            // For `perf record`: names guest functions in /tmp/perf-<pid>.map.
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        if let Some(dir) = cache_dir {
            // Private: compiled collectors are code the daemon will run.
            crate::sink::local::create_private_dir(dir)
                .map_err(|e| anyhow::anyhow!("cannot create compile cache {}: {e}", dir.display()))?;
            let mut cache = CacheConfig::new();
            cache.with_directory(dir);
            config.cache(Some(Cache::new(cache)?));
        }
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        imports::add_to_linker(&mut linker)?;

        let stop = Arc::new(AtomicBool::new(false));
        let (weak, flag) = (engine.weak(), stop.clone());
        std::thread::Builder::new().name("siphon-epoch".into()).spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })?;
        Ok(SiphonEngine { engine, linker, stop, loaded: loaded::LoadCache::default() })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compile (or load from cache) and link a collector, then ask it for
    /// its `info`. Sources naming the same unchanged file share one load
    /// (see `loaded`).
    pub async fn load(&self, path: &Path) -> Result<LoadedCollector, LoadError> {
        // The stamp is taken before the read: a file replaced in between is
        // stamped as changed and read again next time.
        let stamp = loaded::Stamp::of(path);
        if let Some(hit) = stamp.as_ref().and_then(|s| self.loaded.by_stamp(path, s)) {
            return Ok(hit);
        }
        let bytes = std::fs::read(path).map_err(|error| LoadError::Read { path: path.to_owned(), error })?;
        let sha256 = loaded::content_hash(&bytes);
        if let Some(hit) = self.loaded.by_content(path, &sha256, stamp.clone()) {
            return Ok(hit);
        }
        let collector = self.compile(path, bytes).await?;
        self.loaded.put(path, sha256, stamp, &collector);
        Ok(collector)
    }

    /// [`SiphonEngine::load`] of bytes already read from `path` whose
    /// SHA-256 (hex) is `sha256` (a reload compiles exactly the bytes whose
    /// hash it compared). Shares the load of a file with the same content.
    pub async fn load_bytes(&self, path: &Path, bytes: Vec<u8>, sha256: &str) -> Result<LoadedCollector, LoadError> {
        if let Some(hit) = self.loaded.by_content(path, sha256, None) {
            return Ok(hit);
        }
        let collector = self.compile(path, bytes).await?;
        // The file may have changed since the bytes were read: no stamp, so
        // a later load by path reads and hashes it.
        self.loaded.put(path, sha256.to_owned(), None, &collector);
        Ok(collector)
    }

    async fn compile(&self, path: &Path, bytes: Vec<u8>) -> Result<LoadedCollector, LoadError> {
        let engine = self.engine.clone();
        let component = tokio::task::spawn_blocking(move || Component::new(&engine, &bytes))
            .await
            .map_err(|e| LoadError::Invalid { path: path.to_owned(), message: e.to_string() })?
            .map_err(|e| LoadError::Invalid { path: path.to_owned(), message: format!("{e:#}") })?;
        let mismatch = |e: wasmtime::Error| LoadError::Mismatch { path: path.to_owned(), message: format!("{e:#}") };
        let instance_pre = self.linker.instantiate_pre(&component).map_err(mismatch)?;
        let pre = CollectorPre::new(instance_pre).map_err(mismatch)?;
        let info =
            self.info(&pre).await.map_err(|e| LoadError::Info { path: path.to_owned(), message: format!("{e:#}") })?;
        Ok(LoadedCollector { path: path.to_owned(), info, pre })
    }

    async fn info(&self, pre: &CollectorPre<HostState>) -> anyhow::Result<CollectorInfo> {
        let source = Arc::new(crate::config::SourceSpec::placeholder()?);
        let egress = Arc::new(Egress::new("info", Vec::new(), false, source.limits.clone(), Arc::new(Network)));
        let mut store = self.store(HostState::new(source, egress, None), INFO_DEADLINE);
        let instance = pre.instantiate_async(&mut store).await?;
        let info = tokio::time::timeout(INFO_DEADLINE, instance.call_info(&mut store))
            .await
            .map_err(|_| anyhow::anyhow!("did not return within {INFO_DEADLINE:?}"))??;
        Ok(info)
    }

    /// Asks `collector` whether `source`'s settings and secrets are usable
    /// (its `validate` export; no network, sink or checkpoint): every
    /// problem, one line each naming its key.
    pub async fn validate(
        &self,
        collector: &LoadedCollector,
        source: Arc<crate::config::SourceSpec>,
    ) -> anyhow::Result<Vec<String>> {
        let egress = Arc::new(Egress::new(&source.name, Vec::new(), false, source.limits.clone(), Arc::new(Network)));
        let mut store = self.store(HostState::new(source, egress, None), INFO_DEADLINE);
        let instance = collector.pre.instantiate_async(&mut store).await?;
        let problems = tokio::time::timeout(INFO_DEADLINE, instance.call_validate(&mut store))
            .await
            .map_err(|_| anyhow::anyhow!("did not return within {INFO_DEADLINE:?}"))??;
        Ok(problems)
    }

    /// A fresh store for one run: memory limiter installed (see `limits`),
    /// and a guest that
    /// computes without calling the host yields to the executor every epoch
    /// tick and traps (`Trap::Interrupt`) once `deadline` from now has
    /// passed. The yields keep a CPU-bound guest from holding a runtime
    /// thread: other runs, metrics and shutdown go on, and a run abandoned at
    /// shutdown is dropped at its next tick.
    pub fn store(&self, state: HostState, deadline: Duration) -> Store<HostState> {
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        let ends = std::time::Instant::now() + deadline;
        store.set_epoch_deadline(1);
        // A run that went past a limit (see `limits::RunBudget`) is stopped
        // at the next tick too, even if the collector ignores the error.
        store.epoch_deadline_callback(move |ctx| {
            let stop = ctx.data().budget.stopped() || std::time::Instant::now() >= ends;
            Ok(if stop { UpdateDeadline::Interrupt } else { UpdateDeadline::Yield(1) })
        });
        store
    }
}

impl Drop for SiphonEngine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
