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
        Redactor {
            values: self
                .values
                .values()
                .map(|s| s.expose_secret().to_owned())
                // Very short values would redact ordinary words; a secret of
                // under 4 characters is not a secret worth the noise.
                .filter(|v| v.len() >= 4)
                .collect(),
        }
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.values.keys().map(|k| (k, "[REDACTED]"))).finish()
    }
}

/// Replaces secret values in text with `[REDACTED]`.
#[derive(Clone, Default)]
pub struct Redactor {
    values: Vec<String>,
}

impl Redactor {
    /// `text` with every secret value replaced.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for value in &self.values {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), "[REDACTED]");
            }
        }
        out
    }

    /// Whether `text` contains a secret value.
    pub fn leaks(&self, text: &str) -> bool {
        self.values.iter().any(|v| text.contains(v.as_str()))
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} values)", self.values.len())
    }
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
