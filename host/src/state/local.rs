//! Local state: one JSON file per source, replaced atomically (temporary
//! file, fsync, rename, directory fsync) under an exclusive file lock, so a
//! crash leaves either the old or the new file, never a torn one.

use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Generation, SourceState, StateError, StateStore, Stored};

/// One `<source>.json` per source under a directory.
#[derive(Debug, Clone)]
pub struct LocalStateStore {
    dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    generation: Generation,
    state: SourceState,
}

impl LocalStateStore {
    /// A store in `dir`, created if missing.
    pub fn open(dir: &Path) -> Result<LocalStateStore, StateError> {
        crate::sink::local::create_private_dir(dir)
            .map_err(|e| StateError::Backend(format!("cannot create state directory {}: {e}", dir.display())))?;
        Ok(LocalStateStore { dir: dir.to_owned() })
    }

    /// The file holding `source`'s state.
    pub fn path(&self, source: &str) -> PathBuf {
        self.dir.join(format!("{source}.json"))
    }

    fn read(&self, source: &str) -> Result<Option<Stored>, StateError> {
        let path = self.path(source);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(StateError::Backend(format!("cannot read {}: {e}", path.display())));
            }
        };
        let file: StateFile = serde_json::from_str(&text)
            .map_err(|e| StateError::Corrupt { location: path.display().to_string(), message: e.to_string() })?;
        Ok(Some(Stored { state: file.state, generation: file.generation }))
    }

    fn write(&self, source: &str, state: &SourceState, expected: Option<Generation>) -> Result<Generation, StateError> {
        let io = |what: &str, e: std::io::Error| {
            StateError::Backend(format!("cannot {what} in {}: {e}", self.dir.display()))
        };
        let mut lock_options = std::fs::OpenOptions::new();
        lock_options.create(true).truncate(false).write(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut lock_options, 0o600);
        let lock =
            lock_options.open(self.dir.join(format!(".{source}.lock"))).map_err(|e| io("open the lock file", e))?;
        lock.lock().map_err(|e| io("lock the state", e))?;
        let current = self.read(source)?.map(|s| s.generation);
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
        let text = serde_json::to_string_pretty(&StateFile { generation, state: state.clone() })
            .map_err(|e| StateError::Backend(format!("cannot encode state: {e}")))?;
        let path = self.path(source);
        let tmp = self.dir.join(format!(".{source}.json.tmp"));
        // Cursors may name what an attacker would look for: owner only (a
        // temporary file left by a crash is replaced, not reused with its mode).
        let _ = std::fs::remove_file(&tmp);
        let mut f =
            crate::sink::local::create_private_file(&tmp, false).map_err(|e| io("create a temporary file", e))?;
        f.write_all(text.as_bytes()).map_err(|e| io("write state", e))?;
        f.sync_all().map_err(|e| io("sync state", e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io("rename state", e))?;
        std::fs::File::open(&self.dir).and_then(|d| d.sync_all()).map_err(|e| io("sync the directory", e))?;
        Ok(generation)
    }
}

#[async_trait]
impl StateStore for LocalStateStore {
    fn describe(&self) -> String {
        format!("local directory {}", self.dir.display())
    }

    async fn load(&self, source: &str) -> Result<Option<Stored>, StateError> {
        let this = self.clone();
        let source = source.to_owned();
        tokio::task::spawn_blocking(move || this.read(&source))
            .await
            .map_err(|e| StateError::Backend(format!("state task failed: {e}")))?
    }

    async fn store(
        &self,
        source: &str,
        state: &SourceState,
        expected: Option<Generation>,
    ) -> Result<Generation, StateError> {
        let this = self.clone();
        let source = source.to_owned();
        let state = state.clone();
        tokio::task::spawn_blocking(move || this.write(&source, &state, expected))
            .await
            .map_err(|e| StateError::Backend(format!("state task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conditional_writes_and_corruption_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStateStore::open(dir.path()).unwrap();
        assert!(store.load("s").await.unwrap().is_none());
        let st = SourceState { version: 1, cursor: Some("c1".into()), ..Default::default() };
        let g1 = store.store("s", &st, None).await.unwrap();
        assert!(matches!(store.store("s", &st, None).await, Err(StateError::Conflict { .. })));
        let g2 = store.store("s", &st, Some(g1)).await.unwrap();
        assert!(matches!(store.store("s", &st, Some(g1)).await, Err(StateError::Conflict { .. })));
        assert_eq!(store.load("s").await.unwrap().unwrap().generation, g2);
        std::fs::write(store.path("s"), "{not json").unwrap();
        let err = store.load("s").await.unwrap_err();
        assert!(err.to_string().contains("s.json"), "{err}");
    }
}
