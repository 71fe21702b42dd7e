//! One alert type's dataexport iterator as a driver stream: the operation to
//! ask for, the request, and the response envelope with its quirks (`ok` as
//! 1 or true, `wait_time` as a number or string, 204 or an empty body for no
//! data, `_id` as a string or number).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use siphon_sdk::data::json::{field_u64, lenient_f64, lenient_u64, read_page};
use siphon_sdk::driver::{Attempt, Ctx, Page, Stream};
use siphon_sdk::http::{Request, Response, excerpt};
use siphon_sdk::{Error, Record};

/// Sent with every request, so Netskope's logs show who is reading.
pub const USER_AGENT: &str = concat!("siphon-netskope-alerts/", env!("CARGO_PKG_VERSION"));

/// One alert type of one tenant and index.
#[derive(Debug, Clone)]
pub struct AlertType {
    /// `https://<tenant>.goskope.com`.
    pub base_url: String,
    /// The iterator bookmark's name.
    pub index: String,
    /// The alert type, e.g. `dlp`.
    pub name: String,
    /// How far back a first run starts, seconds.
    pub lookback_s: u64,
    /// Records in a full page.
    pub full_page: usize,
}

/// Where an alert type stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The epoch (seconds) the iterator is (re)started from while it has no
    /// bookmark under this index; pinned before the first request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<u64>,
    /// The index has a bookmark for this type: continue with `next`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub started: bool,
    /// Newest alert timestamp delivered (epoch seconds): where a renamed
    /// index starts again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ts: Option<u64>,
}

impl AlertType {
    /// The dataexport path of this type.
    pub fn path(&self) -> String {
        format!("/api/v2/events/dataexport/alerts/{}", self.name)
    }

    /// The `operation` for this attempt: an epoch until the iterator has a
    /// bookmark (repeating it is harmless), then `next`, or `resend` after a
    /// request that may have consumed a page.
    pub fn operation(&self, position: &mut Position, now_ms: u64, attempt: Attempt) -> String {
        if !position.started {
            let start = *position.start.get_or_insert((now_ms / 1_000).saturating_sub(self.lookback_s));
            return start.to_string();
        }
        match attempt {
            Attempt::Fresh => "next".into(),
            Attempt::Resend => "resend".into(),
        }
    }
}

impl Stream for AlertType {
    type Cursor = Position;

    fn name(&self) -> &str {
        &self.name
    }

    fn consume_once(&self) -> bool {
        true
    }

    fn request(&self, cx: &mut Ctx, position: &mut Position) -> Result<Option<Request>, Error> {
        let op = self.operation(position, cx.now_ms(), cx.attempt);
        Ok(Some(
            Request::get(format!("{}{}", self.base_url, self.path()))
                .query("index", self.index.as_str())
                .query("operation", op)
                .header("Accept", "application/json")
                .header("User-Agent", USER_AGENT),
        ))
    }

    fn parse(&self, _cx: &mut Ctx, position: &Position, response: Response) -> Result<Page<Position>, Error> {
        let mut next = Position { start: None, started: true, last_ts: position.last_ts };
        if response.status == 204 || response.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Page::empty(next));
        }
        // One pass over the page: split and `_id`/`timestamp` together.
        let body = read_page(&response.body, "result", ["_id", "timestamp"]).map_err(|e| {
            self.vendor(&format!(
                "the response is not the expected JSON ({}); body starts: {}",
                e.message(),
                excerpt(&response.body, 200)
            ))
        })?;
        let ok = body.object.raw("ok").ok().flatten().map(RawValue::get);
        if !matches!(ok, Some("1" | "true")) {
            let why = body
                .object
                .str("message")
                .ok()
                .flatten()
                .map_or_else(|| excerpt(&response.body, 200), |m| excerpt(m.as_bytes(), 300));
            return Err(self.vendor(&format!("Netskope answered ok={} ({why})", ok.unwrap_or("<missing>"))));
        }
        let wait =
            body.object.raw("wait_time").ok().flatten().and_then(|w| lenient_f64(w.get().trim_matches('"')).ok());
        let items = body.records.unwrap_or_default();
        let mut page = Page::empty(next.clone());
        page.wait = wait.filter(|w| *w > 0.0).map(|w| Duration::from_secs(w.ceil() as u64));
        page.more = items.len() >= self.full_page;
        page.records.reserve(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let scanned = match item {
                Ok(s) => s,
                Err(e) => {
                    page.skipped.push(format!("result[{i}]: {}", e.0));
                    continue;
                }
            };
            let [id, ts] = scanned.fields;
            // Escapes in a timestamp are decoded the serde way (never seen).
            let ts = ts.and_then(|t| {
                if t.bytes().any(|b| b == b'\\') {
                    field_u64(t.as_ref(), "").ok().flatten()
                } else {
                    lenient_u64(t.trim_matches('"')).ok()
                }
            });
            if let Some(ts) = ts {
                next.last_ts = Some(next.last_ts.map_or(ts, |m| m.max(ts)));
            }
            page.records.push((key(id.as_deref(), &scanned.record), scanned.record));
        }
        page.next = next;
        Ok(page)
    }

    fn error(&self, response: Response) -> Error {
        let (status, what) = (response.status, response.vendor_message());
        match status {
            401 | 403 => Error::Auth(format!(
                "Netskope refused the API token for alert type `{}` (HTTP {status}: {what}); the token lacks read \
                 scope on {} or has expired",
                self.name,
                self.path()
            )),
            404 => Error::NotFound(format!(
                "alert type `{}` is not available on this tenant ({what}); remove it from `alert_types`",
                self.name
            )),
            409 => self.vendor(&format!(
                "conflict on index `{}` (HTTP 409: {what}): the index is probably in use by another consumer; \
                 give each deployment its own `index`",
                self.index
            )),
            _ => self.vendor(&format!("Netskope answered HTTP {status}: {what}")),
        }
    }
}

impl AlertType {
    fn vendor(&self, message: &str) -> Error {
        Error::Vendor(format!("alert type `{}`: {message}", self.name))
    }
}

/// The dedup and fingerprint key: `_id` (its raw JSON) as text, or a content
/// hash for the rare record without one.
fn key(id: Option<&str>, record: &Record) -> String {
    match id {
        // A byte loop: `contains` calls memchr, which costs more on a short id (2 % of a run).
        Some(raw) if raw.starts_with('"') && !raw.bytes().any(|b| b == b'\\') => raw[1..raw.len() - 1].to_string(),
        Some(raw) if raw.starts_with('"') => serde_json::from_str::<String>(raw).unwrap_or_else(|_| raw.to_string()),
        Some(raw) => raw.to_string(),
        None => format!("#{}", siphon_sdk::data::hash::RecordKey::of_content(record)),
    }
}
