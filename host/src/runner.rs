//! One run of one source: open its checkpoint (recovering an interrupted
//! commit), instantiate the collector in a fresh store, call `collect`
//! under the run's deadline, then deliver or discard what it emitted and
//! report the outcome, attributed to the source and collector.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tracing::Instrument;

use crate::bindings::types::{CollectError, RunSummary};
use crate::delivery::{Delivery, DeliveryError, DeliveryStats};
use crate::imports::{HostState, guest_text};
use crate::limits::{LOG_LEVELS, LimitExceeded, Limits};
use crate::services::{Runtime, SourceRuntime};

/// Why a run failed. Expected collector failures and host policy kills are
/// kept apart; every message is free of the source's secrets.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The collector returned an error (`collect-error` in the WIT).
    #[error("{kind} error: {message}")]
    Collector {
        /// The case of `collect-error` (`auth`, `transport`, ...).
        kind: &'static str,
        /// The collector's message.
        message: String,
    },
    /// The run hit `limits.run_timeout`.
    #[error("run exceeded its deadline of {0:?} (limits.run_timeout) and was stopped")]
    Deadline(Duration),
    /// The collector needed more memory than `limits.memory`.
    #[error(
        "collector ran out of memory: its linear memories and tables would have grown to {requested} bytes; \
         the limit is {limit} bytes (limits.memory)"
    )]
    OutOfMemory {
        /// Total of all memories and tables the refused growth asked for.
        requested: usize,
        /// The cap.
        limit: usize,
    },
    /// The collector went past another limit of the run (`limits`): too
    /// many records pending, responses held, requests in flight, handles,
    /// commits, or instances, memories or tables.
    #[error("collector exceeded a limit: {0}")]
    Limit(#[from] LimitExceeded),
    /// The collector emitted a record containing a configured secret.
    #[error("collector emitted a record that {0}")]
    SecretInRecord(String),
    /// The collector panicked.
    #[error("collector panicked: {0}")]
    Panic(String),
    /// The collector trapped for another reason.
    #[error("collector trapped: {0}")]
    Trap(String),
    /// Records or cursor could not be made durable.
    #[error("delivery failed: {0}")]
    Delivery(#[from] DeliveryError),
}

impl RunError {
    /// Short label for metrics and summaries.
    pub fn kind(&self) -> &'static str {
        match self {
            RunError::Collector { kind, .. } => kind,
            RunError::Deadline(_) => "deadline",
            RunError::OutOfMemory { .. } => "out_of_memory",
            RunError::Limit(_) => "limit",
            RunError::SecretInRecord(_) => "invalid_record",
            RunError::Panic(_) => "panic",
            RunError::Trap(_) => "trap",
            RunError::Delivery(DeliveryError::Busy { .. } | DeliveryError::BusyRace { .. }) => "busy",
            RunError::Delivery(_) => "delivery",
        }
    }
}

/// Everything known about a finished run.
#[derive(Debug)]
pub struct RunReport {
    /// Unique id of the run, in every log line of it.
    pub run_id: String,
    /// Source name.
    pub source: String,
    /// Collector `name@version`.
    pub collector: String,
    /// When it started.
    pub started: DateTime<Utc>,
    /// How long it took.
    pub elapsed: Duration,
    /// The collector's summary, or why the run failed.
    pub outcome: Result<RunSummary, RunError>,
    /// What reached the sink and state durably.
    pub delivered: DeliveryStats,
    /// Records emitted but thrown away because the run failed before
    /// committing them; the next run fetches them again.
    pub discarded: usize,
    /// The committed cursor after the run.
    pub cursor: Option<String>,
}

impl RunReport {
    /// Whether the run succeeded.
    pub fn ok(&self) -> bool {
        self.outcome.is_ok()
    }
}

fn collect_error(e: CollectError) -> RunError {
    let (kind, message) = match e {
        CollectError::Config(m) => ("config", m),
        CollectError::Auth(m) => ("auth", m),
        CollectError::NotFound(m) => ("not_found", m),
        CollectError::RateLimited(m) => ("rate_limited", m),
        CollectError::Vendor(m) => ("vendor", m),
        CollectError::Transport(m) => ("transport", m),
        CollectError::Host(m) => ("host", m),
    };
    RunError::Collector { kind, message }
}

/// Run `source` once.
pub async fn run(runtime: &Runtime, source: &Arc<SourceRuntime>) -> RunReport {
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let collector = source.collector_name();
    let span = tracing::info_span!("run", source = %source.spec.name, collector = %collector, run_id = %run_id);
    run_in_span(runtime, source, run_id, collector).instrument(span).await
}

async fn run_in_span(runtime: &Runtime, source: &Arc<SourceRuntime>, run_id: String, collector: String) -> RunReport {
    let started = Utc::now();
    let clock = Instant::now();
    let spec = &source.spec;
    let deadline = spec.limits.run_timeout;
    tracing::info!("Run started");

    let mut report = RunReport {
        run_id,
        source: spec.name.clone(),
        collector,
        started,
        elapsed: Duration::ZERO,
        outcome: Ok(RunSummary { pages: 0, duplicates: 0, caught_up: false, note: None }),
        delivered: DeliveryStats::default(),
        discarded: 0,
        cursor: None,
    };

    let delivery = Delivery::open(
        &spec.name,
        runtime.sink.clone(),
        runtime.state.clone(),
        source.layout.clone(),
        started,
        spec.limits.max_pending_size.as_u64() as usize,
        crate::lease::Lease::for_run(&report.run_id, started, deadline),
    )
    .await;
    let delivery = match delivery {
        Ok(d) => d,
        Err(e) => {
            report.outcome = Err(RunError::Delivery(e));
            return finish(report, clock);
        }
    };

    let state = HostState::new(spec.clone(), source.egress.clone(), Some(delivery));
    let mut store = runtime.engine.store(state, deadline);
    let called = tokio::time::timeout(deadline, async {
        let instance = source.collector.pre.instantiate_async(&mut store).await?;
        instance.call_collect(&mut store).await
    })
    .await;

    let host = store.data_mut();
    // A run stopped by the host fails for that reason, whatever the
    // collector made of the refusal.
    let stopped = match (&host.run.secret_in_record, host.budget.exceeded()) {
        (Some(message), _) => Some(RunError::SecretInRecord(message.clone())),
        (None, Some(limit)) => Some(RunError::Limit(limit)),
        (None, None) => None,
    };
    let outcome = match (stopped, called) {
        (Some(e), _) => Err(e),
        (None, Err(_elapsed)) => Err(RunError::Deadline(deadline)),
        (None, Ok(Err(trap))) => Err(classify_trap(trap, host, deadline)),
        (None, Ok(Ok(Err(e)))) => Err(collect_error(e)),
        (None, Ok(Ok(Ok(mut summary)))) => match &host.run.conflict {
            Some(conflict) => Err(RunError::Collector { kind: "conflict", message: conflict.clone() }),
            None => {
                summary.note = summary.note.map(|n| host.guest_text(&n));
                Ok(summary)
            }
        },
    };
    report_dropped_logs(host);
    let redactor = host.run.redactor.clone();
    let mut delivery = host.run.delivery.take();
    report.outcome = match (outcome, delivery.as_mut()) {
        // Records emitted after the last commit belong to this successful
        // run: deliver them with the cursor unchanged.
        (Ok(summary), Some(d)) => d.commit(None).await.map(|_| summary).map_err(RunError::Delivery),
        (Ok(summary), None) => Ok(summary),
        (Err(e), _) => Err(e),
    };
    if let (Err(_), Some(d)) = (&report.outcome, delivery.as_mut()) {
        report.discarded = d.discard_pending();
    }
    if let Some(d) = &delivery {
        report.delivered = d.stats().clone();
        report.cursor = d.cursor().map(str::to_owned);
    }
    let (stderr, dropped) = store.data().stderr();
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        let line = store.data().guest_text(line);
        tracing::warn!(target: "siphon::guest", stderr = %line, "Collector wrote to stderr");
    }
    if dropped > 0 {
        tracing::warn!(target: "siphon::guest", dropped_bytes = dropped,
            "Collector stderr past limits.max_stderr_size was dropped");
    }
    // Dropping the Store aborts the run's requests still in flight (after a
    // deadline); only then may another run have the source.
    drop(store);
    if let Some(d) = delivery.as_mut() {
        d.release().await;
    }
    if let Err(e) = &mut report.outcome {
        redact_error(e, &redactor, &spec.limits);
    }
    finish(report, clock)
}

/// One summary line for the guest log lines the run's log budget dropped.
fn report_dropped_logs(host: &HostState) {
    let dropped = host.log_budget.dropped();
    let total: u64 = dropped.iter().sum();
    if total == 0 {
        return;
    }
    let per_level: Vec<String> =
        LOG_LEVELS.iter().zip(dropped).filter(|(_, n)| *n > 0).map(|(l, n)| format!("{l} {n}")).collect();
    let limits = &host.run.source.limits;
    tracing::warn!(dropped = total, per_level = %per_level.join(", "), max_log_lines = limits.max_log_lines,
        max_log_bytes = limits.max_log_bytes.as_u64(),
        "Collector log lines over the run's log budget were dropped (limits.max_log_lines, limits.max_log_bytes)");
    crate::telemetry::guest_log_dropped(&host.run.source.name, total);
}

fn classify_trap(trap: wasmtime::Error, host: &HostState, deadline: Duration) -> RunError {
    if let Some(wasmtime::Trap::Interrupt) = trap.downcast_ref::<wasmtime::Trap>() {
        return RunError::Deadline(deadline);
    }
    if host.limiter.refused > 0 {
        return RunError::OutOfMemory { requested: host.limiter.largest_request, limit: host.limiter.limit() };
    }
    if let Some(limit) = host_limit(&trap, &host.run.source.limits) {
        return RunError::Limit(limit);
    }
    if let Some(message) = &host.run.panic {
        return RunError::Panic(message.clone());
    }
    // The first line names the trap; the wasm backtrace follows in `{:?}`.
    let text = format!("{trap:?}");
    let short: Vec<&str> = text.lines().take(12).collect();
    RunError::Trap(short.join("\n"))
}

/// The limit behind a trap raised by wasmtime on the host's behalf: the
/// resource table full, a header map too large, or too many instances,
/// memories or tables.
fn host_limit(trap: &wasmtime::Error, limits: &Limits) -> Option<LimitExceeded> {
    let full = trap.chain().any(|e| {
        matches!(
            e.downcast_ref::<wasmtime::component::ResourceTableError>(),
            Some(wasmtime::component::ResourceTableError::Full)
        )
    });
    if full || format!("{trap:#}").contains("resource table has no free keys") {
        return Some(LimitExceeded::new(
            "max_resources",
            limits.max_resources,
            "the collector holds too many handles (header maps, requests, bodies, streams, pollables) at once",
        ));
    }
    let text = format!("{trap:#}");
    if text.contains("total size of fields exceeds limit") {
        return Some(LimitExceeded::new(
            "max_field_size",
            limits.max_field_size,
            "the collector built a wasi:http header map larger than one request needs",
        ));
    }
    let detail = text.lines().find(|l| l.contains("count too high")).unwrap_or_default().trim().to_owned();
    let (key, limit, what) = if text.contains("instance count too high") {
        ("max_instances", limits.max_instances, "core instances")
    } else if text.contains("memory count too high") {
        ("max_memories", limits.max_memories, "linear memories")
    } else if text.contains("table count too high") {
        ("max_tables", limits.max_tables, "tables")
    } else {
        return None;
    };
    Some(LimitExceeded::new(key, limit, format!("the collector component creates too many {what} ({detail})")))
}

/// Guest text in an error made fit for logs and output: secrets redacted,
/// cut to `max_message_size`, control characters escaped.
fn redact_error(e: &mut RunError, redactor: &crate::secrets::Redactor, limits: &Limits) {
    match e {
        RunError::Collector { message, .. } | RunError::Panic(message) | RunError::Trap(message) => {
            *message = guest_text(redactor, limits, message);
        }
        _ => {}
    }
}

fn finish(mut report: RunReport, clock: Instant) -> RunReport {
    report.elapsed = clock.elapsed();
    let d = &report.delivered;
    let elapsed_ms = report.elapsed.as_millis() as u64;
    match &report.outcome {
        Ok(summary) => {
            tracing::info!(
                records = d.records,
                objects = d.objects.len(),
                bytes = d.bytes,
                pages = summary.pages,
                duplicates = summary.duplicates,
                caught_up = summary.caught_up,
                note = summary.note.as_deref().unwrap_or(""),
                elapsed_ms,
                "Run succeeded"
            );
            crate::telemetry::run_finished(&report.source, "ok", report.elapsed);
        }
        // Another run holds the source: nothing failed and nothing was
        // touched; the run that holds it delivers.
        Err(error) if error.kind() == "busy" => {
            tracing::info!(%error, elapsed_ms, "Run skipped: the source is busy");
            crate::telemetry::run_finished(&report.source, error.kind(), report.elapsed);
        }
        Err(error) => {
            tracing::error!(
                %error,
                kind = error.kind(),
                records = d.records,
                objects = d.objects.len(),
                discarded = report.discarded,
                elapsed_ms,
                "Run failed; the committed checkpoint is kept and uncommitted work will be repeated"
            );
            crate::telemetry::run_finished(&report.source, error.kind(), report.elapsed);
        }
    }
    report
}
