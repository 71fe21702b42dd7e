//! Shared set-up: temporary siphon installations (config, token file, sink
//! and state directories), reading the sink back, and locating binaries.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use siphon::config::Settings;
use siphon::services::Runtime;
use siphon_tests::config::SourceToml;
use tempfile::TempDir;

use crate::vendor::Tenant;

/// Token the mock vendors accept.
pub const TOKEN: &str = "e2e-token-5f3a9c1d";

/// A siphon installation in a temporary directory.
pub struct Install {
    /// The directory (removed on drop).
    pub dir: TempDir,
}

impl Install {
    /// A new installation; `token` goes into `token.txt`.
    pub fn new(token: &str) -> Install {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("token.txt"), format!("{token}\n")).expect("token file");
        Install { dir }
    }

    /// A new installation holding the secret files of `tenant` (`<secret>.txt`).
    pub fn for_tenant(tenant: &dyn Tenant) -> Install {
        let install = Install { dir: tempfile::tempdir().expect("temp dir") };
        install.write_secrets(&tenant.secrets());
        install
    }

    /// Writes each secret to `<name>.txt`, where a [`Tenant::source`] reads it.
    pub fn write_secrets(&self, secrets: &[(&str, String)]) {
        for (name, value) in secrets {
            std::fs::write(self.path(&format!("{name}.txt")), format!("{value}\n")).expect("secret file");
        }
    }

    /// Path of a file in the installation.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Write `siphon.toml` with local sink/state and the given sources
    /// (TOML text of `[sources.*]` tables), returning its path.
    pub fn config(&self, sources: &str) -> PathBuf {
        self.config_with(sources, "")
    }

    /// Like [`Install::config`] with the tables of `sources`.
    pub fn config_sources(&self, sources: &[SourceToml]) -> PathBuf {
        let tables: Vec<String> = sources.iter().map(SourceToml::render).collect();
        self.config(&tables.join("\n"))
    }

    /// Like [`Install::config`] with extra `[sink]` keys.
    pub fn config_with(&self, sources: &str, sink_extra: &str) -> PathBuf {
        let text = format!(
            r#"[engine]
cache_dir = "{cache}"
max_concurrent_runs = 4
shutdown_grace = "1s"
run_on_start = true

[sink]
backend = "local"
{sink_extra}
[sink.local]
dir = "out"

[state]
backend = "local"
[state.local]
dir = "state"

{sources}"#,
            cache = cache_dir().display()
        );
        let path = self.path("siphon.toml");
        std::fs::write(&path, text).expect("config");
        path
    }

    /// Every NDJSON line in the sink, in object-name order.
    pub fn sink_lines(&self) -> Vec<String> {
        self.lines_under("")
    }

    /// Every NDJSON line under `out/<prefix>`, in object-name order. Safe
    /// while a daemon writes: only finished `.ndjson` objects are read, never
    /// the local sink's scratch files (`.<name>.<uuid>.tmp`), which are linked
    /// into place and removed.
    pub fn lines_under(&self, prefix: &str) -> Vec<String> {
        let mut files = Vec::new();
        walk(&self.path("out").join(prefix), &mut files);
        files.sort();
        files
            .iter()
            .filter(|f| f.to_string_lossy().ends_with(".ndjson"))
            .flat_map(|f| {
                let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("object {}: {e}", f.display()));
                text.lines().map(str::to_owned).collect::<Vec<_>>()
            })
            .collect()
    }

    /// Object files in the sink, relative to `out/`, sorted.
    pub fn objects(&self) -> Vec<String> {
        let mut files = Vec::new();
        walk(&self.path("out"), &mut files);
        let root = self.path("out");
        let mut names: Vec<String> =
            files.iter().map(|f| f.strip_prefix(&root).unwrap_or(f).to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    /// The committed cursor of `source`, from its state file.
    pub fn cursor(&self, source: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.path(&format!("state/{source}.json"))).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).expect("state json");
        v["state"]["cursor"].as_str().map(str::to_owned)
    }

    /// Load the config and build a runtime of the real network.
    pub async fn runtime(&self, config: &Path) -> Runtime {
        let settings = Settings::load(config).unwrap_or_else(|e| panic!("config: {e}"));
        Runtime::from_settings(&settings, None).await.unwrap_or_else(|e| panic!("runtime: {e:#}"))
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Shared compile cache, so each test does not recompile the guests.
pub fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/siphon-test-cache")
}

/// A guest component built by `make guests`.
pub fn guest(name: &str) -> PathBuf {
    siphon_harness::guest(name).unwrap_or_else(|e| panic!("{e}"))
}

/// The `siphon` binary (`$SIPHON_BIN`, else `target/debug/siphon`).
pub fn siphon_bin() -> PathBuf {
    let path = std::env::var_os("SIPHON_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/siphon"));
    assert!(path.is_file(), "{} is missing: build it with `cargo build -p siphon` (make test does)", path.display());
    path
}

/// `siphon <args>` run to its end with `env` set (and `RUST_LOG` unset).
pub fn siphon(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = std::process::Command::new(siphon_bin());
    cmd.args(args).env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("siphon runs")
}

/// `siphon run --config <config>` in the background (`RUST_LOG` unset, output piped), killed
/// when the handle drops.
pub fn spawn_daemon(config: &Path) -> tokio::process::Child {
    tokio::process::Command::new(siphon_bin())
        .args(["run", "--config"])
        .arg(config)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("siphon starts")
}

/// Everything a command printed: stdout, then stderr.
pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Fail the test instead of hanging.
pub async fn within<T>(secs: u64, what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {secs} s"))
}

/// Each of `expected` exactly once in `delivered`, and nothing else; returns how many.
pub fn assert_exactly_once(delivered: &[String], expected: &[String]) -> usize {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for key in delivered {
        *seen.entry(key.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "{} records delivered more than once, e.g. {:?}", twice.len(), twice.first());
    let missing: Vec<_> = expected.iter().filter(|k| !seen.contains_key(k.as_str())).collect();
    assert!(missing.is_empty(), "{} of {} records missing, e.g. {:?}", missing.len(), expected.len(), missing.first());
    let expected: HashSet<&str> = expected.iter().map(String::as_str).collect();
    let extra: Vec<_> = seen.keys().filter(|k| !expected.contains(*k)).collect();
    assert!(extra.is_empty(), "{} records delivered that the vendor never had, e.g. {:?}", extra.len(), extra.first());
    delivered.len()
}

/// The `_id` of an NDJSON record.
pub fn id_of(line: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("bad line {line}: {e}"));
    v["_id"].as_str().unwrap_or_else(|| panic!("no _id in {line}")).to_owned()
}

/// Run a source once.
pub async fn run_once(runtime: &Runtime, source: &str) -> siphon::runner::RunReport {
    let src: Arc<_> = runtime.source(source).unwrap_or_else(|| panic!("no source {source}"));
    within(120, "run", siphon::runner::run(runtime, &src)).await
}
