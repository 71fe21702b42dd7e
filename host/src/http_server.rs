//! The daemon's HTTP listener (`[http] listen`): `/healthz`, `/readyz`,
//! `/status` (JSON), `/` (the status page) and `/metrics` (Prometheus), all
//! read from the [`StatusBoard`] and the metrics recorder. GET and HEAD only;
//! every connection is bounded in time and number, and answers are never
//! cached. Nothing here can change the daemon.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use wasmtime_wasi_http::io::TokioIo;

use crate::status::StatusBoard;

/// A connection is closed after this long, whatever it is doing.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 32;
/// How often the metrics recorder drains its histogram buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// What the listener serves.
pub struct Endpoints {
    /// The daemon's status.
    pub status: Arc<StatusBoard>,
    /// Renders `/metrics`; none: 404.
    pub metrics: Option<PrometheusHandle>,
}

/// Bind the listener now, so a busy port stops the daemon at start-up.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| format!("http.listen: cannot listen on {addr}"))
}

/// Serve until `stop` turns true.
pub async fn serve(listener: TcpListener, endpoints: Arc<Endpoints>, mut stop: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut upkeep = tokio::time::interval(UPKEEP_EVERY);
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = upkeep.tick() => {
                if let Some(m) = &endpoints.metrics {
                    m.run_upkeep();
                }
                continue;
            }
            accepted = listener.accept() => accepted,
        };
        let (stream, _peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                tracing::warn!(error = %e, "HTTP listener cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let endpoints = endpoints.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let endpoints = endpoints.clone();
                async move { Ok::<_, Infallible>(route(&endpoints, &req)) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            // A slow or stuck client is dropped; a status answer is small.
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, connection).await;
            drop(permit);
        });
    }
}

fn route<B>(endpoints: &Endpoints, req: &Request<B>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n".to_owned());
    }
    let mut response = match req.uri().path() {
        "/healthz" => {
            let health = endpoints.status.snapshot().health;
            check(health.ok, "ok", "not ok", &health.reasons)
        }
        "/readyz" => {
            let ready = endpoints.status.snapshot().ready;
            check(ready.ok, "ready", "not ready", &ready.reasons)
        }
        "/status" => match serde_json::to_string_pretty(&endpoints.status.snapshot()) {
            Ok(json) => with_type(StatusCode::OK, json + "\n", "application/json"),
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode the status: {e}\n")),
        },
        "/" => {
            let page = crate::status_page::render(&endpoints.status.snapshot());
            let mut r = with_type(StatusCode::OK, page, "text/html; charset=utf-8");
            // The page is self-contained: no scripts, no external anything.
            r.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                header::HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
            );
            r
        }
        "/metrics" => match &endpoints.metrics {
            Some(m) => with_type(StatusCode::OK, m.render(), "text/plain; version=0.0.4; charset=utf-8"),
            None => text(StatusCode::NOT_FOUND, "metrics are off\n".to_owned()),
        },
        _ => text(StatusCode::NOT_FOUND, "not found; try /, /status, /healthz, /readyz or /metrics\n".to_owned()),
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, header::HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, header::HeaderValue::from_static("no-referrer"));
    if req.method() == Method::HEAD {
        *response.body_mut() = Full::new(Bytes::new());
    }
    response
}

/// 200 with `yes`, or 503 with `no` and the reasons, one a line.
fn check(ok: bool, yes: &str, no: &str, reasons: &[String]) -> Response<Full<Bytes>> {
    if ok {
        return text(StatusCode::OK, format!("{yes}\n"));
    }
    let lines: String = reasons.iter().map(|r| format!("- {r}\n")).collect();
    text(StatusCode::SERVICE_UNAVAILABLE, format!("{no}:\n{lines}"))
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    with_type(status, body, "text/plain; charset=utf-8")
}

fn with_type(status: StatusCode, body: String, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn get(endpoints: &Endpoints, path: &str) -> (StatusCode, String) {
        let req = Request::get(path).body(()).unwrap();
        let response = route(endpoints, &req);
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn endpoints_answer_from_the_board() {
        let status = Arc::new(StatusBoard::new(std::path::Path::new("/etc/siphon/siphon.toml")));
        let endpoints = Endpoints { status: status.clone(), metrics: None };
        let (code, body) = get(&endpoints, "/healthz").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("the scheduler has not started"), "{body}");
        status.heartbeat(true);
        status.probed(Ok(()));
        assert_eq!(get(&endpoints, "/healthz").await, (StatusCode::OK, "ok\n".to_owned()));
        assert_eq!(get(&endpoints, "/readyz").await, (StatusCode::OK, "ready\n".to_owned()));
        let (code, json) = get(&endpoints, "/status").await;
        assert_eq!(code, StatusCode::OK);
        let snapshot: crate::status::Snapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(snapshot.config.path, std::path::Path::new("/etc/siphon/siphon.toml"));
        let (code, page) = get(&endpoints, "/").await;
        assert_eq!(code, StatusCode::OK);
        assert!(page.starts_with("<!doctype html>"), "{page}");
        assert_eq!(get(&endpoints, "/metrics").await.0, StatusCode::NOT_FOUND);
        assert_eq!(get(&endpoints, "/nope").await.0, StatusCode::NOT_FOUND);
        let post = Request::post("/status").body(()).unwrap();
        assert_eq!(route(&endpoints, &post).status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
