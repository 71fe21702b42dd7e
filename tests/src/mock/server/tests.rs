//! The generic server over a real loopback connection: what the handler sees, the log, each
//! fault, the bounds and stopping.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::timeout;

use super::*;
use crate::mock::client::{LIMIT, get, post, send};

/// Echoes what it saw, so tests can check the parsing.
fn echo(req: &Request) -> Response {
    let query: Vec<String> = req.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let body = serde_json::json!({
        "method": req.method,
        "path": req.path,
        "query": query,
        "form": req.form().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        "bearer": req.bearer(),
        "base": req.base_url(),
    });
    Response::json(200, body.to_string()).header("x-echo", "1")
}

async fn start() -> MockServer {
    timeout(LIMIT, MockServer::start(echo)).await.expect("start timed out").expect("server starts")
}

#[tokio::test]
async fn the_handler_sees_method_path_query_headers_and_body_and_the_log_keeps_them() {
    let server = start().await;
    let got = get(server.addr(), "/a/b?x=1&name=acme%20siem%2F01&plus=a+b", &[("Authorization", "Bearer t0k")]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("x-echo"), Some("1"));
    let v = got.json();
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/a/b");
    assert_eq!(v["query"], serde_json::json!(["x=1", "name=acme siem/01", "plus=a b"]));
    assert_eq!(v["bearer"], "t0k");
    assert_eq!(v["base"], server.base_url());

    let form = b"grant_type=client_credentials&client_id=c%2B1";
    let got = post(server.addr(), "/token", &[("content-type", "application/x-www-form-urlencoded")], form).await;
    assert_eq!(got.json()["form"], serde_json::json!(["grant_type=client_credentials", "client_id=c+1"]));

    let log = server.requests();
    assert_eq!(log.len(), 2);
    assert_eq!((log[0].status, log[0].fault), (200, None));
    assert_eq!(log[0].param("name"), Some("acme siem/01"));
    assert_eq!(log[0].header("AUTHORIZATION"), Some("Bearer t0k"));
    assert_eq!(log[1].method, "POST");
    assert_eq!(&log[1].body[..], form);
    assert!(log[1].at >= log[0].at);
    assert_eq!(server.request_count(), 2);
}

#[tokio::test]
async fn faults_match_by_path_prefix_and_method_and_are_used_up() {
    let server = start().await;
    server.push_fault(FaultRule::new(Fault::status(500, r#"{"error":"boom"}"#)).path("/data/").method("get").times(2));
    server.push_fault(FaultRule::new(Fault::html_503()).method("POST"));
    assert_eq!(server.pending_faults(), 3);
    // Other paths and methods pass.
    assert_eq!(get(server.addr(), "/token", &[]).await.status, 200);
    let boom = get(server.addr(), "/data/x", &[]).await;
    assert_eq!((boom.status, boom.text().as_str()), (500, r#"{"error":"boom"}"#));
    assert_eq!(boom.header("content-type"), Some("application/json"));
    let html = post(server.addr(), "/data/x", &[], b"").await;
    assert_eq!(html.status, 503);
    assert!(html.header("content-type").unwrap().starts_with("text/html") && html.text().contains("<h1>503"));
    assert_eq!(get(server.addr(), "/data/y", &[]).await.status, 500);
    assert_eq!(get(server.addr(), "/data/y", &[]).await.status, 200, "used up");
    assert_eq!(server.pending_faults(), 0);
    let faults: Vec<Option<&str>> = server.requests().iter().map(|r| r.fault).collect();
    assert_eq!(faults, [None, Some("respond"), Some("respond"), Some("respond"), None]);
}

#[tokio::test]
async fn too_many_requests_carries_retry_after_and_rate_limit_headers() {
    let server = start().await;
    server.push_fault(FaultRule::new(Fault::too_many_requests(7)));
    let got = get(server.addr(), "/x", &[]).await;
    assert_eq!(got.status, 429);
    assert_eq!(got.header("retry-after"), Some("7"));
    assert_eq!(got.header("ratelimit-remaining"), Some("0"));
    assert_eq!(got.header("ratelimit-reset"), Some("7"));
}

#[tokio::test]
async fn a_delay_holds_the_answer_then_the_handler_answers() {
    let server = start().await;
    server.push_fault(FaultRule::new(Fault::Delay(Duration::from_millis(300))));
    let started = Instant::now();
    assert_eq!(get(server.addr(), "/slow", &[]).await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(server.requests()[0].fault, Some("delay"));
}

#[tokio::test]
async fn a_reset_gets_no_answer_and_a_lost_answer_still_reaches_the_handler() {
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let server = MockServer::start(move |_: &Request| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Response::text(200, "page")
    })
    .await
    .expect("server");
    server.push_fault(FaultRule::new(Fault::Reset));
    server.push_fault(FaultRule::new(Fault::LostAnswer));
    assert!(send(server.addr(), "GET", "/a", &[], b"").await.is_err(), "reset");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 0, "a reset request never reaches the handler");
    assert!(send(server.addr(), "GET", "/b", &[], b"").await.is_err(), "lost answer");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1, "a lost answer was computed");
    assert_eq!(get(server.addr(), "/c", &[]).await.text(), "page");
    let log: Vec<(u16, Option<&str>)> = server.requests().iter().map(|r| (r.status, r.fault)).collect();
    assert_eq!(log, [(0, Some("reset")), (0, Some("lost-answer")), (200, None)]);
}

#[tokio::test]
async fn a_truncated_body_declares_its_full_length_and_the_client_sees_it_cut() {
    let server = MockServer::start(|_: &Request| Response::json(200, "0123456789".repeat(100))).await.expect("server");
    server.push_fault(FaultRule::new(Fault::Truncate));
    // A raw read: the status line, the full Content-Length, half the body, then the end.
    let raw = timeout(LIMIT, async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = TcpStream::connect(server.addr()).await.expect("connect");
        stream.write_all(b"GET /page HTTP/1.1\r\nhost: x\r\n\r\n").await.expect("write");
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw).await;
        raw
    })
    .await
    .expect("the cut answer ends");
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("headers");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-length: 1000"), "{head}");
    assert_eq!(body.len(), 500, "half the body");
    // A client reading the body gets an error, not a short page.
    server.push_fault(FaultRule::new(Fault::Truncate));
    assert!(send(server.addr(), "GET", "/page", &[], b"").await.is_err());
    assert_eq!(get(server.addr(), "/page", &[]).await.body.len(), 1000, "the next answer is whole");
}

#[tokio::test]
async fn an_oversized_body_gets_413_and_the_log_is_bounded() {
    let server = start().await;
    let big = vec![b'x'; MAX_BODY + 1];
    assert_eq!(post(server.addr(), "/upload", &[], &big).await.status, 413);
    assert_eq!(server.requests()[0].status, 413);
    server.clear_requests();
    assert!(server.requests().is_empty());
    assert_eq!((server.request_count(), server.dropped_from_log()), (1, 1));
}

#[test]
#[should_panic(expected = "longer than")]
fn a_delay_beyond_the_bound_is_refused() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let server = start().await;
        server.push_fault(FaultRule::new(Fault::Delay(MAX_DELAY + Duration::from_secs(1))));
    });
}

#[tokio::test]
async fn dropping_the_server_closes_the_listener() {
    let server = start().await;
    let addr = server.addr();
    drop(server);
    let refused = timeout(LIMIT, async {
        while TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(refused.is_ok(), "listener still accepting after drop");
}

#[tokio::test]
async fn shutdown_lets_a_request_in_progress_finish() {
    let server = start().await;
    server.push_fault(FaultRule::new(Fault::Delay(Duration::from_millis(300))));
    let addr = server.addr();
    let pending = tokio::spawn(async move { send(addr, "GET", "/slow", &[], b"").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    timeout(LIMIT, server.shutdown()).await.expect("shutdown is bounded");
    let got = pending.await.expect("task").expect("the request in progress was answered");
    assert_eq!(got.status, 200);
    assert!(TcpStream::connect(addr).await.is_err(), "no longer accepting");
}
