//! Operating the daemon as an operator does: `siphon run` with its `[http]`
//! listener — `/healthz`, `/readyz`, `/status` and the status page, read by
//! headless Chromium — for a healthy, a failing (bad token) and a stale
//! source; `siphon status` with and without a daemon; and the rough edges:
//! plain-text logs when stderr is not a terminal, `siphon state show` with
//! the secret variables unset, and a busy skip or a lost first-write race
//! reported as busy (INFO, no `None`/`Some`), never as an error.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use siphon::status::{Snapshot, SourceState, SourceView};
use siphon_tests::config::{SecretRef, SourceToml};

use crate::common::{Install, guest, siphon_bin, text, within};
use crate::vendor::{NetskopeTenant, Tenant};

/// A `siphon run` child with its stderr in `siphon.log` (a file, not a
/// terminal) and its listener on a free loopback port.
pub(crate) struct Daemon {
    child: tokio::process::Child,
    /// The listener's port.
    pub port: u16,
    log: PathBuf,
    http: reqwest::Client,
}

/// A free loopback port for a daemon's listener.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port()
}

/// `siphon.toml` in `install` with an `[http]` listener on `port` (probing
/// every second) and `sources`; `max_runs` run slots.
pub(crate) fn daemon_config(install: &Install, port: u16, max_runs: usize, sources: &[SourceToml]) -> PathBuf {
    let tables: Vec<String> = sources.iter().map(SourceToml::render).collect();
    let http = format!("[http]\nlisten = \"127.0.0.1:{port}\"\nprobe_interval = \"1s\"\n\n");
    let path = install.config(&(http + &tables.join("\n")));
    let text = std::fs::read_to_string(&path).expect("config");
    assert!(text.contains("max_concurrent_runs = 4"), "Install::config changed its [engine]: {text}");
    std::fs::write(&path, text.replace("max_concurrent_runs = 4", &format!("max_concurrent_runs = {max_runs}")))
        .expect("config");
    path
}

impl Daemon {
    /// Start `siphon run --config config`; returns once `/healthz` answers.
    pub(crate) async fn start(install: &Install, config: &Path, port: u16) -> Daemon {
        let log = install.path("siphon.log");
        let stderr = std::fs::File::create(&log).expect("log file");
        let child = tokio::process::Command::new(siphon_bin())
            .args(["run", "--config"])
            .arg(config)
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("siphon starts");
        let http = siphon_tests::http_client(Some(Duration::from_secs(5))).expect("client");
        let mut daemon = Daemon { child, port, log, http };
        within(60, "the daemon's listener", async {
            loop {
                if let Ok(status) = daemon.child.try_wait() {
                    assert!(status.is_none(), "siphon exited at start-up ({status:?}):\n{}", daemon.log());
                }
                if daemon.http.get(daemon.url("/healthz")).send().await.is_ok() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        daemon
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The daemon's PID.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// `GET path`: status code and body.
    pub(crate) async fn get(&self, path: &str) -> (u16, String) {
        let response = self.http.get(self.url(path)).send().await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let code = response.status().as_u16();
        (code, response.text().await.expect("body"))
    }

    /// `/status`, parsed.
    pub(crate) async fn status(&self) -> Snapshot {
        let (code, body) = self.get("/status").await;
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("/status is not a snapshot: {e}\n{body}"))
    }

    /// Poll `/status` until `done` holds; fails after `secs` with the last one.
    pub(crate) async fn wait_for(&self, secs: u64, what: &str, done: impl Fn(&Snapshot) -> bool) -> Snapshot {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let snapshot = self.status().await;
            if done(&snapshot) {
                return snapshot;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not within {secs} s; last /status:\n{}\nlog:\n{}",
                serde_json::to_string_pretty(&snapshot).unwrap_or_default(),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Send `signal` to the daemon.
    #[allow(unsafe_code, reason = "kill(2) has no safe wrapper; the test signals the child it started")]
    pub(crate) fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on the PID of the child this test started and still owns.
        assert_eq!(unsafe { libc::kill(self.pid() as libc::pid_t, signal) }, 0);
    }

    /// Whether the process is still running.
    pub(crate) fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Everything logged so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM; the daemon must exit 0. Returns its log.
    pub(crate) async fn stop(mut self) -> String {
        self.signal(libc::SIGTERM);
        let status = within(60, "shutdown on SIGTERM", self.child.wait()).await.expect("exit status");
        let log = self.log();
        assert!(status.success(), "siphon exited with {status}:\n{log}");
        log
    }
}

/// The source named `name` in `s`.
pub(crate) fn source<'a>(s: &'a Snapshot, name: &str) -> &'a SourceView {
    s.sources.iter().find(|v| v.name == name).unwrap_or_else(|| panic!("no source {name} in /status: {s:?}"))
}

/// A tenant, and a daemon on it with source `healthy` (good token) and
/// `failing` (a revoked one), both past their first run.
async fn healthy_and_failing() -> (NetskopeTenant, Install, Daemon) {
    let tenant = NetskopeTenant::start(NetskopeTenant::config(50), &["dlp", "malware"]).await;
    tenant.add_records(120);
    let install = Install::for_tenant(&tenant);
    let (_, bad) = tenant.bad_secrets().remove(0);
    std::fs::write(install.path("bad_api_token.txt"), format!("{bad}\n")).expect("bad token");
    let healthy = tenant.source("healthy").schedule("0 0 1 1 *").set("index", "ops-healthy");
    let failing = tenant
        .source("failing")
        .schedule("0 0 1 1 *")
        .set("index", "ops-failing")
        .secret("api_token", SecretRef::File("bad_api_token.txt".into()));
    let port = free_port();
    let config = daemon_config(&install, port, 4, &[healthy, failing]);
    let daemon = Daemon::start(&install, &config, port).await;
    daemon
        .wait_for(90, "both sources' first runs", |s| {
            s.sources.len() == 2 && s.sources.iter().all(|v| v.last_run.is_some() && v.running_since.is_none())
        })
        .await;
    (tenant, install, daemon)
}

/// Every secret the tenant accepts or refuses, and any token it issued.
fn secrets_of(tenant: &NetskopeTenant) -> Vec<String> {
    let mut all: Vec<String> = tenant.secrets().into_iter().chain(tenant.bad_secrets()).map(|(_, v)| v).collect();
    all.extend(tenant.issued_secrets());
    all
}

fn assert_no_secret(what: &str, text: &str, secrets: &[String]) {
    for s in secrets {
        assert!(!text.contains(s.as_str()), "{what} reveals a secret:\n{text}");
    }
}

async fn siphon(args: &[&str], env: &[(&str, &str)], unset: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(siphon_bin());
    cmd.args(args).env_remove("RUST_LOG").kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    for k in unset {
        cmd.env_remove(k);
    }
    within(120, &format!("siphon {}", args.join(" ")), cmd.output()).await.expect("siphon runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_status_report_a_healthy_and_a_failing_source_without_secrets() {
    let (tenant, install, daemon) = healthy_and_failing().await;
    let secrets = secrets_of(&tenant);
    let snapshot = daemon.status().await;

    let (code, body) = daemon.get("/healthz").await;
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    let ready = daemon.wait_for(10, "readiness", |s| s.ready.ok).await;
    assert!(ready.backends.as_ref().is_some_and(|b| b.ok), "{ready:?}");
    let (code, body) = daemon.get("/readyz").await;
    assert_eq!((code, body.as_str()), (200, "ready\n"));

    let healthy = source(&snapshot, "healthy");
    assert_eq!(healthy.state, SourceState::Ok, "{healthy:?}");
    assert_eq!(healthy.collector.name, "netskope-alerts");
    assert!(!healthy.collector.version.is_empty() && healthy.collector.sha256.len() == 64, "{healthy:?}");
    let run = healthy.last_run.as_ref().expect("a run");
    assert_eq!(run.outcome, "ok");
    assert_eq!(run.records as usize, tenant.expected_keys().len(), "every alert delivered by the first run");
    assert_eq!(run.objects as usize, install.objects().len());
    assert!(healthy.last_success.is_some() && healthy.next_run.is_some() && healthy.last_error.is_none());
    assert_eq!((healthy.behind_s, healthy.failures_in_a_row), (0, 0));

    let failing = source(&snapshot, "failing");
    assert_eq!(failing.state, SourceState::Failing, "{failing:?}");
    assert_eq!(failing.last_run.as_ref().map(|r| r.outcome.as_str()), Some("auth"));
    assert!(failing.last_success.is_none() && failing.failures_in_a_row == 1, "{failing:?}");
    let error = failing.last_error.as_deref().expect("the failing source's error");
    assert!(error.starts_with("auth error:"), "{error}");
    assert_eq!(snapshot.config.path, install.path("siphon.toml"));

    // Nothing the listener serves holds a secret.
    for path in ["/status", "/", "/metrics", "/healthz", "/readyz"] {
        let (_, body) = daemon.get(path).await;
        assert_no_secret(path, &body, &secrets);
    }
    let (_, metrics) = daemon.get("/metrics").await;
    assert!(metrics.contains(r#"siphon_runs_total{source="failing",outcome="auth"} 1"#), "{metrics}");
    assert!(metrics.contains("siphon_source_behind_seconds{"), "{metrics}");

    // `siphon status` prints the daemon's table, without secrets.
    let config = install.path("siphon.toml");
    let config = config.to_str().expect("utf-8 path");
    let out = siphon(&["status", "--config", config], &[], &[]).await;
    let table = text(&out);
    assert!(out.status.success(), "{table}");
    let row =
        |name: &str| table.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no row {name}:\n{table}"));
    assert!(row("healthy ").contains(" ok "), "{table}");
    assert!(row("failing ").contains(" failing ") && row("failing ").contains(" auth "), "{table}");
    assert!(table.contains("\nfailing: auth error:"), "{table}");
    assert_no_secret("siphon status", &table, &secrets);

    let port = daemon.port;
    let log = daemon.stop().await;
    assert!(!log.contains('\x1b'), "text logs to a file hold no escape codes:\n{log}");
    assert!(log.contains(" INFO ") && log.contains("Status page"), "{log}");
    assert_no_secret("the log", &log, &secrets);

    // No daemon: the state store answers.
    let out = siphon(&["status", "--config", config], &[], &[]).await;
    let table = text(&out);
    assert!(out.status.success(), "{table}");
    assert!(table.starts_with(&format!("no daemon answered at http://127.0.0.1:{port}/status")), "{table}");
    assert!(table.lines().any(|l| l.starts_with("healthy ") && l.contains("generation")), "{table}");
    assert!(table.lines().any(|l| l.starts_with("failing ")), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_kept_from_running_past_its_schedule_is_stale() {
    // One run slot, held for ten minutes by `hog`; `stale` is due every second.
    let install = Install::new("unused");
    let fault = |name: &str, mode: &str| SourceToml::new(name, guest("fault")).host("example.com").set("mode", mode);
    let hog = fault("hog", "sleep").set_raw("seconds", "600").schedule("0 0 1 1 *");
    let stale = fault("stale", "emit").schedule("* * * * * *");
    let port = free_port();
    let config = daemon_config(&install, port, 1, &[hog, stale]);
    let daemon = Daemon::start(&install, &config, port).await;
    let snapshot = daemon
        .wait_for(60, "`stale` to go stale", |s| {
            source(s, "stale").state == SourceState::Stale && source(s, "hog").state == SourceState::Running
        })
        .await;
    let stale = source(&snapshot, "stale");
    assert_eq!(stale.stale_after_s, 1, "{stale:?}");
    assert!(stale.behind_s >= stale.stale_after_s, "whole seconds of a longer wait: {stale:?}");
    assert!(stale.last_error.is_none(), "nothing failed: {stale:?}");
    // Stale is about the sources, not the daemon: it is alive and ready.
    assert_eq!(daemon.get("/healthz").await, (200, "ok\n".to_owned()));
    assert_eq!(daemon.get("/readyz").await.0, 200);
    let (_, page) = daemon.get("/").await;
    assert!(page.contains("id=\"source-stale\"") && page.contains("behind schedule by"), "{page}");
    // The hog is abandoned after the grace period.
    daemon.stop().await;
}

/// Chromium from Debian (`make chromium`), or `$CHROMIUM`.
fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser", "google-chrome"].map(|name| dir.join(name)))
        .find(|p| p.is_file())
}

async fn headless(chromium: &Path, profile: &Path, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(chromium);
    cmd.args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .kill_on_drop(true);
    let out = within(120, "headless chromium", cmd.output()).await.expect("chromium runs");
    assert!(out.status.success(), "chromium {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// The text a person reads in `html`: no markup, styles or head, entities
/// decoded, whitespace collapsed.
fn visible_text(html: &str) -> String {
    let body = html.split_once("<body").map_or(html, |(_, b)| b);
    let mut text = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&#39;", "'");
    text.replace("&amp;", "&").split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The visible text of the section with `id`.
fn section(dom: &str, id: &str) -> String {
    let at = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in the page:\n{dom}"));
    let start = at + dom[at..].find('>').expect("tag end") + 1;
    let end = dom[start..].find("</section>").map_or(dom.len(), |e| start + e);
    visible_text(&format!("<body>{}", &dom[start..end]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_reads_right_in_headless_chromium() {
    let chromium = chromium().expect("chromium is not on PATH: `make chromium` installs it, or set CHROMIUM");
    let (tenant, install, daemon) = healthy_and_failing().await;
    let url = format!("http://127.0.0.1:{}/", daemon.port);
    let profile = install.path("chromium-profile");

    let dom = String::from_utf8(headless(&chromium, &profile, &["--dump-dom", &url]).await.stdout).expect("utf-8");
    let page = visible_text(&dom);
    assert!(page.contains("siphon 2 sources: 1 failing, 1 ok"), "{page}");
    let healthy = section(&dom, "source-healthy");
    let failing = section(&dom, "source-failing");
    assert!(healthy.starts_with("healthy ok Collector netskope-alerts"), "{healthy}");
    assert!(healthy.contains(&format!("ok · {} records", tenant.expected_keys().len())), "{healthy}");
    assert!(healthy.contains("Last success") && !healthy.contains("Last error"), "{healthy}");
    assert!(failing.starts_with("failing failing Collector netskope-alerts"), "{failing}");
    assert!(failing.contains("failed: auth · 0 records"), "{failing}");
    assert!(failing.contains("Last success never") && failing.contains("Last error auth error:"), "{failing}");
    assert!(page.find("failing failing").expect("failing row") < page.find("healthy ok").expect("ok row"));
    assert_no_secret("the page as rendered", &dom, &secrets_of(&tenant));

    // Screenshots for the README: a laptop and a phone.
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    for (file, size) in [("status-page.png", "1280,900"), ("status-page-phone.png", "390,844")] {
        let shot = target.join(file);
        let _ = std::fs::remove_file(&shot);
        let screenshot = format!("--screenshot={}", shot.display());
        let window = format!("--window-size={size}");
        headless(&chromium, &profile, &["--hide-scrollbars", &window, &screenshot, &url]).await;
        let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("{}: {e}", shot.display()));
        assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{} is not a real screenshot", shot.display());
        println!("screenshot: {}", shot.display());
    }
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_show_and_status_need_no_vendor_secret() {
    let tenant = NetskopeTenant::start(NetskopeTenant::config(50), &["dlp"]).await;
    tenant.add_records(30);
    let install = Install::new("unused");
    let mut table = tenant.source("netskope").set("index", "ops-env");
    let vars = table.secrets_from_env("OPS_STATE_SHOW_");
    let (var, token) = (vars[0].1.clone(), tenant.secrets()[0].1.clone());
    let config = install.config_sources(&[table]);
    let config = config.to_str().expect("utf-8 path");

    let out = siphon(&["collect", "--config", config, "netskope"], &[(&var, &token)], &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    // Without the variable a run cannot start, and says why...
    let out = siphon(&["collect", "--config", config, "netskope"], &[], &[&var]).await;
    assert!(!out.status.success() && text(&out).contains(&format!("`{var}` is not set")), "{}", text(&out));
    // ...but reading the checkpoint needs no vendor token.
    let out = siphon(&["state", "show", "--config", config, "netskope"], &[], &[&var]).await;
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("generation: ") && shown.contains("\"dlp\""), "{shown}");
    let out = siphon(&["status", "--config", config], &[], &[&var]).await;
    assert!(out.status.success() && text(&out).contains("from the state store"), "{}", text(&out));
}

/// No line at ERROR, and no Rust `Option` text.
fn assert_calm(what: &str, output: &str) {
    assert!(!output.contains(" ERROR ") && !output.contains("\"ERROR\""), "{what} logs an error:\n{output}");
    assert!(!output.contains("None") && !output.contains("Some("), "{what} shows Option text:\n{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_source_is_skipped_at_info_and_shown_busy() {
    let tenant = NetskopeTenant::start(NetskopeTenant::config(50), &["dlp"]).await;
    tenant.add_records(20);
    let install = Install::for_tenant(&tenant);
    let table = tenant.source("netskope").set("index", "ops-busy").schedule("*/2 * * * * *");
    // Another live run holds the source: this test process, on this host.
    let store = siphon::state::local::LocalStateStore::open(&install.path("state")).expect("state dir");
    let lease = siphon::lease::Lease::for_run("held-by-the-test", chrono::Utc::now(), Duration::from_secs(600));
    let held = siphon::state::SourceState { version: 1, lease: Some(lease), ..Default::default() };
    siphon::state::StateStore::store(&store, "netskope", &held, None).await.expect("lease written");

    let port = free_port();
    let config = daemon_config(&install, port, 4, &[table]);
    let out = siphon(&["collect", "--config", config.to_str().expect("utf-8"), "netskope"], &[], &[]).await;
    let said = text(&out);
    assert!(!out.status.success(), "nothing was collected: {said}");
    assert!(said.contains("outcome:   FAILED (busy)") && said.contains("Run skipped: the source is busy"), "{said}");
    assert!(said.contains("is busy: run held-by-the-test on host "), "{said}");
    assert_calm("a busy `siphon collect`", &said);

    let daemon = Daemon::start(&install, &config, port).await;
    let snapshot = daemon.wait_for(60, "a busy skip", |s| source(s, "netskope").state == SourceState::Busy).await;
    assert_eq!(source(&snapshot, "netskope").last_run.as_ref().map(|r| r.outcome.as_str()), Some("busy"));
    assert!(source(&snapshot, "netskope").last_error.is_none(), "a skip is no failure");
    let (_, metrics) = daemon.get("/metrics").await;
    assert!(metrics.contains(r#"siphon_runs_total{source="netskope",outcome="busy"}"#), "{metrics}");
    assert!(!metrics.contains(r#"outcome="delivery""#), "{metrics}");
    let log = daemon.stop().await;
    assert_calm("the daemon with a busy source", &log);
    assert!(log.contains("Run skipped: the source is busy"), "{log}");
    assert!(install.sink_lines().is_empty(), "nothing was collected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_racing_for_a_new_source_end_as_busy_without_errors() {
    use siphon_tests::gcs_proxy::{Fault, GcsProxy, Rule};

    use crate::gcs::{BUCKET, config, emulator, netskope, netskope_source};

    let gcs = emulator().await;
    let proxy = GcsProxy::start(&gcs.endpoint()).await.expect("proxy");
    let (tenant, install) = netskope().await;
    tenant.add_records(100);
    // Slow state writes: both runs read "no state" before either writes it.
    proxy.add(Rule::new("POST", Fault::delay(Duration::from_millis(300))).object("siphon/state/netskope.json"));
    let config = config(&install, &proxy.endpoint(), BUCKET, false, &netskope_source(&tenant.mock.base_url()));
    let config = config.to_str().expect("utf-8");
    let args = ["collect", "--config", config, "netskope"];
    let (a, b) = tokio::join!(siphon(&args, &[], &[]), siphon(&args, &[], &[]));
    let (won, lost) = match (a.status.success(), b.status.success()) {
        (true, false) => (a, b),
        (false, true) => (b, a),
        _ => panic!("exactly one run should win:\n{}\n---\n{}", text(&a), text(&b)),
    };
    let lost = text(&lost);
    assert!(lost.contains("outcome:   FAILED (busy)") && lost.contains("is busy: "), "{lost}");
    assert_calm("the run that lost the race", &lost);
    assert_calm("the run that won the race", &text(&won));
}
