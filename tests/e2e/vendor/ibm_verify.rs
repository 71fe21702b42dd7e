//! The IBM Security Verify row: the events collector against the mock tenant
//! ([`siphon_tests::mock::ibm_verify`]), reading every event type of a tenant whose events are
//! authentication, sso, management and token (the last outside the API's default filter, so a
//! collector that forgets `all_events=yes` misses it), in pages of 20, with the API client's id
//! and secret from `client_id.txt` and `client_secret.txt`. Verify-only e2e tests start their
//! tenant here too.

use async_trait::async_trait;
use siphon_tests::config::{SecretRef, SourceToml};
use siphon_tests::mock::VendorMock;
use siphon_tests::mock::ibm_verify::{EVENTS_PATH, MockConfig, MockVerify};

use super::{Tenant, VendorCase};
use crate::common::guest;

/// The API client the mock accepts; distinctive, so a secret scan finds any leak.
pub const CLIENT_ID: &str = "S3CRET-verify-client-id-41c7";
/// Its secret.
pub const CLIENT_SECRET: &str = "S3CRET-verify-client-secret-9e0b";
/// Events per request.
pub const PAGE_SIZE: usize = 20;

/// The Verify source table `name` for a tenant at `base_url` (`http://host:port`) with pages of
/// `page_size` and a 48 h first-run window.
pub fn source(name: &str, base_url: &str, page_size: usize) -> SourceToml {
    SourceToml::new(name, guest("ibm_verify"))
        .host(base_url.trim_start_matches("http://"))
        .set("base_url", base_url)
        .set_raw("page_size", &page_size.to_string())
        .set_raw("lookback_hours", "48")
        .secret("client_id", SecretRef::File("client_id.txt".into()))
        .secret("client_secret", SecretRef::File("client_secret.txt".into()))
}

/// The Verify row.
pub struct IbmVerify;

#[async_trait]
impl VendorCase for IbmVerify {
    fn name(&self) -> &'static str {
        "ibm-verify"
    }

    async fn start(&self, per_stream: usize) -> Box<dyn Tenant> {
        let tenant = VerifyTenant::start(MockConfig::default()).await;
        tenant.add_records(per_stream);
        Box::new(tenant)
    }
}

/// A running mock tenant.
pub struct VerifyTenant {
    /// The mock, for Verify-specific checks (tokens, pending events, entitlement).
    pub mock: MockVerify,
}

impl VerifyTenant {
    /// Starts the mock with `cfg`, accepting [`CLIENT_ID`] and [`CLIENT_SECRET`].
    pub async fn start(cfg: MockConfig) -> VerifyTenant {
        let cfg = MockConfig { client_id: CLIENT_ID.into(), client_secret: CLIENT_SECRET.into(), ..cfg };
        VerifyTenant { mock: MockVerify::start(cfg).await.expect("mock Verify starts") }
    }
}

impl Tenant for VerifyTenant {
    fn mock(&self) -> &dyn VendorMock {
        &self.mock
    }

    fn streams(&self) -> Vec<String> {
        ["authentication", "sso", "management", "token"].map(String::from).to_vec()
    }

    fn page_size(&self) -> usize {
        PAGE_SIZE
    }

    fn source(&self, name: &str) -> SourceToml {
        source(name, &self.mock.base_url(), PAGE_SIZE)
    }

    fn secrets(&self) -> Vec<(&'static str, String)> {
        vec![("client_id", CLIENT_ID.into()), ("client_secret", CLIENT_SECRET.into())]
    }

    fn bad_secrets(&self) -> Vec<(&'static str, String)> {
        vec![("client_id", CLIENT_ID.into()), ("client_secret", "S3CRET-revoked-verify-secret-0000".into())]
    }

    fn key_of(&self, line: &str) -> String {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("bad line {line}: {e}"));
        v["id"].as_str().unwrap_or_else(|| panic!("no id in {line}")).to_owned()
    }

    fn data_path(&self) -> String {
        EVENTS_PATH.to_owned()
    }

    fn issued_secrets(&self) -> Vec<String> {
        self.mock.oauth().tokens()
    }
}
