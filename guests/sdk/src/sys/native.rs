//! Native stand-ins for the host imports.
//!
//! A native build exists only so that vendor crates type-check and unit-test
//! their pure logic with `cargo test`. There is no host: settings and the
//! checkpoint are absent, HTTP, `emit` and `commit` fail with a message that
//! says so, logging goes to stderr and time comes from std (which is fine
//! natively; only the wasm build must avoid it).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::Error;
use crate::http::{HttpError, HttpErrorKind, Request, Response};
use crate::log::Level;

const NO_HOST: &str = "no siphon host: this function works only inside a collector component";

pub(crate) fn http_send(request: Request) -> Result<Response, HttpError> {
    // Validate as the component would, so a malformed request fails natively
    // with the same error.
    let target = request.target()?;
    Err(HttpError::new(
        HttpErrorKind::Unsupported,
        format!("{NO_HOST} ({} {})", request.method.as_str(), target.authority),
    ))
}

pub(crate) fn source_name() -> String {
    "native".to_string()
}

pub(crate) fn setting(_name: &str) -> Option<String> {
    None
}

pub(crate) fn secret(_name: &str) -> Option<String> {
    None
}

pub(crate) fn checkpoint_load() -> Option<String> {
    None
}

pub(crate) fn checkpoint_commit(_cursor: &str) -> Result<Vec<String>, Error> {
    Err(Error::Host(NO_HOST.to_string()))
}

pub(crate) fn sink_emit(_records: Vec<String>) -> Result<(), Error> {
    Err(Error::Host(NO_HOST.to_string()))
}

pub(crate) fn log(level: Level, message: &str) {
    eprintln!("[{level:?}] {message}");
}

pub(crate) fn wall_clock() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

pub(crate) fn sleep(duration: Duration) {
    std::thread::sleep(duration);
}

/// Native-only and NOT cryptographically secure: bytes from std's randomly
/// keyed `RandomState` hasher over the time and a counter. Enough for unit
/// tests of code that formats random values (e.g. UUIDs); a component gets
/// real randomness from `wasi:random` (`sys/wasm.rs`).
pub(crate) fn random_bytes(len: usize) -> Vec<u8> {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};

    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let state = std::collections::hash_map::RandomState::new();
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        let mut hasher = state.build_hasher();
        hasher.write_u128(wall_clock().as_nanos());
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        out.extend_from_slice(&hasher.finish().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The page scan the host runs for a component, run here directly.
pub(crate) fn scan_page(body: &[u8], records_key: &str, fields: &[&str]) -> Option<siphon_scan::PageScan> {
    siphon_scan::scan_page(body, records_key, fields, usize::MAX).ok()
}
