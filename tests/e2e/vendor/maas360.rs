//! The MaaS360 row: the collector against the mock tenant reading all five lists (devices,
//! action history, admin changes, admin logins, compliance events), with the password and app
//! access key from `password.txt` and `app_access_key.txt`.

use async_trait::async_trait;
use siphon_tests::config::{SecretRef, SourceToml, string_array};
use siphon_tests::mock::VendorMock;
use siphon_tests::mock::maas360::{MockConfig, MockMaas360, STREAMS, key_of};
use siphon_tests::mock::server::{Fault, FaultRule};

use super::{Tenant, VendorCase};
use crate::common::guest;

/// The password the mock accepts; distinctive, so a secret scan finds any leak.
pub const PASSWORD: &str = "S3CRET-maas360-password-41c9e2";
/// The app access key the mock accepts.
pub const ACCESS_KEY: &str = "S3CRET-maas360-appkey-0b7f13";

/// The MaaS360 row.
pub struct Maas360;

#[async_trait]
impl VendorCase for Maas360 {
    fn name(&self) -> &'static str {
        "maas360"
    }

    async fn start(&self, per_stream: usize) -> Box<dyn Tenant> {
        let tenant = Maas360Tenant::start(Maas360Tenant::config()).await;
        tenant.add_records(per_stream);
        Box::new(tenant)
    }
}

/// A running mock MaaS360 tenant.
pub struct Maas360Tenant {
    /// The mock, for MaaS360-specific checks (tokens, refreshes).
    pub mock: MockMaas360,
}

impl Maas360Tenant {
    /// A mock config accepting [`PASSWORD`] and [`ACCESS_KEY`].
    pub fn config() -> MockConfig {
        MockConfig { password: PASSWORD.into(), app_access_key: ACCESS_KEY.into(), ..MockConfig::default() }
    }

    /// Starts the mock.
    pub async fn start(cfg: MockConfig) -> Maas360Tenant {
        Maas360Tenant { mock: MockMaas360::start(cfg).await.expect("mock MaaS360 starts") }
    }
}

impl Tenant for Maas360Tenant {
    fn mock(&self) -> &dyn VendorMock {
        &self.mock
    }

    fn streams(&self) -> Vec<String> {
        STREAMS.iter().map(|s| s.to_string()).collect()
    }

    fn page_size(&self) -> usize {
        25
    }

    fn source(&self, name: &str) -> SourceToml {
        let cfg = self.mock.state().config().clone();
        let base_url = self.mock.base_url();
        SourceToml::new(name, guest("maas360"))
            .host(base_url.trim_start_matches("http://"))
            .set("base_url", &base_url)
            .set("billing_id", &cfg.billing_id)
            .set("app_id", &cfg.app_id)
            .set("user_name", &cfg.user_name)
            .set_raw("streams", &string_array(&STREAMS))
            .set_raw("page_size", "25")
            .secret("password", SecretRef::File("password.txt".into()))
            .secret("app_access_key", SecretRef::File("app_access_key.txt".into()))
    }

    fn secrets(&self) -> Vec<(&'static str, String)> {
        vec![("password", PASSWORD.to_owned()), ("app_access_key", ACCESS_KEY.to_owned())]
    }

    fn bad_secrets(&self) -> Vec<(&'static str, String)> {
        vec![("password", "S3CRET-wrong-password-000000".to_owned()), ("app_access_key", ACCESS_KEY.to_owned())]
    }

    /// MaaS360 refuses a login with HTTP 200 and an `errorCode`.
    fn refusal(&self) -> Vec<&'static str> {
        vec!["errorCode 1002"]
    }

    /// The record's list comes from its `_maas360_record_type` tag.
    fn key_of(&self, line: &str) -> String {
        let tag = serde_json::from_str::<serde_json::Value>(line).map(|v| v["_maas360_record_type"].clone());
        let stream = match tag.as_ref().ok().and_then(|t| t.as_str()) {
            Some("device") => "devices",
            Some("admin_change") => "admin_changes",
            Some("admin_login") => "admin_logins",
            Some("compliance_event") => "compliance_events",
            _ => "action_history",
        };
        format!("{stream}/{}", key_of(stream, line))
    }

    fn expected_keys(&self) -> Vec<String> {
        STREAMS.iter().flat_map(|s| self.mock.keys(s).into_iter().map(move |k| format!("{s}/{k}"))).collect()
    }

    /// The vendor's bytes behind the record-type tag.
    fn expected_records(&self) -> Vec<String> {
        let tags = ["device", "action_history", "admin_change", "admin_login", "compliance_event"];
        let mut out = Vec::new();
        for (stream, tag) in STREAMS.into_iter().zip(tags) {
            let records = self.mock.records(stream);
            out.extend(records.iter().map(|r| format!(r#"{{"_maas360_record_type":"{tag}",{}"#, &r[1..])));
        }
        out
    }

    /// Five lists under two path prefixes: every data call is a GET, every login a POST.
    fn data_path(&self) -> String {
        "/".to_owned()
    }

    fn inject(&self, fault: Fault, times: usize) {
        self.mock.server().push_fault(FaultRule::new(fault).method("GET").times(times));
    }

    fn issued_secrets(&self) -> Vec<String> {
        self.mock.state().issued()
    }
}
