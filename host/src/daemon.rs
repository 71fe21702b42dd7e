//! `siphon run`: the daemon. Loads the config, proves the backends, builds
//! every source, starts the scheduler and the HTTP listener, then waits for
//! signals: SIGHUP reloads (see `reload`), SIGTERM/SIGINT drain and stop.
//! Meanwhile it reports a heartbeat and re-probes the sink and the state
//! store for `/readyz`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, watch};

use crate::config::{HttpConfig, Settings, SinkSettings, SinkTarget, StateSettings};
use crate::engine::SiphonEngine;
use crate::http_server::{self, Endpoints};
use crate::reload::Reloader;
use crate::scheduler::{Scheduler, SchedulerOptions};
use crate::services::{self, Runtime};
use crate::status::StatusBoard;

/// How often the scheduler's liveness is reported to the status board.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// How often the per-source lag gauges are set from the board.
const LAG_EVERY: Duration = Duration::from_secs(5);
/// Longest one probe of the sink and state may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);

/// What the daemon is told from outside while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Reload the config and the collectors (SIGHUP).
    Reload,
    /// Stop (SIGTERM, SIGINT).
    Stop,
}

/// Run the daemon on the config at `path` until `signals` says stop (or
/// ends).
pub async fn run(path: &Path, mut signals: mpsc::Receiver<Signal>) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
    let settings = Settings::from_toml(&text, path)?;
    // Bound first: a port in use stops the daemon before anything runs.
    let listener = match &settings.http {
        Some(http) => Some((http_server::bind(http.listen).await?, http.clone())),
        None => None,
    };
    let metrics = match &listener {
        Some(_) => Some(crate::telemetry::init_metrics()?),
        None => None,
    };
    let engine = SiphonEngine::new(Some(&settings.engine.cache_dir))?;
    let (sink, state) = services::backends(&settings).await?;
    let runtime = Arc::new(Runtime::new(engine, sink, state, settings.sink.clone()));
    let mut reloader = Reloader::start(&runtime, path, &text, &settings).await.map_err(anyhow::Error::msg)?;

    let status = Arc::new(StatusBoard::new(path));
    status.set_sources(reloader.infos());
    // `backends` has just proven both.
    status.probed(Ok(()));
    crate::telemetry::backends_probed(true);
    let options = SchedulerOptions {
        max_concurrent_runs: settings.engine.max_concurrent_runs,
        shutdown_grace: settings.engine.shutdown_grace,
        run_on_start: settings.engine.run_on_start,
    };
    let scheduler = Arc::new(Scheduler::new(runtime.clone(), options.clone(), Some(status.clone())));
    scheduler.set_sources(reloader.sources());
    status.heartbeat(scheduler.alive());
    let enabled = reloader.sources().iter().filter(|s| s.spec.enabled).count();
    tracing::info!(sources = enabled, max_concurrent_runs = options.max_concurrent_runs, "Scheduler started");

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut background = tokio::task::JoinSet::new();
    if let Some((listener, http)) = listener {
        let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| http.listen.to_string());
        tracing::info!(url = %format!("http://{}/", browsable(&addr)), "Status page, /status, /healthz, /readyz and /metrics served");
        let endpoints = Arc::new(Endpoints { status: status.clone(), metrics });
        background.spawn(http_server::serve(listener, endpoints, stop_rx.clone()));
        background.spawn(probe_loop(
            settings.sink.clone(),
            settings.state.clone(),
            http,
            status.clone(),
            stop_rx.clone(),
        ));
    }
    tracing::info!(config = %path.display(), sink = %runtime.sink.describe(), state = %runtime.state.describe(),
        pid = std::process::id(), "siphon started");

    // Reloads run beside the heartbeat, one at a time; requests that come
    // in meanwhile fold into one more. With `engine.watch`, a changed file
    // asks for one too.
    let (reload_tx, mut reload_rx) = mpsc::channel::<()>(1);
    {
        let (runtime, scheduler, status) = (runtime.clone(), scheduler.clone(), status.clone());
        let watch = settings.engine.watch;
        background.spawn(async move {
            let mut check = tokio::time::interval(watch.unwrap_or(Duration::from_secs(3600)));
            check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    asked = reload_rx.recv() => if asked.is_none() { return },
                    _ = check.tick(), if watch.is_some() => {
                        if !reloader.changed_on_disk() {
                            continue;
                        }
                        tracing::info!("The config or a collector file changed on disk (engine.watch)");
                    }
                }
                let _ = crate::reload::reload(&mut reloader, &runtime, &scheduler, &status).await;
            }
        });
    }
    let mut heartbeat = tokio::time::interval(HEARTBEAT_EVERY);
    let mut lag = tokio::time::interval(LAG_EVERY);
    let mut exported = BTreeSet::new();
    loop {
        tokio::select! {
            signal = signals.recv() => match signal {
                Some(Signal::Reload) => {
                    if reload_tx.try_send(()).is_err() {
                        tracing::info!("A reload is already pending; this one folds into it");
                    }
                }
                Some(Signal::Stop) | None => break,
            },
            _ = heartbeat.tick() => status.heartbeat(scheduler.alive()),
            _ = lag.tick() => exported = export_lag(&status, exported),
        }
    }
    tracing::info!("Shutdown signal received");
    drop(reload_tx);
    // The listener keeps answering (`/healthz`: shutting down) while runs drain.
    scheduler.shutdown().await;
    let _ = stop_tx.send(true);
    // A reload in progress is dropped with the rest.
    background.abort_all();
    while background.join_next().await.is_some() {}
    Ok(())
}

/// Set the per-source lag gauges from the board; a source no longer
/// configured is set to 0 (the exporter cannot drop a series). Returns the
/// names now exported.
fn export_lag(status: &StatusBoard, before: BTreeSet<String>) -> BTreeSet<String> {
    let snapshot = status.snapshot();
    let now: BTreeSet<String> = snapshot.sources.iter().map(|s| s.name.clone()).collect();
    for s in &snapshot.sources {
        crate::telemetry::source_lag(&s.name, s.behind_s, s.stale_after_s);
    }
    for gone in before.difference(&now) {
        crate::telemetry::source_lag(gone, 0, 0);
    }
    now
}

/// Forward SIGHUP, SIGTERM and SIGINT as [`Signal`]s.
pub fn os_signals() -> anyhow::Result<mpsc::Receiver<Signal>> {
    let (tx, rx) = mpsc::channel(8);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
        tokio::spawn(async move {
            loop {
                let signal = tokio::select! {
                    _ = hup.recv() => Signal::Reload,
                    _ = term.recv() => Signal::Stop,
                    _ = int.recv() => Signal::Stop,
                };
                if tx.send(signal).await.is_err() {
                    return;
                }
            }
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = tx.send(Signal::Stop).await;
        }
    });
    Ok(rx)
}

/// `0.0.0.0:9464` is not an address a browser can open; name loopback.
fn browsable(addr: &str) -> String {
    addr.replacen("0.0.0.0:", "127.0.0.1:", 1).replacen("[::]:", "[::1]:", 1)
}

/// Probe the sink and the state store every `probe_interval` for `/readyz`.
async fn probe_loop(
    sink: SinkSettings,
    state: StateSettings,
    http: HttpConfig,
    status: Arc<StatusBoard>,
    mut stop: watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(http.probe_interval);
    // The first tick is now, and start-up has just probed.
    every.tick().await;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let result = match tokio::time::timeout(PROBE_TIMEOUT, Box::pin(probe(&sink, &state))).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
        };
        if let Err(e) = &result {
            tracing::warn!(error = %e, "Probe of the sink and state failed; /readyz reports not ready");
        }
        crate::telemetry::backends_probed(result.is_ok());
        status.probed(result);
    }
}

/// The sink and the state are usable: a GCS bucket gets its start-up probe
/// (an empty object created, read back and deleted); a local state directory
/// a file created and removed; a local sink directory (which a feed may
/// read, so nothing is written there) must be a writable directory.
async fn probe(sink: &SinkSettings, state: &StateSettings) -> Result<(), String> {
    match &sink.target {
        SinkTarget::Local { dir } => writable_dir(dir).map_err(|e| format!("sink: {e}"))?,
        SinkTarget::Gcs(gcs) => {
            let s = crate::sink::gcs::GcsSink::connect(gcs, &sink.prefix).await.map_err(|e| format!("sink: {e}"))?;
            s.health_check().await.map_err(|e| format!("sink: {e}"))?;
        }
    }
    match state {
        StateSettings::Local { dir } => {
            writable_dir(dir).map_err(|e| format!("state: {e}"))?;
            let probe: PathBuf = dir.join(format!(".siphon-probe-{}", std::process::id()));
            std::fs::write(&probe, b"")
                .and_then(|()| std::fs::remove_file(&probe))
                .map_err(|e| format!("state: cannot write in {}: {e}", dir.display()))?;
        }
        StateSettings::Gcs { gcs, prefix } => {
            let s = crate::state::gcs::GcsStateStore::connect(gcs, prefix).await.map_err(|e| format!("state: {e}"))?;
            s.health_check().await.map_err(|e| format!("state: {e}"))?;
        }
    }
    Ok(())
}

fn writable_dir(dir: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    if meta.permissions().readonly() {
        return Err(format!("{} is read-only", dir.display()));
    }
    Ok(())
}
