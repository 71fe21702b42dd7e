//! The audit log query as a driver stream. Entries have no id and many share
//! a millisecond, so the position is the newest delivered timestamp plus the
//! content keys of the entries delivered at exactly that millisecond: a query
//! asks for `[since, now − settle]` (inclusive) and drops only those entries.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use siphon_sdk::Error;
use siphon_sdk::data::hash::RecordKey;
use siphon_sdk::data::json::{Object, field_time};
use siphon_sdk::driver::{Ctx, Page, Stream};
use siphon_sdk::http::{Request, Response, Retry};

/// One organization's audit log on one control plane.
#[derive(Debug, Clone)]
pub struct AuditLog {
    /// `https://anypoint.mulesoft.com` or another control plane.
    pub base_url: String,
    /// The organization (business group) id.
    pub org: String,
    /// How far back a first run starts, ms.
    pub lookback_ms: u64,
    /// Entries per request, 1..=200.
    pub page_size: u64,
    /// Entries newer than now − settle are left for a later run, ms.
    pub settle_ms: u64,
}

/// Where the audit log stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Position {
    /// Newest delivered timestamp (epoch ms), or the first run's start.
    pub since: Option<u64>,
    /// Keys of the entries delivered with timestamp `since`, a copy per entry.
    pub at_since: Vec<RecordKey>,
    /// The query being paged; a new run always starts a new one.
    pub query: Option<Query>,
}

/// A query in progress: its fixed window and MuleSoft's cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Query {
    /// `startDate` (inclusive), epoch ms.
    pub start: u64,
    /// `endDate` (inclusive), epoch ms.
    pub end: u64,
    /// The `cursor` to send, as MuleSoft sent it.
    pub cursor: Option<Value>,
    /// Entries at `start` delivered by an earlier query, not yet seen again.
    pub replay: Vec<RecordKey>,
}

impl AuditLog {
    /// Pins the first run's start and opens a query for `[since, now − settle]`
    /// unless one is open; none when that window is empty.
    pub fn window(&self, position: &mut Position, now_ms: u64) -> Option<Query> {
        if let Some(query) = &position.query {
            return Some(query.clone());
        }
        let end = now_ms.saturating_sub(self.settle_ms);
        let since = *position.since.get_or_insert(now_ms.saturating_sub(self.lookback_ms).min(end));
        let query =
            (since <= end).then(|| Query { start: since, end, cursor: None, replay: position.at_since.clone() });
        position.query.clone_from(&query);
        query
    }

    /// The body of a query request.
    pub fn body(&self, query: &Query) -> Value {
        let mut body = serde_json::json!({
            "startDate": query.start,
            "endDate": query.end,
            "ascending": true,
            "limit": self.page_size,
        });
        if let Some(cursor) = &query.cursor {
            body["cursor"] = cursor.clone();
        }
        body
    }

    /// Reads a page: its entries byte-exact, keyed `<timestamp>:<content key>:<copy>`
    /// (identical entries at one millisecond are told apart by their copy
    /// number), the position after it, and whether MuleSoft has more.
    pub fn read(&self, position: &Position, body: &[u8]) -> Result<Page<Position>, Error> {
        let page = Object::parse(body)?;
        let entries = page.records("data")?;
        let mut next = position.clone();
        let mut query = next.query.take().ok_or_else(|| Error::Host("a page without a query".into()))?;
        let mut records = Vec::with_capacity(entries.len());
        for entry in &entries {
            let since = next.since.unwrap_or(query.start);
            let ts = field_time(entry, "timestamp").ok().flatten().unwrap_or(since); // else: at the boundary
            let key = RecordKey::of_content(entry);
            if ts == query.start && take(&mut query.replay, &key) {
                continue; // delivered by an earlier query
            }
            if ts > query.start {
                query.replay.clear();
            }
            if ts > since {
                next.since = Some(ts);
                next.at_since.clear();
            }
            let copy = next.at_since.iter().filter(|k| **k == key).count();
            if ts >= since {
                next.at_since.push(key);
            }
            records.push((format!("{ts}:{key}:{copy}"), entry.clone()));
        }
        let cursor = page.get::<Value>("cursor")?;
        let more = !entries.is_empty() && cursor.is_some();
        if more {
            query.cursor = cursor;
            next.query = Some(query);
        }
        Ok(Page { records, next, more, wait: None, skipped: Vec::new() })
    }
}

/// Removes one copy of `key` from `keys`; false when there is none.
fn take(keys: &mut Vec<RecordKey>, key: &RecordKey) -> bool {
    keys.iter().position(|k| k == key).map(|i| keys.swap_remove(i)).is_some()
}

/// How long to wait when MuleSoft says the minute quota is used up: 503
/// (HTML, no Retry-After) or 429, until the next minute window plus up to
/// 2.5 s of jitter, unless the answer names its own wait.
pub fn quota_wait(response: &Response, now_ms: u64) -> Option<Duration> {
    if !matches!(response.status, 429 | 503) {
        return None;
    }
    let next_minute = 60_000 - now_ms % 60_000;
    let jitter = 500 + now_ms.wrapping_mul(2_654_435_761) % 2_000;
    Some(response.retry_after(now_ms).unwrap_or(Duration::from_millis(next_minute + jitter)))
}

impl Stream for AuditLog {
    type Cursor = Position;

    fn name(&self) -> &str {
        "audit"
    }

    fn request(&self, cx: &mut Ctx, position: &mut Position) -> Result<Option<Request>, Error> {
        let Some(query) = self.window(position, cx.now_ms()) else { return Ok(None) };
        let request = Request::post(format!("{}/audit/v2/organizations/{}/query", self.base_url, self.org))
            .query("cursorPagination", "true")
            .header("accept", "application/json")
            .json(&self.body(&query))
            // A quota 503 comes back to `rate_limited` instead of being retried at once.
            .retry(Retry::RateLimitedOnly);
        Ok(Some(request))
    }

    fn parse(&self, _: &mut Ctx, position: &Position, response: Response) -> Result<Page<Position>, Error> {
        self.read(position, &response.body)
    }

    fn rate_limited(&self, response: &Response, now_ms: u64) -> Option<Duration> {
        quota_wait(response, now_ms)
    }

    fn error(&self, response: Response) -> Error {
        let what = format!("audit log of organization {}", self.org);
        if response.status == 403 {
            return Error::Auth(format!(
                "{what}: HTTP 403: {}; the Connected App needs the \"View Audit Log\" permission \
                 (Audit Log Viewer) on this business group",
                response.vendor_message()
            ));
        }
        response.error_for_status(&what).err().unwrap_or(Error::Vendor(what))
    }
}
