//! The source's durable cursor, kept by the host.
//!
//! [`commit`] first makes every record emitted since the previous commit
//! durable in the sink, then the cursor, so a crash can repeat work but never
//! skip it. Commit after each delivered page; with nothing emitted, a commit
//! just writes the cursor (useful to record an operation before starting it).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, sys};

/// The committed cursor, or none before the first commit (or after an
/// operator reset).
pub fn load() -> Option<String> {
    sys::checkpoint_load()
}

/// Delivers pending records, then makes `cursor` the committed cursor.
///
/// Returns the names of the sink objects written, in delivery order (empty
/// when no records were pending). A refusal is an [`Error::Host`]; the run
/// should stop and return it, since the previous cursor stays in force.
pub fn commit(cursor: &str) -> Result<Vec<String>, Error> {
    sys::checkpoint_commit(cursor)
}

/// The committed cursor parsed as JSON, or none before the first commit.
///
/// A cursor that does not parse is an [`Error::Config`]: it was written by an
/// incompatible collector version or edited by hand, and only an operator
/// reset (or a collector that migrates it) can fix that.
pub fn load_json<T: DeserializeOwned>() -> Result<Option<T>, Error> {
    load().map(|text| parse_json(&text)).transpose()
}

/// Serialises `cursor` as compact JSON and commits it (see [`commit`]).
pub fn commit_json<T: Serialize + ?Sized>(cursor: &T) -> Result<Vec<String>, Error> {
    commit(&to_json(cursor)?)
}

/// Parses a cursor's text; the error names the problem, never the text.
pub fn parse_json<T: DeserializeOwned>(text: &str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|e| {
        Error::Config(format!(
            "the committed checkpoint is not understood by this collector version ({e}); \
             reset the source's checkpoint to start over"
        ))
    })
}

/// A cursor as compact JSON text.
pub fn to_json<T: Serialize + ?Sized>(cursor: &T) -> Result<String, Error> {
    serde_json::to_string(cursor).map_err(|e| Error::Host(format!("cannot serialise the checkpoint: {e}")))
}
