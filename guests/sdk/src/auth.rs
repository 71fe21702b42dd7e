//! Credentials on requests: OAuth2 client credentials, a static header, a
//! vendor login, or none.
//!
//! An [`Auth`] adds credentials to each request the driver (or [`send`])
//! sends, except requests marked [`Request::unauthenticated`] (pre-signed
//! download URLs refuse an `Authorization` header). Tokens are kept in memory
//! for the run only: never in the checkpoint, never in a log line.
//!
//! | Vendor style | Use |
//! |---|---|
//! | API key header (`Netskope-Api-Token: …`) | [`StaticHeader`] |
//! | OAuth2 client credentials (form, Basic or JSON body) | [`Session`] of [`ClientCredentials`] |
//! | Vendor login with refresh tokens (MaaS360) | [`Session`] of your [`Login`] |
//! | Pre-signed URLs | [`Request::unauthenticated`] |

use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;

use crate::Error;
use crate::http::{Request, Response, Retry, excerpt};
use crate::io::Io;

/// Adds credentials to requests.
pub trait Auth {
    /// `request` with credentials added, logging in first when needed.
    /// An error here is about the credentials themselves (the login failed),
    /// so the driver ends the whole run with it.
    fn authorize(&mut self, io: &mut dyn Io, request: Request) -> Result<Request, Error>;

    /// The vendor answered 401: forget the credentials. Returns true when
    /// fresh ones can be obtained, i.e. one retry of the request makes sense.
    fn invalidate(&mut self) -> bool;

    /// Whether every request gets credentials of its own (a signature over
    /// a fresh request id and the time), so that sending the same bytes
    /// twice is a replay the vendor may refuse. The driver then keeps the
    /// host from retrying such requests and retries them itself, authorizing
    /// each attempt anew (see [`crate::driver::Budget::server_error_retries`]).
    fn signs_each_request(&self) -> bool {
        false
    }
}

/// No credentials at all (public endpoints, tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoAuth;

impl Auth for NoAuth {
    fn authorize(&mut self, _io: &mut dyn Io, request: Request) -> Result<Request, Error> {
        Ok(request)
    }

    fn invalidate(&mut self) -> bool {
        false
    }
}

/// A fixed header on every request, e.g. an API key.
#[derive(Clone)]
pub struct StaticHeader {
    name: String,
    value: String,
}

impl StaticHeader {
    /// `name: value` on every authenticated request.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self { name: name.into(), value: value.into() }
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer(token: &str) -> Self {
        Self::new("authorization", format!("Bearer {token}"))
    }
}

impl std::fmt::Debug for StaticHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StaticHeader({}: <redacted>)", self.name)
    }
}

impl Auth for StaticHeader {
    fn authorize(&mut self, _io: &mut dyn Io, request: Request) -> Result<Request, Error> {
        if !request.is_authenticated() {
            return Ok(request);
        }
        Ok(request.header(self.name.clone(), self.value.clone()))
    }

    fn invalidate(&mut self) -> bool {
        false
    }
}

/// Credentials obtained by a [`Login`].
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// Header name, e.g. `authorization`.
    pub header: String,
    /// Header value, e.g. `Bearer eyJ…`.
    pub value: String,
    /// When the token stops working (epoch ms); none when unknown.
    pub expires_at_ms: Option<u64>,
    /// A refresh token for [`Login::refresh`], when the vendor issues one.
    pub refresh_token: Option<String>,
}

impl Token {
    /// A bearer token valid until `expires_at_ms`.
    pub fn bearer(access_token: &str, expires_at_ms: Option<u64>) -> Self {
        Self {
            header: "authorization".into(),
            value: format!("Bearer {access_token}"),
            expires_at_ms,
            refresh_token: None,
        }
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({}: <redacted>, expires_at_ms: {:?})", self.header, self.expires_at_ms)
    }
}

/// How to obtain a [`Token`]: the vendor-specific part of a [`Session`].
pub trait Login {
    /// Logs in from scratch.
    fn login(&mut self, io: &mut dyn Io) -> Result<Token, Error>;

    /// Exchanges a refresh token for a new token (which may carry a new,
    /// rotated refresh token). The default logs in again.
    fn refresh(&mut self, io: &mut dyn Io, refresh_token: &str) -> Result<Token, Error> {
        let _ = refresh_token;
        self.login(io)
    }
}

/// A token from a [`Login`], kept for the run: renewed ahead of its expiry
/// (by refresh when possible, else by a new login; a failed refresh falls back
/// to a login), and dropped after a 401 so that one retry gets a fresh one.
pub struct Session<L> {
    login: L,
    token: Option<Token>,
    renew_ahead: Duration,
}

impl<L: Login> Session<L> {
    /// A session that renews tokens 60 s before they expire.
    pub fn new(login: L) -> Self {
        Self { login, token: None, renew_ahead: Duration::from_secs(60) }
    }

    /// Renew tokens this long before their expiry.
    #[must_use]
    pub fn renew_ahead(mut self, ahead: Duration) -> Self {
        self.renew_ahead = ahead;
        self
    }

    /// The current token, logging in or renewing first when needed.
    pub fn token(&mut self, io: &mut dyn Io) -> Result<&Token, Error> {
        let now = io.now_ms();
        let ahead = u64::try_from(self.renew_ahead.as_millis()).unwrap_or(u64::MAX);
        let fresh = |t: &Token| t.expires_at_ms.is_none_or(|at| now.saturating_add(ahead) < at);
        let token = match self.token.take() {
            Some(t) if fresh(&t) => t,
            Some(Token { refresh_token: Some(refresh), .. }) => match self.login.refresh(io, &refresh) {
                Ok(t) => t,
                Err(e) => {
                    io.log(crate::log::Level::Warn, &format!("Token refresh failed ({e}); logging in again"));
                    self.login.login(io)?
                }
            },
            _ => self.login.login(io)?,
        };
        Ok(self.token.insert(token))
    }

    /// The login, e.g. to read what it learned.
    pub fn login_ref(&self) -> &L {
        &self.login
    }
}

impl<L: Login> Auth for Session<L> {
    fn authorize(&mut self, io: &mut dyn Io, request: Request) -> Result<Request, Error> {
        if !request.is_authenticated() {
            return Ok(request);
        }
        let token = self.token(io)?;
        Ok(request.header(token.header.clone(), token.value.clone()))
    }

    fn invalidate(&mut self) -> bool {
        // Keep a refresh token: a 401 on a data call means the access token
        // is gone, not necessarily the refresh token.
        if let Some(t) = self.token.as_mut() {
            t.expires_at_ms = Some(0);
        }
        true
    }
}

/// How a client-credentials request carries the client id and secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialStyle {
    /// `client_id` and `client_secret` in the form body (most vendors).
    Form,
    /// HTTP Basic `client_id:client_secret`, `grant_type` in the form body.
    Basic,
    /// A JSON body `{"grant_type", "client_id", "client_secret"}`.
    Json,
}

/// OAuth2 client credentials (RFC 6749 §4.4).
pub struct ClientCredentials {
    token_url: String,
    client_id: String,
    client_secret: String,
    style: CredentialStyle,
    scope: Option<String>,
    default_lifetime: Duration,
    quota: Option<Quota>,
}

/// How a token endpoint that shares the vendor's quota says "slow down".
#[derive(Clone, Copy)]
struct Quota {
    wait: fn(&Response, u64) -> Option<Duration>,
    attempts: u32,
    max_wait: Duration,
}

impl ClientCredentials {
    /// Client credentials posted as a form to `token_url`. Tokens without
    /// `expires_in` are assumed to live `default_lifetime`: use the vendor's
    /// documented lifetime.
    pub fn new(
        token_url: impl Into<String>,
        client_id: String,
        client_secret: String,
        default_lifetime: Duration,
    ) -> Self {
        Self {
            token_url: token_url.into(),
            client_id,
            client_secret,
            style: CredentialStyle::Form,
            scope: None,
            default_lifetime,
            quota: None,
        }
    }

    /// For token endpoints that count against the vendor's rate limit and
    /// answer over it with a status the host should not retry quickly (e.g.
    /// MuleSoft's 503 "minute quota used up"): the token request is sent with
    /// [`Retry::RateLimitedOnly`] and `max_wait`, and when `wait(response,
    /// now_ms)` reads the answer as a refusal, the login sleeps that long and
    /// asks again, at most `attempts` times before failing as
    /// [`Error::RateLimited`]. Pass the same function as the stream's
    /// [`crate::driver::Stream::rate_limited`].
    #[must_use]
    pub fn rate_limited(
        mut self,
        wait: fn(&Response, u64) -> Option<Duration>,
        attempts: u32,
        max_wait: Duration,
    ) -> Self {
        self.quota = Some(Quota { wait, attempts, max_wait });
        self
    }

    /// How the credentials travel.
    #[must_use]
    pub fn style(mut self, style: CredentialStyle) -> Self {
        self.style = style;
        self
    }

    /// Requests `scope`.
    #[must_use]
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The token request (without secrets in the URL).
    pub fn request(&self) -> Request {
        let r = Request::post(&self.token_url).header("accept", "application/json").unauthenticated();
        let scope = self.scope.as_deref();
        let r = match self.style {
            CredentialStyle::Form => {
                let mut form = vec![
                    ("grant_type", "client_credentials"),
                    ("client_id", &self.client_id),
                    ("client_secret", &self.client_secret),
                ];
                form.extend(scope.map(|s| ("scope", s)));
                r.form(&form)
            }
            CredentialStyle::Basic => {
                let pair = format!("{}:{}", self.client_id, self.client_secret);
                let basic = base64::engine::general_purpose::STANDARD.encode(pair);
                let mut form = vec![("grant_type", "client_credentials")];
                form.extend(scope.map(|s| ("scope", s)));
                r.header("authorization", format!("Basic {basic}")).form(&form)
            }
            CredentialStyle::Json => {
                let mut body = serde_json::json!({
                    "grant_type": "client_credentials",
                    "client_id": self.client_id,
                    "client_secret": self.client_secret,
                });
                if let Some(s) = scope {
                    body["scope"] = serde_json::Value::String(s.to_string());
                }
                r.json(&body)
            }
        };
        match self.quota {
            None => r.retry(Retry::Host),
            Some(q) => r.retry(Retry::RateLimitedOnly).max_wait(q.max_wait),
        }
    }
}

impl Login for ClientCredentials {
    fn login(&mut self, io: &mut dyn Io) -> Result<Token, Error> {
        let mut refusals = 0;
        loop {
            let response = io.send(self.request())?;
            let now = io.now_ms();
            let Some((q, wait)) = self.quota.and_then(|q| (q.wait)(&response, now).map(|w| (q, w))) else {
                return parse_token_response(&self.token_url, &response, now, self.default_lifetime);
            };
            if refusals == q.attempts {
                return Err(Error::RateLimited(format!(
                    "the token endpoint {} kept rate limiting ({} answers in a row were HTTP {})",
                    self.token_url,
                    refusals + 1,
                    response.status
                )));
            }
            refusals += 1;
            let secs = wait.as_secs();
            let status = response.status;
            io.log(crate::log::Level::Warn, &format!("Token endpoint: rate limited (HTTP {status}); retry in {secs}s"));
            io.sleep(wait);
        }
    }
}

/// Reads an OAuth2 token response (`access_token`, optional `expires_in` as a
/// number or numeric text, optional `refresh_token`). A refusal is an
/// [`Error::Auth`] with the vendor's error text (never the secret).
pub fn parse_token_response(
    token_url: &str,
    response: &Response,
    now_ms: u64,
    default_lifetime: Duration,
) -> Result<Token, Error> {
    #[derive(Deserialize)]
    struct Body {
        access_token: Option<String>,
        expires_in: Option<serde_json::Value>,
        refresh_token: Option<String>,
    }
    let status = response.status;
    if matches!(status, 400 | 401 | 403) {
        return Err(Error::Auth(format!(
            "the token endpoint {token_url} refused the client credentials (HTTP {status}: {})",
            response.vendor_message()
        )));
    }
    let response = response.clone().error_for_status(&format!("token endpoint {token_url}"))?;
    let body: Body = serde_json::from_slice(&response.body).map_err(|e| {
        Error::Vendor(format!(
            "the token endpoint {token_url} sent no JSON token ({e}): {}",
            excerpt(&response.body, 80)
        ))
    })?;
    let Some(access) = body.access_token.filter(|t| !t.is_empty()) else {
        return Err(Error::Auth(format!("the token endpoint {token_url} answered without an access_token")));
    };
    let lifetime_s = match body.expires_in {
        Some(serde_json::Value::Number(n)) => n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .unwrap_or(default_lifetime.as_secs());
    let mut token = Token::bearer(&access, Some(now_ms.saturating_add(lifetime_s.saturating_mul(1_000))));
    token.refresh_token = body.refresh_token;
    Ok(token)
}

/// Sends `request` with credentials from `auth`. A 401 makes `auth` forget
/// its credentials and, when it can get fresh ones, the request is sent once
/// more; a second 401 is returned as it is (then
/// [`Response::error_for_status`] turns it into [`Error::Auth`]).
pub fn send(io: &mut dyn Io, auth: &mut dyn Auth, request: Request) -> Result<Response, Error> {
    let retry = request.is_authenticated().then(|| request.clone());
    let authorized = auth.authorize(io, request)?;
    let response = io.send(authorized)?;
    match retry {
        Some(request) if response.status == 401 && auth.invalidate() => {
            io.log(crate::log::Level::Info, "HTTP 401: the token was refused; authenticating again");
            let authorized = auth.authorize(io, request)?;
            Ok(io.send(authorized)?)
        }
        _ => Ok(response),
    }
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
