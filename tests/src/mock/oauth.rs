//! A shared OAuth 2.0 client-credentials token endpoint (RFC 6749 §4.4) that vendor mocks mount
//! at their token path, and the bearer check for their data endpoints.
//!
//! The client authenticates with HTTP Basic, form fields or a JSON body (each can be turned off
//! per vendor); the answer carries `expires_in` or leaves it out, as MuleSoft's documented example
//! does; tokens really expire after their lifetime (or at once with [`OAuth::expire_tokens`]), so
//! tests can make a data call get 401 and watch the collector authenticate again. Issued tokens
//! are counted and listed, so a test can assert "one token per run" and scan logs for them.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use siphon_tests::mock::oauth::{OAuth, OAuthConfig};
//! use siphon_tests::mock::server::{MockServer, Request, Response};
//! let oauth = Arc::new(OAuth::new("/oauth/token", OAuthConfig::new("client-1", "s3cret")));
//! let auth = Arc::clone(&oauth);
//! let server = MockServer::start(move |req: &Request| {
//!     if let Some(answer) = auth.route(req) {
//!         return answer; // the token endpoint
//!     }
//!     match auth.authorize(req) {
//!         Ok(_grant) => Response::json(200, r#"{"events":[]}"#),
//!         Err(denied) => denied.response(),
//!     }
//! })
//! .await?;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::http::{Request, Response, percent_decode};
use super::server::lock;

/// Tokens kept at once; the oldest go first.
pub const MAX_TOKENS: usize = 10_000;
/// A token's lifetime when the config gives none.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// How a client may present its id and secret to the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// `Authorization: Basic base64(id:secret)` (RFC 6749 §2.3.1, the preferred way).
    Basic,
    /// `client_id` and `client_secret` form fields.
    Form,
    /// `client_id` and `client_secret` in a JSON body (MuleSoft accepts it).
    Json,
}

/// How the token endpoint behaves. Build it with [`OAuthConfig::new`] and adjust the fields.
#[derive(Clone, Debug)]
pub struct OAuthConfig {
    /// The one valid client id.
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
    /// The ways a client may authenticate. Default: all three.
    pub accepted: Vec<ClientAuth>,
    /// `expires_in` of the answer; `None` leaves the field out. Default 3600.
    pub expires_in: Option<u64>,
    /// How long a token really stays valid. Default: `expires_in`, else [`DEFAULT_LIFETIME`].
    pub lifetime: Option<Duration>,
    /// Scopes the client may have. A request for another one gets 400 `invalid_scope`; a request
    /// without `scope` is granted all of them. Default: none (the `scope` field is left out).
    pub scopes: Vec<String>,
    /// Status for an unknown client or a wrong secret: 401 by RFC 6749, 400 at some vendors.
    pub invalid_client_status: u16,
}

impl OAuthConfig {
    /// A client `client_id` with `client_secret`, defaults for the rest.
    pub fn new(client_id: &str, client_secret: &str) -> OAuthConfig {
        OAuthConfig {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            accepted: vec![ClientAuth::Basic, ClientAuth::Form, ClientAuth::Json],
            expires_in: Some(3600),
            lifetime: None,
            scopes: Vec::new(),
            invalid_client_status: 401,
        }
    }

    fn lifetime(&self) -> Duration {
        self.lifetime.or(self.expires_in.map(Duration::from_secs)).unwrap_or(DEFAULT_LIFETIME)
    }
}

/// What a valid bearer token was granted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The token.
    pub token: String,
    /// Its scopes.
    pub scopes: Vec<String>,
}

/// Why a data request was refused; [`Denied::response`] is the standard answer, vendors with
/// their own error shape build theirs from the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denied {
    /// No `Authorization: Bearer` header.
    Missing,
    /// A token this server never issued (or forgot).
    Unknown,
    /// A token past its lifetime.
    Expired,
    /// A valid token without the scope the endpoint needs.
    Scope(String),
}

impl Denied {
    /// 401 `invalid_token` (403 `insufficient_scope`) with a `WWW-Authenticate` challenge.
    pub fn response(&self) -> Response {
        let (status, error, description) = match self {
            Denied::Missing => (401, "invalid_request", "missing bearer token".to_owned()),
            Denied::Unknown => (401, "invalid_token", "unknown access token".to_owned()),
            Denied::Expired => (401, "invalid_token", "the access token expired".to_owned()),
            Denied::Scope(s) => (403, "insufficient_scope", format!("the access token lacks scope {s}")),
        };
        let body = serde_json::json!({ "error": error, "error_description": description });
        Response::json(status, body.to_string())
            .header("www-authenticate", format!(r#"Bearer error="{error}", error_description="{description}""#))
    }
}

/// A token endpoint and its issued tokens.
pub struct OAuth {
    path: String,
    state: Mutex<State>,
}

struct State {
    cfg: OAuthConfig,
    tokens: HashMap<String, Issued>,
    issued: usize,
}

struct Issued {
    serial: usize,
    expires: Instant,
    scopes: Vec<String>,
}

impl OAuth {
    /// A token endpoint at `path` (e.g. `/oauth/token`).
    pub fn new(path: &str, cfg: OAuthConfig) -> OAuth {
        OAuth { path: path.to_owned(), state: Mutex::new(State { cfg, tokens: HashMap::new(), issued: 0 }) }
    }

    /// The token endpoint's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The answer of the token endpoint when `request` is for its path, else `None`.
    pub fn route(&self, request: &Request) -> Option<Response> {
        (request.path == self.path).then(|| self.token(request))
    }

    /// Checks the bearer token of a data request.
    pub fn authorize(&self, request: &Request) -> Result<Grant, Denied> {
        let token = request.bearer().ok_or(Denied::Missing)?;
        let state = lock(&self.state);
        let issued = state.tokens.get(token).ok_or(Denied::Unknown)?;
        if Instant::now() >= issued.expires {
            return Err(Denied::Expired);
        }
        Ok(Grant { token: token.to_owned(), scopes: issued.scopes.clone() })
    }

    /// Like [`OAuth::authorize`], and the token must carry `scope`.
    pub fn authorize_scope(&self, request: &Request, scope: &str) -> Result<Grant, Denied> {
        let grant = self.authorize(request)?;
        if grant.scopes.iter().any(|s| s == scope) { Ok(grant) } else { Err(Denied::Scope(scope.to_owned())) }
    }

    /// Tokens issued so far.
    pub fn issued(&self) -> usize {
        lock(&self.state).issued
    }

    /// Every token still kept (valid or expired), oldest first: secrets a log must never show.
    pub fn tokens(&self) -> Vec<String> {
        let state = lock(&self.state);
        let mut tokens: Vec<(&String, &Issued)> = state.tokens.iter().collect();
        tokens.sort_by_key(|(_, i)| i.serial);
        tokens.into_iter().map(|(t, _)| t.clone()).collect()
    }

    /// Expires every token issued so far: the next data call with one gets 401.
    pub fn expire_tokens(&self) {
        let now = Instant::now();
        for issued in lock(&self.state).tokens.values_mut() {
            issued.expires = now;
        }
    }

    /// Replaces the client secret (a rotation, or a revoked one): the old one stops working;
    /// tokens already issued stay valid.
    pub fn set_client_secret(&self, secret: &str) {
        lock(&self.state).cfg.client_secret = secret.to_owned();
    }

    fn token(&self, request: &Request) -> Response {
        if request.method != "POST" {
            return Response::json(405, r#"{"error":"invalid_request","error_description":"use POST"}"#)
                .header("allow", "POST");
        }
        let mut state = lock(&self.state);
        let presented = match presented_credentials(request) {
            Ok(p) => p,
            Err(message) => return oauth_error(400, "invalid_request", message),
        };
        if presented.grant_type.as_deref() != Some("client_credentials") {
            return oauth_error(400, "unsupported_grant_type", "grant_type must be client_credentials");
        }
        let cfg = &state.cfg;
        let Some((how, id, secret)) = presented.client else {
            return invalid_client(cfg.invalid_client_status, None, "client authentication is required");
        };
        if !cfg.accepted.contains(&how) {
            let message = format!("client authentication by {how:?} is not supported here");
            return invalid_client(cfg.invalid_client_status, Some(how), &message);
        }
        let valid = |id: &str, secret: &str| id == cfg.client_id && secret == cfg.client_secret;
        // Basic credentials are form-urlencoded by the RFC, sent raw by many clients: take both.
        let decoded = |s: &str| percent_decode(s, true);
        let basic_decoded = how == ClientAuth::Basic && valid(&decoded(&id), &decoded(&secret));
        if !valid(&id, &secret) && !basic_decoded {
            return invalid_client(cfg.invalid_client_status, Some(how), "unknown client or wrong secret");
        }
        let scopes = match presented.scope {
            None => cfg.scopes.clone(),
            Some(asked) => {
                let asked: Vec<String> = asked.split_whitespace().map(str::to_owned).collect();
                if let Some(bad) = asked.iter().find(|s| !cfg.scopes.contains(s)) {
                    return oauth_error(400, "invalid_scope", &format!("scope {bad} is not granted to this client"));
                }
                asked
            }
        };
        let lifetime = cfg.lifetime();
        let expires_in = cfg.expires_in;
        state.issued += 1;
        let serial = state.issued;
        let token = format!("mock-access-{serial:06}-{:016x}", rand::random::<u64>());
        if state.tokens.len() >= MAX_TOKENS {
            let oldest = state.tokens.iter().min_by_key(|(_, i)| i.serial).map(|(t, _)| t.clone());
            if let Some(oldest) = oldest {
                state.tokens.remove(&oldest);
            }
        }
        let scope = scopes.join(" ");
        state.tokens.insert(token.clone(), Issued { serial, expires: Instant::now() + lifetime, scopes });
        let mut body = serde_json::json!({ "access_token": token, "token_type": "Bearer" });
        if let Some(secs) = expires_in {
            body["expires_in"] = secs.into();
        }
        if !scope.is_empty() {
            body["scope"] = scope.into();
        }
        Response::json(200, body.to_string()).header("cache-control", "no-store")
    }
}

/// What a token request carried.
struct Presented {
    grant_type: Option<String>,
    scope: Option<String>,
    client: Option<(ClientAuth, String, String)>,
}

/// Reads grant type, scope and client credentials from the Basic header and the form or JSON
/// body; more than one way of authenticating is an error (RFC 6749 §2.3).
fn presented_credentials(request: &Request) -> Result<Presented, &'static str> {
    let is_json = request.header("content-type").is_some_and(|ct| ct.to_ascii_lowercase().contains("json"));
    let (fields, body_auth): (Vec<(String, String)>, ClientAuth) = if is_json {
        let Some(serde_json::Value::Object(map)) = request.json() else {
            return Err("the body is not a JSON object");
        };
        let fields = map.into_iter().filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_owned()))).collect();
        (fields, ClientAuth::Json)
    } else {
        (request.form(), ClientAuth::Form)
    };
    let field = |key: &str| fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let in_body = match (field("client_id"), field("client_secret")) {
        (Some(id), Some(secret)) => Some((body_auth, id, secret)),
        (Some(id), None) => Some((body_auth, id, String::new())),
        _ => None,
    };
    let basic = match request.header("authorization") {
        Some(value) => Some(basic_credentials(value).ok_or("malformed Basic authorization header")?),
        None => None,
    };
    let client = match (basic, in_body) {
        (Some(_), Some(_)) => return Err("more than one client authentication method"),
        (Some((id, secret)), None) => Some((ClientAuth::Basic, id, secret)),
        (None, body) => body,
    };
    Ok(Presented { grant_type: field("grant_type"), scope: field("scope"), client })
}

/// The id and secret of `Basic base64(id:secret)`, as sent.
fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(BASE64.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

fn oauth_error(status: u16, error: &str, description: &str) -> Response {
    let body = serde_json::json!({ "error": error, "error_description": description });
    Response::json(status, body.to_string()).header("cache-control", "no-store")
}

fn invalid_client(status: u16, how: Option<ClientAuth>, description: &str) -> Response {
    let response = oauth_error(status, "invalid_client", description);
    // RFC 6749 §5.2: a 401 after Basic comes with the matching challenge.
    if status == 401 && how.is_none_or(|h| h == ClientAuth::Basic) {
        response.header("www-authenticate", r#"Basic realm="token""#)
    } else {
        response
    }
}

/// `Authorization` value of HTTP Basic for `id` and `secret`, for tests that act as the client.
pub fn basic_header(id: &str, secret: &str) -> String {
    format!("Basic {}", BASE64.encode(format!("{id}:{secret}")))
}

#[cfg(test)]
mod tests;
