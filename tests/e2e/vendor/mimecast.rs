//! The Mimecast rows: the `mimecast` collector against the mock tenant over API 2.0 (two SIEM
//! batch types, whose files come from pre-signed URLs on the same mock, and audit events) and
//! over API 1.0 (signed calls: SIEM log files and audit events), one source each reading both
//! streams, secrets from `<name>.txt`.

use async_trait::async_trait;
use siphon_tests::config::{SecretRef, SourceToml, string_array};
use siphon_tests::mock::VendorMock;
use siphon_tests::mock::mimecast::{MockConfig, MockMimecast};

use super::{Tenant, VendorCase};
use crate::common::guest;

/// The API 2.0 row.
pub struct MimecastV2;

/// The API 1.0 row.
pub struct MimecastV1;

#[async_trait]
impl VendorCase for MimecastV2 {
    fn name(&self) -> &'static str {
        "mimecast"
    }

    async fn start(&self, per_stream: usize) -> Box<dyn Tenant> {
        Box::new(MimecastTenant::start("2.0", per_stream).await)
    }
}

#[async_trait]
impl VendorCase for MimecastV1 {
    fn name(&self) -> &'static str {
        "mimecast-v1"
    }

    async fn start(&self, per_stream: usize) -> Box<dyn Tenant> {
        Box::new(MimecastTenant::start("1.0", per_stream).await)
    }
}

/// A running mock Mimecast tenant and the API its source uses.
pub struct MimecastTenant {
    /// The mock, for Mimecast-specific checks.
    pub mock: MockMimecast,
    api: &'static str,
}

impl MimecastTenant {
    /// Starts the mock with `per_stream` records in every stream the `api` source reads.
    pub async fn start(api: &'static str, per_stream: usize) -> MimecastTenant {
        let mock = MockMimecast::start(MockConfig::default()).await.expect("mock Mimecast starts");
        let tenant = MimecastTenant { mock, api };
        tenant.add_records(per_stream);
        tenant
    }
}

impl Tenant for MimecastTenant {
    fn mock(&self) -> &dyn VendorMock {
        &self.mock
    }

    fn streams(&self) -> Vec<String> {
        let streams: &[&str] =
            if self.api == "2.0" { &["receipt", "url protect", "audit"] } else { &["siem", "audit"] };
        streams.iter().map(|s| s.to_string()).collect()
    }

    /// Records per SIEM page (files × records per file; audit pages are larger).
    fn page_size(&self) -> usize {
        let c = self.mock.state().config().clone();
        c.files_per_page * c.records_per_file
    }

    fn source(&self, name: &str) -> SourceToml {
        let url = self.mock.base_url();
        let table = SourceToml::new(name, guest("mimecast"))
            .host(url.trim_start_matches("http://"))
            .set("api", self.api)
            .set("base_url", &url)
            .set_raw("streams", &string_array(&["siem", "audit"]));
        let (table, secrets) = match self.api {
            "2.0" => (
                table.set_raw("siem_types", &string_array(&["receipt", "url protect"])),
                &["client_id", "client_secret"][..],
            ),
            _ => (
                table.set("app_id", &self.mock.state().config().app_id.clone()),
                &["app_key", "access_key", "secret_key"][..],
            ),
        };
        secrets.iter().fold(table, |t, s| t.secret(s, SecretRef::File(format!("{s}.txt"))))
    }

    fn secrets(&self) -> Vec<(&'static str, String)> {
        let c = self.mock.state().config().clone();
        match self.api {
            "2.0" => vec![("client_id", c.client_id.clone()), ("client_secret", c.client_secret.clone())],
            _ => vec![
                ("app_key", c.app_key.clone()),
                ("access_key", c.access_key.clone()),
                ("secret_key", c.secret_key.clone()),
            ],
        }
    }

    fn bad_secrets(&self) -> Vec<(&'static str, String)> {
        let mut secrets = self.secrets();
        // A revoked client secret; an API 1.0 secret key that is base64 but not the account's.
        let last = secrets.len() - 1;
        secrets[last].1 = match self.api {
            "2.0" => "S3CRET-revoked-client-secret-0000".into(),
            _ => "UzNDUkVULXdyb25nLWhtYWMta2V5LTAwMDA=".into(),
        };
        secrets
    }

    /// SIEM records have no ids: the key is the record.
    fn key_of(&self, line: &str) -> String {
        line.to_owned()
    }

    /// Every data call: SIEM pages, downloads and audit pages (and the 2.0 token endpoint).
    fn data_path(&self) -> String {
        if self.api == "2.0" { "/".into() } else { "/api/audit/".into() }
    }

    fn issued_secrets(&self) -> Vec<String> {
        self.mock.oauth().tokens()
    }
}
