//! One pass over a page: validate the JSON, split the records array into
//! [`Record`]s and pick chosen top-level fields of each record, without a
//! second parse per record.
//!
//! [`scan_page`] reads what `Object::parse` + `records` + `field_raw` read,
//! byte for byte, in about a third of the work: the body is validated as
//! serde_json validates it (strings, escapes, numbers, nesting), strings are
//! skipped eight bytes at a time, and a record is copied as is unless it holds
//! whitespace outside strings (then it is [`compact`](crate::sink::compact)ed).
//! It refuses anything unusual (invalid JSON, a non-object body, duplicate
//! top-level keys, a records field that is not an array or `null`) with
//! [`Unusual`]. [`read_page`] is the one call collectors make: the scan, and
//! the serde path for whatever the scan finds unusual, which reads the same
//! page the same way and words the error when there is one.

use std::borrow::Cow;

use serde_json::value::RawValue;

use super::{JsonError, Object};
use crate::Record;
use crate::sink::InvalidRecord;

/// Deepest nesting accepted (below serde_json's recursion limit of 128, so
/// anything deeper goes the serde way).
const MAX_DEPTH: u32 = 100;

/// The body is not the plain page [`scan_page`] reads; use the serde path
/// (which also gives the precise error message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unusual;

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
/// module docs).
pub fn scan_page<'a, const N: usize>(
    body: &'a [u8],
    records_key: &str,
    fields: [&str; N],
) -> Result<ScannedPage<'a, N>, Unusual> {
    let text = std::str::from_utf8(body).map_err(|_| Unusual)?;
    let mut s = Scanner { text, b: body, i: 0, ws: false };
    s.skip_ws();
    s.expect(b'{')?;
    let mut object_fields: Vec<(Cow<'a, str>, &'a RawValue)> = Vec::new();
    let mut records = None;
    let mut seen_records = false;
    s.skip_ws();
    if s.peek() == Some(b'}') {
        s.i += 1;
    } else {
        loop {
            s.skip_ws();
            let key = s.key()?;
            s.skip_ws();
            s.expect(b':')?;
            s.skip_ws();
            if key == records_key {
                if seen_records {
                    return Err(Unusual);
                }
                seen_records = true;
                records = s.records(&fields)?;
            } else {
                if object_fields.iter().any(|(k, _)| *k == key) {
                    return Err(Unusual);
                }
                let start = s.i;
                s.value(1)?;
                let raw: &'a RawValue = serde_json::from_str(&text[start..s.i]).map_err(|_| Unusual)?;
                object_fields.push((key, raw));
            }
            s.skip_ws();
            match s.next()? {
                b',' => {}
                b'}' => break,
                _ => return Err(Unusual),
            }
        }
    }
    s.skip_ws();
    if s.i != body.len() {
        return Err(Unusual);
    }
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

struct Scanner<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
    /// Whitespace was skipped since last reset (a record needs compacting).
    ws: bool,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Result<u8, Unusual> {
        let c = *self.b.get(self.i).ok_or(Unusual)?;
        self.i += 1;
        Ok(c)
    }

    fn expect(&mut self, c: u8) -> Result<(), Unusual> {
        if self.next()? == c { Ok(()) } else { Err(Unusual) }
    }

    fn skip_ws(&mut self) {
        let start = self.i;
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
        self.ws |= self.i != start;
    }

    /// An object key, decoded when it holds escapes.
    fn key(&mut self) -> Result<Cow<'a, str>, Unusual> {
        let start = self.i;
        let escaped = self.string()?;
        let raw = &self.text[start..self.i];
        if escaped {
            serde_json::from_str::<String>(raw).map(Cow::Owned).map_err(|_| Unusual)
        } else {
            Ok(Cow::Borrowed(&raw[1..raw.len() - 1]))
        }
    }

    /// The records array (or `null`), each element a record or why not.
    #[allow(clippy::type_complexity)]
    fn records<const N: usize>(
        &mut self,
        fields: &[&str; N],
    ) -> Result<Option<Vec<Result<Scanned<'a, N>, InvalidRecord>>>, Unusual> {
        match self.peek() {
            Some(b'n') => {
                self.literal(b"null")?;
                return Ok(None);
            }
            Some(b'[') => self.i += 1,
            _ => return Err(Unusual),
        }
        let mut out = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(Some(out));
        }
        loop {
            self.skip_ws();
            let start = self.i;
            self.ws = false;
            if self.peek() == Some(b'{') {
                let found = self.record_object(fields)?;
                let text = &self.text[start..self.i];
                out.push(Ok(if self.ws {
                    // Rare: a pretty-printed record. Its fields are read from
                    // the compacted text, as the serde path reads them.
                    let compacted = crate::sink::compact(text).into_owned();
                    let mut again = Scanner { text: &compacted, b: compacted.as_bytes(), i: 0, ws: false };
                    let found = again.record_object(fields)?.map(|f| f.map(|t| Cow::Owned(t.to_owned())));
                    Scanned { record: Record::from_compact(compacted), fields: found }
                } else {
                    Scanned {
                        record: Record::from_compact(text.to_owned()),
                        fields: found.map(|f| f.map(Cow::Borrowed)),
                    }
                }));
            } else {
                self.value(2)?;
                let what = super::kind(&self.text[start..self.i]);
                out.push(Err(InvalidRecord(format!("expected a JSON object, found {what}"))));
            }
            self.skip_ws();
            match self.next()? {
                b',' => {}
                b']' => break,
                _ => return Err(Unusual),
            }
        }
        Ok(Some(out))
    }

    /// A record object at depth 2; returns the raw text of `fields`.
    fn record_object<const N: usize>(&mut self, fields: &[&str; N]) -> Result<[Option<&'a str>; N], Unusual> {
        let mut found: [Option<&'a str>; N] = [None; N];
        self.expect(b'{')?;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(found);
        }
        loop {
            self.skip_ws();
            let key = self.key()?;
            self.skip_ws();
            self.expect(b':')?;
            self.skip_ws();
            let start = self.i;
            self.value(3)?;
            if let Some(slot) = fields.iter().position(|f| *f == key) {
                let raw = &self.text[start..self.i];
                if found[slot].is_none() && raw != "null" {
                    found[slot] = Some(raw);
                } else if raw == "null" && found[slot].is_none() {
                    // `null` counts as absent, but a later duplicate must
                    // not win over it: mark the slot taken with an empty text.
                    found[slot] = Some("");
                }
            }
            self.skip_ws();
            match self.next()? {
                b',' => {}
                b'}' => break,
                _ => return Err(Unusual),
            }
        }
        for slot in &mut found {
            if *slot == Some("") {
                *slot = None;
            }
        }
        Ok(found)
    }

    /// Skips one value starting at `i`, validating it.
    fn value(&mut self, depth: u32) -> Result<(), Unusual> {
        match self.peek().ok_or(Unusual)? {
            b'"' => self.string().map(|_| ()),
            b'{' => {
                if depth > MAX_DEPTH {
                    return Err(Unusual);
                }
                self.i += 1;
                self.skip_ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.skip_ws();
                    if self.peek() != Some(b'"') {
                        return Err(Unusual);
                    }
                    self.string()?;
                    self.skip_ws();
                    self.expect(b':')?;
                    self.skip_ws();
                    self.value(depth + 1)?;
                    self.skip_ws();
                    match self.next()? {
                        b',' => {}
                        b'}' => return Ok(()),
                        _ => return Err(Unusual),
                    }
                }
            }
            b'[' => {
                if depth > MAX_DEPTH {
                    return Err(Unusual);
                }
                self.i += 1;
                self.skip_ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.skip_ws();
                    self.value(depth + 1)?;
                    self.skip_ws();
                    match self.next()? {
                        b',' => {}
                        b']' => return Ok(()),
                        _ => return Err(Unusual),
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(Unusual),
        }
    }

    fn literal(&mut self, lit: &[u8]) -> Result<(), Unusual> {
        if self.b[self.i..].starts_with(lit) {
            self.i += lit.len();
            Ok(())
        } else {
            Err(Unusual)
        }
    }

    /// JSON number grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Result<(), Unusual> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.next()? {
            b'0' => {
                if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    return Err(Unusual);
                }
            }
            b'1'..=b'9' => self.digits(),
            _ => return Err(Unusual),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            self.some_digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            self.some_digits()?;
        }
        Ok(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
    }

    fn some_digits(&mut self) -> Result<(), Unusual> {
        let start = self.i;
        self.digits();
        if self.i == start { Err(Unusual) } else { Ok(()) }
    }

    /// Skips a string starting at its opening quote; returns whether it held
    /// an escape. Control characters are refused, as serde_json does.
    fn string(&mut self) -> Result<bool, Unusual> {
        self.expect(b'"')?;
        let mut escaped = false;
        loop {
            self.i += special_offset(self.b.get(self.i..).unwrap_or_default());
            match self.next()? {
                b'"' => return Ok(escaped),
                b'\\' => {
                    escaped = true;
                    match self.next()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => {
                            for _ in 0..4 {
                                if !self.next()?.is_ascii_hexdigit() {
                                    return Err(Unusual);
                                }
                            }
                        }
                        _ => return Err(Unusual),
                    }
                }
                // A control character (the only other byte that stops the skip).
                _ => return Err(Unusual),
            }
        }
    }
}

/// How many leading bytes of `b` are ordinary string content: not `"`, not
/// `\` and not a control character. Eight bytes per step (SWAR).
pub(crate) fn special_offset(b: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while i + 8 <= b.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&b[i..i + 8]);
        let x = u64::from_le_bytes(word);
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        // A byte is flagged when it is zero (quote/backslash matched) or
        // below 0x20; the lowest flag is exact (borrows only run upwards).
        let hits = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (x.wrapping_sub(ONES * 0x20) & !x);
        let hits = hits & HIGH;
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < b.len() && !matches!(b[i], b'"' | b'\\' | 0..=0x1f) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests;
