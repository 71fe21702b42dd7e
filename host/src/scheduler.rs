//! The daemon loop: one task per enabled source that sleeps until the
//! source's next cron time (plus jitter), waits for a global run slot, and
//! runs it. A source's runs never overlap: its next time is computed after
//! the previous run ends, so an overrun skips ticks instead of piling up.
//!
//! On shutdown no new run starts; runs in flight get `shutdown_grace` to
//! finish and are then abandoned. An abandoned run has committed only what
//! it committed before; the commit protocol makes the rest repeatable.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::runner;
use crate::services::{Runtime, SourceRuntime};

/// Scheduler settings from `[engine]`.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Global limit of concurrent runs.
    pub max_concurrent_runs: usize,
    /// Time given to in-flight runs at shutdown.
    pub shutdown_grace: Duration,
    /// Run every source once at start, before following its schedule.
    pub run_on_start: bool,
}

/// Run the scheduler until `shutdown` resolves, then drain.
pub async fn run(runtime: Arc<Runtime>, options: SchedulerOptions, shutdown: impl Future<Output = ()>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(options.max_concurrent_runs));
    let mut tasks = JoinSet::new();
    let mut count = 0;
    for source in runtime.sources() {
        if !source.spec.enabled {
            tracing::info!(source = %source.spec.name, "Source disabled; not scheduling it");
            continue;
        }
        count += 1;
        tasks.spawn(source_loop(runtime.clone(), source.clone(), slots.clone(), stop_rx.clone(), options.clone()));
    }
    tracing::info!(sources = count, max_concurrent_runs = options.max_concurrent_runs, "Scheduler started");
    shutdown.await;
    tracing::info!(
        grace_s = options.shutdown_grace.as_secs(),
        "Shutting down: no new runs; waiting for runs in flight"
    );
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    tracing::info!("Scheduler stopped");
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    // A dropped sender also means stop.
    let _ = stop.wait_for(|s| *s).await;
}

async fn source_loop(
    runtime: Arc<Runtime>,
    source: Arc<SourceRuntime>,
    slots: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
    options: SchedulerOptions,
) {
    let name = source.spec.name.clone();
    let mut first = options.run_on_start;
    loop {
        if !first {
            let now = Utc::now();
            let next = match source.spec.schedule.find_next_occurrence(&now, false) {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!(source = %name, error = %e, "Schedule has no next time; source stopped");
                    return;
                }
            };
            let jitter = source.spec.jitter.mul_f64(rand::random::<f64>());
            let wait = (next - now).to_std().unwrap_or_default() + jitter;
            tracing::debug!(source = %name, next = %next, wait_ms = wait.as_millis() as u64, "Next run scheduled");
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stopped(&mut stop) => return,
            }
        }
        first = false;
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = stopped(&mut stop) => return,
        };
        let mut stop_for_run = stop.clone();
        let grace = options.shutdown_grace;
        tokio::select! {
            _ = runner::run(&runtime, &source) => {}
            _ = async { stopped(&mut stop_for_run).await; tokio::time::sleep(grace).await } => {
                tracing::warn!(source = %name, "Run abandoned at shutdown after the grace period; its uncommitted work will be repeated");
            }
        }
        drop(permit);
        if *stop.borrow() {
            return;
        }
    }
}
