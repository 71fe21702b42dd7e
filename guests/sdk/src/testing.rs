//! A scripted host for native tests of collectors: [`FakeIo`].
//!
//! A test gives the fake a [`Server`] (a closure or a small simulated tenant)
//! and the source's settings and secrets, then calls [`FakeIo::run`] once per
//! collection run. The fake behaves as the siphon host does: records emitted
//! before a commit become durable with it, records pending when a run fails
//! are discarded, and records pending when a run succeeds are delivered with
//! the cursor unchanged.
//!
//! [`Crash`] stops a run between any two steps, as a `kill -9` would: at the
//! Nth commit (nothing of it durable), before the Nth request reaches the
//! server, or after the server answered the Nth request but before the
//! collector saw the answer. From that moment every call of the run fails,
//! so the collector unwinds; the next `run` starts from what was durable.
//!
//! ```
//! use siphon_sdk::http::{Request, Response};
//! use siphon_sdk::testing::{FakeIo, json};
//! use siphon_sdk::io::Io;
//!
//! let mut io = FakeIo::new(|_: &Request| json(200, r#"{"events":[]}"#)).setting("base_url", "https://h");
//! let r = io.run(|io| Ok(io.send(Request::get("https://h/events")).map_err(siphon_sdk::Error::from)?.status));
//! assert_eq!(r, Ok(200));
//! assert_eq!(io.requests[0].url, "https://h/events");
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::http::{Headers, HttpError, HttpErrorKind, Request, Response};
use crate::io::Io;
use crate::log::Level;
use crate::{Error, Record};

/// The start time of every fake: 2024-07-30T00:40:00Z.
pub const START_MS: u64 = 1_722_300_000_000;

/// The vendor side of a [`FakeIo`].
pub trait Server {
    /// Answers one request.
    fn handle(&mut self, request: &Request) -> Response;

    /// Answers one request arriving at `now_ms` on the fake's clock; what
    /// [`FakeIo`] calls. Servers whose answers depend on time (a per-minute
    /// quota, data that becomes visible late) override this one.
    fn handle_at(&mut self, request: &Request, now_ms: u64) -> Response {
        let _ = now_ms;
        self.handle(request)
    }
}

impl<F: FnMut(&Request) -> Response> Server for F {
    fn handle(&mut self, request: &Request) -> Response {
        self(request)
    }
}

/// A server that answers with the given responses in order, and panics
/// (naming the request) when it runs out.
#[derive(Debug, Default)]
pub struct Script(pub VecDeque<Response>);

impl Script {
    /// The responses, in order.
    pub fn new(responses: impl IntoIterator<Item = Response>) -> Self {
        Self(responses.into_iter().collect())
    }
}

impl Server for Script {
    fn handle(&mut self, request: &Request) -> Response {
        self.0
            .pop_front()
            .unwrap_or_else(|| panic!("no scripted response left for {} {}", request.method().as_str(), request.url()))
    }
}

/// A response with `status`, `headers` and `body`.
pub fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
    Response { status, headers: headers.iter().copied().collect::<Headers>(), body: body.as_bytes().to_vec() }
}

/// A JSON response.
pub fn json(status: u16, body: &str) -> Response {
    response(status, &[("content-type", "application/json")], body)
}

/// Where a run is stopped, counting from 1 within the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crash {
    /// The Nth commit fails; nothing of it becomes durable.
    AtCommit(usize),
    /// The Nth request never reaches the server.
    BeforeServer(usize),
    /// The server handles the Nth request, but the answer is lost.
    AfterServer(usize),
}

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The request as sent (credentials included).
    pub request: Request,
    /// Its full URL.
    pub url: String,
    /// The committed cursor when it was sent.
    pub committed: Option<String>,
    /// The fake's clock when it was sent.
    pub at_ms: u64,
    /// Whether the server saw it (false for [`Crash::BeforeServer`]).
    pub reached_server: bool,
}

/// The host a collector run sees, scripted. Fields are public so tests can
/// inspect and adjust everything between runs.
pub struct FakeIo<S> {
    /// The vendor.
    pub server: S,
    /// The clock (epoch ms); sleeps and requests advance it.
    pub now_ms: u64,
    /// How long each request takes on the fake clock.
    pub request_ms: u64,
    /// The source's settings.
    pub settings: BTreeMap<String, String>,
    /// The source's secrets.
    pub secrets: BTreeMap<String, String>,
    /// The source's name.
    pub source: String,
    /// Records emitted since the last commit.
    pub pending: Vec<String>,
    /// Every durable record, in delivery order (across runs).
    pub delivered: Vec<String>,
    /// The committed cursor.
    pub committed: Option<String>,
    /// Every cursor ever committed, in order (across runs).
    pub commit_log: Vec<String>,
    /// Every request sent (across runs).
    pub requests: Vec<Sent>,
    /// Every sleep (across runs).
    pub sleeps: Vec<Duration>,
    /// Every log line (across runs).
    pub logs: Vec<(Level, String)>,
    commits_this_run: usize,
    sends_this_run: usize,
    crash: Option<Crash>,
    crashed: bool,
    random_counter: u64,
}

impl<S: Server> FakeIo<S> {
    /// A fake host for source `test` at [`START_MS`].
    pub fn new(server: S) -> Self {
        Self {
            server,
            now_ms: START_MS,
            request_ms: 40,
            settings: BTreeMap::new(),
            secrets: BTreeMap::new(),
            source: "test".into(),
            pending: Vec::new(),
            delivered: Vec::new(),
            committed: None,
            commit_log: Vec::new(),
            requests: Vec::new(),
            sleeps: Vec::new(),
            logs: Vec::new(),
            commits_this_run: 0,
            sends_this_run: 0,
            crash: None,
            crashed: false,
            random_counter: 0,
        }
    }

    /// Sets a setting.
    #[must_use]
    pub fn setting(mut self, name: &str, value: &str) -> Self {
        self.settings.insert(name.into(), value.into());
        self
    }

    /// Sets a secret.
    #[must_use]
    pub fn secret(mut self, name: &str, value: &str) -> Self {
        self.secrets.insert(name.into(), value.into());
        self
    }

    /// Stops the next run at `crash`.
    pub fn crash_next_run(&mut self, crash: Crash) {
        self.crash = Some(crash);
    }

    /// One run as the host does it. A crashed run returns
    /// `Err(Error::Host("crash injected …"))` whatever the collector returned.
    pub fn run<T>(&mut self, collect: impl FnOnce(&mut Self) -> Result<T, Error>) -> Result<T, Error> {
        self.commits_this_run = 0;
        self.sends_this_run = 0;
        self.crashed = false;
        let result = collect(self);
        let crash = self.crash.take();
        if self.crashed {
            self.pending.clear();
            return Err(Error::Host(format!("crash injected: {crash:?}")));
        }
        match &result {
            Ok(_) => self.delivered.append(&mut self.pending),
            Err(_) => self.pending.clear(),
        }
        result
    }

    /// Requests sent in total.
    pub fn sent(&self) -> usize {
        self.requests.len()
    }

    /// Log lines at `level` or above that contain `needle`.
    pub fn logged(&self, needle: &str) -> usize {
        self.logs.iter().filter(|(_, m)| m.contains(needle)).count()
    }

    fn crash_now(&mut self) -> Error {
        self.crashed = true;
        Error::Host("crashed".into())
    }
}

impl<S: Server> Io for FakeIo<S> {
    fn now_ms(&self) -> u64 {
        self.now_ms
    }

    fn sleep(&mut self, duration: Duration) {
        if !duration.is_zero() {
            self.sleeps.push(duration);
            self.now_ms += u64::try_from(duration.as_millis()).unwrap_or(u64::MAX / 2);
        }
    }

    fn send(&mut self, request: Request) -> Result<Response, HttpError> {
        let crashed = || HttpError::new(HttpErrorKind::Connection, "crashed");
        if self.crashed {
            return Err(crashed());
        }
        self.sends_this_run += 1;
        let n = self.sends_this_run;
        let mut sent = Sent {
            url: request.url(),
            request,
            committed: self.committed.clone(),
            at_ms: self.now_ms,
            reached_server: false,
        };
        if self.crash == Some(Crash::BeforeServer(n)) {
            self.requests.push(sent);
            self.crashed = true;
            return Err(crashed());
        }
        sent.reached_server = true;
        let response = self.server.handle_at(&sent.request, self.now_ms);
        self.requests.push(sent);
        self.now_ms += self.request_ms;
        if self.crash == Some(Crash::AfterServer(n)) {
            self.crashed = true;
            return Err(crashed());
        }
        Ok(response)
    }

    fn emit(&mut self, records: Vec<Record>) -> Result<(), Error> {
        if self.crashed {
            return Err(self.crash_now());
        }
        self.pending.extend(records.into_iter().map(Record::into_string));
        Ok(())
    }

    fn commit(&mut self, cursor: &str) -> Result<(), Error> {
        if self.crashed {
            return Err(self.crash_now());
        }
        self.commits_this_run += 1;
        if self.crash == Some(Crash::AtCommit(self.commits_this_run)) {
            return Err(self.crash_now());
        }
        self.delivered.append(&mut self.pending);
        self.committed = Some(cursor.to_string());
        self.commit_log.push(cursor.to_string());
        Ok(())
    }

    fn checkpoint(&self) -> Option<String> {
        self.committed.clone()
    }

    fn log(&mut self, level: Level, message: &str) {
        self.logs.push((level, message.to_string()));
    }

    fn setting(&self, name: &str) -> Option<String> {
        self.settings.get(name).cloned()
    }

    fn secret(&self, name: &str) -> Option<String> {
        self.secrets.get(name).cloned()
    }

    fn source_name(&self) -> String {
        self.source.clone()
    }

    fn random_bytes(&mut self, len: usize) -> Vec<u8> {
        // Deterministic, so tests can assert signatures.
        (0..len)
            .map(|_| {
                self.random_counter += 1;
                (self.random_counter.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8
            })
            .collect()
    }
}

/// Runs `collect` on a fresh fake from `make` once per crash point
/// (every commit, and before and after every request of an uninterrupted
/// run), then to completion, and calls `check` with the fake: the place to
/// assert exactly-once delivery. Returns how many crash points were tried.
///
/// This is the crash-between-every-step test every collector gets for free.
pub fn crash_everywhere<S: Server>(
    make: impl Fn() -> FakeIo<S>,
    collect: impl Fn(&mut FakeIo<S>) -> Result<crate::Summary, Error>,
    check: impl Fn(&FakeIo<S>, Crash),
) -> usize {
    let mut clean = make();
    let _ = clean.run(&collect);
    let commits = clean.commit_log.len();
    let sends = clean.sent();
    let mut crashes = Vec::new();
    crashes.extend((1..=commits).map(Crash::AtCommit));
    crashes.extend((1..=sends).flat_map(|n| [Crash::BeforeServer(n), Crash::AfterServer(n)]));
    for &crash in &crashes {
        let mut io = make();
        io.crash_next_run(crash);
        let _ = io.run(&collect);
        // Recovery: runs until one finishes cleanly (bounded).
        for _ in 0..10 {
            if io.run(&collect).is_ok() {
                break;
            }
        }
        check(&io, crash);
    }
    crashes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server whose answer depends on the time: the status is the
    /// second of the minute the request arrived in.
    struct Clock;

    impl Server for Clock {
        fn handle(&mut self, _: &Request) -> Response {
            unreachable!("FakeIo calls handle_at")
        }

        fn handle_at(&mut self, _: &Request, now_ms: u64) -> Response {
            json(200, &(now_ms / 1_000 % 60).to_string())
        }
    }

    #[test]
    fn time_aware_servers_see_the_fake_clock() {
        let mut io = FakeIo::new(Clock);
        let body = |io: &mut FakeIo<Clock>| io.send(Request::get("https://h/")).map(|r| r.body).unwrap_or_default();
        assert_eq!(body(&mut io), b"0", "START_MS is on a minute boundary");
        io.sleep(Duration::from_secs(61));
        assert_eq!(body(&mut io), b"1", "sleeps (and each request's 40 ms) move the clock the server sees");
    }
}
