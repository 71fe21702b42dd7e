//! The I/O seam of a collector run.
//!
//! Everything a run does to the outside world goes through [`Io`]: the clock,
//! sleeping, HTTP, emitting records, committing the cursor, logging, and
//! reading the source's configuration. [`HostIo`] is the real thing inside a
//! component; [`crate::testing::FakeIo`] is a scripted host for native tests,
//! with crash injection between any two steps. Vendor code written against
//! `&mut dyn Io` is therefore tested natively, protocol and all.

use std::time::Duration;

use crate::http::{HttpError, Request, Response};
use crate::log::Level;
use crate::{Error, Record, checkpoint, config, sink, sys, time};

/// What a collector run needs from its host.
pub trait Io {
    /// Wall-clock time, epoch milliseconds (UTC).
    fn now_ms(&self) -> u64;
    /// Blocks the run for `duration`.
    fn sleep(&mut self, duration: Duration);
    /// Sends `request`; `Err` only when no response arrived.
    fn send(&mut self, request: Request) -> Result<Response, HttpError>;
    /// Queues records for delivery at the next [`Io::commit`].
    fn emit(&mut self, records: Vec<Record>) -> Result<(), Error>;
    /// Delivers queued records, then makes `cursor` the committed cursor.
    fn commit(&mut self, cursor: &str) -> Result<(), Error>;
    /// The committed cursor, or none before the first commit.
    fn checkpoint(&self) -> Option<String>;
    /// Writes to the host log (secrets are redacted by the host).
    fn log(&mut self, level: Level, message: &str);
    /// A setting of the source, as text.
    fn setting(&self, name: &str) -> Option<String>;
    /// A secret of the source.
    fn secret(&self, name: &str) -> Option<String>;
    /// The source's name.
    fn source_name(&self) -> String;
    /// `len` cryptographically secure random bytes (`wasi:random`).
    fn random_bytes(&mut self, len: usize) -> Vec<u8>;
}

/// [`Io`] over the siphon host imports.
#[derive(Debug, Default, Clone, Copy)]
pub struct HostIo;

impl Io for HostIo {
    fn now_ms(&self) -> u64 {
        time::now_millis()
    }

    fn sleep(&mut self, duration: Duration) {
        time::sleep(duration);
    }

    fn send(&mut self, request: Request) -> Result<Response, HttpError> {
        request.send()
    }

    fn emit(&mut self, records: Vec<Record>) -> Result<(), Error> {
        sink::emit(records)
    }

    fn commit(&mut self, cursor: &str) -> Result<(), Error> {
        checkpoint::commit(cursor).map(drop)
    }

    fn checkpoint(&self) -> Option<String> {
        checkpoint::load()
    }

    fn log(&mut self, level: Level, message: &str) {
        crate::log::log(level, message);
    }

    fn setting(&self, name: &str) -> Option<String> {
        config::setting(name)
    }

    fn secret(&self, name: &str) -> Option<String> {
        config::secret(name)
    }

    fn source_name(&self) -> String {
        config::source_name()
    }

    fn random_bytes(&mut self, len: usize) -> Vec<u8> {
        sys::random_bytes(len)
    }
}
