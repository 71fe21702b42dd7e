//! Write siphon collectors in plain Rust.
//!
//! A collector is one vendor's auth, paging and checkpoint logic compiled to a
//! WebAssembly component for the `siphon:collector/collector` world
//! (`wit/collector.wit`). This crate owns everything between that world and a
//! vendor crate: the raw `wit-bindgen` output stays in a hidden module, and a
//! vendor crate sees only the curated API below.
//!
//! ```ignore
//! use siphon_sdk::{export_collector, http, Collector, Error, Info, Summary};
//!
//! struct Acme;
//!
//! impl Collector for Acme {
//!     fn info() -> Info {
//!         Info::new("acme", env!("CARGO_PKG_VERSION"), "Acme API v1")
//!     }
//!
//!     fn collect() -> Result<Summary, Error> {
//!         let page = http::Request::get("https://api.acme.example/logs").send()?;
//!         // ... emit records, commit the cursor ...
//!         Ok(Summary::default())
//!     }
//! }
//!
//! export_collector!(Acme);
//! ```
//!
//! | Module | Owns |
//! |---|---|
//! | [`http`] | a small blocking client over `wasi:http/outgoing-handler` |
//! | [`config`] | the source name, settings (with typed parsing) and secrets |
//! | [`checkpoint`] | loading and committing the cursor, optionally as JSON |
//! | [`sink`] | byte-exact [`Record`]s and `emit` |
//! | [`log`] | the host log (also the [`info!`], [`warn!`], … macros) |
//! | [`time`] | wall-clock time and sleeping over `wasi:clocks` |
//!
//! The I/O functions reach the host only inside a component. In a native build
//! (`cargo test` of a vendor crate) they are stand-ins that report "no host",
//! so vendor logic that does not do I/O is unit-tested natively; see
//! `src/sys/native.rs`.

// Lets the generated export macro name this crate as `::siphon_sdk` from both
// the SDK itself and the vendor crate that expands it.
extern crate self as siphon_sdk;

pub mod auth;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod driver;
mod error;
pub mod http;
pub mod io;
pub mod log;
pub mod sink;
mod sys;
pub mod testing;
pub mod time;

pub use error::Error;
pub use io::{HostIo, Io};
pub use sink::Record;

/// A collector: what the `info` and `collect` exports of the component do.
///
/// Implement it on a unit struct and register it with [`export_collector!`].
/// Each run calls `collect` once in a fresh component instance, so a collector
/// keeps its state in the [`checkpoint`], never in statics.
pub trait Collector {
    /// Describe the collector and every setting and secret it reads.
    ///
    /// Called by the host without a run; must not perform I/O.
    fn info() -> Info;

    /// Run one collection for the configured source.
    ///
    /// Records emitted after the last successful [`checkpoint::commit`] are
    /// discarded by the host when this returns an error.
    fn collect() -> Result<Summary, Error>;

    /// Every problem with the configured source's settings and secrets, one
    /// line each naming its key (`siphon check` reports them); empty when the
    /// configuration is usable. May read the configuration, nothing else.
    /// [`config::problems`] over the declared settings is the usual body; the
    /// default accepts everything.
    fn validate() -> Vec<String> {
        Vec::new()
    }
}

/// What a collector is (the WIT `collector-info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// Stable machine name, e.g. `netskope-alerts`.
    pub name: String,
    /// Semantic version of the collector, usually `env!("CARGO_PKG_VERSION")`.
    pub version: String,
    /// Vendor and product the collector reads from.
    pub vendor: String,
    /// Every setting and secret the collector reads; the host rejects
    /// configured keys that are not declared here.
    pub settings: Vec<SettingSpec>,
}

impl Info {
    /// An `Info` without settings; add them with [`Info::setting`].
    pub fn new(name: impl Into<String>, version: impl Into<String>, vendor: impl Into<String>) -> Self {
        Self { name: name.into(), version: version.into(), vendor: vendor.into(), settings: Vec::new() }
    }

    /// Adds one setting or secret declaration.
    #[must_use]
    pub fn setting(mut self, spec: SettingSpec) -> Self {
        self.settings.push(spec);
        self
    }
}

/// One setting or secret a collector understands (the WIT `setting-spec`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingSpec {
    /// Key as written in the source's `settings` or `secrets` table.
    pub name: String,
    /// One line for operators: what the value means and its format.
    pub description: String,
    /// Whether the source must configure it.
    pub required: bool,
    /// True for credentials, read with [`config::secret`].
    pub secret: bool,
    /// Default used when the key is not configured, as shown to operators.
    pub default_value: Option<String>,
}

impl SettingSpec {
    /// A setting the source must configure.
    pub fn required(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self { name: name.into(), description: description.into(), required: true, secret: false, default_value: None }
    }

    /// An optional setting and the default the collector uses without it.
    pub fn optional(name: impl Into<String>, description: impl Into<String>, default: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            required: false,
            secret: false,
            default_value: Some(default.into()),
        }
    }

    /// An optional setting without a default (absence has its own meaning).
    pub fn optional_without_default(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self { name: name.into(), description: description.into(), required: false, secret: false, default_value: None }
    }

    /// A credential, read with [`config::secret`] and scrubbed by the host
    /// from logs, cursors and errors.
    pub fn secret(name: impl Into<String>, description: impl Into<String>, required: bool) -> Self {
        Self { name: name.into(), description: description.into(), required, secret: true, default_value: None }
    }
}

/// Outcome of a successful run (the WIT `run-summary`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Vendor pages carrying records fetched in this run.
    pub pages: u32,
    /// Records dropped as duplicates of records already emitted.
    pub duplicates: u64,
    /// True when the vendor reported that no more data is available now.
    pub caught_up: bool,
    /// Free text for the host's run summary log line.
    pub note: Option<String>,
}

/// Registers `T: Collector` as the component's `info` and `collect` exports.
///
/// Use it once, at the root of a `cdylib` vendor crate. In a native build it
/// only checks that `T` implements [`Collector`].
#[macro_export]
macro_rules! export_collector {
    ($collector:ty) => {
        #[cfg(target_family = "wasm")]
        const _: () = {
            // The generated export macro takes a bare identifier, not a
            // generic path, hence the alias.
            type __SiphonCollectorAdapter = $crate::__private::Adapter<$collector>;
            $crate::__private::bindings::__siphon_export_world!(
                __SiphonCollectorAdapter with_types_in $crate::__private::bindings
            );
        };
        #[cfg(not(target_family = "wasm"))]
        const _: () = {
            fn __assert_collector<T: $crate::Collector>() {}
            let _ = __assert_collector::<$collector>;
        };
    };
}

/// Implementation details of [`export_collector!`]; not part of the API.
#[doc(hidden)]
pub mod __private {
    #[cfg(target_family = "wasm")]
    pub use crate::sys::wasm::{Adapter, bindings};
    #[cfg(target_family = "wasm")]
    pub use wit_bindgen;
}
