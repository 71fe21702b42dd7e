//! `siphon:collector/checkpoint`: load and commit the source's cursor
//! through the run's [`Delivery`](crate::delivery::Delivery), which makes
//! pending records durable before the cursor (see `delivery`). A cursor is
//! read from guest memory only once its length is known to fit
//! `max_cursor_size`; a run makes at most `max_commits` commits, and none
//! once it is stopping (a limit, a secret in a record, a conflict).

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, WasmStr};

use crate::bindings::checkpoint::{CheckpointError, Host};
use crate::delivery::DeliveryError;
use crate::imports::HostState;
use crate::imports::sink::stopping;
use crate::limits::{LimitExceeded, bytes};
use crate::state::StateError;

/// Why a cursor of `len` bytes cannot be committed now, before reading it.
fn refuse(host: &mut HostState, len: usize) -> Option<CheckpointError> {
    if let Some(conflict) = &host.run.conflict {
        return Some(CheckpointError::Conflict(conflict.clone()));
    }
    if let Some(message) = stopping(host) {
        return Some(CheckpointError::Invalid(message));
    }
    let limits = &host.run.source.limits;
    let max = bytes(limits.max_cursor_size);
    if len > max {
        return Some(CheckpointError::Invalid(format!(
            "cursor is {len} bytes; the limit is {} (limits.max_cursor_size)",
            limits.max_cursor_size
        )));
    }
    host.run.commits += 1;
    if host.run.commits > limits.max_commits {
        let e = host.budget.exceed(LimitExceeded::new(
            "max_commits",
            limits.max_commits,
            "the collector committed more often than one run may (each commit is a state write)",
        ));
        return Some(CheckpointError::Invalid(e.to_string()));
    }
    None
}

async fn commit(host: &mut HostState, cursor: String) -> Result<Vec<String>, CheckpointError> {
    if host.run.redactor.leaks(&cursor) {
        return Err(CheckpointError::Invalid(
            "cursor contains a configured secret; secrets must never be stored in checkpoints".to_owned(),
        ));
    }
    let Some(delivery) = host.run.delivery.as_mut() else {
        return Err(CheckpointError::Storage("no checkpoint is available outside `collect`".to_owned()));
    };
    match delivery.commit(Some(cursor)).await {
        Ok(objects) => Ok(objects),
        Err(DeliveryError::State(e @ StateError::Conflict { .. })) => {
            let message = e.to_string();
            tracing::error!(error = %message, "Checkpoint conflict; stopping the run without committing");
            host.run.conflict = Some(message.clone());
            Err(CheckpointError::Conflict(message))
        }
        Err(e) => {
            tracing::error!(error = %e, "Commit failed; records of this commit will be fetched again");
            Err(CheckpointError::Storage(host.run.redactor.redact(&e.to_string())))
        }
    }
}

/// Link the lazy `commit` over the generated one.
pub(super) fn add_lazy_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.instance("siphon:collector/checkpoint@0.1.0")?.func_wrap_async(
        "commit",
        |mut store: StoreContextMut<'_, HostState>, (cursor,): (WasmStr,)| {
            Box::new(async move {
                // The length in bytes is known before the text is read (the
                // bindings encode strings as UTF-8).
                let len = cursor.to_str(&store).map(|c| c.len())?;
                if let Some(refused) = refuse(store.data_mut(), len) {
                    return Ok((Err(refused),));
                }
                let cursor = cursor.to_str(&store)?.into_owned();
                Ok((commit(store.data_mut(), cursor).await,))
            })
        },
    )
}

impl Host for HostState {
    async fn load(&mut self) -> wasmtime::Result<Option<String>> {
        Ok(self.run.delivery.as_ref().and_then(|d| d.cursor().map(str::to_owned)))
    }

    async fn commit(&mut self, cursor: String) -> wasmtime::Result<Result<Vec<String>, CheckpointError>> {
        if let Some(refused) = refuse(self, cursor.len()) {
            return Ok(Err(refused));
        }
        Ok(commit(self, cursor).await)
    }
}
