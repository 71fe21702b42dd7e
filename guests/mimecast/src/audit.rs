//! Audit events, `POST /api/audit/get-audit-events`, alike on both APIs but for the auth: newest first within
//! `[startDateTime, endDateTime]`, paged by `meta.pagination.pageToken` (follow-up pages carry only `meta`; §5.1.5).
//! A window is fixed while it is paged (its end pinned in the cursor); the next one overlaps its last minutes, and the
//! keys delivered there travel on so that the next window drops them (inclusive bounds, late events, clock skew).

use serde::{Deserialize, Serialize};
use serde_json::json;
use siphon_sdk::data::{hash::RecordKey, json::Object, json::field_str, time::format_offset, time::parse_rfc3339};
use siphon_sdk::{Error, driver::Ctx, driver::Page, driver::Stream, http::Request, http::Response};

use crate::envelope;

const PAGE_SIZE: u32 = 100; // events per page
const MAX_REACH_MS: u64 = (60 * 24 - 1) * 3_600_000; // the API reaches back 60 days, less an hour
/// Windows overlap by this much: an event that shows up late (indexing, clock skew) inside the
/// previous window is still found; the previous window's keys of the overlap drop the others.
const OVERLAP_MS: u64 = 5 * 60_000;
const EDGE_CAP: usize = 5_000; // keys kept from an overlap
const RECENT_CAP: usize = 1_000; // keys of the last events a window delivered

/// The audit stream; `lookback_ms`: how far back the first run starts; `run_started_ms`: when
/// this run started (a window pinned before it is an earlier run's).
pub struct Audit {
    pub base: String,
    pub lookback_ms: u64,
    pub run_started_ms: u64,
}

/// Where the audit stream is: the window being paged (`end` pinned on its first request, none
/// between windows), the next page's token, and record keys: those the previous window delivered
/// in the overlap (`seen`), those this one delivered in the next overlap (`edge`), and the last
/// ones it delivered (`recent`: page tokens are offsets, so events arriving inside the window
/// serve again what earlier pages held).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Cursor {
    pub start: Option<u64>,
    pub end: Option<u64>,
    pub page: Option<String>,
    pub seen: Vec<String>,
    pub edge: Vec<String>,
    pub recent: Vec<String>,
}

impl Stream for Audit {
    type Cursor = Cursor;

    fn name(&self) -> &str {
        "audit"
    }

    fn request(&self, cx: &mut Ctx, cursor: &mut Cursor) -> Result<Option<Request>, Error> {
        let mut body = json!({"meta": {"pagination": {"pageSize": PAGE_SIZE}}});
        if let (Some(page), Some(_)) = (&cursor.page, cursor.end) {
            body["meta"]["pagination"]["pageToken"] = page.as_str().into();
        } else {
            let now = cx.now_ms() / 1_000 * 1_000;
            let start = cursor.start.unwrap_or(now.saturating_sub(self.lookback_ms));
            let start = start.max(now.saturating_sub(MAX_REACH_MS)) / 1_000 * 1_000;
            let end = cursor.end.unwrap_or(now);
            if end <= start {
                return Ok(None);
            }
            (cursor.start, cursor.end) = (Some(start), Some(end));
            body["data"] = json!([{"startDateTime": format_offset(start), "endDateTime": format_offset(end)}]);
        }
        let url = format!("{}/api/audit/get-audit-events", self.base);
        Ok(Some(Request::post(url).header("accept", "application/json").json(&body)))
    }

    fn parse(&self, _cx: &mut Ctx, cursor: &Cursor, response: Response) -> Result<Page<Cursor>, Error> {
        envelope::check("audit events", &response)?;
        let body = Object::parse(&response.body)?;
        let events = body.records_or_empty("data")?;
        let token = body.str("meta.pagination.next")?.filter(|t| !t.is_empty()).map(|t| t.into_owned());
        let end = cursor.end.unwrap_or_default();
        let mut next = Cursor { page: token, ..cursor.clone() };
        let (mut page, more) = (Page::empty(Cursor::default()), !events.is_empty() && next.page.is_some());
        for event in events {
            let key =
                field_str(&event, "id")?.map_or(RecordKey::of_content(&event), |id| RecordKey::of_id(&id)).to_string();
            let at = field_str(&event, "eventTime")?.and_then(|t| parse_rfc3339(&t).ok());
            if at.is_some_and(|at| at + OVERLAP_MS >= end) && next.edge.len() < EDGE_CAP && !next.edge.contains(&key) {
                next.edge.push(key.clone());
            }
            if !cursor.seen.contains(&key) && !next.recent.contains(&key) {
                next.recent.push(key.clone());
                page.records.push((key, event));
            }
        }
        next.recent.drain(..next.recent.len().saturating_sub(RECENT_CAP));
        // A finished window an earlier run pinned: go on with what came since. One this run pinned
        // ends the run (another now would mostly read its overlap again).
        page.more = more || end < self.run_started_ms / 1_000 * 1_000;
        page.next = match more {
            true => next,
            false => Cursor { start: Some(end.saturating_sub(OVERLAP_MS)), seen: next.edge, ..Cursor::default() },
        };
        Ok(page)
    }

    fn rate_limited(&self, response: &Response, now_ms: u64) -> Option<std::time::Duration> {
        envelope::rate_limited(response, now_ms)
    }

    fn error(&self, response: Response) -> Error {
        envelope::error("audit events", &response)
    }
}
