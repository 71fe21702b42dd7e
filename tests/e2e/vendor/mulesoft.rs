//! The MuleSoft row: the audit log collector against the Anypoint mock (one stream, the
//! organization's audit log; entries without ids, matched by content), with the Connected App's
//! credentials from `client_id.txt` and `client_secret.txt`. MuleSoft-specific e2e tests
//! (`crate::mulesoft`) start their tenant here too, so the source table exists once.

use async_trait::async_trait;
use siphon_tests::config::{SecretRef, SourceToml};
use siphon_tests::mock::VendorMock;
use siphon_tests::mock::mulesoft::{AUDIT_PREFIX, MockConfig, MockMulesoft, STREAM};

use super::{Tenant, VendorCase};
use crate::common::guest;

/// The client secret the mock accepts; distinctive, so a secret scan finds any leak.
pub const SECRET: &str = "S3CRET-mulesoft-client-5e2b91";
/// The Connected App's id (configured as a secret too).
pub const CLIENT_ID: &str = "S3CRET-mulesoft-app-7a1c04";

/// The MuleSoft source table `name` for a control plane at `base_url` (`http://host:port`),
/// asking for `page_size` entries a page and staying `settle_seconds` behind now.
pub fn source(name: &str, base_url: &str, org: &str, page_size: usize, settle_seconds: u64) -> SourceToml {
    SourceToml::new(name, guest("mulesoft_audit"))
        .host(base_url.trim_start_matches("http://"))
        .set("base_url", base_url)
        .set("organization_id", org)
        .set_raw("page_size", &page_size.to_string())
        .set_raw("settle_seconds", &settle_seconds.to_string())
        .set_raw("lookback_hours", "1")
        .secret("client_id", SecretRef::File("client_id.txt".into()))
        .secret("client_secret", SecretRef::File("client_secret.txt".into()))
}

/// The MuleSoft row.
pub struct Mulesoft;

#[async_trait]
impl VendorCase for Mulesoft {
    fn name(&self) -> &'static str {
        "mulesoft"
    }

    async fn start(&self, per_stream: usize) -> Box<dyn Tenant> {
        let tenant = MulesoftTenant::start(MulesoftTenant::config(), 20, 0).await;
        tenant.add_records(per_stream);
        Box::new(tenant)
    }
}

/// A running mock control plane and how its source reads it.
pub struct MulesoftTenant {
    /// The mock, for MuleSoft-specific checks (quota, late entries, tokens).
    pub mock: MockMulesoft,
    /// The organization.
    pub org: String,
    page_size: usize,
    settle_seconds: u64,
    client_id: String,
}

impl MulesoftTenant {
    /// A mock config accepting [`SECRET`]. Entries are visible when added, so the suite's source
    /// stays 0 s behind now; the MuleSoft tests turn on late entries with a settle time.
    pub fn config() -> MockConfig {
        MockConfig { client_id: CLIENT_ID.to_owned(), client_secret: SECRET.to_owned(), ..MockConfig::default() }
    }

    /// Starts the mock; the source asks for `page_size` entries a page, `settle_seconds` behind.
    pub async fn start(cfg: MockConfig, page_size: usize, settle_seconds: u64) -> MulesoftTenant {
        let (org, client_id) = (cfg.org_id.clone(), cfg.client_id.clone());
        let mock = MockMulesoft::start(cfg).await.expect("mock MuleSoft starts");
        MulesoftTenant { mock, org, page_size, settle_seconds, client_id }
    }
}

impl Tenant for MulesoftTenant {
    fn mock(&self) -> &dyn VendorMock {
        &self.mock
    }

    fn streams(&self) -> Vec<String> {
        vec![STREAM.to_owned()]
    }

    fn page_size(&self) -> usize {
        self.page_size
    }

    fn source(&self, name: &str) -> SourceToml {
        source(name, &self.mock.base_url(), &self.org, self.page_size, self.settle_seconds)
    }

    fn secrets(&self) -> Vec<(&'static str, String)> {
        vec![("client_id", self.client_id.clone()), ("client_secret", SECRET.to_owned())]
    }

    fn bad_secrets(&self) -> Vec<(&'static str, String)> {
        vec![("client_id", self.client_id.clone()), ("client_secret", "S3CRET-revoked-client-000000".to_owned())]
    }

    /// No id: an entry is its content.
    fn key_of(&self, line: &str) -> String {
        line.to_owned()
    }

    fn data_path(&self) -> String {
        AUDIT_PREFIX.to_owned()
    }

    fn issued_secrets(&self) -> Vec<String> {
        self.mock.oauth().tokens()
    }
}
