//! The commit protocol that ties records in the sink to the cursor in state,
//! so that a crash at any instant repeats work but never skips or duplicates
//! a record.
//!
//! ```text
//!            commit(cursor C1, records R)
//!  state {cursor C0} ──1──▶ state {cursor C0, pending {objects O1..On, cursor C1}}
//!                     ──2──▶ objects O1..On created in the sink (create-only, in order)
//!                     ──3──▶ state {cursor C1}
//!
//!  recovery, when a run opens a state that still has `pending`:
//!    every Oi exists  ──▶ state {cursor C1}            (the commit had finished step 2)
//!    some Oi missing  ──▶ claim the first missing Oi,   (the records are fetched again
//!                          delete the Oi that exist,      from C0 by the next run)
//!                          state {cursor C0}
//! ```
//!
//! Object names are fixed before step 1 and recorded in the intent, which
//! makes the existence check exact. Every state write is conditional on the
//! generation read, so a second writer is detected instead of overwritten.
//!
//! The claim covers a writer that is not dead but still uploading: a second
//! process on the same source opening the state mid-commit. Without it, the
//! writer's remaining objects would land after the undo and stay in the sink
//! while their records are fetched again — duplicates (and, had the writer
//! finished first, the deletes would remove records its cursor counts as
//! delivered). The claim creates the first missing object *without records*,
//! create-only; the writer uploads in order, so its create of that name
//! fails and it can never complete the commit: it removes what it uploaded
//! and reports a conflict, leaving the state to the claimer. A claim (an
//! empty `.ndjson`, or a gzip stream of nothing) never counts as existing; the claim stays in the
//! sink (removing it would let a slow writer through).
//!
//! A writer whose upload reports an error claims that name the same way
//! before undoing anything: the upload may have landed (a timeout after the
//! server stored it), and a process recovering the commit meanwhile may
//! have counted it. The first create of a name decides for everyone, so the
//! writer removes objects only when no one can commit them, and goes on
//! with the commit when its upload did land.

mod pending;

use std::sync::Arc;

use chrono::{DateTime, Utc};

pub use pending::{Objects, Pending};

use crate::lease::Lease;
use crate::sink::{Layout, Sink, SinkError};
use crate::state::{Generation, PendingCommit, STATE_VERSION, SourceState, StateError, StateStore};

/// Why a commit (or opening the state) failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The state store failed or another writer got there first.
    #[error(transparent)]
    State(#[from] StateError),
    /// The sink failed.
    #[error("sink ({location}): {error}")]
    Sink {
        /// The sink's description.
        location: String,
        /// What failed.
        error: SinkError,
    },
    /// Records could not be encoded.
    #[error("cannot encode records: {0}")]
    Encode(#[from] std::io::Error),
    /// Another live run holds the source (see `lease`); nothing was touched.
    #[error(
        "source `{source_name}` is busy: run {} on host {} (pid {}) holds it until {}; only one run may collect \
         a source at a time (is a second siphon running on it?)",
        held.run_id, held.host, held.pid, held.until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )]
    Busy {
        /// Source name.
        source_name: String,
        /// The lease found.
        held: Lease,
    },
    /// Another run took the source at the same moment as this one: both
    /// read the state, the other's write came first. Nothing was touched.
    #[error(
        "source `{source_name}` is busy: another run took it at the same moment; only one run may collect a \
         source at a time (is a second siphon running on it?)"
    )]
    BusyRace {
        /// Source name.
        source_name: String,
    },
}

/// Records wait here between `emit` and `commit`.
#[derive(Debug, thiserror::Error)]
#[error(
    "{pending} bytes of records (each counted with {} bytes of bookkeeping) are waiting for a commit; \
     the limit is {limit} (limits.max_pending_size)",
    crate::limits::RECORD_OVERHEAD
)]
pub struct BufferFull {
    /// Bytes already buffered.
    pub pending: usize,
    /// The limit.
    pub limit: usize,
}

/// What delivery did during a run.
#[derive(Debug, Clone, Default)]
pub struct DeliveryStats {
    /// Records durably in the sink.
    pub records: u64,
    /// Objects written, in order.
    pub objects: Vec<String>,
    /// Bytes written (as stored).
    pub bytes: u64,
    /// Commits that changed the state.
    pub commits: u32,
}

/// One run's view of a source's sink and state.
pub struct Delivery {
    source: String,
    sink: Arc<dyn Sink>,
    state: Arc<dyn StateStore>,
    layout: Layout,
    started: DateTime<Utc>,
    seq: u32,
    current: SourceState,
    generation: Option<Generation>,
    pending: Pending,
    /// What the pending records are charged against `max_pending`.
    pending_bytes: usize,
    max_pending: usize,
    stats: DeliveryStats,
}

impl Delivery {
    /// Load the source's state and take its lease for this run (`lease`;
    /// fails with [`DeliveryError::Busy`] while another live run holds it),
    /// finishing or undoing an interrupted commit.
    pub async fn open(
        source: &str,
        sink: Arc<dyn Sink>,
        state: Arc<dyn StateStore>,
        layout: Layout,
        started: DateTime<Utc>,
        max_pending: usize,
        lease: Lease,
    ) -> Result<Delivery, DeliveryError> {
        let stored = state.load(source).await?;
        let (current, generation) = match stored {
            Some(s) => (s.state, Some(s.generation)),
            None => (SourceState { version: STATE_VERSION, ..Default::default() }, None),
        };
        // Object names carry the run's start to the millisecond and must
        // never repeat. A run that does not start after the last state write
        // (another process that started in the same millisecond, or a clock
        // that went back) names its objects just after that write. A writer
        // this run has not seen cannot collide with it: that writer's state
        // writes change the generation, so this run's first write fails
        // before it uploads anything.
        let started = match current.updated_at {
            Some(last) if last >= started => last + chrono::TimeDelta::milliseconds(1),
            _ => started,
        };
        let mut delivery = Delivery {
            source: source.to_owned(),
            sink,
            state,
            layout: layout.clone(),
            started,
            seq: 0,
            current,
            generation,
            pending: layout.pending(crate::limits::SPOOL_FROM),
            pending_bytes: 0,
            max_pending,
            stats: DeliveryStats::default(),
        };
        if let Some(held) = &delivery.current.lease
            && held.excludes(&lease, Utc::now())
        {
            return Err(DeliveryError::Busy { source_name: source.to_owned(), held: held.clone() });
        }
        delivery.current.lease = Some(lease.clone());
        let taken = match delivery.current.pending.clone() {
            Some(intent) => delivery.recover(intent).await,
            None => {
                let next = delivery.current.clone();
                delivery.store(next).await
            }
        };
        match taken {
            Ok(()) => Ok(delivery),
            // The first write takes the lease. Losing it to a write made
            // since the read is the busy case, not a broken checkpoint: say
            // who holds the source when the state tells.
            Err(DeliveryError::State(StateError::Conflict { .. })) => {
                let held = match delivery.state.load(source).await {
                    Ok(Some(now)) => now.state.lease.filter(|held| held.excludes(&lease, Utc::now())),
                    _ => None,
                };
                Err(match held {
                    Some(held) => DeliveryError::Busy { source_name: source.to_owned(), held },
                    None => DeliveryError::BusyRace { source_name: source.to_owned() },
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Give up this run's lease, best effort (an expired or orphaned lease
    /// does not block later runs; see `lease`).
    pub async fn release(&mut self) {
        let mut next = self.current.clone();
        next.lease = None;
        match self.store(next).await {
            Ok(()) => {}
            // Another run wrote the state since: the lease is not ours any more.
            Err(DeliveryError::State(StateError::Conflict { .. })) => {}
            Err(e) => tracing::warn!(source = %self.source, error = %e,
                "Cannot release the run's lease; it ends by itself"),
        }
    }

    async fn recover(&mut self, intent: PendingCommit) -> Result<(), DeliveryError> {
        let mut present = Vec::with_capacity(intent.objects.len());
        for name in &intent.objects {
            present.push(self.sink.exists(name).await.map_err(|e| self.sink_error(e))?);
        }
        let mut next = self.current.clone();
        next.pending = None;
        match self.claim_first_missing(&intent.objects, &mut present).await? {
            None => {
                tracing::info!(source = %self.source, objects = intent.objects.len(), records = intent.records,
                    "Recovered an interrupted commit: its objects are in the sink, committing its cursor");
                crate::telemetry::commit_recovered(&self.source, "adopted");
                next.cursor = intent.cursor;
            }
            Some(claimed) => {
                let found = present.iter().filter(|p| **p).count();
                for (name, there) in intent.objects.iter().zip(&present) {
                    if *there {
                        self.sink.delete(name).await.map_err(|e| self.sink_error(e))?;
                    }
                }
                tracing::warn!(source = %self.source, objects = intent.objects.len(), found, records = intent.records,
                    claimed = %claimed,
                    "Undid an interrupted commit: not all of its objects were written; its records will be fetched again");
                crate::telemetry::commit_recovered(&self.source, "undone");
            }
        }
        self.write(next).await
    }

    /// Claim the first of `objects` that is not `present`, so that a
    /// writer still uploading them cannot complete its commit (see the module
    /// docs). Returns the claimed name, or `None` when every object turns out
    /// to be there (uploads that landed meanwhile are marked `present`).
    async fn claim_first_missing(
        &self,
        objects: &[String],
        present: &mut [bool],
    ) -> Result<Option<String>, DeliveryError> {
        for (name, there) in objects.iter().zip(present.iter_mut()) {
            if *there {
                continue;
            }
            if !self.claim(name).await? {
                return Ok(Some(name.clone()));
            }
            *there = true;
        }
        Ok(None)
    }

    /// Create `name` without records, create-only. Returns whether the object holds
    /// data after all (its upload landed first); otherwise it is now claimed,
    /// by this run or an earlier one (a claim is never taken for data). The
    /// first create of a name decides, so every process that asks gets the
    /// same answer.
    async fn claim(&self, name: &str) -> Result<bool, DeliveryError> {
        // No records, encoded as the layout's objects are (a `.ndjson.gz`
        // claim is a valid gzip stream of nothing).
        let claim = self.layout.encode(&[])?;
        match self.sink.create(name, &claim).await {
            Ok(()) => Ok(false),
            Err(SinkError::AlreadyExists(_)) => self.sink.exists(name).await.map_err(|e| self.sink_error(e)),
            Err(e) => Err(self.sink_error(e)),
        }
    }

    /// The committed cursor.
    pub fn cursor(&self) -> Option<&str> {
        self.current.cursor.as_deref()
    }

    /// What was delivered so far.
    pub fn stats(&self) -> &DeliveryStats {
        &self.stats
    }

    /// Records waiting for the next commit.
    pub fn pending_records(&self) -> usize {
        self.pending.records()
    }

    /// Bytes of pending records held in memory (the rest is spooled).
    pub fn pending_in_memory(&self) -> usize {
        self.pending.in_memory()
    }

    /// Bytes of records (as [`Delivery::push`] counts them) that still fit.
    pub fn room(&self) -> usize {
        self.max_pending.saturating_sub(self.pending_bytes)
    }

    /// `max_pending_size` in bytes.
    pub fn limit(&self) -> usize {
        self.max_pending
    }

    /// What queuing records of these lengths costs against the limit: each
    /// is counted as its line plus [`RECORD_OVERHEAD`](crate::limits::RECORD_OVERHEAD),
    /// so tiny records cannot hold many times the limit.
    pub fn cost(len: usize) -> usize {
        len + 1 + crate::limits::RECORD_OVERHEAD
    }

    /// The pending buffer, for a batch of validated records to append whole
    /// lines to; give it back with [`Delivery::accept`] or [`Delivery::refuse`].
    pub fn take_buffer(&mut self) -> Vec<u8> {
        self.pending.take_buffer()
    }

    /// Take back the buffer with the lines appended after byte `from`,
    /// which cost `cost` ([`Delivery::cost`] each) and must fit in
    /// [`Delivery::room`]. They are queued for the next commit (spooled to a
    /// file when they grow large; see `pending`).
    pub fn accept(&mut self, buf: Vec<u8>, from: usize, cost: usize) -> Result<(), BufferFull> {
        if self.pending_bytes + cost > self.max_pending {
            self.pending.refuse(buf, from);
            return Err(BufferFull { pending: self.pending_bytes, limit: self.max_pending });
        }
        if let Err(e) = self.pending.accept(buf, from) {
            // A spool that cannot be written keeps the records in memory,
            // which the limit bounds all the same.
            tracing::warn!(source = %self.source, error = %e,
                "Cannot spool pending records to a temporary file; keeping them in memory");
        }
        self.pending_bytes += cost;
        Ok(())
    }

    /// Take back the buffer, dropping what was appended after byte `from`.
    pub fn refuse(&mut self, buf: Vec<u8>, from: usize) {
        self.pending.refuse(buf, from);
    }

    /// Queue validated records for the next commit (see [`Delivery::accept`]).
    pub fn push(&mut self, records: Vec<String>) -> Result<(), BufferFull> {
        let cost = records.iter().map(|r| Self::cost(r.len())).sum();
        let mut buf = self.take_buffer();
        let from = buf.len();
        for r in &records {
            buf.extend_from_slice(r.as_bytes());
            buf.push(b'\n');
        }
        self.accept(buf, from, cost)
    }

    /// Drop records that were never committed (the run failed).
    pub fn discard_pending(&mut self) -> usize {
        let n = self.pending.records();
        self.pending = self.layout.pending(crate::limits::SPOOL_FROM);
        self.pending_bytes = 0;
        n
    }

    /// Deliver pending records, then make `cursor` the committed cursor
    /// (`None` keeps the current one). Returns the objects written.
    pub async fn commit(&mut self, cursor: Option<String>) -> Result<Vec<String>, DeliveryError> {
        let fresh = self.layout.pending(crate::limits::SPOOL_FROM);
        let pending = std::mem::replace(&mut self.pending, fresh);
        self.pending_bytes = 0;
        let records = pending.records();
        let asked = cursor.is_some();
        let cursor = cursor.or_else(|| self.current.cursor.clone());
        if records == 0 {
            // A commit the collector asks for is written even when its cursor
            // did not change: that conditional write is what tells the
            // collector the source is still its own (a consume-once collector
            // commits before each request; see `checkpoint.wit`).
            if asked || cursor != self.current.cursor {
                let mut next = self.current.clone();
                next.cursor = cursor;
                self.write(next).await?;
            }
            return Ok(Vec::new());
        }

        let objects = pending.into_objects();
        let names: Vec<String> = (0..objects.len())
            .map(|_| {
                let name = self.layout.object_name(self.started, self.seq);
                self.seq += 1;
                name
            })
            .collect();

        // Step 1: the intent.
        let mut intent = self.current.clone();
        intent.pending =
            Some(PendingCommit { objects: names.clone(), cursor: cursor.clone(), records: records as u64 });
        self.write(intent).await?;

        // Step 2: the objects.
        let mut bytes = 0u64;
        for (i, name) in names.iter().enumerate() {
            let result = match objects.get(i).and_then(|(ndjson, n)| self.layout.encode_ndjson(ndjson, n)) {
                Ok(object) => {
                    bytes += object.body.len() as u64;
                    self.sink.create(name, &object).await.map_err(|e| self.sink_error(e))
                }
                Err(e) => Err(DeliveryError::Encode(e)),
            };
            let Err(e) = result else { continue };
            // This run's names are its own, so one that exists already was
            // claimed by another process recovering this very commit (see
            // `recover`): that process owns the source now. The claim is not
            // ours to remove, nor is the state to clear.
            if let DeliveryError::Sink { error: SinkError::AlreadyExists(object), .. } = &e {
                let detail = format!("{object} was claimed by a run recovering this commit");
                self.roll_back(&names[..i], false).await;
                return Err(StateError::Conflict { source_name: self.source.clone(), detail }.into());
            }
            // The failed upload may have landed anyway (a timeout after the
            // server stored it). Claiming its name settles which: a process
            // recovering this commit meanwhile reaches the same verdict, so
            // objects are removed only when no one can commit them.
            match self.claim(name).await {
                Ok(true) => {
                    tracing::info!(source = %self.source, object = %name, error = %e,
                        "An upload that reported an error is in the sink; the commit goes on");
                }
                Ok(false) => {
                    self.roll_back(&names[..i], true).await;
                    return Err(e);
                }
                Err(claim_error) => {
                    tracing::warn!(source = %self.source, object = %name, error = %claim_error,
                        "Cannot settle a failed upload; the next run will");
                    return Err(e);
                }
            }
        }

        // Step 3: the cursor.
        let mut done = self.current.clone();
        done.pending = None;
        done.cursor = cursor;
        self.write(done).await?;

        self.stats.records += records as u64;
        self.stats.bytes += bytes;
        self.stats.objects.extend(names.iter().cloned());
        crate::telemetry::delivered(&self.source, records as u64, names.len() as u64, bytes);
        for name in &names {
            tracing::debug!(source = %self.source, object = %name, "Wrote object");
        }
        Ok(names)
    }

    /// Undo a commit that failed in step 2, best effort: remove every object
    /// that may exist (deleting a missing one is a no-op), then clear the
    /// intent if `clear_intent`. Whatever is not undone here stays recorded in
    /// the intent and is undone by the next run's recovery.
    async fn roll_back(&mut self, attempted: &[String], clear_intent: bool) {
        for name in attempted {
            if let Err(e) = self.sink.delete(name).await {
                tracing::warn!(source = %self.source, object = %name, error = %e,
                    "Cannot remove an object of a failed commit; the next run will");
                return;
            }
        }
        if !clear_intent {
            return;
        }
        let mut next = self.current.clone();
        next.pending = None;
        if let Err(e) = self.write(next).await {
            tracing::warn!(source = %self.source, error = %e, "Cannot clear a failed commit; the next run will");
        }
    }

    /// Write a state that changes the cursor or the intent: a commit.
    async fn write(&mut self, next: SourceState) -> Result<(), DeliveryError> {
        self.store(next).await?;
        self.stats.commits += 1;
        Ok(())
    }

    /// Write `next`, conditional on the generation this run last read or wrote.
    async fn store(&mut self, mut next: SourceState) -> Result<(), DeliveryError> {
        next.version = STATE_VERSION;
        next.updated_at = Some(Utc::now());
        let generation = self.state.store(&self.source, &next, self.generation).await?;
        self.generation = Some(generation);
        self.current = next;
        Ok(())
    }

    fn sink_error(&self, error: SinkError) -> DeliveryError {
        DeliveryError::Sink { location: self.sink.describe(), error }
    }
}

#[cfg(test)]
mod tests;
