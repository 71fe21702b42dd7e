//! Time over `wasi:clocks`.
//!
//! Collectors must not use `std::time::SystemTime` or `std::thread::sleep`:
//! on the fallback build route (`wasm32-unknown-unknown`) std has no clock and
//! those panic. These functions work on both routes.

use std::time::Duration;

use crate::sys;

/// Wall-clock time as whole seconds since the Unix epoch (UTC).
pub fn now_epoch_seconds() -> u64 {
    sys::wall_clock().as_secs()
}

/// Wall-clock time as milliseconds since the Unix epoch (UTC).
pub fn now_millis() -> u64 {
    u64::try_from(sys::wall_clock().as_millis()).unwrap_or(u64::MAX)
}

/// Wall-clock time since the Unix epoch, with the clock's full resolution.
pub fn now() -> Duration {
    sys::wall_clock()
}

/// Blocks the run for `duration` (monotonic clock). The host's per-run
/// deadline keeps counting, so keep sleeps short relative to it.
pub fn sleep(duration: Duration) {
    if !duration.is_zero() {
        sys::sleep(duration);
    }
}
