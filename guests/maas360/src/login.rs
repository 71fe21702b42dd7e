//! MaaS360 Authentication 2.0 (vendor-apis.md §1.2.2) as a [`Login`] for the SDK's session: a
//! JSON login answering an access token and a rotating refresh token, and the refresh call.
//! Refusals come back as HTTP 200 with a non-zero `errorCode`; tokens travel as
//! `Authorization: MaaS token="…"`.

use serde_json::{Value, json};
use siphon_sdk::Error;
use siphon_sdk::auth::{Login, Token};
use siphon_sdk::data::json::Object;
use siphon_sdk::http::{Request, Response};
use siphon_sdk::io::Io;

/// Tokens live 60 minutes (IBM, "Web Services integration").
pub const TOKEN_LIFETIME_MS: u64 = 60 * 60 * 1_000;

/// The account and the web-services access key. Only [`Credentials::login_request`] reads the
/// secrets, and no message names them.
pub struct Credentials {
    pub(crate) base_url: String,
    pub(crate) billing_id: String,
    pub(crate) user_name: String,
    /// `appID`, `appVersion`, `platformID` as MaaS360 names them.
    pub(crate) app: [(&'static str, String); 3],
    pub(crate) password: String,
    pub(crate) app_access_key: String,
}

impl Credentials {
    /// The authenticate request: every credential, as JSON.
    pub fn login_request(&self) -> Request {
        let secrets = [("password", &self.password), ("appAccessKey", &self.app_access_key)];
        self.call("authenticate", secrets.map(|(k, v)| (k, v.clone())))
    }

    /// The refresh request: the refresh token instead of the secrets.
    pub fn refresh_request(&self, refresh_token: &str) -> Request {
        self.call("refreshToken", [("refreshToken", refresh_token.to_owned())])
    }

    fn call<const N: usize>(&self, call: &str, extra: [(&str, String); N]) -> Request {
        let mut auth = json!({ "billingID": self.billing_id, "userName": self.user_name });
        for (k, v) in self.app.iter().cloned().chain(extra) {
            auth[k] = Value::String(v);
        }
        Request::post(format!("{}/auth-apis/auth/2.0/{call}/customer/{}", self.base_url, self.billing_id))
            .header("accept", "application/json")
            .json(&json!({ "authRequest": { "maaS360AdminAuth": auth } }))
            .unauthenticated()
    }

    /// Reads an `authResponse`: a token, or an [`Error::Auth`] naming the user, the billing id
    /// and MaaS360's `errorCode`/`errorDesc`.
    pub fn token(&self, what: &str, response: &Response, now_ms: u64) -> Result<Token, Error> {
        let (user, billing) = (&self.user_name, &self.billing_id);
        let refused =
            |why| Error::Auth(format!("MaaS360 refused the {what} of `{user}` for billing id {billing} ({why})"));
        if matches!(response.status, 401 | 403) {
            return Err(refused(format!("HTTP {}: {}", response.status, response.vendor_message())));
        }
        let response = response.clone().error_for_status(&format!("MaaS360 {what} for billing id {billing}"))?;
        let body = Object::parse(&response.body).map_err(|e| {
            Error::Vendor(format!("the MaaS360 {what} answer is not JSON ({e}): {}", response.body_excerpt(120)))
        })?;
        let field = |name: &str| body.str(&format!("authResponse.{name}")).ok().flatten().filter(|v| !v.is_empty());
        match (field("errorCode").filter(|c| c.trim() != "0"), field("authToken")) {
            (Some(code), _) => Err(refused(format!("errorCode {code}: {}", field("errorDesc").unwrap_or_default()))),
            (None, None) => Err(refused("the answer holds no authToken".into())),
            (None, Some(token)) => Ok(Token {
                header: "authorization".into(),
                value: format!("MaaS token=\"{token}\""),
                expires_at_ms: Some(now_ms.saturating_add(TOKEN_LIFETIME_MS)),
                refresh_token: field("refreshToken").map(|t| t.into_owned()),
            }),
        }
    }
}

impl Login for Credentials {
    fn login(&mut self, io: &mut dyn Io) -> Result<Token, Error> {
        let response = io.send(self.login_request())?;
        self.token("login", &response, io.now_ms())
    }

    /// The answer carries a new refresh token (they rotate); when the refresh is refused the
    /// session logs in again.
    fn refresh(&mut self, io: &mut dyn Io, refresh_token: &str) -> Result<Token, Error> {
        let response = io.send(self.refresh_request(refresh_token))?;
        self.token("token refresh", &response, io.now_ms())
    }
}
