//! Records and where they go.
//!
//! A [`Record`] is one JSON object on one line, holding the vendor's bytes
//! exactly: build it from a `serde_json::value::RawValue` slice of the
//! response body and nothing is re-serialised, so integers above 2^53, number
//! spelling, key order, escapes and non-ASCII text reach the sink unchanged.
//! The only change is [`compact`], which removes whitespace outside strings
//! so that a pretty-printed vendor record fits on one NDJSON line.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::{Error, sys};

/// One single-line JSON object, ready for [`emit`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Record(String);

impl Record {
    /// A record from a raw JSON slice (already validated by serde_json),
    /// compacted with [`compact`]. Fails when the value is not an object.
    pub fn from_raw(raw: &RawValue) -> Result<Self, InvalidRecord> {
        let compacted = compact(raw.get());
        if !compacted.starts_with('{') {
            return Err(InvalidRecord(format!("expected a JSON object, found {}", describe(&compacted))));
        }
        Ok(Self(compacted.into_owned()))
    }

    /// A record from JSON text: validated, then compacted with [`compact`].
    pub fn parse(text: &str) -> Result<Self, InvalidRecord> {
        let raw: &RawValue = serde_json::from_str(text).map_err(|e| InvalidRecord(format!("not valid JSON: {e}")))?;
        Self::from_raw(raw)
    }

    /// A record from text already known to be one compact JSON object (the
    /// one-pass page scanner validated it).
    pub(crate) fn from_compact(text: String) -> Self {
        Self(text)
    }

    /// A record serialised from a Rust value (serde_json output is compact).
    /// For records the collector builds itself, not for vendor data.
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<Self, InvalidRecord> {
        let text = serde_json::to_string(value).map_err(|e| InvalidRecord(format!("cannot serialise: {e}")))?;
        if !text.starts_with('{') {
            return Err(InvalidRecord(format!("expected a JSON object, found {}", describe(&text))));
        }
        Ok(Self(text))
    }

    /// This record with `"key": value` added as its first field and every
    /// byte of the vendor's fields kept: a record-type tag that lets one feed
    /// tell several vendor lists apart. `value` is JSON text (`"\"device\""`,
    /// `42`, …); invalid JSON is refused.
    pub fn with_first_field(&self, key: &str, value: &str) -> Result<Self, InvalidRecord> {
        let rest = self.0.strip_prefix('{').unwrap_or(&self.0);
        let comma = if rest.starts_with('}') { "" } else { "," };
        let key = serde_json::to_string(key).map_err(|e| InvalidRecord(format!("cannot encode the key: {e}")))?;
        Self::parse(&format!("{{{key}:{value}{comma}{rest}"))
    }

    /// The record's JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The record's JSON text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a value cannot be a [`Record`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRecord(pub String);

impl fmt::Display for InvalidRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid record: {}", self.0)
    }
}

impl std::error::Error for InvalidRecord {}

impl From<InvalidRecord> for Error {
    /// Records come from the vendor, so a bad one is the vendor's.
    fn from(e: InvalidRecord) -> Self {
        Error::Vendor(e.to_string())
    }
}

fn describe(json: &str) -> &'static str {
    match json.as_bytes().first() {
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        Some(_) => "a number",
        None => "nothing",
    }
}

/// Removes JSON whitespace outside strings and changes nothing else.
///
/// `json` must be valid JSON (e.g. a `RawValue`). Strings, numbers and escapes
/// are copied byte for byte; only the four JSON whitespace bytes between
/// tokens are dropped. Valid JSON cannot hold a raw newline inside a string,
/// so the result is always one line. Borrows when there is nothing to remove.
pub fn compact(json: &str) -> Cow<'_, str> {
    let b = json.as_bytes();
    let mut out: Option<String> = None;
    // Start of the run of bytes not yet copied to `out`.
    let mut copied_to = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                // Skip the string, eight plain bytes at a time.
                i += 1;
                while i < b.len() {
                    i += crate::data::json::special_offset(&b[i..]);
                    match b.get(i) {
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') => i += 2,
                        Some(_) => i += 1,
                        None => {}
                    }
                }
            }
            b' ' | b'\t' | b'\n' | b'\r' => {
                // The removed bytes are ASCII, so every cut is a char boundary.
                let buf = out.get_or_insert_with(|| String::with_capacity(json.len()));
                buf.push_str(&json[copied_to..i]);
                i += 1;
                copied_to = i;
            }
            _ => i += 1,
        }
    }
    match out {
        None => Cow::Borrowed(json),
        Some(mut buf) => {
            buf.push_str(&json[copied_to.min(json.len())..]);
            Cow::Owned(buf)
        }
    }
}

/// Queues `records` for delivery at the next [`crate::checkpoint::commit`].
///
/// A refusal is an [`Error::Host`]: an invalid record (which a [`Record`]
/// should never be) or a full buffer (commit more often).
pub fn emit(records: Vec<Record>) -> Result<(), Error> {
    if records.is_empty() {
        return Ok(());
    }
    sys::sink_emit(records.into_iter().map(Record::into_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_keeps_values_byte_exact() {
        let pretty = "{\n  \"id\" : 4871139218723649281,\n\t\"f\": 1.50e+3,\r\n  \"s\": \"a  b\\\" \\n  é ☃\",\n  \"n\": [ 1, { \"x\" : null } ]\n}";
        assert_eq!(
            compact(pretty),
            "{\"id\":4871139218723649281,\"f\":1.50e+3,\"s\":\"a  b\\\" \\n  é ☃\",\"n\":[1,{\"x\":null}]}"
        );
    }

    #[test]
    fn compact_borrows_when_already_compact() {
        assert!(matches!(compact(r#"{"a":"b c"}"#), Cow::Borrowed(_)));
    }

    /// The plain byte-at-a-time definition `compact` must match.
    fn compact_reference(json: &str) -> String {
        let (mut out, mut in_string, mut escaped) = (String::new(), false, false);
        for c in json.chars() {
            if in_string {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    in_string = false;
                }
            } else if c == '"' {
                in_string = true;
            } else if matches!(c, ' ' | '\t' | '\n' | '\r') {
                continue;
            }
            out.push(c);
        }
        out
    }

    #[test]
    fn compact_matches_the_byte_at_a_time_definition() {
        let pieces = ["{", "}", "\"", "\\", " ", "\n", "a", "é", ":", "\\\"", "1", "  \t", "\u{1}", "[", ","];
        let mut seed = 0x853c_49e6_748f_ea9bu64;
        for _ in 0..20_000 {
            let mut text = String::new();
            for _ in 0..(seed % 40) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                text.push_str(pieces[(seed % pieces.len() as u64) as usize]);
            }
            seed = seed.wrapping_add(1);
            assert_eq!(compact(&text), compact_reference(&text), "{text:?}");
        }
    }

    #[test]
    fn compact_handles_escaped_backslash_before_quote() {
        assert_eq!(compact(r#"{ "a" : "x\\" , "b" : 1 }"#), r#"{"a":"x\\","b":1}"#);
    }

    #[test]
    fn record_from_raw_slices_of_a_page() {
        #[derive(serde::Deserialize)]
        struct Page<'a> {
            #[serde(borrow)]
            result: Vec<&'a RawValue>,
        }
        let body = r#"{"result": [ {"_id": 18446744073709551616, "u": "\u00e9é"} , [1] ]}"#;
        let page: Page = serde_json::from_str(body).unwrap();
        assert_eq!(Record::from_raw(page.result[0]).unwrap().as_str(), r#"{"_id":18446744073709551616,"u":"\u00e9é"}"#);
        assert_eq!(Record::from_raw(page.result[1]).unwrap_err().0, "expected a JSON object, found an array");
    }

    #[test]
    fn record_parse_validates() {
        assert!(Record::parse("{\"a\":1}\n").is_ok());
        assert!(Record::parse("{\"a\":1").is_err());
        assert!(Record::parse("{\"a\":1} {}").is_err());
        assert!(Record::parse("null").is_err());
    }

    #[test]
    fn with_first_field_prepends_and_keeps_the_rest_byte_exact() {
        let r = Record::parse(r#"{ "id": 18446744073709551616, "u": "\u00e9é", "n": "12" }"#).unwrap();
        let tagged = r.with_first_field("_type", r#""device""#).unwrap();
        assert_eq!(tagged.as_str(), r#"{"_type":"device","id":18446744073709551616,"u":"\u00e9é","n":"12"}"#);
        assert_eq!(Record::parse("{}").unwrap().with_first_field("k\"", "1").unwrap().as_str(), r#"{"k\"":1}"#);
        assert!(r.with_first_field("k", "not json").is_err());
    }

    #[test]
    fn record_from_serialize_is_an_object() {
        let r = Record::from_serialize(&serde_json::json!({"n": 1, "source": "a\"b"})).unwrap();
        assert_eq!(r.as_str(), r#"{"n":1,"source":"a\"b"}"#);
        assert!(Record::from_serialize(&[1, 2]).is_err());
    }
}
