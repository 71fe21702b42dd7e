//! The Verify collector component under siphon's real engine, with scripted
//! tenant responses: given these answers and this cursor, it sends these
//! requests, emits these records and commits this cursor.
//!
//! Needs `target/guests/ibm_verify.wasm` (`make guests`).

use serde_json::Value;
use siphon_harness::{Harness, Recorded, Reply, Run, When};

const BASE: &str = "https://acme.verify.ibm.com";
const TOKEN: &str = "https://acme.verify.ibm.com/v1.0/endpoint/default/token";
const EVENTS: &str = "https://acme.verify.ibm.com/v1.0/events";
const SECRET: &str = "harness-secret-0042";

/// Events as the API sends them: ASCII-escaped text, an integer above 2^53
/// in `data`, key order a re-serialisation would change.
const E1: &str = r#"{"id":"0b6c2a8e-5a0e-4f4c-9a51-1d2f3e4a5b6c","time":1722282900000,"indexed_at":1722282900412,"event_type":"authentication","data":{"result":"failure","username":"j\u00f6rg","cause":"\u30e6\u30fc\u30b6\u30fc","applicationid":18446744073709551615},"z":1,"a":2}"#;
const E2: &str = r#"{"id":"1c7d3b9f-6b1f-4a5d-8b62-2e3f4a5b6c7d","time":1722282800000,"indexed_at":1722282960003,"event_type":"sso","data":{"result":"success"}}"#;
const E3: &str = r#"{"id":"2d8e4c0a-7c2a-4b6e-9c73-3f4a5b6c7d8e","time":1722282960100,"indexed_at":1722282960003,"event_type":"management","data":{}}"#;

fn page(events: &[&str]) -> Reply {
    let search_after = match events.last() {
        Some(last) => {
            let v: Value = serde_json::from_str(last).unwrap();
            format!(r#""time":"{}","id":{},"#, v["indexed_at"], v["id"])
        }
        None => String::new(),
    };
    Reply::json(
        200,
        format!(
            "{{\"response\":{{\"events\":{{\"search_after\":{{{search_after}\"total_events\":{},\"max_size_limit\":\"false\"}},\"events\":[\n{}\n]}}}}}}",
            events.len(),
            events.join(",\n")
        ),
    )
}

fn token(n: u32) -> Reply {
    Reply::json(
        200,
        format!(r#"{{"access_token":"tok-{n}","token_type":"Bearer","expires_in":7199,"scope":"openid"}}"#),
    )
}

fn harness() -> Harness {
    let mut h = Harness::new("ibm_verify")
        .unwrap_or_else(|e| panic!("{e}"))
        .allow_host("acme.verify.ibm.com")
        .setting("base_url", BASE)
        .setting("page_size", "2")
        .setting("lookback_hours", "48")
        .secret("client_id", "harness-client")
        .secret("client_secret", SECRET);
    h.script_times(When::new("POST", TOKEN), token(1), 1);
    h
}

fn cursor(run: &Run) -> Value {
    let text = run.cursor.as_deref().expect("a committed cursor");
    serde_json::from_str::<Value>(text).expect("cursor is JSON")["streams"]["events"]["cursor"].clone()
}

fn gets(run: &Run) -> Vec<&Recorded> {
    run.requests.iter().filter(|r| r.method == "GET").collect()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_run_logs_in_pages_in_indexed_order_and_emits_byte_exact_records() {
    let mut h = harness();
    let bearer = When::get(EVENTS).header("authorization", "Bearer tok-1");
    h.script_times(bearer.clone().query("range_type", "indexed_at").query("sort_order", "asc"), page(&[E1, E2]), 1);
    h.script_times(bearer.query("after_id", "1c7d3b9f-6b1f-4a5d-8b62-2e3f4a5b6c7d"), page(&[E3]), 1);
    let run = h.run().await.expect("run");
    assert!(run.report.ok(), "{:?}", run.report.outcome);
    assert!(run.unmatched.is_empty(), "{:?}", run.unmatched);
    assert_eq!(run.records, [E1, E2, E3], "records reach the sink unchanged");

    let login = &run.requests[0];
    assert_eq!((login.method.as_str(), login.url.as_str()), ("POST", TOKEN));
    assert_eq!(login.header("content-type"), Some("application/x-www-form-urlencoded"));
    let form = String::from_utf8_lossy(&login.body);
    assert!(form.contains("grant_type=client_credentials") && form.contains("client_id=harness-client"), "{form}");

    let gets = gets(&run);
    assert_eq!(gets.len(), 2, "a short page ends the paging");
    let from: u64 = gets[0].param("from").unwrap().parse().unwrap();
    assert!(from.abs_diff(now_ms() - 48 * 3_600_000) < 120_000, "lookback_hours = 48: {from}");
    assert_eq!(gets[0].param("all_events"), Some("yes"));
    assert_eq!(gets[0].param("size"), Some("2"));
    assert_eq!(gets[0].param("after_id"), None);
    assert_eq!(gets[1].param("from"), Some("1722282960003"));
    assert_eq!(gets[1].param("after_time"), Some("1722282960003"));
    assert_eq!(
        cursor(&run),
        serde_json::json!({"indexed_at": 1722282960003u64, "id": "2d8e4c0a-7c2a-4b6e-9c73-3f4a5b6c7d8e"})
    );
    let summary = run.report.outcome.as_ref().unwrap();
    assert_eq!((summary.pages, summary.caught_up), (2, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_run_continues_after_the_cursor_and_quotes_event_types() {
    let mut h = harness().setting("event_types", r#"["authentication", "sso"]"#);
    h.set_cursor(Some(r#"{"version":1,"streams":{"events":{"cursor":{"indexed_at":1722282900412,"id":"0b6c2a8e-5a0e-4f4c-9a51-1d2f3e4a5b6c"}}}}"#))
        .await
        .unwrap();
    h.script(When::get(EVENTS), page(&[]));
    let run = h.run().await.unwrap();
    assert!(run.report.ok(), "{:?}", run.report.outcome);
    let get = gets(&run)[0];
    assert_eq!(get.param("event_type"), Some(r#""authentication","sso""#));
    assert_eq!(get.param("all_events"), None);
    assert_eq!(get.param("from"), Some("1722282900412"));
    assert_eq!(get.param("after_time"), Some("1722282900412"));
    assert_eq!(get.param("after_id"), Some("0b6c2a8e-5a0e-4f4c-9a51-1d2f3e4a5b6c"));
    assert_eq!(cursor(&run)["id"], "0b6c2a8e-5a0e-4f4c-9a51-1d2f3e4a5b6c", "an empty page keeps the cursor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_renewed_once() {
    let mut h = harness();
    h.script_times(When::new("POST", TOKEN), token(2), 1);
    h.script(
        When::get(EVENTS).header("authorization", "Bearer tok-1"),
        Reply::json(401, r#"{"messageId":"CSIAH0617E","messageDescription":"The token expired."}"#),
    );
    h.script(When::get(EVENTS).header("authorization", "Bearer tok-2"), page(&[E1]));
    let run = h.run().await.unwrap();
    assert!(run.report.ok(), "{:?}", run.report.outcome);
    assert_eq!(run.records, [E1]);
    assert_eq!(run.requests.iter().filter(|r| r.method == "POST").count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_named_and_keep_the_cursor() {
    let mut h = harness();
    h.script_times(When::get(EVENTS), page(&[E1]), 1);
    let first = h.run().await.unwrap();
    assert!(first.report.ok(), "{:?}", first.report.outcome);

    for (status, body, kind, says) in [
        (403, r#"{"messageId":"CSIAH0618E","messageDescription":"Forbidden"}"#, "auth", "Read reports"),
        (
            400,
            r#"{"messageId":"CSIAQ0159E","messageDescription":"The [size] value is not valid."}"#,
            "config",
            "`page_size`",
        ),
    ] {
        h.clear_script();
        h.script(When::new("POST", TOKEN), token(1));
        h.script(When::get(EVENTS), Reply::json(status, body));
        let run = h.run().await.unwrap();
        let err = run.report.outcome.as_ref().expect_err("the run fails");
        assert_eq!(err.kind(), kind, "{err}");
        assert!(err.to_string().contains(says), "{err}");
        assert_eq!(run.cursor, first.cursor, "checkpoint unchanged");
    }

    h.clear_script();
    h.script(
        When::new("POST", TOKEN),
        Reply::json(401, r#"{"error":"invalid_client","error_description":"Bad client."}"#),
    );
    let run = h.run().await.unwrap();
    let err = run.report.outcome.as_ref().expect_err("bad credentials fail the run");
    assert_eq!(err.kind(), "auth");
    assert!(err.to_string().contains("Bad client.") && !err.to_string().contains(SECRET), "{err}");
    assert!(gets(&run).is_empty());
    assert_eq!(run.cursor, first.cursor);
}
