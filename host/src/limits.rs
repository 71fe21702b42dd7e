//! Every resource and network limit a source's runs are held to, in one
//! place, each with the reason for its default; and the run-time side of
//! them: the [`MemoryLimiter`] wasmtime asks before any linear memory or
//! table grows, the [`RunBudget`] the host charges its own allocations for a
//! run against, and the per-level [`LogBudget`].
//!
//! # The memory budget of a run
//!
//! A collector is untrusted code, so everything a run can make the daemon
//! hold is capped, and the caps add up to one number per run
//! ([`Limits::memory_budget`], printed by `siphon check`):
//!
//! | part | limit | what it holds |
//! |---|---|---|
//! | guest | `memory` | all linear memories and tables of the instance, together (table elements at 8 bytes) |
//! | records | `max_pending_size` | records emitted and not yet committed, each charged its length plus [`RECORD_OVERHEAD`] |
//! | responses | `max_response_buffer` | response bodies the host holds for the collector (buffered, gzip decoded, not yet read) |
//! | requests | `max_requests_in_flight` × `max_request_size` | request bodies buffered for retries |
//! | resources | `max_resources` × [`RESOURCE_COST`] | `wasi:http` header maps (at most `max_field_size` each) and other handles |
//! | output | `max_stderr_size` + `max_cursor_size` | captured stderr, the cursor being committed |
//!
//! Guest arguments the host reads lazily (records, log lines, cursors) are
//! copied only up to these limits. Beyond the budget a run needs transient
//! room for one commit (one object of the sink's `max_bytes`, plus gzip).
//! Hitting any part fails the run with a message naming the limit; the
//! daemon and the other sources go on.

mod rate;

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

pub use rate::Rate;

/// Bytes a pending record is charged beyond its text. Pending records are
/// lines of one buffer (`delivery::pending`), so the host's own overhead is
/// a byte or two; the charge stays what it was when each record was a
/// `String` (header, allocator rounding, list slack) so that
/// `max_pending_size` keeps its meaning: a run of 20 million `{}` records
/// stops where it did, and no list of tiny records holds many times the
/// limit in the guest's list or the host's bookkeeping.
pub const RECORD_OVERHEAD: usize = 64;

/// Pending records (NDJSON) a run holds in memory before they move to a
/// temporary file until the commit (see `delivery::pending`). A vendor page
/// or two (10-40 MB) stays in memory, since spooling writes and reads every
/// byte once more; a collector that emits far more between commits holds
/// this much of it in the daemon's memory, not `max_pending_size`.
pub const SPOOL_FROM: usize = 32 << 20;

/// Bytes each resource-table entry may hold at most, for the budget: a
/// `wasi:http` header map of `max_field_size` (16 KiB by default; the map's
/// own structures about double that), or one buffered outgoing body chunk
/// ([`OUTGOING_BODY_CHUNK`]).
pub const RESOURCE_COST: u64 = 32 * 1024;

/// Largest write into a request body the host buffers at once (wasmtime's
/// default is 1 MiB per unsent body, which times the resource table would
/// be a gigabyte).
pub const OUTGOING_BODY_CHUNK: usize = 16 * 1024;

/// Largest `wasi:random` answer: nonces and UUIDs need bytes, not megabytes
/// (wasmtime's default, 64 MiB, is allocated by the host per call).
pub const MAX_RANDOM_BYTES: u64 = 64 * 1024;

/// Bytes charged per table element: wasmtime stores a pointer per element.
pub const TABLE_ELEMENT_BYTES: usize = 8;

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
    /// Total size of the collector instance's linear memories and tables,
    /// together (each table element counts 8 bytes). A 10 000-record vendor
    /// page is 10-40 MB of JSON; twice that plus parse overhead fits.
    /// Default 256 MiB.
    pub memory: ByteSize,
    /// Linear memories one instance may have. A Rust or C collector has
    /// one; a component composed of a few modules may have a few. Each is
    /// also counted in `memory`. Default 4.
    pub max_memories: usize,
    /// Tables one instance may have, each also counted in `memory` (a Rust
    /// component has two). Default 8.
    pub max_tables: usize,
    /// Core module instances one component may create (a Rust component
    /// creates three). Default 16.
    pub max_instances: usize,
    /// Handles (`wasi:http` header maps, requests, bodies, streams,
    /// pollables) a run may hold at once. A blocking collector holds about
    /// ten per request in flight. Default 1 000.
    pub max_resources: usize,
    /// Largest `wasi:http` header map a collector may build, counted as
    /// wasmtime does (names and values plus about 70 bytes a header).
    /// Vendor requests carry a few headers; a 4 KB bearer token fits many
    /// times. Default 16 KiB (wasmtime's default is 128 KiB, which times
    /// the resource table is over 100 MB).
    pub max_field_size: ByteSize,
    /// Requests a run may have sent and not finished reading (or dropped).
    /// The SDK's client sends one at a time. Default 8.
    pub max_requests_in_flight: usize,
    /// Response bytes the host may hold for one run at once: bodies being
    /// read from the vendor and bodies the collector has not read yet.
    /// At least `max_response_size`. Default 256 MiB: two full-size pages.
    pub max_response_buffer: ByteSize,
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
    /// Largest request body a collector may send (bodies are buffered so a
    /// retry can send them again). Collectors send queries and token forms.
    /// Default 1 MiB.
    pub max_request_size: ByteSize,
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
    /// Requests this source may send per period, e.g. `"40/min"`, `"5/s"`,
    /// `"1000/h"`, `"30/h"` or `"1/10s"` (units `s`, `min`, `h`, `d` and
    /// their long forms; a count before the unit stretches the period).
    /// Requests are spaced evenly, one every period / count, with no burst:
    /// vendors count quotas such as "40 calls per minute" in windows, and a
    /// burst of 40 followed by the steady rate would put up to 80 calls in
    /// one of them. Protects the vendor quota shared with other tools; a
    /// wait for the next slot counts against `run_timeout`. Excludes
    /// `requests_per_second`. Default: `requests_per_second` 5.
    pub rate: Option<String>,
    /// Older form of `rate`: requests per second, as a token bucket with a
    /// burst of the same size (`requests_per_second = 5` may send 5 at once,
    /// `rate = "5/s"` one every 200 ms). Default 5 when `rate` is not set.
    pub requests_per_second: Option<NonZeroU32>,
    /// Records held in memory between commits, each counted as its length
    /// plus 64 bytes of bookkeeping. Collectors commit once per vendor page
    /// (10-40 MB). Default 256 MiB.
    pub max_pending_size: ByteSize,
    /// Commits (state writes) one run may make. A consume-once collector
    /// commits twice per page. Default 10 000.
    pub max_commits: u32,
    /// Largest cursor a collector may commit. Cursors are positions, not
    /// data stores. Default 256 KiB.
    pub max_cursor_size: ByteSize,
    /// Guest log lines kept per run and level (error, warn, info, debug and
    /// trace each have their own); further lines at that level are dropped
    /// and counted in one summary line at the end of the run. A collector
    /// logs a line or two per page. Default 10 000.
    pub max_log_lines: u32,
    /// Guest log bytes kept per run and level, as `max_log_lines`.
    /// Default 1 MiB.
    pub max_log_bytes: ByteSize,
    /// Longest guest text kept: a log line, the run summary's note, an error
    /// or panic message; the rest is cut and marked `[...]`. Default 4 KiB.
    pub max_message_size: ByteSize,
    /// Guest stderr kept per run (logged when the run ends). Default 64 KiB.
    pub max_stderr_size: ByteSize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            run_timeout: Duration::from_secs(600),
            memory: ByteSize::mib(256),
            max_memories: 4,
            max_tables: 8,
            max_instances: 16,
            max_resources: 1_000,
            max_field_size: ByteSize::kib(16),
            max_requests_in_flight: 8,
            max_response_buffer: ByteSize::mib(256),
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(60),
            between_bytes_timeout: Duration::from_secs(60),
            max_request_size: ByteSize::mib(1),
            max_response_size: ByteSize::mib(128),
            max_retries: 4,
            max_retry_wait: Duration::from_secs(120),
            rate: None,
            requests_per_second: None,
            max_pending_size: ByteSize::mib(256),
            max_commits: 10_000,
            max_cursor_size: ByteSize::kib(256),
            max_log_lines: 10_000,
            max_log_bytes: ByteSize::mib(1),
            max_message_size: ByteSize::kib(4),
            max_stderr_size: ByteSize::kib(64),
        }
    }
}

/// `ByteSize` as `usize`, saturating (only on 32-bit hosts can it saturate).
pub fn bytes(size: ByteSize) -> usize {
    usize::try_from(size.as_u64()).unwrap_or(usize::MAX)
}

impl Limits {
    /// Problems, each starting with the field name.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, problem: &str| {
            if !ok {
                problems.push(problem.to_owned());
            }
        };
        check(self.run_timeout >= Duration::from_secs(1), "run_timeout: must be at least 1s");
        check(self.memory >= ByteSize::mib(16), "memory: must be at least 16 MiB");
        check(self.memory <= ByteSize::gib(4), "memory: must be at most 4 GiB (wasm32 address space)");
        check((1..=64).contains(&self.max_memories), "max_memories: must be 1 to 64");
        check((1..=1000).contains(&self.max_tables), "max_tables: must be 1 to 1000");
        check((1..=1000).contains(&self.max_instances), "max_instances: must be 1 to 1000");
        check((100..=1_000_000).contains(&self.max_resources), "max_resources: must be 100 to 1000000");
        check(
            self.max_field_size >= ByteSize::kib(1) && self.max_field_size <= ByteSize::mib(1),
            "max_field_size: must be 1 KiB to 1 MiB",
        );
        check((1..=1000).contains(&self.max_requests_in_flight), "max_requests_in_flight: must be 1 to 1000");
        check(self.max_response_size >= ByteSize::kib(64), "max_response_size: must be at least 64 KiB");
        check(
            self.max_response_buffer >= self.max_response_size,
            "max_response_buffer: must be at least max_response_size",
        );
        check(
            self.max_request_size >= ByteSize::kib(1) && self.max_request_size <= ByteSize::mib(64),
            "max_request_size: must be 1 KiB to 64 MiB",
        );
        check(self.max_retries <= 20, "max_retries: must be at most 20");
        check(self.max_pending_size >= ByteSize::kib(64), "max_pending_size: must be at least 64 KiB");
        check(self.max_commits >= 1, "max_commits: must be at least 1");
        check(
            self.max_cursor_size >= ByteSize::kib(1) && self.max_cursor_size <= ByteSize::mib(16),
            "max_cursor_size: must be 1 KiB to 16 MiB",
        );
        check(
            self.max_message_size >= ByteSize::b(256) && self.max_message_size <= ByteSize::mib(1),
            "max_message_size: must be 256 B to 1 MiB",
        );
        check(self.max_stderr_size <= ByteSize::mib(16), "max_stderr_size: must be at most 16 MiB");
        check(self.max_log_bytes <= ByteSize::gib(1), "max_log_bytes: must be at most 1 GiB");
        if let Err(e) = self.request_rate() {
            problems.push(e);
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    /// The request rate in force: `rate`, else `requests_per_second`, else
    /// 5 per second. An error starts with the field name.
    pub fn request_rate(&self) -> Result<Rate, String> {
        match (&self.rate, self.requests_per_second) {
            (Some(_), Some(_)) => Err("rate: `rate` and `requests_per_second` are mutually exclusive; keep `rate` \
                 (`requests_per_second = N` is `rate = \"N/s\"` with a burst of N)"
                .to_owned()),
            (Some(text), None) => text.parse().map_err(|e| format!("rate: {text:?} is invalid: {e}")),
            (None, Some(n)) => Ok(Rate::per_second(n)),
            (None, None) => Ok(Rate::DEFAULT),
        }
    }

    /// The parts of a run's memory budget (see the module docs), in bytes,
    /// each named by the limit that bounds it.
    pub fn memory_budget(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("memory", self.memory.as_u64()),
            ("max_pending_size", self.max_pending_size.as_u64()),
            ("max_response_buffer", self.max_response_buffer.as_u64()),
            ("max_requests_in_flight", self.max_requests_in_flight as u64 * self.max_request_size.as_u64()),
            ("max_resources", self.max_resources as u64 * RESOURCE_COST),
            ("max_stderr_size", self.max_stderr_size.as_u64()),
            ("max_cursor_size", self.max_cursor_size.as_u64()),
        ]
    }

    /// The sum of [`Limits::memory_budget`]: the most a run makes the daemon
    /// hold (plus one commit's object in flight).
    pub fn memory_budget_total(&self) -> u64 {
        self.memory_budget().iter().map(|(_, b)| b).sum()
    }
}

/// Makes glibc's malloc use one arena for the whole process; call it first
/// thing, before threads allocate.
///
/// By default every thread that allocates gets an arena of its own (up to
/// eight per core), and memory freed into an arena stays with it. A run's
/// large buffers (a vendor page, its pending records, an object) are
/// allocated on one tokio worker, freed on another, compressed and written
/// on blocking-pool and gzip threads, so each arena came to hold its own
/// copy of the run's high-water mark: peak RSS grew with the length of a
/// run (111 MiB at 100k alerts, 138 MiB at 1M, measured by `make bench`),
/// not with what it held at once. With one arena, freed memory is reused
/// by the next page whichever thread asks (about 70 MiB at both sizes); the
/// lock costs nothing measurable on two cores.
#[allow(unsafe_code)]
pub fn use_one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a parameter of the allocator, and
    // M_ARENA_MAX is one glibc defines; it is safe to call at any time.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// A run went past one of its limits. The run fails with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}; the limit is {limit} (limits.{key})")]
pub struct LimitExceeded {
    /// The `[limits]` key.
    pub key: &'static str,
    /// The limit's value, as configured.
    pub limit: String,
    /// What the collector did.
    pub what: String,
}

impl LimitExceeded {
    /// A limit of `key` = `limit` exceeded by `what`.
    pub fn new(key: &'static str, limit: impl ToString, what: impl Into<String>) -> LimitExceeded {
        LimitExceeded { key, limit: limit.to_string(), what: what.into() }
    }
}

/// Caps the instance's linear memories and tables, in total, and how many
/// of them and of core instances there may be, and remembers refusals, so
/// an allocation failure in the guest (which a Rust guest turns into an
/// abort) is reported as out-of-memory rather than as a generic trap.
/// Checked per memory, a cap would let a component with several memories
/// (or tables) multiply it.
pub struct MemoryLimiter {
    source: String,
    limit: usize,
    max_memories: usize,
    max_tables: usize,
    max_instances: usize,
    used: usize,
    last_growth: usize,
    /// Number of refused growth requests.
    pub refused: u32,
    /// Largest total (all memories and tables) a refused request asked for.
    pub largest_request: usize,
}

impl MemoryLimiter {
    /// The limiter of one run of `source`.
    pub fn new(source: &str, limits: &Limits) -> MemoryLimiter {
        MemoryLimiter {
            source: source.to_owned(),
            limit: bytes(limits.memory),
            max_memories: limits.max_memories,
            max_tables: limits.max_tables,
            max_instances: limits.max_instances,
            used: 0,
            last_growth: 0,
            refused: 0,
            largest_request: 0,
        }
    }

    /// The cap in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes of linear memory and tables the instance holds.
    pub fn used(&self) -> usize {
        self.used
    }

    fn grow(&mut self, growth: usize) -> bool {
        let total = self.used.saturating_add(growth);
        if total > self.limit {
            self.refused += 1;
            self.largest_request = self.largest_request.max(total);
            crate::telemetry::memory_refused(&self.source);
            return false;
        }
        self.used = total;
        self.last_growth = growth;
        true
    }

    fn grow_failed(&mut self) {
        // wasmtime reports the failure of the growth it just asked about.
        self.used = self.used.saturating_sub(self.last_growth);
        self.last_growth = 0;
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(self.grow(desired.saturating_sub(current)))
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.grow_failed();
        Ok(())
    }

    fn table_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(self.grow(desired.saturating_sub(current).saturating_mul(TABLE_ELEMENT_BYTES)))
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.grow_failed();
        Ok(())
    }

    fn instances(&self) -> usize {
        self.max_instances
    }

    fn tables(&self) -> usize {
        self.max_tables
    }

    fn memories(&self) -> usize {
        self.max_memories
    }
}

/// What the host holds for one run outside the guest's memory, charged as
/// it is allocated (response bodies, requests in flight), and the first
/// limit the run went past. Shared with the tasks that fetch responses.
#[derive(Debug)]
pub struct RunBudget {
    response_limit: usize,
    in_flight_limit: usize,
    response_bytes: AtomicUsize,
    in_flight: AtomicUsize,
    stopped: AtomicBool,
    exceeded: Mutex<Option<LimitExceeded>>,
}

impl RunBudget {
    /// The budget of one run under `limits`.
    pub fn new(limits: &Limits) -> Arc<RunBudget> {
        Arc::new(RunBudget {
            response_limit: bytes(limits.max_response_buffer),
            in_flight_limit: limits.max_requests_in_flight,
            response_bytes: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
            exceeded: Mutex::new(None),
        })
    }

    /// Record that the run went past a limit: the run fails with the first
    /// such error, is interrupted at its next epoch tick, and commits no
    /// more. Returns `error` for the caller to pass on.
    pub fn exceed(&self, error: LimitExceeded) -> LimitExceeded {
        let mut first = self.exceeded.lock().unwrap_or_else(PoisonError::into_inner);
        if first.is_none() {
            tracing::error!(error = %error, "Collector exceeded a limit; stopping the run");
            crate::telemetry::limit_exceeded(error.key);
            *first = Some(error.clone());
        }
        self.stopped.store(true, Ordering::Release);
        error
    }

    /// Stop the run for a reason other than a limit (the caller records
    /// it): it is interrupted at its next epoch tick.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
    }

    /// The first limit the run went past.
    pub fn exceeded(&self) -> Option<LimitExceeded> {
        self.exceeded.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Whether the run must stop.
    pub fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Response bytes held now.
    pub fn response_bytes(&self) -> usize {
        self.response_bytes.load(Ordering::Acquire)
    }

    /// Start a request: fails (and stops the run) past
    /// `max_requests_in_flight`. The slot is freed when the returned guard
    /// (carried by the response body) is dropped.
    pub fn start_request(self: &Arc<Self>) -> Result<Charge, LimitExceeded> {
        let n = self.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        let charge = Charge { budget: self.clone(), bytes: 0, slot: true };
        if n > self.in_flight_limit {
            drop(charge);
            return Err(self.exceed(LimitExceeded::new(
                "max_requests_in_flight",
                self.in_flight_limit,
                format!("the collector has {n} requests in flight (sent and not read or dropped)"),
            )));
        }
        Ok(charge)
    }
}

/// Host memory held for a request: response bytes and its in-flight slot,
/// given back on drop.
#[derive(Debug)]
pub struct Charge {
    budget: Arc<RunBudget>,
    bytes: usize,
    slot: bool,
}

impl Charge {
    /// Hold `n` more response bytes; past `max_response_buffer` the run stops.
    pub fn add(&mut self, n: usize) -> Result<(), LimitExceeded> {
        let held = self.budget.response_bytes.fetch_add(n, Ordering::AcqRel) + n;
        self.bytes += n;
        if held > self.budget.response_limit {
            return Err(self.budget.exceed(LimitExceeded::new(
                "max_response_buffer",
                ByteSize::b(self.budget.response_limit as u64),
                format!("the host would hold {held} bytes of responses for the collector"),
            )));
        }
        Ok(())
    }

    /// Give back `n` bytes (the collector read them).
    pub fn release(&mut self, n: usize) {
        let n = n.min(self.bytes);
        self.bytes -= n;
        self.budget.response_bytes.fetch_sub(n, Ordering::AcqRel);
    }

    /// Bytes held.
    pub fn held(&self) -> usize {
        self.bytes
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.release(self.bytes);
        if self.slot {
            self.budget.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Log levels in the order [`LogBudget`] counts them.
pub const LOG_LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

/// Guest log lines and bytes per level in one run; the rest is dropped and
/// counted.
#[derive(Debug)]
pub struct LogBudget {
    max_lines: u32,
    max_bytes: u64,
    kept: [(u32, u64); 5],
    dropped: [u64; 5],
}

impl LogBudget {
    /// The budget of one run under `limits`.
    pub fn new(limits: &Limits) -> LogBudget {
        LogBudget {
            max_lines: limits.max_log_lines,
            max_bytes: limits.max_log_bytes.as_u64(),
            kept: [(0, 0); 5],
            dropped: [0; 5],
        }
    }

    /// Whether a line of `len` bytes at `level` (an index of
    /// [`LOG_LEVELS`]) may be logged; counts it either way.
    pub fn admit(&mut self, level: usize, len: usize) -> bool {
        let Some((lines, bytes)) = self.kept.get_mut(level) else { return false };
        if *lines >= self.max_lines || *bytes + len as u64 > self.max_bytes {
            self.dropped[level] += 1;
            return false;
        }
        *lines += 1;
        *bytes += len as u64;
        true
    }

    /// Whether no further line at `level` can be kept; if so, the line
    /// about to be logged is counted as dropped.
    pub fn exhausted(&mut self, level: usize) -> bool {
        let Some((lines, bytes)) = self.kept.get(level) else { return true };
        let full = *lines >= self.max_lines || *bytes >= self.max_bytes;
        if full {
            self.dropped[level] += 1;
        }
        full
    }

    /// Lines dropped per level (indexes of [`LOG_LEVELS`]).
    pub fn dropped(&self) -> [u64; 5] {
        self.dropped
    }
}

#[cfg(test)]
mod tests;
