//! The MuleSoft collector component under siphon's real engine and egress
//! policy, with scripted Anypoint responses: given these responses and this
//! cursor, it emits these records, commits this cursor and sends these
//! requests.
//!
//! Needs `target/guests/mulesoft_audit.wasm` (`make guests`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use siphon_harness::{Harness, Recorded, Reply, Run, When};

const BASE: &str = "https://eu1.anypoint.mulesoft.com";
const ORG: &str = "3f1c6a2e-7b5d-4c1e-9a2f-0d8e7c6b5a41";
const TOKEN_URL: &str = "https://eu1.anypoint.mulesoft.com/accounts/api/v2/oauth2/token";
const QUERY: &str =
    "https://eu1.anypoint.mulesoft.com/audit/v2/organizations/3f1c6a2e-7b5d-4c1e-9a2f-0d8e7c6b5a41/query";
const SECRET: &str = "harness-client-secret-0042";

/// Entries as Anypoint sends them, an hour old: an integer above 2^64 in
/// the payload, non-ASCII text, and (E2..E4) two parts of one action and a
/// login sharing a millisecond.
fn entries() -> ([String; 4], u64) {
    let (t1, t2) = (now_ms() - 3_600_000, now_ms() - 3_500_000);
    let org = r#""organizationId":"3f1c6a2e-7b5d-4c1e-9a2f-0d8e7c6b5a41""#;
    let e = [
        format!(
            r#"{{{org},"timestamp":{t1},"action":"Update","userName":"josé","objects":[{{"objectId":"b7e9","objectName":"orders-api","objectType":"Application"}}],"anypointTransactionId":"c0ffee00","payload":{{"subaction":"Restart","properties":{{"workers":18446744073709551617}}}}}}"#
        ),
        format!(
            r#"{{{org},"timestamp":{t2},"action":"Update","anypointTransactionId":"tx-2","payload":{{"part":1,"text":"年度报告"}}}}"#
        ),
        format!(
            r#"{{{org},"timestamp":{t2},"action":"Update","anypointTransactionId":"tx-2","payload":{{"part":2}}}}"#
        ),
        format!(r#"{{{org},"timestamp":{t2},"action":"Login","clientName":"siem-connected-app","payload":{{}}}}"#),
    ];
    (e, t2)
}

fn harness() -> Harness {
    Harness::new("mulesoft_audit")
        .unwrap_or_else(|e| panic!("{e}"))
        .allow_host("eu1.anypoint.mulesoft.com")
        .setting("base_url", BASE)
        .setting("organization_id", ORG)
        .secret("client_id", "harness-app")
        .secret("client_secret", SECRET)
}

/// A token answer without `expires_in`, as MuleSoft's documented example.
fn token() -> Reply {
    Reply::json(200, r#"{"access_token":"3c8e2a44-2f0b-4b58-9a8e-7d0f6c1b2a90","token_type":"bearer"}"#)
}

fn page(entries: &[&String], cursor: Option<&str>) -> Reply {
    let cursor = cursor.map(|c| format!(r#", "cursor": "{c}""#)).unwrap_or_default();
    Reply::json(
        200,
        format!(
            "{{\"data\": [\n  {}\n]{cursor}}}",
            entries.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(",\n  ")
        ),
    )
}

fn body(r: &Recorded) -> Value {
    serde_json::from_slice(&r.body).expect("a JSON body")
}

fn position(run: &Run) -> Value {
    let cursor: Value = serde_json::from_str(run.cursor.as_deref().expect("a committed cursor")).expect("JSON");
    cursor["streams"]["audit"]["cursor"].clone()
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_run_pages_with_the_cursor_and_delivers_entries_byte_exact() {
    let ([e1, e2, e3, e4], t2) = entries();
    let mut h = harness();
    h.script(When::new("POST", TOKEN_URL), token());
    let query = || When::new("POST", QUERY).query("cursorPagination", "true");
    h.script_times(query(), page(&[&e1, &e2], Some(&format!("{t2}_2"))), 1);
    h.script_times(query(), page(&[&e3, &e4], Some(&format!("{t2}_4"))), 1);
    h.script_times(query(), Reply::json(200, r#"{"data":[]}"#), 1);
    let started = now_ms();
    let run = h.run().await.expect("run");
    let during = started..=now_ms();
    assert!(run.report.ok(), "{:?}", run.report.outcome);
    assert!(run.unmatched.is_empty(), "{:?}", run.unmatched);
    assert_eq!(run.records, [e1.clone(), e2.clone(), e3.clone(), e4.clone()], "entries reach the sink unchanged");

    let [tok, q1, q2, q3] = &run.requests[..] else { panic!("{:?}", run.requests) };
    let form = String::from_utf8_lossy(&tok.body);
    assert!(form.contains("grant_type=client_credentials") && form.contains("client_id=harness-app"), "{form}");
    assert_eq!(q1.header("authorization"), Some("Bearer 3c8e2a44-2f0b-4b58-9a8e-7d0f6c1b2a90"));
    assert_eq!(q1.header("siphon-retry"), None, "the host strips its own headers");
    let b1 = body(q1);
    let start = b1["startDate"].as_u64().expect("startDate as epoch ms");
    let end = b1["endDate"].as_u64().expect("endDate as epoch ms");
    assert!(during.contains(&(start + 24 * 3_600_000)), "24 h back: {start} ({during:?})");
    assert!(during.contains(&(end + 60_000)), "60 s behind now: {end} ({during:?})");
    assert_eq!((b1["ascending"].clone(), b1["limit"].clone(), b1.get("cursor")), (true.into(), 200.into(), None));
    let (b2, b3) = (body(q2), body(q3));
    assert_eq!(
        (&b2["startDate"], &b2["endDate"], &b2["cursor"]),
        (&b1["startDate"], &b1["endDate"], &format!("{t2}_2").into())
    );
    assert_eq!(b3["cursor"], format!("{t2}_4"), "the same query again with the new cursor");

    let p = position(&run);
    assert_eq!(p["since"], t2);
    assert_eq!(p["at_since"].as_array().map(Vec::len), Some(3), "every entry at the last millisecond: {p}");
    assert!(p["query"].is_null(), "the query ended: {p}");
    let summary = run.report.outcome.as_ref().expect("ok");
    assert!(summary.caught_up);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_run_starts_at_the_boundary_and_drops_only_what_it_delivered_there() {
    let ([e1, e2, e3, e4], t2) = entries();
    let mut h = harness();
    h.script(When::new("POST", TOKEN_URL), token());
    h.script_times(When::new("POST", QUERY), page(&[&e1, &e2, &e3], Some("c1")), 1);
    h.script_times(When::new("POST", QUERY), Reply::json(200, r#"{"data":[]}"#), 1);
    let first = h.run().await.expect("run");
    assert_eq!(first.records, [e1.clone(), e2.clone(), e3.clone()]);

    // The audit store was eventually consistent: E4 shares E2's millisecond
    // and shows up now, between the two entries already delivered.
    h.clear_script();
    h.script(When::new("POST", TOKEN_URL), token());
    h.script_times(When::new("POST", QUERY), page(&[&e2, &e4, &e3], Some("c2")), 1);
    h.script_times(When::new("POST", QUERY), Reply::json(200, r#"{"data":[]}"#), 1);
    let run = h.run().await.expect("run");
    assert!(run.report.ok(), "{:?}", run.report.outcome);
    assert_eq!(run.records, [e1.clone(), e2.clone(), e3.clone(), e4.clone()], "E4 once, E2 and E3 not again");
    assert_eq!(body(&run.requests[1])["startDate"], t2, "inclusive start at the boundary");
    assert_eq!(position(&run)["at_since"].as_array().map(Vec::len), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_503_is_not_retried_by_the_host_and_a_killed_run_keeps_its_cursor() {
    // Over the minute quota Anypoint answers 503 with an HTML page. The host
    // must hand it to the collector (which waits for the next minute), not
    // burn the quota with quick retries: the run is cut off by its timeout
    // while it waits, with exactly one query sent.
    let mut h = harness().limits(|l| l.run_timeout = Duration::from_secs(4));
    h.script(When::new("POST", TOKEN_URL), token());
    let html = "<html><head><title>503 Service Temporarily Unavailable</title></head></html>";
    h.script(When::new("POST", QUERY), Reply::new(503, html).header("content-type", "text/html"));
    // Start 5..45 s into a minute: the wait for the next window is then
    // 15..55 s, longer than the run may take and shorter than a run waits.
    let into_minute = (now_ms() + 55_000) % 60_000;
    if into_minute > 40_000 {
        tokio::time::sleep(Duration::from_millis(60_000 - into_minute)).await;
    }
    let run = h.run().await.expect("run");
    let queries = run.requests.iter().filter(|r| r.url == QUERY).count();
    assert_eq!(queries, 1, "{:?}", run.requests);
    let e = run.report.outcome.as_ref().expect_err("cut off while waiting for the next minute");
    assert_eq!(e.kind(), "deadline", "{e}");
    assert_eq!(run.cursor, None, "nothing committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_auth_errors_that_keep_the_cursor_and_never_show_the_secret() {
    let ([e1, ..], _) = entries();
    let mut h = harness();
    h.script(When::new("POST", TOKEN_URL), token());
    h.script_times(When::new("POST", QUERY), page(&[&e1], None), 1);
    let first = h.run().await.expect("run");
    assert!(first.report.ok(), "{:?}", first.report.outcome);

    h.clear_script();
    h.script(When::new("POST", TOKEN_URL), Reply::json(401, r#"{"error":"invalid_client"}"#));
    let run = h.run().await.expect("run");
    let e = run.report.outcome.as_ref().expect_err("a refused secret fails the run");
    assert_eq!(e.kind(), "auth", "{e}");
    assert!(e.to_string().contains("invalid_client") && !e.to_string().contains(SECRET), "{e}");
    assert_eq!(run.cursor, first.cursor);

    h.clear_script();
    h.script(When::new("POST", TOKEN_URL), token());
    h.script(When::new("POST", QUERY), Reply::json(403, r#"{"message":"Forbidden"}"#));
    let run = h.run().await.expect("run");
    let e = run.report.outcome.as_ref().expect_err("403 fails the run");
    assert_eq!(e.kind(), "auth", "{e}");
    assert!(e.to_string().contains("View Audit Log"), "{e}");
    assert_eq!(run.cursor, first.cursor);
}
