//! API 2.0 SIEM batch, `GET /siem/v1/batch/events/cg`, one stream per type (vendor-apis.md §5.2.3):
//! a page lists pre-signed URLs of gzip files (possibly multi-member) of NDJSON, downloaded without
//! credentials inside `parse`, so a page's records and its `@nextPage` are committed together. An
//! expired URL (403/404) asks for the same page again, which signs new URLs.

use serde::{Deserialize, Serialize};
use siphon_sdk::data::{
    compress::gunzip_if_gzip, hash::RecordKey, json::Object, json::field_str, ndjson, time::format_date,
};
use siphon_sdk::{Error, driver::Ctx, driver::Page, driver::Stream, http::Request, http::Response, log::Level};

use crate::envelope;

const PAGE_FILES: &str = "20"; // files per page: a page is held in memory until it is delivered
const FILE_CAP: usize = 128 << 20; // largest decompressed batch file
const MAX_REACH_MS: u64 = 6 * 86_400_000; // dates reach back 7 days: 6 is inside however they round
const REFRESHES: usize = 2; // times a page is asked for again because its URLs expired
const KEPT_KEYS: usize = 256; // keys of the last delivered lines, carried to the next run (§0.2)

/// One Cloud Gateway type's batch stream (`kind`, e.g. `url protect`).
pub struct Batch {
    pub base: String,
    pub kind: &'static str,
    pub lookback_ms: u64,
}

/// The last delivered page's `@nextPage` (before it: the pinned start, epoch ms), the last lines' keys (repeats).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Cursor {
    pub next: Option<String>,
    pub start: Option<u64>,
    pub keys: Vec<String>,
}

impl Batch {
    fn page_request(&self, cursor: &Cursor, now_ms: u64) -> Request {
        let r = Request::get(format!("{}/siem/v1/batch/events/cg", self.base))
            .header("accept", "application/json")
            .query("type", self.kind)
            .query("pageSize", PAGE_FILES);
        match &cursor.next {
            Some(next) => r.query("nextPage", next.as_str()),
            None => r
                .query("dateRangeStartsAt", format_date(cursor.start.unwrap_or(now_ms)))
                .query("dateRangeEndsAt", format_date(now_ms)),
        }
    }

    /// Adds every record of every file of the page to `page`; false when a URL has expired.
    fn download(&self, cx: &mut Ctx, body: &Object, page: &mut Page<Cursor>) -> Result<bool, Error> {
        for file in body.records_or_empty("value")? {
            let Some(url) = field_str(&file, "url")? else { continue };
            // The query is the URL's signature: never in a message.
            let shown = format!("{}: {}", self.kind, url.split('?').next().unwrap_or_default());
            let response = cx.send(Request::get(url.as_ref()).unauthenticated())?;
            if matches!(response.status, 403 | 404) {
                cx.log(Level::Warn, &format!("{shown}: HTTP {}: the URL expired, asking again", response.status));
                return Ok(false);
            }
            let response = response.error_for_status(&shown)?;
            let text = gunzip_if_gzip(&response.body, FILE_CAP).map_err(|e| Error::Vendor(format!("{shown}: {e}")))?;
            for line in ndjson::lines(&text) {
                match line {
                    Ok(record) => page.records.push((RecordKey::of_content(&record).to_string(), record)),
                    Err(e) => page.skipped.push(format!("{shown}: {e}")),
                }
            }
        }
        Ok(true)
    }
}

impl Stream for Batch {
    type Cursor = Cursor;

    fn name(&self) -> &str {
        self.kind
    }

    fn request(&self, cx: &mut Ctx, cursor: &mut Cursor) -> Result<Option<Request>, Error> {
        let now = cx.now_ms();
        if cursor.next.is_none() {
            let start = cursor.start.unwrap_or(now.saturating_sub(self.lookback_ms));
            cursor.start = Some(start.max(now.saturating_sub(MAX_REACH_MS)));
        }
        Ok(Some(self.page_request(cursor, now)))
    }

    fn parse(&self, cx: &mut Ctx, cursor: &Cursor, mut response: Response) -> Result<Page<Cursor>, Error> {
        for refresh in 0..=REFRESHES {
            envelope::check(self.kind, &response)?;
            let body = Object::parse(&response.body)?;
            let mut page = Page::empty(cursor.clone());
            if self.download(cx, &body, &mut page)? {
                let caught_up = body.raw("isCaughtUp")?.is_some_and(|v| v.get().trim_matches('"') == "true");
                let next = body.str("@nextPage")?.filter(|n| !n.is_empty()).map(|n| n.into_owned());
                page.more = next.is_some() && !caught_up;
                page.records.retain(|(key, _)| !cursor.keys.contains(key));
                let mut keys: Vec<_> = cursor.keys.iter().chain(page.records.iter().map(|(k, _)| k)).cloned().collect();
                keys.drain(..keys.len().saturating_sub(KEPT_KEYS));
                let kept = if next.is_some() { Cursor { next, ..Cursor::default() } } else { cursor.clone() };
                page.next = Cursor { keys, ..kept };
                return Ok(page);
            }
            if refresh < REFRESHES {
                response = cx.send(self.page_request(cursor, cx.now_ms()))?;
            }
        }
        Err(Error::Vendor(format!("{}: the page's download URLs kept expiring; the next run asks again", self.kind)))
    }

    fn rate_limited(&self, response: &Response, now_ms: u64) -> Option<std::time::Duration> {
        envelope::rate_limited(response, now_ms)
    }
}
