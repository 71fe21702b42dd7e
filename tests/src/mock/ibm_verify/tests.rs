//! The mock tenant over a real loopback connection: the quirks of §3.8, one test each.

use std::time::Duration;

use serde_json::Value;

use super::*;
use crate::mock::VendorMock;
use crate::mock::client::{Got, get, post};

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

async fn start(cfg: MockConfig) -> (MockVerify, String) {
    let mock = MockVerify::start(cfg).await.expect("mock starts");
    let body = b"grant_type=client_credentials&client_id=verify-client&client_secret=verify-secret";
    let got = post(mock.addr(), TOKEN_PATH, &[FORM], body).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["expires_in"], 7199);
    let token = got.json()["access_token"].as_str().unwrap().to_owned();
    (mock, token)
}

async fn events(mock: &MockVerify, token: &str, query: &str) -> Got {
    let auth = format!("Bearer {token}");
    get(mock.addr(), &format!("{EVENTS_PATH}?{query}"), &[("authorization", &auth)]).await
}

/// The ids of a 200 page, and its `search_after`.
fn page(got: &Got) -> (Vec<String>, Value) {
    assert_eq!(got.status, 200, "{}", got.text());
    let v = got.json();
    let events = &v["response"]["events"];
    let ids = events["events"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();
    (ids, events["search_after"].clone())
}

/// Waits until events added just now are visible (indexed_at has passed).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(5)).await;
}

#[tokio::test]
async fn pages_in_indexed_order_continue_strictly_after_the_search_after_pair() {
    let (mock, token) = start(MockConfig::default()).await;
    // One batch shares one indexed_at: every page boundary is a tie, broken by id.
    mock.add_events("sso", 7);
    settle().await;
    mock.add_events("token", 5);
    settle().await;
    let q = "all_events=yes&range_type=indexed_at&sort_order=asc&size=5&from=0";
    let (mut seen, mut sa) = page(&events(&mock, &token, q).await);
    assert!(sa["time"].is_string(), "search_after.time is a string: {sa}");
    assert_eq!(sa["max_size_limit"], "false");
    while seen.len() < 12 {
        let next = format!("{q}&after_time={}&after_id={}", sa["time"].as_str().unwrap(), sa["id"].as_str().unwrap());
        let (ids, next_sa) = page(&events(&mock, &token, &next).await);
        assert!(!ids.is_empty(), "ran dry after {} events", seen.len());
        seen.extend(ids);
        sa = next_sa;
    }
    let sorted = |mut ids: Vec<String>| {
        ids.sort();
        ids
    };
    let want: Vec<String> = sorted(mock.keys("sso")).into_iter().chain(sorted(mock.keys("token"))).collect();
    assert_eq!(seen, want, "each event once, ordered by (indexed_at, id)");
    let last = format!("{q}&after_time={}&after_id={}", sa["time"].as_str().unwrap(), sa["id"].as_str().unwrap());
    assert!(page(&events(&mock, &token, &last).await).0.is_empty());
}

#[tokio::test]
async fn bodies_are_ascii_escaped_and_records_are_served_byte_for_byte() {
    let (mock, token) = start(MockConfig::default()).await;
    mock.add_events("management", 3);
    settle().await;
    let got = events(&mock, &token, "all_events=yes&sort_order=asc").await;
    assert!(got.body.is_ascii());
    let text = got.text();
    for record in mock.records("management") {
        assert!(text.contains(&record), "served as stored");
        assert!(record.contains(r#"\u3092\u4f5c\u6210"#), "Japanese text escaped: {record}");
    }
}

#[tokio::test]
async fn the_defaults_hide_most_types_old_events_and_sort_newest_first() {
    let (mock, token) = start(MockConfig::default()).await;
    mock.add_events_at("sso", 2, now_ms() - 30 * HOUR_MS);
    mock.add_events("sso", 2);
    mock.add_events("risk", 2);
    settle().await;
    let (ids, _) = page(&events(&mock, &token, "").await);
    assert_eq!(ids.len(), 2, "24 h window, default types only: {ids:?}");
    assert!(ids.iter().all(|id| mock.keys("sso")[2..].contains(id)));
    let (ids, _) = page(&events(&mock, &token, "all_events=yes&from=0&range_type=indexed_at").await);
    assert_eq!(ids.len(), 6);
    let (asc, _) = page(&events(&mock, &token, "all_events=yes&from=0&range_type=indexed_at&sort_order=asc").await);
    assert_eq!(asc.iter().rev().collect::<Vec<_>>(), ids.iter().collect::<Vec<_>>(), "desc is the default");
    let (mut ids, _) = page(&events(&mock, &token, "event_type=%22risk%22&from=0").await);
    ids.sort();
    let mut risk = mock.keys("risk");
    risk.sort();
    assert_eq!(ids, risk, "a quoted event_type selects that type");
}

#[tokio::test]
async fn events_stay_invisible_until_indexed_and_late_ones_sort_by_indexed_at() {
    let (mock, token) = start(MockConfig { late_every: 2, ..MockConfig::default() }).await;
    mock.add_events("authentication", 4);
    let pending = mock.add_pending("authentication", 1, Duration::from_millis(300));
    settle().await;
    let q = "all_events=yes&range_type=indexed_at&sort_order=asc&from=0";
    let (ids, _) = page(&events(&mock, &token, q).await);
    assert_eq!(ids.len(), 4, "the pending event is not indexed yet");
    // Late events happened 3 h before they were indexed: a `time` range misses them.
    let since = now_ms() - HOUR_MS;
    let (by_time, _) = page(&events(&mock, &token, &format!("all_events=yes&from={since}")).await);
    assert_eq!(by_time.len(), 2, "{by_time:?}");
    tokio::time::sleep(Duration::from_millis(350)).await;
    let (ids, _) = page(&events(&mock, &token, q).await);
    assert_eq!(ids.last(), pending.last());
}

#[tokio::test]
async fn refusals_name_the_parameter_and_the_cause() {
    let (mock, token) = start(MockConfig { rate_limit: 4, ..MockConfig::default() }).await;
    let cases = [
        ("size=20000", 400, "[size]"),
        ("all_events=yes&sort_order=up", 400, "[sort_order]"),
        ("event_type=%22sso%22,risk", 400, "double quotes"),
        ("after_time=5", 400, "together"),
    ];
    for (query, status, says) in cases {
        let got = events(&mock, &token, query).await;
        assert_eq!(got.status, status, "{query}: {}", got.text());
        assert!(got.json()["messageDescription"].as_str().unwrap().contains(says), "{}", got.text());
    }
    let got = events(&mock, &token, "").await;
    assert_eq!(got.status, 429);
    assert!(got.header("retry-after").unwrap().parse::<u64>().unwrap() <= 60);

    let (mock, token) = start(MockConfig { token_lifetime: Duration::from_millis(200), ..MockConfig::default() }).await;
    assert_eq!(events(&mock, &token, "").await.status, 200);
    assert_eq!(events(&mock, "forged", "").await.status, 401);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let got = events(&mock, &token, "").await;
    assert_eq!(got.status, 401, "the token expired");
    assert!(got.json()["messageId"].is_string());
    mock.set_entitled(false);
    let body = b"grant_type=client_credentials&client_id=verify-client&client_secret=verify-secret";
    let fresh = post(mock.addr(), TOKEN_PATH, &[FORM], body).await.json()["access_token"].clone();
    let got = events(&mock, fresh.as_str().unwrap(), "").await;
    assert_eq!(got.status, 403);
    assert!(got.text().contains("Read reports"));
    let basic = crate::mock::oauth::basic_header("verify-client", "verify-secret");
    let headers = [FORM, ("authorization", basic.as_str())];
    let got = post(mock.addr(), TOKEN_PATH, &headers, b"grant_type=client_credentials").await;
    assert_eq!(got.status, 401, "form credentials only");
}
