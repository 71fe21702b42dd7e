//! The driver against a simulated tenant with an ordinary (time-cursor) feed
//! and consume-once iterators, with crashes injected at every step.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::*;
use crate::auth::NoAuth;
use crate::testing::{Crash, FakeIo, Server, crash_everywhere, json, response};

const BASE: &str = "https://v.example";

/// Records per stream, an offset cursor for `events`, server-side bookmarks
/// for the consume-once `alerts/<t>` iterators, and queued faults.
#[derive(Default)]
struct Tenant {
    records: BTreeMap<String, Vec<(String, u64)>>,
    page: usize,
    /// Per iterator: (position after the last page, range of the last page).
    bookmarks: BTreeMap<String, (usize, std::ops::Range<usize>)>,
    /// Replies served instead of data.
    faults: VecDeque<Response>,
    /// Statuses answered after the iterator moved (a gateway failing late).
    late_failures: VecDeque<u16>,
    wait: u64,
}

impl Tenant {
    fn new(streams: &[(&str, usize)], page: usize) -> Self {
        let mut t = Tenant { page, ..Tenant::default() };
        for (name, n) in streams {
            t.add(name, *n);
        }
        t
    }

    fn add(&mut self, stream: &str, n: usize) {
        let list = self.records.entry(stream.to_string()).or_default();
        for _ in 0..n {
            let i = list.len() as u64;
            list.push((format!("{stream}-{i:04}"), 1_000 + i));
        }
    }

    fn json_of(id: &str, ts: u64) -> String {
        format!(r#"{{"id":"{id}","ts":{ts},"big":18446744073709551616,"u":"j\u00f6rg"}}"#)
    }

    fn all(&self) -> Vec<String> {
        self.records.values().flatten().map(|(id, ts)| Self::json_of(id, *ts)).collect()
    }

    fn body(&self, items: &[(String, u64)]) -> String {
        let items: Vec<String> = items.iter().map(|(id, ts)| Self::json_of(id, *ts)).collect();
        // Spaced out, so compaction is exercised.
        format!("{{\"wait\": {}, \"items\": [ {} ]}}", self.wait, items.join(",\n  "))
    }
}

impl Server for Tenant {
    fn handle(&mut self, request: &Request) -> Response {
        if let Some(fault) = self.faults.pop_front() {
            return fault;
        }
        let path = request.path();
        let name = path.trim_start_matches('/').to_string();
        let Some(list) = self.records.get(&name).cloned() else {
            return json(404, r#"{"message":"no such stream"}"#);
        };
        if name.starts_with("alerts/") {
            let op = request.query_value("op").unwrap_or_default();
            let page = |start: usize| start..(start + self.page).min(list.len());
            let range = match op.as_str() {
                "start" => page(0),
                "next" => page(self.bookmarks.get(&name).map_or(0, |b| b.0)),
                "resend" => self.bookmarks.get(&name).map_or(0..0, |b| b.1.clone()),
                _ => return json(400, r#"{"message":"bad op"}"#),
            };
            if op != "resend" {
                self.bookmarks.insert(name.clone(), (range.end, range.clone()));
            }
            if let Some(status) = self.late_failures.pop_front() {
                return response(status, &[], "<html>Bad Gateway</html>");
            }
            return json(200, &self.body(&list[range]));
        }
        let after: u64 = request.query_value("after").and_then(|a| a.parse().ok()).unwrap_or(0);
        let items: Vec<_> = list.into_iter().filter(|(_, ts)| *ts > after).take(self.page).collect();
        json(200, &self.body(&items))
    }
}

#[derive(Deserialize)]
struct Body<'a> {
    wait: u64,
    #[serde(borrow)]
    items: Vec<&'a RawValue>,
}

/// Records with keys, the newest timestamp and the wait hint of a body.
type Parsed = (Vec<(String, Record)>, u64, u64);

fn records(body: &[u8]) -> Result<Parsed, Error> {
    let b: Body = serde_json::from_slice(body).map_err(|e| Error::Vendor(e.to_string()))?;
    let mut out = Vec::new();
    let mut max_ts = 0;
    for raw in b.items {
        let v: serde_json::Value = serde_json::from_str(raw.get()).map_err(|e| Error::Vendor(e.to_string()))?;
        max_ts = max_ts.max(v["ts"].as_u64().unwrap_or(0));
        out.push((v["id"].as_str().unwrap_or_default().to_string(), Record::from_raw(raw)?));
    }
    Ok((out, max_ts, b.wait))
}

/// An ordinary stream: `after` = the last delivered timestamp.
struct Events {
    page: usize,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct After {
    after: u64,
}

impl Stream for Events {
    type Cursor = After;
    fn name(&self) -> &str {
        "events"
    }
    fn request(&self, _cx: &mut Ctx, c: &mut After) -> Result<Option<Request>, Error> {
        Ok(Some(Request::get(format!("{BASE}/events")).query("after", c.after.to_string())))
    }
    fn parse(&self, _cx: &mut Ctx, c: &After, r: Response) -> Result<Page<After>, Error> {
        let (records, max_ts, wait) = records(&r.body)?;
        let more = records.len() == self.page;
        let wait = (wait > 0).then(|| Duration::from_secs(wait));
        Ok(Page { records, next: After { after: max_ts.max(c.after) }, more, wait, skipped: vec![] })
    }
}

/// A consume-once iterator.
struct Alerts {
    name: String,
    page: usize,
}

#[derive(Default, Serialize, Deserialize)]
struct Started {
    started: bool,
}

impl Stream for Alerts {
    type Cursor = Started;
    fn name(&self) -> &str {
        &self.name
    }
    fn request(&self, cx: &mut Ctx, c: &mut Started) -> Result<Option<Request>, Error> {
        let op = match (c.started, cx.attempt) {
            (false, _) => "start",
            (true, Attempt::Resend) => "resend",
            (true, Attempt::Fresh) => "next",
        };
        Ok(Some(Request::get(format!("{BASE}/{}", self.name)).query("op", op)))
    }
    fn parse(&self, _cx: &mut Ctx, _c: &Started, r: Response) -> Result<Page<Started>, Error> {
        let (records, _, wait) = records(&r.body)?;
        let more = records.len() == self.page;
        let wait = (wait > 0).then(|| Duration::from_secs(wait));
        Ok(Page { records, next: Started { started: true }, more, wait, skipped: vec![] })
    }
    fn consume_once(&self) -> bool {
        true
    }
}

fn alerts(names: &[&str]) -> Vec<Alerts> {
    names.iter().map(|n| Alerts { name: format!("alerts/{n}"), page: 10 }).collect()
}

fn run_alerts(io: &mut FakeIo<Tenant>, names: &[&str], budget: Budget) -> Result<Summary, Error> {
    io.run(|io| {
        let ckpt = Checkpoint::parse(io.checkpoint().as_deref(), 1, |_, _| None)?;
        collect_streams(io, &mut NoAuth, ckpt, budget, &alerts(names))
    })
}

fn run_events(io: &mut FakeIo<Tenant>, budget: Budget) -> Result<Summary, Error> {
    io.run(|io| {
        let ckpt = Checkpoint::parse(io.checkpoint().as_deref(), 1, |_, _| None)?;
        collect_streams(io, &mut NoAuth, ckpt, budget, &[Events { page: 10 }])
    })
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn an_ordinary_stream_pages_to_the_end_then_collects_only_new_records() {
    let mut io = FakeIo::new(Tenant::new(&[("events", 25)], 10));
    let s = run_events(&mut io, Budget::default()).unwrap();
    assert_eq!(io.delivered, io.server.all(), "byte-exact, in order, once");
    assert!(io.delivered[0].contains(r#""big":18446744073709551616,"u":"j\u00f6rg""#));
    assert_eq!((s.pages, s.duplicates, s.caught_up), (3, 0, true));
    assert_eq!(s.note.as_deref(), Some("events: 3 pages, 25 records, caught up"));
    assert_eq!(io.commit_log.len(), 3, "one commit per page");

    io.server.add("events", 3);
    let s = run_events(&mut io, Budget::default()).unwrap();
    assert_eq!(io.delivered.len(), 28);
    assert_eq!(s.note.as_deref(), Some("events: 1 page, 3 records, caught up"));
    assert_eq!(io.requests.last().unwrap().url, "https://v.example/events?after=1024");
}

#[test]
fn consume_once_streams_page_every_iterator() {
    let mut io = FakeIo::new(Tenant::new(&[("alerts/dlp", 25), ("alerts/malware", 3)], 10));
    let s = run_alerts(&mut io, &["dlp", "malware"], Budget::default()).unwrap();
    assert_eq!(io.delivered, io.server.all());
    let ops: Vec<String> = io.requests.iter().map(|r| r.request.query_value("op").unwrap()).collect();
    assert_eq!(ops, ["start", "next", "next", "start"]);
    // Each request went out after its in-flight marker was committed.
    for sent in &io.requests {
        assert!(sent.committed.as_deref().is_some_and(|c| c.contains(r#""inflight":true"#)), "{:?}", sent.committed);
        assert_eq!(sent.request.header_value("siphon-retry"), Some("rate-limited-only"));
    }
    assert_eq!(
        s.note.as_deref(),
        Some("alerts/dlp: 3 pages, 25 records, caught up; alerts/malware: 1 page, 3 records, caught up")
    );
}

#[test]
fn a_crash_at_any_step_of_a_consume_once_stream_delivers_everything_exactly_once() {
    let tried = crash_everywhere(
        || FakeIo::new(Tenant::new(&[("alerts/dlp", 25), ("alerts/uba", 12)], 10)),
        run_alerts_ref,
        |io, crash| {
            assert_eq!(sorted(io.delivered.clone()), sorted(io.server.all()), "after {crash:?}");
        },
    );
    assert_eq!(tried, 10 + 2 * 5, "10 commits and 5 requests in a clean run");
}

fn run_alerts_ref(io: &mut FakeIo<Tenant>) -> Result<Summary, Error> {
    let ckpt = Checkpoint::parse(io.checkpoint().as_deref(), 1, |_, _| None)?;
    collect_streams(io, &mut NoAuth, ckpt, Budget::default(), &alerts(&["dlp", "uba"]))
}

#[test]
fn a_crash_at_any_step_of_an_ordinary_stream_delivers_everything_exactly_once() {
    let tried = crash_everywhere(
        || FakeIo::new(Tenant::new(&[("events", 25)], 10)),
        |io| {
            let ckpt = Checkpoint::parse(io.checkpoint().as_deref(), 1, |_, _| None)?;
            collect_streams(io, &mut NoAuth, ckpt, Budget::default(), &[Events { page: 10 }])
        },
        |io, crash| assert_eq!(io.delivered, io.server.all(), "after {crash:?}"),
    );
    assert_eq!(tried, 3 + 2 * 3);
}

#[test]
fn a_resend_after_a_crash_that_consumed_nothing_skips_the_delivered_page_honestly() {
    let mut io = FakeIo::new(Tenant::new(&[("alerts/dlp", 25)], 10));
    // Page 1 delivered; the crash comes before the second request reaches the server.
    io.crash_next_run(Crash::BeforeServer(2));
    assert!(run_alerts(&mut io, &["dlp"], Budget::default()).is_err());
    assert_eq!(io.delivered.len(), 10);
    let s = run_alerts(&mut io, &["dlp"], Budget::default()).unwrap();
    let ops: Vec<String> = io.requests.iter().skip(2).map(|r| r.request.query_value("op").unwrap()).collect();
    assert_eq!(ops, ["resend", "next", "next"]);
    assert_eq!(io.delivered, io.server.all());
    assert_eq!(s.duplicates, 0, "a replayed page is not a duplicate");
    assert!(s.note.unwrap().contains("10 already-delivered records skipped after a resend"));
}

#[test]
fn a_5xx_on_a_consume_once_request_is_answered_by_a_bounded_resend_in_the_same_run() {
    let mut io = FakeIo::new(Tenant::new(&[("alerts/dlp", 25)], 10));
    // Page 1 in a first run; in the second, page 2 is consumed and then
    // the gateway answers 502.
    let s1 = run_alerts(&mut io, &["dlp"], Budget { max_pages: 1, ..Budget::default() }).unwrap();
    assert_eq!(s1.pages, 1);
    io.server.late_failures.push_back(502);
    let s = run_alerts(&mut io, &["dlp"], Budget::default()).unwrap();
    let ops: Vec<String> = io.requests.iter().skip(1).map(|r| r.request.query_value("op").unwrap()).collect();
    assert_eq!(ops, ["next", "resend", "next"]);
    assert_eq!(io.delivered, io.server.all());
    assert!(s.caught_up);
    assert_eq!(io.sleeps, [Duration::from_secs(2)], "one backoff before the resend");
    assert_eq!(io.logged("asking for it again"), 1);

    // A 5xx that outlasts the resends fails the stream; the marker stays, so
    // the next run resends.
    let mut io = FakeIo::new(Tenant::new(&[("alerts/dlp", 5)], 10));
    io.server.late_failures.extend([503, 503, 503]);
    let e = run_alerts(&mut io, &["dlp"], Budget::default()).unwrap_err();
    assert!(matches!(&e, Error::Vendor(m) if m.contains("`alerts/dlp`") && m.contains("HTTP 503")), "{e}");
    assert!(io.committed.as_deref().unwrap().contains(r#""inflight":true"#));
    run_alerts(&mut io, &["dlp"], Budget::default()).unwrap();
    assert_eq!(io.delivered, io.server.all());
}

#[test]
fn a_refusal_takes_the_inflight_marker_back() {
    let mut io = FakeIo::new(Tenant::new(&[("alerts/dlp", 25)], 10));
    run_alerts(&mut io, &["dlp"], Budget { max_pages: 1, ..Budget::default() }).unwrap();
    let before = io.committed.clone();
    io.server.faults.push_back(json(403, r#"{"message":"Invalid token"}"#));
    let e = run_alerts(&mut io, &["dlp"], Budget::default()).unwrap_err();
    assert_eq!(e.kind(), "auth");
    assert!(e.message().contains("Invalid token"), "{e}");
    assert_eq!(io.committed, before, "the cursor is unchanged");
}

#[test]
fn a_failing_stream_does_not_stop_the_others() {
    let mut io = FakeIo::new(Tenant::new(&[("alerts/dlp", 5), ("alerts/malware", 4)], 10));
    let e = run_alerts(&mut io, &["dlp", "bogus", "malware"], Budget::default()).unwrap_err();
    assert_eq!(e.kind(), "not-found");
    assert!(e.message().starts_with("1 of 3 streams failed: `alerts/bogus` (not-found:"), "{e}");
    assert!(e.message().contains("alerts/malware: 1 page, 4 records, caught up"), "{e}");
    assert_eq!(io.delivered, io.server.all(), "dlp and malware were delivered");
    assert_eq!(io.logs.iter().filter(|(l, _)| *l == Level::Error).count(), 1);
}

#[test]
fn a_long_retry_after_ends_the_stream_for_this_run_instead_of_blocking_it() {
    let mut io = FakeIo::new(Tenant::new(&[("events", 5)], 10));
    io.server.faults.push_back(response(429, &[("Retry-After", "90")], "slow down"));
    let s = run_events(&mut io, Budget::default()).unwrap();
    assert!(io.sleeps.is_empty(), "no 90 s sleep inside a 60 s budget");
    assert_eq!(s.note.as_deref(), Some("events: rate limited, next call in 90s"));
    assert_eq!(io.requests[0].request.header_value("siphon-max-wait"), Some("60"));
    // The next run honours the wait: no request before it is over.
    io.now_ms += 20_000;
    let s = run_events(&mut io, Budget::default()).unwrap();
    assert_eq!(io.sent(), 1);
    assert_eq!(s.note.as_deref(), Some("events: waiting 70s (vendor wait hint)"));
    io.now_ms += 60_000;
    run_events(&mut io, Budget::default()).unwrap();
    assert_eq!(io.delivered, io.server.all());
}

#[test]
fn short_429s_are_retried_then_fail_honestly() {
    let mut io = FakeIo::new(Tenant::new(&[("events", 5)], 10));
    io.server.faults.extend([response(429, &[("Retry-After", "2")], ""), response(429, &[], "")]);
    run_events(&mut io, Budget::default()).unwrap();
    assert_eq!(io.sleeps, [Duration::from_secs(2), Duration::from_secs(4)]);
    assert_eq!(io.delivered.len(), 5);

    let mut io = FakeIo::new(Tenant::new(&[("events", 5)], 10));
    io.server.faults.extend((0..4).map(|_| response(429, &[("Retry-After", "1")], "")));
    let e = run_events(&mut io, Budget::default()).unwrap_err();
    assert_eq!(e.kind(), "rate-limited");
    assert!(e.message().contains("4 answers in a row were HTTP 429"), "{e}");
    assert_eq!(io.sent(), 4);
}

#[test]
fn wait_hints_pace_within_the_budget_and_persist_beyond_it() {
    let mut io = FakeIo::new(Tenant::new(&[("alerts/dlp", 25)], 10));
    io.server.wait = 5;
    run_alerts(&mut io, &["dlp"], Budget::default()).unwrap();
    assert_eq!(io.sleeps, [Duration::from_secs(5), Duration::from_secs(5)]);
    let gaps: Vec<u64> = io.requests.windows(2).map(|w| w[1].at_ms - w[0].at_ms).collect();
    assert!(gaps.iter().all(|g| *g >= 5_000), "{gaps:?}");

    let mut io = FakeIo::new(Tenant::new(&[("alerts/dlp", 25)], 10));
    io.server.wait = 120;
    let s = run_alerts(&mut io, &["dlp"], Budget::default()).unwrap();
    assert_eq!(io.sent(), 1);
    assert!(s.caught_up, "waiting counts as caught up");
    assert!(s.note.unwrap().ends_with("waiting 120s (vendor wait hint)"));
}

#[test]
fn budgets_stop_a_stream_with_an_honest_outcome() {
    let mut io = FakeIo::new(Tenant::new(&[("events", 50)], 10));
    let s = run_events(&mut io, Budget { max_pages: 2, ..Budget::default() }).unwrap();
    assert!(!s.caught_up);
    assert_eq!(s.note.as_deref(), Some("events: 2 pages, 20 records, page limit reached, more waiting"));
    io.request_ms = 10_000;
    let s = run_events(&mut io, Budget { max_run_time: Some(Duration::from_secs(25)), ..Budget::default() }).unwrap();
    assert!(s.note.unwrap().ends_with("run time limit reached, more may be waiting"));
    assert_eq!(io.delivered.len(), 50);
}

#[test]
fn duplicates_within_a_run_are_dropped_and_counted() {
    let mut io = FakeIo::new(Tenant::new(&[("events", 12)], 10));
    // The vendor repeats the last record of page 1 at the top of page 2.
    io.server.faults.push_back(json(200, &io.server.body(&io.server.records["events"][..10])));
    io.server.faults.push_back(json(200, &io.server.body(&io.server.records["events"][9..])));
    let s = run_events(&mut io, Budget::default()).unwrap();
    assert_eq!(s.duplicates, 1);
    assert_eq!(io.delivered, io.server.all());
}

#[test]
fn ratelimit_remaining_zero_paces_the_next_request() {
    let mut io = FakeIo::new(Tenant::new(&[("events", 15)], 10));
    let page1 = io.server.body(&io.server.records["events"][..10]);
    io.server.faults.push_back(response(200, &[("RateLimit-Remaining", "0"), ("RateLimit-Reset", "3")], &page1));
    run_events(&mut io, Budget::default()).unwrap();
    assert_eq!(io.sleeps, [Duration::from_secs(3)]);
}

#[test]
fn checkpoints_are_versioned() {
    assert_eq!(Checkpoint::parse(None, 2, |_, _| None).unwrap(), Checkpoint::new(2));
    let e = Checkpoint::parse(Some(r#"{"version":1,"streams":{}}"#), 2, |_, _| None).unwrap_err();
    assert!(e.message().contains("version 1, this collector reads version 2"), "{e}");
    let migrated = Checkpoint::parse(Some(r#"{"version":1,"old":true}"#), 2, |v, value| {
        (v == 1 && value["old"] == true).then(|| Checkpoint::new(2))
    });
    assert_eq!(migrated.unwrap(), Checkpoint::new(2));
    let mut c = Checkpoint::new(2);
    c.streams.insert("s".into(), StreamState { cursor: serde_json::json!({"after": "x"}), ..StreamState::default() });
    let e = c.cursor::<After>("s").unwrap_err();
    assert!(e.message().contains("stream `s`"), "{e}");
    assert_eq!(c.cursor::<After>("other").unwrap().after, 0);
    assert_eq!(
        crate::checkpoint::to_json(&c).unwrap(),
        r#"{"version":2,"streams":{"s":{"cursor":{"after":"x"}}}}"#,
        "the schema is stable"
    );
}

#[test]
fn fingerprints_separate_keys() {
    assert_ne!(Fingerprint::of(["ab", "c"]).ids_hash, Fingerprint::of(["a", "bc"]).ids_hash);
    let f = Fingerprint::of(["a1", "b2"]);
    assert_eq!((f.count, f.first_id.as_str(), f.last_id.as_str()), (2, "a1", "b2"));
    // Persisted in checkpoints: the hash must never change.
    assert_eq!(Fingerprint::of(["a"]).ids_hash, "089bdc07b544e7b2");
}

struct FailingLogin;

impl crate::auth::Login for FailingLogin {
    fn login(&mut self, _io: &mut dyn Io) -> Result<crate::auth::Token, Error> {
        Err(Error::Auth("the token endpoint refused the client credentials".into()))
    }
}

#[test]
fn a_failed_login_ends_the_run_at_once() {
    let mut io = FakeIo::new(Tenant::new(&[("alerts/dlp", 5), ("alerts/uba", 5)], 10));
    let e = io
        .run(|io| {
            let mut auth = crate::auth::Session::new(FailingLogin);
            collect_streams(io, &mut auth, Checkpoint::new(1), Budget::default(), &alerts(&["dlp", "uba"]))
        })
        .unwrap_err();
    assert_eq!(e.kind(), "auth");
    assert_eq!(io.sent(), 0);
}

/// Signs each request with a number of its own, as Mimecast 1.0 signs a
/// fresh request id and date into every call.
struct PerRequestSignature(u32);

impl crate::auth::Auth for PerRequestSignature {
    fn authorize(&mut self, _io: &mut dyn Io, request: Request) -> Result<Request, Error> {
        self.0 += 1;
        Ok(request.header("x-signature", self.0.to_string()))
    }

    fn invalidate(&mut self) -> bool {
        false
    }

    fn signs_each_request(&self) -> bool {
        true
    }
}

fn run_signed(io: &mut FakeIo<Tenant>) -> Result<Summary, Error> {
    io.run(|io| {
        let ckpt = Checkpoint::parse(io.checkpoint().as_deref(), 1, |_, _| None)?;
        collect_streams(io, &mut PerRequestSignature(0), ckpt, Budget::default(), &[Events { page: 10 }])
    })
}

#[test]
fn requests_signed_one_by_one_are_retried_by_the_driver_and_signed_anew() {
    let mut io = FakeIo::new(Tenant::new(&[("events", 5)], 10));
    io.server.faults.extend([response(503, &[], ""), response(502, &[], "")]);
    run_signed(&mut io).unwrap();
    assert_eq!(io.delivered.len(), 5);
    let signatures: Vec<&str> = io.requests.iter().filter_map(|r| r.request.header_value("x-signature")).collect();
    assert_eq!(signatures, ["1", "2", "3"], "every attempt signed anew, none resent as it was");
    assert!(
        io.requests.iter().all(|r| r.request.header_value(crate::http::RETRY_HEADER) == Some("never")),
        "the host must not resend a signed request"
    );
    assert_eq!(io.sleeps, [Duration::from_secs(1), Duration::from_secs(2)]);

    // A lasting outage fails the stream after the retries.
    let mut io = FakeIo::new(Tenant::new(&[("events", 5)], 10));
    io.server.faults.extend((0..4).map(|_| response(504, &[], "")));
    assert!(run_signed(&mut io).is_err());
    assert_eq!(io.sent(), 4, "one try and three retries");
    assert!(io.delivered.is_empty());

    // Requests with lasting credentials keep the host's retries.
    let mut io = FakeIo::new(Tenant::new(&[("events", 5)], 10));
    run_events(&mut io, Budget::default()).unwrap();
    assert!(io.requests.iter().all(|r| r.request.header_value(crate::http::RETRY_HEADER).is_none()));
}
