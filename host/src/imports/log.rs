//! `siphon:collector/log`: guest log lines into the host's structured log,
//! inside the run's span (so they carry `source`, `collector`, `run_id`),
//! with the source's secrets redacted.

use crate::bindings::log::{Host, Level};
use crate::imports::HostState;

/// Longest guest log message kept; the rest is cut.
const MAX_MESSAGE: usize = 16 * 1024;

fn clip(mut s: String) -> String {
    if s.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str(" [...]");
    }
    s
}

impl Host for HostState {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let message = clip(self.run.redactor.redact(&message));
        match level {
            Level::Trace => tracing::trace!(target: "siphon::guest", "{message}"),
            Level::Debug => tracing::debug!(target: "siphon::guest", "{message}"),
            Level::Info => tracing::info!(target: "siphon::guest", "{message}"),
            Level::Warn => tracing::warn!(target: "siphon::guest", "{message}"),
            Level::Error => tracing::error!(target: "siphon::guest", "{message}"),
        }
        Ok(())
    }

    async fn panicked(&mut self, message: String) -> wasmtime::Result<()> {
        let message = clip(self.run.redactor.redact(&message));
        tracing::error!(target: "siphon::guest", panic = %message, "Collector panicked");
        self.run.panic = Some(message);
        Ok(())
    }
}
