//! The `siphon` binary: `check` reports every bad input by name, `inspect`
//! describes a component, and a secret never shows in logs, sink or state.

use std::path::Path;
use std::process::{Command, Output};

use siphon_tests::mock::netskope::{MockConfig, MockNetskope};

use crate::common::{Install, guest, siphon_bin};

fn siphon(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(siphon_bin());
    cmd.args(args).env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("siphon runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn netskope_source(name: &str, wasm: &Path, schedule: &str, secret_env: &str) -> String {
    format!(
        r#"[sources.{name}]
collector = "{wasm}"
schedule = "{schedule}"
allowed_hosts = ["127.0.0.1:9"]
allow_http = true
settings = {{ base_url = "http://127.0.0.1:9" }}
secrets = {{ api_token = {{ env = "{secret_env}" }} }}
"#,
        wasm = wasm.display()
    )
}

#[test]
fn check_accepts_a_good_config() {
    let install = Install::new("x");
    let config = install.config(&netskope_source("ns", &guest("netskope_alerts"), "*/5 * * * *", "SIPHON_E2E_TOKEN"));
    let out = siphon(&["check", "--config", config.to_str().unwrap()], &[("SIPHON_E2E_TOKEN", "abcd")]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("ok: source `ns`: netskope-alerts@"), "{}", text(&out));
}

#[test]
fn check_names_an_unknown_key() {
    let install = Install::new("x");
    let config =
        install.config_with(&netskope_source("ns", &guest("netskope_alerts"), "* * * * *", "V"), "colour = \"blue\"");
    let out = siphon(&["check", "--config", config.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(t.contains("unknown field `colour`"), "{t}");
}

#[test]
fn check_names_a_missing_secret_a_bad_cron_and_a_missing_wasm() {
    let install = Install::new("x");
    let sources = [
        netskope_source("nosecret", &guest("netskope_alerts"), "* * * * *", "SIPHON_E2E_SURELY_UNSET"),
        netskope_source("badcron", &guest("netskope_alerts"), "61 * * * *", "SIPHON_E2E_TOKEN"),
        netskope_source("nowasm", &install.path("nope.wasm"), "* * * * *", "SIPHON_E2E_TOKEN"),
    ]
    .join("\n");
    let config = install.config(&sources);
    let out = siphon(&["check", "--config", config.to_str().unwrap()], &[("SIPHON_E2E_TOKEN", "abcd")]);
    assert!(!out.status.success());
    let t = text(&out);
    for needle in [
        "sources.nosecret.secrets.api_token: environment variable `SIPHON_E2E_SURELY_UNSET` is not set",
        "sources.badcron.schedule: invalid cron expression `61 * * * *`",
        "sources.nowasm.collector: file",
        "nope.wasm does not exist",
    ] {
        assert!(t.contains(needle), "missing {needle:?} in:\n{t}");
    }
}

#[test]
fn check_names_an_invalid_wasm_and_a_component_of_another_world() {
    let install = Install::new("x");
    std::fs::write(install.path("garbage.wasm"), b"this is not wasm").unwrap();
    // A valid core module, not a component.
    std::fs::write(install.path("core.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let sources = [
        netskope_source("garbage", &install.path("garbage.wasm"), "* * * * *", "SIPHON_E2E_TOKEN"),
        netskope_source("core", &install.path("core.wasm"), "* * * * *", "SIPHON_E2E_TOKEN"),
    ]
    .join("\n");
    let config = install.config(&sources);
    let out = siphon(&["check", "--config", config.to_str().unwrap()], &[("SIPHON_E2E_TOKEN", "abcd")]);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(
        t.contains("sources.garbage.collector") && t.contains("garbage.wasm: not a valid WebAssembly component"),
        "{t}"
    );
    assert!(t.contains("sources.core.collector") && t.contains("core.wasm"), "{t}");
}

#[test]
fn check_names_settings_the_collector_does_not_know_or_needs() {
    let install = Install::new("x");
    let source = format!(
        r#"[sources.ns]
collector = "{}"
schedule = "* * * * *"
allowed_hosts = ["h.com"]
settings = {{ base_urll = "https://h.com" }}
"#,
        guest("netskope_alerts").display()
    );
    let config = install.config(&source);
    let out = siphon(&["check", "--config", config.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(t.contains("sources.ns.settings.base_urll: not a setting of collector netskope-alerts"), "{t}");
    assert!(t.contains("sources.ns.settings.base_url: required"), "{t}");
    assert!(t.contains("sources.ns.secrets.api_token: required"), "{t}");
}

#[test]
fn inspect_describes_a_component() {
    let out = siphon(&["inspect", guest("netskope_alerts").to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    for needle in [
        "name:    netskope-alerts",
        "siphon:collector/checkpoint@0.1.0",
        "wasi:http/outgoing-handler",
        "api_token",
        "collect",
    ] {
        assert!(t.contains(needle), "missing {needle:?} in:\n{t}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_never_appears_in_logs_sink_or_state() {
    const SECRET: &str = "S3CRET-netskope-token-7d1e0c";
    let m = MockNetskope::start(MockConfig { token: SECRET.to_owned(), page_size: 50, ..MockConfig::default() })
        .await
        .expect("mock");
    m.add_alerts("dlp", 120);
    m.add_alerts("malware", 10);
    let install = Install::new("unused");
    let source = format!(
        r#"[sources.ns]
collector = "{wasm}"
schedule = "* * * * *"
allowed_hosts = ["{authority}"]
allow_http = true
settings = {{ base_url = "{base}", alert_types = ["dlp", "malware", "uba"], full_page = 50, index = "leak-test" }}
secrets = {{ api_token = {{ env = "SIPHON_E2E_SECRET" }} }}
"#,
        wasm = guest("netskope_alerts").display(),
        authority = m.authority(),
        base = m.base_url(),
    );
    let config = install.config(&source);
    let cfg = config.to_str().unwrap().to_owned();
    let mut logs = String::new();
    // A successful run, with debug logs, then one with a revoked token.
    let ok = tokio::task::spawn_blocking({
        let cfg = cfg.clone();
        move || {
            let mut cmd = Command::new(siphon_bin());
            cmd.args(["collect", "--config", &cfg, "ns"]).env("SIPHON_E2E_SECRET", SECRET).env("RUST_LOG", "debug");
            cmd.output().expect("siphon collect")
        }
    })
    .await
    .unwrap();
    logs.push_str(&text(&ok));
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(text(&ok).contains("records:   130"), "{}", text(&ok));
    let bad = tokio::task::spawn_blocking(move || {
        Command::new(siphon_bin())
            .args(["collect", "--config", &cfg, "ns", "--log-format", "json"])
            .env("SIPHON_E2E_SECRET", "S3CRET-wrong-token-000000")
            .env("RUST_LOG", "debug")
            .output()
            .expect("siphon collect")
    })
    .await
    .unwrap();
    assert!(!bad.status.success());
    logs.push_str(&text(&bad));
    assert!(m.requests().iter().any(|r| r.header("netskope-api-token") == Some(SECRET)), "the token was used");

    assert!(!logs.contains(SECRET), "secret in logs");
    assert!(!logs.contains("S3CRET-wrong-token-000000"), "wrong secret in logs");
    let mut files = Vec::new();
    collect_files(install.dir.path(), &mut files);
    assert!(files.iter().any(|f| f.extension().is_some_and(|e| e == "ndjson")));
    assert!(files.iter().any(|f| f.ends_with("state/ns.json")));
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains(SECRET), "secret in {}", f.display());
    }
}

fn collect_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() { collect_files(&p, out) } else { out.push(p) }
    }
}
