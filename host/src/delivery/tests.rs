//! The commit protocol under failures: a sink that fails on demand, states
//! left behind by interrupted commits, and a second writer.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use chrono::TimeZone;

use super::*;
use crate::config::{SinkSettings, SinkTarget};
use crate::sink::memory::MemorySink;
use crate::sink::{Object, Sink, SinkError};
use crate::state::memory::MemoryStateStore;

/// A memory sink whose `create` fails once the given number of objects exist.
struct FailAfter {
    inner: MemorySink,
    allowed: AtomicUsize,
}

#[async_trait]
impl Sink for FailAfter {
    fn describe(&self) -> String {
        "failing test sink".into()
    }
    async fn create(&self, name: &str, object: &Object) -> Result<(), SinkError> {
        if self.allowed.load(Ordering::SeqCst) == 0 {
            return Err(SinkError::Backend("injected failure".into()));
        }
        self.allowed.fetch_sub(1, Ordering::SeqCst);
        self.inner.create(name, object).await
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
    Delivery::open("src", sink, Arc::new(state.clone()), layout(2), t, 1 << 20).await.unwrap()
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
async fn a_failed_upload_is_rolled_back_and_the_cursor_kept() {
    let inner = MemorySink::default();
    let sink = Arc::new(FailAfter { inner: inner.clone(), allowed: AtomicUsize::new(1) });
    let state = MemoryStateStore::default();
    let mut d = open(sink, &state, 0).await;
    d.commit(Some("c0".into())).await.unwrap();
    d.push(records(0..4)).unwrap();
    let err = d.commit(Some("c1".into())).await.unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert!(inner.objects().is_empty(), "the first object of the failed commit is removed");
    let st = stored(&state).await;
    assert_eq!(st.cursor.as_deref(), Some("c0"));
    assert!(st.pending.is_none());
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
    };
    state.store("src", &intent, None).await.unwrap();
    let d = open(Arc::new(sink.clone()), &state, 1).await;
    assert_eq!(d.cursor(), Some("c1"));
    assert_eq!(sink.objects().len(), 2);

    // An interrupted commit where only the first of two objects exists.
    let g = state.load("src").await.unwrap().unwrap().generation;
    let mut partial = intent.clone();
    partial.cursor = Some("c1".into());
    partial.pending = Some(PendingCommit { objects: vec!["c".into(), "d".into()], cursor: Some("c2".into()), records: 2 });
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
async fn empty_commits_only_move_the_cursor() {
    let state = MemoryStateStore::default();
    let mut d = open(Arc::new(MemorySink::default()), &state, 0).await;
    assert!(d.commit(None).await.unwrap().is_empty());
    assert!(state.load("src").await.unwrap().is_none(), "nothing to write");
    d.commit(Some("c".into())).await.unwrap();
    assert_eq!(stored(&state).await.cursor.as_deref(), Some("c"));
    assert!(d.push(vec!["x".repeat(2 << 20)]).is_err(), "the pending buffer is bounded");
}

/// A sink whose upload stores the object but then reports a failure, like a
/// timeout after the server committed the write.
struct LandsButFails {
    inner: MemorySink,
}

#[async_trait]
impl Sink for LandsButFails {
    fn describe(&self) -> String {
        "lands-but-fails test sink".into()
    }
    async fn create(&self, name: &str, object: &Object) -> Result<(), SinkError> {
        self.inner.create(name, object).await?;
        Err(SinkError::Backend("timeout (injected after the write landed)".into()))
    }
    async fn exists(&self, name: &str) -> Result<bool, SinkError> {
        self.inner.exists(name).await
    }
    async fn delete(&self, name: &str) -> Result<(), SinkError> {
        self.inner.delete(name).await
    }
}

#[tokio::test]
async fn an_upload_that_landed_despite_an_error_is_rolled_back_too() {
    let inner = MemorySink::default();
    let state = MemoryStateStore::default();
    let mut d = open(Arc::new(LandsButFails { inner: inner.clone() }), &state, 0).await;
    d.push(records(0..1)).unwrap();
    assert!(d.commit(Some("c1".into())).await.is_err());
    assert!(inner.objects().is_empty(), "the object that landed is removed, so a retry cannot duplicate it");
    assert_eq!(stored(&state).await.cursor, None);
}
