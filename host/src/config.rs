//! The siphon configuration file: TOML parsed into these types, then validated
//! and resolved (paths made absolute, schedules parsed, secrets read) into the
//! runtime [`Settings`] the rest of the host uses.
//!
//! Every table denies unknown keys, so a typo is an error naming the key and
//! line instead of a silently ignored setting. Validation collects every
//! problem it finds and reports them together, each prefixed with its path
//! (`sources.netskope.schedule: ...`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use bytesize::ByteSize;
use croner::Cron;
use serde::Deserialize;

use crate::limits::Limits;
use crate::secrets::{SecretSource, Secrets};

mod gcs;
pub use gcs::{GcsCredentials, GcsCredentialsConfig, GcsRetryConfig, GcsSettings, GcsSinkConfig, GcsStateConfig};

/// The whole configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Engine-wide settings: compile cache, concurrency, shutdown.
    #[serde(default)]
    pub engine: EngineConfig,
    /// Where collected records are written.
    pub sink: SinkConfig,
    /// Where each source's checkpoint is kept.
    pub state: StateConfig,
    /// The daemon's HTTP listener: health, readiness, status page, metrics.
    pub http: Option<HttpConfig>,
    /// The older name of `[http]`: `[metrics] listen` serves the same
    /// endpoints. Kept so existing configs work; not both.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// The sources to collect, keyed by source name. The name appears in
    /// object names, state file names and every log line of the source.
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
}

/// `[engine]`: how collector components are compiled and run.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Directory for compiled components, so a restart does not recompile
    /// (compiling takes 0.1-1 s per collector, loading a cached one ~1 ms).
    /// Relative to the config file. Default: `.siphon-cache`.
    pub cache_dir: PathBuf,
    /// Most runs executing at once across all sources. Each run holds one
    /// instance (its memory cap) and one page of records, so this bounds the
    /// daemon's memory. Default 4.
    pub max_concurrent_runs: usize,
    /// On SIGTERM/SIGINT, how long in-flight runs may take to finish before
    /// they are abandoned. An abandoned run commits nothing more; its
    /// uncommitted work is repeated by the next run. Default 30 s.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Run every source once as soon as the daemon starts, then follow the
    /// schedules. Useful after a deploy or for a demo. Default false.
    pub run_on_start: bool,
    /// Also reload (as on SIGHUP) when the config file or a collector file
    /// changes, checking this often, e.g. `"30s"`. For Kubernetes, where a
    /// changed ConfigMap reaches the pod's files but nobody sends SIGHUP.
    /// Default: off.
    #[serde(with = "humantime_serde")]
    pub watch: Option<Duration>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            cache_dir: PathBuf::from(".siphon-cache"),
            max_concurrent_runs: 4,
            shutdown_grace: Duration::from_secs(30),
            run_on_start: false,
            watch: None,
        }
    }
}

/// `[metrics]`: the older spelling of `[http] listen`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address to serve the daemon's endpoints on (as `[http] listen`).
    /// Off when absent.
    pub listen: Option<SocketAddr>,
}

/// `[http]`: the daemon's one HTTP listener. It serves `/healthz`,
/// `/readyz`, `/status` (JSON), `/` (the status page) and `/metrics`
/// (Prometheus). Without the table (and without `[metrics] listen`) the
/// daemon listens nowhere.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to listen on. Default `127.0.0.1:9464`: loopback, because the
    /// page shows source names, errors and collector paths. Use
    /// `0.0.0.0:9464` where a supervisor on another address probes it
    /// (Kubernetes).
    pub listen: SocketAddr,
    /// How often the sink and the state store are probed for `/readyz`
    /// (a GCS bucket: an empty object created, read and deleted). Default 60 s.
    #[serde(with = "humantime_serde")]
    pub probe_interval: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { listen: SocketAddr::from(([127, 0, 0, 1], 9464)), probe_interval: Duration::from_secs(60) }
    }
}

/// Which backend a sink or state store uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A directory on the local filesystem.
    Local,
    /// A Google Cloud Storage bucket.
    Gcs,
}

/// `[sink]`: how records become objects, and where the objects go.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Storage backend: `local` (a directory) or `gcs` (a bucket).
    pub backend: Backend,
    /// Root prefix for every object, e.g. `siem`. Default: none.
    #[serde(default)]
    pub prefix: String,
    /// Write `.ndjson.gz` (gzip) instead of `.ndjson`. Default false.
    #[serde(default)]
    pub gzip: bool,
    /// Start a new object after this many records. A single commit of more
    /// records is split across objects. Default 100 000.
    #[serde(default = "default_max_records")]
    pub max_records: usize,
    /// Start a new object once this much NDJSON (before gzip) is in the
    /// current one. Default 64 MiB.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: ByteSize,
    /// Settings of the `local` backend.
    pub local: Option<LocalDirConfig>,
    /// Settings of the `gcs` backend.
    pub gcs: Option<GcsSinkConfig>,
}

fn default_max_records() -> usize {
    100_000
}

fn default_max_bytes() -> ByteSize {
    ByteSize::mib(64)
}

/// `[sink.local]` / `[state.local]`: a local directory.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalDirConfig {
    /// Directory, created if missing. Relative to the config file.
    pub dir: PathBuf,
}

/// `[state]`: where checkpoints live.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Storage backend: `local` (a directory) or `gcs` (a bucket).
    pub backend: Backend,
    /// Settings of the `local` backend.
    pub local: Option<LocalDirConfig>,
    /// Settings of the `gcs` backend.
    pub gcs: Option<GcsStateConfig>,
}

/// `[sources.<name>]`: one stream to collect.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Collector component (`.wasm`), relative to the config file.
    pub collector: PathBuf,
    /// When to run: a 5-field cron expression in UTC (`*/5 * * * *`), or
    /// 6 fields with seconds first.
    pub schedule: String,
    /// Random delay up to this long before each scheduled run, so sources on
    /// the same schedule do not hit the network at the same instant.
    /// Default 0 s.
    #[serde(default, with = "humantime_serde")]
    pub jitter: Option<Duration>,
    /// Set to false to keep the source configured but never scheduled.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Object name prefix for this source under the sink's root prefix.
    /// Default: the source name. A SecOps feed reads one prefix per log type.
    pub prefix: Option<String>,
    /// Hosts the collector may call: `host` (the scheme's default port,
    /// 443 or 80), `host:port`, `host:*` (any port), `*.domain[:port]`, or an
    /// IP address (`127.0.0.1:8089`, `[::1]:8089`). Matched on the request's
    /// URI authority, never on a Host header.
    pub allowed_hosts: Vec<String>,
    /// Allow plain `http://` to the allowed hosts (for local mock servers).
    /// Default false: only `https://` leaves the host.
    #[serde(default)]
    pub allow_http: bool,
    /// Let allowed host *names* resolve to loopback, link-local (such as the
    /// cloud metadata service 169.254.169.254), private, CGNAT or unique-local
    /// addresses. Default false: a name that resolves only to such addresses
    /// is refused, so a compromised DNS answer or a vendor domain pointed at
    /// an internal address cannot reach the daemon's own network. An entry
    /// that is an IP address (the mocks' `127.0.0.1:8089`) is never filtered.
    #[serde(default)]
    pub allow_private_addresses: bool,
    /// Collector settings. Strings are passed as-is, numbers and booleans as
    /// their TOML text, arrays of strings as JSON.
    #[serde(default)]
    pub settings: BTreeMap<String, toml::Value>,
    /// Collector secrets, each `{ env = "VAR" }` or `{ file = "/path" }`.
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretSource>,
    /// Resource and network limits for this source's runs.
    #[serde(default)]
    pub limits: Limits,
}

fn default_true() -> bool {
    true
}

/// A problem found while validating the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (unknown key, wrong type).
    #[error("{path}: {message}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// toml's message, naming the key and line.
        message: String,
    },
    /// Semantic problems, one line each, prefixed with the field path.
    #[error("{path}: invalid configuration:\n  - {}", problems.join("\n  - "))]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<String>,
    },
}

/// The validated configuration the host runs with.
#[derive(Debug)]
pub struct Settings {
    /// The config file this was loaded from.
    pub path: PathBuf,
    /// Engine-wide settings (cache dir made absolute).
    pub engine: EngineConfig,
    /// Sink settings (directories made absolute).
    pub sink: SinkSettings,
    /// State directory, absolute.
    pub state: StateSettings,
    /// The HTTP listener (`[http]`, or `[metrics] listen`); none: off.
    pub http: Option<HttpConfig>,
    /// Sources by name.
    pub sources: BTreeMap<String, SourceSpec>,
}

/// Validated `[sink]`.
#[derive(Debug, Clone)]
pub struct SinkSettings {
    /// Backend and its location.
    pub target: SinkTarget,
    /// Root prefix, without leading or trailing slashes.
    pub prefix: String,
    /// gzip objects.
    pub gzip: bool,
    /// Records per object.
    pub max_records: usize,
    /// NDJSON bytes per object.
    pub max_bytes: u64,
}

/// Where a sink writes.
#[derive(Debug, Clone)]
pub enum SinkTarget {
    /// A local directory.
    Local {
        /// Absolute directory.
        dir: PathBuf,
    },
    /// A GCS bucket.
    Gcs(GcsSettings),
}

/// Validated `[state]`.
#[derive(Debug, Clone)]
pub enum StateSettings {
    /// A local directory of one JSON file per source.
    Local {
        /// Absolute directory.
        dir: PathBuf,
    },
    /// One object per source in a GCS bucket.
    Gcs {
        /// Bucket and connection.
        gcs: GcsSettings,
        /// Object prefix without surrounding slashes.
        prefix: String,
    },
}

/// A validated source, ready to schedule and run.
#[derive(Clone)]
pub struct SourceSpec {
    /// Source name.
    pub name: String,
    /// Absolute path of the collector component.
    pub collector: PathBuf,
    /// Schedule text as configured, for messages.
    pub schedule_text: String,
    /// Parsed schedule.
    pub schedule: Cron,
    /// Maximum random start delay.
    pub jitter: Duration,
    /// Whether the scheduler runs it.
    pub enabled: bool,
    /// Object prefix for this source under the sink root.
    pub prefix: String,
    /// Allow-listed hosts.
    pub allowed_hosts: Vec<crate::egress::HostPattern>,
    /// Whether plain http is allowed.
    pub allow_http: bool,
    /// Whether host names may resolve to non-public addresses.
    pub allow_private_addresses: bool,
    /// Settings as passed to the collector.
    pub settings: BTreeMap<String, String>,
    /// Secret values, redacted in Debug.
    pub secrets: Secrets,
    /// Limits.
    pub limits: Limits,
}

impl fmt::Debug for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceSpec")
            .field("name", &self.name)
            .field("collector", &self.collector)
            .field("schedule", &self.schedule_text)
            .field("secrets", &self.secrets)
            .finish_non_exhaustive()
    }
}

impl SourceSpec {
    /// A source with no settings, secrets or hosts, used to call a
    /// collector's `info` export outside of any run.
    pub fn placeholder() -> anyhow::Result<SourceSpec> {
        Ok(SourceSpec {
            name: "info".to_owned(),
            collector: PathBuf::new(),
            schedule_text: "0 0 * * *".to_owned(),
            schedule: Cron::from_str("0 0 * * *")?,
            jitter: Duration::ZERO,
            enabled: false,
            prefix: String::new(),
            allowed_hosts: Vec::new(),
            allow_http: false,
            allow_private_addresses: false,
            settings: BTreeMap::new(),
            secrets: Secrets::default(),
            limits: Limits::default(),
        })
    }
}

/// Whether loading a config reads the sources' secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretsMode {
    /// Read every secret (and fail on a missing variable or file): for
    /// anything that runs collectors.
    Read,
    /// Check only how secrets are configured and leave their values empty:
    /// for tools that never run a collector (`siphon state`, `siphon status`,
    /// which need no vendor token).
    Skip,
}

impl Settings {
    /// Read, parse and validate a config file.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        Self::load_with(path, SecretsMode::Read)
    }

    /// [`Settings::load`], reading secrets or not.
    pub fn load_with(path: &Path, secrets: SecretsMode) -> Result<Settings, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::from_toml_with(&text, path, secrets)
    }

    /// Parse and validate config text; `path` locates relative paths and
    /// names the file in errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Settings, ConfigError> {
        Self::from_toml_with(text, path, SecretsMode::Read)
    }

    /// [`Settings::from_toml`], reading secrets or not.
    pub fn from_toml_with(text: &str, path: &Path, secrets: SecretsMode) -> Result<Settings, ConfigError> {
        let config: Config = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: path.to_owned(), message: e.to_string().trim_end().to_owned() })?;
        let base =
            path.parent().map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p }).unwrap_or(Path::new("."));
        let base = std::path::absolute(base).unwrap_or_else(|_| base.to_owned());
        let mut settings = validate(config, &base, secrets)
            .map_err(|problems| ConfigError::Invalid { path: path.to_owned(), problems })?;
        settings.path = path.to_owned();
        Ok(settings)
    }
}

fn validate(config: Config, base: &Path, secrets: SecretsMode) -> Result<Settings, Vec<String>> {
    let mut problems = Vec::new();
    let resolve = |p: &Path| {
        if p.is_absolute() { p.to_owned() } else { base.join(p) }
    };

    if config.engine.max_concurrent_runs == 0 {
        problems.push("engine.max_concurrent_runs: must be at least 1".to_owned());
    }
    if config.engine.watch.is_some_and(|w| w < Duration::from_secs(1)) {
        problems.push("engine.watch: must be at least 1s".to_owned());
    }
    let engine = EngineConfig { cache_dir: resolve(&config.engine.cache_dir), ..config.engine };

    let sink_target = match config.sink.backend {
        Backend::Local => match &config.sink.local {
            Some(local) => Some(SinkTarget::Local { dir: resolve(&local.dir) }),
            None => {
                problems.push("sink.local: missing; backend `local` needs `[sink.local] dir = ...`".into());
                None
            }
        },
        Backend::Gcs => match &config.sink.gcs {
            Some(c) => gcs::validate_sink(c, &resolve)
                .map_err(|e| problems.extend(e.into_iter().map(|e| format!("sink.gcs.{e}"))))
                .ok()
                .map(SinkTarget::Gcs),
            None => {
                problems.push("sink.gcs: missing; backend `gcs` needs `[sink.gcs] bucket = ...`".into());
                None
            }
        },
    };
    if config.sink.max_records == 0 {
        problems.push("sink.max_records: must be at least 1".to_owned());
    }
    if config.sink.max_bytes.as_u64() < 1024 {
        problems.push("sink.max_bytes: must be at least 1 KiB".to_owned());
    }
    let sink_prefix = config.sink.prefix.trim_matches('/').to_owned();
    if let Err(e) = check_prefix(&sink_prefix) {
        problems.push(format!("sink.prefix: {e}"));
    }
    let state = match config.state.backend {
        Backend::Local => match &config.state.local {
            Some(local) => Some(StateSettings::Local { dir: resolve(&local.dir) }),
            None => {
                problems.push("state.local: missing; backend `local` needs `[state.local] dir = ...`".into());
                None
            }
        },
        Backend::Gcs => match &config.state.gcs {
            Some(c) => gcs::validate_state(c, &resolve)
                .map_err(|e| problems.extend(e.into_iter().map(|e| format!("state.gcs.{e}"))))
                .ok()
                .map(|(gcs, prefix)| StateSettings::Gcs { gcs, prefix }),
            None => {
                problems.push("state.gcs: missing; backend `gcs` needs `[state.gcs] bucket = ...`".into());
                None
            }
        },
    };

    let http = match (config.http, config.metrics.listen) {
        (Some(_), Some(_)) => {
            problems.push("metrics.listen: `[metrics]` is the older name of `[http]`; keep only `[http]`".into());
            None
        }
        (Some(http), None) => Some(http),
        (None, Some(listen)) => Some(HttpConfig { listen, ..HttpConfig::default() }),
        (None, None) => None,
    };
    if http.as_ref().is_some_and(|h| h.probe_interval < Duration::from_secs(1)) {
        problems.push("http.probe_interval: must be at least 1s".into());
    }

    if config.sources.is_empty() {
        problems.push("sources: no source is configured; add a `[sources.<name>]` table".into());
    }
    let mut sources = BTreeMap::new();
    for (name, source) in config.sources {
        let at = format!("sources.{name}");
        match validate_source(&name, source, &resolve, secrets) {
            Ok(spec) => {
                sources.insert(name, spec);
            }
            Err(errs) => problems.extend(errs.into_iter().map(|e| format!("{at}.{e}"))),
        }
    }

    match (sink_target, state, problems.is_empty()) {
        (Some(target), Some(state), true) => Ok(Settings {
            path: PathBuf::new(),
            engine,
            sink: SinkSettings {
                target,
                prefix: sink_prefix,
                gzip: config.sink.gzip,
                max_records: config.sink.max_records,
                max_bytes: config.sink.max_bytes.as_u64(),
            },
            state,
            http,
            sources,
        }),
        _ => Err(problems),
    }
}

/// Validates one source; problems are returned relative to the source
/// (`schedule: ...`), the caller adds `sources.<name>.`.
fn validate_source(
    name: &str,
    source: SourceConfig,
    resolve: &dyn Fn(&Path) -> PathBuf,
    secrets_mode: SecretsMode,
) -> Result<SourceSpec, Vec<String>> {
    let mut problems = Vec::new();
    if !valid_source_name(name) {
        problems.push(
            "name: must be 1-63 characters of a-z, 0-9, `-` or `_`, starting with a letter or digit \
             (it is used in object and state file names)"
                .to_owned(),
        );
    }
    let schedule = match Cron::from_str(source.schedule.trim()) {
        Ok(cron) => Some(cron),
        Err(e) => {
            problems.push(format!("schedule: invalid cron expression `{}`: {e}", source.schedule));
            None
        }
    };
    let collector = resolve(&source.collector);
    if !collector.is_file() {
        problems.push(format!("collector: file {} does not exist", collector.display()));
    }
    let mut allowed_hosts = Vec::new();
    if source.allowed_hosts.is_empty() {
        problems.push("allowed_hosts: empty; list the vendor hosts the collector may call".into());
    }
    for host in &source.allowed_hosts {
        match crate::egress::HostPattern::parse(host) {
            Ok(p) => allowed_hosts.push(p),
            Err(e) => problems.push(format!("allowed_hosts: `{host}`: {e}")),
        }
    }
    let mut settings = BTreeMap::new();
    for (key, value) in &source.settings {
        match setting_text(value) {
            Ok(text) => {
                settings.insert(key.clone(), text);
            }
            Err(e) => problems.push(format!("settings.{key}: {e}")),
        }
    }
    let mut secrets = Secrets::default();
    for (key, value) in &source.secrets {
        match value {
            SecretSource::Inline(_) => problems.push(format!(
                "secrets.{key}: secrets must not be written in the config file; \
                 use `{{ env = \"VAR\" }}` or `{{ file = \"/path\" }}`"
            )),
            SecretSource::Ref(r) if secrets_mode == SecretsMode::Skip => {
                if r.env.is_some() == r.file.is_some() {
                    problems.push(format!("secrets.{key}: set exactly one of `env` or `file`"));
                }
            }
            SecretSource::Ref(r) => match r.read(resolve) {
                Ok(secret) => secrets.insert(key.clone(), secret),
                Err(e) => problems.push(format!("secrets.{key}: {e}")),
            },
        }
    }
    if let Err(e) = source.limits.validate() {
        problems.extend(e.into_iter().map(|e| format!("limits.{e}")));
    }
    let prefix = source.prefix.as_deref().unwrap_or(name).trim_matches('/').to_owned();
    if let Err(e) = check_prefix(&prefix) {
        problems.push(format!("prefix: {e}"));
    }
    match (schedule, problems.is_empty()) {
        (Some(schedule), true) => Ok(SourceSpec {
            name: name.to_owned(),
            collector,
            schedule_text: source.schedule,
            schedule,
            jitter: source.jitter.unwrap_or_default(),
            enabled: source.enabled,
            prefix,
            allowed_hosts,
            allow_http: source.allow_http,
            allow_private_addresses: source.allow_private_addresses,
            settings,
            secrets,
            limits: source.limits,
        }),
        _ => Err(problems),
    }
}

/// Source names end up in object names and file names: keep them boring.
fn valid_source_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.split('/').any(|seg| seg == ".." || seg == ".") {
        return Err(format!("`{prefix}` must not contain `.` or `..` segments"));
    }
    if prefix.contains("//") || prefix.chars().any(|c| c.is_control() || c == '\\') {
        return Err(format!("`{prefix}` must not contain empty segments, `\\` or control characters"));
    }
    Ok(())
}

/// The text form of a setting, as documented on `config.setting` in the WIT.
fn setting_text(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        toml::Value::Array(items) => {
            let strings: Option<Vec<&str>> = items.iter().map(|v| v.as_str()).collect();
            let strings = strings.ok_or("arrays may only hold strings")?;
            serde_json::to_string(&strings).map_err(|e| e.to_string())
        }
        toml::Value::Datetime(d) => Ok(d.to_string()),
        toml::Value::Table(_) => Err("tables are not supported as setting values".to_owned()),
    }
}

#[cfg(test)]
mod tests;
