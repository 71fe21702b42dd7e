//! A small blocking HTTP client over `wasi:http/outgoing-handler`.
//!
//! This file owns the portable part: the request builder, URL splitting and
//! query encoding, the response type and the error type. The transport that
//! talks to the host lives in `sys/wasm/http.rs`.
//!
//! The host retries 429/502/503/504 (honouring `Retry-After`) before a
//! response reaches the guest, so this client never retries: whatever status
//! a collector sees is final for that call, and any vendor-specific retry is
//! the collector's decision. [`Retry`] tells the host how far to go.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `PATCH`
    Patch,
    /// `HEAD`
    Head,
}

impl Method {
    /// The method as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
            Method::Head => "HEAD",
        }
    }
}

/// A request under construction; [`Request::send`] performs it.
#[derive(Debug, Clone)]
pub struct Request {
    pub(crate) method: Method,
    url: String,
    query: Vec<(String, String)>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Option<Vec<u8>>,
    /// False for requests that must carry no credentials (pre-signed URLs).
    authenticated: bool,
    /// A builder step that failed (e.g. JSON serialisation), reported by `send`
    /// so that the builder chain stays infallible.
    deferred_error: Option<String>,
}

impl Request {
    /// A request with `method` to `url` (`http://` or `https://`, with or
    /// without a query).
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
            authenticated: true,
            deferred_error: None,
        }
    }

    /// A `GET` request.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::Get, url)
    }

    /// A `POST` request; add the body with [`Request::body`] or [`Request::json`].
    pub fn post(url: impl Into<String>) -> Self {
        Self::new(Method::Post, url)
    }

    /// Adds a header. Repeated names are sent as repeated fields.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Appends `key=value` to the query, percent-encoding both.
    #[must_use]
    pub fn query(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((key.into(), value.into()));
        self
    }

    /// Sets the body and its `Content-Type`.
    #[must_use]
    pub fn body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self.headers.push(("content-type".to_string(), content_type.to_string()));
        self.body = Some(body.into());
        self
    }

    /// Sets an `application/x-www-form-urlencoded` body from `pairs`.
    #[must_use]
    pub fn form<K: AsRef<str>, V: AsRef<str>>(self, pairs: &[(K, V)]) -> Self {
        let body = form_encode(pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())));
        self.body("application/x-www-form-urlencoded", body)
    }

    /// Adds `Authorization: Bearer <token>`.
    #[must_use]
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    /// Tells the host how to retry this request (see [`Retry`]).
    #[must_use]
    pub fn retry(mut self, policy: Retry) -> Self {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(RETRY_HEADER));
        match policy.header_value() {
            Some(v) => self.header(RETRY_HEADER, v),
            None => self,
        }
    }

    /// The longest wait the host may spend on one retry of this request: a
    /// `Retry-After` longer than this is handed back to the collector, which
    /// then decides (e.g. to stop the stream and come back next run).
    #[must_use]
    pub fn max_wait(mut self, wait: std::time::Duration) -> Self {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(MAX_WAIT_HEADER));
        self.header(MAX_WAIT_HEADER, wait.as_secs().to_string())
    }

    /// Marks the request as one that must carry no credentials: an
    /// [`crate::auth::Auth`] leaves it alone (pre-signed download URLs refuse
    /// an `Authorization` header).
    #[must_use]
    pub fn unauthenticated(mut self) -> Self {
        self.authenticated = false;
        self
    }

    /// False after [`Request::unauthenticated`].
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every header, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The body, if any.
    pub fn body_bytes(&self) -> Option<&[u8]> {
        self.body.as_deref()
    }

    /// The path of the URL (no scheme, host or query), e.g. `/v1.0/events`.
    pub fn path(&self) -> String {
        self.target().map(|t| t.path_with_query.split('?').next().unwrap_or("/").to_string()).unwrap_or_default()
    }

    /// The value of query parameter `key` (decoded), from the URL or [`Request::query`].
    pub fn query_value(&self, key: &str) -> Option<String> {
        if let Some((_, v)) = self.query.iter().find(|(k, _)| k == key) {
            return Some(v.clone());
        }
        let url = self.url.split('#').next().unwrap_or_default();
        let (_, q) = url.split_once('?')?;
        q.split('&')
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| percent_decode(k) == key)
            .map(|(_, v)| percent_decode(v))
    }

    /// Sets a JSON body (`Content-Type: application/json`).
    #[must_use]
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(bytes) => self.body("application/json", bytes),
            Err(e) => Self { deferred_error: Some(format!("cannot serialise the JSON body: {e}")), ..self },
        }
    }

    /// The full URL with the query parameters added by [`Request::query`].
    pub fn url(&self) -> String {
        let mut url = self.url.clone();
        for (i, (k, v)) in self.query.iter().enumerate() {
            let sep = if i == 0 && !self.url.contains('?') { '?' } else { '&' };
            url.push(sep);
            url.push_str(&percent_encode(k));
            url.push('=');
            url.push_str(&percent_encode(v));
        }
        url
    }

    /// Splits [`Request::url`] into the parts `wasi:http` takes.
    pub(crate) fn target(&self) -> Result<Target, HttpError> {
        if let Some(e) = &self.deferred_error {
            return Err(HttpError::new(HttpErrorKind::InvalidRequest, e.clone()));
        }
        Target::parse(&self.url())
    }

    /// Sends the request and waits for the complete response.
    ///
    /// `Err` means no response arrived (denied, DNS, connection, timeout,
    /// TLS, protocol); any HTTP status, including 4xx/5xx, is `Ok`.
    pub fn send(self) -> Result<Response, HttpError> {
        crate::sys::http_send(self)
    }
}

/// Where a request goes, in the parts `wasi:http` takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// True for `https`.
    pub https: bool,
    /// `host[:port]`.
    pub authority: String,
    /// Path and query, starting with `/`.
    pub path_with_query: String,
}

impl Target {
    fn parse(url: &str) -> Result<Self, HttpError> {
        let invalid = |why: &str| HttpError::new(HttpErrorKind::InvalidRequest, format!("invalid URL `{url}`: {why}"));
        let (https, rest) = if let Some(rest) = strip_prefix_ignore_case(url, "https://") {
            (true, rest)
        } else if let Some(rest) = strip_prefix_ignore_case(url, "http://") {
            (false, rest)
        } else {
            return Err(invalid("only http:// and https:// URLs are supported"));
        };
        // The fragment is never sent.
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(split);
        if authority.is_empty() {
            return Err(invalid("no host"));
        }
        if authority.contains('@') {
            return Err(invalid("credentials in the URL are not supported; send them in a header"));
        }
        if authority.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("the host contains whitespace"));
        }
        let path_with_query = match tail.chars().next() {
            None => "/".to_string(),
            Some('?') => format!("/{tail}"),
            Some(_) => tail.to_string(),
        };
        Ok(Self { https, authority: authority.to_string(), path_with_query })
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

/// Percent-encodes everything except RFC 3986 unreserved characters, so any
/// text is safe as a query key or value.
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

/// `application/x-www-form-urlencoded` text of `pairs` (space as `%20`,
/// which every form parser accepts).
pub fn form_encode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    pairs.into_iter().map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v))).collect::<Vec<_>>().join("&")
}

/// Decodes `%XX` escapes and `+` (as a space); invalid escapes are kept as written.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(s.get(i + 1..i + 3).unwrap_or("zz"), 16) {
                Ok(b) => {
                    out.push(b);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Header that carries a [`Retry`] policy to the host (removed before sending).
pub const RETRY_HEADER: &str = "siphon-retry";
/// Header that carries [`Request::max_wait`] to the host (removed before sending).
pub const MAX_WAIT_HEADER: &str = "siphon-max-wait";

/// How far the host may retry a request before the collector sees the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Retry {
    /// The host retries 429, 502, 503, 504 and refused connections with
    /// backoff, honouring `Retry-After`. Right for idempotent reads.
    #[default]
    Host,
    /// The host retries only 429 and refused connections. For consume-once
    /// requests (a 502/504 may follow a page the vendor already served) and
    /// for vendors whose 503 means "quota used up" (retrying burns quota).
    RateLimitedOnly,
    /// The host never retries: the collector sees the first answer.
    Never,
}

impl Retry {
    fn header_value(self) -> Option<&'static str> {
        match self {
            Retry::Host => None,
            Retry::RateLimitedOnly => Some("rate-limited-only"),
            Retry::Never => Some("never"),
        }
    }
}

/// Response header fields with case-insensitive lookup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// No fields.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a field.
    pub fn append(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }

    /// The first value of `name`, compared case-insensitively, trimmed.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
    }

    /// The first value of `name` parsed as an unsigned integer, or none when
    /// absent or not a plain number (e.g. an HTTP date in `Retry-After`).
    pub fn get_u64(&self, name: &str) -> Option<u64> {
        self.get(name)?.parse().ok()
    }

    /// All fields in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

/// A complete response: status, headers and the whole body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Response header fields.
    pub headers: Headers,
    /// The body as received (no content decoding).
    pub body: Vec<u8>,
}

impl Response {
    /// True for 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Shorthand for `self.headers.get(name)`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// The body as UTF-8 text; a [`Error::Vendor`] when it is not.
    pub fn text(&self) -> Result<&str, Error> {
        std::str::from_utf8(&self.body)
            .map_err(|e| Error::Vendor(format!("HTTP {} response body is not UTF-8: {e}", self.status)))
    }

    /// The body parsed as JSON; a [`Error::Vendor`] naming the parse error and
    /// the start of the body when it does not fit `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::Vendor(format!(
                "HTTP {} response is not the expected JSON ({e}); body starts: {}",
                self.status,
                self.body_excerpt(200)
            ))
        })
    }

    /// `Ok(self)` for 2xx; otherwise the error the status means, with a short
    /// excerpt of the vendor's message. `what` names the call for the
    /// operator, e.g. "alert type `dlp`". 401/403 → [`Error::Auth`], 404 →
    /// [`Error::NotFound`], 429 → [`Error::RateLimited`], other →
    /// [`Error::Vendor`].
    pub fn error_for_status(self, what: &str) -> Result<Response, Error> {
        if self.is_success() {
            return Ok(self);
        }
        let status = self.status;
        let message = format!("{what}: HTTP {status}: {}", self.vendor_message());
        Err(match status {
            401 | 403 => Error::Auth(message),
            404 => Error::NotFound(message),
            429 => Error::RateLimited(message),
            _ => Error::Vendor(message),
        })
    }

    /// The vendor's own error text: a JSON body's `message`, `error_description`,
    /// `errorDesc`, `messageDescription` (IBM), `error` or `detail` when present,
    /// else the start of the body on one line (HTML pages and all); at most 300
    /// characters.
    pub fn vendor_message(&self) -> String {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return "empty body".to_string();
        }
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(&self.body) {
            for key in ["message", "error_description", "errorDesc", "messageDescription", "error", "detail", "title"] {
                if let Some(serde_json::Value::String(m)) = map.get(key) {
                    return excerpt(m.as_bytes(), 300);
                }
            }
        }
        excerpt(&self.body, 300)
    }

    /// How long the vendor asks the collector to wait before the next call,
    /// from `Retry-After` (seconds) or `X-RateLimit-Reset` / `ratelimit-reset`
    /// (seconds to wait, epoch seconds or epoch milliseconds), given the time
    /// `now_ms`. None when no header says.
    pub fn retry_after(&self, now_ms: u64) -> Option<std::time::Duration> {
        if let Some(s) = self.headers.get_u64("retry-after") {
            return Some(std::time::Duration::from_secs(s));
        }
        let reset = ["x-ratelimit-reset", "ratelimit-reset"].iter().find_map(|h| self.headers.get_u64(h))?;
        Some(reset_wait(reset, now_ms))
    }

    /// At most `max_chars` characters of the body on one line, for error
    /// messages: control characters become spaces, invalid UTF-8 is replaced.
    pub fn body_excerpt(&self, max_chars: usize) -> String {
        excerpt(&self.body, max_chars)
    }
}

/// The wait a rate-limit reset value means at `now_ms`: values that look like
/// epoch milliseconds (≥ 10^12) or epoch seconds (≥ 10^9) are points in time
/// (zero when past); smaller values are seconds to wait.
pub fn reset_wait(value: u64, now_ms: u64) -> std::time::Duration {
    let ms = if value >= 1_000_000_000_000 {
        value.saturating_sub(now_ms)
    } else if value >= 1_000_000_000 {
        value.saturating_mul(1_000).saturating_sub(now_ms)
    } else {
        value.saturating_mul(1_000)
    };
    std::time::Duration::from_millis(ms)
}

/// At most `max_chars` characters of `bytes` on one line, `…` when cut.
pub fn excerpt(bytes: &[u8], max_chars: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text.trim().chars().take(max_chars).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if text.trim().chars().nth(max_chars).is_some() {
        out.push('…');
    }
    out
}

/// Broad classes of [`HttpError`], for collectors that branch on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpErrorKind {
    /// The host's allow-list does not include the destination.
    Denied,
    /// The request itself is malformed (URL, header, method, body size).
    InvalidRequest,
    /// The host name did not resolve.
    Dns,
    /// The connection failed or broke.
    Connection,
    /// No (complete) response within the host's timeouts.
    Timeout,
    /// TLS handshake or certificate failure.
    Tls,
    /// The peer spoke broken HTTP, or the response exceeded a host limit.
    Protocol,
    /// Not inside a component (native builds have no host).
    Unsupported,
    /// Anything else the host reported.
    Other,
}

/// Why no response arrived. The message is written for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// The class of failure.
    pub kind: HttpErrorKind,
    /// What happened, naming the destination.
    pub message: String,
}

impl HttpError {
    /// An error of `kind` with `message`.
    pub fn new(kind: HttpErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HttpError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_splits_url_parts() {
        let t = Request::get("https://tenant.goskope.com:8443/api/v2/x?a=1#frag").target().unwrap();
        assert!(t.https);
        assert_eq!(t.authority, "tenant.goskope.com:8443");
        assert_eq!(t.path_with_query, "/api/v2/x?a=1");
        let t = Request::get("HTTP://127.0.0.1:9000").target().unwrap();
        assert!(!t.https);
        assert_eq!(t.path_with_query, "/");
        let t = Request::get("http://h?x=1").target().unwrap();
        assert_eq!(t.path_with_query, "/?x=1");
    }

    #[test]
    fn target_rejects_bad_urls() {
        for url in ["ftp://h/x", "https:///x", "https://user:pw@h/", "tenant.goskope.com/x", "https://a b/"] {
            let e = Request::get(url).target().unwrap_err();
            assert_eq!(e.kind, HttpErrorKind::InvalidRequest, "{url}");
        }
    }

    #[test]
    fn query_is_percent_encoded_and_appended() {
        let r = Request::get("https://h/p").query("index", "a b&c=d").query("op", "next");
        assert_eq!(r.url(), "https://h/p?index=a%20b%26c%3Dd&op=next");
        let r = Request::get("https://h/p?x=1").query("y", "é");
        assert_eq!(r.url(), "https://h/p?x=1&y=%C3%A9");
    }

    #[test]
    fn headers_are_case_insensitive() {
        let h: Headers =
            [("RateLimit-Remaining", " 0 "), ("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")].into_iter().collect();
        assert_eq!(h.get("ratelimit-remaining"), Some("0"));
        assert_eq!(h.get_u64("RATELIMIT-REMAINING"), Some(0));
        assert_eq!(h.get_u64("retry-after"), None);
        assert_eq!(h.get("missing"), None);
    }

    #[test]
    fn json_error_names_status_and_body() {
        let r = Response { status: 200, headers: Headers::new(), body: b"<html>\nnope</html>".to_vec() };
        let e = r.json::<serde_json::Value>().unwrap_err();
        assert!(matches!(&e, Error::Vendor(m) if m.contains("HTTP 200") && m.contains("<html> nope")), "{e}");
    }

    #[test]
    fn vendor_message_reads_common_error_fields() {
        let r = |body: &str| Response { status: 400, headers: Headers::new(), body: body.as_bytes().to_vec() };
        assert_eq!(r(r#"{"error":"invalid_client","error_description":"bad secret"}"#).vendor_message(), "bad secret");
        let ibm = r#"{"messageId":"CSIAQ0159E","messageDescription":"The [size] parameter is not valid."}"#;
        assert_eq!(r(ibm).vendor_message(), "The [size] parameter is not valid.");
        assert_eq!(r("<html>\n503</html>").vendor_message(), "<html> 503</html>");
        assert_eq!(r(" ").vendor_message(), "empty body");
    }

    #[test]
    fn excerpt_is_one_line_and_bounded() {
        assert_eq!(excerpt(b"  ab\ncd  ", 10), "ab cd");
        assert_eq!(excerpt("ééé".as_bytes(), 2), "éé…");
    }

    #[test]
    fn json_body_sets_content_type() {
        let r = Request::post("https://h/").json(&serde_json::json!({"a": 1}));
        assert_eq!(r.body.as_deref(), Some(&b"{\"a\":1}"[..]));
        assert!(r.headers.iter().any(|(k, v)| k == "content-type" && v == "application/json"));
    }
}
