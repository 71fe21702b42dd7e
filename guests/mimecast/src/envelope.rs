//! What Mimecast's failures mean. They come as `{"fail":[{"errors":[{"code","message"}]}]}`
//! (API 1.0 style, also on API 2.0's audit endpoint), `{"fail":[{"code","message"}]}` (2.0 401)
//! or `{"error":{"code","message"}}` (2.0 SIEM); the `fail[]` ones also with HTTP 200.

use std::time::Duration;

use siphon_sdk::Error;
use siphon_sdk::data::json::{field_raw, field_str};
use siphon_sdk::http::{Response, reset_wait};

/// `Err` for a refused call: not 2xx, or a 2xx body that still carries a non-empty `fail[]`.
pub fn check(what: &str, response: &Response) -> Result<(), Error> {
    let fail = field_raw(std::str::from_utf8(&response.body).unwrap_or_default(), "fail.0");
    if !response.is_success() || fail.is_ok_and(|f| f.is_some()) { Err(error(what, response)) } else { Ok(()) }
}

/// The error a refused call (any status, or 200 with `fail[]`) means for the operator.
pub fn error(what: &str, response: &Response) -> Error {
    let text = std::str::from_utf8(&response.body).unwrap_or_default();
    let field = |at: &str, key: &str| field_str(text, &format!("{at}.{key}")).ok().flatten().unwrap_or_default();
    let (code, message) = ["fail.0.errors.0", "fail.0", "error"]
        .into_iter()
        .map(|at| (field(at, "code").into_owned(), field(at, "message").into_owned()))
        .find(|(code, message)| !code.is_empty() || !message.is_empty())
        .unwrap_or_else(|| (String::new(), response.vendor_message()));
    let said = if code.is_empty() { message } else { format!("{message} ({code})") };
    let (status, m) = (response.status, format!("{what}: HTTP {}: {said}", response.status));
    match (status, code.as_str()) {
        (418, _) | (_, "err_xdk_binding_expired") => Error::Auth(format!(
            "{m}; the access key's binding expired: create a new access key and secret key, then update \
             the source's secrets"
        )),
        (_, "err_audit_siem_invalid_token") => Error::Config(format!(
            "{m}; the SIEM token is older than the 7 days Mimecast keeps, or malformed: reset the source's \
             checkpoint (`siphon state reset <source>`) to start again from the oldest retained file"
        )),
        (401 | 403, _) | (_, "err_xdk_client_unauthorized" | "err_developer_key") => Error::Auth(m),
        (404, _) => Error::NotFound(m),
        (429, _) => Error::RateLimited(m),
        _ => Error::Vendor(m),
    }
}

/// How long a 429 asks to wait: `Retry-After` seconds, else `X-RateLimit-Reset`, which Mimecast
/// gives in milliseconds (an epoch value, seconds or milliseconds, is read as a point in time).
pub fn rate_limited(response: &Response, now_ms: u64) -> Option<Duration> {
    (response.status == 429).then(|| {
        match (response.headers.get_u64("retry-after"), response.headers.get_u64("x-ratelimit-reset")) {
            (Some(s), _) => Duration::from_secs(s),
            (None, Some(v)) if v < 1_000_000_000 => Duration::from_millis(v),
            (None, Some(v)) => reset_wait(v, now_ms),
            (None, None) => Duration::ZERO,
        }
    })
}
