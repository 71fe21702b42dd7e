//! `siphon:collector/sink`: records are checked (one JSON object, one line,
//! no configured secret in any form) and queued byte-exact for the next
//! commit; they are never re-serialised, so large integers, key order and
//! non-ASCII text reach the sink unchanged.
//!
//! A batch is read from guest memory one record at a time and charged
//! against `max_pending_size` as it is read (see `imports`), so a list of
//! millions of tiny records costs the host no more than the limit.

use bytesize::ByteSize;
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, WasmList, WasmStr};

use crate::bindings::sink::{Host, SinkError};
use crate::delivery::Delivery;
use crate::imports::HostState;
use crate::limits::{LimitExceeded, RECORD_OVERHEAD};
use crate::secrets::Redactor;

mod object_line;

/// Why `record` cannot be a line of an NDJSON object.
pub fn check_record(record: &str) -> Result<(), String> {
    if !record.starts_with('{') {
        return Err("not a JSON object (must start with `{`)".to_owned());
    }
    object_line::check(record).map_err(|e| match e.what {
        object_line::LINE_BREAK => "spans several lines; emit compact JSON".to_owned(),
        _ => format!("invalid JSON: {e}"),
    })
}

/// What a record containing a secret is refused with.
pub const SECRET_IN_RECORD: &str = "contains a configured secret (as is, percent-encoded, JSON-escaped or base64); \
     records must never carry credentials, so the run fails and nothing it emitted since its last commit is delivered";

/// A batch being read: records accepted so far, appended as NDJSON lines to
/// the pending buffer (taken from the run's delivery, given back at the
/// end: kept when the whole batch is accepted, cut back when it is refused),
/// and what they cost.
struct Batch {
    room: usize,
    limit: usize,
    redactor: Redactor,
    buf: Vec<u8>,
    from: usize,
    records: u64,
    cost: usize,
}

/// Why a batch was refused.
enum Refusal {
    Invalid(u32, String),
    Secret(u32),
    Full,
}

impl Batch {
    /// A batch for `host`, or the answer when the run takes no records.
    fn start(host: &mut HostState) -> Result<Batch, SinkError> {
        if let Some(message) = stopping(host) {
            return Err(SinkError::BufferFull(message));
        }
        let redactor = host.run.redactor.clone();
        let Some(delivery) = host.run.delivery.as_mut() else {
            return Err(SinkError::BufferFull("no sink is available outside `collect`".to_owned()));
        };
        let buf = delivery.take_buffer();
        Ok(Batch {
            room: delivery.room(),
            limit: delivery.limit(),
            redactor,
            from: buf.len(),
            buf,
            records: 0,
            cost: 0,
        })
    }

    fn add(&mut self, index: usize, record: &str) -> Result<(), Refusal> {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        let cost = Delivery::cost(record.len());
        if self.cost + cost > self.room {
            return Err(Refusal::Full);
        }
        check_record(record).map_err(|reason| Refusal::Invalid(index, reason))?;
        if self.redactor.leaks(record) {
            return Err(Refusal::Secret(index));
        }
        self.cost += cost;
        self.records += 1;
        self.buf.extend_from_slice(record.as_bytes());
        self.buf.push(b'\n');
        Ok(())
    }

    /// Give the pending buffer back without the batch (reading it trapped).
    fn abandon(self, host: &mut HostState) {
        if let Some(delivery) = host.run.delivery.as_mut() {
            delivery.refuse(self.buf, self.from);
        }
    }

    /// Queue the batch, or apply the refusal.
    fn finish(self, host: &mut HostState, outcome: Result<(), Refusal>) -> Result<(), SinkError> {
        let Some(delivery) = host.run.delivery.as_mut() else {
            return Err(SinkError::BufferFull("no sink is available outside `collect`".to_owned()));
        };
        let refusal = match outcome {
            Ok(()) => {
                delivery
                    .accept(self.buf, self.from, self.cost)
                    .map_err(|full| SinkError::BufferFull(full.to_string()))?;
                host.run.records_emitted += self.records;
                return Ok(());
            }
            Err(refusal) => {
                delivery.refuse(self.buf, self.from);
                refusal
            }
        };
        match refusal {
            Refusal::Invalid(index, reason) => Err(SinkError::InvalidRecord((index, reason))),
            Refusal::Secret(index) => {
                tracing::error!(
                    record = index,
                    "Collector emitted a record containing a configured secret; \
                    failing the run and discarding its uncommitted records"
                );
                host.run.secret_in_record = Some(format!("record {index} of a batch {SECRET_IN_RECORD}"));
                if let Some(d) = host.run.delivery.as_mut() {
                    d.discard_pending();
                }
                host.budget.stop();
                Err(SinkError::InvalidRecord((index, SECRET_IN_RECORD.to_owned())))
            }
            Refusal::Full => {
                let e = host.budget.exceed(LimitExceeded::new(
                    "max_pending_size",
                    ByteSize::b(self.limit as u64),
                    format!(
                        "the collector emitted more records than fit without a commit (each counted as its \
                         length plus {RECORD_OVERHEAD} bytes of bookkeeping)"
                    ),
                ));
                Err(SinkError::BufferFull(e.to_string()))
            }
        }
    }
}

/// Why the run takes no more records or commits, if it is stopping.
pub fn stopping(host: &HostState) -> Option<String> {
    if let Some(message) = &host.run.secret_in_record {
        return Some(format!("the run is failing: {message}"));
    }
    host.budget.exceeded().map(|e| format!("the run is stopping: {e}"))
}

/// `emit` reading the batch lazily: each record is copied out of guest
/// memory only once the ones before it fit.
fn emit_lazy(
    store: &mut StoreContextMut<'_, HostState>,
    list: &WasmList<WasmStr>,
) -> wasmtime::Result<Result<(), SinkError>> {
    let mut batch = match Batch::start(store.data_mut()) {
        Ok(b) => b,
        Err(e) => return Ok(Err(e)),
    };
    let mut outcome = Ok(());
    let mut trap = None;
    for index in 0..list.len() {
        let Some(record) = list.get(&mut *store, index) else { break };
        let text = match record.and_then(|r| r.to_str(&*store).map(|t| batch.add(index, &t))) {
            Ok(added) => added,
            Err(e) => {
                trap = Some(e);
                break;
            }
        };
        if let Err(refusal) = text {
            outcome = Err(refusal);
            break;
        }
    }
    // The batch gives the pending buffer back however the loop ended.
    if let Some(e) = trap {
        batch.abandon(store.data_mut());
        return Err(e);
    }
    Ok(batch.finish(store.data_mut(), outcome))
}

/// Link the lazy `emit` over the generated one.
pub(super) fn add_lazy_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.instance("siphon:collector/sink@0.1.0")?.func_wrap(
        "emit",
        |mut store: StoreContextMut<'_, HostState>, (records,): (WasmList<WasmStr>,)| {
            Ok((emit_lazy(&mut store, &records)?,))
        },
    )
}

impl Host for HostState {
    async fn emit(&mut self, records: Vec<String>) -> wasmtime::Result<Result<(), SinkError>> {
        let mut batch = match Batch::start(self) {
            Ok(b) => b,
            Err(e) => return Ok(Err(e)),
        };
        let outcome = records.iter().enumerate().try_for_each(|(i, r)| batch.add(i, r));
        Ok(batch.finish(self, outcome))
    }
}

#[cfg(test)]
mod tests {
    use super::check_record;

    #[test]
    fn records_must_be_single_line_objects() {
        assert!(check_record(r#"{"id":18446744073709551617,"u":"josé"}"#).is_ok());
        assert!(check_record("[1]").unwrap_err().contains("object"));
        assert!(check_record("{\"a\":\n1}").unwrap_err().contains("lines"));
        assert!(check_record(r#"{"a":}"#).unwrap_err().contains("invalid JSON"));
        assert!(check_record(r#"{"a":1} {"b":2}"#).is_err(), "one object per record");
    }
}
