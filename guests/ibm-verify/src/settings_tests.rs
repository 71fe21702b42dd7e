//! Defaults, validation (every error names its key) and what `info` lists.

use super::*;

fn read(settings: &[(&str, &str)]) -> Result<Config, Error> {
    let mut io = siphon_sdk::testing::FakeIo::new(|_: &siphon_sdk::http::Request| unreachable!())
        .secret("client_id", "c1")
        .secret("client_secret", "s3cr3t");
    for (k, v) in settings {
        io.settings.insert(k.to_string(), v.to_string());
    }
    Config::read(&io)
}

#[test]
fn defaults() {
    let c = read(&[("base_url", "https://acme.verify.ibm.com/")]).unwrap();
    assert_eq!(c.base_url, "https://acme.verify.ibm.com");
    assert_eq!(c.event_types, None, "every event type");
    assert_eq!((c.lookback_ms, c.page_size, c.max_pages), (24 * 3_600_000, 1000, 100));
    assert_eq!((c.client_id.as_str(), c.client_secret.as_str()), ("c1", "s3cr3t"));
}

#[test]
fn values() {
    let c = read(&[
        ("base_url", "https://acme.ice.ibmcloud.com"),
        ("event_types", r#"["authentication", "sso", "adaptive_risk"]"#),
        ("lookback_hours", "48"),
        ("page_size", "10000"),
        ("max_pages_per_run", "5"),
    ])
    .unwrap();
    assert_eq!(c.event_types, Some(vec!["authentication".into(), "sso".into(), "adaptive_risk".into()]));
    assert_eq!((c.lookback_ms, c.page_size, c.max_pages), (48 * 3_600_000, 10_000, 5));
    assert_eq!(read(&[("base_url", "https://a"), ("event_types", "ALL")]).unwrap().event_types, None);
    assert_eq!(
        read(&[("base_url", "https://a"), ("event_types", "sso,sso")]).unwrap().event_types,
        Some(vec!["sso".into()])
    );
}

#[test]
fn every_validation_error_names_its_key() {
    let base = ("base_url", "https://acme.verify.ibm.com");
    for (setting, key) in [
        (("page_size", "20000"), "page_size"),
        (("page_size", "0"), "page_size"),
        (("lookback_hours", "2161"), "lookback_hours"),
        (("lookback_hours", "-1"), "lookback_hours"),
        (("max_pages_per_run", "0"), "max_pages_per_run"),
        (("event_types", r#"["sso\"", "x"]"#), "event_types"),
        (("event_types", "all, sso"), "event_types"),
        (("event_types", " , "), "event_types"),
    ] {
        let e = read(&[base, setting]).err().unwrap_or_else(|| panic!("{setting:?} was accepted"));
        assert_eq!(e.kind(), "config");
        assert!(e.message().starts_with(&format!("setting `{key}` = ")), "{e}");
    }
    for bad in ["acme.verify.ibm.com", "ftp://acme", "https://acme/?x=1"] {
        let e = read(&[("base_url", bad)]).err().unwrap();
        assert!(e.message().starts_with("setting `base_url`"), "{e}");
    }
    assert_eq!(read(&[]).err().unwrap().message(), "setting `base_url` is required");
    let io = siphon_sdk::testing::FakeIo::new(|_: &siphon_sdk::http::Request| unreachable!())
        .setting("base_url", "https://a")
        .secret("client_id", "c1");
    assert_eq!(Config::read(&io).err().unwrap().message(), "secret `client_secret` is required");
}

#[test]
fn info_lists_every_setting_with_its_default() {
    let specs: Vec<_> = DECLARED.iter().map(|d| d.spec()).collect();
    let listed: Vec<(&str, Option<&str>, bool, bool)> =
        specs.iter().map(|s| (s.name.as_str(), s.default_value.as_deref(), s.required, s.secret)).collect();
    assert_eq!(
        listed,
        [
            ("base_url", None, true, false),
            ("event_types", Some("all"), false, false),
            ("lookback_hours", Some("24"), false, false),
            ("page_size", Some("1000"), false, false),
            ("max_pages_per_run", Some("100"), false, false),
            ("client_id", None, true, true),
            ("client_secret", None, true, true),
        ]
    );
}

#[test]
fn validate_lists_every_problem_by_key() {
    let io = siphon_sdk::testing::FakeIo::new(|_: &siphon_sdk::http::Request| unreachable!())
        .setting("page_size", "20000")
        .setting("event_types", "all,sso")
        .secret("client_id", "c1");
    assert_eq!(
        siphon_sdk::config::problems(&DECLARED, &io),
        [
            "setting `base_url` is required",
            "setting `event_types` = \"all,sso\" is invalid: `all` cannot be combined with other types",
            "setting `page_size` = \"20000\" is invalid: must be between 1 and 10000",
            "secret `client_secret` is required",
        ]
    );
}
