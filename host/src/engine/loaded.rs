//! Collectors already loaded, by `.wasm` file: every source that names the
//! same file shares one compiled component and one `InstancePre` (a daemon
//! with 1,000 sources on one collector holds its code once, not 1,000
//! times). An entry is used only while the file's size, modification time
//! and inode are what they were when it was loaded, so a replaced file is
//! loaded afresh.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use super::LoadedCollector;

/// What identifies a file's content without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    dev: u64,
    ino: u64,
}

impl Stamp {
    /// The stamp of `path` now; `None` when it cannot be read (the load
    /// then reports why).
    pub(super) fn of(path: &Path) -> Option<Stamp> {
        let m = std::fs::metadata(path).ok()?;
        Some(Stamp { len: m.len(), modified: m.modified().ok(), dev: m.dev(), ino: m.ino() })
    }
}

/// Loaded collectors by path.
#[derive(Default)]
pub(super) struct LoadCache {
    entries: Mutex<HashMap<PathBuf, (Stamp, LoadedCollector)>>,
}

impl LoadCache {
    /// The collector loaded from `path` when the file is unchanged.
    pub(super) fn get(&self, path: &Path, stamp: &Stamp) -> Option<LoadedCollector> {
        let entries = self.entries.lock().ok()?;
        entries.get(path).filter(|(s, _)| s == stamp).map(|(_, c)| c.clone())
    }

    /// Remembers `collector` as loaded from `path` with `stamp`.
    pub(super) fn put(&self, path: &Path, stamp: Stamp, collector: &LoadedCollector) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(path.to_owned(), (stamp, collector.clone()));
        }
    }
}
