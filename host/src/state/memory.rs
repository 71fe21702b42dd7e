//! In-memory state store for tests and the guest test harness.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{Generation, SourceState, StateError, StateStore, Stored};

/// States kept in a map; clones share the map.
#[derive(Debug, Clone, Default)]
pub struct MemoryStateStore {
    states: Arc<Mutex<BTreeMap<String, Stored>>>,
}

#[async_trait]
impl StateStore for MemoryStateStore {
    fn describe(&self) -> String {
        "in-memory state".to_owned()
    }

    async fn load(&self, source: &str) -> Result<Option<Stored>, StateError> {
        Ok(self.states.lock().unwrap_or_else(|p| p.into_inner()).get(source).cloned())
    }

    async fn store(
        &self,
        source: &str,
        state: &SourceState,
        expected: Option<Generation>,
    ) -> Result<Generation, StateError> {
        let mut map = self.states.lock().unwrap_or_else(|p| p.into_inner());
        let current = map.get(source).map(|s| s.generation);
        if current != expected {
            return Err(StateError::Conflict {
                source_name: source.to_owned(),
                detail: format!(
                    "expected {}, found {}",
                    super::generation_text(expected),
                    super::generation_text(current)
                ),
            });
        }
        let generation = current.map_or(1, |g| g + 1);
        map.insert(source.to_owned(), Stored { state: state.clone(), generation });
        Ok(generation)
    }
}
