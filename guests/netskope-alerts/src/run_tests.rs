//! The collector against a simulated dataexport iterator, natively, with
//! crashes injected between every pair of steps (`siphon_sdk::testing`).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use siphon_sdk::http::{Request, Response};
use siphon_sdk::testing::{Crash, FakeIo, START_MS, Server, crash_everywhere, response};

use super::*;
use crate::stream::Position;

const NOW_S: u64 = START_MS / 1_000;

/// The iterator of one tenant: records per type, a bookmark per (type, index).
struct Tenant {
    records: BTreeMap<String, Vec<(String, u64)>>,
    page_size: usize,
    wait_time: u64,
    /// (position after the last page, range of the last page) per type and index.
    bookmarks: BTreeMap<(String, String), (usize, std::ops::Range<usize>)>,
    /// Replies served instead of data, in order.
    faults: VecDeque<Response>,
    /// Extra headers on every data reply.
    headers: Vec<(&'static str, &'static str)>,
}

impl Tenant {
    fn new(types: &[(&str, usize)], page_size: usize) -> Self {
        let mut records = BTreeMap::new();
        let mut serial = 0u64;
        for (t, n) in types {
            let list = (0..*n as u64)
                .map(|i| {
                    serial += 1;
                    (format!("{t}-{serial:04}"), NOW_S - 3_600 + i)
                })
                .collect();
            records.insert(t.to_string(), list);
        }
        Self { records, page_size, wait_time: 0, bookmarks: BTreeMap::new(), faults: VecDeque::new(), headers: vec![] }
    }

    fn json(id: &str, ts: u64) -> String {
        format!(r#"{{"_id":"{id}","timestamp":{ts},"dlp_incident_id":4871139218723649281,"user":"jörg"}}"#)
    }

    fn all_json(&self) -> Vec<String> {
        self.records.values().flatten().map(|(id, ts)| Self::json(id, *ts)).collect()
    }
}

impl Server for Tenant {
    fn handle(&mut self, request: &Request) -> Response {
        if let Some(fault) = self.faults.pop_front() {
            return fault;
        }
        let path = request.path();
        let alert_type = path.rsplit('/').next().unwrap_or_default().to_string();
        let Some(list) = self.records.get(&alert_type) else {
            return response(404, &[], r#"{"message":"This dataexporter does not exist"}"#);
        };
        let key = (alert_type, request.query_value("index").unwrap_or_default());
        let op = request.query_value("operation").unwrap_or_default();
        let page = |start: usize| start..(start + self.page_size).min(list.len());
        let range = match op.as_str() {
            "resend" => self.bookmarks.get(&key).map_or(0..0, |b| b.1.clone()),
            "next" => page(self.bookmarks.get(&key).map_or(0, |b| b.0)),
            epoch => page(list.partition_point(|(_, ts)| *ts < epoch.parse().unwrap_or(0))),
        };
        if op != "resend" {
            self.bookmarks.insert(key, (range.end, range.clone()));
        }
        let result: Vec<String> = list[range].iter().map(|(id, ts)| Self::json(id, *ts)).collect();
        // Pretty-ish spacing, so compaction is exercised.
        let body = format!(r#"{{"ok": 1, "wait_time": {}, "result": [ {} ]}}"#, self.wait_time, result.join(",\n "));
        response(200, &self.headers, &body)
    }
}

fn fake(types: &[(&str, usize)], page_size: usize, settings: &[(&str, &str)]) -> FakeIo<Tenant> {
    let names: Vec<&str> = types.iter().map(|t| t.0).collect();
    let mut io = FakeIo::new(Tenant::new(types, page_size))
        .setting("base_url", "https://acme.goskope.com")
        .setting("alert_types", &names.join(","))
        .setting("full_page", &page_size.to_string())
        .secret("api_token", "tok-123");
    for (k, v) in settings {
        io.settings.insert(k.to_string(), v.to_string());
    }
    io
}

fn go(io: &mut FakeIo<Tenant>) -> Result<Summary, Error> {
    run(io)
}

fn ops(io: &FakeIo<Tenant>) -> Vec<String> {
    io.requests.iter().map(|s| s.request.query_value("operation").unwrap_or_default()).collect()
}

fn position(io: &FakeIo<Tenant>, t: &str) -> Position {
    checkpoint::load(io.committed.as_deref(), "siphon-test").unwrap().cursor(t).unwrap()
}

#[test]
fn first_run_starts_at_lookback_and_pages_until_a_short_page() {
    let mut io = fake(&[("dlp", 25), ("malware", 0)], 10, &[]);
    let summary = io.run(go).unwrap();
    let start = (NOW_S - 86_400).to_string();
    assert_eq!(ops(&io), [start.as_str(), "next", "next", start.as_str()]);
    assert_eq!(io.delivered, io.server.all_json(), "byte-exact, in order, once");
    assert_eq!(summary.pages, 3);
    assert!(summary.caught_up);
    assert_eq!(summary.note.as_deref(), Some("dlp: 3 pages, 25 records, caught up; malware: caught up"));
    let first = &io.requests[0].request;
    assert_eq!(first.header_value("netskope-api-token"), Some("tok-123"));
    assert_eq!(first.header_value("siphon-retry"), Some("rate-limited-only"), "consume-once: no blind host retries");
    assert_eq!(first.query_value("index").as_deref(), Some("siphon-test"));

    // The next run continues with `next` on both types.
    io.run(go).unwrap();
    assert_eq!(ops(&io)[4..], ["next", "next"]);
    assert_eq!(position(&io, "dlp").last_ts, Some(NOW_S - 3_600 + 24));
}

#[test]
fn every_fetch_is_preceded_by_a_commit_of_its_in_flight_marker() {
    let mut io = fake(&[("dlp", 35)], 10, &[]);
    io.run(go).unwrap();
    for sent in &io.requests {
        let c = checkpoint::load(sent.committed.as_deref(), "siphon-test").unwrap();
        assert!(c.streams["dlp"].inflight, "{:?}", sent.committed);
    }
}

#[test]
fn a_crash_at_any_step_loses_and_repeats_nothing() {
    let tried = crash_everywhere(
        || fake(&[("dlp", 35), ("uba", 12)], 10, &[]),
        go,
        |io, crash| assert_eq!(io.delivered, io.server.all_json(), "{crash:?}"),
    );
    assert_eq!(tried, 12 + 2 * 6, "12 commits and 6 requests in a clean run");
}

#[test]
fn a_lost_next_is_resent_and_its_replayed_page_is_recognised() {
    let mut io = fake(&[("dlp", 25)], 10, &[]);
    io.crash_next_run(Crash::BeforeServer(2));
    assert!(io.run(go).is_err());
    let summary = io.run(go).unwrap();
    assert_eq!(ops(&io)[2..], ["resend", "next", "next"]);
    assert_eq!(io.delivered, io.server.all_json());
    assert_eq!(summary.duplicates, 0);
    assert!(summary.note.unwrap().contains("10 already-delivered records skipped after a resend"));
}

#[test]
fn wait_time_paces_pages_within_the_cap_and_across_runs() {
    let mut io = fake(&[("dlp", 25)], 10, &[]);
    io.server.wait_time = 5;
    io.run(go).unwrap();
    assert_eq!(io.sleeps, [Duration::from_secs(5); 2]);
    assert_eq!(io.sent(), 3);
    io.run(go).unwrap();
    assert_eq!(io.sleeps.len(), 3, "the last page asked for 5 s, honoured by the next run");
}

#[test]
fn a_wait_beyond_the_cap_ends_the_type_until_a_later_run() {
    let mut io = fake(&[("dlp", 25)], 10, &[]);
    io.server.wait_time = 120;
    let summary = io.run(go).unwrap();
    assert_eq!(io.sent(), 1);
    assert!(io.sleeps.is_empty());
    assert!(summary.caught_up);
    assert!(summary.note.unwrap().ends_with("waiting 120s (vendor wait hint)"));
    io.now_ms += 59_000;
    io.run(go).unwrap();
    assert_eq!(io.sent(), 1, "still inside wait_time: no call");
    io.now_ms += 61_000;
    io.run(go).unwrap();
    assert_eq!(ops(&io)[1], "next");
}

#[test]
fn http_429_is_retried_with_retry_after_and_a_long_one_waits_for_the_next_run() {
    let mut io = fake(&[("dlp", 5)], 10, &[]);
    let too_many = response(429, &[("Retry-After", "2")], "");
    io.server.faults.extend([too_many.clone(), too_many]);
    io.run(go).unwrap();
    assert_eq!(io.sleeps, [Duration::from_secs(2); 2]);
    assert_eq!(io.delivered.len(), 5);

    let mut io = fake(&[("dlp", 5)], 10, &[]);
    io.server.faults.push_back(response(429, &[("Retry-After", "900")], ""));
    let summary = io.run(go).unwrap();
    assert!(io.sleeps.is_empty(), "a 900 s wait is not slept inside a 60 s budget");
    assert_eq!(summary.note.as_deref(), Some("dlp: rate limited, next call in 900s"));
    assert!(!io.committed.as_deref().unwrap().contains(r#""inflight":true"#), "a 429 consumed nothing");
}

#[test]
fn an_exhausted_rate_limit_window_pauses_the_next_call() {
    let mut io = fake(&[("dlp", 15)], 10, &[]);
    io.server.headers = vec![("ratelimit-remaining", "0"), ("ratelimit-reset", "3")];
    io.run(go).unwrap();
    assert_eq!(io.sent(), 2);
    assert_eq!(io.sleeps, [Duration::from_secs(3)], "no pause before the first call, the reset before the second");
}

#[test]
fn a_refused_type_keeps_its_cursor_and_the_others_go_on() {
    let mut io = fake(&[("dlp", 5), ("uba", 5), ("malware", 2)], 10, &[]);
    io.server.faults.extend([
        response(200, &[], r#"{"ok":1,"result":[{"_id":"x","timestamp":1}]}"#),
        response(403, &[], r#"{"message":"Invalid token or missing scope"}"#),
    ]);
    let e = io.run(go).unwrap_err();
    assert!(matches!(&e, Error::Auth(m) if m.contains("`uba`") && m.contains("missing scope")), "{e}");
    assert!(e.message().contains("malware: 1 page, 2 records"), "{e}");
    assert_eq!(io.delivered[0], r#"{"_id":"x","timestamp":1}"#);
    let c = checkpoint::load(io.committed.as_deref(), "siphon-test").unwrap();
    assert!(!c.streams.contains_key("uba"), "the refused type's marker is taken back: {:?}", c.streams.keys());
    assert!(!c.streams["dlp"].inflight);
}

#[test]
fn a_bogus_type_never_stops_the_types_after_it() {
    let mut io = fake(&[("dlp", 3), ("malware", 4)], 10, &[("alert_types", "dlp,bogus,malware")]);
    let e = io.run(go).unwrap_err();
    assert_eq!(e.kind(), "not-found");
    assert!(e.message().contains("alert type `bogus` is not available on this tenant"), "{e}");
    assert_eq!(io.delivered, io.server.all_json());
}

#[test]
fn a_server_error_is_answered_by_a_resend_in_the_same_run() {
    let mut io = fake(&[("dlp", 15)], 10, &[]);
    io.run(go).unwrap();
    io.server.records.get_mut("dlp").unwrap().push(("dlp-late".into(), NOW_S));
    io.server.faults.push_back(response(504, &[], "Gateway Timeout"));
    io.run(go).unwrap();
    assert_eq!(ops(&io)[2..], ["next", "resend", "next"]);
    assert_eq!(io.delivered, io.server.all_json());
}

#[test]
fn duplicates_within_a_run_are_dropped() {
    let mut io = fake(&[("dlp", 0)], 2, &[]);
    let page = |ids: &[&str]| {
        let result: Vec<String> = ids.iter().map(|id| format!(r#"{{"_id":"{id}"}}"#)).collect();
        response(200, &[], &format!(r#"{{"ok":1,"result":[{}]}}"#, result.join(",")))
    };
    io.server.faults.extend([page(&["a", "b"]), page(&["b", "c"])]);
    let summary = io.run(go).unwrap();
    assert_eq!(summary.duplicates, 1);
    assert_eq!(io.delivered, [r#"{"_id":"a"}"#, r#"{"_id":"b"}"#, r#"{"_id":"c"}"#]);
}

#[test]
fn no_content_and_page_limit() {
    let mut io = fake(&[("dlp", 100)], 10, &[("max_pages_per_run", "3")]);
    io.server.faults.push_back(response(204, &[], ""));
    let summary = io.run(go).unwrap();
    assert!(summary.caught_up);
    assert!(io.delivered.is_empty());
    let summary = io.run(go).unwrap();
    assert_eq!(summary.pages, 3);
    assert!(!summary.caught_up);
    assert_eq!(summary.note.as_deref(), Some("dlp: 3 pages, 30 records, page limit reached, more waiting"));
}

#[test]
fn a_renamed_index_reseeds_from_the_last_delivered_second() {
    let mut io = fake(&[("dlp", 15)], 10, &[("index", "siphon-test")]);
    io.run(go).unwrap();
    let last_ts = position(&io, "dlp").last_ts.unwrap();
    io.settings.insert("index".into(), "renamed".into());
    io.run(go).unwrap();
    assert_eq!(io.requests.last().unwrap().request.query_value("operation"), Some(last_ts.to_string()));
    assert_eq!(io.requests.last().unwrap().request.query_value("index").as_deref(), Some("renamed"));
}

#[test]
fn envelope_quirks() {
    let bodies = [
        (r#"{"ok":true,"wait_time":"3","result":[{"_id":7,"timestamp":"9"}]}"#, Some(("7", 9))),
        (r#"{"ok":1,"wait_time":0.2,"result":null}"#, None),
        (r#"{"ok":1,"result":[{"no_id":1}, null]}"#, Some(("#", 0))),
    ];
    for (body, first) in bodies {
        let mut io = fake(&[("dlp", 0)], 10, &[]);
        io.server.faults.push_back(response(200, &[], body));
        io.run(go).unwrap();
        match first {
            Some(("#", _)) => assert_eq!(io.logged("result[1]: expected a JSON object, found null"), 1),
            Some(_) => assert_eq!(io.delivered, [r#"{"_id":7,"timestamp":"9"}"#]),
            None => assert!(io.delivered.is_empty()),
        }
    }
    for bad in [r#"{"ok":0,"message":"index busy"}"#, r#"{"result":[]}"#, "<html>", "[1]"] {
        let mut io = fake(&[("dlp", 0)], 10, &[]);
        io.server.faults.extend([response(200, &[], bad), response(200, &[], bad), response(200, &[], bad)]);
        let e = io.run(go).unwrap_err();
        assert!(matches!(&e, Error::Vendor(m) if m.contains("alert type `dlp`")), "{bad}: {e}");
    }
}

#[test]
fn settings_are_validated_and_named() {
    let cases: &[(&str, &str, &str)] = &[
        ("base_url", "acme.goskope.com", "base_url"),
        ("alert_types", "dlp,../events", "alert_types"),
        ("alert_types", " , ", "alert_types"),
        ("index", " ", "index"),
        ("max_pages_per_run", "0", "max_pages_per_run"),
        ("full_page", "-1", "full_page"),
        ("lookback_hours", "1.5", "lookback_hours"),
    ];
    for (key, value, named) in cases {
        let mut io = fake(&[("dlp", 1)], 10, &[(key, value)]);
        let e = io.run(go).unwrap_err();
        assert!(matches!(&e, Error::Config(m) if m.contains(&format!("`{named}`"))), "{key}={value}: {e}");
        assert_eq!(io.sent(), 0);
    }
    let mut io = fake(&[("dlp", 1)], 10, &[]);
    io.secrets.clear();
    assert_eq!(io.run(go).unwrap_err(), Error::Config("secret `api_token` is required".into()));
    let info = NetskopeAlerts::info();
    assert_eq!(info.settings.len(), 8);
    for s in &info.settings {
        assert!(!s.description.is_empty());
        assert!(!(s.required && s.default_value.is_some()), "{}", s.name);
    }
}
