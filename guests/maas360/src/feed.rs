//! The five MaaS360 lists as driver streams (vendor-apis.md §1.3–§1.6). Paging ends on a short or
//! empty page or a lower `pageNumber` than asked (compliance events past the end), never on
//! `count`. `devices` (by the second-precision `lastReported`) asks each page from the newest
//! second delivered, so devices reporting meanwhile only move back. Newest-first lists *sweep*
//! pages 1, 2, … down to the last sweep's mark (admin audits: a pinned, inclusive window from
//! [`OVERLAP_MS`] before it); a sweep takes only records older than its oldest yet, as new events push pages down.

use std::fmt::Display;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use siphon_sdk::data::hash::{RecordKey, Watermark};
use siphon_sdk::data::json::{Object, field_str, field_time, records_of};
use siphon_sdk::data::time::parse_naive_utc;
use siphon_sdk::driver::{Ctx, Page, Stream};
use siphon_sdk::http::{Request, Response, excerpt};
use siphon_sdk::{Error, Record};

/// One MaaS360 list: its stream name (setting, checkpoint), `_maas360_record_type`, path, …
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub(crate) name: &'static str,
    pub(crate) record_type: &'static str,
    path: &'static str,
    list: (&'static str, &'static str),
    /// The first readable of these fields is the time; these fields (or the content) the key.
    time: &'static [&'static str],
    key: &'static [&'static str],
    order: Order,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Ascending,
    NewestFirst,
    Window,
}

/// Every stream the collector knows.
#[rustfmt::skip]
pub const KINDS: [Kind; 5] = [
    Kind { name: "devices", record_type: "device", order: Order::Ascending,
        path: "/device-apis/devices/2.0/search/customer/", list: ("devices", "device"),
        time: &["lastReportedInEpochms"], key: &["maas360DeviceID", "lastReportedInEpochms"] },
    // Parameters and fields are not public (§1.8): the seed's names, then anything time-like.
    Kind { name: "action_history", record_type: "action_history", order: Order::NewestFirst,
        path: "/device-apis/devices/1.0/searchActionHistory/", list: ("actionHistory", "action"),
        time: &["actionTime", "actionDate", "actionTimeInEpochms", "actionExecutionTime", "timestamp"],
        key: &["actionID"] },
    Kind { name: "admin_changes", record_type: "admin_change", order: Order::Window,
        path: "/account-provisioning/administrator/1.0/getAdminChangesAudit/customer/",
        list: ("adminChanges", "adminChange"), time: &["updateDate"],
        key: &["updateDate", "performedBy", "administrator.username", "operationType"] },
    Kind { name: "admin_logins", record_type: "admin_login", order: Order::Window,
        path: "/account-provisioning/administrator/1.0/getAdminLoginReports/customer/",
        list: ("loginEvents", "loginEvent"), time: &["loginAttemptTime"],
        key: &["username", "loginAttemptTime", "ipAddress"] },
    Kind { name: "compliance_events", record_type: "compliance_event", order: Order::NewestFirst,
        path: "/device-apis/devices/1.0/searchComplianceEvents/", list: ("complianceEvents", "complianceEvent"),
        time: &["actionExecutionTime"], key: &[] },
];

/// Admin audits ask again this far before their mark: late writes (§1.5), dropped by `seen`.
pub const OVERLAP_MS: u64 = 5 * 60_000;

/// A stream's place, committed after every page. It never holds a token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Cursor {
    /// Delivered up to here (or older than the first run's look-back); pinned by the first request.
    pub mark: Option<Watermark>,
    /// The next page; 0 between sweeps.
    pub page: u32,
    /// The sweep's pinned `toDate` (admin audits).
    pub to: Option<u64>,
    /// The newest record delivered in the sweep so far.
    pub top: Option<Watermark>,
    /// The oldest record delivered in the sweep so far, on reversed positions (`!ms`).
    pub low: Option<Watermark>,
    /// Admin audits: records delivered within [`OVERLAP_MS`] of the (next) mark.
    pub seen: Vec<(u64, RecordKey)>,
}

/// One configured list of one account: the web-services host, billing id, records per page,
/// and the first run's look-back (ms).
#[derive(Debug, Clone)]
pub struct Feed {
    pub(crate) kind: Kind,
    pub(crate) base_url: String,
    pub(crate) billing_id: String,
    pub(crate) page_size: u32,
    pub(crate) lookback_ms: u64,
}

impl Stream for Feed {
    type Cursor = Cursor;

    fn name(&self) -> &str {
        self.kind.name
    }

    fn request(&self, cx: &mut Ctx, c: &mut Cursor) -> Result<Option<Request>, Error> {
        let now = cx.now_ms();
        let overlap = if self.kind.order == Order::Window { OVERLAP_MS } else { 0 };
        let mark = c.mark.get_or_insert(Watermark::new(now.saturating_sub(self.lookback_ms) + overlap)).at;
        let from = mark.saturating_sub(overlap);
        if c.page == 0 {
            *c = Cursor { page: 1, to: (overlap > 0).then_some(now.max(mark)), ..c.clone() };
        }
        let r = Request::get(format!("{}{}{}", self.base_url, self.kind.path, self.billing_id))
            .header("accept", "application/json")
            .query("pageSize", self.page_size.to_string())
            .query("pageNumber", c.page.to_string());
        Ok(Some(match (self.kind.order, c.to) {
            // `- 1`: whether the filter includes its value is undocumented; keys drop repeats.
            (Order::Ascending, _) => r
                .query("lastReportedAfterInEpochms", mark.saturating_sub(1).to_string())
                .query("sortAttribute", "lastReported")
                .query("sortOrder", "asc"),
            (_, Some(to)) => r.query("fromDate", from.to_string()).query("toDate", to.to_string()),
            _ => r,
        }))
    }

    fn parse(&self, _cx: &mut Ctx, cursor: &Cursor, response: Response) -> Result<Page<Cursor>, Error> {
        let (items, past_end) = self.items(&response, cursor.page)?;
        let ascending = self.kind.order == Order::Ascending;
        let (mut next, mut page, mut reached) = (cursor.clone(), Page::empty(Cursor::default()), false);
        for record in &items {
            let (pos, key) = (self.position(record)?, self.key(record));
            let Some(new) = (if ascending { Some(next.ascending(pos, key)) } else { next.newest_first(pos, key) })
            else {
                reached = true;
                break;
            };
            if new {
                let tag = format!("\"{}\"", self.kind.record_type);
                page.records.push((key.to_string(), record.with_first_field("_maas360_record_type", &tag)?));
            }
        }
        if !past_end && !reached && items.len() >= self.page_size as usize {
            // Devices ask from the new mark; a full page of one second that taught us nothing
            // goes on with that second's next page.
            let at = |c: &Cursor| c.mark.as_ref().map(|m| m.at);
            next.page = if ascending && at(&next) != at(cursor) { 1 } else { cursor.page + 1 };
            page.more = true;
        } else {
            // A sweep that delivered looks again from the top: newer events waited meanwhile.
            page.more = next.top.is_some();
            next.end_sweep();
        }
        page.next = next;
        Ok(page)
    }
}

impl Cursor {
    /// Devices: new when past the mark, which then follows it.
    fn ascending(&mut self, pos: u64, key: RecordKey) -> bool {
        let mark = self.mark.get_or_insert_default();
        let new = mark.admits(pos, &key);
        mark.advance(pos, key);
        new
    }

    /// Newest-first lists: `None` before the mark (admin audits: its overlap), the sweep is done; else
    /// whether it is new: past the mark (or in the overlap), not `seen`, within `toDate`, and older than
    /// every record this sweep delivered (`low`, on reversed positions): new and late records push pages down.
    fn newest_first(&mut self, pos: u64, key: RecordKey) -> Option<bool> {
        let (mark, overlap) = (self.mark.get_or_insert_default(), if self.to.is_some() { OVERLAP_MS } else { 0 });
        if pos < mark.at.saturating_sub(overlap) {
            return None;
        }
        let low = self.low.get_or_insert(Watermark::new(0));
        let out = self.to.is_some_and(|to| pos > to) || !low.admits(!pos, &key);
        if !(pos < mark.at || mark.admits(pos, &key)) || out || self.seen.contains(&(pos, key)) {
            return Some(false);
        }
        low.advance(!pos, key);
        self.top.get_or_insert_default().advance(pos, key);
        self.seen.extend(self.to.filter(|to| pos.saturating_add(OVERLAP_MS) >= *to).map(|_| (pos, key)));
        Some(true)
    }

    /// After a sweep its `toDate` (admin audits) or its newest record becomes the mark.
    fn end_sweep(&mut self) {
        let mark = self.mark.get_or_insert_default();
        mark.advance_to(self.to.unwrap_or(0));
        if let Some(top) = self.top.take() {
            top.keys.into_iter().for_each(|key| mark.advance(top.at, key));
        }
        self.seen.retain(|(pos, _)| pos.saturating_add(OVERLAP_MS) >= mark.at);
        (self.page, self.to, self.low) = (0, None, None);
    }
}

impl Feed {
    /// A page's records (one object where an array was expected, a missing list on an empty
    /// page) and whether MaaS360 answered a lower page than `asked` (asked past the end).
    fn items(&self, response: &Response, asked: u32) -> Result<(Vec<Record>, bool), Error> {
        let bad = |e: &dyn Display| self.vendor(format!("unexpected answer ({e}): {}", excerpt(&response.body, 160)));
        let body = Object::parse(&response.body).map_err(|e| bad(&e))?;
        let (plural, singular) = self.kind.list;
        let Some(envelope) = body.raw(plural)?.or_else(|| only(&body, b"{")) else {
            return match body.str("errorDesc")?.or(body.str("errorCode")?) {
                Some(why) => Err(self.vendor(format!("MaaS360 answered an error: {why}"))),
                None => Ok((Vec::new(), false)),
            };
        };
        let envelope = Object::parse_str(envelope.get()).map_err(|e| bad(&e))?;
        if envelope.u64("pageNumber")?.is_some_and(|n| n < u64::from(asked)) {
            return Ok((Vec::new(), true));
        }
        let list = envelope.raw(singular)?.or_else(|| only(&envelope, b"[{"));
        Ok((list.map(records_of).transpose().map_err(|e| bad(&e))?.unwrap_or_default(), false))
    }

    /// The record's time, epoch ms (devices: its second); one without an offset is UTC.
    fn position(&self, record: &Record) -> Result<u64, Error> {
        let guessed = if self.kind.name == "action_history" { time_like(record) } else { Vec::new() };
        let fields = self.kind.time.iter().map(|f| f.to_string()).chain(guessed);
        let naive = |f: &str| parse_naive_utc(&field_str(record, f).ok()??).ok();
        let found = fields.into_iter().find_map(|f| field_time(record, &f).ok().flatten().or_else(|| naive(&f)));
        let text = excerpt(record.as_str().as_bytes(), 200);
        let ms = found.ok_or_else(|| self.vendor(format!("no readable {} in {text}", self.kind.time.join(" or "))))?;
        Ok(if self.kind.order == Order::Ascending { ms / 1_000 * 1_000 } else { ms })
    }

    /// The key fields as text (a number and the same number as a string alike, ids above 2^53
    /// exact), or the record's content when it has none of them.
    fn key(&self, record: &Record) -> RecordKey {
        let part = |f: &&str| field_str(record, f).ok().flatten().unwrap_or_default().into_owned();
        let parts: Vec<String> = self.kind.key.iter().map(part).collect();
        if parts.iter().all(String::is_empty) {
            return RecordKey::of_content(record);
        }
        RecordKey::of_parts(&parts.iter().map(String::as_str).collect::<Vec<_>>())
    }

    fn vendor(&self, message: String) -> Error {
        Error::Vendor(format!("stream `{}`: {message}", self.kind.name))
    }
}

/// The one field of `object` whose value starts with one of `kinds` (list names are not public).
fn only<'a>(object: &Object<'a>, kinds: &[u8]) -> Option<&'a RawValue> {
    let mut found =
        object.fields().map(|(_, v)| v).filter(|v| v.get().bytes().next().is_some_and(|b| kinds.contains(&b)));
    found.next().filter(|_| found.next().is_none())
}

/// Top-level field names that say time or date, those naming an action first.
fn time_like(record: &Record) -> Vec<String> {
    let Ok(object) = Object::parse_str(record.as_str()) else { return Vec::new() };
    let mut names: Vec<String> = object.fields().map(|(k, _)| k.to_string()).collect();
    names.retain(|k| ["time", "date", "epochms"].iter().any(|w| k.to_ascii_lowercase().contains(w)));
    names.sort_by_key(|k| !k.to_ascii_lowercase().contains("action"));
    names
}
