//! One collection run: each configured alert type in turn, page by page, with
//! the crash-safe commit protocol of `cursor.rs`, `wait_time` and rate-limit
//! pacing, in-run dedup and the run summary.
//!
//! The run talks to the world only through [`Env`], so the whole protocol,
//! including crashes between its steps, is unit-tested natively against a
//! simulated iterator (see the tests below). `lib.rs` implements `Env` over
//! the siphon SDK.

use std::collections::BTreeSet;

use siphon_sdk::http::Response;
use siphon_sdk::log::Level;
use siphon_sdk::{Error, Record, Summary};

use crate::api::{self, Page, Reply};
use crate::cursor::{Cursor, Op, TypeState, choose_op};
use crate::settings::Settings;

/// Times a 429 that outlasted the host's own retries is retried here.
const RATE_LIMIT_RETRIES: u32 = 3;

/// What a run needs from the outside world.
pub trait Env {
    /// Wall-clock time, epoch milliseconds.
    fn now_ms(&self) -> u64;
    /// Blocks for `ms` milliseconds.
    fn sleep_ms(&mut self, ms: u64);
    /// Sends `op` for `alert_type`; `Err` only when no response arrived.
    fn fetch(&mut self, alert_type: &str, op: Op) -> Result<Response, Error>;
    /// Queues records for the next commit.
    fn emit(&mut self, records: Vec<Record>) -> Result<(), Error>;
    /// Delivers queued records, then commits `cursor`.
    fn commit(&mut self, cursor: &str) -> Result<(), Error>;
    /// Writes to the host log.
    fn log(&mut self, level: Level, message: &str);
}

/// How an alert type's part of the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// An empty or short page: nothing more now.
    CaughtUp,
    /// `max_pages_per_run` fetches made; more data may be waiting.
    PageLimit,
    /// Netskope (`wait_time`) asked for a pause longer than `max_wait_seconds`.
    Waiting { seconds: u64 },
}

/// A response the page loop acts on (429s are handled inside `fetch`).
enum Fetched {
    Page(Page),
    Empty { wait_time: u64 },
}

/// Counters of one alert type in this run.
#[derive(Debug, Default)]
struct Tally {
    pages: u32,
    records: u64,
    duplicates: u64,
}

/// Runs every configured alert type in order, starting from `cursor`.
///
/// An error ends the run at once: pages of earlier types (and earlier pages of
/// the failing type) are already committed.
pub fn run(env: &mut impl Env, settings: &Settings, cursor: Cursor) -> Result<Summary, Error> {
    let mut run = Run { env, settings, cursor, seen: BTreeSet::new(), pause_until_ms: 0, last_status: None };
    let mut summary = Summary { caught_up: true, ..Summary::default() };
    let mut notes = Vec::with_capacity(settings.alert_types.len());
    for alert_type in &settings.alert_types {
        let mut tally = Tally::default();
        let outcome = run.collect_type(alert_type, &mut tally)?;
        summary.pages += tally.pages;
        summary.duplicates += tally.duplicates;
        // Waiting counts as caught up: Netskope said there is nothing to take now.
        summary.caught_up &= outcome != Outcome::PageLimit;
        notes.push(describe(alert_type, &tally, outcome));
    }
    summary.note = Some(notes.join("; "));
    Ok(summary)
}

fn describe(alert_type: &str, tally: &Tally, outcome: Outcome) -> String {
    let mut s = format!("{alert_type}: ");
    if tally.pages > 0 {
        let plural = if tally.pages == 1 { "" } else { "s" };
        s.push_str(&format!("{} page{plural}, {} alerts, ", tally.pages, tally.records));
    }
    match outcome {
        Outcome::CaughtUp => s.push_str("caught up"),
        Outcome::PageLimit => s.push_str("page limit reached, more waiting"),
        Outcome::Waiting { seconds } => s.push_str(&format!("waiting {seconds}s (wait_time)")),
    }
    s
}

struct Run<'a, E: Env> {
    env: &'a mut E,
    settings: &'a Settings,
    cursor: Cursor,
    /// Dedup keys of records emitted in this run.
    seen: BTreeSet<u128>,
    /// Epoch ms before which no request is sent (`ratelimit-remaining: 0`).
    pause_until_ms: u64,
    /// HTTP status of the last response, to tell a refusal (the iterator did
    /// not move) from a failure after Netskope may have served the page.
    last_status: Option<u16>,
}

impl<E: Env> Run<'_, E> {
    fn collect_type(&mut self, alert_type: &str, tally: &mut Tally) -> Result<Outcome, Error> {
        let max_wait_ms = self.settings.max_wait_seconds.saturating_mul(1_000);
        for _ in 0..self.settings.max_pages_per_run {
            // Honour the previous response's wait_time, within this run or across runs.
            if let Some(not_before) = self.cursor.types.get(alert_type).and_then(|s| s.not_before_ms) {
                let remaining = not_before.saturating_sub(self.env.now_ms());
                if remaining > max_wait_ms {
                    return Ok(Outcome::Waiting { seconds: remaining.div_ceil(1_000) });
                }
                self.env.sleep_ms(remaining);
            }

            let op =
                choose_op(self.cursor.types.get(alert_type), self.env.now_ms() / 1_000, self.settings.lookback_hours);
            // Record the operation before sending it: if the run dies before
            // the delivery commit below, the next run knows a page may have
            // been consumed and asks for it again. No records are pending
            // here, so this commit writes only the cursor.
            let before = self.cursor.types.get(alert_type).cloned();
            self.state(alert_type).inflight = Some(op);
            self.commit()?;

            self.last_status = None;
            let fetched = match self.fetch(alert_type, op) {
                Ok(fetched) => fetched,
                Err(error) => {
                    // A 4xx answer (401/403, 404, 409, exhausted 429s) refused
                    // the request, so the iterator did not move: put the
                    // cursor back as it was. After a 5xx (a gateway may have
                    // timed out after the backend served the page), a
                    // transport error or an unreadable 2xx page, a page may
                    // have been consumed, so `inflight` stays and the next run
                    // asks with `resend`, which is safe either way.
                    if self.last_status.is_some_and(|s| (400..500).contains(&s)) {
                        match before {
                            Some(state) => self.cursor.types.insert(alert_type.to_owned(), state),
                            None => self.cursor.types.remove(alert_type),
                        };
                        self.commit()?;
                    }
                    return Err(error);
                }
            };
            let now_ms = self.env.now_ms();
            let page = match fetched {
                Fetched::Page(page) => page,
                Fetched::Empty { wait_time } => {
                    let state = self.state(alert_type);
                    state.inflight = None;
                    state.not_before_ms = not_before(now_ms, wait_time);
                    self.commit()?;
                    return Ok(Outcome::CaughtUp);
                }
            };

            for why in &page.rejected {
                self.env.log(Level::Warn, &format!("{alert_type}: skipped a record that is not a JSON object: {why}"));
            }
            let already_delivered = op == Op::Resend
                && self.cursor.types.get(alert_type).and_then(|s| s.last_page.as_ref()) == Some(&page.fingerprint);
            if already_delivered {
                // The previous run died after committing `inflight` but before
                // its request consumed a page, so `resend` returned the page it
                // had delivered already.
                let count = page.entries.len() as u64;
                tally.duplicates += count;
                self.env.log(
                    Level::Info,
                    &format!("{alert_type}: resend returned the last delivered page again; skipped {count} duplicates"),
                );
                let state = self.state(alert_type);
                state.inflight = None;
                state.not_before_ms = not_before(now_ms, page.wait_time);
                self.commit()?;
                continue;
            }

            let mut records = Vec::with_capacity(page.entries.len());
            for entry in page.entries {
                if self.seen.insert(api::dedup_key(&entry.key)) {
                    records.push(entry.record);
                } else {
                    tally.duplicates += 1;
                }
            }
            let delivered = records.len() as u64;
            self.env.emit(records)?;
            let state = self.state(alert_type);
            state.inflight = None;
            state.last_page = Some(page.fingerprint);
            state.last_ts = match (state.last_ts, page.max_timestamp) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            state.not_before_ms = not_before(now_ms, page.wait_time);
            // Delivers the page and moves the cursor past it, atomically.
            self.commit()?;
            tally.pages += 1;
            tally.records += delivered;
            self.env.log(
                Level::Info,
                &format!("{alert_type}: operation={op} delivered {delivered} alerts, wait_time={}s", page.wait_time),
            );
            if page.returned < self.settings.full_page {
                return Ok(Outcome::CaughtUp);
            }
        }
        Ok(Outcome::PageLimit)
    }

    /// Sends `op`, pacing by the rate-limit headers and retrying 429s.
    fn fetch(&mut self, alert_type: &str, op: Op) -> Result<Fetched, Error> {
        let max_wait_ms = self.settings.max_wait_seconds.saturating_mul(1_000);
        let mut retries = 0;
        loop {
            let pause = self.pause_until_ms.saturating_sub(self.env.now_ms());
            self.env.sleep_ms(pause.min(max_wait_ms));

            let response = self.env.fetch(alert_type, op)?;
            self.last_status = Some(response.status);
            if let Some(secs) = api::rate_limit_pause(&response) {
                self.pause_until_ms = self.env.now_ms().saturating_add(secs.saturating_mul(1_000));
            }
            match api::classify(alert_type, &self.settings.index, &response)? {
                Reply::RateLimited { retry_after } => {
                    if retries == RATE_LIMIT_RETRIES {
                        return Err(Error::RateLimited(format!(
                            "alert type `{alert_type}`: Netskope kept answering HTTP 429 after {} attempts",
                            retries + 1
                        )));
                    }
                    retries += 1;
                    // The rate limit's own hint, else exponential: 2, 4, 8 s.
                    let wait_s = retry_after.unwrap_or(1 << retries);
                    self.env.log(
                        Level::Warn,
                        &format!("{alert_type}: HTTP 429, retry {retries}/{RATE_LIMIT_RETRIES} in {wait_s}s"),
                    );
                    self.env.sleep_ms(wait_s.saturating_mul(1_000).min(max_wait_ms));
                    // The sleep above already honours this response's reset.
                    self.pause_until_ms = 0;
                }
                Reply::Page(page) => return Ok(Fetched::Page(page)),
                Reply::Empty { wait_time } => return Ok(Fetched::Empty { wait_time }),
            }
        }
    }

    fn state(&mut self, alert_type: &str) -> &mut TypeState {
        self.cursor.types.entry(alert_type.to_string()).or_default()
    }

    fn commit(&mut self) -> Result<(), Error> {
        let text = self.cursor.to_json()?;
        self.env.commit(&text)
    }
}

/// The epoch ms before which the next call must not be made, for a response
/// received at `now_ms` with `wait_time` seconds.
fn not_before(now_ms: u64, wait_time: u64) -> Option<u64> {
    (wait_time > 0).then(|| now_ms.saturating_add(wait_time.saturating_mul(1_000)))
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
