//! A mock Mimecast tenant, both API generations, on the generic [`MockServer`], as hostile as
//! `shared/vendor-apis.md` §5 says real tenants are (§5.4):
//!
//! - API 2.0: `POST /oauth/token` (form, `expires_in` 1799, a bad secret gets 401), Bearer data
//!   calls (401 with `fail[]` for an expired token); `GET /siem/v1/batch/events/cg` with one `type`
//!   per call, dates required (and within 7 days) without `nextPage`, a server-side cap on
//!   `pageSize`, `@nextPage` / `isCaughtUp`, and `value[].url`s into the [`BlobStore`]: pre-signed,
//!   expiring (on demand: already expired), refusing an `Authorization` header, each a gzip file of
//!   two members of NDJSON whose last line has no `\n`, starting with the previous file's last line
//!   (a repeated event, maybe delivered by an earlier page or run);
//! - API 1.0: every call's `MC` signature recomputed (HMAC-SHA1 over `date:reqId:path:appKey` with
//!   the base64-decoded secret, `x-mc-date` ending in `UTC` and within 15 minutes, a UUID
//!   `x-mc-req-id` never seen before (a resent request is a replay), the app id), failures as
//!   HTTP 401 + `fail[]`; `POST
//!   /api/audit/get-siem-logs` answers a zip of `{"data":[…]}` files with the next token in
//!   `mc-siem-token`, `isLastToken: true` on the last, a JSON envelope when drained, HTTP **200** +
//!   `fail[]` `err_audit_siem_invalid_token` for a bad token; `418 err_xdk_binding_expired` and
//!   429 with `X-RateLimit-Reset` in milliseconds on demand (the `X-RateLimit-*` quota headers are
//!   on every signed answer); `discover-authentication`;
//! - both: `POST /api/audit/get-audit-events`, newest first, inclusive second-precision bounds in
//!   `+0000` form (a colon is refused with HTTP 200 + `fail[]`), page tokens with follow-up pages
//!   carrying only `meta`, and Elastic's placeholder `next` on an empty last page.
//!
//! SIEM records have no ids, and none of their fields is unique (`processingId` and `_offset`
//! repeat); a record's key is its text. [`Tenant`] is the tenant without a server, for native
//! collector tests through `siphon_sdk::testing::FakeIo` ([`super::fake`]).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use siphon_tests::mock::VendorMock;
//! use siphon_tests::mock::mimecast::{MockConfig, MockMimecast};
//! let mock = MockMimecast::start(MockConfig::default()).await?;
//! mock.add_records("receipt", 30);
//! // point the mimecast collector at mock.base_url() with client_id/client_secret of the config
//! # Ok(()) }
//! ```

mod data;
#[cfg(test)]
mod tests;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use siphon_sdk::data::crypto::{base64_decode, base64_encode, hmac_sha1};
use siphon_sdk::data::time::parse_rfc1123;

pub use data::{SIEM_TYPES, STREAMS, gzip_two_members, zip};

use super::blobs::BlobStore;
use super::http::{Request, Response};
use super::oauth::{ClientAuth, OAuth, OAuthConfig};
use super::vendor::{MockVendor, Streams};

/// Path of the 2.0 SIEM batch endpoint.
pub const BATCH_PATH: &str = "/siem/v1/batch/events/cg";
/// Path of the 1.0 SIEM log endpoint.
pub const SIEM_PATH: &str = "/api/audit/get-siem-logs";
/// Path of the audit endpoint (both APIs).
pub const AUDIT_PATH: &str = "/api/audit/get-audit-events";

/// How the tenant behaves. Build it with `..MockConfig::default()`.
#[derive(Clone, Debug)]
pub struct MockConfig {
    /// API 2.0 client id.
    pub client_id: String,
    /// API 2.0 client secret.
    pub client_secret: String,
    /// API 1.0 application id.
    pub app_id: String,
    /// API 1.0 application key.
    pub app_key: String,
    /// API 1.0 access key.
    pub access_key: String,
    /// API 1.0 secret key, base64.
    pub secret_key: String,
    /// Records in each SIEM file (2.0 batch files and 1.0 zip entries).
    pub records_per_file: usize,
    /// Most files per batch page or 1.0 response, whatever `pageSize` asks.
    pub files_per_page: usize,
    /// Most audit events per page, whatever `pageSize` asks.
    pub audit_page_size: usize,
    /// How long download URLs work.
    pub url_ttl: Duration,
    /// Print one line per request to stderr (the `mock-vendor` binary).
    pub log_requests: bool,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            client_id: "mc-client-4f1a".into(),
            client_secret: "S3CRET-mimecast-client-9b2e".into(),
            app_id: "0c6e1a52-8f1d-4b6e-9f0a-5d1e7c2b3a41".into(),
            app_key: "S3CRET-mimecast-appkey-77c1".into(),
            access_key: "mYtOL3XZCOwG96BOiFTZRmgeYd7bRr0uZLwJdD1Y".into(),
            // base64 of "S3CRET-mimecast-hmac-key-d41f"
            secret_key: "UzNDUkVULW1pbWVjYXN0LWhtYWMta2V5LWQ0MWY=".into(),
            records_per_file: 7,
            files_per_page: 3,
            audit_page_size: 25,
            url_ttl: Duration::from_secs(900),
            log_requests: false,
        }
    }
}

/// Switches a test flips to make the tenant misbehave.
#[derive(Debug, Default)]
struct Quirks {
    /// Batch pages whose URLs are handed out already expired.
    expired_pages: usize,
    /// API 1.0 calls answered 418 `err_xdk_binding_expired`.
    binding_expired: bool,
    /// API 1.0 calls answered 429 with this `X-RateLimit-Reset` (ms).
    rate_limited: Vec<u64>,
}

/// The tenant: credentials, records, download blobs, quirks. Served by [`MockMimecast`]; native
/// tests call [`Tenant::handle`] with its token endpoint ([`Tenant::oauth`]).
pub struct Tenant {
    cfg: MockConfig,
    blobs: BlobStore,
    data: data::Data,
    quirks: Quirks,
    /// Every `x-mc-req-id` of a correctly signed call so far.
    req_ids: std::collections::HashSet<String>,
}

/// Epoch ms now.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Tenant {
    /// A tenant without records.
    pub fn new(cfg: MockConfig) -> Tenant {
        Tenant {
            blobs: BlobStore::new(),
            data: data::Data::default(),
            quirks: Quirks::default(),
            req_ids: Default::default(),
            cfg,
        }
    }

    /// The token endpoint of API 2.0 for `cfg`: form-encoded client credentials only, `expires_in`
    /// 1799 (a wrong secret gets 401).
    pub fn oauth(cfg: &MockConfig) -> OAuth {
        let mut oauth = OAuthConfig::new(&cfg.client_id, &cfg.client_secret);
        oauth.expires_in = Some(1799);
        oauth.accepted = vec![ClientAuth::Form];
        OAuth::new("/oauth/token", oauth)
    }

    /// The configuration.
    pub fn config(&self) -> &MockConfig {
        &self.cfg
    }

    /// The blob store the batch URLs point into.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// The next `pages` batch pages hand out URLs that have already expired.
    pub fn expire_urls(&mut self, pages: usize) {
        self.quirks.expired_pages = pages;
    }

    /// API 1.0 calls get 418 `err_xdk_binding_expired` while `on`.
    pub fn expire_binding(&mut self, on: bool) {
        self.quirks.binding_expired = on;
    }

    /// The next API 1.0 calls get 429, one per entry, with `X-RateLimit-Reset` of that many ms.
    pub fn rate_limit(&mut self, resets_ms: &[u64]) {
        self.quirks.rate_limited.extend(resets_ms);
    }

    /// The answer to `request`, with `oauth` as the 2.0 token endpoint.
    pub fn handle(&mut self, oauth: &OAuth, request: &Request) -> Response {
        if let Some(answer) = self.blobs.route(request).or_else(|| oauth.route(request)) {
            return answer;
        }
        let path = request.path.as_str();
        if path == "/api/login/discover-authentication" && request.method == "POST" {
            let region = serde_json::json!({"api": request.base_url()});
            return envelope(200, serde_json::json!([{"region": region}]), None);
        }
        let expected = match path {
            BATCH_PATH => "GET",
            SIEM_PATH | AUDIT_PATH => "POST",
            _ => return failure(404, "err_not_found", &format!("no such API: {path}")),
        };
        if request.method != expected {
            return failure(405, "err_method_not_allowed", &format!("use {expected}"));
        }
        let signed = request.header("authorization").is_some_and(|a| a.starts_with("MC "));
        let auth = match (path, signed) {
            (BATCH_PATH, _) | (AUDIT_PATH, false) => oauth.authorize(request).map(drop).map_err(|denied| {
                failure(401, "unauthorized", &format!("{denied:?}: a valid Bearer access token is required"))
            }),
            _ => self.signature(request),
        };
        if let Err(refused) = auth {
            return refused;
        }
        let answer = match path {
            BATCH_PATH => {
                let expired = self.quirks.expired_pages > 0;
                self.quirks.expired_pages = self.quirks.expired_pages.saturating_sub(1);
                self.data.batch_page(request, &self.cfg, &self.blobs, expired)
            }
            SIEM_PATH => self.data.siem_logs(request, &self.cfg),
            _ => self.data.audit_page(request, &self.cfg),
        };
        // Every API 1.0 answer carries the user's quota (§5.1.6), its reset in milliseconds.
        if !signed {
            return answer;
        }
        answer.header("x-ratelimit-limit", 50).header("x-ratelimit-remaining", 49).header("x-ratelimit-reset", 45_000)
    }

    /// Checks an API 1.0 signature, then the binding and rate-limit quirks.
    fn signature(&mut self, request: &Request) -> Result<(), Response> {
        let refuse = |why: &str| Err(failure(401, "err_xdk_client_unauthorized", why));
        let header = |name: &str| request.header(name).unwrap_or_default();
        let (date, req_id) = (header("x-mc-date"), header("x-mc-req-id"));
        if header("x-mc-app-id") != self.cfg.app_id {
            return refuse("unknown application id");
        }
        let Ok(at) = parse_rfc1123(date) else { return refuse("x-mc-date is not a date") };
        if !date.ends_with(" UTC") || at.abs_diff(now_ms()) > 15 * 60_000 {
            return refuse("x-mc-date must be the current time, ending in UTC");
        }
        if !is_uuid(req_id) {
            return refuse("x-mc-req-id must be a UUID");
        }
        let secret = base64_decode(&self.cfg.secret_key).unwrap_or_default();
        let to_sign = format!("{date}:{req_id}:{}:{}", request.path, self.cfg.app_key);
        let expected = format!("MC {}:{}", self.cfg.access_key, base64_encode(&hmac_sha1(&secret, to_sign.as_bytes())));
        if header("authorization") != expected {
            return refuse("the request signature does not match");
        }
        // reqId is "a fresh random UUID" (§5.1.2): the same one twice is a replay.
        if !self.req_ids.insert(req_id.to_owned()) {
            return refuse("x-mc-req-id was used before: a replayed request");
        }
        if self.quirks.binding_expired {
            return Err(failure(418, "err_xdk_binding_expired", "The binding for this access key has expired"));
        }
        if !self.quirks.rate_limited.is_empty() {
            let reset = self.quirks.rate_limited.remove(0);
            return Err(failure(429, "err_rate_limit_exceeded", "Rate limit exceeded")
                .header("x-ratelimit-limit", 50)
                .header("x-ratelimit-remaining", 0)
                .header("x-ratelimit-reset", reset));
        }
        Ok(())
    }
}

impl Streams for Tenant {
    fn add(&mut self, stream: &str, n: usize) -> Vec<String> {
        self.data.add(stream, n, now_ms(), &self.cfg, &self.blobs)
    }

    fn records(&self, stream: &str) -> Vec<String> {
        self.data.records(stream)
    }

    /// SIEM records have no ids: a record's key is its text (audit events too, for simplicity).
    fn keys(&self, stream: &str) -> Vec<String> {
        self.data.records(stream)
    }
}

/// 8-4-4-4-12 hex digits.
fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A Mimecast envelope `{"meta":{…},"data":[…],"fail":[]}`.
pub(crate) fn envelope(status: u16, data: serde_json::Value, pagination: Option<serde_json::Value>) -> Response {
    let mut meta = serde_json::json!({"status": status});
    if let Some(p) = pagination {
        meta["pagination"] = p;
    }
    Response::json(status, serde_json::json!({"meta": meta, "data": data, "fail": []}).to_string())
}

/// A failure envelope with `status` (200 is a real case) and one error.
pub(crate) fn failure(status: u16, code: &str, message: &str) -> Response {
    let error = serde_json::json!({"code": code, "message": message, "retryable": false});
    let body = serde_json::json!({"meta": {"status": status}, "data": [], "fail": [{"errors": [error]}]});
    Response::json(status, body.to_string())
}

/// A running mock tenant; stops when dropped.
pub type MockMimecast = MockVendor<Tenant>;

impl MockVendor<Tenant> {
    /// Starts the mock on `127.0.0.1` with a port the OS picks.
    pub async fn start(cfg: MockConfig) -> anyhow::Result<MockMimecast> {
        Self::start_on(cfg, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Starts the mock on `addr` (port 0 picks a free port).
    pub async fn start_on(cfg: MockConfig, addr: SocketAddr) -> anyhow::Result<MockMimecast> {
        let (log, oauth) = (cfg.log_requests, Tenant::oauth(&cfg));
        MockVendor::serve("mimecast", addr, log, Tenant::new(cfg), Some(oauth), |v, req| {
            v.state().handle(v.oauth(), req)
        })
        .await
    }
}
