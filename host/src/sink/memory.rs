//! In-memory sink for tests and the guest test harness.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use super::{Object, Sink, SinkError};

/// Objects kept in a map; clones share the map.
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    objects: Arc<Mutex<BTreeMap<String, Object>>>,
}

impl MemorySink {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Object>> {
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Names and objects, in name order.
    pub fn objects(&self) -> Vec<(String, Object)> {
        self.lock().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

#[async_trait]
impl Sink for MemorySink {
    fn describe(&self) -> String {
        "in-memory sink".to_owned()
    }

    async fn create(&self, name: &str, object: &Object) -> Result<(), SinkError> {
        let mut map = self.lock();
        if map.contains_key(name) {
            return Err(SinkError::AlreadyExists(name.to_owned()));
        }
        map.insert(name.to_owned(), object.clone());
        Ok(())
    }

    async fn exists(&self, name: &str) -> Result<bool, SinkError> {
        Ok(self.lock().get(name).is_some_and(|o| super::holds_records(&o.body)))
    }

    async fn delete(&self, name: &str) -> Result<(), SinkError> {
        self.lock().remove(name);
        Ok(())
    }
}
