//! The source's configuration: its name, settings and secrets.
//!
//! The host passes every setting as text (TOML strings unchanged, numbers and
//! booleans as their TOML text, arrays of strings as a JSON array). The typed
//! helpers here parse that text and turn a malformed value into an
//! [`Error::Config`] that names the key, so a collector can simply use `?`.
//! The parsers are public and pure, for collectors that read settings from
//! somewhere else (e.g. unit tests).

use std::time::Duration;

use crate::{Error, sys};

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
    fn invalid_names_key_and_value() {
        let e = invalid("lookback_hours", "x", "expected a number");
        assert_eq!(e, Error::Config("setting `lookback_hours` = \"x\" is invalid: expected a number".to_string()));
    }
}
