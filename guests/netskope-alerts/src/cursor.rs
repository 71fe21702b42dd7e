//! The checkpoint: per alert type, where the server-side iterator stands and
//! what this collector last delivered; and the choice of the next operation.
//!
//! The dataexport iterator is consume-once: `operation=next` moves the
//! server's bookmark as it answers. So the collector commits the operation it
//! is about to send (`inflight`) before sending it, and after delivering the
//! page commits `inflight: none` together with the records. A run that finds
//! an operation in flight knows the previous run died between the two and
//! asks for the page again (`resend`), or repeats an epoch operation, which is
//! idempotent.
//!
//! Schema (version 1), one JSON object, absent fields omitted:
//!
//! ```json
//! {"version":1,"index":"siphon-prod","types":{
//!   "dlp":{"last_page":{"count":250,"first_id":"64c2…","last_id":"64c3…","ids_hash":"9f0c2a5b7d1e3f48"},
//!          "last_ts":1722282900,"not_before_ms":1722283000123},
//!   "malware":{"inflight":"next","last_page":{…},"last_ts":1722282000}}}
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use siphon_sdk::Error;

/// The version this collector writes and reads.
pub const VERSION: u32 = 1;

/// An `operation` of the dataexport iterator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Op {
    /// (Re)start the bookmark at this epoch second.
    Epoch(u64),
    /// The page after the bookmark; moves the bookmark.
    Next,
    /// The previous page again; leaves the bookmark.
    Resend,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Epoch(t) => write!(f, "{t}"),
            Op::Next => f.write_str("next"),
            Op::Resend => f.write_str("resend"),
        }
    }
}

impl From<Op> for String {
    fn from(op: Op) -> Self {
        op.to_string()
    }
}

impl TryFrom<String> for Op {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "next" => Ok(Op::Next),
            "resend" => Ok(Op::Resend),
            t => t.parse().map(Op::Epoch).map_err(|_| format!("unknown operation `{t}`")),
        }
    }
}

/// Identifies a delivered page, to recognise it when `resend` returns it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Records in the page.
    pub count: u64,
    /// Key of the first record (its `_id`).
    pub first_id: String,
    /// Key of the last record.
    pub last_id: String,
    /// FNV-1a 64 over every key in order, as 16 hex digits.
    pub ids_hash: String,
}

/// What the collector knows about one alert type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeState {
    /// The operation sent but not yet followed by a delivery commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inflight: Option<Op>,
    /// The last page delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_page: Option<Fingerprint>,
    /// Highest record `timestamp` (epoch s) delivered so far: where to re-seed
    /// the iterator from if its server-side bookmark is lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ts: Option<u64>,
    /// Netskope's `wait_time` after the last response, as the epoch
    /// millisecond before which the next call must not be made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before_ms: Option<u64>,
}

/// The whole checkpoint of a source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Schema version, [`VERSION`].
    pub version: u32,
    /// The iterator index the states below belong to.
    pub index: String,
    /// State per alert type. Types no longer configured are kept, so that
    /// configuring them again resumes where they stopped.
    #[serde(default)]
    pub types: BTreeMap<String, TypeState>,
}

impl Cursor {
    /// A cursor for a source that has never committed.
    pub fn new(index: &str) -> Self {
        Self { version: VERSION, index: index.to_string(), types: BTreeMap::new() }
    }

    /// Parses a committed cursor and adapts it to the configured `index`.
    ///
    /// When the index differs (the operator renamed it, or the state came
    /// from another deployment), the server has no bookmark under the new
    /// name: each type restarts with an epoch operation from the last record
    /// it delivered (so at most that second repeats), or from the look-back
    /// window if it never delivered.
    pub fn load(text: Option<&str>, index: &str) -> Result<Self, Error> {
        let Some(text) = text else {
            return Ok(Self::new(index));
        };
        let mut cursor: Cursor = siphon_sdk::checkpoint::parse_json(text)?;
        if cursor.version != VERSION {
            return Err(Error::Config(format!(
                "the checkpoint has version {}, this collector reads version {VERSION}; \
                 reset the source's checkpoint to start over",
                cursor.version
            )));
        }
        if cursor.index != index {
            cursor.types.retain(|_, state| state.last_ts.is_some());
            for state in cursor.types.values_mut() {
                *state = TypeState { inflight: state.last_ts.map(Op::Epoch), ..TypeState::default() };
            }
            cursor.index = index.to_string();
        }
        Ok(cursor)
    }

    /// The cursor as compact JSON text.
    pub fn to_json(&self) -> Result<String, Error> {
        siphon_sdk::checkpoint::to_json(self)
    }
}

/// The operation to send next for a type in `state` (none before its first
/// delivery), at wall-clock `now_s`.
///
/// - no state: start `lookback_hours` ago;
/// - an epoch operation in flight: repeat it (it resets the bookmark, so it
///   is idempotent);
/// - `next` or `resend` in flight: the previous run may have consumed a page
///   without delivering it, so ask for it again with `resend`;
/// - otherwise `next`.
pub fn choose_op(state: Option<&TypeState>, now_s: u64, lookback_hours: u64) -> Op {
    let Some(state) = state else {
        return Op::Epoch(now_s.saturating_sub(lookback_hours.saturating_mul(3_600)));
    };
    match state.inflight {
        None => Op::Next,
        Some(Op::Epoch(t)) => Op::Epoch(t),
        Some(Op::Next | Op::Resend) => Op::Resend,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp() -> Fingerprint {
        Fingerprint { count: 2, first_id: "a".into(), last_id: "b".into(), ids_hash: "00ff".into() }
    }

    #[test]
    fn op_round_trips_as_text() {
        for (op, text) in
            [(Op::Epoch(1_722_280_000), "\"1722280000\""), (Op::Next, "\"next\""), (Op::Resend, "\"resend\"")]
        {
            assert_eq!(serde_json::to_string(&op).unwrap(), text);
            assert_eq!(serde_json::from_str::<Op>(text).unwrap(), op);
        }
        assert!(serde_json::from_str::<Op>("\"head\"").is_err());
    }

    #[test]
    fn choose_op_follows_the_state() {
        let now = 1_000_000;
        assert_eq!(choose_op(None, now, 24), Op::Epoch(now - 86_400));
        assert_eq!(choose_op(None, 10, 24), Op::Epoch(0));
        let idle = TypeState { last_page: Some(fp()), ..TypeState::default() };
        assert_eq!(choose_op(Some(&idle), now, 24), Op::Next);
        for (inflight, expected) in [(Op::Epoch(5), Op::Epoch(5)), (Op::Next, Op::Resend), (Op::Resend, Op::Resend)] {
            let s = TypeState { inflight: Some(inflight), ..idle.clone() };
            assert_eq!(choose_op(Some(&s), now, 24), expected, "{inflight}");
        }
    }

    #[test]
    fn cursor_schema_is_stable() {
        let mut c = Cursor::new("siphon-prod");
        c.types.insert(
            "dlp".into(),
            TypeState { inflight: Some(Op::Next), last_page: Some(fp()), last_ts: Some(7), not_before_ms: None },
        );
        c.types.insert("malware".into(), TypeState::default());
        let json = c.to_json().unwrap();
        assert_eq!(
            json,
            r#"{"version":1,"index":"siphon-prod","types":{"dlp":{"inflight":"next","last_page":{"count":2,"first_id":"a","last_id":"b","ids_hash":"00ff"},"last_ts":7},"malware":{}}}"#
        );
        assert_eq!(Cursor::load(Some(&json), "siphon-prod").unwrap(), c);
    }

    #[test]
    fn load_rejects_foreign_cursors() {
        assert!(matches!(Cursor::load(Some("{\"done\":true}"), "i"), Err(Error::Config(_))));
        assert!(
            matches!(Cursor::load(Some(r#"{"version":2,"index":"i"}"#), "i"), Err(Error::Config(m)) if m.contains("version 2"))
        );
        assert_eq!(Cursor::load(None, "i").unwrap(), Cursor::new("i"));
    }

    #[test]
    fn new_index_reseeds_from_last_delivered_timestamp() {
        let text = r#"{"version":1,"index":"old","types":{
            "dlp":{"inflight":"next","last_page":{"count":1,"first_id":"a","last_id":"a","ids_hash":"1"},"last_ts":500,"not_before_ms":9},
            "uba":{"inflight":"1000"}}}"#;
        let c = Cursor::load(Some(text), "new").unwrap();
        assert_eq!(c.index, "new");
        assert_eq!(c.types.len(), 1, "a type that never delivered starts afresh");
        assert_eq!(c.types["dlp"], TypeState { inflight: Some(Op::Epoch(500)), ..TypeState::default() });
        assert_eq!(choose_op(c.types.get("dlp"), 10_000, 24), Op::Epoch(500));
    }
}
