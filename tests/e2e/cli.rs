//! The `siphon` binary: `check` reports every bad input by name and `inspect`
//! describes a component. (That a secret never shows in logs, sink or state
//! is checked for every vendor by the vendor suite.)

use std::path::Path;

use siphon_tests::config::{SecretRef, SourceToml};

use crate::common::{Install, guest, siphon, text};
use crate::vendor::netskope_source;

/// A Netskope source `name` running `wasm` on `schedule`, its token from `secret_env`; the
/// tenant is not running (`check` does not call it).
fn source(name: &str, wasm: &Path, schedule: &str, secret_env: &str) -> SourceToml {
    let table = netskope_source(name, "http://127.0.0.1:9", &["dlp"], 100);
    SourceToml { collector: wasm.display().to_string(), ..table }
        .schedule(schedule)
        .secret("api_token", SecretRef::Env(secret_env.to_owned()))
}

/// `siphon check` of `sources` with `SIPHON_E2E_TOKEN` set: whether it passed, and what it said.
fn check(install: &Install, sources: &[SourceToml]) -> (bool, String) {
    let config = install.config_sources(sources);
    let out = siphon(&["check", "--config", config.to_str().unwrap()], &[("SIPHON_E2E_TOKEN", "abcd")]);
    (out.status.success(), text(&out))
}

#[test]
fn check_accepts_a_good_config() {
    let (ok, t) =
        check(&Install::new("x"), &[source("ns", &guest("netskope_alerts"), "*/5 * * * *", "SIPHON_E2E_TOKEN")]);
    assert!(ok, "{t}");
    assert!(t.contains("ok: source `ns`: netskope-alerts@"), "{t}");
}

#[test]
fn check_names_a_bad_rate() {
    let wasm = guest("netskope_alerts");
    let (ok, t) = check(
        &Install::new("x"),
        &[source("mule", &wasm, "* * * * *", "SIPHON_E2E_TOKEN").limit("rate", "\"40/fortnight\"")],
    );
    assert!(!ok, "{t}");
    assert!(t.contains("sources.mule.limits.rate") && t.contains("40/fortnight"), "{t}");
    let (ok, t) = check(
        &Install::new("x"),
        &[source("mule", &wasm, "* * * * *", "SIPHON_E2E_TOKEN").limit("rate", "\"40/min\"")],
    );
    assert!(ok, "{t}");
}

#[test]
fn check_names_an_unknown_key() {
    let install = Install::new("x");
    let config =
        install.config_with(&source("ns", &guest("netskope_alerts"), "* * * * *", "V").render(), "colour = \"blue\"");
    let out = siphon(&["check", "--config", config.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(t.contains("unknown field `colour`"), "{t}");
}

#[test]
fn check_names_a_missing_secret_a_bad_cron_and_a_missing_wasm() {
    let install = Install::new("x");
    let (ok, t) = check(
        &install,
        &[
            source("nosecret", &guest("netskope_alerts"), "* * * * *", "SIPHON_E2E_SURELY_UNSET"),
            source("badcron", &guest("netskope_alerts"), "61 * * * *", "SIPHON_E2E_TOKEN"),
            source("nowasm", &install.path("nope.wasm"), "* * * * *", "SIPHON_E2E_TOKEN"),
        ],
    );
    assert!(!ok);
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
    let (ok, t) = check(
        &install,
        &[
            source("garbage", &install.path("garbage.wasm"), "* * * * *", "SIPHON_E2E_TOKEN"),
            source("core", &install.path("core.wasm"), "* * * * *", "SIPHON_E2E_TOKEN"),
        ],
    );
    assert!(!ok);
    assert!(
        t.contains("sources.garbage.collector") && t.contains("garbage.wasm: not a valid WebAssembly component"),
        "{t}"
    );
    assert!(t.contains("sources.core.collector") && t.contains("core.wasm"), "{t}");
}

#[test]
fn check_names_settings_the_collector_does_not_know_or_needs() {
    let install = Install::new("x");
    let source = SourceToml { allow_http: false, ..SourceToml::new("ns", guest("netskope_alerts")) }
        .schedule("* * * * *")
        .host("h.com")
        .set("base_urll", "https://h.com");
    let config = install.config(&source.render());
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
