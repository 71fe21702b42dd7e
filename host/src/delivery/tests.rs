//! The commit protocol under failures: a sink that fails on demand, states
//! left behind by interrupted commits, and a second writer.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use chrono::TimeZone;

use super::*;
use crate::config::{SinkSettings, SinkTarget};
use crate::lease::Lease;
use crate::sink::memory::MemorySink;
use crate::sink::{Object, Sink, SinkError};
use crate::state::memory::MemoryStateStore;

/// What a [`Hooked`] sink does with one `create`.
enum Upload {
    Store,
    /// Fail without storing.
    Refuse,
    /// Store, then report a failure (a timeout after the server stored it).
    StoreThenFail,
}

/// A memory sink whose `create` asks `hook` (the call's number from 0, and
/// the object) what to do.
struct Hooked<F> {
    inner: MemorySink,
    calls: AtomicUsize,
    hook: F,
}

fn hooked(inner: &MemorySink, hook: impl Fn(usize, &Object) -> Upload + Send + Sync + 'static) -> Arc<dyn Sink> {
    Arc::new(Hooked { inner: inner.clone(), calls: AtomicUsize::new(0), hook })
}

#[async_trait]
impl<F: Fn(usize, &Object) -> Upload + Send + Sync> Sink for Hooked<F> {
    fn describe(&self) -> String {
        "hooked test sink".into()
    }
    async fn create(&self, name: &str, object: &Object) -> Result<(), SinkError> {
        match (self.hook)(self.calls.fetch_add(1, Ordering::SeqCst), object) {
            Upload::Store => self.inner.create(name, object).await,
            Upload::Refuse => Err(SinkError::Backend("injected failure".into())),
            Upload::StoreThenFail => {
                self.inner.create(name, object).await?;
                Err(SinkError::Backend("timeout (injected after the write landed)".into()))
            }
        }
    }
    async fn exists(&self, name: &str) -> Result<bool, SinkError> {
        self.inner.exists(name).await
    }
    async fn delete(&self, name: &str) -> Result<(), SinkError> {
        self.inner.delete(name).await
    }
}

fn layout(max_records: usize) -> Layout {
    let s = SinkSettings {
        target: SinkTarget::Local { dir: "/unused".into() },
        prefix: String::new(),
        gzip: false,
        max_records,
        max_bytes: 1 << 20,
    };
    Layout::new(&s, "src", "src")
}

fn records(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("{{\"n\":{i}}}")).collect()
}

async fn open(sink: Arc<dyn Sink>, state: &MemoryStateStore, minute: u32) -> Delivery {
    let t = Utc.with_ymd_and_hms(2026, 11, 23, 10, minute, 0).unwrap();
    // Each test run is its own (all in this process, so none excludes another).
    let lease = Lease::for_run(&format!("run-{minute}"), t, std::time::Duration::from_secs(60));
    Delivery::open("src", sink, Arc::new(state.clone()), layout(2), t, 1 << 20, lease).await.unwrap()
}

async fn stored(state: &MemoryStateStore) -> SourceState {
    state.load("src").await.unwrap().unwrap().state
}

#[tokio::test]
async fn commit_writes_objects_then_cursor() {
    let sink = MemorySink::default();
    let state = MemoryStateStore::default();
    let mut d = open(Arc::new(sink.clone()), &state, 0).await;
    d.push(records(0..5)).unwrap();
    let names = d.commit(Some("c1".into())).await.unwrap();
    assert_eq!(names.len(), 3, "max_records 2 splits 5 records into 3 objects");
    assert_eq!(sink.objects().len(), 3);
    let st = stored(&state).await;
    assert_eq!(st.cursor.as_deref(), Some("c1"));
    assert!(st.pending.is_none());
    assert_eq!(d.stats().records, 5);
    let all: String = sink.objects().iter().map(|(_, o)| String::from_utf8(o.body.to_vec()).unwrap()).collect();
    assert_eq!(all.lines().count(), 5);
}

#[tokio::test]
async fn spooled_records_are_delivered_byte_exact_and_a_new_run_starts_in_memory() {
    let (spooled, in_memory) = (MemorySink::default(), MemorySink::default());
    let state = MemoryStateStore::default();
    let mut d = open(Arc::new(spooled.clone()), &state, 0).await;
    // Past 40 bytes the records go to a temporary file.
    d.pending = d.layout.pending(40);
    for batch in [0..3, 3..4, 4..9] {
        d.push(records(batch)).unwrap();
        assert!(d.pending_in_memory() < 40 + 5 * 8, "{}", d.pending_in_memory());
    }
    assert_eq!(d.pending_records(), 9);
    d.commit(Some("c1".into())).await.unwrap();
    let mut reference = open(Arc::new(in_memory.clone()), &MemoryStateStore::default(), 0).await;
    reference.push(records(0..9)).unwrap();
    reference.commit(Some("c1".into())).await.unwrap();
    let bodies =
        |sink: &MemorySink| sink.objects().into_iter().map(|(n, o)| (n, o.body, o.records)).collect::<Vec<_>>();
    assert_eq!(bodies(&spooled), bodies(&in_memory));
    assert_eq!(bodies(&spooled).len(), 5, "max_records 2: 9 records in 5 objects");
    assert_eq!(d.pending_records(), 0);
}

#[tokio::test]
async fn a_failed_upload_keeps_the_cursor_and_the_next_run_undoes_it() {
    let inner = MemorySink::default();
    // The sink stores one object, then fails every create (claims too).
    let sink = hooked(&inner, |n, _| if n == 0 { Upload::Store } else { Upload::Refuse });
    let state = MemoryStateStore::default();
    let mut d = open(sink, &state, 0).await;
    d.commit(Some("c0".into())).await.unwrap();
    d.push(records(0..4)).unwrap();
    let err = d.commit(Some("c1".into())).await.unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    // The sink is down, so the failed upload cannot be settled: the intent
    // stays, and the cursor with it.
    let st = stored(&state).await;
    assert_eq!(st.cursor.as_deref(), Some("c0"));
    assert!(st.pending.is_some());
    // The next run, with the sink back, undoes the commit.
    let d = open(Arc::new(inner.clone()), &state, 1).await;
    assert_eq!(d.cursor(), Some("c0"));
    assert!(stored(&state).await.pending.is_none());
    let objects = inner.objects();
    assert!(
        objects.iter().all(|(_, o)| o.body.is_empty()),
        "the first object of the failed commit is removed: {objects:?}"
    );
}

#[tokio::test]
async fn recovery_commits_a_complete_intent_and_undoes_a_partial_one() {
    let sink = MemorySink::default();
    let state = MemoryStateStore::default();
    // An interrupted commit whose two objects both made it.
    let obj = layout(2).encode(&records(0..1)).unwrap();
    sink.create("a", &obj).await.unwrap();
    sink.create("b", &obj).await.unwrap();
    let intent = SourceState {
        version: STATE_VERSION,
        cursor: Some("c0".into()),
        pending: Some(PendingCommit { objects: vec!["a".into(), "b".into()], cursor: Some("c1".into()), records: 2 }),
        updated_at: None,
        lease: None,
    };
    state.store("src", &intent, None).await.unwrap();
    let d = open(Arc::new(sink.clone()), &state, 1).await;
    assert_eq!(d.cursor(), Some("c1"));
    assert_eq!(sink.objects().len(), 2);

    // An interrupted commit where only the first of two objects exists.
    let g = state.load("src").await.unwrap().unwrap().generation;
    let mut partial = intent.clone();
    partial.cursor = Some("c1".into());
    partial.pending =
        Some(PendingCommit { objects: vec!["c".into(), "d".into()], cursor: Some("c2".into()), records: 2 });
    sink.create("c", &obj).await.unwrap();
    state.store("src", &partial, Some(g)).await.unwrap();
    let d = open(Arc::new(sink.clone()), &state, 2).await;
    assert_eq!(d.cursor(), Some("c1"), "the cursor of an incomplete commit is not adopted");
    assert!(!sink.exists("c").await.unwrap(), "the half-written commit is undone");
    assert!(stored(&state).await.pending.is_none());
}

#[tokio::test]
async fn a_second_writer_is_detected() {
    let sink = MemorySink::default();
    let state = MemoryStateStore::default();
    let mut first = open(Arc::new(sink.clone()), &state, 0).await;
    let mut second = open(Arc::new(sink.clone()), &state, 1).await;
    second.commit(Some("theirs".into())).await.unwrap();
    first.push(records(0..1)).unwrap();
    let err = first.commit(Some("mine".into())).await.unwrap_err();
    assert!(matches!(err, DeliveryError::State(StateError::Conflict { .. })), "{err}");
    assert!(sink.objects().is_empty(), "nothing is uploaded without the intent");
    assert_eq!(stored(&state).await.cursor.as_deref(), Some("theirs"));
}

#[tokio::test]
async fn committing_an_unchanged_cursor_still_detects_a_second_writer() {
    let state = MemoryStateStore::default();
    let mut first = open(Arc::new(MemorySink::default()), &state, 0).await;
    first.commit(Some("c0".into())).await.unwrap();
    let mut second = open(Arc::new(MemorySink::default()), &state, 1).await;
    second.commit(Some("c1".into())).await.unwrap();
    // The first run commits the cursor it holds, about to act on it.
    let err = first.commit(Some("c0".into())).await.unwrap_err();
    assert!(matches!(err, DeliveryError::State(StateError::Conflict { .. })), "{err}");
    assert_eq!(stored(&state).await.cursor.as_deref(), Some("c1"));
}

#[tokio::test]
async fn empty_commits_only_move_the_cursor() {
    let state = MemoryStateStore::default();
    let mut d = open(Arc::new(MemorySink::default()), &state, 0).await;
    let generation = || async { state.load("src").await.unwrap().map(|s| s.generation) };
    let leased = generation().await;
    assert!(leased.is_some(), "opening takes the lease");
    assert!(d.commit(None).await.unwrap().is_empty());
    assert_eq!(generation().await, leased, "nothing to write");
    d.commit(Some("c".into())).await.unwrap();
    assert_eq!(stored(&state).await.cursor.as_deref(), Some("c"));
    assert!(d.push(vec!["x".repeat(2 << 20)]).is_err(), "the pending buffer is bounded");
}

#[tokio::test]
async fn an_upload_that_landed_despite_an_error_completes_the_commit() {
    let inner = MemorySink::default();
    let state = MemoryStateStore::default();
    let mut d = open(hooked(&inner, |_, _| Upload::StoreThenFail), &state, 0).await;
    d.push(records(0..1)).unwrap();
    d.commit(Some("c1".into())).await.unwrap();
    let objects = inner.objects();
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert!(!objects[0].1.body.is_empty(), "the object that landed is kept: it is the commit's");
    let st = stored(&state).await;
    assert_eq!((st.cursor.as_deref(), st.pending), (Some("c1"), None));
}

#[tokio::test]
async fn a_refused_upload_rolls_the_commit_back() {
    let inner = MemorySink::default();
    let state = MemoryStateStore::default();
    // The first object is stored, the second refused; the claim goes through.
    let sink = hooked(&inner, |n, o| if n == 0 || o.body.is_empty() { Upload::Store } else { Upload::Refuse });
    let mut d = open(sink, &state, 0).await;
    d.commit(Some("c0".into())).await.unwrap();
    d.push(records(0..6)).unwrap();
    let err = d.commit(Some("c1".into())).await.unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    let objects = inner.objects();
    assert!(objects.iter().all(|(_, o)| o.body.is_empty()), "no records stay behind: {objects:?}");
    assert_eq!(objects.len(), 1, "the refused name is claimed: {objects:?}");
    let st = stored(&state).await;
    assert_eq!((st.cursor.as_deref(), st.pending), (Some("c0"), None));
}

/// A sink in which a second run opens the state (and so recovers the
/// commit in progress) just before the writer's second upload, as a second
/// process on the same source would.
struct RecoveredDuringUpload {
    inner: MemorySink,
    state: MemoryStateStore,
    creates: AtomicUsize,
}

#[async_trait]
impl Sink for RecoveredDuringUpload {
    fn describe(&self) -> String {
        "recovered-during-upload test sink".into()
    }
    async fn create(&self, name: &str, object: &Object) -> Result<(), SinkError> {
        if self.creates.fetch_add(1, Ordering::SeqCst) == 1 {
            let recovering = open(Arc::new(self.inner.clone()), &self.state, 1).await;
            assert_eq!(recovering.cursor(), Some("c0"), "the commit in progress is undone");
        }
        self.inner.create(name, object).await
    }
    async fn exists(&self, name: &str) -> Result<bool, SinkError> {
        self.inner.exists(name).await
    }
    async fn delete(&self, name: &str) -> Result<(), SinkError> {
        self.inner.delete(name).await
    }
}

#[tokio::test]
async fn a_writer_still_uploading_cannot_complete_a_commit_another_run_recovered() {
    let inner = MemorySink::default();
    let state = MemoryStateStore::default();
    let sink = RecoveredDuringUpload { inner: inner.clone(), state: state.clone(), creates: AtomicUsize::new(0) };
    let mut writer = open(Arc::new(sink), &state, 0).await;
    writer.commit(Some("c0".into())).await.unwrap();
    writer.push(records(0..6)).unwrap();
    let err = writer.commit(Some("c1".into())).await.unwrap_err();
    assert!(
        matches!(&err, DeliveryError::State(StateError::Conflict { detail, .. }) if detail.contains("claimed")),
        "{err}"
    );
    // The recovering run deleted the first object and claimed the second;
    // the writer stopped there: no records are left to be duplicated when
    // the recovering run fetches them again from c0.
    let objects = inner.objects();
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert!(objects[0].1.body.is_empty(), "only the empty claim remains");
    let st = stored(&state).await;
    assert_eq!((st.cursor.as_deref(), st.pending), (Some("c0"), None));

    // A claim left by a recovery that died is never taken for data.
    let g = state.load("src").await.unwrap().unwrap().generation;
    let claimed = objects[0].0.clone();
    let intent = SourceState {
        pending: Some(PendingCommit { objects: vec![claimed], cursor: Some("c9".into()), records: 2 }),
        ..st
    };
    state.store("src", &intent, Some(g)).await.unwrap();
    let d = open(Arc::new(inner.clone()), &state, 2).await;
    assert_eq!(d.cursor(), Some("c0"), "an empty object does not complete a commit");
}

#[tokio::test]
async fn object_names_never_repeat_across_runs_that_start_in_the_same_millisecond() {
    let sink = MemorySink::default();
    let state = MemoryStateStore::default();
    // Two runs with the same start time, one after the other: the second
    // sees the first's state write and names its objects after it.
    let mut first = open(Arc::new(sink.clone()), &state, 0).await;
    first.push(records(0..1)).unwrap();
    let a = first.commit(Some("c1".into())).await.unwrap();
    let mut second = open(Arc::new(sink.clone()), &state, 0).await;
    second.push(records(1..2)).unwrap();
    let b = second.commit(Some("c2".into())).await.unwrap();
    assert_ne!(a, b);
    assert_eq!(sink.objects().len(), 2, "both objects are kept");
    assert_eq!(stored(&state).await.cursor.as_deref(), Some("c2"));
}

#[tokio::test]
async fn a_live_lease_keeps_a_second_run_out_until_released() {
    let sink = MemorySink::default();
    let state = MemoryStateStore::default();
    let t = Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap();
    // Runs on two hosts, as two daemons would be.
    let lease = |run: &str, host: &str| {
        let mut l = Lease::for_run(run, Utc::now(), std::time::Duration::from_secs(60));
        l.host = host.into();
        l
    };
    let open_as =
        |l: Lease| Delivery::open("src", Arc::new(sink.clone()), Arc::new(state.clone()), layout(2), t, 1 << 20, l);

    let mut first = open_as(lease("first", "host-a")).await.unwrap();
    let before = state.load("src").await.unwrap();
    let Err(err) = open_as(lease("second", "host-b")).await else { panic!("the second run got in") };
    assert!(matches!(err, DeliveryError::Busy { .. }), "{err}");
    assert!(err.to_string().contains("source `src` is busy: run first on host host-a"), "{err}");
    assert_eq!(state.load("src").await.unwrap(), before, "the state is untouched");

    // Released when the first run ends: the next run gets in.
    first.release().await;
    assert_eq!(stored(&state).await.lease, None);
    open_as(lease("second", "host-b")).await.expect("the lease was released");
    assert_eq!(stored(&state).await.lease.map(|l| l.run_id).as_deref(), Some("second"));
}

/// A state store whose first write of a new state loses to `competitor`,
/// written just before it: the other run of a first-write race.
struct RacedStore {
    inner: MemoryStateStore,
    competitor: std::sync::Mutex<Option<SourceState>>,
}

#[async_trait]
impl StateStore for RacedStore {
    fn describe(&self) -> String {
        "raced test store".into()
    }
    async fn load(&self, source: &str) -> Result<Option<crate::state::Stored>, StateError> {
        self.inner.load(source).await
    }
    async fn store(
        &self,
        source: &str,
        state: &SourceState,
        expected: Option<crate::state::Generation>,
    ) -> Result<crate::state::Generation, StateError> {
        let competitor = self.competitor.lock().unwrap().take();
        if let Some(other) = competitor {
            self.inner.store(source, &other, None).await?;
        }
        self.inner.store(source, state, expected).await
    }
}

#[tokio::test]
async fn losing_the_first_write_race_is_busy_not_a_broken_checkpoint() {
    let t = Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap();
    let mut other = Lease::for_run("other", Utc::now(), std::time::Duration::from_secs(60));
    other.host = "host-b".into();
    // The winner still holds the source, or has finished and released it.
    for (held, expected) in [
        (Some(other), "source `src` is busy: run other on host host-b"),
        (None, "source `src` is busy: another run took it at the same moment"),
    ] {
        let competitor = SourceState { version: STATE_VERSION, lease: held, ..Default::default() };
        let store = RacedStore { inner: MemoryStateStore::default(), competitor: Some(competitor).into() };
        let ours = Lease::for_run("ours", t, std::time::Duration::from_secs(60));
        let result =
            Delivery::open("src", Arc::new(MemorySink::default()), Arc::new(store), layout(2), t, 1 << 20, ours).await;
        let Err(err) = result else { panic!("the losing run got in") };
        let text = err.to_string();
        assert!(text.contains(expected), "{text}");
        assert!(!text.contains("None") && !text.contains("Some("), "{text}");
        let kind = crate::runner::RunError::Delivery(err).kind();
        assert_eq!(kind, "busy");
    }
}
