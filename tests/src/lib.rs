//! Test support for siphon: in-process mock vendor servers that follow
//! `shared/vendor-apis.md` (`mock`: one generic server, shared OAuth and download pieces, one
//! module per vendor), used by the end-to-end tests and by the `mock-vendor` binary for trying
//! collectors by hand; a real GCS emulator (`gcs_emulator`) and a fault proxy in front of it
//! (`gcs_proxy`: injected errors, delays and connection resets, and a log of what each upload
//! declared).

pub mod config;
pub mod gcs_emulator;
pub mod gcs_proxy;
pub mod mock;

/// A plain-HTTP reqwest client for the GCS fixtures. reqwest is built without
/// a rustls provider in this workspace (see `host/Cargo.toml`), so install
/// ring first, as siphon does.
pub fn http_client(timeout: Option<std::time::Duration>) -> reqwest::Result<reqwest::Client> {
    // Err means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let builder = reqwest::Client::builder();
    match timeout {
        Some(t) => builder.timeout(t).build(),
        None => builder.build(),
    }
}
