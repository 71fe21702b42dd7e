//! The dataexport alerts endpoint: the request for one operation, what each
//! response means, and the records of a page, kept byte-exact.
//!
//! `GET {base_url}/api/v2/events/dataexport/alerts/{type}?index=…&operation=…`
//! answers `{"ok":1,"wait_time":N,"result":[…]}` (vendor-apis.md §4.2). The
//! records are taken as raw slices of the body, so `_id`s, huge integers and
//! non-ASCII text are delivered exactly as Netskope sent them.

use std::collections::hash_map::DefaultHasher;
use std::hash::Hasher;

use serde::Deserialize;
use serde_json::value::RawValue;
use siphon_sdk::http::{Request, Response, excerpt};
use siphon_sdk::{Error, Record};

use crate::cursor::{Fingerprint, Op};
use crate::settings::Settings;

/// Sent with every request so the tenant's audit log names the collector.
pub const USER_AGENT: &str = concat!("siphon-netskope-alerts/", env!("CARGO_PKG_VERSION"));

/// Path of the iterator endpoint of `alert_type`.
pub fn endpoint_path(alert_type: &str) -> String {
    format!("/api/v2/events/dataexport/alerts/{alert_type}")
}

/// The request for `op` on `alert_type`.
pub fn request(settings: &Settings, token: &str, alert_type: &str, op: Op) -> Request {
    Request::get(format!("{}{}", settings.base_url, endpoint_path(alert_type)))
        .query("index", settings.index.as_str())
        .query("operation", op.to_string())
        .header("Netskope-Api-Token", token)
        .header("Accept", "application/json")
        .header("User-Agent", USER_AGENT)
        // Every iterator call may consume a page: the host must not retry one
        // that a gateway error may have followed (the next run resends instead).
        .header("siphon-retry", "rate-limited-only")
}

/// What a response means for the iterator.
#[derive(Debug)]
pub enum Reply {
    /// A page with at least one record.
    Page(Page),
    /// No records (HTTP 204, or an empty `result`): caught up.
    Empty {
        /// Seconds to wait before the next call.
        wait_time: u64,
    },
    /// HTTP 429 that outlasted the host's retries.
    RateLimited {
        /// `Retry-After`, else `ratelimit-reset`, in seconds.
        retry_after: Option<u64>,
    },
}

/// One page of records.
#[derive(Debug)]
pub struct Page {
    /// Seconds Netskope asks the collector to wait before the next call.
    pub wait_time: u64,
    /// Length of `result` as returned, usable or not: a full page means more
    /// data is waiting.
    pub returned: usize,
    /// The usable records, in order.
    pub entries: Vec<Entry>,
    /// Why entries of `result` were skipped (not JSON objects).
    pub rejected: Vec<String>,
    /// Identifies the page for `resend` duplicate detection.
    pub fingerprint: Fingerprint,
    /// Highest `timestamp` (epoch s) in the page.
    pub max_timestamp: Option<u64>,
}

/// A record and its dedup key.
#[derive(Debug)]
pub struct Entry {
    /// The `_id`, or `#<hash of the record>` for a record without one.
    pub key: String,
    /// The record, byte-exact.
    pub record: Record,
}

/// Classifies `response` to an operation on `alert_type` with `index`.
pub fn classify(alert_type: &str, index: &str, response: &Response) -> Result<Reply, Error> {
    let status = response.status;
    match status {
        204 => Ok(Reply::Empty { wait_time: 0 }),
        200..=299 => parse_page(alert_type, &response.body),
        401 | 403 => Err(Error::Auth(format!(
            "Netskope refused the API token for alert type `{alert_type}` (HTTP {status}: {}); the token lacks \
             read scope on {} or has expired",
            vendor_message(response),
            endpoint_path(alert_type)
        ))),
        404 => Err(Error::NotFound(format!(
            "alert type `{alert_type}` is not available on this tenant ({}); remove it from `alert_types`",
            vendor_message(response)
        ))),
        409 => Err(Error::Vendor(format!(
            "Netskope reported a conflict on index `{index}` for alert type `{alert_type}` (HTTP 409: {}): \
             the index is probably in concurrent use by another consumer; give each deployment its own `index`",
            vendor_message(response)
        ))),
        429 => Ok(Reply::RateLimited {
            retry_after: response
                .headers
                .get_u64("retry-after")
                .or_else(|| response.headers.get_u64("ratelimit-reset")),
        }),
        _ => Err(Error::Vendor(format!(
            "alert type `{alert_type}`: Netskope answered HTTP {status}: {}",
            vendor_message(response)
        ))),
    }
}

/// Seconds to pause before the next call when the response used up the rate
/// limit window (`ratelimit-remaining: 0`); none otherwise.
pub fn rate_limit_pause(response: &Response) -> Option<u64> {
    match response.headers.get_u64("ratelimit-remaining") {
        // Without a reset hint, one second is the smallest pause that helps.
        Some(0) => Some(response.headers.get_u64("ratelimit-reset").unwrap_or(1)),
        _ => None,
    }
}

/// The `message` (or `error`) of a JSON error body, else a short excerpt.
fn vendor_message(response: &Response) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        message: Option<String>,
        error: Option<String>,
    }
    match serde_json::from_slice::<ErrorBody>(&response.body) {
        Ok(ErrorBody { message: Some(m), .. } | ErrorBody { error: Some(m), .. }) => excerpt(m.as_bytes(), 300),
        _ if response.body.is_empty() => "empty body".to_string(),
        _ => excerpt(&response.body, 300),
    }
}

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(borrow)]
    ok: Option<&'a RawValue>,
    #[serde(borrow)]
    wait_time: Option<&'a RawValue>,
    #[serde(borrow)]
    result: Option<Vec<&'a RawValue>>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct Meta<'a> {
    #[serde(rename = "_id", borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    timestamp: Option<&'a RawValue>,
}

/// Parses a 2xx body into a [`Reply::Page`] or [`Reply::Empty`].
pub fn parse_page(alert_type: &str, body: &[u8]) -> Result<Reply, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Reply::Empty { wait_time: 0 });
    }
    let parsed: Body = serde_json::from_slice(body).map_err(|e| {
        Error::Vendor(format!(
            "alert type `{alert_type}`: the response is not the expected JSON ({e}); body starts: {}",
            excerpt(body, 200)
        ))
    })?;
    let ok = parsed.ok.map(RawValue::get);
    if !matches!(ok, Some("1" | "true")) {
        return Err(Error::Vendor(format!(
            "alert type `{alert_type}`: Netskope answered ok={} ({})",
            ok.unwrap_or("<missing>"),
            parsed.message.as_deref().map_or_else(|| excerpt(body, 200), |m| excerpt(m.as_bytes(), 300))
        )));
    }
    let wait_time = parsed.wait_time.and_then(|raw| number(raw.get())).unwrap_or(0);
    let result = parsed.result.unwrap_or_default();
    if result.is_empty() {
        return Ok(Reply::Empty { wait_time });
    }

    let returned = result.len();
    let mut entries = Vec::with_capacity(returned);
    let mut rejected = Vec::new();
    let mut max_timestamp: Option<u64> = None;
    for (i, raw) in result.into_iter().enumerate() {
        let record = match Record::from_raw(raw) {
            Ok(r) => r,
            Err(e) => {
                rejected.push(format!("result[{i}]: {}", e.0));
                continue;
            }
        };
        // Cannot fail for an object; a record without usable fields still counts.
        let meta: Option<Meta> = serde_json::from_str(raw.get()).ok();
        let id = meta.as_ref().and_then(|m| m.id).and_then(|raw| id_text(raw.get()));
        if let Some(ts) = meta.as_ref().and_then(|m| m.timestamp).and_then(|raw| number(raw.get())) {
            max_timestamp = Some(max_timestamp.map_or(ts, |m| m.max(ts)));
        }
        let key = id.unwrap_or_else(|| format!("#{:016x}", fnv1a(record.as_str().as_bytes())));
        entries.push(Entry { key, record });
    }
    let fingerprint = fingerprint(entries.iter().map(|e| e.key.as_str()));
    Ok(Reply::Page(Page { wait_time, returned, entries, rejected, fingerprint, max_timestamp }))
}

/// The fingerprint of a page whose record keys are `keys`, in order.
pub fn fingerprint<'a>(keys: impl IntoIterator<Item = &'a str>) -> Fingerprint {
    let mut count = 0u64;
    let mut first = None;
    let mut last = "";
    let mut hash = FNV_OFFSET;
    for key in keys {
        count += 1;
        first.get_or_insert(key);
        last = key;
        hash = fnv1a_extend(hash, key.as_bytes());
        // A separator, so ("ab","c") and ("a","bc") differ.
        hash = fnv1a_extend(hash, b"\n");
    }
    Fingerprint {
        count,
        first_id: first.unwrap_or_default().to_string(),
        last_id: last.to_string(),
        ids_hash: format!("{hash:016x}"),
    }
}

/// A 128-bit in-run dedup key for a record key: two unrelated 64-bit hashes,
/// so a false duplicate (which would drop a record) needs both to collide.
/// Storing 16 bytes instead of the id keeps a run's set small at 500k ids.
pub fn dedup_key(key: &str) -> u128 {
    let mut sip = DefaultHasher::new();
    sip.write(key.as_bytes());
    (u128::from(fnv1a(key.as_bytes())) << 64) | u128::from(sip.finish())
}

/// An `_id` as text: a JSON string unescaped, a number as written.
fn id_text(raw: &str) -> Option<String> {
    if raw.starts_with('"') {
        serde_json::from_str::<String>(raw).ok()
    } else if raw == "null" {
        None
    } else {
        Some(raw.to_string())
    }
}

/// A non-negative whole number from a JSON number or numeric string
/// (fractions rounded up, so a wait is never shortened).
fn number(raw: &str) -> Option<u64> {
    let text = if raw.starts_with('"') { serde_json::from_str::<String>(raw).ok()? } else { raw.to_string() };
    let text = text.trim();
    text.parse::<u64>().ok().or_else(|| {
        let f: f64 = text.parse().ok()?;
        // `as` saturates for huge values; the guard drops NaN and negatives.
        (f.is_finite() && f >= 0.0).then(|| f.ceil() as u64)
    })
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_extend(FNV_OFFSET, bytes)
}

fn fnv1a_extend(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

#[cfg(test)]
mod tests {
    use siphon_sdk::http::Headers;

    use super::*;

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response { status, headers: headers.iter().copied().collect::<Headers>(), body: body.as_bytes().to_vec() }
    }

    fn page(reply: Result<Reply, Error>) -> Page {
        match reply {
            Ok(Reply::Page(p)) => p,
            other => panic!("expected a page, got {other:?}"),
        }
    }

    #[test]
    fn request_carries_query_and_headers() {
        let settings = crate::settings::Settings::parse("prod", |k| match k {
            "base_url" => Some("https://acme.goskope.com/".into()),
            "index" => Some("acme siem".into()),
            _ => None,
        })
        .unwrap();
        let r = request(&settings, "tok", "dlp", Op::Epoch(1_722_280_000));
        assert_eq!(
            r.url(),
            "https://acme.goskope.com/api/v2/events/dataexport/alerts/dlp?index=acme%20siem&operation=1722280000"
        );
        assert_eq!(request(&settings, "tok", "dlp", Op::Next).url().rsplit('=').next(), Some("next"));
    }

    #[test]
    fn page_records_are_byte_exact_slices() {
        let body = "{\"ok\": 1, \"wait_time\": 5, \"analyze_result\": {}, \"result\": [\n  {\"_id\": \"a1\", \"timestamp\": 1722282900, \
                    \"dlp_incident_id\": 4871139218723649281, \"user\": \"j\\u00f6rg\", \"city\": \"Zürich\"},\n  \
                    {\"_id\": \"b2\", \"timestamp\": \"1722282901\"}]}";
        let p = page(classify("dlp", "i", &response(200, &[], body)));
        assert_eq!(p.wait_time, 5);
        assert_eq!(p.returned, 2);
        assert_eq!(
            p.entries[0].record.as_str(),
            r#"{"_id":"a1","timestamp":1722282900,"dlp_incident_id":4871139218723649281,"user":"j\u00f6rg","city":"Zürich"}"#
        );
        assert_eq!(p.entries[1].key, "b2");
        assert_eq!(p.max_timestamp, Some(1_722_282_901));
        assert_eq!(p.fingerprint, fingerprint(["a1", "b2"]));
    }

    #[test]
    fn records_without_id_or_object_shape() {
        let p =
            page(parse_page("dlp", br#"{"ok":1,"result":[{"x":1},{"_id":123456789012345678901},null,{"_id":null}]}"#));
        assert_eq!(p.returned, 4);
        assert_eq!(p.entries.len(), 3);
        assert!(p.entries[0].key.starts_with('#'));
        assert_eq!(p.entries[1].key, "123456789012345678901");
        assert!(p.entries[2].key.starts_with('#'));
        assert_eq!(p.rejected, ["result[2]: expected a JSON object, found null"]);
    }

    #[test]
    fn empty_pages() {
        for (status, body) in
            [(204, ""), (200, r#"{"ok":1,"wait_time":30,"result":[]}"#), (200, r#"{"ok":1,"result":null}"#)]
        {
            assert!(matches!(classify("dlp", "i", &response(status, &[], body)), Ok(Reply::Empty { .. })), "{body}");
        }
        assert!(matches!(
            parse_page("dlp", br#"{"ok":1,"wait_time":"30","result":[]}"#),
            Ok(Reply::Empty { wait_time: 30 })
        ));
        assert!(matches!(parse_page("dlp", br#"{"ok":1,"wait_time":0.2}"#), Ok(Reply::Empty { wait_time: 1 })));
    }

    #[test]
    fn not_ok_is_a_vendor_error() {
        for body in [r#"{"ok":0,"message":"index busy"}"#, r#"{"result":[]}"#, "<html>", "[1]"] {
            let e = classify("dlp", "i", &response(200, &[], body)).unwrap_err();
            assert!(matches!(&e, Error::Vendor(m) if m.contains("`dlp`")), "{body}: {e}");
        }
    }

    #[test]
    fn error_statuses() {
        let e =
            classify("dlp", "i", &response(403, &[], r#"{"message":"Invalid token or missing scope"}"#)).unwrap_err();
        assert!(
            matches!(&e, Error::Auth(m) if m.contains("Invalid token or missing scope") && m.contains("/api/v2/events/dataexport/alerts/dlp")),
            "{e}"
        );
        let e = classify("content", "i", &response(404, &[], r#"{"message":"This dataexporter does not exist"}"#))
            .unwrap_err();
        assert!(
            matches!(&e, Error::NotFound(m) if m.contains("`content`") && m.contains("This dataexporter does not exist")),
            "{e}"
        );
        let e = classify("dlp", "idx", &response(409, &[], "Conflict")).unwrap_err();
        assert!(matches!(&e, Error::Vendor(m) if m.contains("`idx`") && m.contains("concurrent")), "{e}");
        let e = classify("dlp", "i", &response(500, &[], "  oops\n")).unwrap_err();
        assert!(matches!(&e, Error::Vendor(m) if m.ends_with("HTTP 500: oops")), "{e}");
    }

    #[test]
    fn rate_limit_headers() {
        let r = response(429, &[("Retry-After", "7"), ("ratelimit-reset", "9")], "");
        assert!(matches!(classify("dlp", "i", &r), Ok(Reply::RateLimited { retry_after: Some(7) })));
        let r = response(429, &[("ratelimit-reset", "9")], "");
        assert!(matches!(classify("dlp", "i", &r), Ok(Reply::RateLimited { retry_after: Some(9) })));
        assert_eq!(
            rate_limit_pause(&response(200, &[("RateLimit-Remaining", "0"), ("RateLimit-Reset", "3")], "")),
            Some(3)
        );
        assert_eq!(rate_limit_pause(&response(200, &[("ratelimit-remaining", "4")], "")), None);
    }

    #[test]
    fn fingerprint_separates_keys() {
        assert_ne!(fingerprint(["ab", "c"]).ids_hash, fingerprint(["a", "bc"]).ids_hash);
        let f = fingerprint(std::iter::empty());
        assert_eq!((f.count, f.first_id.as_str()), (0, ""));
        assert_ne!(dedup_key("a1"), dedup_key("a2"));
        assert_eq!(dedup_key("a1"), dedup_key("a1"));
    }
}
