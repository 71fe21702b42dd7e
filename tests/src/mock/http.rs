//! The request and response types of the mock kit, and the URL coding they need: what a vendor
//! handler reads and writes, free of hyper.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

/// A request as the handler sees it.
#[derive(Clone, Debug)]
pub struct Request {
    /// HTTP method, upper case (`GET`).
    pub method: String,
    /// Path without the query, not decoded.
    pub path: String,
    /// Query parameters, percent-decoded (`+` is a space), in order.
    pub query: Vec<(String, String)>,
    /// Headers as received, names lower case.
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Bytes,
    /// When the request's headers arrived.
    pub at: Instant,
    /// The server's own address, for handlers that hand out absolute URLs.
    pub local: SocketAddr,
}

impl Request {
    /// The first query parameter named `key`.
    pub fn param(&self, key: &str) -> Option<&str> {
        first(&self.query, key)
    }

    /// The first header named `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The token of an `Authorization: Bearer …` header.
    pub fn bearer(&self) -> Option<&str> {
        let value = self.header("authorization")?;
        let (scheme, token) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    }

    /// The body as `application/x-www-form-urlencoded` pairs, decoded.
    pub fn form(&self) -> Vec<(String, String)> {
        parse_query(&String::from_utf8_lossy(&self.body))
    }

    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// `http://127.0.0.1:PORT` of the server that received this request.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.local)
    }
}

/// An answer: status, headers and body. A `Content-Length` is added when it is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers in order; a name may repeat.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
}

impl Response {
    /// `status` with no body.
    pub fn new(status: u16) -> Response {
        Response { status, headers: Vec::new(), body: Bytes::new() }
    }

    /// `status` with `body` of type `content_type`.
    pub fn bytes(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response {
        Response::new(status).header("content-type", content_type).body(body)
    }

    /// `status` with a JSON body given as text (or bytes), sent as is.
    pub fn json(status: u16, body: impl Into<Bytes>) -> Response {
        Response::bytes(status, "application/json", body)
    }

    /// `status` with a plain-text body.
    pub fn text(status: u16, body: impl Into<Bytes>) -> Response {
        Response::bytes(status, "text/plain; charset=utf-8", body)
    }

    /// `status` with an HTML body, as load balancers and proxies answer.
    pub fn html(status: u16, body: impl Into<Bytes>) -> Response {
        Response::bytes(status, "text/html; charset=utf-8", body)
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl ToString) -> Response {
        self.headers.push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// Replaces the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Response {
        self.body = body.into();
        self
    }

    /// The first header named `name`, compared case-insensitively.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Splits and decodes an `application/x-www-form-urlencoded` string (a query or a form body).
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

/// Percent-decodes `s`; with `plus_is_space` (queries and forms) `+` is a space too. A stray `%`
/// is kept as is, as lenient servers do.
pub fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let hex = |i: usize| bytes.get(i).and_then(|b| char::from(*b).to_digit(16));
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
            (b'+', ..) if plus_is_space => out.push(b' '),
            (b, ..) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes `s` for a query value or a path segment (RFC 3986 unreserved characters stay).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_coding_round_trips() {
        assert_eq!(percent_decode("100%", false), "100%");
        assert_eq!(percent_decode("a+b%2Fc", true), "a b/c");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_encode("internal email protect/é"), "internal%20email%20protect%2F%C3%A9");
        assert_eq!(percent_decode(&percent_encode("x y&z=é"), true), "x y&z=é");
        assert_eq!(
            parse_query("a=1&&b&c=%zz"),
            [("a".into(), "1".into()), ("b".into(), "".into()), ("c".into(), "%zz".into())]
        );
    }
}
