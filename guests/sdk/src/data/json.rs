//! JSON from vendors, read without re-serialising it.
//!
//! Records must reach the sink byte-exact (see [`crate::sink`]), so nothing
//! here turns vendor JSON into a `serde_json::Value` and back. Instead:
//!
//! - [`split_records`] turns a body holding a JSON array — or the single
//!   object some vendors send where a one-element array was documented, or
//!   `null` — into [`Record`]s, each a slice of the body (only whitespace
//!   outside strings is removed; `\uXXXX` escapes, number spellings and key
//!   order stay as sent).
//! - [`Object`] parses a response one level deep, so the records array at a
//!   path such as `data.events` and the paging fields beside it are read
//!   from one parse.
//! - [`field_raw`], [`field_str`], [`field_u64`], … read one field of a raw
//!   record (or any JSON text) by a dotted path, e.g. `user.id` or
//!   `items.0.name` (a number indexes an array). Keys containing a `.` cannot
//!   be addressed by a path. A missing field, and a path through something
//!   that is not an object or array, is `None`; `null` is `None` too.
//! - Numbers are lenient ([`lenient_u64`]): vendors send `123`, `"123"` and
//!   `1.23e2` for the same field, and all three mean 123.
//! - [`read_page`] does the split and the per-record field lookups of a
//!   page in one pass ([`scan_page`], run natively by the host through the
//!   `siphon:collector/json` import), with the serde path inside for
//!   anything unusual: one call for collectors whose pages are large.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::time;
use crate::Record;

mod number;
mod scan;

pub use number::{lenient_f64, lenient_i64, lenient_u64};
pub use scan::{Scanned, ScannedPage, Unusual, read_page, scan_page};
pub(crate) use siphon_scan::special_offset;

/// Why JSON from the vendor cannot be read as expected; the message names the
/// field or array element. Converts into [`Error::Vendor`](crate::Error::Vendor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError(String);

impl JsonError {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    fn in_field(path: &str, message: impl fmt::Display) -> Self {
        Self(format!("field `{path}`: {message}"))
    }

    /// The message, e.g. ``field `count`: "1.5" is not a whole number``.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unexpected JSON: {}", self.0)
    }
}

impl std::error::Error for JsonError {}

impl From<JsonError> for crate::Error {
    fn from(e: JsonError) -> Self {
        crate::Error::Vendor(e.to_string())
    }
}

/// Anything that holds JSON text: `str`, `String`, [`Record`], [`RawValue`].
pub trait AsJson {
    /// The JSON text.
    fn json_text(&self) -> &str;
}

impl AsJson for str {
    fn json_text(&self) -> &str {
        self
    }
}

impl AsJson for String {
    fn json_text(&self) -> &str {
        self
    }
}

impl AsJson for Record {
    fn json_text(&self) -> &str {
        self.as_str()
    }
}

impl AsJson for RawValue {
    fn json_text(&self) -> &str {
        self.get()
    }
}

/// Splits a body into records: a JSON array of objects, one object (a
/// vendor's one-element "array"), or `null` (no records).
pub fn split_records(body: &[u8]) -> Result<Vec<Record>, JsonError> {
    let raw: &RawValue =
        serde_json::from_str(utf8(body)?).map_err(|e| JsonError::new(format!("not valid JSON: {e}")))?;
    records_of(raw)
}

/// [`split_records`] on a value already parsed, e.g. from [`Object::raw`].
pub fn records_of(value: &RawValue) -> Result<Vec<Record>, JsonError> {
    let text = value.get();
    match text.as_bytes().first() {
        Some(b'[') => {
            let items: Vec<&RawValue> =
                serde_json::from_str(text).map_err(|e| JsonError::new(format!("not valid JSON: {e}")))?;
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| Record::from_raw(item).map_err(|e| JsonError::new(format!("element {i}: {}", e.0))))
                .collect()
        }
        Some(b'{') => Ok(vec![Record::from_raw(value).map_err(|e| JsonError::new(e.0))?]),
        Some(b'n') => Ok(Vec::new()),
        _ => Err(JsonError::new(format!("expected an array of objects, found {}", kind(text)))),
    }
}

/// Splits the array at `path` of a body into records (see [`Object::records`]).
pub fn records_at(body: &[u8], path: &str) -> Result<Vec<Record>, JsonError> {
    Object::parse(body)?.records(path)
}

/// A JSON object parsed one level deep: each field's value kept raw.
///
/// ```
/// use siphon_sdk::data::json::Object;
///
/// let body = br#"{"data": {"events": [{"id": 1}, {"id": 2}]}, "next": "abc", "total": "2"}"#;
/// let page = Object::parse(body)?;
/// let records = page.records("data.events")?;
/// assert_eq!(records[1].as_str(), r#"{"id":2}"#);
/// assert_eq!(page.str("next")?.as_deref(), Some("abc"));
/// assert_eq!(page.u64("total")?, Some(2));
/// # Ok::<(), siphon_sdk::data::json::JsonError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Object<'a> {
    fields: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'a> Object<'a> {
    /// Parses `body`, which must be one JSON object.
    pub fn parse(body: &'a [u8]) -> Result<Self, JsonError> {
        Self::parse_str(utf8(body)?)
    }

    /// Parses `text`, which must be one JSON object.
    pub fn parse_str(text: &'a str) -> Result<Self, JsonError> {
        let not_object = || JsonError::new(format!("expected a JSON object, found {}", kind(text.trim_start())));
        if !text.trim_start().starts_with('{') {
            return Err(not_object());
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let fields = de::Deserializer::deserialize_map(&mut de, FieldsVisitor)
            .and_then(|fields| de.end().map(|()| fields))
            .map_err(|e| JsonError::new(format!("not valid JSON: {e}")))?;
        Ok(Self { fields })
    }

    /// The top-level fields in body order, values raw.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &'a RawValue)> + '_ {
        self.fields.iter().map(|(k, v)| (k.as_ref(), *v))
    }

    /// The raw value at `path`; `None` when missing or `null`.
    pub fn raw(&self, path: &str) -> Result<Option<&'a RawValue>, JsonError> {
        Ok(self.raw_or_null(path)?.and_then(not_null))
    }

    fn raw_or_null(&self, path: &str) -> Result<Option<&'a RawValue>, JsonError> {
        let (first, rest) = path.split_once('.').unwrap_or((path, ""));
        match self.fields.iter().find(|(k, _)| k == first) {
            None => Ok(None),
            Some((_, value)) if rest.is_empty() => Ok(Some(value)),
            Some((_, value)) => lookup(value.get(), rest).map_err(|e| JsonError::in_field(path, e)),
        }
    }

    /// The records in the array at `path` (see [`records_of`]). A missing
    /// field is an error naming the fields present, so that a wrong path
    /// does not read as "no records" forever; `null` is no records.
    pub fn records(&self, path: &str) -> Result<Vec<Record>, JsonError> {
        match self.raw_or_null(path)? {
            Some(raw) => records_of(raw).map_err(|e| JsonError::in_field(path, e.0)),
            None => {
                let present: Vec<&str> = self.fields.iter().map(|(k, _)| k.as_ref()).collect();
                let present = super::excerpt(&present.join(", "));
                Err(JsonError::in_field(path, format!("missing (the body has: {present})")))
            }
        }
    }

    /// Like [`Object::records`], but a missing field is no records too
    /// (vendors that omit the array from an empty page).
    pub fn records_or_empty(&self, path: &str) -> Result<Vec<Record>, JsonError> {
        match self.raw(path)? {
            None => Ok(Vec::new()),
            Some(raw) => records_of(raw).map_err(|e| JsonError::in_field(path, e.0)),
        }
    }

    /// [`field_str`] of this object.
    pub fn str(&self, path: &str) -> Result<Option<Cow<'a, str>>, JsonError> {
        self.raw(path)?.map(|raw| as_str(raw, path)).transpose()
    }

    /// [`field_u64`] of this object.
    pub fn u64(&self, path: &str) -> Result<Option<u64>, JsonError> {
        self.raw(path)?.map(|raw| as_u64(raw, path)).transpose()
    }

    /// [`field_i64`] of this object.
    pub fn i64(&self, path: &str) -> Result<Option<i64>, JsonError> {
        self.raw(path)?.map(|raw| as_i64(raw, path)).transpose()
    }

    /// [`field_time`] of this object.
    pub fn time(&self, path: &str) -> Result<Option<u64>, JsonError> {
        self.raw(path)?.map(|raw| as_time(raw, path)).transpose()
    }

    /// [`field`] of this object.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, JsonError> {
        self.raw(path)?.map(|raw| decode(raw, path)).transpose()
    }
}

/// The raw value at `path` of `json`; `None` when missing or `null`. An
/// empty path is the whole value.
pub fn field_raw<'a, J: AsJson + ?Sized>(json: &'a J, path: &str) -> Result<Option<&'a RawValue>, JsonError> {
    let found = lookup(json.json_text(), path).map_err(|e| JsonError::in_field(path, e))?;
    Ok(found.and_then(not_null))
}

/// The text at `path`: a string decoded (escapes resolved; borrowed when it
/// has none), a number as its exact text (ids sent as numbers stay exact
/// beyond 2^53). A boolean, object or array is an error.
pub fn field_str<'a, J: AsJson + ?Sized>(json: &'a J, path: &str) -> Result<Option<Cow<'a, str>>, JsonError> {
    field_raw(json, path)?.map(|raw| as_str(raw, path)).transpose()
}

/// A whole number ≥ 0 at `path`, sent as a number or a string ([`lenient_u64`]).
pub fn field_u64<J: AsJson + ?Sized>(json: &J, path: &str) -> Result<Option<u64>, JsonError> {
    field_raw(json, path)?.map(|raw| as_u64(raw, path)).transpose()
}

/// A whole number at `path`, sent as a number or a string ([`lenient_i64`]).
pub fn field_i64<J: AsJson + ?Sized>(json: &J, path: &str) -> Result<Option<i64>, JsonError> {
    field_raw(json, path)?.map(|raw| as_i64(raw, path)).transpose()
}

/// A finite number at `path`, sent as a number or a string ([`lenient_f64`]).
pub fn field_f64<J: AsJson + ?Sized>(json: &J, path: &str) -> Result<Option<f64>, JsonError> {
    field_raw(json, path)?
        .map(|raw| lenient_f64(&as_str(raw, path)?).map_err(|e| JsonError::in_field(path, e.0)))
        .transpose()
}

/// A timestamp at `path` as epoch milliseconds: a number is an epoch
/// value of any unit ([`time::epoch_to_millis`]), a string any form
/// [`time::parse`] reads.
pub fn field_time<J: AsJson + ?Sized>(json: &J, path: &str) -> Result<Option<u64>, JsonError> {
    field_raw(json, path)?.map(|raw| as_time(raw, path)).transpose()
}

/// The value at `path` deserialised as `T` (for small typed parts of a
/// record; never re-serialise a record itself).
pub fn field<T: DeserializeOwned, J: AsJson + ?Sized>(json: &J, path: &str) -> Result<Option<T>, JsonError> {
    field_raw(json, path)?.map(|raw| decode(raw, path)).transpose()
}

fn as_str<'a>(raw: &'a RawValue, path: &str) -> Result<Cow<'a, str>, JsonError> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'"') if !text.contains('\\') => Ok(Cow::Borrowed(&text[1..text.len() - 1])),
        Some(b'"') => serde_json::from_str::<String>(text).map(Cow::Owned).map_err(|e| JsonError::in_field(path, e)),
        Some(b'-' | b'0'..=b'9') => Ok(Cow::Borrowed(text)),
        _ => Err(JsonError::in_field(path, format!("expected a string or number, found {}", kind(text)))),
    }
}

fn as_u64(raw: &RawValue, path: &str) -> Result<u64, JsonError> {
    lenient_u64(&as_str(raw, path)?).map_err(|e| JsonError::in_field(path, e.0))
}

fn as_i64(raw: &RawValue, path: &str) -> Result<i64, JsonError> {
    lenient_i64(&as_str(raw, path)?).map_err(|e| JsonError::in_field(path, e.0))
}

fn as_time(raw: &RawValue, path: &str) -> Result<u64, JsonError> {
    let text = as_str(raw, path)?;
    let parsed = if raw.get().starts_with('"') {
        time::parse(&text)
    } else {
        match lenient_u64(&text) {
            Ok(whole) => Ok(time::epoch_to_millis(whole)),
            Err(_) => time::parse_epoch(&text),
        }
    };
    parsed.map_err(|e| JsonError::in_field(path, e))
}

fn decode<T: DeserializeOwned>(raw: &RawValue, path: &str) -> Result<T, JsonError> {
    serde_json::from_str(raw.get()).map_err(|e| JsonError::in_field(path, e))
}

fn utf8(body: &[u8]) -> Result<&str, JsonError> {
    std::str::from_utf8(body).map_err(|e| JsonError::new(format!("not UTF-8 (at byte {})", e.valid_up_to())))
}

fn not_null(raw: &RawValue) -> Option<&RawValue> {
    (raw.get() != "null").then_some(raw)
}

/// What kind of JSON value `text` starts with, for messages.
fn kind(text: &str) -> &'static str {
    match text.as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        Some(b'-' | b'0'..=b'9') => "a number",
        Some(_) => "invalid JSON",
        None => "nothing",
    }
}

/// Follows a dotted path through `text`; `None` when a step is missing or
/// not a container. The value found may be `null`.
fn lookup<'a>(text: &'a str, path: &str) -> Result<Option<&'a RawValue>, serde_json::Error> {
    let mut current: &'a RawValue = serde_json::from_str(text)?;
    for key in path.split('.').filter(|_| !path.is_empty()) {
        let mut de = serde_json::Deserializer::from_str(current.get());
        match de::Deserializer::deserialize_any(&mut de, Find { key })? {
            Some(next) => current = next,
            None => return Ok(None),
        }
    }
    Ok(Some(current))
}

/// Finds one key of an object (or index of an array) and skips the rest
/// without allocating for keys that do not match. The first of duplicate
/// keys wins.
struct Find<'k> {
    key: &'k str,
}

impl<'de> Visitor<'de> for Find<'_> {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(hit) = map.next_key_seed(KeyIs(self.key))? {
            if hit && found.is_none() {
                found = Some(map.next_value::<&'de RawValue>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let index: Option<usize> = self.key.parse().ok();
        let mut found = None;
        let mut i = 0;
        loop {
            if Some(i) == index {
                match seq.next_element::<&'de RawValue>()? {
                    Some(value) => found = Some(value),
                    None => break,
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            i += 1;
        }
        Ok(found)
    }

    // Scalars hold no fields.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// A map key compared with the wanted key without being allocated.
struct KeyIs<'k>(&'k str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

/// Collects an object's fields, keys borrowed unless they hold escapes.
struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Vec<(Cow<'de, str>, &'de RawValue)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Vec::new();
        while let Some(key) = map.next_key_seed(KeyCow)? {
            fields.push((key, map.next_value()?));
        }
        Ok(fields)
    }
}

struct KeyCow;

impl<'de> DeserializeSeed<'de> for KeyCow {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyCow {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(key))
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(key.to_string()))
    }
}

#[cfg(test)]
mod tests;
