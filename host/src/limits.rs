//! Every resource and network limit a source's runs are held to, in one
//! place, each with the reason for its default.

use std::num::NonZeroU32;
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

/// `[sources.<name>.limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Longest one run may take, wall clock, including waits for the vendor.
    /// A run past it is stopped (CPU-bound code by the epoch deadline, waits
    /// by a timer) and commits nothing more. Default 10 min: an hourly
    /// schedule with room for a slow vendor.
    #[serde(with = "humantime_serde")]
    pub run_timeout: Duration,
    /// Largest linear memory a collector instance may grow to. A 10 000-record
    /// vendor page is 10-40 MB of JSON; twice that plus parse overhead fits.
    /// Default 256 MiB.
    pub memory: ByteSize,
    /// Time to establish a TCP (and TLS) connection. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Time from sending a request to the first response byte. Vendors build
    /// large pages before answering. Default 60 s.
    #[serde(with = "humantime_serde")]
    pub first_byte_timeout: Duration,
    /// Longest pause between response body chunks. Default 60 s.
    #[serde(with = "humantime_serde")]
    pub between_bytes_timeout: Duration,
    /// Largest response body (after gzip decoding) handed to the collector.
    /// Default 128 MiB: several times a full 10 000-record page.
    pub max_response_size: ByteSize,
    /// Retries of a request answered 429/502/503/504 or failing to connect,
    /// before the collector sees the failure. Default 4.
    pub max_retries: u32,
    /// Longest single wait between retries, whatever `Retry-After` asks;
    /// a longer hint ends the retries so the run's deadline is not spent
    /// sleeping. Default 2 min.
    #[serde(with = "humantime_serde")]
    pub max_retry_wait: Duration,
    /// Requests per second this source may send (token bucket, burst of the
    /// same size). Protects the vendor quota shared with other tools.
    /// Default 5.
    pub requests_per_second: NonZeroU32,
    /// Records held in memory between commits. Default 512 MiB.
    pub max_pending_size: ByteSize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            run_timeout: Duration::from_secs(600),
            memory: ByteSize::mib(256),
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(60),
            between_bytes_timeout: Duration::from_secs(60),
            max_response_size: ByteSize::mib(128),
            max_retries: 4,
            max_retry_wait: Duration::from_secs(120),
            requests_per_second: NonZeroU32::new(5).unwrap_or(NonZeroU32::MIN),
            max_pending_size: ByteSize::mib(512),
        }
    }
}

impl Limits {
    /// Problems, each starting with the field name.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.run_timeout < Duration::from_secs(1) {
            problems.push("run_timeout: must be at least 1s".to_owned());
        }
        if self.memory < ByteSize::mib(16) {
            problems.push("memory: must be at least 16 MiB".to_owned());
        }
        if self.memory > ByteSize::gib(4) {
            problems.push("memory: must be at most 4 GiB (wasm32 address space)".to_owned());
        }
        if self.max_response_size < ByteSize::kib(64) {
            problems.push("max_response_size: must be at least 64 KiB".to_owned());
        }
        if self.max_retries > 20 {
            problems.push("max_retries: must be at most 20".to_owned());
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }
}
