//! The Python IBM Security Verify row: `guests/python/ibm-verify` (componentize-py,
//! `ibm_verify_py.wasm`) against the same mock tenant as the Rust collector
//! ([`siphon_tests::mock::ibm_verify`]): every event type of a tenant whose events are
//! authentication, sso, management and token, pages of 20, the API client's id and secret from
//! `client_id.txt` and `client_secret.txt`. The same checks judge it; only the component and
//! its limits differ.

use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use siphon_tests::config::{SecretRef, SourceToml};
use siphon_tests::mock::VendorMock;
use siphon_tests::mock::ibm_verify::{EVENTS_PATH, MockConfig, MockVerify};

use super::{Tenant, VendorCase};
use crate::common::{Install, guest, siphon_bin};

/// The API client the mock accepts; distinctive, so a secret scan finds any leak.
pub const CLIENT_ID: &str = "S3CRET-verify-py-client-id-7d21";
/// Its secret.
pub const CLIENT_SECRET: &str = "S3CRET-verify-py-client-secret-c0f3";
/// Events per request.
pub const PAGE_SIZE: usize = 20;
/// The source's memory limit, set here rather than relying on the host default (256 MiB): the
/// interpreter and its snapshot take about 10 MiB of linear memory, a page of 20 events a few
/// hundred KiB more; a page of 1,000 events fits in 32 MiB (`make guests` README figures).
pub const MEMORY: &str = "64MiB";

/// The Python Verify source table `name` for a tenant at `base_url` with pages of `page_size`
/// and a 48 h first-run window: the Rust row's settings, the Python component.
pub fn source(name: &str, base_url: &str, page_size: usize) -> SourceToml {
    SourceToml::new(name, guest("ibm_verify_py"))
        .host(base_url.trim_start_matches("http://"))
        .set("base_url", base_url)
        .set_raw("page_size", &page_size.to_string())
        .set_raw("lookback_hours", "48")
        .secret("client_id", SecretRef::File("client_id.txt".into()))
        .secret("client_secret", SecretRef::File("client_secret.txt".into()))
        .limit("memory", &format!("\"{MEMORY}\""))
}

/// Compiles the Python component into the tests' shared compile cache once per test process:
/// the tests that reach it together then load it from there instead of each spending ~40 s of
/// CPU (debug host) compiling it. Blocks until it is there.
pub fn warm_compile_cache_blocking() {
    static WARM: OnceLock<()> = OnceLock::new();
    WARM.get_or_init(|| {
        let install = Install::new("unused");
        let table = source("warm", "http://127.0.0.1:9", PAGE_SIZE)
            .secret("client_id", SecretRef::Env("SIPHON_E2E_ID".into()))
            .secret("client_secret", SecretRef::Env("SIPHON_E2E_SECRET".into()));
        let out = Command::new(siphon_bin())
            .args(["check", "--config"])
            .arg(install.config(&table.render()))
            .envs([("SIPHON_E2E_ID", "id"), ("SIPHON_E2E_SECRET", "secret")])
            .output()
            .expect("siphon check");
        assert!(out.status.success(), "siphon check: {}", String::from_utf8_lossy(&out.stderr));
    });
}

/// [`warm_compile_cache_blocking`] off the async runtime's threads.
pub async fn warm_compile_cache() {
    tokio::task::spawn_blocking(warm_compile_cache_blocking).await.expect("compile thread");
}

/// The Python Verify row.
pub struct IbmVerifyPy;

#[async_trait]
impl VendorCase for IbmVerifyPy {
    fn name(&self) -> &'static str {
        "ibm-verify-py"
    }

    async fn start(&self, per_stream: usize) -> Box<dyn Tenant> {
        warm_compile_cache().await;
        let tenant = VerifyPyTenant::start(MockConfig::default()).await;
        tenant.add_records(per_stream);
        Box::new(tenant)
    }
}

/// A running mock tenant for the Python collector.
pub struct VerifyPyTenant {
    /// The mock.
    pub mock: MockVerify,
}

impl VerifyPyTenant {
    /// Starts the mock with `cfg`, accepting [`CLIENT_ID`] and [`CLIENT_SECRET`].
    pub async fn start(cfg: MockConfig) -> VerifyPyTenant {
        let cfg = MockConfig { client_id: CLIENT_ID.into(), client_secret: CLIENT_SECRET.into(), ..cfg };
        VerifyPyTenant { mock: MockVerify::start(cfg).await.expect("mock Verify starts") }
    }
}

impl Tenant for VerifyPyTenant {
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
        vec![("client_id", CLIENT_ID.into()), ("client_secret", "S3CRET-revoked-verify-py-secret-0000".into())]
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

    fn kill_window(&self) -> Duration {
        // Start-up (compile-cache hit, instantiation, `validate`), measured with `siphon check`:
        // a debug host hashes and unpacks the 19 MB component's cache entry unoptimised, which
        // takes from under a second to several on a busy machine, and then a run of a few pages.
        // The component is in the compile cache already (`start` put it there).
        let install = Install::for_tenant(self);
        let config = install.config(&self.source("probe").render());
        let started = Instant::now();
        let out = Command::new(siphon_bin()).args(["check", "--config"]).arg(&config).output().expect("siphon check");
        assert!(out.status.success(), "siphon check: {}", String::from_utf8_lossy(&out.stderr));
        started.elapsed() + Duration::from_millis(1500)
    }
}
