//! A bare HTTP/1.1 client for the mocks' own tests: one fresh connection per request (so a fault
//! that ends a connection never spills into the next request), every call bounded by a timeout.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

/// How long one request may take in a test.
pub(crate) const LIMIT: Duration = Duration::from_secs(10);

/// An answer as the client got it.
pub(crate) struct Got {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Got {
    pub fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).expect("UTF-8 body")
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("bad JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends one request; `Err` describes a transport failure (reset, cut body).
pub(crate) async fn send(
    addr: SocketAddr,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Got, String> {
    let exchange = async {
        let stream = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(conn);
        let mut req = hyper::Request::builder().method(method).uri(path_and_query).header("host", addr.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(Bytes::copy_from_slice(body))).map_err(|e| format!("request: {e}"))?;
        let resp = sender.send_request(req).await.map_err(|e| format!("send: {e}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.map_err(|e| format!("body: {e}"))?.to_bytes();
        Ok(Got { status, headers, body })
    };
    tokio::time::timeout(LIMIT, exchange).await.expect("request to the mock timed out")
}

/// `GET path_and_query` with `headers`, which must get an answer.
pub(crate) async fn get(addr: SocketAddr, path_and_query: &str, headers: &[(&str, &str)]) -> Got {
    send(addr, "GET", path_and_query, headers, b"").await.unwrap_or_else(|e| panic!("GET {path_and_query}: {e}"))
}

/// `POST path` with `headers` and `body`, which must get an answer.
pub(crate) async fn post(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Got {
    send(addr, "POST", path, headers, body).await.unwrap_or_else(|e| panic!("POST {path}: {e}"))
}
