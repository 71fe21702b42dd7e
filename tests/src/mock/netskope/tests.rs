//! HTTP-level tests of the mock: a real client on loopback, checking the iterator semantics,
//! auth, faults and back-pressure bookkeeping a collector will meet.

use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::*;
use crate::mock::client::{self, Got, LIMIT};

const TOKEN: &str = "test-token";

impl Got {
    fn ids(&self) -> Vec<String> {
        self.json()["result"].as_array().unwrap().iter().map(|r| r["_id"].as_str().unwrap().to_string()).collect()
    }
}

async fn get(mock: &MockNetskope, path_and_query: &str, token: Option<&str>) -> Got {
    let headers: Vec<(&str, &str)> = token.map(|t| ("Netskope-Api-Token", t)).into_iter().collect();
    client::get(mock.addr(), path_and_query, &headers).await
}

async fn alerts(mock: &MockNetskope, alert_type: &str, index: &str, op: &str) -> Got {
    get(mock, &format!("/api/v2/events/dataexport/alerts/{alert_type}?index={index}&operation={op}"), Some(TOKEN)).await
}

async fn start(cfg: MockConfig) -> MockNetskope {
    timeout(LIMIT, MockNetskope::start(cfg)).await.expect("mock start timed out").unwrap()
}

fn small_pages() -> MockConfig {
    MockConfig { page_size: 100, base_epoch: Some(1_722_280_000), ..MockConfig::default() }
}

#[tokio::test]
async fn epoch_start_then_next_pages_through_everything() {
    let mock = start(small_pages()).await;
    let ids = mock.add_alerts("dlp", 250);
    assert_eq!(ids, mock.ids("dlp"));

    let first = alerts(&mock, "dlp", "siem", "1722280000").await;
    assert_eq!(first.status, 200);
    let v = first.json();
    assert_eq!(v["ok"], 1);
    assert_eq!(v["wait_time"], 0);
    let mut seen = first.ids();
    assert_eq!(seen.len(), 100);
    for expect in [100, 50, 0, 0] {
        let page = alerts(&mock, "dlp", "siem", "next").await;
        assert_eq!(page.status, 200);
        assert_eq!(page.ids().len(), expect);
        seen.extend(page.ids());
    }
    assert_eq!(seen, ids);
    assert_eq!(mock.bookmark("dlp", "siem"), Some(250));

    // New data shows up on the same bookmark.
    let more = mock.add_alerts("dlp", 3);
    assert_eq!(alerts(&mock, "dlp", "siem", "next").await.ids(), more);
    mock.shutdown().await;
}

#[tokio::test]
async fn epoch_head_and_tail_position_the_bookmark() {
    let mock = start(small_pages()).await;
    mock.add_alerts("policy", 50);
    let records = mock.records("policy");
    let ts: Vec<u64> =
        records.iter().map(|r| serde_json::from_str::<Value>(r).unwrap()["timestamp"].as_u64().unwrap()).collect();
    let cut = ts[20];
    let from = alerts(&mock, "policy", "a", &cut.to_string()).await.ids();
    let expect: Vec<String> =
        mock.ids("policy").into_iter().zip(&ts).filter(|(_, t)| **t >= cut).map(|(id, _)| id).collect();
    assert_eq!(from, expect);

    assert_eq!(alerts(&mock, "policy", "a", "head").await.ids().len(), 50);
    assert!(alerts(&mock, "policy", "a", "tail").await.ids().is_empty());
    assert_eq!(mock.bookmark("policy", "a"), Some(50));
    let fresh = mock.add_alerts("policy", 2);
    assert_eq!(alerts(&mock, "policy", "a", "next").await.ids(), fresh);
}

#[tokio::test]
async fn resend_replays_the_last_page_without_moving() {
    let mock = start(small_pages()).await;
    mock.add_alerts("malware", 150);
    alerts(&mock, "malware", "x", "head").await;
    let page = alerts(&mock, "malware", "x", "next").await;
    let again = alerts(&mock, "malware", "x", "resend").await;
    assert_eq!(again.status, 200);
    assert_eq!(again.ids(), page.ids());
    assert_eq!(again.body, page.body);
    assert_eq!(mock.bookmark("malware", "x"), Some(150));
    assert!(alerts(&mock, "malware", "x", "next").await.ids().is_empty());
    // An index that never served a page has nothing to replay.
    let none = alerts(&mock, "malware", "never", "resend").await;
    assert_eq!(none.status, 200);
    assert!(none.ids().is_empty());
}

#[tokio::test]
async fn bookmarks_are_per_index_and_per_type() {
    let mock = start(small_pages()).await;
    let dlp = mock.add_alerts("dlp", 120);
    let mal = mock.add_alerts("malware", 10);
    assert_eq!(alerts(&mock, "dlp", "one", "head").await.ids(), dlp[..100]);
    assert_eq!(alerts(&mock, "dlp", "two", "head").await.ids(), dlp[..100]);
    assert_eq!(alerts(&mock, "dlp", "one", "next").await.ids(), dlp[100..]);
    assert_eq!(alerts(&mock, "malware", "one", "head").await.ids(), mal);
    assert_eq!(alerts(&mock, "dlp", "two", "next").await.ids(), dlp[100..]);
    // Same index name, unstarted path: must be started first.
    let unstarted = alerts(&mock, "policy", "one", "next").await;
    assert_eq!(unstarted.status, 400);
    assert!(unstarted.json()["message"].as_str().unwrap().contains("head"));
}

#[tokio::test]
async fn auth_scope_type_and_parameter_errors() {
    let cfg = MockConfig { scopes: Some(vec!["dlp".into()]), ..small_pages() };
    let mock = start(cfg).await;
    let path = "/api/v2/events/dataexport/alerts/dlp?index=i&operation=head";
    let missing = get(&mock, path, None).await;
    assert_eq!(missing.status, 401);
    assert!(missing.json()["message"].is_string());
    let wrong = get(&mock, path, Some("nope")).await;
    assert_eq!(wrong.status, 403);
    assert!(wrong.json()["message"].as_str().unwrap().contains("Invalid token"));
    assert_eq!(alerts(&mock, "malware", "i", "head").await.status, 403);
    let unknown = alerts(&mock, "bogus", "i", "head").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["message"], "This dataexporter does not exist");
    // Auth is checked before existence.
    assert_eq!(get(&mock, "/api/v2/events/dataexport/alerts/bogus?index=i&operation=head", None).await.status, 401);
    assert_eq!(get(&mock, "/api/v2/events/dataexport/alerts/dlp?operation=head", Some(TOKEN)).await.status, 400);
    assert_eq!(get(&mock, "/api/v2/events/dataexport/alerts/dlp?index=i", Some(TOKEN)).await.status, 400);
    assert_eq!(alerts(&mock, "dlp", "i", "sideways").await.status, 400);
    assert_eq!(alerts(&mock, "dlp", "i", "head").await.status, 200);

    let log = mock.requests();
    let statuses: Vec<u16> = log.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 403, 403, 404, 401, 400, 400, 400, 200]);
    assert_eq!(log[1].header("NETSKOPE-API-TOKEN"), Some("nope"));
    assert_eq!(log[8].param("operation"), Some("head"));
}

#[tokio::test]
async fn injected_429_then_success_leaves_the_bookmark() {
    let mock = start(small_pages()).await;
    let ids = mock.add_alerts("dlp", 10);
    alerts(&mock, "dlp", "r", "tail").await;
    let more = mock.add_alerts("dlp", 5);
    mock.fail_next(1, Fault::TooManyRequests { retry_after_secs: 7 });
    let limited = alerts(&mock, "dlp", "r", "next").await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("retry-after"), Some("7"));
    assert_eq!(limited.header("ratelimit-remaining"), Some("0"));
    assert_eq!(limited.header("ratelimit-reset"), Some("7"));
    let ok = alerts(&mock, "dlp", "r", "next").await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.ids(), more);
    assert_eq!(ok.header("ratelimit-limit"), Some("600"));
    // The fault was served before the tenant saw the request: it did not count.
    assert_eq!(ok.header("ratelimit-remaining"), Some("598"));
    assert!(ok.header("ratelimit-reset").unwrap().parse::<u64>().unwrap() <= 60);
    assert_eq!(mock.ids("dlp").len(), ids.len() + more.len());
}

#[tokio::test]
async fn other_faults_do_not_consume_data() {
    let mock = start(small_pages()).await;
    let ids = mock.add_alerts("uba", 4);
    mock.fail_next_for("uba", 1, Fault::ServiceUnavailable);
    mock.fail_next(1, Fault::NoContent);
    mock.fail_next(1, Fault::Conflict);
    assert_eq!(alerts(&mock, "uba", "f", "head").await.status, 503);
    let empty = alerts(&mock, "uba", "f", "head").await;
    assert_eq!(empty.status, 204);
    assert!(empty.body.is_empty());
    assert_eq!(alerts(&mock, "uba", "f", "head").await.status, 409);
    assert_eq!(mock.bookmark("uba", "f"), None);
    assert_eq!(alerts(&mock, "uba", "f", "head").await.ids(), ids);
}

#[tokio::test]
async fn own_rate_limit_answers_429() {
    let mock = start(MockConfig { rate_limit: 2, ..small_pages() }).await;
    assert_eq!(alerts(&mock, "dlp", "q", "head").await.header("ratelimit-remaining"), Some("1"));
    assert_eq!(alerts(&mock, "dlp", "q", "next").await.status, 200);
    let over = alerts(&mock, "dlp", "q", "next").await;
    assert_eq!(over.status, 429);
    assert!(over.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(over.header("ratelimit-remaining"), Some("0"));
}

#[tokio::test]
async fn early_next_is_a_wait_violation() {
    let mock = start(MockConfig { wait_time: 30, ..small_pages() }).await;
    mock.add_alerts("dlp", 3);
    let first = alerts(&mock, "dlp", "w", "head").await;
    assert_eq!(first.json()["wait_time"], 30);
    assert!(mock.wait_violations().is_empty());
    let early = alerts(&mock, "dlp", "w", "next").await;
    assert_eq!(early.status, 200, "early calls are still answered");
    let v = mock.wait_violations();
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].contains("operation=next") && v[0].contains("wait_time=30"), "{}", v[0]);
}

#[tokio::test]
async fn waiting_out_wait_time_is_no_violation() {
    let mock = start(MockConfig { wait_time: 1, ..small_pages() }).await;
    alerts(&mock, "dlp", "w", "tail").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The response to this one says wait_time=0, so the calls after it may come at once.
    mock.set_wait_time(0);
    alerts(&mock, "dlp", "w", "next").await;
    alerts(&mock, "dlp", "w", "next").await;
    alerts(&mock, "dlp", "w", "resend").await;
    assert!(mock.wait_violations().is_empty(), "{:?}", mock.wait_violations());
}

#[tokio::test]
async fn big_integers_and_unicode_survive_verbatim() {
    let mock = start(small_pages()).await;
    mock.add_alerts("dlp", 40);
    let page = alerts(&mock, "dlp", "u", "head").await;
    let records = mock.records("dlp");
    assert_eq!(page.text(), format!("{{\"ok\":1,\"wait_time\":0,\"result\":[{}]}}", records.join(",")));
    let big: Vec<u64> =
        page.json()["result"].as_array().unwrap().iter().map(|r| r["dlp_incident_id"].as_u64().unwrap()).collect();
    assert!(big.iter().all(|n| *n > 1 << 53));
    for n in &big {
        assert!(page.text().contains(&format!("\"dlp_incident_id\":{n}")));
    }
    let text = page.text();
    assert!(text.contains("josé.müller@example.com"));
    assert!(text.contains("Q3-paiements-été.xlsx") || text.contains("年度报告_2024.pdf"));
    let labels: Vec<String> = page.json()["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["alert_type"].as_str().unwrap().to_string())
        .collect();
    assert!(labels.iter().any(|l| l == "DLP") && labels.iter().any(|l| l == "dlp"), "{labels:?}");
}

#[tokio::test]
async fn ids_are_unique_and_timestamps_ordered() {
    let mock = start(MockConfig::default()).await;
    for t in ALERT_TYPES {
        mock.add_alerts(t, 300);
    }
    let mut all: Vec<String> = ALERT_TYPES.iter().flat_map(|t| mock.ids(t)).collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n);
    let ts: Vec<u64> = mock
        .records("malware")
        .iter()
        .map(|r| serde_json::from_str::<Value>(r).unwrap()["timestamp"].as_u64().unwrap())
        .collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]));
}

#[tokio::test]
async fn full_pages_of_ten_thousand() {
    let mock = start(MockConfig::default()).await;
    mock.add_alerts("dlp", 25_000);
    let first = alerts(&mock, "dlp", "big", "head").await;
    assert_eq!(first.ids().len(), 10_000);
    assert_eq!(alerts(&mock, "dlp", "big", "next").await.ids().len(), 10_000);
    assert_eq!(alerts(&mock, "dlp", "big", "next").await.ids().len(), 5_000);
}

#[tokio::test]
async fn unknown_paths_and_percent_encoding() {
    let mock = start(small_pages()).await;
    assert_eq!(
        get(&mock, "/api/v2/events/dataexport/events/page?index=i&operation=head", Some(TOKEN)).await.status,
        404
    );
    mock.add_alerts("dlp", 1);
    assert_eq!(alerts(&mock, "dlp", "acme%20siem%2F01", "head").await.status, 200);
    assert_eq!(mock.bookmark("dlp", "acme siem/01"), Some(1));
    assert_eq!(mock.requests()[1].param("index"), Some("acme siem/01"));
}

#[tokio::test]
async fn start_rejects_oversized_pages_and_drop_stops_the_server() {
    assert!(MockNetskope::start(MockConfig { page_size: 10_001, ..MockConfig::default() }).await.is_err());
    let mock = start(small_pages()).await;
    let addr = mock.addr();
    drop(mock);
    let refused = timeout(LIMIT, async {
        loop {
            if TcpStream::connect(addr).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(refused.is_ok(), "listener still accepting after drop");
}

#[tokio::test]
async fn a_cut_next_page_is_consumed_and_resend_replays_it() {
    let mock = start(small_pages()).await;
    mock.add_alerts("dlp", 10);
    alerts(&mock, "dlp", "t", "tail").await;
    let fresh = mock.add_alerts("dlp", 5);
    mock.server().push_fault(FaultRule::new(server::Fault::Truncate).path(ALERTS_PREFIX));
    let path = "/api/v2/events/dataexport/alerts/dlp?index=t&operation=next";
    let cut = client::send(mock.addr(), "GET", path, &[("Netskope-Api-Token", TOKEN)], b"").await;
    assert!(cut.is_err(), "the client sees a cut body");
    assert_eq!(mock.bookmark("dlp", "t"), Some(15), "the vendor moved on regardless");
    assert_eq!(alerts(&mock, "dlp", "t", "resend").await.ids(), fresh);
    assert_eq!(mock.requests()[1].fault, Some("truncate"));
}
