//! Assembles what runs need from the validated config: the engine, the sink
//! and state backends (a GCS bucket is proven writable at start-up), and per
//! source its compiled collector, egress policy and object layout. Also checks
//! each source's settings against what its collector declares in `info`.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;

use crate::config::{Settings, SinkSettings, SinkTarget, SourceSpec, StateSettings};
use crate::egress::{Egress, Network, Upstream};
use crate::engine::{LoadedCollector, SiphonEngine};
use crate::sink::{Layout, Sink, gcs::GcsSink, local::LocalDirSink};
use crate::state::{StateStore, gcs::GcsStateStore, local::LocalStateStore};

/// One configured source, ready to run.
pub struct SourceRuntime {
    /// The validated config.
    pub spec: Arc<SourceSpec>,
    /// The compiled collector.
    pub collector: LoadedCollector,
    /// Outbound HTTP policy, shared by all runs (it holds the rate limiter).
    pub egress: Arc<Egress>,
    /// Object naming and splitting.
    pub layout: Layout,
}

impl SourceRuntime {
    /// `name@version` of the collector.
    pub fn collector_name(&self) -> String {
        format!("{}@{}", self.collector.info.name, self.collector.info.version)
    }
}

/// Everything the scheduler and the CLI run sources with.
pub struct Runtime {
    /// The shared engine.
    pub engine: SiphonEngine,
    /// Where records go.
    pub sink: Arc<dyn Sink>,
    /// Where checkpoints go.
    pub state: Arc<dyn StateStore>,
    sink_settings: SinkSettings,
    sources: BTreeMap<String, Arc<SourceRuntime>>,
}

impl Runtime {
    /// A runtime with no sources yet.
    pub fn new(
        engine: SiphonEngine,
        sink: Arc<dyn Sink>,
        state: Arc<dyn StateStore>,
        sink_settings: SinkSettings,
    ) -> Runtime {
        Runtime { engine, sink, state, sink_settings, sources: BTreeMap::new() }
    }

    /// Build backends and engine from the config and load `only` the named
    /// sources (all when `None`). Every source problem is reported, not just
    /// the first.
    pub async fn from_settings(settings: &Settings, only: Option<&str>) -> anyhow::Result<Runtime> {
        let engine = SiphonEngine::new(Some(&settings.engine.cache_dir))?;
        let (sink, state) = backends(settings).await?;
        Runtime::new(engine, sink, state, settings.sink.clone()).with_sources(settings, only).await
    }

    /// Like [`Runtime::from_settings`] without touching the sink, the state
    /// store or the compile cache (in-memory stand-ins take their place): for
    /// checking a config where its buckets and directories are out of reach
    /// (`siphon check --offline`, e.g. in CI).
    pub async fn offline(settings: &Settings) -> anyhow::Result<Runtime> {
        let engine = SiphonEngine::new(None)?;
        let sink = Arc::new(crate::sink::memory::MemorySink::default());
        let state = Arc::new(crate::state::memory::MemoryStateStore::default());
        Runtime::new(engine, sink, state, settings.sink.clone()).with_sources(settings, None).await
    }

    async fn with_sources(mut self, settings: &Settings, only: Option<&str>) -> anyhow::Result<Runtime> {
        let runtime = &mut self;
        let mut problems = Vec::new();
        for (name, spec) in &settings.sources {
            if only.is_some_and(|o| o != name) {
                continue;
            }
            if let Err(e) = runtime.add_source(spec.clone(), Arc::new(Network)).await {
                problems.push(e);
            }
        }
        if let Some(o) = only
            && !settings.sources.contains_key(o)
        {
            let known: Vec<&str> = settings.sources.keys().map(String::as_str).collect();
            problems.push(format!("no source named `{o}` (configured: {})", known.join(", ")));
        }
        if !problems.is_empty() {
            anyhow::bail!("{}:\n  - {}", settings.path.display(), problems.join("\n  - "));
        }
        Ok(self)
    }

    /// Load a source's collector and check its settings against the
    /// collector's declaration. Errors are one line each, naming the field.
    pub async fn add_source(&mut self, spec: SourceSpec, upstream: Arc<dyn Upstream>) -> Result<(), String> {
        let name = spec.name.clone();
        let collector =
            self.engine.load(&spec.collector).await.map_err(|e| format!("sources.{name}.collector: {e}"))?;
        let source = self.build_source(spec, collector, upstream).await?;
        self.sources.insert(name, source);
        Ok(())
    }

    /// A source ready to run with an already loaded `collector`, its
    /// settings checked against the collector's declaration (errors one line
    /// each, naming the field). Not added to this runtime's own sources: the
    /// daemon's scheduler keeps the current set across reloads.
    pub async fn build_source(
        &self,
        spec: SourceSpec,
        collector: LoadedCollector,
        upstream: Arc<dyn Upstream>,
    ) -> Result<Arc<SourceRuntime>, String> {
        let name = spec.name.clone();
        if let Err(mut problems) = check_settings(&spec, &collector) {
            // The collector judges the values too (ranges, formats): name those problems in the
            // same report, except for keys named already.
            let found = self.engine.validate(&collector, Arc::new(spec.clone())).await.unwrap_or_default();
            let named = |key: &str| problems.iter().any(|p| p.contains(&format!("s.{key}:")));
            let more: Vec<String> = found
                .into_iter()
                .filter(|p| p.split('`').nth(1).is_none_or(|key| !named(key)))
                .map(|p| format!("sources.{name}: {p}"))
                .collect();
            problems.extend(more);
            return Err(problems.join("\n  - "));
        }
        let egress = Arc::new(
            Egress::new(&name, spec.allowed_hosts.clone(), spec.allow_http, spec.limits.clone(), upstream)
                .with_private_addresses(spec.allow_private_addresses)
                .with_redactor(spec.secrets.redactor()),
        );
        let layout = Layout::new(&self.sink_settings, &name, &spec.prefix);
        Ok(Arc::new(SourceRuntime { spec: Arc::new(spec), collector, egress, layout }))
    }

    /// A loaded source by name.
    pub fn source(&self, name: &str) -> Option<Arc<SourceRuntime>> {
        self.sources.get(name).cloned()
    }

    /// All loaded sources.
    pub fn sources(&self) -> impl Iterator<Item = &Arc<SourceRuntime>> {
        self.sources.values()
    }
}

/// The configured sink and state backends, health-checked: a GCS bucket
/// gets a probe object created, read back and deleted, so a missing bucket or
/// permission stops siphon at start-up instead of failing every run.
pub async fn backends(settings: &Settings) -> anyhow::Result<(Arc<dyn Sink>, Arc<dyn StateStore>)> {
    // Boxed: the GCS client's futures would otherwise be inlined into every
    // caller's future (and stack frame).
    let sink = Box::pin(sink_backend(&settings.sink)).await?;
    let state = Box::pin(state_backend(&settings.state, true)).await?;
    Ok((sink, state))
}

/// The configured sink, health-checked.
pub async fn sink_backend(settings: &SinkSettings) -> anyhow::Result<Arc<dyn Sink>> {
    Ok(match &settings.target {
        SinkTarget::Local { dir } => Arc::new(LocalDirSink::open(dir)?),
        SinkTarget::Gcs(gcs) => {
            let sink = GcsSink::connect(gcs, &settings.prefix).await.context("sink")?;
            sink.health_check().await.context("sink")?;
            Arc::new(sink)
        }
    })
}

/// The configured state store; `health_check` probes a GCS bucket for write
/// access (off for read-only tools such as `siphon state show`).
pub async fn state_backend(settings: &StateSettings, health_check: bool) -> anyhow::Result<Arc<dyn StateStore>> {
    Ok(match settings {
        StateSettings::Local { dir } => Arc::new(LocalStateStore::open(dir)?),
        StateSettings::Gcs { gcs, prefix } => {
            let store = GcsStateStore::connect(gcs, prefix).await.context("state")?;
            if health_check {
                store.health_check().await.context("state")?;
            }
            Arc::new(store)
        }
    })
}

/// Where `source`'s state lives: a file path or a `gs://` URL.
pub fn state_location(settings: &StateSettings, source: &str) -> String {
    match settings {
        StateSettings::Local { dir } => dir.join(format!("{source}.json")).display().to_string(),
        StateSettings::Gcs { gcs, prefix } => {
            gcs.url(&if prefix.is_empty() { format!("{source}.json") } else { format!("{prefix}/{source}.json") })
        }
    }
}

/// Compare configured settings and secrets with the collector's `info`.
fn check_settings(spec: &SourceSpec, collector: &LoadedCollector) -> Result<(), Vec<String>> {
    let at = format!("sources.{}", spec.name);
    let who = format!("collector {} {}", collector.info.name, collector.info.version);
    let mut problems = Vec::new();
    let declared = &collector.info.settings;
    for s in declared {
        let (configured, table, wrong_table) = if s.secret {
            (spec.secrets.get(&s.name).is_some(), "secrets", spec.settings.contains_key(&s.name))
        } else {
            (spec.settings.contains_key(&s.name), "settings", spec.secrets.get(&s.name).is_some())
        };
        if wrong_table {
            let right = if s.secret { "secrets" } else { "settings" };
            problems.push(format!(
                "{at}.{}: `{}` must be configured under `{right}`",
                if s.secret { "settings" } else { "secrets" },
                s.name
            ));
        } else if s.required && !configured {
            problems.push(format!("{at}.{table}.{}: required by {who} ({})", s.name, s.description));
        }
    }
    let known = |name: &str, secret: bool| declared.iter().any(|s| s.name == name && s.secret == secret);
    let list = |secret: bool| {
        declared.iter().filter(|s| s.secret == secret).map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
    };
    for key in spec.settings.keys() {
        if !known(key, false) && !known(key, true) {
            problems.push(format!("{at}.settings.{key}: not a setting of {who} (known: {})", list(false)));
        }
    }
    for key in spec.secrets.names() {
        if !known(key, true) && !known(key, false) {
            problems.push(format!("{at}.secrets.{key}: not a secret of {who} (known: {})", list(true)));
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(problems) }
}
