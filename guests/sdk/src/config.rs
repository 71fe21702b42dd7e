//! The source's configuration: its name, settings and secrets.
//!
//! The host passes every setting as text (TOML strings unchanged, numbers and
//! booleans as their TOML text, arrays of strings as a JSON array). The typed
//! helpers here parse that text and turn a malformed value into an
//! [`Error::Config`] that names the key, so a collector can simply use `?`.
//! The parsers are public and pure, for collectors that read settings from
//! somewhere else (e.g. unit tests).

use std::time::Duration;

use crate::{Error, SettingSpec, sys};

/// Name of the source this run collects for (`[sources.<name>]`).
pub fn source_name() -> String {
    sys::source_name()
}

/// A setting as text, or none when the source does not configure it.
pub fn setting(name: &str) -> Option<String> {
    sys::setting(name)
}

/// A setting, or `default` when not configured.
pub fn setting_or(name: &str, default: &str) -> String {
    setting(name).unwrap_or_else(|| default.to_string())
}

/// A setting the collector cannot run without; empty text counts as missing.
pub fn required_setting(name: &str) -> Result<String, Error> {
    match setting(name) {
        Some(v) if !v.trim().is_empty() => Ok(v),
        Some(_) => Err(Error::Config(format!("setting `{name}` is empty"))),
        None => Err(Error::Config(format!("setting `{name}` is required"))),
    }
}

/// A setting parsed with [`parse_u64`], or `default` when not configured.
pub fn setting_u64_or(name: &str, default: u64) -> Result<u64, Error> {
    setting(name).map_or(Ok(default), |v| parse_u64(&v).map_err(|why| invalid(name, &v, &why)))
}

/// A setting parsed with [`parse_bool`], or `default` when not configured.
pub fn setting_bool_or(name: &str, default: bool) -> Result<bool, Error> {
    setting(name).map_or(Ok(default), |v| parse_bool(&v).map_err(|why| invalid(name, &v, &why)))
}

/// A setting parsed with [`parse_duration`], or `default` when not configured.
pub fn setting_duration_or(name: &str, default: Duration) -> Result<Duration, Error> {
    setting(name).map_or(Ok(default), |v| parse_duration(&v).map_err(|why| invalid(name, &v, &why)))
}

/// A setting parsed with [`parse_list`], or none when not configured.
pub fn setting_list(name: &str) -> Result<Option<Vec<String>>, Error> {
    setting(name).map(|v| parse_list(&v).map_err(|why| invalid(name, &v, &why))).transpose()
}

/// A secret, or none when not configured. Never log it: the host scrubs
/// configured secret values, but only exact matches.
pub fn secret(name: &str) -> Option<String> {
    sys::secret(name)
}

/// A secret the collector cannot run without; empty counts as missing.
pub fn required_secret(name: &str) -> Result<String, Error> {
    match secret(name) {
        Some(v) if !v.trim().is_empty() => Ok(v),
        Some(_) => Err(Error::Config(format!("secret `{name}` is empty"))),
        None => Err(Error::Config(format!("secret `{name}` is required"))),
    }
}

/// The error for a setting whose text does not parse. The value is quoted
/// because settings are not secrets.
pub fn invalid(name: &str, value: &str, why: &str) -> Error {
    Error::Config(format!("setting `{name}` = {value:?} is invalid: {why}"))
}

/// Parses an unsigned integer; `_` digit separators are accepted as in TOML.
pub fn parse_u64(text: &str) -> Result<u64, String> {
    let t = text.trim();
    // TOML writes `1_000`; it reaches us as its text, so accept it.
    let digits: String = t.chars().filter(|c| *c != '_').collect();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("expected a non-negative whole number".to_string());
    }
    digits.parse().map_err(|_| "the number is too large".to_string())
}

/// Parses `true`/`false` (also `yes`/`no`, `on`/`off`, `1`/`0`), any case.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err("expected true or false".to_string()),
    }
}

/// Parses a duration: a whole number with an optional unit `ms`, `s`, `m`,
/// `h` or `d` (no unit means seconds), e.g. `90`, `30s`, `5m`, `24h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '_').unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n = parse_u64(number).map_err(|_| "expected a whole number with an optional unit (ms, s, m, h, d)")?;
    let secs = |mul: u64| n.checked_mul(mul).map(Duration::from_secs);
    let d = match unit.trim() {
        "ms" => Some(Duration::from_millis(n)),
        "" | "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3_600),
        "d" => secs(86_400),
        _ => return Err("unknown unit: use ms, s, m, h or d".to_string()),
    };
    d.ok_or_else(|| "the duration is too large".to_string())
}

/// Parses a list: a JSON array of strings (how the host passes TOML arrays)
/// or comma-separated text. Items are trimmed; empty items are dropped.
pub fn parse_list(text: &str) -> Result<Vec<String>, String> {
    let t = text.trim();
    let items: Vec<String> = if t.starts_with('[') {
        serde_json::from_str(t).map_err(|e| format!("expected a JSON array of strings: {e}"))?
    } else {
        t.split(',').map(str::to_string).collect()
    };
    Ok(items.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
}

/// A setting declared once: its [`SettingSpec`] for `info` and its typed,
/// validated value, read from any lookup function (the host's
/// [`setting`], or a closure in a native test).
///
/// The default is written as text and parsed by the same function as a
/// configured value, so what `siphon inspect` shows is what the collector uses.
///
/// ```
/// use siphon_sdk::config::{Setting, parse};
/// const PAGE_SIZE: Setting<u64> =
///     Setting::new("page_size", "Events per page, 1..10000", Some("1000"), |v| parse::u64_in(v, 1, 10_000));
/// assert_eq!(PAGE_SIZE.read(|_| None).ok(), Some(1000));
/// assert!(PAGE_SIZE.read(|_| Some("0".into())).is_err());
/// ```
pub struct Setting<T: 'static> {
    /// Key in the source's `settings` table.
    pub name: &'static str,
    /// One line for operators.
    pub description: &'static str,
    /// The default as configured text; none makes the setting required.
    pub default: Option<&'static str>,
    parse: fn(&str) -> Result<T, String>,
}

impl<T> Setting<T> {
    /// A setting parsed by `parse`; `default: None` makes it required.
    pub const fn new(
        name: &'static str,
        description: &'static str,
        default: Option<&'static str>,
        parse: fn(&str) -> Result<T, String>,
    ) -> Self {
        Self { name, description, default, parse }
    }

    /// The declaration `info` reports.
    pub fn spec(&self) -> SettingSpec {
        match self.default {
            Some(d) => SettingSpec::optional(self.name, self.description, d),
            None => SettingSpec::required(self.name, self.description),
        }
    }

    /// The value: the configured text (or the default) parsed and validated.
    /// A missing required setting or a bad value is an [`Error::Config`]
    /// naming the key and the value.
    pub fn read(&self, lookup: impl Fn(&str) -> Option<String>) -> Result<T, Error> {
        match lookup(self.name) {
            Some(text) => (self.parse)(&text).map_err(|why| invalid(self.name, &text, &why)),
            None => match self.default {
                Some(d) => (self.parse)(d).map_err(|why| invalid(self.name, d, &why)),
                None => Err(Error::Config(format!("setting `{}` is required", self.name))),
            },
        }
    }

    /// The value from the run's [`Io`](crate::io::Io).
    pub fn get(&self, io: &dyn crate::io::Io) -> Result<T, Error> {
        self.read(|k| io.setting(k))
    }
}

/// A secret declared once: its [`SettingSpec`] and its value.
pub struct Secret {
    /// Key in the source's `secrets` table.
    pub name: &'static str,
    /// One line for operators (never the value).
    pub description: &'static str,
    /// Whether the source must configure it.
    pub required: bool,
}

impl Secret {
    /// A secret the collector cannot run without.
    pub const fn required(name: &'static str, description: &'static str) -> Self {
        Self { name, description, required: true }
    }

    /// A secret only some configurations need.
    pub const fn optional(name: &'static str, description: &'static str) -> Self {
        Self { name, description, required: false }
    }

    /// The declaration `info` reports.
    pub fn spec(&self) -> SettingSpec {
        SettingSpec::secret(self.name, self.description, self.required)
    }

    /// The value; missing or empty is an [`Error::Config`] naming the key.
    pub fn read(&self, lookup: impl Fn(&str) -> Option<String>) -> Result<String, Error> {
        match lookup(self.name) {
            Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
            Some(_) => Err(Error::Config(format!("secret `{}` is empty", self.name))),
            None => Err(Error::Config(format!("secret `{}` is required", self.name))),
        }
    }

    /// The value from the run's [`Io`](crate::io::Io).
    pub fn get(&self, io: &dyn crate::io::Io) -> Result<String, Error> {
        self.read(|k| io.secret(k))
    }
}

/// Anything `info` lists: a [`Setting`] of any type or a [`Secret`].
pub trait Declared {
    /// The declaration.
    fn spec(&self) -> SettingSpec;

    /// Why the source's value (or its absence) is unusable, naming the key;
    /// none when it is fine. Secrets are checked for presence only.
    fn problem(&self, io: &dyn crate::io::Io) -> Option<String>;
}

impl<T> Declared for Setting<T> {
    fn spec(&self) -> SettingSpec {
        Setting::spec(self)
    }

    fn problem(&self, io: &dyn crate::io::Io) -> Option<String> {
        self.get(io).err().map(|e| e.message().to_string())
    }
}

impl Declared for Secret {
    fn spec(&self) -> SettingSpec {
        Secret::spec(self)
    }

    fn problem(&self, io: &dyn crate::io::Io) -> Option<String> {
        match (self.required, io.secret(self.name)) {
            (false, None) => None,
            (_, value) => self.read(|_| value.clone()).err().map(|e| e.message().to_string()),
        }
    }
}

/// Every problem with the source's configuration, one line each naming its
/// key, for [`crate::Collector::validate`]: `siphon check` then refuses a
/// bad value before any run.
///
/// ```
/// use siphon_sdk::config::{Secret, Setting, parse, problems};
/// use siphon_sdk::testing::FakeIo;
/// const PAGE_SIZE: Setting<u64> = Setting::new("page_size", "Page", Some("100"), |v| parse::u64_in(v, 1, 100));
/// const KEY: Secret = Secret::required("api_key", "Key");
/// let io = FakeIo::new(|_: &siphon_sdk::http::Request| unreachable!()).setting("page_size", "500");
/// assert_eq!(
///     problems(&[&PAGE_SIZE, &KEY], &io),
///     ["setting `page_size` = \"500\" is invalid: must be between 1 and 100", "secret `api_key` is required"]
/// );
/// ```
pub fn problems(declared: &[&dyn Declared], io: &dyn crate::io::Io) -> Vec<String> {
    declared.iter().filter_map(|d| d.problem(io)).collect()
}

/// Parsers for [`Setting::new`]: each returns why the text is wrong.
pub mod parse {
    pub use super::{parse_bool as bool, parse_duration as duration, parse_list as list, parse_u64 as u64};

    /// Text as given, trimmed; empty is refused.
    pub fn text(v: &str) -> Result<String, String> {
        let t = v.trim();
        if t.is_empty() { Err("must not be empty".into()) } else { Ok(t.to_string()) }
    }

    /// A whole number in `min..=max`.
    pub fn u64_in(v: &str, min: u64, max: u64) -> Result<u64, String> {
        let n = super::parse_u64(v)?;
        if (min..=max).contains(&n) { Ok(n) } else { Err(format!("must be between {min} and {max}")) }
    }

    /// A whole number from `allowed`, e.g. the page sizes a vendor serves.
    pub fn u64_among(v: &str, allowed: &[u64]) -> Result<u64, String> {
        let n = super::parse_u64(v)?;
        if allowed.contains(&n) {
            return Ok(n);
        }
        let list: Vec<String> = allowed.iter().map(u64::to_string).collect();
        Err(format!("must be one of {}", list.join(", ")))
    }

    /// Non-empty text of ASCII letters and digits only, trimmed: an account id
    /// that goes into a URL path.
    pub fn alphanumeric(v: &str) -> Result<String, String> {
        let t = text(v)?;
        if t.bytes().all(|b| b.is_ascii_alphanumeric()) { Ok(t) } else { Err("must be letters and digits only".into()) }
    }

    /// A UUID in its text form (`8-4-4-4-12` hex digits, any case), trimmed:
    /// an organization or tenant id that goes into a URL path.
    pub fn uuid(v: &str) -> Result<String, String> {
        let t = text(v)?;
        let groups: Vec<&str> = t.split('-').collect();
        let shape = groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12]);
        if shape && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_hexdigit())) {
            Ok(t)
        } else {
            Err("must be a UUID, e.g. 0a12b3c4-d5e6-789f-1021-1a2b34cd5e6f".into())
        }
    }

    /// A whole number of at least 1.
    pub fn positive(v: &str) -> Result<u64, String> {
        let n = super::parse_u64(v)?;
        if n == 0 { Err("must be at least 1".into()) } else { Ok(n) }
    }

    /// A base URL: `https://host[:port][/path]` (or `http://`, which the
    /// host's egress policy refuses unless the source allows it), without a
    /// query, fragment or credentials; the trailing `/` is dropped.
    pub fn base_url(v: &str) -> Result<String, String> {
        let url = v.trim().trim_end_matches('/');
        let lower = url.to_ascii_lowercase();
        let Some(rest) = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://")) else {
            return Err("must start with https://".into());
        };
        let host = rest.split('/').next().unwrap_or_default();
        if host.is_empty() {
            return Err("has no host name".into());
        }
        if rest.contains(['?', '#']) {
            return Err("must not contain a query or fragment".into());
        }
        if host.contains('@') {
            return Err("must not contain credentials".into());
        }
        Ok(url.to_string())
    }

    /// A non-empty list of names without duplicates (order kept), each made
    /// of letters, digits, `_`, `-`, `.` and spaces only.
    pub fn names(v: &str) -> Result<Vec<String>, String> {
        let mut out: Vec<String> = Vec::new();
        for item in super::parse_list(v)? {
            if !item.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ' ')) {
                return Err(format!("`{item}` is not a valid name"));
            }
            if !out.contains(&item) {
                out.push(item);
            }
        }
        if out.is_empty() { Err("names nothing".into()) } else { Ok(out) }
    }

    /// One of `allowed` (case-insensitive), returned as written in `allowed`.
    pub fn one_of(v: &str, allowed: &[&'static str]) -> Result<&'static str, String> {
        allowed
            .iter()
            .find(|a| a.eq_ignore_ascii_case(v.trim()))
            .copied()
            .ok_or_else(|| format!("must be one of {}", allowed.join(", ")))
    }

    /// A list whose every item is one of `allowed` (case-insensitive).
    pub fn subset(v: &str, allowed: &[&'static str]) -> Result<Vec<&'static str>, String> {
        let mut out = Vec::new();
        for item in names(v)? {
            let known = one_of(&item, allowed).map_err(|_| format!("`{item}` is not one of {}", allowed.join(", ")))?;
            if !out.contains(&known) {
                out.push(known);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u64_accepts_toml_text() {
        assert_eq!(parse_u64(" 24 "), Ok(24));
        assert_eq!(parse_u64("10_000"), Ok(10_000));
        assert!(parse_u64("-1").is_err());
        assert!(parse_u64("1.5").is_err());
        assert!(parse_u64("").is_err());
        assert!(parse_u64("99999999999999999999999").is_err());
    }

    #[test]
    fn bool_variants() {
        assert_eq!(parse_bool("TRUE"), Ok(true));
        assert_eq!(parse_bool("off"), Ok(false));
        assert!(parse_bool("maybe").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2 d"), Ok(Duration::from_secs(172_800)));
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("18446744073709551615d").is_err());
    }

    #[test]
    fn lists() {
        assert_eq!(parse_list(r#"["dlp", " malware "]"#), Ok(vec!["dlp".to_string(), "malware".to_string()]));
        assert_eq!(parse_list("dlp, malware,,"), Ok(vec!["dlp".to_string(), "malware".to_string()]));
        assert_eq!(parse_list(""), Ok(vec![]));
        assert!(parse_list("[1, 2]").is_err());
    }

    #[test]
    fn typed_settings_parse_defaults_and_values_alike() {
        const PAGE: Setting<u64> = Setting::new("page_size", "Page", Some("250"), |v| parse::u64_in(v, 1, 250));
        const URL: Setting<String> = Setting::new("base_url", "Tenant", None, parse::base_url);
        assert_eq!(PAGE.read(|_| None), Ok(250));
        assert_eq!(PAGE.read(|_| Some("25".into())), Ok(25));
        let e = PAGE.read(|_| Some("251".into())).unwrap_err();
        assert_eq!(e.to_string(), "config: setting `page_size` = \"251\" is invalid: must be between 1 and 250");
        assert_eq!(URL.read(|_| None).unwrap_err().to_string(), "config: setting `base_url` is required");
        assert_eq!(URL.read(|_| Some("https://a.example/ ".into())), Ok("https://a.example".into()));
        for bad in ["a.example", "https://", "https://a/?x", "https://u:p@a/", "ftp://a"] {
            assert!(URL.read(|_| Some(bad.into())).is_err(), "{bad}");
        }
        assert_eq!(PAGE.spec(), SettingSpec::optional("page_size", "Page", "250"));
        assert!(URL.spec().required);
    }

    #[test]
    fn secrets_are_required_and_trimmed() {
        const KEY: Secret = Secret::required("client_secret", "Client secret");
        assert_eq!(KEY.read(|_| Some(" s3cr3t\n".into())), Ok("s3cr3t".into()));
        assert_eq!(KEY.read(|_| None).unwrap_err().to_string(), "config: secret `client_secret` is required");
        assert!(KEY.read(|_| Some("  ".into())).unwrap_err().to_string().contains("empty"));
        let spec = Declared::spec(&KEY);
        assert!(spec.secret && spec.required && spec.default_value.is_none());
    }

    #[test]
    fn list_parsers() {
        assert_eq!(parse::names("a, b ,a"), Ok(vec!["a".to_string(), "b".to_string()]));
        assert!(parse::names("a/../b").is_err());
        assert!(parse::names(" , ").is_err());
        assert_eq!(
            parse::subset(r#"["Devices","admin_logins"]"#, &["devices", "admin_logins"]),
            Ok(vec!["devices", "admin_logins"])
        );
        assert!(parse::subset("bogus", &["devices"]).unwrap_err().contains("`bogus`"));
        assert_eq!(parse::one_of(" 2.0", &["1.0", "2.0"]), Ok("2.0"));
        assert_eq!(parse::positive("0"), Err("must be at least 1".into()));
        assert_eq!(parse::u64_among(" 50", &[25, 50]), Ok(50));
        assert_eq!(parse::u64_among("30", &[25, 50]), Err("must be one of 25, 50".into()));
        assert_eq!(parse::alphanumeric(" 30012345 "), Ok("30012345".into()));
        assert!(parse::alphanumeric("300/12").is_err() && parse::alphanumeric("").is_err());
        assert_eq!(parse::text("  x "), Ok("x".into()));
        assert_eq!(
            parse::uuid(" 3F1C6A2E-7b5d-4c1e-9a2f-0d8e7c6b5a41 "),
            Ok("3F1C6A2E-7b5d-4c1e-9a2f-0d8e7c6b5a41".into())
        );
        for bad in [
            "3f1c6a2e7b5d4c1e9a2f0d8e7c6b5a41",
            "3f1c6a2e-7b5d-4c1e-9a2f-0d8e7c6b5a4",
            "../x",
            "3f1c6a2e-7b5d-4c1e-9a2f-0d8e7c6b5a4g",
        ] {
            assert!(parse::uuid(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn invalid_names_key_and_value() {
        let e = invalid("lookback_hours", "x", "expected a number");
        assert_eq!(e, Error::Config("setting `lookback_hours` = \"x\" is invalid: expected a number".to_string()));
    }
}
