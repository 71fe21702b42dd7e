//! The vendor mock kit: one generic mock HTTP server ([`server`]) that every vendor mock is
//! written on, the shared pieces vendors mount on it — an OAuth 2.0 client-credentials token
//! endpoint ([`oauth`]) and a store of pre-signed, expiring downloads ([`blobs`]) — and the
//! vendor mocks themselves, each holding only its vendor's state and handler ([`netskope`]).
//!
//! A new vendor mock is a `tests/src/mock/<vendor>.rs` with the vendor's state (implementing
//! [`Streams`]) and a handler over it, served by [`MockVendor::serve`] (which also mounts the
//! shared token endpoint and makes it a [`VendorMock`]); then a row in the `mock-vendor` binary
//! and one in the e2e vendor suite.

pub mod blobs;
#[cfg(test)]
pub(crate) mod client;
pub mod fake;
pub mod http;
pub mod ibm_verify;
pub mod maas360;
pub mod mimecast;
pub mod mulesoft;
pub mod netskope;
pub mod oauth;
pub mod server;
pub mod vendor;

use server::MockServer;
pub use vendor::{MockVendor, Streams};

/// The vendor-neutral face of a vendor mock, as the `mock-vendor` binary and the e2e vendor suite
/// drive it. A *stream* is whatever the vendor serves records of separately (a Netskope alert
/// type, a Mimecast event type, …).
pub trait VendorMock: Send + Sync {
    /// The generic server underneath: base URL, request log, fault queue.
    fn server(&self) -> &MockServer;

    /// Appends `n` records to `stream` and returns their keys.
    fn add_records(&self, stream: &str, n: usize) -> Vec<String>;

    /// Every record of `stream`, in order, as the exact text the vendor serves.
    fn records(&self, stream: &str) -> Vec<String>;

    /// The key of every record of `stream` (what a collector deduplicates on), in order.
    fn keys(&self, stream: &str) -> Vec<String>;
}
