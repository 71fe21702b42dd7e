//! The mock control plane over a real loopback connection: the quirks of §2.9, one test each.

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::mock::client::{Got, post};
use crate::mock::oauth::basic_header;

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");
const JSON: (&str, &str) = ("content-type", "application/json");

async fn start(cfg: MockConfig) -> (MockMulesoft, String) {
    let mock = MockMulesoft::start(cfg).await.expect("mock starts");
    let body = b"grant_type=client_credentials&client_id=mule-client&client_secret=mule-secret";
    let got = post(mock.addr(), TOKEN_PATH, &[FORM], body).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert!(got.json().get("expires_in").is_none(), "no expires_in, as the documented example");
    let token = got.json()["access_token"].as_str().unwrap().to_owned();
    (mock, token)
}

async fn query(mock: &MockMulesoft, token: &str, cursor_mode: bool, body: Value) -> Got {
    let path = format!("{}{}", mock.query_path(), if cursor_mode { "?cursorPagination=true" } else { "" });
    let auth = format!("Bearer {token}");
    post(mock.addr(), &path, &[JSON, ("authorization", &auth)], body.to_string().as_bytes()).await
}

/// The entries of a 200 page as the exact text served.
fn data(got: &Got) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Page<'a> {
        #[serde(borrow)]
        data: Vec<&'a serde_json::value::RawValue>,
    }
    assert_eq!(got.status, 200, "{}", got.text());
    let text = got.text();
    let page: Page = serde_json::from_str(&text).expect("a page");
    page.data.iter().map(|r| r.get().to_owned()).collect()
}

fn ts(entry: &str) -> u64 {
    serde_json::from_str::<Value>(entry).unwrap()["timestamp"].as_u64().unwrap()
}

#[tokio::test]
async fn the_token_endpoint_takes_form_json_or_basic_and_refuses_a_wrong_secret() {
    let (mock, _) = start(MockConfig::default()).await;
    let addr = mock.addr();
    let json = json!({"grant_type": "client_credentials", "client_id": "mule-client", "client_secret": "mule-secret"});
    assert_eq!(post(addr, TOKEN_PATH, &[JSON], json.to_string().as_bytes()).await.status, 200);
    let basic = basic_header("mule-client", "mule-secret");
    let got = post(addr, TOKEN_PATH, &[FORM, ("authorization", &basic)], b"grant_type=client_credentials").await;
    assert_eq!(got.status, 200, "{}", got.text());
    let wrong = b"grant_type=client_credentials&client_id=mule-client&client_secret=nope";
    let got = post(addr, TOKEN_PATH, &[FORM], wrong).await;
    assert_eq!((got.status, got.json()["error"].as_str()), (401, Some("invalid_client")));
    assert_eq!(mock.oauth().issued(), 3);
}

#[tokio::test]
async fn cursor_mode_pages_to_the_end_and_only_non_empty_pages_carry_a_cursor() {
    let (mock, token) = start(MockConfig::default()).await;
    let all = mock.add_entries(25);
    let window = json!({"startDate": 0, "endDate": now_ms() + 1_000, "ascending": true, "limit": 10});
    let mut body = window.clone();
    let mut got = Vec::new();
    loop {
        let page = query(&mock, &token, true, body.clone()).await;
        let v = page.json();
        let entries = data(&page);
        if entries.is_empty() {
            assert!(v.get("cursor").is_none(), "an empty page has no cursor: {v}");
            break;
        }
        got.extend(entries);
        body["cursor"] = v["cursor"].clone();
    }
    assert!(got == all, "every entry once, in order, byte for byte: {} of {}", got.len(), all.len());
    assert!(got.iter().all(|e| e.contains("\"requestBytes\":90071992547") && e.contains("18446744073709551617")));
    let shared = all.windows(2).filter(|w| ts(&w[0]) == ts(&w[1])).count();
    assert!(shared > 5, "many entries share a millisecond: {shared}");
    assert!(all.iter().any(|e| e.contains(r#""part":"2/"#)), "some actions are split into parts");
    assert_eq!(query(&mock, &token, true, json!({"startDate": 0, "cursor": "garbage"})).await.status, 400);
}

#[tokio::test]
async fn offset_mode_counts_the_total_and_bounds_are_inclusive_as_ms_or_iso() {
    let (mock, token) = start(MockConfig::default()).await;
    let all = mock.add_entries(30);
    let (first, last) = (ts(&all[0]), ts(&all[29]));
    let got = query(&mock, &token, false, json!({"startDate": first, "endDate": last, "limit": 7, "offset": 28})).await;
    assert_eq!(got.json()["total"], 30, "both bounds inclusive");
    assert_eq!(data(&got), all[28..].to_vec());
    assert!(got.json().get("cursor").is_none());
    let iso = siphon_sdk::data::time::format_rfc3339_millis(last);
    let got = query(&mock, &token, false, json!({"startDate": iso, "limit": 200})).await;
    let at_last = all.iter().filter(|e| ts(e) == last).count();
    assert_eq!(got.json()["total"], at_last, "an ISO start works too");
    let desc = query(&mock, &token, false, json!({"startDate": 0, "ascending": false, "limit": 1})).await;
    assert_eq!(data(&desc), vec![all[29].clone()], "ascending false: newest first");
}

#[tokio::test]
async fn bad_queries_and_refusals_answer_as_mulesoft_does() {
    let (mock, token) = start(MockConfig::default()).await;
    let got = query(&mock, &token, true, json!({"startDate": 0, "limit": 201})).await;
    assert_eq!((got.status, got.json()["message"].as_str()), (400, Some("limit must be between 1 and 200")));
    assert_eq!(query(&mock, &token, true, json!({"limit": 10})).await.status, 400, "startDate is required");
    assert_eq!(query(&mock, &token, true, json!({"startDate": "yesterday"})).await.status, 400);
    assert_eq!(query(&mock, "forged", true, json!({"startDate": 0})).await.status, 401);
    let other = format!("{AUDIT_PREFIX}0a12b3c4-d5e6-789f-1021-1a2b34cd5e6f/query");
    let auth = format!("Bearer {token}");
    assert_eq!(post(mock.addr(), &other, &[JSON, ("authorization", &auth)], b"{}").await.status, 404);
    mock.set_permitted(false);
    let got = query(&mock, &token, true, json!({"startDate": 0})).await;
    assert_eq!(got.status, 403);
    mock.set_permitted(true);
    mock.oauth().expire_tokens();
    assert_eq!(query(&mock, &token, true, json!({"startDate": 0})).await.status, 401);
}

#[tokio::test]
async fn over_the_minute_quota_every_call_gets_an_html_503_without_retry_after() {
    let (mock, token) = start(MockConfig { quota_per_minute: 3, ..MockConfig::default() }).await;
    // Not across a minute boundary, or the count starts over.
    if now_ms() % 60_000 > 55_000 {
        tokio::time::sleep(Duration::from_secs(6)).await;
    }
    let body = json!({"startDate": 0});
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(query(&mock, &token, true, body.clone()).await);
    }
    let over = statuses.iter().find(|g| g.status == 503).expect("the quota is hit");
    assert!(over.text().contains("<html>") && over.header("retry-after").is_none());
    assert_eq!(over.header("content-type"), Some("text/html; charset=utf-8"));

    mock.set_quota(700);
    mock.rate_limit_next(1);
    let got = query(&mock, &token, true, body).await;
    assert_eq!((got.status, got.header("x-ratelimit-remaining")), (429, Some("0")));
    let reset: u64 = got.header("x-ratelimit-reset").unwrap().parse().unwrap();
    assert!(reset * 1_000 > now_ms() && reset.is_multiple_of(60), "epoch seconds of the next minute: {reset}");
}

#[tokio::test]
async fn late_entries_stay_invisible_until_the_store_has_them() {
    let cfg = MockConfig { late_every: 2, late_by: Duration::from_millis(400), ..MockConfig::default() };
    let (mock, token) = start(cfg).await;
    let all = mock.add_entries(6);
    let body = json!({"startDate": 0, "endDate": now_ms() + 10_000});
    let early = data(&query(&mock, &token, true, body.clone()).await);
    assert_eq!(early.len(), 3, "every second entry is late");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(data(&query(&mock, &token, true, body).await), all);
}
