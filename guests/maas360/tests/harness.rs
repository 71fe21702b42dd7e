//! The MaaS360 collector component under siphon's real engine, with scripted vendor responses:
//! given these responses and this cursor, it sends these requests, emits these records and
//! commits this cursor.
//!
//! Needs `target/guests/maas360.wasm` (`make guests`).

use maas360::OVERLAP_MS;
use serde_json::Value;
use siphon_harness::{Harness, Reply, Run, When};

const BASE: &str = "https://services.m3.maas360.com";
const PASSWORD: &str = "harness-Pa55word";
const LOGIN: &str = "https://services.m3.maas360.com/auth-apis/auth/2.0/authenticate/customer/30012345";
const REFRESH: &str = "https://services.m3.maas360.com/auth-apis/auth/2.0/refreshToken/customer/30012345";
const LOGINS: &str =
    "https://services.m3.maas360.com/account-provisioning/administrator/1.0/getAdminLoginReports/customer/30012345";
const ACTIONS: &str = "https://services.m3.maas360.com/device-apis/devices/1.0/searchActionHistory/30012345";

/// Logins as MaaS360 sends them: numbers as strings, `""` for open sessions, non-ASCII text.
const L1: &str = r#"{"username":"jdoe","loginAttemptTime":"1730281234567","logoutTime":"","duration":"","operatingSystem":"Windows 10","ipAddress":"198.51.100.7","authStatus":"Successful","note":"Jörg \u00e9"}"#;
const L2: &str = r#"{"username":"asmith","loginAttemptTime":1730281200000,"logoutTime":1730281800000,"duration":10.0,"ipAddress":"198.51.100.8","authStatus":"User Authentication Failed"}"#;

fn harness() -> Harness {
    Harness::new("maas360")
        .unwrap_or_else(|e| panic!("{e}"))
        .allow_host("services.m3.maas360.com")
        .setting("base_url", BASE)
        .setting("billing_id", "30012345")
        .setting("app_id", "com.30012345.api")
        .setting("user_name", "svc_siem")
        .setting("streams", "admin_logins")
        .setting("page_size", "25")
        // The records below are from 2024.
        .setting("lookback_hours", "100000")
        .secret("password", PASSWORD)
        .secret("app_access_key", "Xk29fQ7pLm")
}

fn token_reply(token: &str, refresh: &str) -> Reply {
    Reply::json(
        200,
        format!(r#"{{"authResponse":{{"authToken":"{token}","refreshToken":"{refresh}","errorCode":0}}}}"#),
    )
}

fn logins(items: &str, number: &str) -> Reply {
    Reply::json(200, format!(r#"{{"loginEvents":{{"count":"1","pageNumber":{number},"pageSize":"25"{items}}}}}"#))
}

fn cursor(run: &Run) -> Value {
    serde_json::from_str(run.cursor.as_deref().expect("a committed cursor")).expect("cursor is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_in_with_json_and_reads_a_window_into_byte_exact_tagged_records() {
    let mut h = harness();
    h.script(When::new("POST", LOGIN).header("accept", "application/json"), token_reply("tok-1", "ref-1"));
    h.script_times(
        When::get(LOGINS).header("authorization", "MaaS token=\"tok-1\"").query("pageNumber", "1"),
        logins(&format!(r#","loginEvent":[{L1},{L2}]"#), "1"),
        1,
    );
    // A sweep that delivered looks again from its toDate: an empty page, no list key.
    h.script(When::get(LOGINS), logins("", "1"));
    let run = h.run().await.expect("run");
    assert!(run.report.ok(), "{:?}", run.report.outcome);
    assert!(run.unmatched.is_empty(), "{:?}", run.unmatched);
    let tag = r#"{"_maas360_record_type":"admin_login","#;
    assert_eq!(run.records, vec![format!("{tag}{}", &L1[1..]), format!("{tag}{}", &L2[1..])]);

    let login: Value = serde_json::from_slice(&run.requests[0].body).expect("a JSON login");
    let auth = &login["authRequest"]["maaS360AdminAuth"];
    assert_eq!(auth["billingID"], "30012345");
    assert_eq!((auth["platformID"].clone(), auth["appVersion"].clone()), ("3".into(), "1.0".into()));
    assert_eq!(auth["password"], PASSWORD);
    assert!(!run.requests[0].url.contains(PASSWORD), "secrets only in the body");

    assert_eq!(run.requests.len(), 3, "login, the window, the next window");
    let ms = |i: usize, k: &str| run.requests[i].param(k).and_then(|v| v.parse::<u64>().ok()).expect(k);
    assert_eq!(ms(2, "fromDate") + OVERLAP_MS, ms(1, "toDate"), "5 minutes back for late writes: keys drop repeats");
    let data = &run.requests[1];
    assert_eq!(data.header("accept"), Some("application/json"));
    let (from, to): (u64, u64) =
        (data.param("fromDate").unwrap().parse().unwrap(), data.param("toDate").unwrap().parse().unwrap());
    assert_eq!(to - from, 100_000 * 3_600_000, "the first window is lookback_hours long");
    let c = cursor(&run);
    assert_eq!(c["scope"], "30012345");
    let last_to: u64 = run.requests[2].param("toDate").unwrap().parse().unwrap();
    assert_eq!(c["streams"]["admin_logins"]["cursor"]["mark"]["at"], last_to, "the next window starts at toDate");
    assert!(!run.cursor.as_deref().unwrap().contains("tok-1") && !run.cursor.as_deref().unwrap().contains("ref-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_with_http_200_is_an_auth_error_and_keeps_the_cursor() {
    let mut h = harness();
    h.set_cursor(Some(r#"{"version":1,"scope":"30012345","streams":{}}"#)).await.unwrap();
    h.script(
        When::new("POST", LOGIN),
        Reply::json(200, r#"{"authResponse":{"errorCode":1002,"errorDesc":"Invalid credentials"}}"#),
    );
    let run = h.run().await.expect("run");
    let err = run.report.outcome.as_ref().expect_err("refused");
    assert_eq!(err.kind(), "auth");
    let text = format!("{err:?}");
    assert!(text.contains("billing id 30012345") && text.contains("1002") && !text.contains(PASSWORD), "{text}");
    assert_eq!(run.requests.len(), 1, "no data call without a token");
    assert_eq!(run.cursor.as_deref(), Some(r#"{"version":1,"scope":"30012345","streams":{}}"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_is_answered_with_the_refresh_token_and_the_call_is_repeated() {
    let mut h = harness().setting("streams", "action_history");
    h.script(When::new("POST", LOGIN), token_reply("tok-1", "ref-1"));
    h.script(When::new("POST", REFRESH), token_reply("tok-2", "ref-2"));
    h.script(When::get(ACTIONS).header("authorization", "MaaS token=\"tok-1\""), Reply::new(401, "Token expired"));
    // One action: an object, not an array; its id is above 2^53 and its time RFC 1123.
    let action =
        r#"{"actionID":9007199254740993,"actionType":"Buzz Device","actionTime":"Wed, 30 Oct 2024 11:58:02 GMT"}"#;
    h.script(
        When::get(ACTIONS).header("authorization", "MaaS token=\"tok-2\""),
        Reply::json(
            200,
            format!(r#"{{"actionHistory":{{"count":1,"pageNumber":1,"pageSize":25,"action":{action}}}}}"#),
        ),
    );
    let run = h.run().await.expect("run");
    assert!(run.report.ok(), "{:?}", run.report.outcome);
    let refresh: Value = serde_json::from_slice(&run.requests[2].body).expect("JSON");
    assert_eq!(refresh["authRequest"]["maaS360AdminAuth"]["refreshToken"], "ref-1");
    assert!(refresh["authRequest"]["maaS360AdminAuth"].get("password").is_none());
    assert_eq!(run.records, vec![format!(r#"{{"_maas360_record_type":"action_history",{}"#, &action[1..])]);
    let mark = &cursor(&run)["streams"]["action_history"]["cursor"]["mark"];
    assert_eq!(mark["at"], 1_730_289_482_000u64, "the newest action is the mark");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compliance_events_stop_when_the_page_number_goes_back() {
    let mut h = harness().setting("streams", "compliance_events");
    let url = "https://services.m3.maas360.com/device-apis/devices/1.0/searchComplianceEvents/30012345";
    h.script(When::new("POST", LOGIN), token_reply("tok-1", "ref-1"));
    let event = |i: u32| {
        format!(
            r#"{{"maas360DeviceID":"D{i}","rule":"Jailbreak detected","actionExecutionTime":"2024-10-30T07:29:{:02}Z"}}"#,
            59 - i
        )
    };
    let full: Vec<String> = (0..25).map(event).collect();
    let body = |n: u32| {
        format!(r#"{{"complianceEvents":{{"pageNumber":"{n}","pageSize":25,"complianceEvent":[{}]}}}}"#, full.join(","))
    };
    h.script_times(When::get(url).query("pageNumber", "1"), Reply::json(200, body(1)), 1);
    h.script_times(When::get(url).query("pageNumber", "2"), Reply::json(200, body(1)), 1);
    // The next sweep finds only what it delivered.
    h.script(When::get(url).query("pageNumber", "1"), Reply::json(200, body(1)));
    let run = h.run().await.expect("run");
    assert!(run.report.ok(), "{:?}", run.report.outcome);
    assert_eq!(run.records.len(), 25, "page 1 once; page 2 answered as page 1 is the end");
    assert_eq!(run.requests.len(), 4, "login, pages 1 and 2, then page 1 of the next sweep");
    assert_eq!(cursor(&run)["streams"]["compliance_events"]["cursor"]["page"], 0, "the sweep is over");
}
