//! Whole runs against a simulated Verify tenant (`FakeIo`): paging, the
//! first-run window, late and not-yet-visible events, ties on `indexed_at`,
//! token handling, refusals, rate limits and a crash at every step.

use std::collections::VecDeque;
use std::time::Duration;

use siphon_sdk::http::{Request, Response};
use siphon_sdk::testing::{FakeIo, START_MS, Server, crash_everywhere, json, response};

use super::*;

const BASE: &str = "https://acme.verify.ibm.com";
const TOKEN_PATH: &str = "/v1.0/endpoint/default/token";
const HOUR: u64 = 3_600_000;

struct Event {
    id: String,
    time: u64,
    indexed_at: u64,
    kind: &'static str,
}

impl Event {
    fn text(&self) -> String {
        format!(
            r#"{{"id":"{}","time":{},"indexed_at":{},"event_type":"{}","data":{{"username":"j\u00f6rg","big":18446744073709551615}}}}"#,
            self.id, self.time, self.indexed_at, self.kind
        )
    }
}

/// A tenant after vendor-apis.md §3: client credentials, `indexed_at` order
/// with `(indexed_at, id)` search_after, a 24 h default window, the
/// management/sso/authentication default filter, events invisible until
/// their `indexed_at` has passed, and queued faults.
#[derive(Default)]
struct Tenant {
    events: Vec<Event>,
    tokens: Vec<String>,
    logins: usize,
    faults: VecDeque<Response>,
    secret_wrong: bool,
}

impl Tenant {
    /// `n` events indexed `step` ms apart from `first`, ids out of insertion order.
    fn add(&mut self, n: usize, first: u64, step: u64) {
        for i in 0..n as u64 {
            let seq = self.events.len() as u64;
            let id = format!("{:08x}-7e57-4d00-8000-{seq:012x}", seq.wrapping_mul(0x9E37_79B9) % 0xffff_ffff);
            let kinds = ["authentication", "sso", "management", "token", "risk"];
            let at = first + i * step;
            self.events.push(Event { id, time: at - 500, indexed_at: at, kind: kinds[seq as usize % kinds.len()] });
        }
    }

    /// Every event's text in `(indexed_at, id)` order.
    fn all(&self) -> Vec<String> {
        let mut sorted: Vec<&Event> = self.events.iter().collect();
        sorted.sort_by(|a, b| (a.indexed_at, &a.id).cmp(&(b.indexed_at, &b.id)));
        sorted.iter().map(|e| e.text()).collect()
    }

    fn events_page(&mut self, r: &Request, now: u64) -> Response {
        let q = |k: &str| r.query_value(k);
        let num = |k: &str, default: u64| q(k).map_or(Ok(default), |v| v.parse::<u64>().map_err(|_| k.to_string()));
        let (Ok(from), Ok(size)) = (num("from", now - 24 * HOUR), num("size", 50)) else {
            return json(400, r#"{"messageDescription":"The [from] or [size] parameter is not a number."}"#);
        };
        if size > 10_000 {
            return json(
                400,
                r#"{"messageId":"CSIAQ0159E","messageDescription":"The [size] parameter is over 10000."}"#,
            );
        }
        if (q("range_type").as_deref(), q("sort_order").as_deref()) != (Some("indexed_at"), Some("asc")) {
            return json(400, r#"{"messageDescription":"this tenant test wants range_type=indexed_at, asc"}"#);
        }
        let types: Option<Vec<String>> = match (q("all_events").as_deref(), q("event_type")) {
            (_, Some(list)) => Some(list.split(',').map(|t| t.trim_matches('"').to_string()).collect()),
            (Some("yes"), None) => None,
            _ => Some(vec!["management".into(), "sso".into(), "authentication".into()]),
        };
        let after = q("after_time").zip(q("after_id")).map(|(t, id)| (t.parse::<u64>().unwrap_or(0), id));
        let mut hits: Vec<&Event> = self
            .events
            .iter()
            .filter(|e| e.indexed_at >= from && e.indexed_at <= now)
            .filter(|e| types.as_ref().is_none_or(|t| t.iter().any(|t| t == e.kind)))
            .filter(|e| after.as_ref().is_none_or(|(t, id)| (e.indexed_at, &e.id) > (*t, id)))
            .collect();
        hits.sort_by(|a, b| (a.indexed_at, &a.id).cmp(&(b.indexed_at, &b.id)));
        let total = hits.len();
        hits.truncate(size as usize);
        let search_after = hits.last().map_or(String::new(), |e| {
            format!(r#""time":"{}","id":"{}","#, e.indexed_at, e.id) // a string time, as the API sends it
        });
        let texts: Vec<String> = hits.iter().map(|e| e.text()).collect();
        json(
            200,
            &format!(
                "{{\"response\":{{\"events\":{{\"search_after\":{{{search_after}\"total_events\":{},\"max_size_limit\":\"false\"}},\n\"events\":[{}]}}}}}}",
                total.min(10_000),
                texts.join(",\n")
            ),
        )
    }
}

impl Server for Tenant {
    fn handle(&mut self, request: &Request) -> Response {
        self.handle_at(request, START_MS)
    }

    fn handle_at(&mut self, r: &Request, now: u64) -> Response {
        if r.path() == TOKEN_PATH {
            let body = String::from_utf8_lossy(r.body_bytes().unwrap_or_default()).into_owned();
            if self.secret_wrong
                || !body.contains("client_secret=s3cr3t")
                || !body.contains("grant_type=client_credentials")
            {
                return json(401, r#"{"error":"invalid_client","error_description":"Client authentication failed."}"#);
            }
            self.logins += 1;
            self.tokens.push(format!("tok-{}", self.logins));
            return json(
                200,
                &format!(r#"{{"access_token":"tok-{}","token_type":"Bearer","expires_in":7199}}"#, self.logins),
            );
        }
        if let Some(fault) = self.faults.pop_front() {
            return fault;
        }
        let bearer = r.header_value("authorization").and_then(|v| v.strip_prefix("Bearer ")).unwrap_or_default();
        if !self.tokens.iter().any(|t| t == bearer) {
            return json(401, r#"{"messageId":"CSIAH0617E","messageDescription":"The access token is not valid."}"#);
        }
        self.events_page(r, now)
    }
}

fn fake(tenant: Tenant) -> FakeIo<Tenant> {
    FakeIo::new(tenant)
        .setting("base_url", BASE)
        .setting("page_size", "10")
        .secret("client_id", "c1")
        .secret("client_secret", "s3cr3t")
}

/// A tenant with `n` events indexed over the last hour.
fn tenant(n: usize) -> Tenant {
    let mut t = Tenant::default();
    t.add(n, START_MS - HOUR, 1_000);
    t
}

fn collect(io: &mut FakeIo<Tenant>) -> Result<Summary, Error> {
    io.run(|io| run(io))
}

fn events_requests(io: &FakeIo<Tenant>) -> Vec<&Request> {
    io.requests.iter().filter(|s| s.request.path() == "/v1.0/events").map(|s| &s.request).collect()
}

fn cursor(io: &FakeIo<Tenant>) -> serde_json::Value {
    let text = io.committed.as_deref().expect("a committed cursor");
    serde_json::from_str::<serde_json::Value>(text).unwrap()["streams"]["events"]["cursor"].clone()
}

#[test]
fn pages_to_the_end_byte_exact_then_a_second_run_collects_only_new_events() {
    let mut io = fake(tenant(25));
    let s = collect(&mut io).unwrap();
    assert_eq!(io.delivered, io.server.all(), "byte-exact, in indexed_at order, once");
    assert!(io.delivered[0].contains(r#""username":"j\u00f6rg","big":18446744073709551615"#));
    assert_eq!(s.note.as_deref(), Some("events: 3 pages, 25 records, caught up"));
    let reqs = events_requests(&io);
    assert_eq!(reqs.len(), 3, "10 + 10 + 5: a short page ends the paging");
    assert_eq!(reqs[0].query_value("from"), Some((START_MS - 24 * HOUR).to_string()), "default lookback 24 h");
    assert_eq!(reqs[0].query_value("after_id"), None);
    assert_eq!(reqs[0].query_value("all_events").as_deref(), Some("yes"));
    let last_of_page1: serde_json::Value = serde_json::from_str(&io.delivered[9]).unwrap();
    assert_eq!(reqs[1].query_value("after_id").as_deref(), last_of_page1["id"].as_str());
    assert_eq!(reqs[1].query_value("after_time"), Some(last_of_page1["indexed_at"].to_string()));
    assert_eq!(reqs[1].query_value("from"), reqs[1].query_value("after_time"));
    assert_eq!(io.server.logins, 1, "one token for the whole run");

    io.now_ms += 60_000;
    io.server.add(3, io.now_ms - 30_000, 1_000);
    let s = collect(&mut io).unwrap();
    assert_eq!(io.delivered.len(), 28);
    assert_eq!(io.delivered, io.server.all());
    assert_eq!(s.note.as_deref(), Some("events: 1 page, 3 records, caught up"));
    let last: serde_json::Value = serde_json::from_str(&io.delivered[27]).unwrap();
    assert_eq!(cursor(&io), serde_json::json!({"indexed_at": last["indexed_at"], "id": last["id"]}));
}

#[test]
fn the_first_run_looks_back_lookback_hours_and_pins_that_window() {
    let mut t = Tenant::default();
    t.add(1, START_MS - 49 * HOUR, 0);
    t.add(2, START_MS - 47 * HOUR, 60_000);
    let mut io = fake(t).setting("lookback_hours", "48");
    // The tenant is rate limiting for longer than a run waits: nothing is
    // delivered, but the window start is kept for the next run.
    io.server.faults.push_back(response(429, &[("Retry-After", "300")], ""));
    let s = collect(&mut io).unwrap();
    assert_eq!(s.note.as_deref(), Some("events: rate limited, next call in 300s"));
    assert_eq!(cursor(&io)["indexed_at"], START_MS - 48 * HOUR);
    assert_eq!(io.logged("First run: collecting events indexed since 2024-07-28T00:40:00Z"), 1);

    io.now_ms += 3_600_000;
    collect(&mut io).unwrap();
    assert_eq!(io.delivered, io.server.all()[1..], "the 49 h old event is outside the window");
    assert_eq!(events_requests(&io)[1].query_value("from"), Some((START_MS - 48 * HOUR).to_string()));
}

#[test]
fn late_indexed_events_and_events_not_yet_visible_are_collected_once_they_are_indexed() {
    let mut io = fake(tenant(5));
    // Happened 3 h ago, indexed a minute from now: invisible to this run.
    io.server.events.push(Event {
        id: "late".into(),
        time: START_MS - 3 * HOUR,
        indexed_at: START_MS + 60_000,
        kind: "sso",
    });
    collect(&mut io).unwrap();
    assert_eq!(io.delivered.len(), 5);
    io.now_ms += 120_000;
    collect(&mut io).unwrap();
    assert_eq!(io.delivered, io.server.all());
    assert!(io.delivered[5].contains(r#""id":"late""#));
}

#[test]
fn equal_indexed_at_values_across_a_page_boundary_are_neither_skipped_nor_repeated() {
    let same_instant = || {
        let mut t = Tenant::default();
        t.add(25, START_MS - HOUR, 0); // all indexed in the same millisecond
        fake(t)
    };
    let mut io = same_instant();
    let s = collect(&mut io).unwrap();
    assert_eq!(io.delivered, io.server.all());
    assert_eq!((s.pages, s.duplicates), (3, 0));
    let reqs = events_requests(&io);
    assert!(reqs[1..].iter().all(|r| r.query_value("after_time") == reqs[1].query_value("after_time")));
    crash_everywhere(same_instant, |io| run(io), |io, crash| assert_eq!(io.delivered, io.server.all(), "{crash:?}"));
}

#[test]
fn a_crash_at_any_step_delivers_every_event_exactly_once() {
    let tried = crash_everywhere(
        || fake(tenant(25)),
        |io| run(io),
        |io, crash| assert_eq!(io.delivered, io.server.all(), "after {crash:?}"),
    );
    assert_eq!(tried, 3 + 2 * 4, "3 commits; a token request and 3 pages");
}

/// A run that fails after a first run delivered one page, the tenant changed by `then`: its
/// error, the cursor checked unchanged.
fn refused_after_a_page(then: impl FnOnce(&mut Tenant)) -> (Error, FakeIo<Tenant>) {
    let mut io = fake(tenant(25)).setting("max_pages_per_run", "1");
    collect(&mut io).unwrap();
    let before = io.committed.clone();
    then(&mut io.server);
    let e = collect(&mut io).unwrap_err();
    assert_eq!(io.committed, before, "the cursor is unchanged");
    (e, io)
}

#[test]
fn bad_credentials_fail_as_auth_before_any_events_request_and_keep_the_cursor() {
    let (e, io) = refused_after_a_page(|t| t.secret_wrong = true);
    assert_eq!(e.kind(), "auth");
    assert!(e.message().contains("Client authentication failed."), "{e}");
    assert!(!e.message().contains("s3cr3t") && !io.logs.iter().any(|(_, m)| m.contains("s3cr3t")));
    assert_eq!(events_requests(&io).len(), 1, "only the first run's page");
}

#[test]
fn a_403_says_which_permission_is_missing_and_keeps_the_cursor() {
    let forbidden = json(403, r#"{"messageId":"CSIAH0618E","messageDescription":"Forbidden."}"#);
    let (e, _) = refused_after_a_page(|t| t.faults.push_back(forbidden));
    assert_eq!(e.kind(), "auth");
    assert!(e.message().contains("Read reports"), "{e}");
}

#[test]
fn an_expired_token_is_renewed_once_and_a_second_401_fails_as_auth() {
    let mut io = fake(tenant(25));
    io.server.faults.push_back(json(401, r#"{"messageDescription":"The access token expired."}"#));
    collect(&mut io).unwrap();
    assert_eq!(io.server.logins, 2, "one re-authentication");
    assert_eq!(io.delivered, io.server.all());

    let refusals = [json(401, "{}"), json(401, r#"{"messageDescription":"Still not valid."}"#)];
    let (e, _) = refused_after_a_page(|t| t.faults.extend(refusals));
    assert_eq!(e.kind(), "auth");
    assert!(e.message().contains("Still not valid."), "{e}");
}

#[test]
fn tokens_are_renewed_ahead_of_expiry_not_per_page() {
    let mut io = fake(tenant(25)).setting("max_pages_per_run", "1");
    collect(&mut io).unwrap();
    io.now_ms += 7_100_000; // within a minute of expires_in (7199 s): a new token
    collect(&mut io).unwrap();
    assert_eq!(io.server.logins, 2);
    let auth: Vec<_> =
        events_requests(&io).iter().map(|r| r.header_value("authorization").unwrap().to_string()).collect();
    assert_eq!(auth, ["Bearer tok-1", "Bearer tok-2"]);
}

#[test]
fn a_429_is_honoured_and_a_5xx_fails_the_run_with_the_cursor_kept() {
    let mut io = fake(tenant(15));
    io.server.faults.push_back(response(429, &[("Retry-After", "7")], ""));
    collect(&mut io).unwrap();
    assert_eq!(io.sleeps, [Duration::from_secs(7)]);
    assert_eq!(io.delivered, io.server.all());

    let html = response(503, &[("content-type", "text/html")], "<html>503 Service Unavailable</html>");
    let (e, mut io) = refused_after_a_page(|t| t.faults.push_back(html));
    assert_eq!(e.kind(), "vendor");
    assert!(e.message().contains("HTTP 503"), "{e}");
    io.settings.remove("max_pages_per_run");
    collect(&mut io).unwrap();
    assert_eq!(io.delivered, io.server.all(), "the next run resumes");
}

#[test]
fn a_400_from_the_api_is_a_config_error_naming_the_setting() {
    let mut io = fake(tenant(5));
    io.server.faults.push_back(json(
        400,
        r#"{"messageId":"CSIAQ0159E","messageDescription":"The [size] parameter is over 10000."}"#,
    ));
    let e = collect(&mut io).unwrap_err();
    assert_eq!(e.kind(), "config");
    assert!(e.message().contains("`page_size`"), "{e}");
}

#[test]
fn event_types_select_what_is_collected() {
    let mut io = fake(tenant(20)).setting("event_types", r#"["sso", "risk"]"#);
    collect(&mut io).unwrap();
    assert_eq!(events_requests(&io)[0].query_value("event_type").as_deref(), Some(r#""sso","risk""#));
    assert_eq!(io.delivered.len(), 8);
    assert!(io.delivered.iter().all(|e| e.contains(r#""event_type":"sso""#) || e.contains(r#""event_type":"risk""#)));
}

#[test]
fn max_pages_per_run_bounds_a_run_and_the_next_one_goes_on() {
    let mut io = fake(tenant(35)).setting("max_pages_per_run", "2");
    let s = collect(&mut io).unwrap();
    assert_eq!(s.note.as_deref(), Some("events: 2 pages, 20 records, page limit reached, more waiting"));
    assert!(!s.caught_up);
    collect(&mut io).unwrap();
    assert_eq!(io.delivered, io.server.all());
}

#[test]
fn a_bad_setting_or_missing_secret_fails_before_any_request() {
    for (io, key) in [
        (fake(tenant(1)).setting("page_size", "20000"), "`page_size`"),
        (fake(tenant(1)).setting("base_url", "acme.verify.ibm.com"), "`base_url`"),
        (FakeIo::new(tenant(1)).setting("base_url", BASE).secret("client_id", "c1"), "`client_secret`"),
    ] {
        let mut io = io;
        let e = collect(&mut io).unwrap_err();
        assert_eq!(e.kind(), "config");
        assert!(e.message().contains(key), "{e}");
        assert_eq!(io.sent(), 0);
    }
}

#[test]
fn a_checkpoint_of_another_version_is_refused_with_a_way_out() {
    let mut io = fake(tenant(1));
    io.committed = Some(r#"{"version":7,"streams":{}}"#.into());
    let e = collect(&mut io).unwrap_err();
    assert!(e.message().contains("reset the source's checkpoint"), "{e}");
}
