//! The vendor table: every collector meets the same e2e suite ([`suite`]) through a
//! [`VendorCase`] row. A row starts its vendor's mock ([`siphon_tests::mock`]) and hands back a
//! [`Tenant`]: the source table that reads it, its secrets good and bad, the key of a delivered
//! record, where its data requests go (for faults); the rest — adding records, what a complete
//! delivery is, injecting faults — follows from the mock.
//!
//! A new vendor adds `vendor/<name>.rs` with its row and tenant, and a line in [`CASES`].

mod ibm_verify;
mod ibm_verify_py;
mod maas360;
mod mimecast;
mod mulesoft;
mod netskope;
mod suite;

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use siphon_tests::config::SourceToml;
use siphon_tests::mock::VendorMock;
use siphon_tests::mock::server::{Fault, FaultRule};

pub use ibm_verify::{VerifyTenant, source as verify_source};
pub use ibm_verify_py::{VerifyPyTenant, warm_compile_cache, warm_compile_cache_blocking};
pub use maas360::Maas360Tenant;
pub use mimecast::MimecastTenant;
pub use mulesoft::{Mulesoft, MulesoftTenant, source as mulesoft_source};
pub use netskope::{Netskope, NetskopeTenant, source as netskope_source};

/// Every vendor row, in the order the suite runs them.
pub const CASES: &[&dyn VendorCase] = &[
    &Netskope,
    &ibm_verify::IbmVerify,
    &ibm_verify_py::IbmVerifyPy,
    &Mulesoft,
    &maas360::Maas360,
    &mimecast::MimecastV2,
    &mimecast::MimecastV1,
];

/// One vendor of the table.
#[async_trait]
pub trait VendorCase: Sync {
    /// The vendor's name; the suite also names its source so.
    fn name(&self) -> &'static str;

    /// Starts the vendor's mock holding `per_stream` records in each stream the source reads,
    /// served in pages small enough that each stream spans several pages for `per_stream` ≥ 50.
    async fn start(&self, per_stream: usize) -> Box<dyn Tenant>;
}

/// A running mock of one vendor, as the suite drives it.
pub trait Tenant: Send + Sync {
    /// The mock: records, keys, request log and fault queue.
    fn mock(&self) -> &dyn VendorMock;

    /// The streams the source reads; each holds records.
    fn streams(&self) -> Vec<String>;

    /// Records per page the mock serves.
    fn page_size(&self) -> usize;

    /// The source table that reads this tenant, named `name`, each secret from a file
    /// `<secret>.txt` beside the config ([`crate::common::Install::write_secrets`]).
    fn source(&self, name: &str) -> SourceToml;

    /// Each secret the source needs, with the value the mock accepts.
    fn secrets(&self) -> Vec<(&'static str, String)>;

    /// Each secret with a value the mock refuses: bad credentials.
    fn bad_secrets(&self) -> Vec<(&'static str, String)>;

    /// What the error of a refused login quotes from the vendor's answer (any one of these): its
    /// HTTP status, unless the vendor refuses otherwise (MaaS360: HTTP 200 with an `errorCode`).
    fn refusal(&self) -> Vec<&'static str> {
        vec!["401", "403"]
    }

    /// How long after `siphon collect` starts the crash loop's random kills may land: about the
    /// time a run of this row's collector takes, start-up included, so that kills hit every step.
    fn kill_window(&self) -> Duration {
        Duration::from_millis(600)
    }

    /// The key of a delivered record (a sink line), as the mock's keys have it.
    fn key_of(&self, line: &str) -> String;

    /// Path prefix of the requests that fetch records: where faults are aimed.
    fn data_path(&self) -> String;

    /// Other secrets the run must never reveal, such as access tokens the mock issued.
    fn issued_secrets(&self) -> Vec<String> {
        Vec::new()
    }

    /// Appends `n` records to each stream.
    fn add_records(&self, n: usize) {
        for stream in self.streams() {
            self.mock().add_records(&stream, n);
        }
    }

    /// The keys of every record the source must deliver: a complete delivery.
    fn expected_keys(&self) -> Vec<String> {
        self.streams().iter().flat_map(|s| self.mock().keys(s)).collect()
    }

    /// The exact text of every record the source must deliver.
    fn expected_records(&self) -> Vec<String> {
        self.streams().iter().flat_map(|s| self.mock().records(s)).collect()
    }

    /// Serves `fault` to the next `times` data requests.
    fn inject(&self, fault: Fault, times: usize) {
        self.mock().server().push_fault(FaultRule::new(fault).path(&self.data_path()).times(times));
    }
}

/// Runs `test` for every row, one after the other, catching each row's panic so that one row's
/// failure does not hide the others'; then fails naming every row that failed. `SIPHON_VENDORS` (a
/// comma list of row names) picks rows.
pub async fn each_case<F, Fut>(what: &str, test: F)
where
    F: Fn(&'static dyn VendorCase) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut failed = Vec::new();
    // `SIPHON_VENDORS=mimecast-v1,maas360` replays a failure for those rows only.
    let only = std::env::var("SIPHON_VENDORS").ok();
    let chosen = |name: &str| only.as_deref().is_none_or(|only| only.split(',').any(|o| o.trim() == name));
    for case in CASES.iter().filter(|c| chosen(c.name())) {
        println!("=== {what}: {}", case.name());
        if let Err(panic) = (CatchUnwind(Box::pin(test(*case)))).await {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("{}: {message}", case.name()));
        }
    }
    assert!(failed.is_empty(), "{what} failed for:\n{}", failed.join("\n"));
}

/// A future that turns a panic while polling `F` into an `Err`.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(poll) => poll.map(Ok),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}
