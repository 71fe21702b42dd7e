//! Hot reload of a running `siphon run` by SIGHUP, one process throughout:
//! a source added, a setting changed, the collector `.wasm` replaced by a
//! new version while a run is in flight (that run finishes on the old
//! version, the next runs on the new), a source removed, and three bad
//! reloads refused as a whole (broken TOML, a component that is not one, a
//! `[sink]` change) while the old configuration keeps collecting. At the end
//! every alert is in the sink exactly once.

use std::collections::BTreeSet;
use std::time::Duration;

use siphon::status::Snapshot;
use siphon_tests::config::{SourceToml, string_array};
use siphon_tests::mock::VendorMock;
use siphon_tests::mock::netskope::ALERTS_PREFIX;
use siphon_tests::mock::server::{Fault, FaultRule};

use crate::common::{Install, assert_exactly_once, within};
use crate::ops::{Daemon, daemon_config, free_port, source};
use crate::vendor::{NetskopeTenant, Tenant};

/// `component` with its `info` version `version` changed to `new` (same
/// length): the bytes where the name and version strings sit side by side.
fn with_version(component: &[u8], name: &str, version: &str, new: &str) -> Vec<u8> {
    assert_eq!(version.len(), new.len());
    let (from, to) = (format!("{name}{version}").into_bytes(), format!("{name}{new}").into_bytes());
    let mut out = component.to_vec();
    let mut hits = 0;
    let mut i = 0;
    while i + from.len() <= out.len() {
        if out[i..i + from.len()] == from[..] {
            out[i..i + from.len()].copy_from_slice(&to);
            hits += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    assert!(hits > 0, "`{name}{version}` is not in the component; the version cannot be patched");
    out
}

struct Reloads<'a> {
    daemon: &'a Daemon,
    install: &'a Install,
    port: u16,
    applied: usize,
    refused: usize,
}

impl Reloads<'_> {
    /// Write `sources` as the config, SIGHUP, and wait for the verdict.
    async fn push(&mut self, sources: &[SourceToml], expect_applied: bool) -> Snapshot {
        daemon_config(self.install, self.port, 4, sources);
        self.hup(expect_applied).await
    }

    /// SIGHUP and wait for the reload's verdict; returns the status then.
    async fn hup(&mut self, expect_applied: bool) -> Snapshot {
        let before = self.daemon.status().await.config.last_reload.map(|r| r.at);
        self.daemon.signal(libc::SIGHUP);
        let snapshot = self
            .daemon
            .wait_for(120, "the reload's verdict", |s| {
                s.config.last_reload.as_ref().is_some_and(|r| Some(r.at) != before) && !s.config.reloading
            })
            .await;
        let reload = snapshot.config.last_reload.clone().expect("a reload");
        let outcome = if expect_applied { "applied" } else { "refused" };
        assert_eq!(reload.outcome, outcome, "{reload:?}");
        if expect_applied {
            self.applied += 1;
        } else {
            self.refused += 1;
        }
        snapshot
    }
}

/// Keys of `stream` the source at `prefix` delivered.
fn delivered(install: &Install, tenant: &NetskopeTenant, prefix: &str) -> Vec<String> {
    install.lines_under(prefix).iter().map(|l| tenant.key_of(l)).collect()
}

/// Wait until the source at `prefix` has delivered every record of `streams`.
async fn caught_up(install: &Install, tenant: &NetskopeTenant, prefix: &str, streams: &[&str]) {
    let expected: BTreeSet<String> = streams.iter().flat_map(|s| tenant.mock.keys(s)).collect();
    let what = format!("`{prefix}` to deliver every record of {streams:?}");
    within(120, &what, async {
        loop {
            let got: BTreeSet<String> = delivered(install, tenant, prefix).into_iter().collect();
            if expected.is_subset(&got) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_changes_replaces_and_removes_sources_and_refuses_bad_configs_exactly_once() {
    let tenant = NetskopeTenant::start(NetskopeTenant::config(50), &["dlp", "malware", "policy"]).await;
    tenant.add_records(80);
    let install = Install::for_tenant(&tenant);
    // alpha's collector is a file the test replaces; beta uses the build's.
    let wasm = install.path("collectors/netskope_alerts.wasm");
    std::fs::create_dir_all(wasm.parent().expect("dir")).expect("collectors dir");
    std::fs::copy(crate::common::guest("netskope_alerts"), &wasm).expect("collector copy");
    let every_2s = "*/2 * * * * *";
    let mut alpha = tenant.source("alpha").schedule(every_2s).set("index", "reload-alpha");
    alpha.collector = wasm.display().to_string();
    let alpha = alpha.set_raw("alert_types", &string_array(&["dlp"]));
    let beta = tenant
        .source("beta")
        .schedule(every_2s)
        .set("index", "reload-beta")
        .set_raw("alert_types", &string_array(&["malware"]));

    let port = free_port();
    let config = daemon_config(&install, port, 4, std::slice::from_ref(&alpha));
    let mut daemon = Daemon::start(&install, &config, port).await;
    let pid = daemon.pid();
    caught_up(&install, &tenant, "alpha", &["dlp"]).await;
    let mut reloads = Reloads { daemon: &daemon, install: &install, port, applied: 0, refused: 0 };

    // Added: beta starts and collects.
    let s = reloads.push(&[alpha.clone(), beta.clone()], true).await;
    assert_eq!(s.config.last_reload.as_ref().map(|r| r.detail.as_str()), Some("added: beta"));
    caught_up(&install, &tenant, "beta", &["malware"]).await;

    // A setting changed: alpha now reads policy as well, from its next run.
    tenant.mock.add_alerts("dlp", 30);
    let alpha = alpha.set_raw("alert_types", &string_array(&["dlp", "policy"]));
    let s = reloads.push(&[alpha.clone(), beta.clone()], true).await;
    assert_eq!(s.config.last_reload.as_ref().map(|r| r.detail.as_str()), Some("changed: alpha"));
    caught_up(&install, &tenant, "alpha", &["dlp", "policy"]).await;

    // The .wasm replaced by a new version while a run of it is in flight:
    // that run's next dlp page is held for 20 s.
    let old = source(&daemon.status().await, "alpha").collector.clone();
    let new_version =
        format!("{}{}", &old.version[..old.version.len() - 1], if old.version.ends_with('9') { '8' } else { '9' });
    tenant.mock.add_alerts("dlp", 30);
    let path = format!("{ALERTS_PREFIX}dlp");
    tenant.mock.server().push_fault(FaultRule::new(Fault::Delay(Duration::from_secs(20))).path(&path).times(1));
    within(30, "a run to reach the held page", async {
        while tenant.mock.server().pending_faults() > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let in_flight = source(&daemon.status().await, "alpha").running_since.expect("alpha's run is in flight");
    let bytes = with_version(&std::fs::read(&wasm).expect("wasm"), &old.name, &old.version, &new_version);
    std::fs::write(&wasm, bytes).expect("new wasm");
    let s = reloads.hup(true).await;
    let detail = &s.config.last_reload.as_ref().expect("reload").detail;
    assert_eq!(detail, &format!("changed: alpha; compiled: netskope_alerts.wasm@{new_version}"));
    let now = source(&s, "alpha");
    assert_eq!((now.collector.version.as_str(), now.collector.sha256 != old.sha256), (new_version.as_str(), true));
    if now.running_since != Some(in_flight) {
        println!("note: the held run ended before the reload was applied; the in-flight case was not exercised");
    }
    let s = daemon
        .wait_for(60, "the held run to finish", |s| {
            source(s, "alpha").last_run.as_ref().is_some_and(|r| r.started >= in_flight)
        })
        .await;
    let finished = source(&s, "alpha").last_run.clone().expect("run");
    assert_eq!((finished.started, finished.outcome.as_str()), (in_flight, "ok"), "{finished:?}");
    assert_eq!(finished.collector_version, old.version, "the run in flight finished on the version it started with");
    daemon
        .wait_for(60, "a run of the new version", |s| {
            source(s, "alpha")
                .last_run
                .as_ref()
                .is_some_and(|r| r.collector_version == new_version && r.outcome == "ok")
        })
        .await;
    caught_up(&install, &tenant, "alpha", &["dlp", "policy"]).await;

    // Removed: beta stops; malware added later is not collected.
    caught_up(&install, &tenant, "beta", &["malware"]).await;
    let malware_at_removal = tenant.mock.keys("malware");
    let s = reloads.push(std::slice::from_ref(&alpha), true).await;
    assert_eq!(s.config.last_reload.as_ref().map(|r| r.detail.as_str()), Some("removed: beta"));
    daemon.wait_for(60, "beta to leave the status", |s| s.sources.iter().all(|v| v.name != "beta")).await;
    tenant.mock.add_alerts("malware", 25);
    tenant.mock.add_alerts("dlp", 10);
    caught_up(&install, &tenant, "alpha", &["dlp", "policy"]).await;

    // Refused as a whole, the old configuration keeps running: broken TOML,
    // a component that is not one (alongside a good change), a [sink] change.
    let config_text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(&config, format!("{config_text}\n[sources.gamma\n")).expect("broken config");
    let s = reloads.hup(false).await;
    let refused = s.config.last_reload.clone().expect("reload").detail;
    assert!(refused.starts_with(&config.display().to_string()), "the refusal names the file: {refused}");
    let broken = install.path("collectors/broken.wasm");
    std::fs::write(&broken, b"\0asm not really").expect("broken wasm");
    let mut gamma = tenant.source("gamma").set("index", "reload-gamma");
    gamma.collector = broken.display().to_string();
    let s = reloads.push(&[alpha.clone().set_raw("full_page", "7"), gamma], false).await;
    let refused = s.config.last_reload.clone().expect("reload").detail;
    assert!(
        refused.contains("sources.gamma.collector") && refused.contains("not a valid WebAssembly component"),
        "{refused}"
    );
    assert!(s.sources.iter().map(|v| v.name.as_str()).eq(["alpha"]), "nothing of it applied: {:?}", s.sources);
    daemon_config(&install, port, 4, std::slice::from_ref(&alpha));
    let good = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        good.replace("[sink]\nbackend = \"local\"\n", "[sink]\nbackend = \"local\"\ngzip = true\n"),
    )
    .expect("sink change");
    assert_ne!(std::fs::read_to_string(&config).expect("config"), good, "the [sink] edit applies");
    let s = reloads.hup(false).await;
    let refused = s.config.last_reload.clone().expect("reload").detail;
    assert!(refused.contains("[sink] changed") && refused.contains("restart siphon"), "{refused}");
    assert!(daemon.get("/readyz").await.0 == 200, "ready again once the refusal is in");
    let (_, page) = daemon.get("/").await;
    assert!(page.contains("Reload refused") && page.contains("[sink] changed"), "the page shows the refusal");
    tenant.mock.add_alerts("dlp", 10);
    caught_up(&install, &tenant, "alpha", &["dlp", "policy"]).await;

    // One process throughout; the reloads are counted.
    let counts = [("applied", reloads.applied), ("refused", reloads.refused)];
    assert!(daemon.running() && daemon.pid() == pid, "siphon restarted");
    let (_, metrics) = daemon.get("/metrics").await;
    for (outcome, n) in counts {
        let line = format!("siphon_config_reloads_total{{outcome=\"{outcome}\"}} {n}");
        assert!(metrics.contains(&line), "want {line}:\n{metrics}");
    }
    let log = daemon.stop().await;
    assert_eq!(log.matches("Configuration reloaded").count(), 4, "{log}");
    assert_eq!(log.matches("Reload refused").count(), 3, "{log}");

    // Exactly once, across every reload.
    let expected: Vec<String> = ["dlp", "policy"].iter().flat_map(|s| tenant.mock.keys(s)).collect();
    let n = assert_exactly_once(&delivered(&install, &tenant, "alpha"), &expected);
    let m = assert_exactly_once(&delivered(&install, &tenant, "beta"), &malware_at_removal);
    println!("alpha delivered {n} alerts and beta {m}, each exactly once, across 7 reloads of one process");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_engine_watch_an_edited_config_is_reloaded_without_a_signal() {
    let tenant = NetskopeTenant::start(NetskopeTenant::config(50), &["dlp", "malware"]).await;
    tenant.add_records(20);
    let install = Install::for_tenant(&tenant);
    let source = |types: &[&str]| {
        tenant
            .source("watched")
            .schedule("*/2 * * * * *")
            .set("index", "watch")
            .set_raw("alert_types", &string_array(types))
    };
    let port = free_port();
    // Rendered elsewhere and renamed into place, as a ConfigMap update lands:
    // the watcher never sees half a file.
    let config = install.path("siphon.toml");
    let write = |types: &[&str]| {
        let scratch = Install::new("unused");
        let text = std::fs::read_to_string(daemon_config(&scratch, port, 4, &[source(types)])).expect("config");
        let next = install.path("siphon.toml.next");
        std::fs::write(&next, text.replace("[engine]\n", "[engine]\nwatch = \"1s\"\n")).expect("config");
        std::fs::rename(&next, &config).expect("config in place");
    };
    write(&["dlp"]);
    let daemon = Daemon::start(&install, &config, port).await;
    caught_up(&install, &tenant, "watched", &["dlp"]).await;
    // Kubernetes updates a mounted ConfigMap and sends no signal.
    write(&["dlp", "malware"]);
    let s = daemon
        .wait_for(60, "the edit to be picked up", |s| {
            s.config.last_reload.as_ref().is_some_and(|r| r.outcome == "applied")
        })
        .await;
    assert_eq!(s.config.last_reload.map(|r| r.detail).as_deref(), Some("changed: watched"));
    caught_up(&install, &tenant, "watched", &["dlp", "malware"]).await;
    // An unchanged file is not reloaded again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log = daemon.stop().await;
    assert_eq!(log.matches("changed on disk (engine.watch)").count(), 1, "{log}");
    let expected: Vec<String> = ["dlp", "malware"].iter().flat_map(|s| tenant.mock.keys(s)).collect();
    assert_exactly_once(&delivered(&install, &tenant, "watched"), &expected);
}
