//! Native tests: settings, the request, the boundary maths, and whole runs
//! against a simulated MuleSoft tenant (token endpoint, cursor paging,
//! inclusive bounds, a per-minute quota answered with HTML 503, entries that
//! become visible late) with crashes injected at every step.

use std::collections::VecDeque;

use siphon_sdk::data::hash::RecordKey;
use siphon_sdk::data::json::{Object, field_str};
use siphon_sdk::driver::Page;
use siphon_sdk::http::{Request, Response};
use siphon_sdk::testing::{FakeIo, START_MS, Server, crash_everywhere, json, response};

use super::*;

const BASE: &str = "https://eu1.anypoint.mulesoft.com";
const ORG: &str = "3f1c6a2e-7b5d-4c1e-9a2f-0d8e7c6b5a41";
const QUERY: &str =
    "https://eu1.anypoint.mulesoft.com/audit/v2/organizations/3f1c6a2e-7b5d-4c1e-9a2f-0d8e7c6b5a41/query";
const QUOTA_HTML: &str = "<html><head><title>503 Service Temporarily Unavailable</title></head></html>";

/// A simulated tenant: an audit store, a token endpoint, and a quota per
/// wall-clock minute counted over every call.
struct Tenant {
    /// (timestamp, visible from, entry text), kept sorted by timestamp.
    entries: Vec<(u64, u64, String)>,
    secret: String,
    tokens: Vec<String>,
    quota: usize,
    minute: (u64, usize),
    faults: VecDeque<Response>,
    /// Statuses of the query answers, for assertions.
    answered: Vec<u16>,
}

impl Tenant {
    fn new() -> Self {
        Tenant {
            entries: Vec::new(),
            secret: "s3cr3t".into(),
            tokens: Vec::new(),
            quota: 40,
            minute: (0, 0),
            faults: VecDeque::new(),
            answered: Vec::new(),
        }
    }

    /// Adds an entry at `ts`, visible `delay_ms` later.
    fn add(&mut self, ts: u64, delay_ms: u64, text: String) {
        let at = self.entries.partition_point(|(t, ..)| *t <= ts);
        self.entries.insert(at, (ts, ts + delay_ms, text));
    }

    /// `n` entries from `from` on: groups of 1..=4 share a millisecond, some
    /// groups are one action split in parts, some hold identical twins, and
    /// payloads carry integers above 2^53 and non-ASCII text.
    fn fill(&mut self, from: u64, n: usize, delay_ms: u64) {
        let (mut ts, mut i) = (from, 0);
        while i < n {
            let group = 1 + (i * 7 + 3) % 4;
            for part in 0..group.min(n - i) {
                let twin = if i % 11 == 5 && part == 1 { 0 } else { part };
                self.add(ts, delay_ms, entry(ts, i - part + twin, part));
                i += 1;
            }
            ts += 1 + (i as u64 * 7_919) % 90_000;
        }
    }

    fn all(&self) -> Vec<String> {
        let mut all: Vec<String> = self.entries.iter().map(|(.., e)| e.clone()).collect();
        all.sort();
        all
    }

    fn query(&mut self, request: &Request, now: u64) -> Response {
        let auth = request.header_value("authorization").unwrap_or_default();
        if !self.tokens.iter().any(|t| auth == format!("Bearer {t}")) {
            return json(401, r#"{"message":"Unauthorized"}"#);
        }
        let Ok(body) = serde_json::from_slice::<serde_json::Value>(request.body_bytes().unwrap_or_default()) else {
            return json(400, r#"{"message":"body is not JSON"}"#);
        };
        let date = |k: &str| match &body[k] {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => siphon_sdk::data::time::parse(s).ok(),
            _ => None,
        };
        let (Some(start), end, limit) = (date("startDate"), date("endDate").unwrap_or(now), body["limit"].as_u64())
        else {
            return json(400, r#"{"message":"startDate is required"}"#);
        };
        let limit = limit.unwrap_or(200) as usize;
        if limit > 200 || limit == 0 || body["ascending"] != true {
            return json(400, r#"{"message":"limit must be 1..200, ascending true"}"#);
        }
        // The cursor names the last entry returned: (timestamp, position).
        let after =
            body["cursor"].as_str().and_then(|c| c.split_once('_')).map(|(t, p)| (t.parse().ok(), p.parse().ok()));
        let mut page = Vec::new();
        for (pos, (ts, visible, text)) in self.entries.iter().enumerate() {
            let past = after.is_none_or(|a| (Some(*ts), Some(pos)) > a);
            if *ts >= start && *ts <= end && *visible <= now && past && page.len() < limit {
                page.push((pos, *ts, text.as_str()));
            }
        }
        let data: Vec<&str> = page.iter().map(|p| p.2).collect();
        match page.last() {
            None => json(200, r#"{"data": []}"#),
            Some((pos, ts, _)) => {
                json(200, &format!("{{\"data\": [\n  {}\n], \"cursor\": \"{ts}_{pos}\"}}", data.join(",\n  ")))
            }
        }
    }
}

fn entry(ts: u64, action: usize, part: usize) -> String {
    format!(
        r#"{{"organizationId":"{ORG}","timestamp":{ts},"action":"Update","userName":"jörg-{}","objects":[{{"objectId":"o{action}","objectType":"Application"}}],"anypointTransactionId":"tx-{action}","payload":{{"part":{part},"big":18446744073709551615{}}}}}"#,
        action % 5,
        if part > 0 { format!(r#","workers":{}"#, 9_007_199_254_740_993u64 + part as u64) } else { String::new() }
    )
}

impl Server for Tenant {
    fn handle(&mut self, request: &Request) -> Response {
        self.handle_at(request, START_MS)
    }

    fn handle_at(&mut self, request: &Request, now: u64) -> Response {
        let minute = now / 60_000;
        self.minute = if self.minute.0 == minute { (minute, self.minute.1 + 1) } else { (minute, 1) };
        if self.minute.1 > self.quota {
            self.answered.push(503);
            return response(503, &[("content-type", "text/html")], QUOTA_HTML);
        }
        if let Some(fault) = self.faults.pop_front() {
            self.answered.push(fault.status);
            return fault;
        }
        if request.path() == "/accounts/api/v2/oauth2/token" {
            let form = String::from_utf8_lossy(request.body_bytes().unwrap_or_default()).into_owned();
            if !form.contains("grant_type=client_credentials")
                || !form.contains(&format!("client_secret={}", self.secret))
            {
                return json(401, r#"{"error":"invalid_client"}"#);
            }
            let token = format!("tok-{}", self.tokens.len());
            self.tokens.push(token.clone());
            return json(200, &format!(r#"{{"access_token":"{token}","token_type":"bearer"}}"#));
        }
        let answer = self.query(request, now);
        self.answered.push(answer.status);
        answer
    }
}

fn io(tenant: Tenant) -> FakeIo<Tenant> {
    FakeIo::new(tenant)
        .setting("base_url", BASE)
        .setting("organization_id", ORG)
        .secret("client_id", "app")
        .secret("client_secret", "s3cr3t")
}

fn collect(io: &mut FakeIo<Tenant>) -> Result<Summary, Error> {
    run(io)
}

/// Scheduled runs until one is not cut short by a quota wait: a second quota
/// answer in a row ends a run (its wait is over a minute), and the next run,
/// a minute later, goes on.
fn collect_all(io: &mut FakeIo<Tenant>) -> Result<Summary, Error> {
    loop {
        let summary = run(io)?;
        if !summary.note.as_deref().unwrap_or_default().contains("next call in") {
            return Ok(summary);
        }
        io.sleep(Duration::from_secs(61));
    }
}

fn sorted(mut records: Vec<String>) -> Vec<String> {
    records.sort();
    records
}

/// Asserts that `io` delivered every entry of its tenant exactly once,
/// naming how many are missing or extra rather than printing them all.
fn assert_exactly_once(io: &FakeIo<Tenant>, when: &str) {
    let (got, want) = (sorted(io.delivered.clone()), io.server.all());
    if got != want {
        let missing = want.iter().filter(|w| !got.contains(w)).count();
        panic!("{when}: {} delivered, {} expected, {missing} missing", got.len(), want.len());
    }
}

fn position(io: &FakeIo<Tenant>) -> Position {
    let checkpoint: Checkpoint = serde_json::from_str(io.committed.as_deref().expect("a commit")).expect("JSON");
    checkpoint.cursor("audit").expect("a position")
}

/// A page read, and how many of its entries were dropped as delivered before.
fn read(a: &AuditLog, p: &Position, body: &[u8]) -> Result<(Page<Position>, usize), Error> {
    let n = Object::parse(body)?.records("data")?.len();
    a.read(p, body).map(|page| {
        let replayed = n - page.records.len();
        (page, replayed)
    })
}

fn audit(page_size: u64) -> AuditLog {
    AuditLog { base_url: BASE.into(), org: ORG.into(), lookback_ms: 3_600_000, page_size, settle_ms: 60_000 }
}

#[test]
fn info_declares_every_setting_with_its_default() {
    let info = MulesoftAudit::info();
    assert_eq!(info.name, "mulesoft-audit");
    let get = |n: &str| info.settings.iter().find(|s| s.name == n).unwrap_or_else(|| panic!("{n}"));
    for (name, default) in [
        ("base_url", "https://anypoint.mulesoft.com"),
        ("lookback_hours", "24"),
        ("page_size", "200"),
        ("settle_seconds", "60"),
        ("max_pages_per_run", "200"),
    ] {
        assert_eq!(get(name).default_value.as_deref(), Some(default), "{name}");
    }
    assert!(get("organization_id").required);
    assert!(get("client_id").secret && get("client_secret").secret && get("client_secret").required);
    assert_eq!(info.settings.len(), 8);
}

#[test]
fn bad_settings_fail_the_run_naming_the_key_before_any_request() {
    let cases = [
        ("organization_id", None, "setting `organization_id` is required"),
        ("organization_id", Some("../other"), "`organization_id` = \"../other\" is invalid: must be a UUID"),
        ("page_size", Some("500"), "`page_size` = \"500\" is invalid: must be between 1 and 200"),
        ("page_size", Some("0"), "`page_size`"),
        ("lookback_hours", Some("-1"), "`lookback_hours`"),
        ("settle_seconds", Some("1m"), "`settle_seconds`"),
        ("max_pages_per_run", Some("0"), "`max_pages_per_run`"),
        ("base_url", Some("eu1.anypoint.mulesoft.com"), "`base_url`"),
    ];
    for (key, value, message) in cases {
        let mut io = io(Tenant::new());
        match value {
            Some(v) => io.settings.insert(key.into(), v.into()),
            None => io.settings.remove(key),
        };
        let e = io.run(collect).expect_err(key);
        assert_eq!(e.kind(), "config", "{e}");
        assert!(e.to_string().contains(message), "{e}");
        assert_eq!(io.sent(), 0);
    }
    let mut io = io(Tenant::new());
    io.secrets.remove("client_secret");
    assert_eq!(io.run(collect).unwrap_err().to_string(), "config: secret `client_secret` is required");
}

#[test]
fn validate_names_every_bad_setting_and_missing_secret() {
    let mut io = io(Tenant::new()).setting("page_size", "500");
    io.settings.remove("organization_id");
    io.secrets.remove("client_secret");
    assert_eq!(
        config::problems(&DECLARED, &io),
        [
            "setting `organization_id` is required",
            "setting `page_size` = \"500\" is invalid: must be between 1 and 200",
            "secret `client_secret` is required"
        ]
    );
    assert!(config::problems(&DECLARED, &self::io(Tenant::new())).is_empty());
}

#[test]
fn the_first_query_pins_the_lookback_window_and_asks_oldest_first_in_cursor_mode() {
    let a = audit(200);
    let mut p = Position::default();
    let q = a.window(&mut p, START_MS).expect("a window");
    assert_eq!((q.start, q.end), (START_MS - 3_600_000, START_MS - 60_000));
    assert_eq!(p.since, Some(START_MS - 3_600_000));
    assert_eq!(a.window(&mut p, START_MS + 5_000), Some(q.clone()), "an open query keeps its window");
    let body = a.body(&q);
    assert_eq!(body, serde_json::json!({"startDate": q.start, "endDate": q.end, "ascending": true, "limit": 200}));
    let next = Query { cursor: Some("1717430400123_7".into()), ..q };
    assert_eq!(a.body(&next)["cursor"], "1717430400123_7", "the same query again, with the cursor");

    // lookback 0: the window still starts at or before its end, so the pin is committed.
    let mut p = Position::default();
    let q = AuditLog { lookback_ms: 0, ..audit(1) }.window(&mut p, START_MS).unwrap();
    assert_eq!((q.start, q.end), (START_MS - 60_000, START_MS - 60_000));
    // A boundary newer than now − settle: nothing to ask.
    let mut p = Position { since: Some(START_MS), ..Position::default() };
    assert_eq!(audit(1).window(&mut p, START_MS), None);
}

#[test]
fn the_request_is_a_json_post_the_host_does_not_retry_on_503() {
    let mut io = io(Tenant::new());
    io.run(collect).expect("run");
    let token = &io.requests[0].request;
    assert_eq!(token.url(), "https://eu1.anypoint.mulesoft.com/accounts/api/v2/oauth2/token");
    let sent = &io.requests[1];
    assert_eq!(sent.url, format!("{QUERY}?cursorPagination=true"));
    let r = &sent.request;
    assert_eq!(r.method().as_str(), "POST");
    assert_eq!(r.header_value("content-type"), Some("application/json"));
    assert_eq!(r.header_value("siphon-retry"), Some("rate-limited-only"));
    assert_eq!(r.header_value("authorization"), Some("Bearer tok-0"));
    let body: serde_json::Value = serde_json::from_slice(r.body_bytes().unwrap()).unwrap();
    assert_eq!(body["startDate"], START_MS - 24 * 3_600_000, "default lookback 24 h, as epoch ms");
    assert_eq!(body["endDate"], START_MS - 60_000, "now − settle");
}

#[test]
fn pages_are_byte_exact_and_the_boundary_keeps_every_key_at_the_last_millisecond() {
    let a = audit(200);
    let mut p = Position::default();
    a.window(&mut p, START_MS);
    let e1 = entry(START_MS - 90_000, 1, 0);
    let e2 = entry(START_MS - 80_000, 2, 0);
    let e3 = entry(START_MS - 80_000, 2, 1);
    let body = format!("{{\"data\": [ {e1},\n {e2}, {e3} ], \"cursor\": \"c1\"}}");
    let (page, replayed) = read(&a, &p, body.as_bytes()).unwrap();
    assert_eq!(replayed, 0);
    let records: Vec<&str> = page.records.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(records, [e1.as_str(), e2.as_str(), e3.as_str()], "big integers and non-ASCII text unchanged");
    assert!(page.more);
    let next = page.next;
    assert_eq!(next.since, Some(START_MS - 80_000));
    let keys = |es: &[&str]| -> Vec<RecordKey> {
        es.iter().map(|e| RecordKey::of_content(&siphon_sdk::Record::parse(e).unwrap())).collect()
    };
    assert_eq!(next.at_since, keys(&[&e2, &e3]));
    assert_eq!(next.query.as_ref().unwrap().cursor, Some("c1".into()));

    // The end of the query: no cursor (or an empty page) closes it.
    let (done, _) = read(&a, &next, br#"{"data":[]}"#).unwrap();
    assert!(!done.more && done.next.query.is_none());
    assert_eq!(done.next.at_since, next.at_since);
    let (done, _) = read(&a, &next, br#"{"data":[], "cursor": "c1"}"#).unwrap();
    assert!(!done.more, "an empty page ends the query whatever its cursor");

    // The next query starts at the boundary and drops exactly what was delivered there.
    let mut resumed = done.next;
    let q = a.window(&mut resumed, START_MS + 1_000).unwrap();
    assert_eq!(q.start, START_MS - 80_000);
    let late = entry(START_MS - 80_000, 2, 2);
    let body = format!(r#"{{"data":[{e3},{late},{e2}],"cursor":"c2"}}"#);
    let (page, replayed) = read(&a, &resumed, body.as_bytes()).unwrap();
    assert_eq!(replayed, 2, "order within a millisecond does not matter");
    assert_eq!(page.records.iter().map(|(_, r)| r.as_str()).collect::<Vec<_>>(), [late.as_str()]);
    assert_eq!(page.next.at_since, keys(&[&e2, &e3, &late]));
}

#[test]
fn identical_entries_at_one_millisecond_are_each_delivered_once() {
    let a = audit(1);
    let mut p = Position::default();
    a.window(&mut p, START_MS);
    let twin = entry(START_MS - 70_000, 4, 0);
    let (first, _) = read(&a, &p, format!(r#"{{"data":[{twin}],"cursor":"x"}}"#).as_bytes()).unwrap();
    let (second, _) = read(&a, &first.next, format!(r#"{{"data":[{twin}],"cursor":"y"}}"#).as_bytes()).unwrap();
    assert_eq!(second.records.len(), 1, "a continuation page is new data, even when identical");
    assert_ne!(first.records[0].0, second.records[0].0, "keys tell the copies apart");
    // A new query replays both copies and a third, new one.
    let mut p = Position { query: None, ..second.next };
    a.window(&mut p, START_MS);
    let body = format!(r#"{{"data":[{twin},{twin},{twin}],"cursor":"z"}}"#);
    let (page, replayed) = read(&a, &p, body.as_bytes()).unwrap();
    assert_eq!((replayed, page.records.len()), (2, 1));
    assert!(page.records[0].0.ends_with(":2"));
}

#[test]
fn timestamps_as_text_and_odd_bodies() {
    let a = audit(5);
    let mut p = Position::default();
    a.window(&mut p, START_MS);
    let iso = r#"{"timestamp":"2024-07-30T00:38:20.000Z","action":"Login"}"#;
    let (page, _) = read(&a, &p, format!(r#"{{"data":[{iso}]}}"#).as_bytes()).unwrap();
    assert_eq!(page.next.since, Some(START_MS - 100_000));
    assert!(!page.more);
    // An entry whose timestamp cannot be read counts as one at the boundary: delivered, never a stuck page.
    let odd = r#"{"timestamp":"yesterday","action":"Login"}"#;
    let (page, _) = read(&a, &p, format!(r#"{{"data":[{odd}]}}"#).as_bytes()).unwrap();
    assert_eq!((page.records.len(), page.next.since), (1, p.since));
    for bad in [&b"<html>502</html>"[..], br#"{"message":"oops"}"#, br#"{"data":[1]}"#] {
        assert_eq!(read(&a, &p, bad).unwrap_err().kind(), "vendor", "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn quota_answers_wait_for_the_next_minute_window() {
    let html = response(503, &[("content-type", "text/html")], QUOTA_HTML);
    let wait = quota_wait(&html, START_MS + 12_000).unwrap().as_millis() as u64;
    assert!((48_500..50_500).contains(&wait), "{wait}");
    let reset = response(429, &[("x-ratelimit-reset", &((START_MS + 30_000) / 1_000).to_string())], "");
    assert_eq!(quota_wait(&reset, START_MS).unwrap().as_secs(), 30);
    assert_eq!(quota_wait(&json(500, "{}"), START_MS), None);
}

#[test]
fn runs_page_to_the_end_then_collect_only_new_entries_under_the_minute_quota() {
    let mut tenant = Tenant::new();
    tenant.fill(START_MS - 5 * 3_600_000, 600, 20_000);
    let mut io = io(tenant).setting("page_size", "7").setting("lookback_hours", "6");
    let summary = io.run(collect_all).expect("first run");
    assert!(summary.caught_up, "{summary:?}");
    assert_exactly_once(&io, "end");
    assert!(io.server.answered.contains(&503), "the quota was hit");
    assert!(io.sleeps.iter().any(|s| s.as_secs() >= 40), "and waited out: {:?}", io.sleeps);
    assert_eq!(io.server.tokens.len(), 1, "one token per run; expires_in missing means 60 min");

    // New entries, one at the boundary millisecond, arriving late.
    let boundary = position(&io).since.unwrap();
    let before = io.delivered.len();
    io.server.add(boundary, 0, entry(boundary, 999, 3));
    io.server.fill(io.now_ms, 20, 30_000);
    io.sleep(Duration::from_secs(3_600));
    io.run(collect_all).expect("second run");
    assert_exactly_once(&io, "second run");
    assert_eq!(io.delivered.len(), before + 21);
    assert!(position(&io).query.is_none());
}

#[test]
fn a_quota_wait_longer_than_a_minute_ends_the_run_without_failing_it() {
    let mut tenant = Tenant::new();
    tenant.fill(START_MS - 3_000_000, 40, 0);
    tenant.quota = 4;
    // The quota runs out in the first second of a minute: the wait is the
    // whole minute plus jitter, over the 60 s a run waits.
    let mut io = io(tenant).setting("page_size", "3");
    let s = io.run(collect).expect("not a failure");
    let note = s.note.unwrap_or_default();
    assert!(note.contains("rate limited, next call in 6"), "{note}");
    assert_eq!(io.delivered.len(), 9, "three pages before the quota");
    let sent = io.sent();
    io.run(collect).expect("too early: no request, no failure");
    assert_eq!(io.sent(), sent, "the next minute window has not started");
    io.sleep(Duration::from_secs(2));
    io.run(collect_all).expect("the rest");
    assert!(io.requests[sent].at_ms >= START_MS + 60_000, "nothing before the next window");
    assert_exactly_once(&io, "after the wait");
}

#[test]
fn entries_newer_than_settle_wait_for_a_later_run() {
    let mut tenant = Tenant::new();
    tenant.add(START_MS - 30_000, 0, entry(START_MS - 30_000, 1, 0));
    tenant.add(START_MS - 90_000, 0, entry(START_MS - 90_000, 2, 0));
    let mut io = io(tenant);
    io.run(collect).unwrap();
    assert_eq!(io.delivered.len(), 1, "the entry 30 s old is left for the next run");
    io.sleep(Duration::from_secs(60));
    io.run(collect).unwrap();
    assert_exactly_once(&io, "end");
}

#[test]
fn exactly_once_with_a_crash_at_every_step() {
    let make = || {
        let mut tenant = Tenant::new();
        tenant.fill(START_MS - 3_600_000, 90, 10_000);
        tenant.quota = 12;
        io(tenant).setting("page_size", "4").setting("lookback_hours", "2")
    };
    let tried = crash_everywhere(
        make,
        |io| io.run(collect_all),
        |io, crash| {
            assert_exactly_once(io, &format!("after {crash:?}"));
        },
    );
    assert!(tried > 70, "{tried}");
}

#[test]
fn a_page_limit_ends_the_run_and_the_next_run_resumes_at_the_boundary() {
    let mut tenant = Tenant::new();
    tenant.fill(START_MS - 3_000_000, 40, 0);
    let mut io = io(tenant).setting("page_size", "3").setting("max_pages_per_run", "4");
    let s = io.run(collect).unwrap();
    assert!(!s.caught_up && s.note.as_deref().unwrap_or_default().contains("page limit"), "{s:?}");
    assert!(position(&io).query.is_some());
    for _ in 0..10 {
        io.run(collect).unwrap();
    }
    assert_exactly_once(&io, "end");
}

#[test]
fn bad_credentials_and_missing_permission_are_auth_errors_that_keep_the_cursor() {
    let mut tenant = Tenant::new();
    tenant.fill(START_MS - 3_000_000, 5, 0);
    let mut io = io(tenant);
    io.run(collect).unwrap();
    let committed = io.committed.clone();

    io.server.secret = "rotated".into();
    let e = io.run(collect).unwrap_err();
    assert_eq!(e.kind(), "auth", "{e}");
    assert!(e.to_string().contains("invalid_client") && !e.to_string().contains("s3cr3t"), "{e}");
    assert_eq!(io.committed, committed);

    io.server.secret = "s3cr3t".into();
    io.server.tokens.push("tok-x".into());
    io.server.faults.push_back(json(200, r#"{"access_token":"tok-x","token_type":"bearer"}"#));
    io.server.faults.push_back(json(403, r#"{"message":"You do not have permission"}"#));
    let e = io.run(collect).unwrap_err();
    assert_eq!(e.kind(), "auth", "{e}");
    assert!(e.to_string().contains("\"View Audit Log\"") && e.to_string().contains(ORG), "{e}");
    assert_eq!(io.committed, committed);
}

#[test]
fn an_expired_token_is_renewed_once_and_5xx_fail_the_run_without_moving_the_cursor() {
    let mut tenant = Tenant::new();
    tenant.fill(START_MS - 3_000_000, 30, 0);
    let mut io = io(tenant).setting("page_size", "10");
    io.server.faults.extend([json(200, r#"{"access_token":"stale","token_type":"bearer"}"#)]);
    io.run(collect).expect("a 401 is answered by one new token");
    assert_eq!(io.logged("authenticating again"), 1);
    assert_exactly_once(&io, "end");

    let committed = io.committed.clone();
    io.server.fill(io.now_ms - 200_000, 5, 0);
    io.server.faults.push_back(json(200, r#"{"access_token":"tok-y","token_type":"bearer"}"#));
    io.server.tokens.push("tok-y".into());
    io.server.faults.push_back(json(500, r#"{"message":"Internal error"}"#));
    let e = io.run(collect).unwrap_err();
    assert_eq!(e.kind(), "vendor");
    assert!(e.to_string().contains("Internal error"), "{e}");
    assert_eq!(io.committed, committed);
    io.run(collect).unwrap();
    assert_exactly_once(&io, "end");
}

#[test]
fn the_token_endpoint_waits_out_the_quota_too() {
    let mut tenant = Tenant::new();
    tenant.fill(START_MS - 3_000_000, 3, 0);
    tenant.faults.push_back(response(503, &[("content-type", "text/html")], QUOTA_HTML));
    let mut io = io(tenant);
    io.run(collect).expect("run");
    assert_eq!(io.logged("Token endpoint: rate limited (HTTP 503); retry in"), 1);
    assert_eq!(io.requests[0].request.header_value("siphon-retry"), Some("rate-limited-only"));
    assert_eq!(io.delivered.len(), 3);
}

#[test]
fn another_organization_starts_from_its_lookback() {
    let mut tenant = Tenant::new();
    tenant.fill(START_MS - 3_000_000, 3, 0);
    let mut io = io(tenant);
    io.run(collect).unwrap();
    io.settings.insert("organization_id".into(), "0a12b3c4-d5e6-789f-1021-1a2b34cd5e6f".into());
    let started = io.now_ms;
    io.run(collect).unwrap();
    assert_eq!(io.logged(&format!("was for organization {ORG}")), 1);
    let body = io.requests.last().unwrap().request.body_bytes().unwrap().to_vec();
    assert_eq!(
        field_str(std::str::from_utf8(&body).unwrap(), "startDate").unwrap().unwrap(),
        (started - 86_400_000).to_string()
    );
}
