//! Per-source checkpoint state and the stores that keep it.
//!
//! A source's state is its committed cursor plus, while a commit is in
//! progress, the commit's intent (see `delivery`). Every write names the
//! generation it replaces, so two writers can never silently overwrite each
//! other: the loser gets [`StateError::Conflict`].

pub mod gcs;
pub mod local;
pub mod memory;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Current state file format.
pub const STATE_VERSION: u32 = 1;

/// Everything siphon keeps for one source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceState {
    /// Format version of this record.
    pub version: u32,
    /// The committed cursor, opaque to the host; none before the first commit.
    pub cursor: Option<String>,
    /// A commit whose objects may or may not all be in the sink yet.
    pub pending: Option<PendingCommit>,
    /// When this state was written.
    pub updated_at: Option<DateTime<Utc>>,
    /// The run that holds the source (see `lease`); none between runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<crate::lease::Lease>,
}

/// The intent recorded before a commit's objects are uploaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingCommit {
    /// Objects of the commit, in upload order.
    pub objects: Vec<String>,
    /// The cursor that becomes committed once every object exists.
    pub cursor: Option<String>,
    /// Records in the objects, for logs.
    pub records: u64,
}

/// Opaque version of a stored state, used for conditional writes.
pub type Generation = u64;

/// A generation a writer expected or found, for messages: `generation 3`,
/// or `no state` where there was none.
pub fn generation_text(generation: Option<Generation>) -> String {
    match generation {
        Some(g) => format!("generation {g}"),
        None => "no state".to_owned(),
    }
}

/// A state as loaded, with the generation to name when replacing it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// The state.
    pub state: SourceState,
    /// Its generation.
    pub generation: Generation,
}

/// A failure of a state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Someone else wrote the state since it was read.
    #[error("checkpoint of source `{source_name}` was changed by another writer ({detail}); not overwriting it")]
    Conflict {
        /// Source name.
        source_name: String,
        /// What was expected and found.
        detail: String,
    },
    /// The stored state cannot be read; it is left untouched.
    #[error("checkpoint {location} is corrupt: {message} (inspect it, then `siphon state reset`)")]
    Corrupt {
        /// File or object name.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// The backend failed; the message names the location.
    #[error("{0}")]
    Backend(String),
}

/// Where checkpoints live.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// Where state goes, for messages.
    fn describe(&self) -> String;

    /// The state of `source`, if any.
    async fn load(&self, source: &str) -> Result<Option<Stored>, StateError>;

    /// Replace the state of `source` if its generation is still `expected`
    /// (`None`: only if there is no state yet). Durable when it returns.
    async fn store(
        &self,
        source: &str,
        state: &SourceState,
        expected: Option<Generation>,
    ) -> Result<Generation, StateError>;
}
