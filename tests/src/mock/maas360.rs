//! A mock IBM MaaS360 tenant on the generic [`MockServer`], as hostile as `shared/vendor-apis.md`
//! §1 says real tenants are (§1.9): XML unless `Accept` asks for JSON, Authentication 1.0 and 2.0
//! with HTTP 200 + `errorCode` on failure, rotating refresh tokens, tokens that expire (60 min, or
//! on demand), the quoted `MaaS token="…"` header, page-number paging with the single-object and
//! missing-list quirks, string envelopes, `count` as total or per page, newest-first admin audits
//! with inclusive `fromDate`/`toDate` and late writes, devices sorted by the second-precision `lastReported`, and
//! compliance events that answer a lower `pageNumber` past the end. 429/500 and transport faults
//! come from the server's fault queue.
//!
//! [`Tenant`] is the state and handler; [`MockMaas360`] serves it on the vendor kit's
//! [`MockVendor`]. Native collector tests drive a `Tenant` directly through
//! `siphon_sdk::testing::FakeIo` with a [`Clock`] they control. This file owns auth and routing;
//! `lists` holds the records and paging.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use siphon_tests::mock::Streams;
//! use siphon_tests::mock::maas360::{MockConfig, MockMaas360};
//! let mock = MockMaas360::start(MockConfig::default()).await?;
//! mock.state().add("admin_logins", 30);
//! // point the maas360 collector at mock.base_url(), billing_id 30012345, password "s3cret-pass"
//! # Ok(()) }
//! ```

mod lists;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub use lists::{STREAMS, key_of};

use super::http::{Request, Response};
use super::{MockVendor, Streams};

/// How the tenant behaves. Build it with `..MockConfig::default()`.
#[derive(Clone, Debug)]
pub struct MockConfig {
    /// The account; the path of every call must name it.
    pub billing_id: String,
    /// App ID, app version, platform ID, user name: the non-secret credentials.
    pub app_id: String,
    /// See `app_id`.
    pub app_version: String,
    /// See `app_id`.
    pub platform_id: String,
    /// See `app_id`.
    pub user_name: String,
    /// The administrator's password.
    pub password: String,
    /// The app access key.
    pub app_access_key: String,
    /// How long an access token works, ms (MaaS360: 60 minutes).
    pub token_lifetime_ms: u64,
    /// `count` in envelopes: the total (true) or the items on the page (false).
    pub count_is_total: bool,
    /// When set, an access token works for this many data calls, then answers 401 "Token
    /// expired": a forced expiry in the middle of every longer run.
    pub token_calls: Option<usize>,
    /// The device filter `lastReportedAfterInEpochms` includes its own value.
    pub inclusive_device_filter: bool,
    /// When set, half of every later batch of admin changes and logins is written this many ms
    /// after it happened (late writes, §1.5): those records land behind newer ones.
    pub late_writes_ms: u64,
    /// The seeded records lie within this many ms before the start.
    pub history_ms: u64,
    /// Print one line per request to stderr (the `mock-vendor` binary).
    pub log_requests: bool,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            billing_id: "30012345".into(),
            app_id: "com.30012345.api".into(),
            app_version: "1.0".into(),
            platform_id: "3".into(),
            user_name: "svc_siem".into(),
            password: "s3cret-pass".into(),
            app_access_key: "Xk29fQ7pLm".into(),
            token_lifetime_ms: 3_600_000,
            count_is_total: false,
            token_calls: None,
            inclusive_device_filter: true,
            late_writes_ms: 0,
            history_ms: 2 * 3_600_000,
            log_requests: false,
        }
    }
}

/// The tenant's clock: the wall clock, or epoch ms a test sets.
#[derive(Clone, Debug, Default)]
pub struct Clock(Option<Arc<AtomicU64>>);

impl Clock {
    /// A clock at `ms` that moves only when set.
    pub fn manual(ms: u64) -> Clock {
        Clock(Some(Arc::new(AtomicU64::new(ms))))
    }

    /// Epoch ms now.
    pub fn now(&self) -> u64 {
        match &self.0 {
            Some(ms) => ms.load(Ordering::SeqCst),
            None => SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
        }
    }

    /// Moves a manual clock to `ms` (no effect on the wall clock).
    pub fn set(&self, ms: u64) {
        if let Some(c) = &self.0 {
            c.store(ms, Ordering::SeqCst);
        }
    }
}

/// Counters of what the tenant did with credentials.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthStats {
    /// Successful logins (1.0 and 2.0).
    pub logins: usize,
    /// Successful refreshes.
    pub refreshes: usize,
    /// Refused logins and refreshes.
    pub refused: usize,
    /// Data calls answered 401.
    pub unauthorized: usize,
}

/// The tenant: credentials, tokens and the five lists.
pub struct Tenant {
    cfg: MockConfig,
    clock: Clock,
    auth: Auth,
    lists: lists::Lists,
}

#[derive(Default)]
struct Auth {
    /// Access token → expiry (epoch ms) and data calls made with it.
    tokens: HashMap<String, (u64, usize)>,
    /// Refresh tokens that may still be used (each once).
    refresh: Vec<String>,
    issued: Vec<String>,
    /// Data calls left before every token (and maybe refresh token) expires, when set.
    expire_after: Option<(usize, bool)>,
    serial: u64,
    stats: AuthStats,
}

impl Tenant {
    /// A tenant whose first records of each list lie in the history before `clock`'s now.
    pub fn new(cfg: MockConfig, clock: Clock) -> Tenant {
        let lists = lists::Lists::new(clock.now(), cfg.history_ms);
        Tenant { cfg, clock, auth: Auth::default(), lists }
    }

    /// The configuration.
    pub fn config(&self) -> &MockConfig {
        &self.cfg
    }

    /// The tenant's clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Devices that report again now: each gets a new `lastReportedInEpochms` (a new record).
    pub fn report_again(&mut self, device_ids: &[String]) -> Vec<String> {
        self.lists.report_again(device_ids, self.clock.now())
    }

    /// `n` admin changes or logins stamped `late_ms` before now but written only now: late
    /// writes (§1.5), behind records a collector may have read already.
    pub fn add_late(&mut self, stream: &str, n: usize, late_ms: u64) -> Vec<String> {
        self.lists.add(stream, n, self.clock.now(), late_ms)
    }

    /// Every access token and refresh token issued so far.
    pub fn issued(&self) -> Vec<String> {
        self.auth.issued.clone()
    }

    /// What happened to credentials so far.
    pub fn auth_stats(&self) -> AuthStats {
        self.auth.stats.clone()
    }

    /// Expires every access token now; with `refresh_too`, refresh tokens as well.
    pub fn expire_tokens(&mut self, refresh_too: bool) {
        self.auth.tokens.clear();
        if refresh_too {
            self.auth.refresh.clear();
        }
    }

    /// Expires every access token (with `refresh_too`, every refresh token as well) after `n`
    /// more data calls: a forced expiry in the middle of a run.
    pub fn expire_tokens_after(&mut self, n: usize, refresh_too: bool) {
        self.auth.expire_after = Some((n, refresh_too));
    }

    /// The answer to `request`.
    pub fn handle(&mut self, request: &Request) -> Response {
        let json = request.header("accept").is_some_and(|a| a.contains("application/json"));
        let path = request.path.as_str();
        let billing = &self.cfg.billing_id;
        if request.method == "POST" {
            if path == format!("/auth-apis/auth/1.0/authenticate/{billing}") {
                return self.login(request, false, json);
            }
            if path == format!("/auth-apis/auth/2.0/authenticate/customer/{billing}") {
                return self.login(request, true, json);
            }
            if path == format!("/auth-apis/auth/2.0/refreshToken/customer/{billing}") {
                return self.refresh(request, json);
            }
        }
        let Some(stream) = lists::route(path, billing) else {
            return Response::json(404, r#"{"errorCode":404,"errorDesc":"Resource not found"}"#);
        };
        if request.method != "GET" {
            return Response::json(405, r#"{"errorDesc":"Method not allowed"}"#);
        }
        if let Err(why) = self.check_token(request) {
            self.auth.stats.unauthorized += 1;
            return Response::text(401, why);
        }
        self.lists.page(stream, request, json, (&self.cfg, self.clock.now()))
    }

    fn login(&mut self, request: &Request, v2: bool, json: bool) -> Response {
        let field = |name: &str| credential(request, name);
        let c = &self.cfg;
        let ok = field("billingID") == c.billing_id
            && field("appID") == c.app_id
            && field("appAccessKey") == c.app_access_key
            && field("userName") == c.user_name
            && field("password") == c.password
            && field("platformID") == c.platform_id
            && field("appVersion") == c.app_version;
        if !ok {
            return self.refused(1002, "Invalid credentials", json);
        }
        self.issue(v2, json, false)
    }

    fn refresh(&mut self, request: &Request, json: bool) -> Response {
        let token = credential(request, "refreshToken");
        let found = self.auth.refresh.iter().position(|t| *t == token);
        let known = found.map(|i| self.auth.refresh.remove(i)).is_some();
        if !known || credential(request, "userName") != self.cfg.user_name {
            return self.refused(1008, "Refresh token is invalid or was already used", json);
        }
        self.issue(true, json, true)
    }

    fn refused(&mut self, code: u32, desc: &str, json: bool) -> Response {
        self.auth.stats.refused += 1;
        answer(json, &[("errorCode", code.to_string()), ("errorDesc", desc.into())])
    }

    fn issue(&mut self, with_refresh: bool, json: bool, refreshed: bool) -> Response {
        let now = self.clock.now();
        let auth = &mut self.auth;
        auth.serial += 1;
        let token = format!("mtok-{:06}-{:08x}", auth.serial, fastrand(auth.serial));
        auth.tokens.insert(token.clone(), (now + self.cfg.token_lifetime_ms, 0));
        auth.issued.push(token.clone());
        let mut fields = vec![("authToken", token)];
        if with_refresh {
            let refresh = format!("mref-{:06}-{:08x}", auth.serial, fastrand(!auth.serial));
            auth.refresh.push(refresh.clone());
            auth.issued.push(refresh.clone());
            fields.push(("refreshToken", refresh));
        }
        fields.push(("errorCode", "0".into()));
        if refreshed {
            auth.stats.refreshes += 1
        } else {
            auth.stats.logins += 1
        }
        answer(json, &fields)
    }

    /// The token must come as `MaaS token="…"`, quoted, unexpired.
    fn check_token(&mut self, request: &Request) -> Result<(), &'static str> {
        let header = request.header("authorization").unwrap_or_default();
        let token = header
            .strip_prefix("MaaS token=\"")
            .and_then(|t| t.strip_suffix('"'))
            .ok_or("Token invalid: expected Authorization: MaaS token=\"<token>\"")?;
        let auth = &mut self.auth;
        match auth.expire_after {
            Some((0, refresh_too)) => {
                auth.tokens.clear();
                if refresh_too {
                    auth.refresh.clear();
                }
                auth.expire_after = None;
            }
            Some((n, refresh_too)) => auth.expire_after = Some((n - 1, refresh_too)),
            None => {}
        }
        let (now, limit) = (self.clock.now(), self.cfg.token_calls.unwrap_or(usize::MAX));
        match auth.tokens.get_mut(token) {
            Some((until, calls)) if *until > now && *calls < limit => {
                *calls += 1;
                Ok(())
            }
            Some(_) => Err("Token expired"),
            None => Err("Token invalid"),
        }
    }
}

/// A credential from a JSON (`authRequest.maaS360AdminAuth`) or XML login body.
fn credential(request: &Request, name: &str) -> String {
    if let Some(v) = request.json() {
        let found = &v["authRequest"]["maaS360AdminAuth"][name];
        return found.as_str().map_or_else(|| found.to_string(), str::to_owned);
    }
    let body = String::from_utf8_lossy(&request.body);
    let open = format!("<{name}>");
    body.split_once(&open)
        .and_then(|(_, rest)| rest.split_once(&format!("</{name}>")))
        .map_or(String::new(), |(v, _)| v.to_owned())
}

/// An `authResponse`, XML unless the client asked for JSON; always HTTP 200.
fn answer(json: bool, fields: &[(&str, String)]) -> Response {
    if json {
        let map: serde_json::Map<String, serde_json::Value> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.parse::<u64>().map_or_else(|_| v.clone().into(), Into::into)))
            .collect();
        return Response::json(200, serde_json::json!({ "authResponse": map }).to_string());
    }
    let inner: String = fields.iter().map(|(k, v)| format!("<{k}>{v}</{k}>")).collect();
    Response::bytes(200, "application/xml", format!("<authResponse>{inner}</authResponse>"))
}

/// A cheap deterministic scramble for token text.
fn fastrand(n: u64) -> u32 {
    (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32
}

impl Streams for Tenant {
    /// The first call per stream spreads the records over the configured history; later ones
    /// are stamped "now".
    fn add(&mut self, stream: &str, n: usize) -> Vec<String> {
        let (now, late) = (self.clock.now(), self.cfg.late_writes_ms);
        if late == 0 || !stream.starts_with("admin_") || self.lists.records(stream).is_empty() {
            return self.lists.add(stream, n, now, 0);
        }
        let mut keys = self.lists.add(stream, n - n / 2, now, 0);
        keys.extend(self.lists.add(stream, n / 2, now, late));
        keys
    }

    fn records(&self, stream: &str) -> Vec<String> {
        self.lists.records(stream)
    }

    fn keys(&self, stream: &str) -> Vec<String> {
        self.lists.records(stream).iter().map(|r| key_of(stream, r)).collect()
    }
}

/// A running mock tenant on the wall clock; stops when dropped.
pub type MockMaas360 = MockVendor<Tenant>;

impl MockVendor<Tenant> {
    /// Starts the mock on `127.0.0.1` with a port the OS picks.
    pub async fn start(cfg: MockConfig) -> anyhow::Result<MockMaas360> {
        Self::start_on(cfg, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Starts the mock on `addr` (port 0 picks a free port).
    pub async fn start_on(cfg: MockConfig, addr: SocketAddr) -> anyhow::Result<MockMaas360> {
        let log = cfg.log_requests;
        let tenant = Tenant::new(cfg, Clock::default());
        MockVendor::serve("maas360", addr, log, tenant, None, |v, req| v.state().handle(req)).await
    }
}
