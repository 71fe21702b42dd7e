//! The `[sources.<name>]` table of a siphon config, built in one place: every e2e test, the e2e
//! vendor suite and the bench describe a source with [`SourceToml`] instead of pasting TOML.
//!
//! ```
//! use siphon_tests::config::{SecretRef, SourceToml};
//! let toml = SourceToml::new("netskope", "target/guests/netskope_alerts.wasm")
//!     .host("127.0.0.1:8089")
//!     .set("base_url", "http://127.0.0.1:8089")
//!     .set_raw("full_page", "100")
//!     .secret("api_token", SecretRef::File("token.txt".into()))
//!     .render();
//! assert!(toml.contains(r#"settings = { base_url = "http://127.0.0.1:8089", full_page = 100 }"#));
//! ```

use std::path::Path;

/// Where a secret comes from: a file (relative to the config's directory) or an environment
/// variable. siphon never accepts one inline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretRef {
    /// `{ file = "…" }`.
    File(String),
    /// `{ env = "…" }`.
    Env(String),
}

/// One source table. Settings and limits keep their order; setting a key twice replaces it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceToml {
    /// The source's name (`[sources.<name>]`).
    pub name: String,
    /// Path of the collector component.
    pub collector: String,
    /// Cron schedule. Default `0 * * * *` (tests run sources by hand).
    pub schedule: String,
    /// Object name prefix of the source, if not the default.
    pub prefix: Option<String>,
    /// `allowed_hosts`.
    pub allowed_hosts: Vec<String>,
    /// `allow_http`. Default true: the mocks speak plain HTTP on loopback.
    pub allow_http: bool,
    /// Collector settings: key and TOML value text.
    pub settings: Vec<(String, String)>,
    /// Secrets: name and where from.
    pub secrets: Vec<(String, SecretRef)>,
    /// `[limits]` keys: key and TOML value text.
    pub limits: Vec<(String, String)>,
}

impl SourceToml {
    /// A source `name` running `collector`, with no hosts, settings, secrets or limits yet.
    pub fn new(name: &str, collector: impl AsRef<Path>) -> SourceToml {
        SourceToml {
            name: name.to_owned(),
            collector: collector.as_ref().display().to_string(),
            schedule: "0 * * * *".to_owned(),
            prefix: None,
            allowed_hosts: Vec::new(),
            allow_http: true,
            settings: Vec::new(),
            secrets: Vec::new(),
            limits: Vec::new(),
        }
    }

    /// Renames the source.
    pub fn name(mut self, name: &str) -> SourceToml {
        self.name = name.to_owned();
        self
    }

    /// Sets the schedule.
    pub fn schedule(mut self, cron: &str) -> SourceToml {
        self.schedule = cron.to_owned();
        self
    }

    /// Sets the object name prefix.
    pub fn prefix(mut self, prefix: &str) -> SourceToml {
        self.prefix = Some(prefix.to_owned());
        self
    }

    /// Allows `authority` (`host:port`, `*.domain`).
    pub fn host(mut self, authority: &str) -> SourceToml {
        self.allowed_hosts.push(authority.to_owned());
        self
    }

    /// Sets string setting `key`.
    pub fn set(self, key: &str, value: &str) -> SourceToml {
        self.set_raw(key, &string(value))
    }

    /// Sets setting `key` to a TOML value given as text (`100`, `["a", "b"]`, `true`).
    pub fn set_raw(mut self, key: &str, toml: &str) -> SourceToml {
        upsert(&mut self.settings, key, toml);
        self
    }

    /// Removes setting `key`.
    pub fn unset(mut self, key: &str) -> SourceToml {
        self.settings.retain(|(k, _)| k != key);
        self
    }

    /// Takes secret `name` from `from`, replacing an earlier source of it.
    pub fn secret(mut self, name: &str, from: SecretRef) -> SourceToml {
        self.secrets.retain(|(k, _)| k != name);
        self.secrets.push((name.to_owned(), from));
        self
    }

    /// Takes every secret from the environment instead: secret `s` from `{prefix}{S}`
    /// (upper case). Returns the variable of each secret.
    pub fn secrets_from_env(&mut self, prefix: &str) -> Vec<(String, String)> {
        let mut vars = Vec::new();
        for (name, from) in &mut self.secrets {
            let var = format!("{prefix}{}", name.to_ascii_uppercase());
            *from = SecretRef::Env(var.clone());
            vars.push((name.clone(), var));
        }
        vars
    }

    /// Sets limit `key` to a TOML value given as text (`"2s"`, `100`).
    pub fn limit(mut self, key: &str, toml: &str) -> SourceToml {
        upsert(&mut self.limits, key, toml);
        self
    }

    /// The TOML text of the table, ending with a newline.
    pub fn render(&self) -> String {
        let mut out = format!("[sources.{}]\n", self.name);
        out.push_str(&format!("collector = {}\n", string(&self.collector)));
        out.push_str(&format!("schedule = {}\n", string(&self.schedule)));
        if let Some(prefix) = &self.prefix {
            out.push_str(&format!("prefix = {}\n", string(prefix)));
        }
        let hosts: Vec<String> = self.allowed_hosts.iter().map(|h| string(h)).collect();
        out.push_str(&format!("allowed_hosts = [{}]\n", hosts.join(", ")));
        if self.allow_http {
            out.push_str("allow_http = true\n");
        }
        if !self.settings.is_empty() {
            out.push_str(&format!("settings = {}\n", inline_table(&self.settings)));
        }
        if !self.secrets.is_empty() {
            let secrets: Vec<(String, String)> = self
                .secrets
                .iter()
                .map(|(name, from)| {
                    let value = match from {
                        SecretRef::File(path) => format!("{{ file = {} }}", string(path)),
                        SecretRef::Env(var) => format!("{{ env = {} }}", string(var)),
                    };
                    (name.clone(), value)
                })
                .collect();
            out.push_str(&format!("secrets = {}\n", inline_table(&secrets)));
        }
        if !self.limits.is_empty() {
            out.push_str(&format!("limits = {}\n", inline_table(&self.limits)));
        }
        out
    }
}

/// A TOML basic string holding `s`.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML array of strings.
pub fn string_array<S: AsRef<str>>(items: &[S]) -> String {
    let items: Vec<String> = items.iter().map(|s| string(s.as_ref())).collect();
    format!("[{}]", items.join(", "))
}

fn inline_table(pairs: &[(String, String)]) -> String {
    let pairs: Vec<String> = pairs.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    format!("{{ {} }}", pairs.join(", "))
}

fn upsert(pairs: &mut Vec<(String, String)>, key: &str, value: &str) {
    match pairs.iter_mut().find(|(k, _)| k == key) {
        Some(pair) => pair.1 = value.to_owned(),
        None => pairs.push((key.to_owned(), value.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_source_renders_as_siphon_reads_it() {
        let mut source = SourceToml::new("ns", "/g/netskope_alerts.wasm")
            .schedule("*/5 * * * *")
            .prefix("netskope/alerts")
            .host("127.0.0.1:8089")
            .set("base_url", "http://127.0.0.1:8089")
            .set_raw("alert_types", &string_array(&["dlp", "malware"]))
            .set("index", "a\"b")
            .set("index", "e2e")
            .secret("api_token", SecretRef::File("token.txt".into()))
            .limit("run_timeout", "\"2s\"");
        assert_eq!(
            source.render(),
            "[sources.ns]\ncollector = \"/g/netskope_alerts.wasm\"\nschedule = \"*/5 * * * *\"\n\
             prefix = \"netskope/alerts\"\nallowed_hosts = [\"127.0.0.1:8089\"]\nallow_http = true\n\
             settings = { base_url = \"http://127.0.0.1:8089\", alert_types = [\"dlp\", \"malware\"], index = \"e2e\" }\n\
             secrets = { api_token = { file = \"token.txt\" } }\nlimits = { run_timeout = \"2s\" }\n"
        );
        assert_eq!(source.secrets_from_env("E2E_"), [("api_token".to_owned(), "E2E_API_TOKEN".to_owned())]);
        assert!(source.render().contains("secrets = { api_token = { env = \"E2E_API_TOKEN\" } }"));
        let bare = SourceToml::new("f", "f.wasm").unset("x").render();
        assert_eq!(
            bare,
            "[sources.f]\ncollector = \"f.wasm\"\nschedule = \"0 * * * *\"\nallowed_hosts = []\nallow_http = true\n"
        );
        assert_eq!(string("a\\b\n"), "\"a\\\\b\\u000A\"");
    }
}
