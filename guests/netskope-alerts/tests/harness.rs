//! The Netskope collector component under siphon's real engine, with
//! scripted vendor responses: given these responses and this cursor, it
//! emits these records, commits this cursor and sends these requests.
//!
//! Needs `target/guests/netskope_alerts.wasm` (`make guests`).

use serde_json::Value;
use siphon_harness::{Harness, Reply, When};

const BASE: &str = "https://acme.goskope.com";
const TOKEN: &str = "harness-token-0042";
const DLP: &str = "https://acme.goskope.com/api/v2/events/dataexport/alerts/dlp";

/// Two DLP alerts as the vendor sends them: a u64 above 2^53, non-ASCII
/// text, and key order that a re-serialisation would change.
const A1: &str = r#"{"_id":"aaaaaaaaaaaaaaaaaaaaaa01","timestamp":1722282900,"alert_type":"DLP","dlp_incident_id":4871139218723649281,"user":"josé.müller@example.com","z":1,"a":2}"#;
const A2: &str =
    r#"{"_id":"aaaaaaaaaaaaaaaaaaaaaa02","timestamp":1722282960,"alert_type":"dlp","object":"年度报告_2024.pdf"}"#;
const A3: &str = r#"{"_id":"aaaaaaaaaaaaaaaaaaaaaa03","timestamp":1722283000,"alert_type":"dlp"}"#;

fn page(records: &[&str], wait_time: u64) -> Reply {
    Reply::json(200, format!(r#"{{"ok":1,"wait_time":{wait_time},"result":[{}]}}"#, records.join(",")))
        .header("ratelimit-remaining", "100")
        .header("ratelimit-reset", "1")
}

fn harness() -> Harness {
    Harness::new("netskope_alerts")
        .unwrap_or_else(|e| panic!("{e}"))
        .allow_host("acme.goskope.com")
        .setting("base_url", BASE)
        .setting("alert_types", "dlp")
        .setting("full_page", "3")
        .secret("api_token", TOKEN)
}

fn cursor_json(run: &siphon_harness::Run) -> Value {
    serde_json::from_str(run.cursor.as_deref().expect("a committed cursor")).expect("cursor is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_run_starts_at_the_lookback_epoch_and_emits_byte_exact_records() {
    let mut h = harness();
    h.script(When::get(DLP).header("Netskope-Api-Token", TOKEN).query("index", "siphon-test"), page(&[A1, A2], 0));
    let run = h.run().await.expect("run");
    assert!(run.report.ok(), "{:?}", run.report.outcome);
    assert_eq!(run.records, vec![A1.to_owned(), A2.to_owned()], "records reach the sink unchanged");
    assert!(run.unmatched.is_empty(), "{:?}", run.unmatched);

    assert_eq!(run.requests.len(), 1, "a short page means caught up");
    let op: u64 = run.requests[0].param("operation").expect("operation").parse().expect("an epoch");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!((now - 24 * 3600).abs_diff(op) < 120, "default look-back is 24 h: {op} vs {now}");

    let cursor = cursor_json(&run);
    assert_eq!(cursor["version"], 2);
    assert_eq!(cursor["scope"], "siphon-test", "the index the bookmarks belong to");
    let dlp = &cursor["streams"]["dlp"];
    assert!(dlp.get("inflight").is_none_or(|v| v == false), "{cursor}");
    assert_eq!(dlp["last_page"]["count"], 2);
    assert_eq!(dlp["last_page"]["last_id"], "aaaaaaaaaaaaaaaaaaaaaa02");
    assert_eq!(dlp["cursor"]["last_ts"], 1722282960);
    assert_eq!(dlp["cursor"]["started"], true);
    let summary = run.report.outcome.as_ref().unwrap();
    assert!(summary.caught_up);
    assert_eq!(summary.pages, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_runs_continue_with_next_and_page_until_a_short_page() {
    let mut h = harness();
    h.script_times(When::get(DLP), page(&[A1], 0), 1);
    assert!(h.run().await.unwrap().report.ok());
    h.clear_script();
    h.script_times(
        When::get(DLP).query("operation", "next"),
        page(&[A2, A3, r#"{"_id":"x4","timestamp":1722283100}"#], 0),
        1,
    );
    h.script_times(When::get(DLP).query("operation", "next"), page(&[], 5), 1);
    let run = h.run().await.unwrap();
    assert!(run.report.ok(), "{:?}", run.report.outcome);
    let ops: Vec<&str> = run.requests.iter().map(|r| r.param("operation").unwrap()).collect();
    assert_eq!(ops, ["next", "next"], "a full page (3) asks for more; an empty one ends");
    assert_eq!(run.records.len(), 4);
    let dlp = &cursor_json(&run)["streams"]["dlp"];
    assert!(dlp["not_before_ms"].as_u64().is_some(), "wait_time 5 s is remembered for the next run: {dlp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_resend_recovers_the_page_and_a_replayed_page_is_not_duplicated() {
    let mut h = harness();
    h.script_times(When::get(DLP), page(&[A1], 0), 1);
    let first = h.run().await.unwrap();
    assert!(first.report.ok());

    // Case 1: the process died after committing `inflight: next`, before the
    // request reached Netskope. `resend` replays the page already delivered.
    let mut cursor = cursor_json(&first);
    cursor["streams"]["dlp"]["inflight"] = Value::from(true);
    h.set_cursor(Some(&cursor.to_string())).await.unwrap();
    h.clear_script();
    h.script_times(When::get(DLP).query("operation", "resend"), page(&[A1], 0), 1);
    h.script_times(When::get(DLP).query("operation", "next"), page(&[A2], 0), 1);
    let run = h.run().await.unwrap();
    assert!(run.report.ok(), "{:?}", run.report.outcome);
    let ops: Vec<&str> = run.requests.iter().map(|r| r.param("operation").unwrap()).collect();
    assert_eq!(ops, ["resend", "next"]);
    assert_eq!(run.records, vec![A1.to_owned(), A2.to_owned()], "A1 is not delivered twice");
    let summary = run.report.outcome.as_ref().unwrap();
    assert_eq!(summary.duplicates, 0, "a recognised replay is not a duplicate");
    assert!(summary.note.as_deref().unwrap().contains("1 already-delivered records skipped after a resend"));

    // Case 2: Netskope served `next` but the page never reached the sink.
    let mut cursor = cursor_json(&run);
    cursor["streams"]["dlp"]["inflight"] = Value::from(true);
    h.set_cursor(Some(&cursor.to_string())).await.unwrap();
    h.clear_script();
    h.script_times(When::get(DLP).query("operation", "resend"), page(&[A3], 0), 1);
    let run = h.run().await.unwrap();
    assert!(run.report.ok(), "{:?}", run.report.outcome);
    assert_eq!(run.records, vec![A1.to_owned(), A2.to_owned(), A3.to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_refusals_are_clear_errors_that_keep_the_cursor() {
    let mut h = harness();
    h.script_times(When::get(DLP), page(&[A1], 0), 1);
    let first = h.run().await.unwrap();
    h.clear_script();
    h.script(When::get(DLP), Reply::json(403, r#"{"message":"Invalid token or missing scope"}"#));
    let run = h.run().await.unwrap();
    let err = run.report.outcome.as_ref().expect_err("403 fails the run");
    assert_eq!(run.requests.len(), 1, "a refusal is not retried");
    assert_eq!(err.kind(), "auth");
    assert!(err.to_string().contains("dlp") && err.to_string().contains("missing scope"), "{err}");
    assert_eq!(run.cursor, first.cursor, "checkpoint unchanged");

    h.clear_script();
    h.script(When::get(DLP), Reply::json(404, r#"{"message":"This dataexporter does not exist"}"#));
    let run = h.run().await.unwrap();
    let err = run.report.outcome.as_ref().expect_err("404 fails the run");
    assert_eq!(err.kind(), "not_found");
    assert!(err.to_string().contains("dlp"), "{err}");
    assert_eq!(run.cursor, first.cursor, "checkpoint unchanged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pretty_printed_pages_become_single_line_records_and_duplicates_are_dropped() {
    let mut h = harness();
    let body = "{\n  \"ok\": 1,\n  \"wait_time\": 0,\n  \"result\": [\n    {\"_id\": \"p1\", \"note\": \"a  b\\n c\"},\n    {\"_id\": \"p1\", \"note\": \"again\"}\n  ]\n}";
    h.script(When::get(DLP), Reply::json(200, body));
    let run = h.run().await.unwrap();
    assert!(run.report.ok(), "{:?}", run.report.outcome);
    assert_eq!(run.records, vec![r#"{"_id":"p1","note":"a  b\n c"}"#.to_owned()]);
    assert_eq!(run.report.outcome.as_ref().unwrap().duplicates, 1);

    // An empty 204 is an empty page.
    let mut h = harness();
    h.script(When::get(DLP), Reply::new(204, ""));
    let run = h.run().await.unwrap();
    assert!(run.report.ok(), "{:?}", run.report.outcome);
    assert!(run.records.is_empty());
}
