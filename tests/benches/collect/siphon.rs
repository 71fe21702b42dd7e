//! The siphon side of the bench, each run in its own child process so that
//! its CPU time and peak RSS are siphon's alone: one collection, caught-up
//! runs, daemon start, and the many-source daemon.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use siphon::config::Settings;
use siphon::runner;
use siphon::scheduler::{self, SchedulerOptions};
use siphon::services::Runtime;
use tracing_subscriber::layer::SubscriberExt;

use super::stats::{cpu_seconds, report, status_mib};

/// `siphon <config>`: one run of source `bench`.
///
/// CPU time is counted from after the runtime is loaded: compiling the
/// component (a compile-cache miss) is a start-up cost a daemon pays once,
/// measured by `start`, not per collection.
pub async fn collect(config: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let settings = Settings::load(config)?;
    let runtime = Runtime::from_settings(&settings, None).await?;
    let source = runtime.source("bench").ok_or_else(|| anyhow::anyhow!("no source `bench`"))?;
    let load_s = started.elapsed().as_secs_f64();
    let cpu0 = cpu_seconds();
    let run_started = Instant::now();
    let run = runner::run(&runtime, &source).await;
    let run_wall = run_started.elapsed();
    let summary = run.outcome.as_ref().map_err(|e| anyhow::anyhow!("run failed: {e}"))?;
    report(&[
        ("records", run.delivered.records.to_string()),
        ("objects", run.delivered.objects.len().to_string()),
        ("bytes", run.delivered.bytes.to_string()),
        ("pages", summary.pages.to_string()),
        ("run_s", format!("{:.3}", run_wall.as_secs_f64())),
        ("load_s", format!("{load_s:.3}")),
        ("cpu_s", format!("{:.3}", cpu_seconds() - cpu0)),
        ("hwm_mib", format!("{:.1}", status_mib("VmHWM"))),
    ]);
    Ok(())
}

/// `idle <config> <n>`: a first run of source `bench` collects what the mock
/// has; then `n` runs that find nothing new are timed (in-process, state
/// writes included).
pub async fn idle(config: &Path, n: usize) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let runtime = Runtime::from_settings(&settings, None).await?;
    let source = runtime.source("bench").ok_or_else(|| anyhow::anyhow!("no source `bench`"))?;
    let first = runner::run(&runtime, &source).await;
    first.outcome.as_ref().map_err(|e| anyhow::anyhow!("first run failed: {e}"))?;
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let run = runner::run(&runtime, &source).await;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        run.outcome.as_ref().map_err(|e| anyhow::anyhow!("caught-up run failed: {e}"))?;
        anyhow::ensure!(run.delivered.records == 0, "a caught-up run delivered {} records", run.delivered.records);
    }
    let p90 = {
        let mut v = times.clone();
        v.sort_by(f64::total_cmp);
        v[(v.len() * 9 / 10).min(v.len() - 1)]
    };
    report(&[
        ("first_records", first.delivered.records.to_string()),
        ("idle_ms", format!("{:.2}", super::stats::median(&times))),
        ("idle_p90_ms", format!("{p90:.2}")),
    ]);
    Ok(())
}

/// `start <config>`: time from process start to a runtime with every source
/// loaded (engine, backends, each collector compiled or read from the cache).
pub async fn start(config: &Path, process_start: Instant) -> anyhow::Result<()> {
    let t = Instant::now();
    let settings = Settings::load(config)?;
    let runtime = Runtime::from_settings(&settings, None).await?;
    let load = t.elapsed();
    report(&[
        ("sources", runtime.sources().count().to_string()),
        ("load_ms", format!("{:.1}", load.as_secs_f64() * 1e3)),
        ("process_ms", format!("{:.1}", process_start.elapsed().as_secs_f64() * 1e3)),
    ]);
    Ok(())
}

/// Run starts and errors seen by the daemon, from its tracing events.
#[derive(Default, Clone)]
struct Watch {
    starts: Arc<Mutex<Vec<SystemTime>>>,
    errors: Arc<AtomicU64>,
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Watch {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _id: &tracing::span::Id,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if attrs.metadata().name() == "run"
            && let Ok(mut starts) = self.starts.lock()
        {
            starts.push(SystemTime::now());
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, _ctx: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::ERROR {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// `daemon <config> <cycles> <period_s> <jitter_s>`: the scheduler on every
/// source of `config` (all on a `*/period_s` seconds schedule with
/// `jitter_s` of jitter) for `cycles` schedule ticks, started a second
/// before the first; reports peak and final RSS, runs per tick, failures and
/// how late runs started after their tick.
pub async fn daemon(config: &Path, cycles: u64, period_s: u64, jitter_s: f64) -> anyhow::Result<()> {
    let watch = Watch::default();
    let subscriber = tracing_subscriber::registry().with(watch.clone());
    tracing::subscriber::set_global_default(subscriber)?;
    let settings = Settings::load(config)?;
    let loading = Instant::now();
    let runtime = Arc::new(Runtime::from_settings(&settings, None).await?);
    let load_s = loading.elapsed().as_secs_f64();
    let loaded_rss = status_mib("VmRSS");
    let sources = runtime.sources().count();
    let options = SchedulerOptions {
        max_concurrent_runs: settings.engine.max_concurrent_runs,
        shutdown_grace: Duration::from_secs(10),
        run_on_start: false,
    };
    // Start one second before a tick, and stop once the last tick's runs
    // have had their jitter and a little more to start.
    let period = Duration::from_secs(period_s);
    let since_epoch = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)?;
    let into = Duration::from_nanos((since_epoch.as_nanos() % period.as_nanos()) as u64);
    let lead = if into + Duration::from_secs(1) <= period {
        period - into - Duration::from_secs(1)
    } else {
        2 * period - into - Duration::from_secs(1)
    };
    tokio::time::sleep(lead).await;
    let window = Duration::from_secs(1 + (cycles - 1) * period_s) + Duration::from_secs_f64(jitter_s + 4.0);
    let peak_rss = Arc::new(Mutex::new(0f64));
    let sampler = {
        let peak = peak_rss.clone();
        tokio::spawn(async move {
            loop {
                let rss = status_mib("VmRSS");
                if let Ok(mut p) = peak.lock() {
                    *p = p.max(rss);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    scheduler::run(runtime.clone(), options, tokio::time::sleep(window)).await;
    sampler.abort();
    let starts = watch.starts.lock().map(|s| s.clone()).unwrap_or_default();
    let lateness: Vec<f64> = starts
        .iter()
        .filter_map(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|since| {
            let tick = Duration::from_secs(since.as_secs() / period_s * period_s);
            (since - tick).as_secs_f64()
        })
        .collect();
    let late_max = lateness.iter().copied().fold(0.0, f64::max);
    let beyond_jitter = lateness.iter().filter(|l| **l > jitter_s + 1.0).count();
    report(&[
        ("sources", sources.to_string()),
        ("period_s", period_s.to_string()),
        ("jitter_s", jitter_s.to_string()),
        ("load_s", format!("{load_s:.2}")),
        ("loaded_rss_mib", format!("{loaded_rss:.1}")),
        ("runs", starts.len().to_string()),
        ("expected_runs", (sources as u64 * cycles).to_string()),
        ("errors", watch.errors.load(Ordering::Relaxed).to_string()),
        ("late_max_s", format!("{late_max:.2}")),
        ("late_p50_s", format!("{:.2}", super::stats::median(&lateness))),
        ("late_beyond_jitter", beyond_jitter.to_string()),
        ("peak_rss_mib", format!("{:.1}", peak_rss.lock().map(|p| *p).unwrap_or(f64::NAN))),
        ("hwm_mib", format!("{:.1}", status_mib("VmHWM"))),
        ("rss_mib", format!("{:.1}", status_mib("VmRSS"))),
    ]);
    Ok(())
}
