//! The sink: where delivered records are stored, as NDJSON objects that are
//! written once and never rewritten (a SecOps feed copies each object once).
//!
//! Backends implement [`Sink`] over whole objects; this module owns what is
//! common to all of them: object names, NDJSON encoding, gzip, and how a
//! batch is split into objects by record count and size (applied by
//! `delivery::Pending` as records arrive).

pub mod gcs;
pub mod gzip;
pub mod local;
pub mod memory;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::config::SinkSettings;

/// A failure of a sink backend.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// An object of that name exists already; nothing was overwritten.
    #[error("object {0} already exists")]
    AlreadyExists(String),
    /// The backend failed; the message names the location.
    #[error("{0}")]
    Backend(String),
}

/// A place to store finished objects.
#[async_trait]
pub trait Sink: Send + Sync {
    /// Where objects go, for messages (e.g. `local directory /var/siphon/out`).
    fn describe(&self) -> String;

    /// Store `body` as a new object `name`; fail with
    /// [`SinkError::AlreadyExists`] rather than replace an existing one.
    /// Durable when it returns `Ok`.
    async fn create(&self, name: &str, object: &Object) -> Result<(), SinkError>;

    /// Whether an object holding records exists (used by commit recovery).
    /// An object without records counts as absent: every object written
    /// holds at least one, and one without is a claim left by recovery (see
    /// `delivery` and [`holds_records`]).
    async fn exists(&self, name: &str) -> Result<bool, SinkError>;

    /// Remove an object (used by commit recovery to undo half a commit).
    async fn delete(&self, name: &str) -> Result<(), SinkError>;
}

/// Objects up to this size are read back by [`Sink::exists`] to tell a
/// claim from data; a claim is at most an empty gzip stream (about 20 bytes).
pub const CLAIM_MAX_BYTES: u64 = 64;

/// Whether stored bytes hold records: they are not empty and, when gzip,
/// do not decode to nothing. Bytes that hold none are a claim (see
/// `delivery`): `.ndjson` claims are empty and `.ndjson.gz` claims are a
/// valid gzip stream of nothing, so a feed that reads them finds no records
/// and no corrupt file. Bytes that are not valid gzip count as data.
pub fn holds_records(body: &[u8]) -> bool {
    if body.is_empty() {
        return false;
    }
    if !body.starts_with(&[0x1f, 0x8b]) {
        return true;
    }
    let mut first = [0u8; 1];
    !matches!(std::io::Read::read(&mut flate2::read::MultiGzDecoder::new(body), &mut first), Ok(0))
}

/// One encoded object.
#[derive(Debug, Clone)]
pub struct Object {
    /// Bytes as stored (gzip-compressed when configured).
    pub body: Bytes,
    /// MIME type of the NDJSON content.
    pub content_type: &'static str,
    /// `Some("gzip")` for `.ndjson.gz` objects.
    pub content_encoding: Option<&'static str>,
    /// Records in the object.
    pub records: usize,
}

/// How a source's records become named objects.
#[derive(Debug, Clone)]
pub struct Layout {
    prefix: String,
    source: String,
    gzip: bool,
    max_records: usize,
    max_bytes: u64,
}

impl Layout {
    /// The layout for `source` with object prefix `source_prefix`.
    pub fn new(settings: &SinkSettings, source: &str, source_prefix: &str) -> Layout {
        let prefix = [settings.prefix.as_str(), source_prefix]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("/");
        Layout {
            prefix,
            source: source.to_owned(),
            gzip: settings.gzip,
            max_records: settings.max_records,
            max_bytes: settings.max_bytes,
        }
    }

    /// `<prefix>/<yyyy>/<mm>/<dd>/<source>-<timestamp>-<seq>.ndjson[.gz]`.
    /// `started` is the run's start time and `seq` counts objects within the
    /// run, so names are known before upload and never collide between runs
    /// of one source (runs of a source never overlap).
    pub fn object_name(&self, started: DateTime<Utc>, seq: u32) -> String {
        let ext = if self.gzip { "ndjson.gz" } else { "ndjson" };
        let day = started.format("%Y/%m/%d");
        let stamp = started.format("%Y%m%dT%H%M%S%3fZ");
        let file = format!("{}-{stamp}-{seq:06}.{ext}", self.source);
        if self.prefix.is_empty() { format!("{day}/{file}") } else { format!("{}/{day}/{file}", self.prefix) }
    }

    /// An empty pending buffer cutting records into this layout's objects
    /// (at most `max_records` each, and a new object once `max_bytes` of
    /// NDJSON is reached; an object holds at least one record), spooled to
    /// a file past `spool_from` bytes.
    pub fn pending(&self, spool_from: usize) -> crate::delivery::Pending {
        crate::delivery::Pending::new(self.max_records, self.max_bytes, spool_from)
    }

    /// Encode records as NDJSON, gzip-compressed when configured.
    pub fn encode(&self, records: &[String]) -> std::io::Result<Object> {
        let size: usize = records.iter().map(|r| r.len() + 1).sum();
        let mut ndjson = Vec::with_capacity(size);
        for r in records {
            ndjson.extend_from_slice(r.as_bytes());
            ndjson.push(b'\n');
        }
        self.encode_ndjson(Bytes::from(ndjson), records.len())
    }

    /// An object of `records` records whose NDJSON is `ndjson` (stored as
    /// is without gzip: no copy).
    pub fn encode_ndjson(&self, ndjson: Bytes, records: usize) -> std::io::Result<Object> {
        let (body, content_encoding) =
            if self.gzip { (Bytes::from(gzip::compress(&ndjson)?), Some("gzip")) } else { (ndjson, None) };
        Ok(Object { body, content_type: "application/x-ndjson", content_encoding, records })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SinkTarget;
    use chrono::TimeZone;

    fn layout(gzip: bool, max_records: usize, max_bytes: u64) -> Layout {
        let s = SinkSettings {
            target: SinkTarget::Local { dir: "/tmp".into() },
            prefix: "siem".into(),
            gzip,
            max_records,
            max_bytes,
        };
        Layout::new(&s, "netskope", "netskope/alerts")
    }

    #[test]
    fn names_follow_the_documented_pattern() {
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(
            layout(false, 10, 1 << 20).object_name(t, 7),
            "siem/netskope/alerts/2026/01/02/netskope-20260102T030405000Z-000007.ndjson"
        );
        assert!(layout(true, 10, 1 << 20).object_name(t, 0).ends_with(".ndjson.gz"));
    }

    #[test]
    fn claims_hold_no_records_and_data_does() {
        for gzip in [false, true] {
            let l = layout(gzip, 10, 1 << 20);
            let claim = l.encode(&[]).unwrap();
            assert!(!holds_records(&claim.body), "gzip {gzip}");
            assert!((claim.body.len() as u64) <= CLAIM_MAX_BYTES);
            assert!(holds_records(&l.encode(&["{}".to_owned()]).unwrap().body), "gzip {gzip}");
        }
        assert!(!holds_records(b""));
        assert!(holds_records(&[0x1f, 0x8b, 0xff]), "not gzip after all: data");
    }

    #[test]
    fn encoding_is_byte_exact_ndjson_and_gzip_round_trips() {
        let recs = vec![r#"{"id":18446744073709551615,"u":"josé"}"#.to_owned(), r#"{"b":1}"#.to_owned()];
        let o = layout(false, 10, 1 << 20).encode(&recs).unwrap();
        assert_eq!(&o.body[..], "{\"id\":18446744073709551615,\"u\":\"josé\"}\n{\"b\":1}\n".as_bytes());
        let g = layout(true, 10, 1 << 20).encode(&recs).unwrap();
        let mut out = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&g.body[..]), &mut out).unwrap();
        assert_eq!(out.as_bytes(), &o.body[..]);
        assert_eq!(g.content_encoding, Some("gzip"));
    }
}
