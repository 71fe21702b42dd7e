//! What the GCS sink and the GCS state store share: building the client
//! (`google-cloud-storage`, JSON API) with its credentials and a bounded
//! retry policy, the four object operations both need, classification of
//! service errors, and the start-up probe that proves a bucket is writable.
//!
//! Every operation is bounded twice: the client retries 408/429/5xx, timeouts
//! and broken connections at most `retry.max_attempts` times with
//! exponential backoff, and the whole operation fails after `retry.timeout`.
//! A 412 (precondition failed) is permanent: it is how create-only writes and
//! generation-matched replacements report that someone else got there first.
//! Each retry is logged (WARN) with what failed, and a final error says what
//! was tried: the endpoint, how long, and the retry limits.
//!
//! Deleting is not in the crate's JSON-API client (it is part of the gRPC
//! `StorageControl`, which emulators do not serve), so [`GcsClient::delete`]
//! sends the JSON API's `DELETE` itself with the same credentials.

use std::time::Duration;

use bytes::Bytes;
use google_cloud_auth::credentials::{self, Credentials};
use google_cloud_gax::exponential_backoff::ExponentialBackoffBuilder;
use google_cloud_gax::retry_policy::{RetryPolicy, RetryPolicyExt};
use google_cloud_gax::retry_result::RetryResult;
use google_cloud_gax::retry_state::RetryState;
use google_cloud_gax::throttle_result::ThrottleResult;
use google_cloud_storage::client::Storage;
use google_cloud_storage::retry_policy::RetryableErrors;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::config::{GcsCredentials, GcsSettings};

/// The real service, when no `endpoint` is configured.
pub const DEFAULT_ENDPOINT: &str = "https://storage.googleapis.com";

/// The role whose permissions siphon needs on its buckets.
pub const NEEDED_ROLE: &str = "roles/storage.objectAdmin (Storage Object Admin)";

/// Unreserved characters stay as they are in a JSON-API object path.
const OBJECT_PATH: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// What went wrong, as far as callers branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 404: the object, or the bucket, does not exist.
    NotFound,
    /// 412: a generation precondition did not hold.
    PreconditionFailed,
    /// 403: the credentials lack a permission.
    Forbidden,
    /// 401: the service rejected the credentials.
    Unauthenticated,
    /// No credentials could be obtained (no ADC, metadata server unreachable,
    /// unusable key file).
    NoCredentials,
    /// The operation ran out of time (after its retries).
    Timeout,
    /// Anything else, after retries.
    Other,
}

/// A failed GCS operation; `message` names the object as `gs://bucket/name`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct GcsError {
    /// Classification.
    pub kind: ErrorKind,
    /// What failed and what the service said.
    pub message: String,
}

/// Install ring as rustls' process-wide crypto provider. The GCS crates are
/// built without their own provider (see `host/Cargo.toml`); wasmtime-wasi-http
/// uses ring too. Safe to call more than once.
pub fn install_crypto_provider() {
    // Err means a provider is installed already, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client bound to one bucket.
#[derive(Clone, Debug)]
pub struct GcsClient {
    storage: Storage,
    credentials: Credentials,
    http: reqwest::Client,
    endpoint: String,
    bucket: String,
    bucket_path: String,
    settings: GcsSettings,
}

impl GcsClient {
    /// Build a client for `settings.bucket`. Fails only on unusable
    /// credentials (e.g. an unreadable key file); reachability is checked by
    /// [`GcsClient::probe`].
    pub async fn connect(settings: &GcsSettings) -> Result<GcsClient, GcsError> {
        install_crypto_provider();
        let unauthenticated = |message: String| GcsError { kind: ErrorKind::NoCredentials, message };
        let credentials = match &settings.credentials {
            GcsCredentials::Adc => credentials::Builder::default().build().map_err(|e| {
                unauthenticated(format!(
                    "no application default credentials for gs://{}: {e} (set GOOGLE_APPLICATION_CREDENTIALS, \
                     run on a GCP runtime with a service account, or configure `credentials = \
                     {{ service_account_key = \"/path/key.json\" }}`)",
                    settings.bucket
                ))
            })?,
            GcsCredentials::Anonymous => credentials::anonymous::Builder::new().build(),
            GcsCredentials::ServiceAccountKey(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| unauthenticated(format!("cannot read service-account key {}: {e}", path.display())))?;
                let json: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| unauthenticated(format!("service-account key {} is not JSON: {e}", path.display())))?;
                credentials::service_account::Builder::new(json).build().map_err(|e| {
                    unauthenticated(format!("service-account key {} is not usable: {e}", path.display()))
                })?
            }
        };
        let retry = &settings.retry;
        let backoff = ExponentialBackoffBuilder::new()
            .with_initial_delay(retry.initial_backoff)
            .with_maximum_delay(retry.max_backoff)
            .clamp();
        let endpoint = settings.endpoint.clone().unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
        let mut builder = Storage::builder()
            .with_credentials(credentials.clone())
            .with_retry_policy(Logged(
                RetryableErrors.with_attempt_limit(retry.max_attempts).with_time_limit(retry.timeout),
            ))
            .with_backoff_policy(backoff)
            .with_resumable_upload_threshold(settings.resumable_upload_threshold);
        if settings.endpoint.is_some() {
            builder = builder.with_endpoint(endpoint.clone());
        }
        // Boxed here and in `bounded`: the client's futures are large, and
        // unboxed they overflow a 2 MiB worker or test thread in debug builds.
        let storage = Box::pin(builder.build()).await.map_err(|e| GcsError {
            kind: ErrorKind::Other,
            message: format!("cannot create a GCS client for gs://{}: {e}", settings.bucket),
        })?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(retry.timeout)
            .build()
            .map_err(|e| GcsError {
            kind: ErrorKind::Other,
            message: format!("cannot create an HTTP client: {e}"),
        })?;
        Ok(GcsClient {
            storage,
            credentials,
            http,
            endpoint,
            bucket: settings.bucket.clone(),
            bucket_path: format!("projects/_/buckets/{}", settings.bucket),
            settings: settings.clone(),
        })
    }

    /// The bucket name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// `gs://bucket/name`.
    pub fn url(&self, name: &str) -> String {
        self.settings.url(name)
    }

    /// Write `body` as `name` if the object's generation is `if_generation_match`
    /// (0: only if it does not exist). Returns the new generation.
    pub async fn write(
        &self,
        name: &str,
        body: Bytes,
        content_type: &str,
        if_generation_match: i64,
    ) -> Result<i64, GcsError> {
        let call = self
            .storage
            .write_object(&self.bucket_path, name, body)
            .set_content_type(content_type)
            .set_if_generation_match(if_generation_match)
            .send_buffered();
        let object = self.bounded(name, "write", call).await?;
        Ok(object.generation)
    }

    /// The object's bytes and generation, or `None` if it does not exist.
    pub async fn read(&self, name: &str) -> Result<Option<(Bytes, i64)>, GcsError> {
        let call = async {
            let mut response = self.storage.read_object(&self.bucket_path, name).send().await?;
            let generation = response.object().generation;
            let mut body = Vec::new();
            while let Some(chunk) = response.next().await.transpose()? {
                body.extend_from_slice(&chunk);
            }
            Ok((Bytes::from(body), generation))
        };
        match self.bounded(name, "read", call).await {
            Ok(found) => Ok(Some(found)),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether the object exists and holds records (see
    /// [`crate::sink::holds_records`]): an object larger than a claim can be
    /// is not read; a small one is read in full. The size comes from
    /// `x-goog-stored-content-length`, which emulators may leave out; then
    /// the body is read until it is too large for a claim.
    pub async fn holds_data(&self, name: &str) -> Result<bool, GcsError> {
        let call = async {
            let mut response = self.storage.read_object(&self.bucket_path, name).send().await?;
            if response.object().size as u64 > crate::sink::CLAIM_MAX_BYTES {
                return Ok(true);
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.next().await.transpose()? {
                body.extend_from_slice(&chunk);
                if body.len() as u64 > crate::sink::CLAIM_MAX_BYTES {
                    return Ok(true);
                }
            }
            Ok(crate::sink::holds_records(&body))
        };
        match self.bounded(name, "check", call).await {
            Ok(found) => Ok(found),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Delete the object; a missing one is not an error. Retried like the
    /// client's own calls (it is idempotent).
    pub async fn delete(&self, name: &str) -> Result<(), GcsError> {
        let url = format!(
            "{}/storage/v1/b/{}/o/{}",
            self.endpoint,
            utf8_percent_encode(&self.bucket, OBJECT_PATH),
            utf8_percent_encode(name, OBJECT_PATH)
        );
        let retry = &self.settings.retry;
        let deadline = tokio::time::Instant::now() + retry.timeout;
        let mut wait = retry.initial_backoff;
        let mut attempt = 1;
        loop {
            let failure = match self.delete_once(&url).await {
                Ok(status) if status.is_success() || status.as_u16() == 404 => return Ok(()),
                Ok(status) => (Some(status.as_u16()), format!("HTTP {status}")),
                Err(e) => (None, e),
            };
            let retryable = failure.0.is_none_or(|s| s == 408 || s == 429 || s >= 500);
            let now = tokio::time::Instant::now();
            if !retryable || attempt >= retry.max_attempts || now + wait >= deadline {
                let kind = failure.0.map_or(ErrorKind::Other, kind_of_status);
                return Err(GcsError {
                    kind,
                    message: format!("cannot delete {} (attempt {attempt}): {}", self.url(name), failure.1),
                });
            }
            tokio::time::sleep(jitter(wait)).await;
            wait = (wait * 2).min(retry.max_backoff);
            attempt += 1;
        }
    }

    async fn delete_once(&self, url: &str) -> Result<reqwest::StatusCode, String> {
        let headers = match self.credentials.headers(http::Extensions::new()).await {
            Ok(credentials::CacheableResource::New { data, .. }) => data,
            Ok(credentials::CacheableResource::NotModified) => http::HeaderMap::new(),
            Err(e) => return Err(format!("cannot get an access token: {e}")),
        };
        let response = self.http.delete(url).headers(headers).send().await.map_err(|e| e.to_string())?;
        Ok(response.status())
    }

    /// Prove the bucket is usable: create an empty object under `prefix`
    /// (create-only), read it back, delete it. Errors say which bucket and
    /// which permission is missing. The probe is empty, so a feed that happens
    /// to copy it ingests nothing.
    pub async fn probe(&self, prefix: &str) -> Result<(), GcsError> {
        let dir = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
        let name = format!("{dir}.siphon-health/probe-{}", uuid::Uuid::new_v4().simple());
        let explain = |e: GcsError, verb: &str, permission: &str| GcsError {
            kind: e.kind,
            message: match e.kind {
                ErrorKind::NotFound => format!(
                    "bucket gs://{} does not exist (or the credentials cannot see it): {}",
                    self.bucket, e.message
                ),
                ErrorKind::Forbidden => format!(
                    "credentials cannot {verb} objects in gs://{}: grant {NEEDED_ROLE} on the bucket — \
                     {permission} is missing (storage.objects.create, get and delete are needed): {}",
                    self.bucket, e.message
                ),
                ErrorKind::Unauthenticated => {
                    format!("GCS rejected the credentials for gs://{}: {}", self.bucket, e.message)
                }
                ErrorKind::NoCredentials => format!(
                    "no credentials for gs://{} ({}): {}",
                    self.bucket,
                    match &self.settings.credentials {
                        GcsCredentials::Adc =>
                            "application default credentials: set GOOGLE_APPLICATION_CREDENTIALS \
                            to a key file, run on a GCP runtime with a service account, or configure \
                            `credentials = { service_account_key = \"/path/key.json\" }`",
                        GcsCredentials::ServiceAccountKey(_) => "the service-account key",
                        GcsCredentials::Anonymous => "anonymous",
                    },
                    e.message
                ),
                _ => format!("gs://{} is not usable: {}", self.bucket, e.message),
            },
        };
        self.write(&name, Bytes::new(), "text/plain", 0)
            .await
            .map_err(|e| explain(e, "create", "storage.objects.create"))?;
        let read = self.read(&name).await.map_err(|e| explain(e, "read", "storage.objects.get"))?;
        if !matches!(&read, Some((body, _)) if body.is_empty()) {
            return Err(GcsError {
                kind: ErrorKind::Other,
                message: format!(
                    "gs://{}: the probe object {} did not read back as written",
                    self.bucket,
                    self.url(&name)
                ),
            });
        }
        self.delete(&name).await.map_err(|e| explain(e, "delete", "storage.objects.delete"))
    }

    /// Run one client call under the overall deadline and classify its error;
    /// one that took retries says what was tried.
    async fn bounded<T>(
        &self,
        name: &str,
        what: &str,
        call: impl Future<Output = google_cloud_storage::Result<T>>,
    ) -> Result<T, GcsError> {
        let retry = &self.settings.retry;
        let timeout = retry.timeout;
        let started = tokio::time::Instant::now();
        match tokio::time::timeout(timeout, Box::pin(call)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                let mut error = classify(&e, &format!("cannot {what} {}", self.url(name)));
                let elapsed = started.elapsed();
                if e.http_status_code().is_none() && (e.is_connect() || e.is_transport() || e.is_io()) {
                    error.message =
                        format!("cannot {what} {}: cannot reach {}: {}", self.url(name), self.endpoint, root_cause(&e));
                }
                if elapsed >= retry.initial_backoff {
                    error.message = format!(
                        "{} (gave up after {:.1} s of retries: retry.max_attempts = {}, retry.timeout = {:?})",
                        error.message,
                        elapsed.as_secs_f64(),
                        retry.max_attempts,
                        retry.timeout
                    );
                }
                Err(error)
            }
            Err(_) => Err(GcsError {
                kind: ErrorKind::Timeout,
                message: format!("cannot {what} {}: no success within {timeout:?} (retry.timeout)", self.url(name)),
            }),
        }
    }
}

/// Map a client error to a kind and a message starting with `context`.
pub fn classify(e: &google_cloud_storage::Error, context: &str) -> GcsError {
    use google_cloud_gax::error::rpc::Code;
    let kind = if let Some(status) = e.http_status_code() {
        kind_of_status(status)
    } else if e.is_authentication() {
        ErrorKind::NoCredentials
    } else if e.is_timeout() {
        ErrorKind::Timeout
    } else {
        match e.status().map(|s| s.code) {
            Some(Code::NotFound) => ErrorKind::NotFound,
            Some(Code::FailedPrecondition) => ErrorKind::PreconditionFailed,
            Some(Code::PermissionDenied) => ErrorKind::Forbidden,
            Some(Code::Unauthenticated) => ErrorKind::Unauthenticated,
            Some(Code::DeadlineExceeded) => ErrorKind::Timeout,
            _ => ErrorKind::Other,
        }
    };
    let said = service_message(e).unwrap_or_else(|| e.to_string());
    let status = e.http_status_code().map(|s| format!("HTTP {s}: ")).unwrap_or_default();
    GcsError { kind, message: format!("{context}: {status}{said}") }
}

fn kind_of_status(status: u16) -> ErrorKind {
    match status {
        401 => ErrorKind::Unauthenticated,
        403 => ErrorKind::Forbidden,
        404 => ErrorKind::NotFound,
        408 | 504 => ErrorKind::Timeout,
        412 => ErrorKind::PreconditionFailed,
        _ => ErrorKind::Other,
    }
}

/// The `error.message` of a JSON-API error body, or the RPC status message.
fn service_message(e: &google_cloud_storage::Error) -> Option<String> {
    if let Some(payload) = e.http_payload()
        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload)
        && let Some(m) = v["error"]["message"].as_str()
    {
        return Some(m.to_owned());
    }
    e.status().map(|s| s.message.clone()).filter(|m| !m.is_empty())
}

/// The innermost error of `e`'s source chain: what actually failed
/// (`Connection refused (os error 111)`), without the request URL around it.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// The client's retry policy, with every retry logged: a bucket that keeps
/// failing is visible while it is retried, not only at the end.
#[derive(Debug)]
struct Logged<P>(P);

impl<P: RetryPolicy> RetryPolicy for Logged<P> {
    fn on_error(&self, state: &RetryState, error: google_cloud_gax::error::Error) -> RetryResult {
        let result = self.0.on_error(state, error);
        if let RetryResult::Continue(e) = &result {
            let status = e.http_status_code().map(|s| format!("HTTP {s}: ")).unwrap_or_default();
            tracing::warn!(attempt = state.attempt_count, error = %format!("{status}{}", root_cause(e)),
                "GCS request failed; retrying");
        }
        result
    }

    fn on_throttle(&self, state: &RetryState, error: google_cloud_gax::error::Error) -> ThrottleResult {
        self.0.on_throttle(state, error)
    }

    fn remaining_time(&self, state: &RetryState) -> Option<Duration> {
        self.0.remaining_time(state)
    }
}

/// Up to 50 % off, so daemons retrying together spread out.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(rand::random_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_escaped_for_the_json_api() {
        let enc = utf8_percent_encode("siem/netskope/a b+c~_.-é.ndjson", OBJECT_PATH).to_string();
        assert_eq!(enc, "siem%2Fnetskope%2Fa%20b%2Bc~_.-%C3%A9.ndjson");
    }

    #[test]
    fn statuses_map_to_kinds() {
        assert_eq!(kind_of_status(404), ErrorKind::NotFound);
        assert_eq!(kind_of_status(412), ErrorKind::PreconditionFailed);
        assert_eq!(kind_of_status(403), ErrorKind::Forbidden);
        assert_eq!(kind_of_status(401), ErrorKind::Unauthenticated);
        assert_eq!(kind_of_status(503), ErrorKind::Other);
    }

    #[test]
    fn client_errors_are_classified_with_the_service_message() {
        let body = br#"{"error":{"code":403,"message":"sa@p.iam.gserviceaccount.com does not have storage.objects.create access"}}"#;
        let e = google_cloud_storage::Error::http(403, http::HeaderMap::new(), Bytes::from_static(body));
        let g = classify(&e, "cannot write gs://b/x");
        assert_eq!(g.kind, ErrorKind::Forbidden);
        assert!(g.message.starts_with("cannot write gs://b/x: HTTP 403: sa@p"), "{}", g.message);
        let e = google_cloud_storage::Error::http(412, http::HeaderMap::new(), Bytes::new());
        assert_eq!(classify(&e, "x").kind, ErrorKind::PreconditionFailed);
    }

    #[test]
    fn jitter_stays_within_half_and_full() {
        for _ in 0..100 {
            let j = jitter(Duration::from_secs(2));
            assert!(j >= Duration::from_secs(1) && j <= Duration::from_secs(2), "{j:?}");
        }
    }
}
