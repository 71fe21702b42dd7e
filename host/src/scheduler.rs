//! The daemon loop: one task per configured source that sleeps until the
//! source's next cron time (plus jitter), waits for a global run slot, and
//! runs it. A source's runs never overlap: its next time is computed after
//! the previous run ends, so an overrun skips ticks instead of piling up.
//!
//! The set of sources can change while the daemon runs (a reload): each
//! task watches its source's current [`SourceRuntime`]. A changed source is
//! picked up at its next run (a run in flight finishes on the version it
//! started with, which it holds); a removed one stops after its run in
//! flight; a disabled one idles. A task lives as long as the scheduler, so a
//! source removed and added back can never run twice at once in one process.
//!
//! On shutdown no new run starts; runs in flight get `shutdown_grace` to
//! finish and are then abandoned. An abandoned run has committed only what
//! it committed before; the commit protocol makes the rest repeatable.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::runner::{self, RunReport};
use crate::services::{Runtime, SourceRuntime};
use crate::status::StatusBoard;

/// Scheduler settings from `[engine]`.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Global limit of concurrent runs.
    pub max_concurrent_runs: usize,
    /// Time given to in-flight runs at shutdown.
    pub shutdown_grace: Duration,
    /// Run every source once at start (and a source added by a reload once
    /// when it is added), before following its schedule.
    pub run_on_start: bool,
}

/// What one task needs besides its source.
struct Shared {
    runtime: Arc<Runtime>,
    options: SchedulerOptions,
    slots: Arc<Semaphore>,
    status: Option<Arc<StatusBoard>>,
}

type Current = Option<Arc<SourceRuntime>>;

struct Task {
    source: watch::Sender<Current>,
    handle: JoinHandle<()>,
}

/// The running scheduler; [`Scheduler::set_sources`] changes what it runs.
pub struct Scheduler {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Mutex<BTreeMap<String, Task>>,
}

impl Scheduler {
    /// A scheduler with no sources yet. `status`, when given, is told about
    /// every run and next run time.
    pub fn new(runtime: Arc<Runtime>, options: SchedulerOptions, status: Option<Arc<StatusBoard>>) -> Scheduler {
        let slots = Arc::new(Semaphore::new(options.max_concurrent_runs));
        let (stop, _) = watch::channel(false);
        Scheduler {
            shared: Arc::new(Shared { runtime, options, slots, status }),
            stop,
            tasks: Mutex::new(BTreeMap::new()),
        }
    }

    /// Make `sources` the set that is scheduled: a new name gets a task, a
    /// known one its new runtime (unless it is the very same), a missing one
    /// stops after its run in flight. Must be called within the Tokio runtime.
    pub fn set_sources(&self, sources: impl IntoIterator<Item = Arc<SourceRuntime>>) {
        let wanted: BTreeMap<String, Arc<SourceRuntime>> =
            sources.into_iter().map(|s| (s.spec.name.clone(), s)).collect();
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        for (name, task) in tasks.iter() {
            if !wanted.contains_key(name) {
                task.source.send_if_modified(|current| current.take().is_some());
            }
        }
        for (name, source) in wanted {
            match tasks.get(&name) {
                Some(task) => {
                    task.source.send_if_modified(|current| {
                        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, &source)) {
                            return false;
                        }
                        *current = Some(source);
                        true
                    });
                }
                None => {
                    let (tx, rx) = watch::channel(Some(source));
                    let handle =
                        tokio::spawn(source_loop(self.shared.clone(), name.clone(), rx, self.stop.subscribe()));
                    tasks.insert(name, Task { source: tx, handle });
                }
            }
        }
    }

    /// Whether every source task is still running (one ends early only by
    /// a bug; `/healthz` reports it).
    pub fn alive(&self) -> bool {
        let tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.values().all(|t| !t.handle.is_finished())
    }

    /// Stop: no new runs; wait for the runs in flight up to the grace period.
    pub async fn shutdown(&self) {
        tracing::info!(
            grace_s = self.shared.options.shutdown_grace.as_secs(),
            "Shutting down: no new runs; waiting for runs in flight"
        );
        if let Some(status) = &self.shared.status {
            status.stopping();
        }
        let _ = self.stop.send(true);
        let handles: Vec<JoinHandle<()>> = {
            let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::take(&mut *tasks).into_values().map(|t| t.handle).collect()
        };
        for handle in handles {
            if let Err(e) = handle.await
                && e.is_panic()
            {
                tracing::error!(error = %e, "A source's scheduling task panicked");
            }
        }
        tracing::info!("Scheduler stopped");
    }
}

/// Run the sources of `runtime` until `shutdown` resolves, then drain.
pub async fn run(runtime: Arc<Runtime>, options: SchedulerOptions, shutdown: impl Future<Output = ()>) {
    let sources: Vec<Arc<SourceRuntime>> = runtime.sources().cloned().collect();
    let count = sources.iter().filter(|s| s.spec.enabled).count();
    let max_concurrent_runs = options.max_concurrent_runs;
    let scheduler = Scheduler::new(runtime, options, None);
    scheduler.set_sources(sources);
    tracing::info!(sources = count, max_concurrent_runs, "Scheduler started");
    shutdown.await;
    scheduler.shutdown().await;
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    // A dropped sender also means stop.
    let _ = stop.wait_for(|s| *s).await;
}

/// Until the source changes (`true`) or the scheduler stops (`false`).
async fn changed_or_stopped(source: &mut watch::Receiver<Current>, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        changed = source.changed() => changed.is_ok(),
        _ = stopped(stop) => false,
    }
}

async fn source_loop(
    shared: Arc<Shared>,
    name: String,
    mut source_rx: watch::Receiver<Current>,
    mut stop: watch::Receiver<bool>,
) {
    let status = shared.status.clone();
    let set_next = |at: Option<DateTime<Utc>>| {
        if let Some(s) = &status {
            s.next_run(&name, at);
        }
    };
    let mut first = shared.options.run_on_start;
    loop {
        if *stop.borrow() {
            return;
        }
        let current = source_rx.borrow_and_update().clone();
        if current.as_ref().is_some_and(|s| !s.spec.enabled) {
            tracing::info!(source = %name, "Source disabled; not scheduling it");
        }
        let Some(source) = current.filter(|s| s.spec.enabled) else {
            // Removed or disabled: idle until it comes back, then start
            // over as a newly added source does.
            set_next(None);
            if !changed_or_stopped(&mut source_rx, &mut stop).await {
                return;
            }
            first = shared.options.run_on_start;
            continue;
        };
        if !first {
            let now = Utc::now();
            let next = match source.spec.schedule.find_next_occurrence(&now, false) {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!(source = %name, error = %e, "Schedule has no next time; source not scheduled");
                    set_next(None);
                    if !changed_or_stopped(&mut source_rx, &mut stop).await {
                        return;
                    }
                    continue;
                }
            };
            let jitter = source.spec.jitter.mul_f64(rand::random::<f64>());
            let wait = (next - now).to_std().unwrap_or_default() + jitter;
            let at = now + chrono::TimeDelta::from_std(wait).unwrap_or_default();
            set_next(Some(at));
            tracing::debug!(source = %name, next = %at, wait_ms = wait.as_millis() as u64, "Next run scheduled");
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                // A new schedule (or removal) applies at once.
                changed = source_rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    continue;
                }
                _ = stopped(&mut stop) => return,
            }
        }
        first = false;
        let permit = tokio::select! {
            p = shared.slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = stopped(&mut stop) => return,
        };
        // It may have changed or gone while waiting for a slot.
        let Some(source) = source_rx.borrow_and_update().clone().filter(|s| s.spec.enabled) else {
            continue;
        };
        if let Some(s) = &status {
            s.run_started(&name, &source.collector.info.version);
        }
        let report = run_until_grace(&shared, &source, &mut stop).await;
        drop(permit);
        if let Some(s) = &status {
            s.run_finished(&name, report.as_ref());
        }
    }
}

/// One run; abandoned (none) once shutdown began and the grace period passed.
async fn run_until_grace(
    shared: &Shared,
    source: &Arc<SourceRuntime>,
    stop: &mut watch::Receiver<bool>,
) -> Option<RunReport> {
    let grace = shared.options.shutdown_grace;
    tokio::select! {
        report = runner::run(&shared.runtime, source) => Some(report),
        _ = async { stopped(stop).await; tokio::time::sleep(grace).await } => {
            tracing::warn!(source = %source.spec.name,
                "Run abandoned at shutdown after the grace period; its uncommitted work will be repeated");
            None
        }
    }
}
