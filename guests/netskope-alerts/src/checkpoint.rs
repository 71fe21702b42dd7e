//! The checkpoint's Netskope part: which index its bookmarks belong to, and
//! version 1 (this collector before the SDK driver) read into version 2.
//!
//! Bookmarks live on Netskope's side under the index name. When the operator
//! renames `index`, the new index has no bookmarks, so each type that
//! delivered something restarts at the epoch of its newest delivered alert
//! (a few alerts of that second may come again; none is lost).

use serde_json::Value;
use siphon_sdk::Error;
use siphon_sdk::driver::{Checkpoint, Fingerprint, StreamState};

use crate::stream::Position;

/// Schema version of the checkpoint.
pub const VERSION: u32 = 2;

/// The checkpoint for `index`, from the committed text.
pub fn load(text: Option<&str>, index: &str) -> Result<Checkpoint, Error> {
    let mut checkpoint = Checkpoint::parse(text, VERSION, migrate_v1)?;
    if checkpoint.scope.as_deref() != Some(index) {
        if checkpoint.scope.is_some() {
            reseed(&mut checkpoint)?;
        }
        checkpoint.scope = Some(index.to_string());
    }
    Ok(checkpoint)
}

fn reseed(checkpoint: &mut Checkpoint) -> Result<(), Error> {
    let names: Vec<String> = checkpoint.streams.keys().cloned().collect();
    for name in names {
        let position: Position = checkpoint.cursor(&name)?;
        match position.last_ts {
            Some(ts) => {
                let restart = Position { start: Some(ts), started: false, last_ts: Some(ts) };
                checkpoint.streams.insert(name, state(&restart, false, None, None));
            }
            // A type that never delivered starts afresh from the look-back.
            None => {
                checkpoint.streams.remove(&name);
            }
        }
    }
    Ok(())
}

fn state(
    position: &Position,
    inflight: bool,
    last_page: Option<Fingerprint>,
    not_before_ms: Option<u64>,
) -> StreamState {
    StreamState { cursor: serde_json::to_value(position).unwrap_or(Value::Null), inflight, last_page, not_before_ms }
}

/// Version 1: `{"version":1,"index":…,"types":{t:{inflight,last_page,last_ts,not_before_ms}}}`,
/// where `inflight` is the operation sent last (an epoch, `next` or `resend`).
fn migrate_v1(version: u32, v1: Value) -> Option<Checkpoint> {
    if version != 1 {
        return None;
    }
    let mut checkpoint = Checkpoint::new(VERSION);
    checkpoint.scope = Some(v1.get("index")?.as_str()?.to_string());
    for (name, old) in v1.get("types")?.as_object()? {
        let inflight = old.get("inflight").and_then(Value::as_str);
        let epoch = inflight.and_then(|op| op.parse::<u64>().ok());
        let position =
            Position { start: epoch, started: epoch.is_none(), last_ts: old.get("last_ts").and_then(Value::as_u64) };
        let last_page = old.get("last_page").and_then(|f| serde_json::from_value(f.clone()).ok());
        let not_before = old.get("not_before_ms").and_then(Value::as_u64);
        checkpoint.streams.insert(name.clone(), state(&position, inflight.is_some(), last_page, not_before));
    }
    Some(checkpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_1_continues_where_it_stopped() {
        let v1 = r#"{"version":1,"index":"siphon-prod","types":{
            "dlp":{"inflight":"next","last_page":{"count":2,"first_id":"a","last_id":"b","ids_hash":"00ff"},"last_ts":7},
            "uba":{"inflight":"1722280000","last_ts":null},
            "malware":{"last_ts":9,"not_before_ms":5}}}"#;
        let c = load(Some(v1), "siphon-prod").unwrap();
        assert_eq!(c.scope.as_deref(), Some("siphon-prod"));
        let dlp = &c.streams["dlp"];
        assert!(dlp.inflight, "a `next` in flight is resent");
        assert_eq!(dlp.last_page.as_ref().unwrap().ids_hash, "00ff");
        assert_eq!(c.cursor::<Position>("dlp").unwrap(), Position { start: None, started: true, last_ts: Some(7) });
        assert_eq!(
            c.cursor::<Position>("uba").unwrap(),
            Position { start: Some(1_722_280_000), started: false, last_ts: None }
        );
        let malware = &c.streams["malware"];
        assert!(!malware.inflight);
        assert_eq!(malware.not_before_ms, Some(5));
        assert!(load(Some(r#"{"version":3}"#), "i").unwrap_err().message().contains("version 3"));
    }

    #[test]
    fn a_renamed_index_restarts_each_type_at_its_last_delivered_second() {
        let mut c = Checkpoint::new(VERSION);
        c.scope = Some("old".into());
        let delivered = Position { start: None, started: true, last_ts: Some(500) };
        c.streams.insert("dlp".into(), state(&delivered, true, None, Some(9)));
        c.streams.insert("uba".into(), state(&Position { started: true, ..Position::default() }, false, None, None));
        let text = siphon_sdk::checkpoint::to_json(&c).unwrap();
        let c = load(Some(&text), "new").unwrap();
        assert_eq!(c.scope.as_deref(), Some("new"));
        assert_eq!(c.streams.len(), 1, "a type that never delivered starts afresh");
        assert_eq!(
            c.streams["dlp"],
            state(&Position { start: Some(500), started: false, last_ts: Some(500) }, false, None, None)
        );
        assert_eq!(load(None, "i").unwrap().scope.as_deref(), Some("i"));
    }
}
