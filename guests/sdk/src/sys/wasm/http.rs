//! The HTTP transport over `wasi:http/outgoing-handler`.
//!
//! One request, start to finish, blocking: build the `outgoing-request`, hand
//! it to the host, stream the body out, wait on the response future, then read
//! the whole response body. Every `wasi:http` failure becomes an [`HttpError`]
//! whose message names the destination.

use super::bindings::wasi::http::outgoing_handler;
use super::bindings::wasi::http::types::{
    self as wasi, ErrorCode, Fields, HeaderError, IncomingBody, OutgoingBody, OutgoingRequest, Scheme,
};
use super::bindings::wasi::io::streams::StreamError;
use crate::http::{Headers, HttpError, HttpErrorKind, Method, Request, Response};

/// `blocking-write-and-flush` accepts at most 4096 bytes per call.
const WRITE_CHUNK: usize = 4096;
/// Read size per `blocking-read`; the host may return less.
const READ_CHUNK: u64 = 64 * 1024;
/// Most of a body reserved up front on the word of its `content-length`
/// (see `read_body`).
const RESERVE_MAX: u64 = 16 << 20;

/// Performs `request` and returns the complete response.
pub(crate) fn send(request: Request) -> Result<Response, HttpError> {
    let target = request.target()?;
    let authority = target.authority.as_str();
    let invalid = |what: &str| HttpError::new(HttpErrorKind::InvalidRequest, format!("request to {authority}: {what}"));

    let fields: Vec<(String, Vec<u8>)> =
        request.headers.iter().map(|(k, v)| (k.clone(), v.clone().into_bytes())).collect();
    let headers = Fields::from_list(&fields).map_err(|e| header_error(&e, &request.headers, authority))?;
    let outgoing = OutgoingRequest::new(headers);
    outgoing.set_method(&method(request.method)).map_err(|()| invalid("the host refused the method"))?;
    let scheme = if target.https { Scheme::Https } else { Scheme::Http };
    outgoing.set_scheme(Some(&scheme)).map_err(|()| invalid("the host refused the scheme"))?;
    outgoing.set_authority(Some(authority)).map_err(|()| invalid("the host refused the authority"))?;
    outgoing.set_path_with_query(Some(&target.path_with_query)).map_err(|()| invalid("the host refused the path"))?;
    // The body handle must be taken before the request is handed over.
    let body = outgoing.body().map_err(|()| invalid("the request body was already taken"))?;

    let future = outgoing_handler::handle(outgoing, None).map_err(|e| error_code(&e, authority))?;
    // Write only after `handle`: the host drains the body while sending, so a
    // body larger than its buffer written any earlier would never complete.
    write_body(body, request.body.as_deref().unwrap_or_default(), authority)?;

    let incoming = loop {
        match future.get() {
            Some(Ok(Ok(response))) => break response,
            Some(Ok(Err(code))) => return Err(error_code(&code, authority)),
            Some(Err(())) => {
                return Err(HttpError::new(
                    HttpErrorKind::Other,
                    format!("request to {authority}: response taken twice"),
                ));
            }
            None => future.subscribe().block(),
        }
    };

    let status = incoming.status();
    let headers = {
        // A child resource of the response: dropped before `consume` below.
        let fields = incoming.headers();
        fields.entries().into_iter().map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned())).collect::<Headers>()
    };
    let body = incoming.consume().map_err(|()| {
        HttpError::new(HttpErrorKind::Other, format!("response from {authority}: body already consumed"))
    })?;
    let expected = headers.get_u64("content-length").unwrap_or(0);
    let body = read_body(body, expected, authority)?;
    Ok(Response { status, headers, body })
}

fn write_body(body: OutgoingBody, bytes: &[u8], authority: &str) -> Result<(), HttpError> {
    {
        // The stream is a child of `body` and must be gone before `finish`.
        let stream = body.write().map_err(|()| {
            HttpError::new(HttpErrorKind::Other, format!("request to {authority}: body stream unavailable"))
        })?;
        for chunk in bytes.chunks(WRITE_CHUNK) {
            stream.blocking_write_and_flush(chunk).map_err(|e| stream_error(e, authority, "sending the body"))?;
        }
    }
    OutgoingBody::finish(body, None).map_err(|e| error_code(&e, authority))
}

/// Reads the whole body. One of `expected` bytes is read into one
/// allocation: grown by doubling, a 10 MB page would take 24 MB of guest
/// memory at the last step, and guest memory never shrinks. The length is
/// the vendor's claim, so at most [`RESERVE_MAX`] is reserved on its word.
fn read_body(body: IncomingBody, expected: u64, authority: &str) -> Result<Vec<u8>, HttpError> {
    let mut out = Vec::with_capacity(expected.min(RESERVE_MAX) as usize);
    {
        let stream = body.stream().map_err(|()| {
            HttpError::new(HttpErrorKind::Other, format!("response from {authority}: body stream unavailable"))
        })?;
        loop {
            match stream.blocking_read(READ_CHUNK) {
                Ok(chunk) => out.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(e) => return Err(stream_error(e, authority, "reading the response body")),
            }
        }
    }
    // Trailers are not used; dropping the future discards them.
    drop(IncomingBody::finish(body));
    Ok(out)
}

fn method(m: Method) -> wasi::Method {
    match m {
        Method::Get => wasi::Method::Get,
        Method::Post => wasi::Method::Post,
        Method::Put => wasi::Method::Put,
        Method::Delete => wasi::Method::Delete,
        Method::Patch => wasi::Method::Patch,
        Method::Head => wasi::Method::Head,
    }
}

fn header_error(e: &HeaderError, headers: &[(String, String)], authority: &str) -> HttpError {
    // Name the headers, never their values: they may hold credentials.
    let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    let why = match e {
        HeaderError::InvalidSyntax => "a header name or value is not valid HTTP",
        HeaderError::Forbidden => "a header is forbidden by the host",
        HeaderError::Immutable => "the headers are immutable",
    };
    HttpError::new(
        HttpErrorKind::InvalidRequest,
        format!("request to {authority}: {why} (headers: {})", names.join(", ")),
    )
}

fn stream_error(e: StreamError, authority: &str, doing: &str) -> HttpError {
    match e {
        StreamError::Closed => {
            HttpError::new(HttpErrorKind::Connection, format!("{authority} closed the connection while {doing}"))
        }
        StreamError::LastOperationFailed(err) => match wasi::http_error_code(&err) {
            Some(code) => {
                let inner = error_code(&code, authority);
                HttpError::new(inner.kind, format!("{} (while {doing})", inner.message))
            }
            None => HttpError::new(
                HttpErrorKind::Connection,
                format!("I/O error with {authority} while {doing}: {}", err.to_debug_string()),
            ),
        },
    }
}

/// Turns a `wasi:http` `error-code` into an operator-grade message.
fn error_code(code: &ErrorCode, authority: &str) -> HttpError {
    use HttpErrorKind as K;
    let (kind, message) = match code {
        ErrorCode::HttpRequestDenied => (K::Denied, format!("request to {authority} denied by the host's allow-list")),
        ErrorCode::DnsTimeout => (K::Dns, format!("DNS lookup of {authority} timed out")),
        ErrorCode::DnsError(p) => (
            K::Dns,
            format!(
                "DNS lookup of {authority} failed{}",
                p.rcode.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
            ),
        ),
        ErrorCode::DestinationNotFound => (K::Dns, format!("{authority} not found")),
        ErrorCode::DestinationUnavailable => (K::Connection, format!("{authority} is unavailable")),
        ErrorCode::DestinationIpProhibited => {
            (K::Denied, format!("the address of {authority} is prohibited by the host"))
        }
        ErrorCode::DestinationIpUnroutable => (K::Connection, format!("the address of {authority} is unroutable")),
        ErrorCode::ConnectionRefused => (K::Connection, format!("connection to {authority} refused")),
        ErrorCode::ConnectionTerminated => (K::Connection, format!("connection to {authority} terminated")),
        ErrorCode::ConnectionTimeout => (K::Timeout, format!("connecting to {authority} timed out")),
        ErrorCode::ConnectionReadTimeout => (K::Timeout, format!("reading from {authority} timed out")),
        ErrorCode::ConnectionWriteTimeout => (K::Timeout, format!("writing to {authority} timed out")),
        ErrorCode::ConnectionLimitReached => (K::Connection, format!("connection limit reached for {authority}")),
        ErrorCode::TlsProtocolError => (K::Tls, format!("TLS protocol error with {authority}")),
        ErrorCode::TlsCertificateError => (K::Tls, format!("TLS certificate of {authority} rejected")),
        ErrorCode::TlsAlertReceived(p) => (
            K::Tls,
            format!(
                "TLS alert from {authority}{}",
                p.alert_message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
            ),
        ),
        ErrorCode::HttpRequestBodySize(_) => (K::InvalidRequest, format!("request body too large for {authority}")),
        ErrorCode::HttpRequestMethodInvalid => (K::InvalidRequest, format!("invalid method for {authority}")),
        ErrorCode::HttpRequestUriInvalid => (K::InvalidRequest, format!("invalid URI for {authority}")),
        ErrorCode::HttpRequestUriTooLong => (K::InvalidRequest, format!("URI too long for {authority}")),
        ErrorCode::HttpResponseIncomplete => (K::Protocol, format!("incomplete response from {authority}")),
        ErrorCode::HttpResponseBodySize(limit) => (
            K::Protocol,
            match limit {
                Some(n) => {
                    format!("response from {authority} exceeds the host's body limit of {n} bytes")
                }
                None => format!("response from {authority} exceeds the host's body limit"),
            },
        ),
        ErrorCode::HttpResponseTimeout => {
            (K::Timeout, format!("no response from {authority} within the host's timeout"))
        }
        ErrorCode::HttpProtocolError => (K::Protocol, format!("HTTP protocol error with {authority}")),
        ErrorCode::InternalError(m) => (
            K::Other,
            format!(
                "host error for a request to {authority}{}",
                m.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
            ),
        ),
        other => (K::Protocol, format!("request to {authority} failed: {other:?}")),
    };
    HttpError::new(kind, message)
}
