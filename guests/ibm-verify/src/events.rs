//! The events feed: `GET /v1.0/events` in ascending `indexed_at` order, each
//! page continuing strictly after the last delivered `(indexed_at, id)`.
//!
//! `indexed_at` (when Verify stored an event), not `time`, so that an event
//! indexed hours late still sorts after the cursor; the `(value, id)` pair
//! (`after_time` + `after_id`) so that equal `indexed_at` values across a
//! page boundary are neither skipped nor repeated. `total_events` is capped
//! by the API and tells nothing about what is left: a short page ends paging.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use siphon_sdk::data::json::{self, Object};
use siphon_sdk::driver::{Ctx, Page, Stream};
use siphon_sdk::http::{Request, Response};
use siphon_sdk::{Error, Record};

use crate::settings::Config;

/// The stream's name in the checkpoint and in messages.
pub const STREAM: &str = "events";

/// The last delivered event's `indexed_at` (epoch ms) and `id`; before the
/// first one, the start of the first-run window and no id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Sent as `from` (and `after_time`).
    pub indexed_at: u64,
    /// Sent as `after_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl Cursor {
    fn of(indexed_at: Option<u64>, id: Option<Cow<str>>) -> Option<Cursor> {
        Some(Cursor { indexed_at: indexed_at?, id: Some(id?.into_owned()) })
    }
}

/// The events feed of one tenant.
pub struct Events {
    url: String,
    /// `all_events=yes`, or `event_type="a","b"`: the API wants each name quoted.
    filter: (&'static str, String),
    size: u64,
}

impl Events {
    /// The feed `cfg` describes.
    pub fn new(cfg: &Config) -> Self {
        let filter = match &cfg.event_types {
            None => ("all_events", "yes".to_string()),
            Some(types) => ("event_type", types.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(",")),
        };
        Self { url: format!("{}/v1.0/events", cfg.base_url), filter, size: cfg.page_size }
    }
}

impl Stream for Events {
    type Cursor = Cursor;

    fn name(&self) -> &str {
        STREAM
    }

    fn request(&self, _cx: &mut Ctx, cursor: &mut Cursor) -> Result<Option<Request>, Error> {
        // Always a lower bound: without `from` the API serves the last 24 h only.
        let from = cursor.indexed_at.to_string();
        let request = Request::get(&self.url)
            .header("accept", "application/json")
            .query(self.filter.0, &self.filter.1)
            .query("range_type", "indexed_at")
            .query("sort_order", "asc")
            .query("size", self.size.to_string())
            .query("from", &from);
        Ok(Some(match &cursor.id {
            Some(id) => request.query("after_time", from).query("after_id", id),
            None => request,
        }))
    }

    fn parse(&self, _cx: &mut Ctx, cursor: &Cursor, response: Response) -> Result<Page<Cursor>, Error> {
        if response.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Page::empty(cursor.clone())); // a 204 (or an empty 200): nothing new
        }
        let body = Object::parse(&response.body)?;
        if body.raw("response")?.is_none() {
            let message = response.vendor_message();
            return Err(Error::Vendor(format!("GET /v1.0/events answered without `response`: {message}")));
        }
        // An empty result may leave the inner objects out.
        let feed = body.raw("response.events")?.map(|raw| Object::parse_str(raw.get())).transpose()?;
        let records = feed.as_ref().map(|f| f.records_or_empty("events")).transpose()?.unwrap_or_default();
        let mut page: Vec<(String, Record)> = Vec::with_capacity(records.len());
        for record in records {
            let key = json::field_str(&record, "id")?.map_or_else(|| record.as_str().to_owned(), Cow::into_owned);
            page.push((key, record));
        }
        let next = match page.last() {
            None => cursor.clone(),
            // `search_after` (its `time` a string) describes the same event:
            // the fallback when the event lacks `indexed_at` or `id`.
            Some((_, last)) => Cursor::of(json::field_u64(last, "indexed_at")?, json::field_str(last, "id")?)
                .or_else(|| {
                    let f = feed.as_ref()?;
                    Cursor::of(f.u64("search_after.time").ok()?, f.str("search_after.id").ok()?)
                })
                .ok_or_else(|| Error::Vendor("the last event of a page has no `indexed_at` and `id`, nor the page a `search_after`: cannot continue after it".into()))?,
        };
        let more = page.len() as u64 >= self.size;
        Ok(Page { records: page, next, more, wait: None, skipped: Vec::new() })
    }

    fn error(&self, response: Response) -> Error {
        let message = response.vendor_message();
        match response.status {
            400 => Error::Config(format!("GET /v1.0/events refused {}: {message}", refused(&message))),
            403 => Error::Auth(format!(
                "GET /v1.0/events: HTTP 403: the API client may not read events; give it the \"Read reports\" \
                 (or \"Manage reports\") permission under Security > API access ({message})"
            )),
            status => match response.error_for_status("GET /v1.0/events") {
                Err(e) => e,
                Ok(_) => Error::Vendor(format!("GET /v1.0/events: unexpected HTTP {status}")),
            },
        }
    }
}

/// The query parameter a 400's message names, and where its value came
/// from. `from` is tried last: it is also an English word.
fn refused(message: &str) -> String {
    const PARAMS: [(&str, &str); 6] = [
        ("size", "setting `page_size`"),
        ("event_type", "setting `event_types`"),
        ("all_events", "setting `event_types`"),
        ("after_time", "the checkpoint; reset it to start over"),
        ("after_id", "the checkpoint; reset it to start over"),
        ("from", "the checkpoint, or setting `lookback_hours` on a first run"),
    ];
    let words: Vec<&str> = message.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).collect();
    match PARAMS.iter().find(|(p, _)| words.contains(p)) {
        Some((param, origin)) => format!("parameter `{param}` (from {origin})"),
        None => "the request (check settings `event_types` and `page_size`)".into(),
    }
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
