//! Hot reload (SIGHUP): read the config file and the collectors again and
//! switch to them without a restart — or refuse, as a whole, and keep what
//! runs.
//!
//! A reload applies the `[sources.*]` tables. Added sources start, removed
//! ones stop after their run in flight, changed ones (settings, schedule,
//! limits, a secret file's value, the collector file's content) apply from
//! their next run; an unchanged source keeps its runtime (and with it its
//! rate limiter). A collector is recognised by the SHA-256 of its bytes:
//! new content is compiled once, even when several sources use it, and the
//! bytes compiled are the bytes hashed. Runs in flight hold the runtime
//! they started with, so they finish on that version.
//!
//! Any problem — a parse error, an invalid source, a collector that does not
//! compile or whose settings do not fit — refuses the whole reload: the
//! daemon is never half-configured. So does a change outside `[sources]`
//! (`[engine]`, `[sink]`, `[state]`, `[http]`): moving the sink or the state
//! under runs in flight is not something a reload should do, so those need
//! a restart, and the refusal says so.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::config::{Settings, SourceSpec};
use crate::egress::Network;
use crate::engine::LoadedCollector;
use crate::scheduler::Scheduler;
use crate::services::{Runtime, SourceRuntime};
use crate::status::{SourceInfo, StatusBoard};

/// Longest a reload may take (compiling new collectors included).
pub const RELOAD_TIMEOUT: Duration = Duration::from_secs(300);

/// A collector file's SHA-256 (hex) and bytes, read once per reload.
type HashedFile = (String, Arc<Vec<u8>>);

/// One source as built, and what it was built from.
#[derive(Clone)]
struct Built {
    source: Arc<SourceRuntime>,
    /// SHA-256 of the collector file, hex.
    sha256: String,
    /// Covers the source's TOML table, the collector's hash and the
    /// secrets' values: equal means nothing to do.
    fingerprint: String,
}

/// The configuration in force and how to move to a new one.
pub struct Reloader {
    path: PathBuf,
    /// What the files looked like at the last reload (see [`Reloader::changed_on_disk`]).
    on_disk: String,
    /// Every top-level table but `sources`, as in force.
    fixed: toml::Table,
    built: BTreeMap<String, Built>,
    /// Compiled collectors by content hash.
    collectors: HashMap<String, LoadedCollector>,
}

/// A new configuration, fully built, not yet in force.
pub struct Prepared {
    fixed: toml::Table,
    built: BTreeMap<String, Built>,
    collectors: HashMap<String, LoadedCollector>,
    /// What differs from the configuration in force.
    pub changes: Changes,
}

/// What a reload changes.
#[derive(Debug, Default)]
pub struct Changes {
    /// New sources.
    pub added: Vec<String>,
    /// Sources no longer configured.
    pub removed: Vec<String>,
    /// Sources whose table, secrets or collector changed.
    pub changed: Vec<String>,
    /// Collectors compiled for this reload: `file name@version`.
    pub compiled: Vec<String>,
}

impl Changes {
    /// One line for logs and the status page.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (what, names) in [
            ("added", &self.added),
            ("removed", &self.removed),
            ("changed", &self.changed),
            ("compiled", &self.compiled),
        ] {
            if !names.is_empty() {
                parts.push(format!("{what}: {}", names.join(", ")));
            }
        }
        if parts.is_empty() { "no changes".to_owned() } else { parts.join("; ") }
    }
}

impl Reloader {
    /// Build every source of the config `text` (already validated into
    /// `settings`) read from `path`: the daemon's starting point. Every
    /// problem is reported, not just the first.
    pub async fn start(runtime: &Runtime, path: &Path, text: &str, settings: &Settings) -> Result<Reloader, String> {
        let empty = Reloader {
            path: path.to_owned(),
            on_disk: String::new(),
            fixed: toml::Table::new(),
            built: BTreeMap::new(),
            collectors: HashMap::new(),
        };
        let table = split_table(text, path)?;
        let prepared = empty.build(runtime, settings, table).await?;
        let on_disk = disk_signature(path);
        Ok(Reloader {
            path: path.to_owned(),
            on_disk,
            fixed: prepared.fixed,
            built: prepared.built,
            collectors: prepared.collectors,
        })
    }

    /// The sources in force.
    pub fn sources(&self) -> Vec<Arc<SourceRuntime>> {
        self.built.values().map(|b| b.source.clone()).collect()
    }

    /// The sources in force, as the status board shows them.
    pub fn infos(&self) -> Vec<(String, SourceInfo)> {
        self.built.iter().map(|(name, b)| (name.clone(), SourceInfo::of(&b.source, &b.sha256))).collect()
    }

    /// The config file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the config file's content, or the size or modification time
    /// of a collector or secret file it names, differs from when the last
    /// reload (or the start) read them. Cheap enough to ask every few seconds
    /// (`engine.watch`).
    pub fn changed_on_disk(&self) -> bool {
        disk_signature(&self.path) != self.on_disk
    }

    /// Remember the files as they are now (after a reload, applied or refused,
    /// so that a refused config is not tried again until it changes).
    fn remember_disk(&mut self) {
        self.on_disk = disk_signature(&self.path);
    }

    /// Read the config file and the collectors again and build everything
    /// that changed. Nothing is in force until [`Reloader::commit`].
    pub async fn prepare(&self, runtime: &Runtime) -> Result<Prepared, String> {
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| format!("cannot read config file {}: {e}", self.path.display()))?;
        let settings = Settings::from_toml(&text, &self.path).map_err(|e| e.to_string())?;
        let (fixed, sources) = split_table(&text, &self.path)?;
        let differ: Vec<String> = fixed
            .keys()
            .chain(self.fixed.keys())
            .filter(|k| fixed.get(*k) != self.fixed.get(*k))
            .map(|k| format!("[{k}]"))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if !differ.is_empty() {
            return Err(format!(
                "{}: {} changed; a reload applies only [sources.*]: restart siphon to apply the rest",
                self.path.display(),
                differ.join(", ")
            ));
        }
        self.build(runtime, &settings, (fixed, sources)).await
    }

    /// Put `prepared` in force (the caller hands its sources to the
    /// scheduler). Collectors no source uses any more are let go.
    pub fn commit(&mut self, prepared: Prepared) -> Changes {
        self.fixed = prepared.fixed;
        self.built = prepared.built;
        self.collectors = prepared.collectors;
        prepared.changes
    }

    async fn build(
        &self,
        runtime: &Runtime,
        settings: &Settings,
        (fixed, sources): (toml::Table, toml::Table),
    ) -> Result<Prepared, String> {
        let mut problems = Vec::new();
        let mut built = BTreeMap::new();
        let mut collectors = HashMap::new();
        let mut changes = Changes::default();
        // Each file is read and hashed once, however many sources name it.
        let mut files: HashMap<PathBuf, Result<HashedFile, String>> = HashMap::new();
        for (name, spec) in &settings.sources {
            let file = files.entry(spec.collector.clone()).or_insert_with(|| {
                let bytes = std::fs::read(&spec.collector).map_err(|e| e.to_string())?;
                Ok((hex::encode(Sha256::digest(&bytes)), Arc::new(bytes)))
            });
            let (sha256, bytes) = match file {
                Ok((sha256, bytes)) => (sha256.clone(), bytes.clone()),
                Err(e) => {
                    problems.push(format!("sources.{name}.collector: cannot read {}: {e}", spec.collector.display()));
                    continue;
                }
            };
            let fingerprint = fingerprint(sources.get(name), &sha256, spec);
            if let Some(old) = self.built.get(name).filter(|old| old.fingerprint == fingerprint) {
                built.insert(name.clone(), old.clone());
                collectors.insert(sha256, old.source.collector.clone());
                continue;
            }
            // The same bytes under another name are the same collector.
            let known = collectors.get(&sha256).or_else(|| self.collectors.get(&sha256)).cloned();
            let collector = match known {
                Some(c) => LoadedCollector { path: spec.collector.clone(), ..c },
                None => match runtime.engine.load_bytes(&spec.collector, bytes.to_vec(), &sha256).await {
                    Ok(c) => {
                        changes.compiled.push(format!("{}@{}", file_name(&spec.collector), c.info.version));
                        c
                    }
                    Err(e) => {
                        problems.push(format!("sources.{name}.collector: {e}"));
                        continue;
                    }
                },
            };
            collectors.insert(sha256.clone(), collector.clone());
            match runtime.build_source(spec.clone(), collector, Arc::new(Network)).await {
                Ok(source) => {
                    if self.built.contains_key(name) {
                        changes.changed.push(name.clone());
                    } else {
                        changes.added.push(name.clone());
                    }
                    built.insert(name.clone(), Built { source, sha256, fingerprint });
                }
                Err(e) => problems.push(e),
            }
        }
        if !problems.is_empty() {
            return Err(format!("{}:\n  - {}", self.path.display(), problems.join("\n  - ")));
        }
        changes.removed = self.built.keys().filter(|n| !built.contains_key(*n)).cloned().collect();
        Ok(Prepared { fixed, built, collectors, changes })
    }
}

/// The config text as a TOML table, split into everything but `sources`
/// and the `sources` table.
fn split_table(text: &str, path: &Path) -> Result<(toml::Table, toml::Table), String> {
    let mut table: toml::Table = text.parse().map_err(|e| format!("{}: {e}", path.display()))?;
    let sources = match table.remove("sources") {
        Some(toml::Value::Table(t)) => t,
        _ => toml::Table::new(),
    };
    Ok((table, sources))
}

fn fingerprint(table: Option<&toml::Value>, sha256: &str, spec: &SourceSpec) -> String {
    let mut hash = Sha256::new();
    // toml's tables are ordered maps: equal tables print equal.
    hash.update(table.map(|t| t.to_string()).unwrap_or_default());
    hash.update([0]);
    hash.update(sha256);
    for name in spec.secrets.names() {
        hash.update([0]);
        hash.update(name);
        hash.update([0]);
        hash.update(spec.secrets.get(name).unwrap_or_default());
    }
    hex::encode(hash.finalize())
}

/// The collector and secret files the config text names, resolved as the
/// config resolves them (relative to its directory); none when the text is
/// not TOML (then the text alone tells a change).
fn files_named(config: &Path, text: &str) -> Vec<PathBuf> {
    let base = config.parent().unwrap_or(Path::new("."));
    let Ok(table) = text.parse::<toml::Table>() else { return Vec::new() };
    let Some(sources) = table.get("sources").and_then(toml::Value::as_table) else { return Vec::new() };
    let mut files = Vec::new();
    for source in sources.values() {
        files.extend(source.get("collector").and_then(toml::Value::as_str).map(PathBuf::from));
        let secrets = source.get("secrets").and_then(toml::Value::as_table);
        let secret_files = secrets.into_iter().flat_map(|t| t.values()).filter_map(|v| v.get("file")?.as_str());
        files.extend(secret_files.map(PathBuf::from));
    }
    files.into_iter().map(|f| if f.is_absolute() { f } else { base.join(f) }).collect()
}

/// The config file's content hash and each collector or secret file's size
/// and modification time (a Kubernetes volume update replaces the file).
fn disk_signature(config: &Path) -> String {
    let text = std::fs::read(config).unwrap_or_default();
    let mut hash = Sha256::new();
    hash.update(&text);
    for path in files_named(config, &String::from_utf8_lossy(&text)) {
        let path = path.as_path();
        let meta = std::fs::metadata(path).ok();
        let modified = meta.as_ref().and_then(|m| m.modified().ok());
        hash.update(format!("\0{}\0{:?}\0{:?}", path.display(), meta.map(|m| m.len()), modified));
    }
    hex::encode(hash.finalize())
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// Reload now: prepare, then either put the new configuration in force
/// (scheduler and status board) or refuse it; logged, counted in
/// `siphon_config_reloads_total{outcome}` and shown on the status page.
/// Returns what changed, or why it was refused.
pub async fn reload(
    reloader: &mut Reloader,
    runtime: &Runtime,
    scheduler: &Scheduler,
    status: &StatusBoard,
) -> Result<Changes, String> {
    tracing::info!(config = %reloader.path().display(), "Reloading the configuration");
    status.set_reloading(true);
    let prepared = match tokio::time::timeout(RELOAD_TIMEOUT, reloader.prepare(runtime)).await {
        Ok(p) => p,
        Err(_) => Err(format!("the reload did not finish within {RELOAD_TIMEOUT:?}")),
    };
    let result = match prepared {
        Ok(prepared) => {
            let changes = reloader.commit(prepared);
            scheduler.set_sources(reloader.sources());
            status.set_sources(reloader.infos());
            status.config_loaded();
            tracing::info!(changes = %changes.describe(), "Configuration reloaded");
            crate::telemetry::config_reloaded("applied");
            Ok(changes)
        }
        Err(error) => {
            tracing::error!(%error, "Reload refused; the configuration in force is unchanged");
            crate::telemetry::config_reloaded("refused");
            Err(error)
        }
    };
    status.reload_finished(&result.as_ref().map(Changes::describe).map_err(Clone::clone));
    reloader.remember_disk();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watch_covers_the_config_and_the_collector_and_secret_files_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("siphon.toml");
        let text = "[sources.a]\ncollector = \"c.wasm\"\nsecrets = { t = { file = \"t.txt\" }, e = { env = \"X\" } }\n\
                    [sources.b]\ncollector = \"/abs/b.wasm\"\n";
        std::fs::write(&config, text).unwrap();
        let mut files = files_named(&config, text);
        files.sort();
        assert_eq!(files, [PathBuf::from("/abs/b.wasm"), dir.path().join("c.wasm"), dir.path().join("t.txt")]);
        std::fs::write(dir.path().join("t.txt"), "one").unwrap();
        let before = disk_signature(&config);
        assert_eq!(disk_signature(&config), before, "nothing changed");
        std::fs::write(dir.path().join("t.txt"), "rotated").unwrap();
        let rotated = disk_signature(&config);
        assert_ne!(rotated, before, "a rotated secret file");
        std::fs::write(&config, format!("{text}# edited\n")).unwrap();
        assert_ne!(disk_signature(&config), rotated, "an edited config");
        assert!(files_named(&config, "[sources.a").is_empty(), "not TOML: the text alone");
    }

    #[test]
    fn changes_read_as_one_line() {
        assert_eq!(Changes::default().describe(), "no changes");
        let c = Changes { added: vec!["a".into()], changed: vec!["b".into(), "c".into()], ..Changes::default() };
        assert_eq!(c.describe(), "added: a; changed: b, c");
    }
}
