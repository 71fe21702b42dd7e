//! The stream driver: one page loop for every collector.
//!
//! A collector describes each vendor stream with [`Stream`]: its cursor type,
//! how to build the next request from the cursor, and how to read a response
//! into a [`Page`] (records with their keys, the next cursor, whether more is
//! waiting, an optional wait hint). [`Driver`] runs the loop for every stream:
//!
//! - **per-page commit**: a page's records and the cursor after it become
//!   durable together, so a crash repeats a page but never skips one;
//! - **in-run dedup** by record key (bounded memory);
//! - **pacing**: vendor wait hints and rate-limit headers, persisted across
//!   runs; a wait longer than [`Budget::max_wait`] ends the stream for this
//!   run instead of blocking it; 429s are retried a bounded number of times;
//! - **budgets**: pages per stream and wall time per run;
//! - **failure isolation**: a stream that fails does not stop the others;
//!   the run then ends with an error naming every failed stream;
//! - **consume-once** vendors (opt in with [`Stream::consume_once`]): an
//!   in-flight marker is committed before each request; after a crash or a
//!   5xx the driver asks again with [`Attempt::Resend`], and a resent page
//!   whose [`Fingerprint`] matches the last delivered page is skipped.
//!
//! The committed checkpoint is a [`Checkpoint`]: a schema version, an
//! optional scope (e.g. the iterator index the cursors belong to) and one
//! [`StreamState`] per stream holding the stream's own cursor as JSON.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::Auth;
use crate::data::hash::{RecentKeys, RecordKey};
use crate::http::{Request, Response, Retry};
use crate::io::Io;
use crate::log::Level;
use crate::{Error, Record, Summary};

/// Whether a request asks for new data or for the page served last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The next page after the cursor.
    Fresh,
    /// A consume-once stream's previous request may have been served without
    /// its page reaching the sink: ask for that page again.
    Resend,
}

/// What a stream's methods may use while the driver runs it.
pub struct Ctx<'a> {
    /// The run's I/O.
    pub io: &'a mut dyn Io,
    /// The run's credentials.
    pub auth: &'a mut dyn Auth,
    /// Fresh or resend (always fresh unless the stream is consume-once).
    pub attempt: Attempt,
}

impl Ctx<'_> {
    /// Wall-clock time, epoch ms.
    pub fn now_ms(&self) -> u64 {
        self.io.now_ms()
    }

    /// Sends a follow-up request (e.g. a download a page points to) with the
    /// run's credentials; see [`crate::auth::send`].
    pub fn send(&mut self, request: Request) -> Result<Response, Error> {
        crate::auth::send(self.io, self.auth, request)
    }

    /// Writes to the host log.
    pub fn log(&mut self, level: Level, message: &str) {
        self.io.log(level, message);
    }
}

/// One page a stream read from a response.
#[derive(Debug)]
pub struct Page<C> {
    /// Records with their dedup keys (the vendor's id, or a content hash).
    pub records: Vec<(String, Record)>,
    /// The cursor after this page.
    pub next: C,
    /// True when the vendor has more right now (a full page, a next-page link).
    pub more: bool,
    /// The vendor asks not to be called again before this much time passed.
    pub wait: Option<Duration>,
    /// Items that could not be records (not JSON objects), with why; logged.
    pub skipped: Vec<String>,
}

impl<C> Page<C> {
    /// A page with no records.
    pub fn empty(next: C) -> Self {
        Self { records: Vec::new(), next, more: false, wait: None, skipped: Vec::new() }
    }
}

/// One vendor stream (an alert type, an event feed, …).
pub trait Stream {
    /// The stream's position, stored as JSON in its [`StreamState`]. The
    /// default value means "first run".
    type Cursor: Serialize + DeserializeOwned + Default;

    /// The stream's name: its key in the checkpoint and in messages.
    fn name(&self) -> &str;

    /// The next request, or none when there is nothing to ask now. May update
    /// `cursor` (e.g. pin the start of a first-run window); for a
    /// consume-once stream the updated cursor is committed with the in-flight
    /// marker before the request is sent.
    fn request(&self, cx: &mut Ctx, cursor: &mut Self::Cursor) -> Result<Option<Request>, Error>;

    /// Reads a 2xx response to the request built from `cursor`.
    fn parse(&self, cx: &mut Ctx, cursor: &Self::Cursor, response: Response) -> Result<Page<Self::Cursor>, Error>;

    /// True when a request consumes the data it returns (an iterator that
    /// moves on the server): opts into the in-flight marker, resend and
    /// fingerprint protocol. Requests are then sent with
    /// [`Retry::RateLimitedOnly`] unless the stream chose [`Retry::Never`].
    fn consume_once(&self) -> bool {
        false
    }

    /// How long the vendor asks to wait when `response` says "slow down";
    /// none when it does not. The default reads a 429's `Retry-After` or
    /// rate-limit reset header (zero when absent: the driver backs off).
    /// Vendors that signal quota with another status override it.
    fn rate_limited(&self, response: &Response, now_ms: u64) -> Option<Duration> {
        (response.status == 429).then(|| response.retry_after(now_ms).unwrap_or_default())
    }

    /// The error a non-2xx response (other than rate limiting) means.
    fn error(&self, response: Response) -> Error {
        match response.error_for_status(&format!("stream `{}`", self.name())) {
            Err(e) => e,
            Ok(r) => Error::Vendor(format!("stream `{}`: unexpected HTTP {}", self.name(), r.status)),
        }
    }
}

/// Limits of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Pages fetched per stream per run (empty pages included).
    pub max_pages: u32,
    /// Longest single wait inside a run (vendor hints, rate limits); a longer
    /// one ends the stream for this run and is honoured by the next.
    pub max_wait: Duration,
    /// No new page is started after this much time in the run.
    pub max_run_time: Option<Duration>,
    /// 429s retried per page before the stream fails as rate limited.
    pub rate_limit_retries: u32,
    /// Consume-once only: in-run resends after a 5xx, a transport error or an
    /// unreadable page, before the stream fails (the next run resends).
    pub resend_retries: u32,
    /// Requests signed one by one ([`Auth::signs_each_request`]): retries
    /// after a 502, 503, 504 or a transport error, each signed anew, before
    /// the stream fails. (Other requests are retried by the host.)
    pub server_error_retries: u32,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            max_pages: 100,
            max_wait: Duration::from_secs(60),
            max_run_time: None,
            rate_limit_retries: 3,
            resend_retries: 2,
            server_error_retries: 3,
        }
    }
}

/// Identifies a delivered page of a consume-once stream, so that a resent
/// copy of it is recognised: count, first and last key, and an FNV-1a hash
/// of all keys (each followed by `\n`). Persisted: never change the hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Records on the page.
    pub count: u64,
    /// Key of the first record.
    pub first_id: String,
    /// Key of the last record.
    pub last_id: String,
    /// FNV-1a 64 of every key and `\n`, as 16 hex digits.
    pub ids_hash: String,
}

impl Fingerprint {
    /// The fingerprint of a page with these record keys, in order.
    pub fn of<'a>(keys: impl IntoIterator<Item = &'a str>) -> Self {
        let (mut count, mut first, mut last, mut hash) = (0, None, "", FNV_OFFSET);
        for key in keys {
            count += 1;
            first.get_or_insert(key);
            last = key;
            hash = fnv1a(fnv1a(hash, key.as_bytes()), b"\n");
        }
        Self {
            count,
            first_id: first.unwrap_or_default().to_string(),
            last_id: last.to_string(),
            ids_hash: format!("{hash:016x}"),
        }
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The driver's part of a stream's checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamState {
    /// The stream's own cursor (null before its first page).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub cursor: Value,
    /// A consume-once request may have been served and not delivered.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inflight: bool,
    /// The last delivered page of a consume-once stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_page: Option<Fingerprint>,
    /// No request before this time (epoch ms): a vendor wait or rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before_ms: Option<u64>,
}

/// The whole committed cursor of a collector that uses the driver.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The collector's checkpoint schema version.
    pub version: u32,
    /// What the cursors are relative to (e.g. an iterator index, a tenant):
    /// a collector compares it with its settings and resets what no longer holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// State per stream name.
    #[serde(default)]
    pub streams: BTreeMap<String, StreamState>,
}

impl Checkpoint {
    /// An empty checkpoint of schema `version`.
    pub fn new(version: u32) -> Self {
        Self { version, ..Self::default() }
    }

    /// Parses committed text of schema `version`; `None` (first run) gives an
    /// empty checkpoint. Another version is handed to `migrate`, which returns
    /// the checkpoint in the current schema or none when it cannot.
    pub fn parse(
        text: Option<&str>,
        version: u32,
        migrate: impl FnOnce(u32, Value) -> Option<Checkpoint>,
    ) -> Result<Self, Error> {
        let Some(text) = text else { return Ok(Self::new(version)) };
        let value: Value = crate::checkpoint::parse_json(text)?;
        let found = value.get("version").and_then(Value::as_u64).unwrap_or(0);
        if found == u64::from(version) {
            return crate::checkpoint::parse_json(text);
        }
        let found = u32::try_from(found).unwrap_or(u32::MAX);
        migrate(found, value).ok_or_else(|| {
            Error::Config(format!(
                "the checkpoint has version {found}, this collector reads version {version}; \
                 reset the source's checkpoint to start over"
            ))
        })
    }

    /// The cursor of stream `name` as `C` (the default before its first page).
    pub fn cursor<C: DeserializeOwned + Default>(&self, name: &str) -> Result<C, Error> {
        match self.streams.get(name).map(|s| &s.cursor) {
            None | Some(Value::Null) => Ok(C::default()),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
                Error::Config(format!(
                    "the checkpoint of stream `{name}` is not understood by this collector version ({e}); \
                     reset the source's checkpoint to start over"
                ))
            }),
        }
    }
}

/// How a stream's part of the run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The vendor has nothing more now.
    CaughtUp,
    /// [`Budget::max_pages`] reached; more is waiting.
    PageLimit,
    /// [`Budget::max_run_time`] reached; more may be waiting.
    TimeLimit,
    /// The vendor asked for a pause longer than [`Budget::max_wait`].
    Waiting {
        /// Seconds until the next call is allowed.
        seconds: u64,
        /// True when the pause came from rate limiting.
        rate_limited: bool,
    },
    /// The stream failed; other streams went on.
    Failed(Error),
}

/// Counters of one stream in one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Pages that carried records.
    pub pages: u32,
    /// Records delivered.
    pub records: u64,
    /// Records dropped because a record with the same key was delivered
    /// earlier in this run.
    pub duplicates: u64,
    /// Records of a resent page that had been delivered already (expected
    /// after a crash; not duplicates in the sink).
    pub replayed: u64,
}

/// Keys remembered for in-run dedup (about 40 bytes each with the set: 2 MiB
/// at the cap); duplicates come from overlapping neighbour pages — five of
/// Netskope's 10,000-record pages, hundreds of most vendors' — so the oldest
/// may go. The cap is most of what a long run's guest memory adds to a short
/// one's.
const SEEN_CAP: usize = 50_000;

/// Runs streams page by page; see the module docs.
pub struct Driver<'a> {
    io: &'a mut dyn Io,
    auth: &'a mut dyn Auth,
    checkpoint: Checkpoint,
    budget: Budget,
    started_ms: u64,
    /// Epoch ms before which no request is sent (`ratelimit-remaining: 0`).
    pause_until_ms: u64,
    results: Vec<(String, Tally, Outcome)>,
    keys: RunKeys,
}

/// In-run dedup keys: SipHash of the record key under two random keys of
/// this run, 128 bits. A vendor cannot aim collisions at keys it does not
/// know, and it costs a fraction of SHA-256 in wasm (a hot spot at 10,000
/// records a page). Never persisted, so nothing pins the function.
struct RunKeys(std::hash::RandomState, std::hash::RandomState);

impl RunKeys {
    fn new() -> Self {
        Self(std::hash::RandomState::new(), std::hash::RandomState::new())
    }

    fn key(&self, id: &str) -> RecordKey {
        use std::hash::BuildHasher;
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.0.hash_one(id).to_le_bytes());
        bytes[8..].copy_from_slice(&self.1.hash_one(id).to_le_bytes());
        RecordKey::from_bytes(bytes)
    }
}

/// How a page attempt ended.
enum Step {
    Next,
    Done(Outcome),
}

/// A failure of the stream alone, or of the whole run (the host refused a
/// commit, the login failed).
enum Fail {
    Stream(Error),
    Run(Error),
}

impl<'a> Driver<'a> {
    /// A driver starting from `checkpoint`.
    pub fn new(io: &'a mut dyn Io, auth: &'a mut dyn Auth, checkpoint: Checkpoint, budget: Budget) -> Self {
        let started_ms = io.now_ms();
        let keys = RunKeys::new();
        Self { io, auth, checkpoint, budget, started_ms, pause_until_ms: 0, results: Vec::new(), keys }
    }

    /// The checkpoint as it stands (committed after every page).
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// Runs one stream to its outcome. `Err` only when the whole run must
    /// stop (a refused commit, a failed login); a stream's own failure is
    /// recorded and reported by [`Driver::finish`].
    pub fn run<S: Stream>(&mut self, stream: &S) -> Result<&Outcome, Error> {
        let name = stream.name().to_string();
        let mut tally = Tally::default();
        let mut seen = RecentKeys::new(SEEN_CAP);
        let outcome = match self.pages(stream, &name, &mut tally, &mut seen) {
            Ok(outcome) => outcome,
            Err(Fail::Run(e)) => return Err(e),
            Err(Fail::Stream(e)) => {
                self.io.log(Level::Error, &format!("{name}: {e}"));
                Outcome::Failed(e)
            }
        };
        self.results.push((name, tally, outcome));
        Ok(&self.results[self.results.len() - 1].2)
    }

    /// The run summary, or an error naming every failed stream (of the first
    /// failure's kind) and what the other streams delivered.
    pub fn finish(self) -> Result<Summary, Error> {
        let mut summary = Summary { caught_up: true, ..Summary::default() };
        let mut notes = Vec::new();
        let mut failed = Vec::new();
        for (name, tally, outcome) in &self.results {
            summary.pages += tally.pages;
            summary.duplicates += tally.duplicates;
            summary.caught_up &= matches!(outcome, Outcome::CaughtUp | Outcome::Waiting { .. });
            match outcome {
                Outcome::Failed(e) => failed.push((name, e)),
                _ => notes.push(describe(name, tally, outcome)),
            }
        }
        if failed.is_empty() {
            summary.note = Some(notes.join("; "));
            return Ok(summary);
        }
        let list: Vec<String> = failed.iter().map(|(n, e)| format!("`{n}` ({e})")).collect();
        let mut message = format!("{} of {} streams failed: {}", failed.len(), self.results.len(), list.join("; "));
        if !notes.is_empty() {
            message.push_str(&format!(". The others were delivered: {}", notes.join("; ")));
        }
        // The first failure's kind: with one failure (the usual case) exact,
        // with several still the one an operator sees first in the message.
        Err(with_message(failed[0].1, message))
    }

    fn pages<S: Stream>(
        &mut self,
        stream: &S,
        name: &str,
        tally: &mut Tally,
        seen: &mut RecentKeys,
    ) -> Result<Outcome, Fail> {
        let max_wait_ms = millis(self.budget.max_wait);
        for _ in 0..self.budget.max_pages {
            let now = self.io.now_ms();
            if self.budget.max_run_time.is_some_and(|t| now.saturating_sub(self.started_ms) >= millis(t)) {
                return Ok(Outcome::TimeLimit);
            }
            let state = self.checkpoint.streams.get(name).cloned().unwrap_or_default();
            if let Some(not_before) = state.not_before_ms {
                let remaining = not_before.saturating_sub(now);
                if remaining > max_wait_ms {
                    return Ok(Outcome::Waiting { seconds: remaining.div_ceil(1_000), rate_limited: false });
                }
                self.io.sleep(Duration::from_millis(remaining));
            }
            let cursor: S::Cursor = self.checkpoint.cursor(name).map_err(Fail::Stream)?;
            let attempt = if stream.consume_once() && state.inflight { Attempt::Resend } else { Attempt::Fresh };
            match self.page(stream, name, state, cursor, attempt, tally, seen)? {
                Step::Next => {}
                Step::Done(outcome) => return Ok(outcome),
            }
        }
        Ok(Outcome::PageLimit)
    }

    #[allow(clippy::too_many_arguments)]
    fn page<S: Stream>(
        &mut self,
        stream: &S,
        name: &str,
        before: StreamState,
        mut cursor: S::Cursor,
        mut attempt: Attempt,
        tally: &mut Tally,
        seen: &mut RecentKeys,
    ) -> Result<Step, Fail> {
        let consume_once = stream.consume_once();
        let (mut limited, mut resends, mut server_errors) = (0u32, 0u32, 0u32);
        loop {
            let mut cx = Ctx { io: &mut *self.io, auth: &mut *self.auth, attempt };
            let Some(request) = stream.request(&mut cx, &mut cursor).map_err(Fail::Stream)? else {
                return Ok(Step::Done(Outcome::CaughtUp));
            };
            let mut request = request.max_wait(self.budget.max_wait);
            // A host retry would resend the same signature (a replay); this
            // loop asks the stream again and the request is signed afresh.
            let own_retries = !consume_once
                && request.is_authenticated()
                && self.auth.signs_each_request()
                && request.header_value(crate::http::RETRY_HEADER).is_none();
            if own_retries {
                request = request.retry(Retry::Never);
            }
            if consume_once {
                if request.header_value(crate::http::RETRY_HEADER) != Some("never") {
                    request = request.retry(Retry::RateLimitedOnly);
                }
                // Recorded before sending: if the run dies before the page is
                // delivered, the next run knows to ask with `Resend`.
                let state =
                    StreamState { cursor: to_value(&cursor)?, inflight: true, not_before_ms: None, ..before.clone() };
                self.commit_state(name, state)?;
            }
            self.pace();
            let sent = self.send(request);
            if own_retries && server_errors < self.budget.server_error_retries {
                let why = match &sent {
                    Err(Fail::Stream(e)) => Some(e.to_string()),
                    Ok(r) if matches!(r.status, 502..=504) => Some(format!("HTTP {}", r.status)),
                    _ => None,
                };
                if let Some(why) = why {
                    server_errors += 1;
                    let wait = Duration::from_secs(1 << (server_errors - 1).min(5));
                    let of = (server_errors, self.budget.server_error_retries);
                    self.back_off(name, &why, "signing the request again and retrying", wait, of);
                    continue;
                }
            }
            let response = match sent {
                Ok(r) => r,
                Err(Fail::Stream(e)) if consume_once && resends < self.budget.resend_retries => {
                    resends += 1;
                    self.resend_later(name, &e, resends);
                    attempt = Attempt::Resend;
                    continue;
                }
                Err(f) => return Err(f),
            };
            let now = self.io.now_ms();
            if let Some(wait) = stream.rate_limited(&response, now) {
                limited += 1;
                let wait = if wait.is_zero() { Duration::from_secs(1 << limited.min(6)) } else { wait };
                if wait > self.budget.max_wait || limited > self.budget.rate_limit_retries {
                    // A refusal: a consume-once iterator did not move.
                    let mut state = before.clone();
                    state.not_before_ms = Some(now.saturating_add(millis(wait)));
                    self.commit_state(name, state)?;
                    if wait > self.budget.max_wait {
                        let seconds = wait.as_secs().max(1);
                        self.io.log(Level::Warn, &format!("{name}: rate limited; the vendor asks to wait {seconds}s"));
                        return Ok(Step::Done(Outcome::Waiting { seconds, rate_limited: true }));
                    }
                    return Err(Fail::Stream(Error::RateLimited(format!(
                        "stream `{name}`: the vendor kept rate limiting ({limited} answers in a row were HTTP {}, \
                         each after the host's own retries)",
                        response.status
                    ))));
                }
                self.io.log(
                    Level::Warn,
                    &format!("{name}: rate limited (HTTP {}), retry {limited} in {}s", response.status, wait.as_secs()),
                );
                self.io.sleep(wait);
                continue;
            }
            if !response.is_success() {
                let status = response.status;
                if consume_once && (400..500).contains(&status) {
                    // Refused, so the iterator did not move: take the marker back.
                    self.commit_state(name, before.clone())?;
                } else if consume_once && resends < self.budget.resend_retries {
                    // A gateway may have failed after the backend served the page.
                    resends += 1;
                    self.resend_later(name, &format!("HTTP {status}"), resends);
                    attempt = Attempt::Resend;
                    continue;
                }
                return Err(Fail::Stream(stream.error(response)));
            }
            let mut cx = Ctx { io: &mut *self.io, auth: &mut *self.auth, attempt };
            let page = match stream.parse(&mut cx, &cursor, response) {
                Ok(page) => page,
                Err(e) if consume_once && resends < self.budget.resend_retries => {
                    resends += 1;
                    self.resend_later(name, &e, resends);
                    attempt = Attempt::Resend;
                    continue;
                }
                Err(e) => return Err(Fail::Stream(e)),
            };
            return self.deliver(
                name,
                before,
                page,
                consume_once && attempt == Attempt::Resend,
                consume_once,
                tally,
                seen,
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn deliver<C: Serialize>(
        &mut self,
        name: &str,
        before: StreamState,
        page: Page<C>,
        resent: bool,
        consume_once: bool,
        tally: &mut Tally,
        seen: &mut RecentKeys,
    ) -> Result<Step, Fail> {
        for why in &page.skipped {
            self.io.log(Level::Warn, &format!("{name}: skipped an item that is not a record: {why}"));
        }
        let now = self.io.now_ms();
        let not_before_ms = page.wait.filter(|w| !w.is_zero()).map(|w| now.saturating_add(millis(w)));
        let fingerprint = (consume_once && !page.records.is_empty())
            .then(|| Fingerprint::of(page.records.iter().map(|(k, _)| k.as_str())));
        let mut state = StreamState {
            cursor: to_value(&page.next)?,
            inflight: false,
            last_page: before.last_page.clone(),
            not_before_ms,
        };
        if resent && fingerprint.is_some() && fingerprint == before.last_page {
            // The earlier request never consumed a page, so `resend` returned
            // the page delivered before it: nothing new.
            let n = page.records.len() as u64;
            tally.replayed += n;
            self.io.log(Level::Info, &format!("{name}: the resent page was delivered before; skipped its {n} records"));
            state.cursor = before.cursor;
            self.commit_state(name, state)?;
            return Ok(Step::Next);
        }
        let mut records = Vec::with_capacity(page.records.len());
        for (key, record) in page.records {
            if seen.insert(self.keys.key(&key)) {
                records.push(record);
            } else {
                tally.duplicates += 1;
            }
        }
        let delivered = records.len() as u64;
        if fingerprint.is_some() {
            state.last_page = fingerprint;
        }
        self.io.emit(records).map_err(Fail::Run)?;
        self.commit_state(name, state)?;
        if delivered > 0 {
            tally.pages += 1;
            tally.records += delivered;
            self.io.log(Level::Info, &format!("{name}: delivered {delivered} records"));
        }
        Ok(if page.more { Step::Next } else { Step::Done(Outcome::CaughtUp) })
    }

    /// Sends with credentials; one re-authentication after a 401.
    fn send(&mut self, request: Request) -> Result<Response, Fail> {
        let retry = request.is_authenticated().then(|| request.clone());
        let authorized = self.auth.authorize(self.io, request).map_err(Fail::Run)?;
        let mut response = self.io.send(authorized).map_err(|e| Fail::Stream(e.into()))?;
        if let Some(request) = retry.filter(|_| response.status == 401)
            && self.auth.invalidate()
        {
            self.io.log(Level::Info, "HTTP 401: the token was refused; authenticating again");
            let authorized = self.auth.authorize(self.io, request).map_err(Fail::Run)?;
            response = self.io.send(authorized).map_err(|e| Fail::Stream(e.into()))?;
        }
        let remaining =
            ["ratelimit-remaining", "x-ratelimit-remaining"].iter().find_map(|h| response.headers.get_u64(h));
        // A 429's wait is the stream's to read (`Stream::rate_limited`), not
        // a pause on top of it.
        if remaining == Some(0) && response.status != 429 {
            let now = self.io.now_ms();
            let reset = ["ratelimit-reset", "x-ratelimit-reset"].iter().find_map(|h| response.headers.get_u64(h));
            let wait = reset.map_or(Duration::from_secs(1), |r| crate::http::reset_wait(r, now));
            self.pause_until_ms = now.saturating_add(millis(wait));
        }
        Ok(response)
    }

    /// Honours a `ratelimit-remaining: 0` seen earlier (within the budget).
    fn pace(&mut self) {
        let pause = self.pause_until_ms.saturating_sub(self.io.now_ms());
        if pause > 0 {
            self.io.sleep(Duration::from_millis(pause.min(millis(self.budget.max_wait))));
        }
        self.pause_until_ms = 0;
    }

    fn resend_later(&mut self, name: &str, why: &dyn std::fmt::Display, n: u32) {
        let wait = Duration::from_secs(1 << n.min(5));
        let of = (n, self.budget.resend_retries);
        self.back_off(name, why, "the page may have been served, asking for it again", wait, of);
    }

    /// An in-run retry: says why and what comes next, then waits.
    fn back_off(&mut self, name: &str, why: &dyn std::fmt::Display, then: &str, wait: Duration, (n, of): (u32, u32)) {
        self.io.log(Level::Warn, &format!("{name}: {why}; {then} in {}s ({n}/{of})", wait.as_secs()));
        self.io.sleep(wait);
    }

    fn commit_state(&mut self, name: &str, state: StreamState) -> Result<(), Fail> {
        // A default state means "never started": keep the checkpoint free of it.
        if state == StreamState::default() {
            self.checkpoint.streams.remove(name);
        } else {
            self.checkpoint.streams.insert(name.to_string(), state);
        }
        let text = crate::checkpoint::to_json(&self.checkpoint).map_err(Fail::Run)?;
        self.io.commit(&text).map_err(Fail::Run)
    }
}

fn to_value<C: Serialize>(cursor: &C) -> Result<Value, Fail> {
    serde_json::to_value(cursor).map_err(|e| Fail::Run(Error::Host(format!("cannot serialise a cursor: {e}"))))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn with_message(e: &Error, m: String) -> Error {
    match e {
        Error::Config(_) => Error::Config(m),
        Error::Auth(_) => Error::Auth(m),
        Error::NotFound(_) => Error::NotFound(m),
        Error::RateLimited(_) => Error::RateLimited(m),
        Error::Vendor(_) => Error::Vendor(m),
        Error::Transport(_) => Error::Transport(m),
        Error::Host(_) => Error::Host(m),
    }
}

/// One stream's part of the run note, e.g. `dlp: 3 pages, 250 records, caught up`.
pub fn describe(name: &str, tally: &Tally, outcome: &Outcome) -> String {
    let mut s = format!("{name}: ");
    if tally.pages > 0 {
        let plural = if tally.pages == 1 { "" } else { "s" };
        s.push_str(&format!("{} page{plural}, {} records, ", tally.pages, tally.records));
    }
    if tally.duplicates > 0 {
        s.push_str(&format!("{} duplicates dropped, ", tally.duplicates));
    }
    if tally.replayed > 0 {
        s.push_str(&format!("{} already-delivered records skipped after a resend, ", tally.replayed));
    }
    match outcome {
        Outcome::CaughtUp => s.push_str("caught up"),
        Outcome::PageLimit => s.push_str("page limit reached, more waiting"),
        Outcome::TimeLimit => s.push_str("run time limit reached, more may be waiting"),
        Outcome::Waiting { seconds, rate_limited: false } => {
            s.push_str(&format!("waiting {seconds}s (vendor wait hint)"))
        }
        Outcome::Waiting { seconds, rate_limited: true } => {
            s.push_str(&format!("rate limited, next call in {seconds}s"))
        }
        Outcome::Failed(e) => s.push_str(&format!("failed: {e}")),
    }
    s
}

/// Runs every stream in order (see [`Driver`]) and returns the summary.
pub fn collect_streams<S: Stream>(
    io: &mut dyn Io,
    auth: &mut dyn Auth,
    checkpoint: Checkpoint,
    budget: Budget,
    streams: &[S],
) -> Result<Summary, Error> {
    let mut driver = Driver::new(io, auth, checkpoint, budget);
    for stream in streams {
        driver.run(stream)?;
    }
    driver.finish()
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;
