//! Logging and metrics set-up, and the metric names siphon records.
//!
//! Logs are `tracing` events with `source`, `collector` and `run_id` fields
//! (one span per run). Metrics are named `siphon_<noun>_<unit>_total` with
//! low-cardinality labels (source name, outcome), exported for Prometheus
//! on the daemon's `[http]` listener.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;
use tracing_subscriber::EnvFilter;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// Install the global tracing subscriber. `RUST_LOG` overrides the default
/// filter (`info`, with wasmtime's internals at `warn`). Text logs are
/// coloured only when stderr is a terminal and `NO_COLOR` is unset: a file,
/// a pipe or journald gets plain text.
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,wasmtime=warn,cranelift=warn,wasmtime_wasi_http=warn"));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Record metrics from now on; the returned handle renders them for
/// `/metrics` (see `http_server`). Its owner must call `run_upkeep`
/// periodically (histogram buckets are otherwise never drained).
pub fn init_metrics() -> anyhow::Result<PrometheusHandle> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("cannot install the metrics recorder")
}

/// A reload (SIGHUP) ended: `applied` or `refused`.
pub fn config_reloaded(outcome: &'static str) {
    metrics::counter!("siphon_config_reloads_total", "outcome" => outcome).increment(1);
    if outcome == "applied" {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        metrics::gauge!("siphon_config_last_reload_success_timestamp_seconds").set(now.as_secs_f64());
    }
}

/// How far `source` is behind its schedule, and how far it may be before
/// the status page calls it stale: alert on `behind > stale_after`.
pub fn source_lag(source: &str, behind_s: u64, stale_after_s: u64) {
    metrics::gauge!("siphon_source_behind_seconds", "source" => source.to_owned()).set(behind_s as f64);
    metrics::gauge!("siphon_source_stale_after_seconds", "source" => source.to_owned()).set(stale_after_s as f64);
}

/// Whether the last probe of the sink and state store succeeded (1) or not (0).
pub fn backends_probed(ok: bool) {
    metrics::gauge!("siphon_backends_up").set(if ok { 1.0 } else { 0.0 });
}

/// An outbound request finished with `outcome` (status code, `denied`,
/// `retried`, `failed`, `too_large`).
pub fn http_request(source: &str, outcome: &str) {
    metrics::counter!("siphon_http_requests_total", "source" => source.to_owned(), "outcome" => outcome.to_owned())
        .increment(1);
}

/// Time spent waiting for one upstream response.
pub fn http_latency(source: &str, elapsed: Duration) {
    metrics::histogram!("siphon_http_request_duration_seconds", "source" => source.to_owned())
        .record(elapsed.as_secs_f64());
}

/// A run ended with `outcome` (`ok` or an error kind). A successful run
/// also sets `siphon_last_success_timestamp_seconds`, the gauge to alert on
/// when a source stops delivering.
pub fn run_finished(source: &str, outcome: &str, elapsed: Duration) {
    metrics::counter!("siphon_runs_total", "source" => source.to_owned(), "outcome" => outcome.to_owned()).increment(1);
    metrics::histogram!("siphon_run_duration_seconds", "source" => source.to_owned()).record(elapsed.as_secs_f64());
    if outcome == "ok" {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        metrics::gauge!("siphon_last_success_timestamp_seconds", "source" => source.to_owned()).set(now.as_secs_f64());
    }
}

/// A run found an interrupted commit and settled it: `adopted` (its objects
/// were all in the sink) or `undone` (its records will be fetched again).
pub fn commit_recovered(source: &str, outcome: &'static str) {
    metrics::counter!("siphon_commit_recoveries_total", "source" => source.to_owned(), "outcome" => outcome)
        .increment(1);
}

/// Records and objects durably delivered to the sink.
pub fn delivered(source: &str, records: u64, objects: u64, bytes: u64) {
    metrics::counter!("siphon_records_delivered_total", "source" => source.to_owned()).increment(records);
    metrics::counter!("siphon_objects_written_total", "source" => source.to_owned()).increment(objects);
    metrics::counter!("siphon_sink_bytes_total", "source" => source.to_owned()).increment(bytes);
}

/// The memory limiter refused a growth request.
pub fn memory_refused(source: &str) {
    metrics::counter!("siphon_memory_refusals_total", "source" => source.to_owned()).increment(1);
}

/// A run went past the limit `key` (`limits.<key>`).
pub fn limit_exceeded(key: &'static str) {
    metrics::counter!("siphon_limits_exceeded_total", "limit" => key).increment(1);
}

/// Guest log lines dropped over a run's log budget.
pub fn guest_log_dropped(source: &str, lines: u64) {
    metrics::counter!("siphon_guest_log_lines_dropped_total", "source" => source.to_owned()).increment(lines);
}

/// `text` safe for a text log line or a terminal: control characters
/// (newlines, carriage returns, escape sequences, C1 controls) and the
/// Unicode controls that reorder or hide text (bidi overrides, zero-width
/// marks) are written as escapes, so guest text cannot forge log lines or
/// drive the terminal. Borrowed when there is nothing to escape.
pub fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    fn hostile(c: char) -> bool {
        c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
    }
    if !text.chars().any(hostile) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if hostile(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `text` cut to at most `max` bytes (on a character boundary), marked
/// ` [...]` when cut.
pub fn clip(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{} [...]", &text[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_text_cannot_forge_lines_or_drive_the_terminal() {
        assert_eq!(escape("plain text, ünïcode"), "plain text, ünïcode");
        assert_eq!(escape("a\nINFO fake line\r\x1b[2J\u{202e}x"), "a\\nINFO fake line\\r\\u{1b}[2J\\u{202e}x");
        assert_eq!(escape("\u{85}\u{9b}"), "\\u{85}\\u{9b}", "C1 controls");
    }

    #[test]
    fn clipping_keeps_characters_whole() {
        assert_eq!(clip("abcdef", 10), "abcdef");
        assert_eq!(clip("abcdef", 3), "abc [...]");
        assert_eq!(clip("aé", 2), "a [...]");
    }
}
