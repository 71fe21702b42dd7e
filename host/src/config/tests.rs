//! Config parsing and validation: every error names its field.

use super::*;

fn dir_with_wasm() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.wasm"), b"\0asm").unwrap();
    dir
}

fn load(dir: &Path, text: &str) -> Result<Settings, ConfigError> {
    let path = dir.join("siphon.toml");
    std::fs::write(&path, text).unwrap();
    Settings::load(&path)
}

const BASE: &str = r#"
[sink]
backend = "local"
[sink.local]
dir = "out"
[state]
backend = "local"
[state.local]
dir = "state"
"#;

#[test]
#[allow(unsafe_code, reason = "env::set_var is unsafe in edition 2024; this test owns its variable")]
fn a_good_config_resolves_paths_and_settings() {
    let dir = dir_with_wasm();
    // SAFETY: tests in this module use distinct variable names.
    unsafe { std::env::set_var("SIPHON_CFG_TEST_TOKEN", "tok-123456") };
    let text = format!(
        r#"{BASE}
[sources.ns]
collector = "c.wasm"
schedule = "*/5 * * * *"
allowed_hosts = ["tenant.goskope.com"]
settings = {{ base_url = "https://tenant.goskope.com", types = ["dlp", "malware"], pages = 5 }}
secrets = {{ api_token = {{ env = "SIPHON_CFG_TEST_TOKEN" }} }}
"#
    );
    let s = load(dir.path(), &text).unwrap();
    let src = &s.sources["ns"];
    assert_eq!(src.collector, dir.path().join("c.wasm"));
    assert_eq!(src.settings["types"], r#"["dlp","malware"]"#);
    assert_eq!(src.settings["pages"], "5");
    assert_eq!(src.secrets.get("api_token"), Some("tok-123456"));
    assert_eq!(src.prefix, "ns");
    assert!(!format!("{src:?}").contains("tok-123456"), "Debug never shows secrets");
}

#[test]
fn unknown_keys_are_rejected_with_their_name() {
    let dir = dir_with_wasm();
    let text = format!(
        "{BASE}\n[sources.ns]\ncollector = \"c.wasm\"\nschedule = \"* * * * *\"\nallowed_hosts = [\"h.com\"]\nsurprise = 1\n"
    );
    let e = load(dir.path(), &text).unwrap_err().to_string();
    assert!(e.contains("surprise"), "{e}");
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let dir = dir_with_wasm();
    let text = format!(
        r#"{BASE}
[sources.ns]
collector = "missing.wasm"
schedule = "every tuesday"
allowed_hosts = ["https://h.com"]
secrets = {{ api_token = "inline-secret-value", other = {{ env = "SIPHON_CFG_TEST_SURELY_UNSET" }} }}
"#
    );
    let e = load(dir.path(), &text).unwrap_err().to_string();
    for needle in [
        "sources.ns.schedule: invalid cron expression `every tuesday`",
        "sources.ns.collector: file",
        "missing.wasm",
        "sources.ns.allowed_hosts",
        "sources.ns.secrets.api_token: secrets must not be written in the config file",
        "sources.ns.secrets.other: environment variable `SIPHON_CFG_TEST_SURELY_UNSET` is not set",
    ] {
        assert!(e.contains(needle), "missing {needle:?} in:\n{e}");
    }
    assert!(!e.contains("inline-secret-value"), "the inline secret is never echoed");
}

#[test]
fn source_names_and_prefixes_are_checked() {
    let dir = dir_with_wasm();
    let text = format!(
        "{BASE}\n[sources.\"Bad Name\"]\ncollector = \"c.wasm\"\nschedule = \"* * * * *\"\nallowed_hosts = [\"h.com\"]\nprefix = \"../x\"\n"
    );
    let e = load(dir.path(), &text).unwrap_err().to_string();
    assert!(e.contains("sources.Bad Name.name"), "{e}");
    assert!(e.contains("sources.Bad Name.prefix"), "{e}");
}

#[test]
fn rates_are_validated_with_their_source_and_field() {
    let dir = dir_with_wasm();
    let source = |name: &str, limits: &str| {
        format!(
            "[sources.{name}]\ncollector = \"c.wasm\"\nschedule = \"* * * * *\"\nallowed_hosts = [\"h.com\"]\nlimits = {{ {limits} }}\n"
        )
    };
    let good = format!("{BASE}\n{}", source("mule", r#"rate = "40/min""#));
    let s = load(dir.path(), &good).unwrap();
    let rate = s.sources["mule"].limits.request_rate().unwrap();
    assert_eq!((rate.count.get(), rate.period.as_secs(), rate.burst.get()), (40, 60, 1));

    let bad = format!(
        "{BASE}\n{}\n{}",
        source("mule", r#"rate = "40/fortnight""#),
        source("both", r#"rate = "5/s", requests_per_second = 5"#)
    );
    let e = load(dir.path(), &bad).unwrap_err().to_string();
    for needle in [
        r#"sources.mule.limits.rate: "40/fortnight" is invalid: unknown period unit `fortnight`"#,
        "sources.both.limits.rate: `rate` and `requests_per_second` are mutually exclusive",
    ] {
        assert!(e.contains(needle), "missing {needle:?} in:\n{e}");
    }
}

#[test]
fn the_shipped_example_config_parses() {
    let text = include_str!("../../../examples/demo.toml");
    let config: Config = toml::from_str(text).unwrap_or_else(|e| panic!("examples/demo.toml: {e}"));
    let source = &config.sources["netskope-alerts"];
    assert!(config.engine.run_on_start);
    assert!(source.secrets.contains_key("api_token"));
    assert!(Cron::from_str(&source.schedule).is_ok());
}

#[test]
fn the_http_listener_defaults_to_loopback_and_accepts_the_older_metrics_table() {
    let dir = dir_with_wasm();
    let source = "[sources.ns]\ncollector = \"c.wasm\"\nschedule = \"* * * * *\"\nallowed_hosts = [\"h.com\"]\n";
    let s = load(dir.path(), &format!("{BASE}\n[http]\n{source}")).unwrap();
    let http = s.http.expect("[http] turns the listener on");
    assert_eq!(http.listen.to_string(), "127.0.0.1:9464");
    assert_eq!(http.probe_interval, Duration::from_secs(60));
    let s = load(dir.path(), &format!("{BASE}\n[metrics]\nlisten = \"127.0.0.1:9999\"\n{source}")).unwrap();
    assert_eq!(s.http.expect("on").listen.to_string(), "127.0.0.1:9999");
    assert!(load(dir.path(), &format!("{BASE}\n{source}")).unwrap().http.is_none(), "off without either");
    let both = format!("{BASE}\n[metrics]\nlisten = \"127.0.0.1:1\"\n[http]\n{source}");
    let e = load(dir.path(), &both).unwrap_err().to_string();
    assert!(e.contains("metrics.listen: `[metrics]` is the older name of `[http]`"), "{e}");
    let e = load(dir.path(), &format!("{BASE}\n[engine]\nwatch = \"10ms\"\n{source}")).unwrap_err().to_string();
    assert!(e.contains("engine.watch: must be at least 1s"), "{e}");
}

#[test]
fn tools_that_run_no_collector_load_a_config_without_its_secrets() {
    let dir = dir_with_wasm();
    let text = format!(
        "{BASE}\n[sources.ns]\ncollector = \"c.wasm\"\nschedule = \"* * * * *\"\nallowed_hosts = [\"h.com\"]\n\
         secrets = {{ api_token = {{ env = \"SIPHON_CFG_TEST_SURELY_UNSET\" }}, other = {{ file = \"nope.txt\" }} }}\n"
    );
    let path = dir.path().join("siphon.toml");
    std::fs::write(&path, &text).unwrap();
    let e = Settings::load(&path).unwrap_err().to_string();
    assert!(e.contains("SIPHON_CFG_TEST_SURELY_UNSET") && e.contains("nope.txt"), "{e}");
    let s = Settings::load_with(&path, SecretsMode::Skip).expect("no secret is read");
    assert_eq!(s.sources["ns"].secrets.get("api_token"), None);
    let bad = text.replace("{ file = \"nope.txt\" }", "{ file = \"a\", env = \"B\" }");
    std::fs::write(&path, bad).unwrap();
    let e = Settings::load_with(&path, SecretsMode::Skip).unwrap_err().to_string();
    assert!(e.contains("secrets.other: set exactly one of `env` or `file`"), "{e}");
}
