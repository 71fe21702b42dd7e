//! `siphon:collector/checkpoint`: load and commit the source's cursor
//! through the run's [`Delivery`](crate::delivery::Delivery), which makes
//! pending records durable before the cursor (see `delivery`).

use crate::bindings::checkpoint::{CheckpointError, Host};
use crate::delivery::DeliveryError;
use crate::imports::HostState;
use crate::state::StateError;

/// Largest cursor accepted. Cursors are positions, not data stores.
pub const MAX_CURSOR: usize = 256 * 1024;

impl Host for HostState {
    async fn load(&mut self) -> wasmtime::Result<Option<String>> {
        Ok(self.run.delivery.as_ref().and_then(|d| d.cursor().map(str::to_owned)))
    }

    async fn commit(&mut self, cursor: String) -> wasmtime::Result<Result<Vec<String>, CheckpointError>> {
        if let Some(conflict) = &self.run.conflict {
            return Ok(Err(CheckpointError::Conflict(conflict.clone())));
        }
        if cursor.len() > MAX_CURSOR {
            return Ok(Err(CheckpointError::Invalid(format!(
                "cursor is {} bytes; the limit is {MAX_CURSOR}",
                cursor.len()
            ))));
        }
        if self.run.redactor.leaks(&cursor) {
            return Ok(Err(CheckpointError::Invalid(
                "cursor contains a configured secret; secrets must never be stored in checkpoints".to_owned(),
            )));
        }
        let Some(delivery) = self.run.delivery.as_mut() else {
            return Ok(Err(CheckpointError::Storage("no checkpoint is available outside `collect`".to_owned())));
        };
        match delivery.commit(Some(cursor)).await {
            Ok(objects) => Ok(Ok(objects)),
            Err(DeliveryError::State(e @ StateError::Conflict { .. })) => {
                let message = e.to_string();
                tracing::error!(error = %message, "Checkpoint conflict; stopping the run without committing");
                self.run.conflict = Some(message.clone());
                Ok(Err(CheckpointError::Conflict(message)))
            }
            Err(e) => {
                tracing::error!(error = %e, "Commit failed; records of this commit will be fetched again");
                Ok(Err(CheckpointError::Storage(self.run.redactor.redact(&e.to_string()))))
            }
        }
    }
}
