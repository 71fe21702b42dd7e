//! The Netskope row: the alerts collector against the dataexport iterator mock, reading `dlp`
//! and `malware`, with the API token from `api_token.txt`. Netskope-specific e2e tests
//! (`crate::netskope`) and the backend tests (GCS, conflict, crash pairings, daemon) start their
//! tenant here too, so the source table exists once.

use async_trait::async_trait;
use siphon_tests::config::{SecretRef, SourceToml, string_array};
use siphon_tests::mock::VendorMock;
use siphon_tests::mock::netskope::{ALERTS_PREFIX, MockConfig, MockNetskope};

use super::{Tenant, VendorCase};
use crate::common::{guest, id_of};

/// The token the mock accepts; distinctive, so a secret scan finds any leak.
pub const TOKEN: &str = "S3CRET-netskope-token-7d1e0c";

/// The Netskope source table `name` for a tenant at `base_url` (`http://host:port`), reading
/// `types` in pages of `full_page`, with the API token from `api_token.txt`. A tenant that is
/// not running (`http://127.0.0.1:9`) suits `siphon check` and `state` tests.
pub fn source<S: AsRef<str>>(name: &str, base_url: &str, types: &[S], full_page: usize) -> SourceToml {
    SourceToml::new(name, guest("netskope_alerts"))
        .host(base_url.trim_start_matches("http://"))
        .set("base_url", base_url)
        .set_raw("alert_types", &string_array(types))
        .set("index", "e2e")
        .set_raw("full_page", &full_page.to_string())
        .secret("api_token", SecretRef::File("api_token.txt".into()))
}

/// The Netskope row.
pub struct Netskope;

#[async_trait]
impl VendorCase for Netskope {
    fn name(&self) -> &'static str {
        "netskope"
    }

    async fn start(&self, per_stream: usize) -> Box<dyn Tenant> {
        let tenant = NetskopeTenant::start(NetskopeTenant::config(25), &["dlp", "malware"]).await;
        tenant.add_records(per_stream);
        Box::new(tenant)
    }
}

/// A running mock Netskope tenant and the alert types its source reads.
pub struct NetskopeTenant {
    /// The mock, for Netskope-specific checks (bookmarks, `wait_time`, its own faults).
    pub mock: MockNetskope,
    /// Alert types the source reads.
    pub types: Vec<String>,
    page_size: usize,
    token: String,
}

impl NetskopeTenant {
    /// A mock config accepting [`TOKEN`] with pages of `page_size`.
    pub fn config(page_size: usize) -> MockConfig {
        MockConfig { token: TOKEN.to_owned(), page_size, ..MockConfig::default() }
    }

    /// Starts the mock; the source reads `types`.
    pub async fn start(cfg: MockConfig, types: &[&str]) -> NetskopeTenant {
        let (page_size, token) = (cfg.page_size, cfg.token.clone());
        let mock = MockNetskope::start(cfg).await.expect("mock Netskope starts");
        NetskopeTenant { mock, types: types.iter().map(|t| t.to_string()).collect(), page_size, token }
    }
}

impl Tenant for NetskopeTenant {
    fn mock(&self) -> &dyn VendorMock {
        &self.mock
    }

    fn streams(&self) -> Vec<String> {
        self.types.clone()
    }

    fn page_size(&self) -> usize {
        self.page_size
    }

    fn source(&self, name: &str) -> SourceToml {
        source(name, &self.mock.base_url(), &self.types, self.page_size)
    }

    fn secrets(&self) -> Vec<(&'static str, String)> {
        vec![("api_token", self.token.clone())]
    }

    fn bad_secrets(&self) -> Vec<(&'static str, String)> {
        vec![("api_token", "S3CRET-revoked-token-000000".to_owned())]
    }

    fn key_of(&self, line: &str) -> String {
        id_of(line)
    }

    fn data_path(&self) -> String {
        ALERTS_PREFIX.to_owned()
    }
}
