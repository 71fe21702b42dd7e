//! `siphon:collector/sink`: records are checked (one JSON object, one line)
//! and queued byte-exact for the next commit; they are never re-serialised,
//! so large integers, key order and non-ASCII text reach the sink unchanged.

use crate::bindings::sink::{Host, SinkError};
use crate::imports::HostState;

/// Why `record` cannot be a line of an NDJSON object.
pub fn check_record(record: &str) -> Result<(), String> {
    if !record.starts_with('{') {
        return Err("not a JSON object (must start with `{`)".to_owned());
    }
    if record.contains(['\n', '\r']) {
        return Err("spans several lines; emit compact JSON".to_owned());
    }
    serde_json::from_str::<serde::de::IgnoredAny>(record).map_err(|e| format!("invalid JSON: {e}"))?;
    Ok(())
}

impl Host for HostState {
    async fn emit(&mut self, records: Vec<String>) -> wasmtime::Result<Result<(), SinkError>> {
        for (i, record) in records.iter().enumerate() {
            if let Err(reason) = check_record(record) {
                return Ok(Err(SinkError::InvalidRecord((i as u32, reason))));
            }
        }
        let Some(delivery) = self.run.delivery.as_mut() else {
            return Ok(Err(SinkError::BufferFull("no sink is available outside `collect`".to_owned())));
        };
        let n = records.len() as u64;
        match delivery.push(records) {
            Ok(()) => {
                self.run.records_emitted += n;
                Ok(Ok(()))
            }
            Err(full) => Ok(Err(SinkError::BufferFull(full.to_string()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check_record;

    #[test]
    fn records_must_be_single_line_objects() {
        assert!(check_record(r#"{"id":18446744073709551617,"u":"josé"}"#).is_ok());
        assert!(check_record("[1]").unwrap_err().contains("object"));
        assert!(check_record("{\"a\":\n1}").unwrap_err().contains("lines"));
        assert!(check_record(r#"{"a":}"#).unwrap_err().contains("invalid JSON"));
        assert!(check_record(r#"{"a":1} {"b":2}"#).is_err(), "one object per record");
    }
}
