//! Tests of the run protocol against a simulated dataexport iterator, with
//! crashes injected between every pair of steps.

use std::collections::{BTreeMap, VecDeque};

use siphon_sdk::http::Headers;

use super::*;

const NOW_MS: u64 = 1_722_300_000_000;

/// The iterator of one tenant: records per type, a bookmark per type.
struct Server {
    records: BTreeMap<String, Vec<(String, u64)>>,
    page_size: usize,
    wait_time: u64,
    /// (position after the last page, range of the last page) per type.
    bookmarks: BTreeMap<String, (usize, std::ops::Range<usize>)>,
    /// Replies served instead of data, in order.
    faults: VecDeque<Response>,
    /// Extra headers on every data reply.
    headers: Vec<(&'static str, &'static str)>,
}

impl Server {
    fn new(types: &[(&str, usize)], page_size: usize) -> Self {
        let mut records = BTreeMap::new();
        let mut serial = 0u64;
        for (t, n) in types {
            let list = (0..*n)
                .map(|i| {
                    serial += 1;
                    (format!("{t}-{serial:04}"), NOW_MS / 1_000 - 3_600 + i as u64)
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

    fn serve(&mut self, alert_type: &str, op: Op) -> Response {
        if let Some(fault) = self.faults.pop_front() {
            return fault;
        }
        let Some(list) = self.records.get(alert_type) else {
            return response(404, &[], r#"{"message":"This dataexporter does not exist"}"#);
        };
        let page = |start: usize| start..(start + self.page_size).min(list.len());
        let range = match op {
            Op::Resend => self.bookmarks.get(alert_type).map_or(0..0, |b| b.1.clone()),
            Op::Epoch(t) => page(list.partition_point(|(_, ts)| *ts < t)),
            Op::Next => page(self.bookmarks.get(alert_type).map_or(0, |b| b.0)),
        };
        if op != Op::Resend {
            self.bookmarks.insert(alert_type.to_string(), (range.end, range.clone()));
        }
        let result: Vec<String> = list[range].iter().map(|(id, ts)| Self::json(id, *ts)).collect();
        // Pretty-ish spacing, so compaction is exercised.
        let body = format!(r#"{{"ok": 1, "wait_time": {}, "result": [ {} ]}}"#, self.wait_time, result.join(",\n "));
        response(200, &self.headers, &body)
    }
}

fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
    Response { status, headers: headers.iter().copied().collect::<Headers>(), body: body.as_bytes().to_vec() }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Crash {
    /// The Nth commit of the run fails; nothing of it becomes durable.
    AtCommit(usize),
    /// The Nth fetch is answered by the server but the response is lost.
    AfterServer(usize),
    /// The Nth fetch never reaches the server.
    BeforeServer(usize),
}

/// The host as a run sees it, plus what a crash leaves behind.
struct Fake {
    server: Server,
    now_ms: u64,
    sleeps: Vec<u64>,
    pending: Vec<Record>,
    delivered: Vec<String>,
    committed: Option<String>,
    /// (operation, cursor committed last before it) per fetch.
    fetches: Vec<(String, Op, Option<String>)>,
    commits: usize,
    crash: Option<Crash>,
}

impl Fake {
    fn new(server: Server) -> Self {
        Self {
            server,
            now_ms: NOW_MS,
            sleeps: vec![],
            pending: vec![],
            delivered: vec![],
            committed: None,
            fetches: vec![],
            commits: 0,
            crash: None,
        }
    }

    /// One run as the host does it: load, run, discard pending on failure.
    fn run(&mut self, settings: &Settings) -> Result<Summary, Error> {
        self.commits = 0;
        let cursor = Cursor::load(self.committed.as_deref(), &settings.index)?;
        let result = run(self, settings, cursor);
        if result.is_err() {
            self.pending.clear();
        }
        result
    }

    fn cursor(&self) -> Cursor {
        Cursor::load(self.committed.as_deref(), "siphon-test").unwrap()
    }
}

impl Env for Fake {
    fn now_ms(&self) -> u64 {
        self.now_ms
    }

    fn sleep_ms(&mut self, ms: u64) {
        if ms > 0 {
            self.sleeps.push(ms);
            self.now_ms += ms;
        }
    }

    fn fetch(&mut self, alert_type: &str, op: Op) -> Result<Response, Error> {
        self.fetches.push((alert_type.to_string(), op, self.committed.clone()));
        let n = self.fetches.len();
        match self.crash {
            Some(Crash::BeforeServer(k)) if k == n => return Err(Error::Transport("crash".into())),
            Some(Crash::AfterServer(k)) if k == n => {
                self.server.serve(alert_type, op);
                return Err(Error::Transport("crash".into()));
            }
            _ => {}
        }
        // Each request takes a little time, as a real one would.
        self.now_ms += 40;
        Ok(self.server.serve(alert_type, op))
    }

    fn emit(&mut self, records: Vec<Record>) -> Result<(), Error> {
        self.pending.extend(records);
        Ok(())
    }

    fn commit(&mut self, cursor: &str) -> Result<(), Error> {
        self.commits += 1;
        if self.crash == Some(Crash::AtCommit(self.commits)) {
            return Err(Error::Host("crash".into()));
        }
        self.delivered.extend(self.pending.drain(..).map(Record::into_string));
        self.committed = Some(cursor.to_string());
        Ok(())
    }

    fn log(&mut self, _level: Level, _message: &str) {}
}

fn settings(types: &[&str], pairs: &[(&str, &str)]) -> Settings {
    let types = types.join(",");
    Settings::parse("test", |k| {
        let given = pairs.iter().find(|(key, _)| *key == k).map(|(_, v)| v.to_string());
        given.or_else(|| match k {
            "base_url" => Some("https://acme.goskope.com".into()),
            "alert_types" => Some(types.clone()),
            "full_page" => Some("10".into()),
            _ => None,
        })
    })
    .unwrap()
}

#[test]
fn first_run_starts_at_lookback_and_pages_until_a_short_page() {
    let mut fake = Fake::new(Server::new(&[("dlp", 25), ("malware", 0)], 10));
    let s = settings(&["dlp", "malware"], &[]);
    let summary = fake.run(&s).unwrap();
    let ops: Vec<Op> = fake.fetches.iter().map(|f| f.1).collect();
    assert_eq!(ops, [Op::Epoch(NOW_MS / 1_000 - 86_400), Op::Next, Op::Next, Op::Epoch(NOW_MS / 1_000 - 86_400)]);
    assert_eq!(fake.delivered, fake.server.all_json(), "byte-exact, in order, once");
    assert_eq!(summary.pages, 3);
    assert!(summary.caught_up);
    assert_eq!(summary.note.as_deref(), Some("dlp: 3 pages, 25 alerts, caught up; malware: caught up"));

    // The next run continues with `next` on both types.
    fake.run(&s).unwrap();
    assert_eq!(fake.fetches[4..].iter().map(|f| f.1).collect::<Vec<_>>(), [Op::Next, Op::Next]);
    let dlp = &fake.cursor().types["dlp"];
    assert_eq!(dlp.last_ts, Some(NOW_MS / 1_000 - 3_600 + 24));
    assert_eq!(dlp.inflight, None);
}

#[test]
fn every_fetch_is_preceded_by_a_commit_of_its_operation() {
    let mut fake = Fake::new(Server::new(&[("dlp", 35)], 10));
    fake.run(&settings(&["dlp"], &[])).unwrap();
    for (t, op, committed) in &fake.fetches {
        let cursor = Cursor::load(committed.as_deref(), "siphon-test").unwrap();
        assert_eq!(cursor.types[t].inflight, Some(*op));
    }
}

/// Runs until caught up, crashing once as `crash` says, and checks that every
/// record reached the sink exactly once.
fn survives(crash: Crash) {
    let mut fake = Fake::new(Server::new(&[("dlp", 35), ("uba", 12)], 10));
    let s = settings(&["dlp", "uba"], &[]);
    fake.crash = Some(crash);
    let first = fake.run(&s);
    let first_run_fetches = fake.fetches.len();
    fake.crash = None;
    let mut duplicates = 0;
    for _ in 0..3 {
        let summary = fake.run(&s).unwrap();
        duplicates += summary.duplicates;
    }
    assert_eq!(fake.delivered, fake.server.all_json(), "{crash:?} (first run: {first:?})");
    // A lost `next` is followed by a `resend` that returns the page delivered
    // before it: recognised by its fingerprint and skipped.
    if matches!(crash, Crash::BeforeServer(n) if n <= first_run_fetches && fake.fetches[n - 1].1 == Op::Next) {
        assert!(duplicates > 0, "{crash:?}: the resent page is recognised and skipped");
    }
}

#[test]
fn a_crash_at_any_commit_loses_and_repeats_nothing() {
    for n in 1..=14 {
        survives(Crash::AtCommit(n));
    }
}

#[test]
fn a_crash_after_the_server_answered_loses_nothing() {
    for n in 1..=7 {
        survives(Crash::AfterServer(n));
    }
}

#[test]
fn a_crash_before_the_request_left_repeats_nothing() {
    for n in 1..=7 {
        survives(Crash::BeforeServer(n));
    }
}

#[test]
fn wait_time_paces_pages_within_the_cap() {
    let mut server = Server::new(&[("dlp", 25)], 10);
    server.wait_time = 5;
    let mut fake = Fake::new(server);
    fake.run(&settings(&["dlp"], &[])).unwrap();
    assert_eq!(fake.sleeps, [5_000, 5_000]);
    assert_eq!(fake.fetches.len(), 3);
    // Across runs too: the last page asked for 5 s.
    fake.run(&settings(&["dlp"], &[])).unwrap();
    assert_eq!(fake.sleeps.last(), Some(&5_000));
}

#[test]
fn a_wait_beyond_the_cap_ends_the_type_until_a_later_run() {
    let mut server = Server::new(&[("dlp", 25)], 10);
    server.wait_time = 120;
    let mut fake = Fake::new(server);
    let s = settings(&["dlp"], &[]);
    let summary = fake.run(&s).unwrap();
    assert_eq!(fake.fetches.len(), 1);
    assert!(fake.sleeps.is_empty());
    assert!(summary.caught_up);
    assert!(summary.note.unwrap().ends_with("waiting 120s (wait_time)"));

    fake.now_ms += 59_000;
    fake.run(&s).unwrap();
    assert_eq!(fake.fetches.len(), 1, "still inside wait_time: no call");

    fake.now_ms += 61_000;
    fake.run(&s).unwrap();
    assert_eq!(fake.fetches.len(), 2);
    assert_eq!(fake.fetches[1].1, Op::Next);
}

#[test]
fn http_429_is_retried_with_retry_after_then_gives_up() {
    let mut fake = Fake::new(Server::new(&[("dlp", 5)], 10));
    let too_many = response(429, &[("Retry-After", "2")], "");
    fake.server.faults.extend([too_many.clone(), too_many.clone()]);
    fake.run(&settings(&["dlp"], &[])).unwrap();
    assert_eq!(fake.sleeps, [2_000, 2_000]);
    assert_eq!(fake.delivered.len(), 5);

    let mut fake = Fake::new(Server::new(&[("dlp", 5)], 10));
    fake.server.faults.extend(std::iter::repeat_n(response(429, &[("Retry-After", "900")], ""), 4));
    let e = fake.run(&settings(&["dlp"], &[])).unwrap_err();
    assert!(matches!(&e, Error::RateLimited(m) if m.contains("4 attempts")), "{e}");
    assert_eq!(fake.sleeps, [60_000; 3], "capped at max_wait_seconds");
}

#[test]
fn an_exhausted_rate_limit_window_pauses_the_next_call() {
    let mut server = Server::new(&[("dlp", 15)], 10);
    server.headers = vec![("ratelimit-remaining", "0"), ("ratelimit-reset", "3")];
    let mut fake = Fake::new(server);
    fake.run(&settings(&["dlp"], &[])).unwrap();
    assert_eq!(fake.fetches.len(), 2);
    assert_eq!(fake.sleeps, [3_000], "no pause before the first call, the reset before the second");
}

#[test]
fn an_auth_failure_ends_the_run_after_committing_earlier_types() {
    let mut fake = Fake::new(Server::new(&[("dlp", 5), ("uba", 5)], 10));
    fake.server.faults.extend([
        response(200, &[], r#"{"ok":1,"result":[{"_id":"x","timestamp":1}]}"#),
        response(403, &[], r#"{"message":"Invalid token or missing scope"}"#),
    ]);
    let e = fake.run(&settings(&["dlp", "uba"], &[])).unwrap_err();
    assert!(matches!(&e, Error::Auth(m) if m.contains("`uba`") && m.contains("missing scope")), "{e}");
    assert_eq!(fake.delivered, [r#"{"_id":"x","timestamp":1}"#]);
    // The refused type never started: its marker is taken back, so the
    // checkpoint says exactly what it said before the refused request.
    let cursor = fake.cursor();
    assert!(!cursor.types.contains_key("uba"), "{:?}", cursor.types.keys());
    assert!(cursor.types["dlp"].inflight.is_none());
}

#[test]
fn after_a_server_error_the_next_run_resends() {
    let mut fake = Fake::new(Server::new(&[("dlp", 15)], 10));
    let s = settings(&["dlp"], &[]);
    fake.run(&s).unwrap();
    fake.server.records.get_mut("dlp").unwrap().push(("dlp-late".into(), NOW_MS / 1_000));
    fake.server.faults.push_back(response(504, &[], "Gateway Timeout"));
    let e = fake.run(&s).unwrap_err();
    assert!(matches!(&e, Error::Vendor(m) if m.contains("HTTP 504")), "{e}");
    assert_eq!(fake.cursor().types["dlp"].inflight, Some(Op::Next), "a page may have been consumed");
    fake.run(&s).unwrap();
    assert_eq!(fake.fetches.last().map(|f| f.1), Some(Op::Next));
    assert_eq!(fake.delivered, fake.server.all_json());
}

#[test]
fn duplicates_within_a_run_are_dropped() {
    let mut fake = Fake::new(Server::new(&[("dlp", 0)], 10));
    let page = |ids: &[&str]| {
        let result: Vec<String> = ids.iter().map(|id| format!(r#"{{"_id":"{id}"}}"#)).collect();
        response(200, &[], &format!(r#"{{"ok":1,"result":[{}]}}"#, result.join(",")))
    };
    fake.server.faults.extend([page(&["a", "b"]), page(&["b", "c"])]);
    let summary = fake.run(&settings(&["dlp"], &[("full_page", "2")])).unwrap();
    assert_eq!(summary.duplicates, 1);
    assert_eq!(fake.delivered, [r#"{"_id":"a"}"#, r#"{"_id":"b"}"#, r#"{"_id":"c"}"#]);
}

#[test]
fn no_content_and_page_limit() {
    let mut fake = Fake::new(Server::new(&[("dlp", 100)], 10));
    fake.server.faults.push_back(response(204, &[], ""));
    let s = settings(&["dlp"], &[("max_pages_per_run", "3")]);
    let summary = fake.run(&s).unwrap();
    assert!(summary.caught_up);
    assert!(fake.delivered.is_empty());
    let summary = fake.run(&s).unwrap();
    assert_eq!(summary.pages, 3);
    assert!(!summary.caught_up);
    assert_eq!(summary.note.as_deref(), Some("dlp: 3 pages, 30 alerts, page limit reached, more waiting"));
}

#[test]
fn a_renamed_index_reseeds_from_the_last_delivered_second() {
    let mut fake = Fake::new(Server::new(&[("dlp", 15)], 10));
    fake.run(&settings(&["dlp"], &[("index", "siphon-test")])).unwrap();
    let last_ts = fake.cursor().types["dlp"].last_ts.unwrap();
    fake.run(&settings(&["dlp"], &[("index", "renamed")])).unwrap();
    assert_eq!(fake.fetches.last().map(|f| f.1), Some(Op::Epoch(last_ts)));
}
