//! Secrets: where their values come from (environment or file, never the
//! config text), how they are held (zeroised, redacted in `Debug`), and the
//! redactor that scrubs them out of anything a collector writes to logs,
//! checkpoints or errors.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// How a secret is configured: `{ env = "VAR" }`, `{ file = "/path" }`, or
/// (rejected by validation with a clear message) an inline string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum SecretSource {
    /// A reference to where the value lives.
    Ref(SecretRef),
    /// A value written into the config file. Never accepted; kept only so
    /// the error can say why instead of "data did not match any variant".
    Inline(#[allow(dead_code)] IgnoredSecret),
}

/// An inline secret value, read only to be refused; never printed.
pub struct IgnoredSecret;

impl<'de> Deserialize<'de> for IgnoredSecret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Consume the value without keeping it.
        serde::de::IgnoredAny::deserialize(d).map(|_| IgnoredSecret)
    }
}

impl fmt::Debug for IgnoredSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// Where a secret's value is read from. Exactly one of the fields is set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// Name of an environment variable of the siphon process.
    pub env: Option<String>,
    /// File holding the value (e.g. a Kubernetes secret mount); one trailing
    /// newline is removed. Relative to the config file.
    pub file: Option<PathBuf>,
}

impl SecretRef {
    /// Read the value now. Errors name the variable or file, never the value.
    pub fn read(&self, resolve: &dyn Fn(&Path) -> PathBuf) -> Result<SecretString, String> {
        let value = match (&self.env, &self.file) {
            (Some(var), None) => std::env::var(var).map_err(|e| match e {
                std::env::VarError::NotPresent => {
                    format!("environment variable `{var}` is not set")
                }
                std::env::VarError::NotUnicode(_) => {
                    format!("environment variable `{var}` is not valid UTF-8")
                }
            })?,
            (None, Some(file)) => {
                let path = resolve(file);
                let mut text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read secret file {}: {e}", path.display()))?;
                if text.ends_with('\n') {
                    text.pop();
                    if text.ends_with('\r') {
                        text.pop();
                    }
                }
                text
            }
            _ => return Err("set exactly one of `env` or `file`".to_owned()),
        };
        if value.is_empty() {
            return Err(match &self.env {
                Some(var) => format!("environment variable `{var}` is empty"),
                None => "secret file is empty".to_owned(),
            });
        }
        Ok(SecretString::from(value))
    }
}

/// The secrets of one source, by name.
#[derive(Clone, Default)]
pub struct Secrets {
    values: BTreeMap<String, SecretString>,
}

impl Secrets {
    /// Add a secret.
    pub fn insert(&mut self, name: String, value: SecretString) {
        self.values.insert(name, value);
    }

    /// The value of a secret, for the `config.secret` import.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(|s| s.expose_secret())
    }

    /// Names of the configured secrets.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// A redactor for these values.
    pub fn redactor(&self) -> Redactor {
        Redactor::new(self.values.values().map(|s| s.expose_secret()))
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.values.keys().map(|k| (k, "[REDACTED]"))).finish()
    }
}

/// Replaces secret values in text with `[REDACTED]`: the values as
/// configured and as they appear when a collector puts them into a URL, a
/// JSON string or HTTP Basic credentials by accident (percent-encoded,
/// JSON-escaped, base64 at any alignment inside a longer base64 text).
///
/// This protects against accidents: a token echoed in an error, a URL with
/// the key in its path, a record that copies a request. It cannot stop a
/// collector written to smuggle a secret out (encrypted, reversed, split
/// over records); such a collector has to be kept out by not running it.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Every form of every value, longest first.
    needles: std::sync::Arc<[String]>,
    /// A SIMD searcher per needle, same order: every record a collector
    /// emits is searched for every form, so this is on the hot path.
    finders: std::sync::Arc<[memchr::memmem::Finder<'static>]>,
}

/// Characters left as they are by percent-encoding (RFC 3986 unreserved).
const UNRESERVED: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Encoded forms shorter than this are not searched for: a few base64
/// characters occur in ordinary text by chance.
const MIN_ENCODED_FORM: usize = 8;

const REDACTED: &str = "[REDACTED]";

impl Redactor {
    /// A redactor for `values`. Values under 4 characters are skipped: they
    /// would redact ordinary words, and are not secrets worth the noise.
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Redactor {
        let mut needles = Vec::new();
        for value in values.into_iter().filter(|v| v.len() >= 4) {
            needles.push(value.to_owned());
            let mut encoded = Vec::new();
            if let Ok(json) = serde_json::to_string(value) {
                encoded.push(json[1..json.len() - 1].to_owned());
            }
            let percent = percent_encoding::utf8_percent_encode(value, UNRESERVED).to_string();
            encoded.push(lower_hex_escapes(&percent));
            encoded.push(percent.replace("%20", "+"));
            encoded.push(percent);
            for offset in 0..3 {
                encoded.push(base64_core(value.as_bytes(), offset, STANDARD));
                encoded.push(base64_core(value.as_bytes(), offset, URL_SAFE));
            }
            needles.extend(encoded.into_iter().filter(|e| e.len() >= MIN_ENCODED_FORM));
        }
        needles.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        needles.dedup();
        let finders = needles.iter().map(|n| memchr::memmem::Finder::new(n.as_bytes()).into_owned()).collect();
        Redactor { needles: needles.into(), finders }
    }

    /// `text` with every secret value (in every form) replaced.
    pub fn redact(&self, text: &str) -> String {
        self.redact_clipped(text, usize::MAX)
    }

    /// `text` with every secret value replaced, cut after `max` bytes of the
    /// original and marked ` [...]` when cut. A value that starts before the
    /// cut is replaced whole, so no prefix of one is ever shown; only the
    /// first `max` bytes plus the longest form are searched, so a huge text
    /// costs no more than a short one.
    pub fn redact_clipped(&self, text: &str, max: usize) -> String {
        let longest = self.needles.first().map_or(0, String::len);
        let mut window_end = text.len().min(max.saturating_add(longest));
        while !text.is_char_boundary(window_end) {
            window_end -= 1;
        }
        let spans = self.matches(&text[..window_end]);
        let mut out = String::with_capacity(text.len().min(max) + 16);
        let mut pos = 0;
        for (start, end) in spans {
            if start >= max {
                break;
            }
            out.push_str(&text[pos..start]);
            out.push_str(REDACTED);
            pos = end;
        }
        if pos < max && pos < text.len() {
            let mut end = text.len().min(max);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            if end > pos {
                out.push_str(&text[pos..end]);
                pos = end;
            }
        }
        if pos < text.len() {
            out.push_str(" [...]");
        }
        out
    }

    /// Length of the longest form of a value (0 without secrets): a text cut
    /// this far past a limit still holds every value that starts before it.
    pub fn longest(&self) -> usize {
        self.needles.first().map_or(0, String::len)
    }

    /// Whether `text` contains a secret value in any form.
    pub fn leaks(&self, text: &str) -> bool {
        self.finders.iter().any(|f| f.find(text.as_bytes()).is_some())
    }

    /// Byte ranges of `text` holding a value, merged where they overlap,
    /// in order.
    fn matches(&self, text: &str) -> Vec<(usize, usize)> {
        let mut spans: Vec<(usize, usize)> = Vec::new();
        for needle in self.needles.iter() {
            spans.extend(text.match_indices(needle.as_str()).map(|(i, m)| (i, i + m.len())));
        }
        spans.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
        for (start, end) in spans {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        merged
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} forms)", self.needles.len())
    }
}

/// `%2f` for `%2F`: servers and clients write either.
fn lower_hex_escapes(percent: &str) -> String {
    let mut out = String::with_capacity(percent.len());
    let mut hex_left = 0;
    for c in percent.chars() {
        if c == '%' {
            hex_left = 2;
            out.push(c);
        } else if hex_left > 0 {
            hex_left -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The base64 characters that depend only on `value` when it sits
/// `offset` bytes into a longer base64-encoded text (such as the
/// `user:password` of HTTP Basic): the characters that also cover a
/// neighbouring byte differ from text to text and are left out.
fn base64_core(value: &[u8], offset: usize, alphabet: &[u8; 64]) -> String {
    let mut data = vec![0u8; offset];
    data.extend_from_slice(value);
    let bits = data.len() * 8;
    let first = (offset * 8).div_ceil(6);
    let last = bits / 6; // exclusive: only characters made entirely of `data`
    let mut out = String::new();
    for k in first..last {
        let bit = k * 6;
        let (byte, shift) = (bit / 8, bit % 8);
        let word = (u16::from(data[byte]) << 8) | u16::from(data.get(byte + 1).copied().unwrap_or(0));
        let index = (word >> (10 - shift)) & 0x3f;
        out.push(char::from(alphabet[usize::from(index)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_every_occurrence_and_reports_leaks() {
        let mut s = Secrets::default();
        s.insert("token".into(), SecretString::from("s3cr3t-value"));
        let r = s.redactor();
        assert_eq!(r.redact("a s3cr3t-value b s3cr3t-value"), "a [REDACTED] b [REDACTED]");
        assert!(r.leaks("xx s3cr3t-value"));
        assert!(!r.leaks("nothing here"));
        assert_eq!(format!("{s:?}"), r#"{"token": "[REDACTED]"}"#);
    }

    #[test]
    fn encoded_forms_are_found_too() {
        let r = Redactor::new(["S3cr3t/key+v@lue", "ab"]);
        for text in
            ["S3cr3t/key+v@lue", "S3cr3t%2Fkey%2Bv%40lue", "S3cr3t%2fkey%2bv%40lue", r#"{"k":"S3cr3t/key+v@lue"}"#]
        {
            assert!(r.leaks(text), "{text}");
        }
        // base64 of "S3cr3t/key+v@lue" behind "", "u:", "us:" and "use:" (HTTP Basic).
        for basic in [
            "UzNjcjN0L2tleSt2QGx1ZQ==",
            "dTpTM2NyM3Qva2V5K3ZAbHVl",
            "dXM6UzNjcjN0L2tleSt2QGx1ZQ==",
            "dXNlOlMzY3IzdC9rZXkrdkBsdWU=",
        ] {
            assert!(r.leaks(&format!("Basic {basic}")), "{basic}");
            let url_safe = basic.replace('+', "-").replace('/', "_");
            assert!(r.leaks(&url_safe), "{url_safe}");
            assert!(!r.redact(basic).contains(&basic[4..basic.len() - 6]), "{basic}");
        }
        assert!(!r.leaks("ab is too short to be a secret"));
        assert!(!r.leaks("S3cr3t/key"));
    }

    #[test]
    fn clipping_never_shows_part_of_a_secret() {
        let r = Redactor::new(["0123456789abcdef"]);
        assert_eq!(r.redact_clipped("xx0123456789abcdefyy", 4), "xx[REDACTED] [...]");
        assert_eq!(r.redact_clipped("xxxx0123456789abcdef", 4), "xxxx [...]");
        assert_eq!(r.redact_clipped("short", 100), "short");
        let long = format!("{}0123456789abcdef", "é".repeat(10));
        assert_eq!(r.redact_clipped(&long, 5), "éé [...]");
        assert_eq!(r.redact("a 0123456789abcdef0123456789abcdef b"), "a [REDACTED] b");
    }

    #[test]
    fn reads_files_and_names_missing_env() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tok"), "abcd1234\n").unwrap();
        let r = SecretRef { env: None, file: Some("tok".into()) };
        let v = r.read(&|p| dir.path().join(p)).unwrap();
        assert_eq!(v.expose_secret(), "abcd1234");
        let r = SecretRef { env: Some("SIPHON_TEST_SURELY_UNSET_VAR".into()), file: None };
        let e = r.read(&|p| p.to_owned()).unwrap_err();
        assert!(e.contains("SIPHON_TEST_SURELY_UNSET_VAR"), "{e}");
        let r = SecretRef { env: Some("A".into()), file: Some("b".into()) };
        assert!(r.read(&|p| p.to_owned()).unwrap_err().contains("exactly one"));
    }
}
