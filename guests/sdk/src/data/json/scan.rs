//! One pass over a page: validate the JSON, split the records array into
//! [`Record`]s and pick chosen top-level fields of each record, without a
//! second parse per record.
//!
//! [`scan_page`] reads what `Object::parse` + `records` + `field_raw` read,
//! byte for byte, in a fraction of the work: the scan itself is the
//! `siphon-scan` crate, which the host runs natively for a component (the
//! `siphon:collector/json` import) and a native build calls directly. The
//! body is validated as serde_json validates it (strings, escapes, numbers,
//! nesting) and a record is copied as is unless it holds whitespace outside
//! strings (then it is [`compact`](crate::sink::compact)ed). It refuses
//! anything unusual (invalid JSON, a non-object body, duplicate or escaped
//! top-level keys, a records field that is not an array or `null`) with
//! [`Unusual`]. [`read_page`] is the one call collectors make: the scan, and
//! the serde path for whatever the scan finds unusual, which reads the same
//! page the same way and words the error when there is one.

use std::borrow::Cow;
use std::ops::Range;

use serde_json::value::RawValue;

use siphon_scan::Kind;

use super::{JsonError, Object};
use crate::Record;
use crate::sink::InvalidRecord;

pub use siphon_scan::Unusual;

/// One record of a scanned page and the raw JSON of the requested fields.
#[derive(Debug, Clone)]
pub struct Scanned<'a, const N: usize> {
    /// The record, byte-exact (compacted only if it held whitespace outside strings).
    pub record: Record,
    /// Raw JSON text of each requested top-level field, in the order asked;
    /// `None` when absent or `null`. The first of duplicate keys wins.
    pub fields: [Option<Cow<'a, str>>; N],
}

/// A page read by [`scan_page`].
#[derive(Debug, Clone)]
pub struct ScannedPage<'a, const N: usize> {
    /// The body's top-level fields other than the records field, raw.
    pub object: Object<'a>,
    /// The records field's elements in order: a record, or why the element
    /// is not one (e.g. `expected a JSON object, found an array`). `None`
    /// when the field is missing or `null`.
    pub records: Option<Vec<Result<Scanned<'a, N>, InvalidRecord>>>,
}

/// Reads a JSON object `body` whose top-level field `records_key` holds an
/// array of records, picking top-level `fields` of each record (see the
/// module docs). Inside a component the host runs the scan natively; every
/// offset it answers is checked here, and one that does not fit the body
/// makes the page unusual (the serde path then reads it).
pub fn scan_page<'a, const N: usize>(
    body: &'a [u8],
    records_key: &str,
    fields: [&str; N],
) -> Result<ScannedPage<'a, N>, Unusual> {
    let scan = crate::sys::scan_page(body, records_key, &fields).ok_or(Unusual)?;
    let text = |span: &Range<usize>| body.get(span.clone()).and_then(|b| std::str::from_utf8(b).ok()).ok_or(Unusual);
    let mut object_fields: Vec<(Cow<'a, str>, &'a RawValue)> = Vec::with_capacity(scan.object.len());
    for (key, value) in &scan.object {
        let raw: &'a RawValue = serde_json::from_str(text(value)?).map_err(|_| Unusual)?;
        object_fields.push((Cow::Borrowed(text(key)?), raw));
    }
    let records = match scan.records {
        None => None,
        Some(elements) => {
            if scan.fields.len() != elements.len() * N {
                return Err(Unusual);
            }
            let mut out = Vec::with_capacity(elements.len());
            for (i, element) in elements.iter().enumerate() {
                let spans = &scan.fields[i * N..(i + 1) * N];
                let record = text(&element.span)?;
                out.push(match element.kind {
                    Kind::Compact => {
                        let mut found: [Option<Cow<'a, str>>; N] = [const { None }; N];
                        for (slot, span) in found.iter_mut().zip(spans) {
                            *slot = span.as_ref().map(|s| text(s).map(Cow::Borrowed)).transpose()?;
                        }
                        Ok(Scanned { record: Record::from_compact(record.to_owned()), fields: found })
                    }
                    // Rare: a pretty-printed record. Its fields are read from
                    // the compacted text, as the serde path reads them.
                    Kind::Spaced => {
                        let record = Record::from_compact(crate::sink::compact(record).into_owned());
                        let found = fields.map(|f| {
                            super::field_raw(&record, f).ok().flatten().map(|raw| Cow::Owned(raw.get().to_owned()))
                        });
                        Ok(Scanned { record, fields: found })
                    }
                    Kind::Other => Err(InvalidRecord(format!("expected a JSON object, found {}", super::kind(record)))),
                });
            }
            Some(out)
        }
    };
    Ok(ScannedPage { object: Object { fields: object_fields }, records })
}

/// Reads a page as [`scan_page`] does, falling back to the serde path
/// ([`Object::parse`], [`records_of`](super::records_of)-style elements,
/// [`field_raw`](super::field_raw) per record) for anything the scan finds
/// unusual. Both paths give the same records and fields for every page the
/// scan reads; the serde path also reads a records field holding one object
/// (one record) and words the error for a body that is no page at all.
///
/// ```
/// use siphon_sdk::data::json::read_page;
///
/// let body = br#"{"ok": 1, "result": [{"_id": "a", "ts": 7}, [1]]}"#;
/// let page = read_page(body, "result", ["_id", "ts"])?;
/// assert_eq!(page.object.u64("ok")?, Some(1));
/// let records = page.records.unwrap_or_default();
/// let first = records[0].as_ref().map(|s| (s.record.as_str(), s.fields[1].as_deref()));
/// assert_eq!(first.ok(), Some((r#"{"_id":"a","ts":7}"#, Some("7"))));
/// assert!(records[1].is_err(), "an array is not a record");
/// assert!(read_page(b"<html>", "result", ["_id"]).is_err());
/// # Ok::<(), siphon_sdk::data::json::JsonError>(())
/// ```
pub fn read_page<'a, const N: usize>(
    body: &'a [u8],
    records_key: &str,
    fields: [&str; N],
) -> Result<ScannedPage<'a, N>, JsonError> {
    if let Ok(page) = scan_page(body, records_key, fields) {
        return Ok(page);
    }
    let mut object = Object::parse(body)?;
    let at = object.fields.iter().position(|(k, _)| k == records_key);
    let raw = at.map(|i| object.fields.remove(i).1).filter(|r| r.get() != "null");
    object.fields.retain(|(k, _)| k != records_key);
    let Some(raw) = raw else { return Ok(ScannedPage { object, records: None }) };
    let field_error = |message: String| JsonError::in_field(records_key, message);
    let items: Vec<&RawValue> = match raw.get().as_bytes().first() {
        Some(b'[') => serde_json::from_str(raw.get()).map_err(|e| field_error(format!("not valid JSON: {e}")))?,
        Some(b'{') => vec![raw],
        _ => return Err(field_error(format!("expected an array of objects, found {}", super::kind(raw.get())))),
    };
    let records = items
        .into_iter()
        .map(|item| {
            let record = Record::from_raw(item)?;
            let found =
                fields.map(|f| super::field_raw(&record, f).ok().flatten().map(|raw| Cow::Owned(raw.get().to_owned())));
            Ok(Scanned { record, fields: found })
        })
        .collect();
    Ok(ScannedPage { object, records: Some(records) })
}

#[cfg(test)]
mod tests;
