//! `[sink.gcs]` and `[state.gcs]`: a Google Cloud Storage bucket, the
//! credentials to reach it and how hard to retry. Parsed here, validated
//! into [`GcsSettings`], used by `crate::gcs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

/// `[sink.gcs]`: the bucket the SecOps feed reads.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcsSinkConfig {
    /// Bucket name, without `gs://` (e.g. `acme-secops-logs`). Objects go
    /// under `[sink] prefix` / the source's prefix inside it.
    pub bucket: String,
    /// How siphon authenticates: `"adc"` (application default credentials:
    /// `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's login, or the metadata
    /// server of a GCE VM / GKE pod / Cloud Run service), `{
    /// service_account_key = "/path/key.json" }`, or `"anonymous"` (only for
    /// an emulator). Default `"adc"`.
    #[serde(default)]
    pub credentials: GcsCredentialsConfig,
    /// Base URL of the storage service, e.g. `http://127.0.0.1:4443` for an
    /// emulator. Default: the real service, `https://storage.googleapis.com`.
    pub endpoint: Option<String>,
    /// Objects at least this large are uploaded with a resumable session
    /// (one more round trip, but a dropped connection resumes instead of
    /// restarting); smaller ones in a single request. Default 16 MiB.
    #[serde(default = "default_resumable_upload_threshold")]
    pub resumable_upload_threshold: ByteSize,
    /// Retries of failed requests.
    #[serde(default)]
    pub retry: GcsRetryConfig,
}

fn default_resumable_upload_threshold() -> ByteSize {
    ByteSize::mib(16)
}

/// `[state.gcs]`: checkpoints as one object per source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcsStateConfig {
    /// Bucket name, without `gs://`. May be the sink's bucket: keep `prefix`
    /// outside every prefix a SecOps feed reads, or the feed ingests the
    /// checkpoints as logs.
    pub bucket: String,
    /// Object prefix; a source's state is `<prefix>/<source>.json`.
    /// Default `siphon/state`.
    #[serde(default = "default_state_prefix")]
    pub prefix: String,
    /// Same as `[sink.gcs] credentials`. Default `"adc"`.
    #[serde(default)]
    pub credentials: GcsCredentialsConfig,
    /// Same as `[sink.gcs] endpoint`. Default: the real service.
    pub endpoint: Option<String>,
    /// Retries of failed requests.
    #[serde(default)]
    pub retry: GcsRetryConfig,
}

fn default_state_prefix() -> String {
    "siphon/state".to_owned()
}

/// How siphon authenticates to GCS.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GcsCredentialsConfig {
    /// Application default credentials.
    #[default]
    Adc,
    /// No credentials at all: for emulators.
    Anonymous,
    /// A service-account JSON key file, relative to the config file.
    ServiceAccountKey(PathBuf),
}

/// `[sink.gcs.retry]` / `[state.gcs.retry]`: bounded retries of 408, 429,
/// 5xx, timeouts and broken connections. A precondition failure (412) is
/// never retried. Without a bound, the client library would retry for up to
/// five minutes per request while a run holds its records in memory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GcsRetryConfig {
    /// Attempts per request, the first included. Default 5.
    pub max_attempts: u32,
    /// Wait before the first retry; doubled (with jitter) after each one.
    /// Default 1 s.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// Longest wait between two attempts. Default 30 s.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Longest one operation (all its attempts and waits) may take before it
    /// fails. Default 5 min: a 64 MiB object at 2 Mbit/s, plus retries.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for GcsRetryConfig {
    fn default() -> Self {
        GcsRetryConfig {
            max_attempts: 5,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(300),
        }
    }
}

/// Validated connection settings of a GCS sink or state store.
#[derive(Debug, Clone)]
pub struct GcsSettings {
    /// Bucket name (no `gs://`).
    pub bucket: String,
    /// Credentials, key paths made absolute.
    pub credentials: GcsCredentials,
    /// Service base URL without a trailing slash; `None` for the real one.
    pub endpoint: Option<String>,
    /// Single-shot uploads below this many bytes.
    pub resumable_upload_threshold: usize,
    /// Retry policy.
    pub retry: GcsRetryConfig,
}

/// Validated credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GcsCredentials {
    /// Application default credentials.
    Adc,
    /// No credentials (emulators).
    Anonymous,
    /// A service-account key file (absolute path).
    ServiceAccountKey(PathBuf),
}

impl GcsSettings {
    /// `gs://bucket` or `gs://bucket/prefix`, for messages.
    pub fn url(&self, prefix: &str) -> String {
        if prefix.is_empty() { format!("gs://{}", self.bucket) } else { format!("gs://{}/{prefix}", self.bucket) }
    }
}

/// Validate `[sink.gcs]`; problems are relative (`bucket: ...`).
pub(super) fn validate_sink(c: &GcsSinkConfig, resolve: &dyn Fn(&Path) -> PathBuf) -> Result<GcsSettings, Vec<String>> {
    let threshold = usize::try_from(c.resumable_upload_threshold.as_u64()).unwrap_or(usize::MAX);
    connection(&c.bucket, &c.credentials, c.endpoint.as_deref(), &c.retry, threshold, resolve)
}

/// Validate `[state.gcs]`; returns the settings and the prefix without
/// surrounding slashes. State objects are small: always single-shot.
pub(super) fn validate_state(
    c: &GcsStateConfig,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<(GcsSettings, String), Vec<String>> {
    let prefix = c.prefix.trim_matches('/').to_owned();
    let mut problems = Vec::new();
    if let Err(e) = super::check_prefix(&prefix) {
        problems.push(format!("prefix: {e}"));
    }
    match connection(&c.bucket, &c.credentials, c.endpoint.as_deref(), &c.retry, usize::MAX, resolve) {
        Ok(settings) if problems.is_empty() => Ok((settings, prefix)),
        Ok(_) => Err(problems),
        Err(more) => {
            problems.extend(more);
            Err(problems)
        }
    }
}

fn connection(
    bucket: &str,
    credentials: &GcsCredentialsConfig,
    endpoint: Option<&str>,
    retry: &GcsRetryConfig,
    resumable_upload_threshold: usize,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<GcsSettings, Vec<String>> {
    let mut problems = Vec::new();
    if let Err(e) = check_bucket_name(bucket) {
        problems.push(format!("bucket: {e}"));
    }
    let credentials = match credentials {
        GcsCredentialsConfig::Adc => GcsCredentials::Adc,
        GcsCredentialsConfig::Anonymous => GcsCredentials::Anonymous,
        GcsCredentialsConfig::ServiceAccountKey(path) => {
            let path = resolve(path);
            if !path.is_file() {
                problems.push(format!("credentials.service_account_key: file {} does not exist", path.display()));
            }
            GcsCredentials::ServiceAccountKey(path)
        }
    };
    let endpoint = endpoint.map(|e| e.trim_end_matches('/').to_owned());
    if let Some(e) = &endpoint
        && !(e.starts_with("http://") || e.starts_with("https://"))
    {
        problems.push(format!("endpoint: `{e}` must be an http:// or https:// URL"));
    }
    // Bearer tokens in clear text: only an emulator, without credentials,
    // may be reached over plain http.
    if let Some(e) = &endpoint
        && e.starts_with("http://")
        && credentials != GcsCredentials::Anonymous
    {
        problems.push(format!(
            "endpoint: `{e}` is plain http, which would send the credentials' access tokens in clear text; \
             use https, or `credentials = \"anonymous\"` for an emulator"
        ));
    }
    if retry.max_attempts == 0 {
        problems.push("retry.max_attempts: must be at least 1".to_owned());
    }
    if retry.initial_backoff > retry.max_backoff {
        problems.push("retry.initial_backoff: must not exceed retry.max_backoff".to_owned());
    }
    if retry.timeout < Duration::from_secs(1) {
        problems.push("retry.timeout: must be at least 1 s".to_owned());
    }
    if problems.is_empty() {
        Ok(GcsSettings {
            bucket: bucket.to_owned(),
            credentials,
            endpoint,
            resumable_upload_threshold,
            retry: retry.clone(),
        })
    } else {
        Err(problems)
    }
}

/// GCS bucket naming rules, so a typo fails at start-up with a reason
/// instead of as a 400 from the service.
fn check_bucket_name(name: &str) -> Result<(), String> {
    if let Some(rest) = name.strip_prefix("gs://") {
        return Err(format!("`{name}`: write the bucket name only (`{}`)", rest.split('/').next().unwrap_or(rest)));
    }
    let max = if name.contains('.') { 222 } else { 63 };
    let ok_chars = name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if name.len() < 3 || name.len() > max || !ok_chars || !ends_ok(name.chars().next()) || !ends_ok(name.chars().last())
    {
        return Err(format!(
            "`{name}` is not a valid bucket name (3-63 characters of a-z, 0-9, `-`, `_` and `.`, \
             starting and ending with a letter or digit)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_the_gcs_rules() {
        for good in ["abc", "acme-secops-logs", "a_b.c-d", "logs.example.com"] {
            assert!(check_bucket_name(good).is_ok(), "{good}");
        }
        for bad in ["ab", "Acme", "-abc", "abc-", "a b c", &"x".repeat(64)] {
            assert!(check_bucket_name(bad).is_err(), "{bad}");
        }
        let e = check_bucket_name("gs://acme/logs").unwrap_err();
        assert!(e.contains("`acme`"), "{e}");
    }

    fn load(sink_and_state: &str) -> Result<crate::config::Settings, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.wasm"), b"\0asm").unwrap();
        std::fs::write(dir.path().join("key.json"), "{}").unwrap();
        let text = format!(
            "{sink_and_state}\n[sources.ns]\ncollector = \"c.wasm\"\nschedule = \"* * * * *\"\nallowed_hosts = [\"h.com\"]\n"
        );
        crate::config::Settings::from_toml(&text, &dir.path().join("siphon.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_gcs_sink_and_state_resolve_with_defaults() {
        let s = load(
            r#"
[sink]
backend = "gcs"
prefix = "/siem/"
[sink.gcs]
bucket = "acme-secops-logs"
credentials = { service_account_key = "key.json" }
[state]
backend = "gcs"
[state.gcs]
bucket = "acme-siphon-state"
endpoint = "http://127.0.0.1:4443/"
credentials = "anonymous"
retry = { max_attempts = 2 }
"#,
        )
        .unwrap();
        let crate::config::SinkTarget::Gcs(sink) = &s.sink.target else { panic!("not gcs: {:?}", s.sink.target) };
        assert_eq!(sink.bucket, "acme-secops-logs");
        assert!(matches!(&sink.credentials, GcsCredentials::ServiceAccountKey(p) if p.is_absolute()));
        assert_eq!((sink.endpoint.as_deref(), sink.resumable_upload_threshold), (None, 16 << 20));
        assert_eq!((sink.retry.max_attempts, sink.retry.timeout), (5, Duration::from_secs(300)));
        assert_eq!(s.sink.prefix, "siem");
        let crate::config::StateSettings::Gcs { gcs, prefix } = &s.state else { panic!("not gcs") };
        assert_eq!((gcs.bucket.as_str(), prefix.as_str()), ("acme-siphon-state", "siphon/state"));
        assert_eq!(gcs.endpoint.as_deref(), Some("http://127.0.0.1:4443"));
        assert_eq!((gcs.credentials.clone(), gcs.retry.max_attempts), (GcsCredentials::Anonymous, 2));
        assert_eq!(gcs.url("siphon/state/ns.json"), "gs://acme-siphon-state/siphon/state/ns.json");
    }

    #[test]
    fn gcs_problems_are_reported_with_their_path() {
        let e = load(
            r#"
[sink]
backend = "gcs"
[sink.gcs]
bucket = "gs://acme/logs"
endpoint = "storage.example.com"
credentials = { service_account_key = "missing.json" }
retry = { max_attempts = 0 }
[state]
backend = "gcs"
"#,
        )
        .unwrap_err();
        for needle in [
            "sink.gcs.bucket: `gs://acme/logs`: write the bucket name only (`acme`)",
            "sink.gcs.endpoint: `storage.example.com` must be an http:// or https:// URL",
            "sink.gcs.credentials.service_account_key: file",
            "sink.gcs.retry.max_attempts: must be at least 1",
            "state.gcs: missing; backend `gcs` needs `[state.gcs] bucket = ...`",
        ] {
            assert!(e.contains(needle), "missing {needle:?} in:\n{e}");
        }
        let e = load(
            "[sink]\nbackend = \"gcs\"\n[sink.gcs]\nbucket = \"abc\"\nregion = \"eu\"\n[state]\nbackend = \"local\"\n",
        )
        .unwrap_err();
        assert!(e.contains("unknown field `region`"), "{e}");
        let e = load(
            "[sink]\nbackend = \"gcs\"\n[sink.gcs]\nbucket = \"abc\"\nendpoint = \"http://storage.example.com\"\n\
             [state]\nbackend = \"local\"\n",
        )
        .unwrap_err();
        assert!(e.contains("sink.gcs.endpoint: `http://storage.example.com` is plain http"), "{e}");
    }

    #[test]
    fn credentials_have_a_readable_toml_shape() {
        #[derive(Deserialize)]
        struct T {
            credentials: GcsCredentialsConfig,
        }
        let parse = |s: &str| toml::from_str::<T>(s).map(|t| t.credentials);
        assert_eq!(parse("credentials = \"adc\"").unwrap(), GcsCredentialsConfig::Adc);
        assert_eq!(parse("credentials = \"anonymous\"").unwrap(), GcsCredentialsConfig::Anonymous);
        assert_eq!(
            parse("credentials = { service_account_key = \"k.json\" }").unwrap(),
            GcsCredentialsConfig::ServiceAccountKey("k.json".into())
        );
        let e = parse("credentials = \"oauth\"").unwrap_err().to_string();
        assert!(e.contains("adc") && e.contains("service_account_key"), "{e}");
    }
}
