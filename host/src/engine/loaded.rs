//! Collectors already loaded, by `.wasm` file: every source that names the
//! same file shares one compiled component and one `InstancePre` (a daemon
//! with 1,000 sources on one collector holds its code once, not 1,000
//! times), whether it was loaded by path (start-up, `siphon collect`) or
//! from bytes a reload read and hashed.
//!
//! An entry holds the SHA-256 of the bytes it was compiled from, which is
//! what decides a hit; the file's size, modification time and inode only
//! spare a load by path from reading and hashing a file that did not
//! change. One entry per path, so a replaced file's old code is dropped
//! once no source uses it.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

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

/// The SHA-256 of a collector's bytes, hex (as reload names them).
pub(super) fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// One loaded file: the content it was compiled from and, when known to
/// match it, the file's stamp.
struct Entry {
    sha256: String,
    stamp: Option<Stamp>,
    collector: LoadedCollector,
}

/// Loaded collectors by path.
#[derive(Default)]
pub(super) struct LoadCache {
    entries: Mutex<HashMap<PathBuf, Entry>>,
}

impl LoadCache {
    /// The collector loaded from `path` when the file is unchanged since.
    pub(super) fn by_stamp(&self, path: &Path, stamp: &Stamp) -> Option<LoadedCollector> {
        let entries = self.entries.lock().ok()?;
        entries.get(path).filter(|e| e.stamp.as_ref() == Some(stamp)).map(|e| e.collector.clone())
    }

    /// The collector loaded from `path` when it was compiled from content
    /// `sha256`; `stamp`, when given, is that content's stamp from now on.
    pub(super) fn by_content(&self, path: &Path, sha256: &str, stamp: Option<Stamp>) -> Option<LoadedCollector> {
        let mut entries = self.entries.lock().ok()?;
        let entry = entries.get_mut(path).filter(|e| e.sha256 == sha256)?;
        if stamp.is_some() {
            entry.stamp = stamp;
        }
        Some(entry.collector.clone())
    }

    /// Remembers `collector` as compiled from content `sha256` of `path`
    /// (whose stamp is `stamp` when the bytes were read by this load).
    pub(super) fn put(&self, path: &Path, sha256: String, stamp: Option<Stamp>, collector: &LoadedCollector) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(path.to_owned(), Entry { sha256, stamp, collector: collector.clone() });
        }
    }
}
