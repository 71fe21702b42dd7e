//! Local state: one JSON file per source, `<source>.json`, and a checked
//! copy of it, `.<source>.json.next`, both rewritten in place under an
//! exclusive file lock.
//!
//! A write goes to the copy first (with a CRC-32 of its text, then
//! fdatasync), then to the file (then fdatasync). A crash can tear at most
//! one of the two: a torn copy fails its check and the file still holds the
//! previous state; a torn file has the complete copy beside it, which is
//! read instead (the copy wins whenever it is intact and not older). The
//! file's new text is padded with spaces to its old length before the file is
//! cut, so even a file cut short by a kill is the state followed by
//! whitespace.
//!
//! Rewriting in place, rather than a temporary file renamed over the old
//! one, keeps a state write to two data writes: no inode is created or
//! freed and the directory is not touched (with a thousand sources in one
//! directory, ext4's inode allocation and the directory lock were most of
//! the daemon's CPU time and made runs start late). The directory is synced
//! only when a file is created.

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

    /// The checked copy of `source`'s state file.
    fn copy_path(&self, source: &str) -> PathBuf {
        self.dir.join(format!(".{source}.json.next"))
    }

    fn read(&self, source: &str) -> Result<Option<Stored>, StateError> {
        let path = self.path(source);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(StateError::Backend(format!("cannot read {}: {e}", path.display())));
            }
        };
        let file = text.as_deref().map(|t| {
            serde_json::from_str::<StateFile>(t)
                .map_err(|e| StateError::Corrupt { location: path.display().to_string(), message: e.to_string() })
        });
        match (file, self.read_copy(source)) {
            (Some(Ok(file)), Some(copy)) if copy.generation < file.generation => Ok(Some(file.into())),
            // The file may be torn (a crash while it was rewritten) or
            // behind; the intact copy is the last state written.
            (_, Some(copy)) => Ok(Some(copy.into())),
            (Some(file), None) => file.map(|f| Some(f.into())),
            (None, None) => Ok(None),
        }
    }

    /// The copy, when it exists and is intact (its CRC-32 matches).
    fn read_copy(&self, source: &str) -> Option<StateFile> {
        let text = std::fs::read_to_string(self.copy_path(source)).ok()?;
        let (json, crc) = text.trim_end().rsplit_once('\n')?;
        (u32::from_str_radix(crc, 16).ok()? == crc32fast::hash(json.as_bytes()))
            .then(|| serde_json::from_str(json).ok())
            .flatten()
    }

    fn write(&self, source: &str, state: &SourceState, expected: Option<Generation>) -> Result<Generation, StateError> {
        let io = |what: &str, e: std::io::Error| {
            StateError::Backend(format!("cannot {what} in {}: {e}", self.dir.display()))
        };
        let lock = crate::sink::local::open_private_file(&self.dir.join(format!(".{source}.lock")))
            .map_err(|e| io("open the lock file", e))?;
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
        let copy = format!("{text}\n{:08x}\n", crc32fast::hash(text.as_bytes()));
        let created_copy = rewrite(&self.copy_path(source), copy.as_bytes()).map_err(|e| io("write state", e))?;
        let created_file =
            rewrite(&self.path(source), format!("{text}\n").as_bytes()).map_err(|e| io("write state", e))?;
        if created_copy || created_file {
            std::fs::File::open(&self.dir).and_then(|d| d.sync_all()).map_err(|e| io("sync the directory", e))?;
        }
        Ok(generation)
    }
}

impl From<StateFile> for Stored {
    fn from(file: StateFile) -> Stored {
        Stored { state: file.state, generation: file.generation }
    }
}

/// Rewrites `path` in place with `text` (owner-only when created), durably:
/// the text padded with spaces over any longer old content, fdatasync, then
/// the file cut to the text. Returns whether the file was created.
fn rewrite(path: &Path, text: &[u8]) -> std::io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let file = crate::sink::local::open_private_file(path)?;
    let old = file.metadata()?.len() as usize;
    let mut padded = text.to_vec();
    padded.resize(old.max(text.len()), b' ');
    file.write_all_at(&padded, 0)?;
    file.sync_data()?;
    if old > text.len() {
        file.set_len(text.len() as u64)?;
    }
    Ok(old == 0)
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
        assert_eq!(store.load("s").await.unwrap().unwrap().generation, g2, "the intact copy stands in");
        std::fs::write(store.copy_path("s"), "{not json").unwrap();
        let err = store.load("s").await.unwrap_err();
        assert!(err.to_string().contains("s.json"), "{err}");
    }

    /// What a crash can leave: the copy torn (the file still holds the
    /// previous state), the file torn (the copy holds the new one), the file
    /// cut short after its rewrite (padding), and shorter states after longer.
    #[tokio::test]
    async fn a_write_torn_anywhere_reads_as_the_state_before_or_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStateStore::open(dir.path()).unwrap();
        let state = |cursor: &str| SourceState { version: 1, cursor: Some(cursor.into()), ..Default::default() };
        let long = "x".repeat(5_000);
        let g1 = store.store("s", &state(&long), None).await.unwrap();
        let g2 = store.store("s", &state("short"), Some(g1)).await.unwrap();
        let read = || {
            let s = store.read("s").unwrap().unwrap();
            (s.generation, s.state.cursor.unwrap())
        };
        assert_eq!(read(), (g2, "short".to_owned()));
        let file = std::fs::read_to_string(store.path("s")).unwrap();
        assert!(serde_json::from_str::<serde_json::Value>(&file).is_ok(), "the file alone is the state: {file}");

        // Torn copy (a crash while writing it): the file is the state.
        let copy = std::fs::read(store.copy_path("s")).unwrap();
        let mut torn = copy.clone();
        torn.truncate(copy.len() / 2);
        std::fs::write(store.copy_path("s"), &torn).unwrap();
        assert_eq!(read(), (g2, "short".to_owned()));

        // Torn file, intact copy of a newer state: the copy.
        std::fs::write(store.copy_path("s"), &copy).unwrap();
        std::fs::write(store.path("s"), &file.as_bytes()[..file.len() / 2]).unwrap();
        assert_eq!(read(), (g2, "short".to_owned()));

        // A copy older than the file (a file written by hand): the file.
        let g3 = store.store("s", &state("third"), Some(g2)).await.unwrap();
        std::fs::write(store.copy_path("s"), &copy).unwrap();
        assert_eq!(read(), (g3, "third".to_owned()));

        // A file rewritten over a longer one but not yet cut: padding.
        let mut padded = file.clone().into_bytes();
        padded.resize(6_000, b' ');
        std::fs::write(store.path("s"), &padded).unwrap();
        std::fs::remove_file(store.copy_path("s")).unwrap();
        assert_eq!(read(), (g2, "short".to_owned()));
        // …and the next write goes on from there.
        assert_eq!(store.store("s", &state("fourth"), Some(g2)).await.unwrap(), g2 + 1);
        assert_eq!(read(), (g2 + 1, "fourth".to_owned()));
    }
}
