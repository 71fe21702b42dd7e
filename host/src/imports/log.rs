//! `siphon:collector/log`: guest log lines into the host's structured log,
//! inside the run's span (so they carry `source`, `collector`, `run_id`),
//! with the source's secrets redacted, cut to `max_message_size`, control
//! characters escaped (a guest cannot forge a log line or send terminal
//! escapes), and held to the run's per-level log budget. A message is read
//! from guest memory only up to the length that can be kept.

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, WasmStr};

use crate::bindings::log::{Host, Level};
use crate::imports::HostState;
use crate::limits::bytes;

fn level_index(level: Level) -> usize {
    match level {
        Level::Error => 0,
        Level::Warn => 1,
        Level::Info => 2,
        Level::Debug => 3,
        Level::Trace => 4,
    }
}

/// The part of a message worth reading: `max_message_size` plus the longest
/// secret form (so a secret that starts before the cut is still redacted).
fn readable(host: &HostState) -> usize {
    bytes(host.run.source.limits.max_message_size).saturating_add(host.run.redactor.longest())
}

/// Log `message` (perhaps already cut to [`readable`]; `cut` says so).
fn log_line(host: &mut HostState, level: Level, message: &str, cut: bool) {
    let max = bytes(host.run.source.limits.max_message_size);
    if !host.log_budget.admit(level_index(level), message.len().min(max)) {
        return;
    }
    let mut message = host.guest_text(message);
    if cut && !message.ends_with(" [...]") {
        message.push_str(" [...]");
    }
    match level {
        Level::Trace => tracing::trace!(target: "siphon::guest", "{message}"),
        Level::Debug => tracing::debug!(target: "siphon::guest", "{message}"),
        Level::Info => tracing::info!(target: "siphon::guest", "{message}"),
        Level::Warn => tracing::warn!(target: "siphon::guest", "{message}"),
        Level::Error => tracing::error!(target: "siphon::guest", "{message}"),
    }
}

fn panicked(host: &mut HostState, message: &str, cut: bool) {
    let mut message = host.guest_text(message);
    if cut && !message.ends_with(" [...]") {
        message.push_str(" [...]");
    }
    tracing::error!(target: "siphon::guest", panic = %message, "Collector panicked");
    host.run.panic = Some(message);
}

/// The readable part of a guest string, copied out of guest memory.
fn read(store: &StoreContextMut<'_, HostState>, text: &WasmStr) -> wasmtime::Result<(String, bool)> {
    let max = readable(store.data());
    let text = text.to_str(store)?;
    if text.len() <= max {
        return Ok((text.into_owned(), false));
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Ok((text[..end].to_owned(), true))
}

/// Link the lazy `log` and `panicked` over the generated ones.
pub(super) fn add_lazy_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let mut log = linker.instance("siphon:collector/log@0.1.0")?;
    log.func_wrap("log", |mut store: StoreContextMut<'_, HostState>, (level, message): (Level, WasmStr)| {
        // A line over the budget is dropped before it is even read.
        let index = level_index(level);
        if store.data_mut().log_budget.exhausted(index) {
            return Ok(());
        }
        let (message, cut) = read(&store, &message)?;
        log_line(store.data_mut(), level, &message, cut);
        Ok(())
    })?;
    log.func_wrap("panicked", |mut store: StoreContextMut<'_, HostState>, (message,): (WasmStr,)| {
        let (message, cut) = read(&store, &message)?;
        panicked(store.data_mut(), &message, cut);
        Ok(())
    })
}

impl Host for HostState {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        log_line(self, level, &message, false);
        Ok(())
    }

    async fn panicked(&mut self, message: String) -> wasmtime::Result<()> {
        panicked(self, &message, false);
        Ok(())
    }
}
