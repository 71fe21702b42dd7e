//! The component side: the generated bindings, the adapter from
//! [`Collector`] to the world's exports, and thin wrappers over the imports.
//!
//! Nothing outside `sys` touches the bindings, so the public API stays plain
//! Rust and the generated names can change without breaking vendor crates.

use std::marker::PhantomData;
use std::sync::Once;
use std::time::Duration;

use crate::log::Level;
use crate::{Collector, Error, Info, SettingSpec, Summary};

mod http;

pub(crate) use self::http::send as http_send;

/// The `wit-bindgen` output for `siphon:collector/collector`.
///
/// Public (and hidden) only because the export macro expands in the vendor
/// crate and must name it; vendor code never uses it directly.
#[doc(hidden)]
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "siphon:collector/collector",
        // The world imports wasi:http, whose types use wasi:io; generate those
        // too rather than depend on the `wasi` crate.
        generate_all,
        // `export_collector!` (in the vendor crate) expands this macro, so it
        // must be exported and must find the types and the runtime through
        // this crate.
        pub_export_macro: true,
        export_macro_name: "__siphon_export_world",
        default_bindings_module: "::siphon_sdk::__private::bindings",
        runtime_path: "::siphon_sdk::__private::wit_bindgen::rt",
    });
}

use bindings::siphon::collector::{checkpoint, config, json, log, sink, types};
use bindings::wasi::clocks::{monotonic_clock, wall_clock};
use bindings::wasi::random::random;

/// Implements the generated `Guest` trait for any [`Collector`].
///
/// `export_collector!(T)` exports `Adapter<T>`; the vendor type itself never
/// sees a generated type.
#[doc(hidden)]
pub struct Adapter<T>(PhantomData<T>);

impl<T: Collector> bindings::Guest for Adapter<T> {
    fn info() -> types::CollectorInfo {
        let Info { name, version, vendor, settings } = T::info();
        types::CollectorInfo { name, version, vendor, settings: settings.into_iter().map(setting_spec).collect() }
    }

    fn validate() -> Vec<String> {
        install_panic_hook();
        T::validate()
    }

    fn collect() -> Result<types::RunSummary, types::CollectError> {
        install_panic_hook();
        match T::collect() {
            Ok(Summary { pages, duplicates, caught_up, note }) => {
                Ok(types::RunSummary { pages, duplicates, caught_up, note })
            }
            Err(e) => Err(collect_error(e)),
        }
    }
}

fn setting_spec(s: SettingSpec) -> types::SettingSpec {
    let SettingSpec { name, description, required, secret, default_value } = s;
    types::SettingSpec { name, description, required, secret, default_value }
}

fn collect_error(e: Error) -> types::CollectError {
    use types::CollectError as E;
    match e {
        Error::Config(m) => E::Config(m),
        Error::Auth(m) => E::Auth(m),
        Error::NotFound(m) => E::NotFound(m),
        Error::RateLimited(m) => E::RateLimited(m),
        Error::Vendor(m) => E::Vendor(m),
        Error::Transport(m) => E::Transport(m),
        Error::Host(m) => E::Host(m),
    }
}

/// Sends every panic's message and location to the host before the trap.
///
/// With `panic = "abort"` a panic ends in an `unreachable` trap that carries
/// no text; the hook is the only chance to say why. It replaces std's default
/// hook, which would write to a stderr the host does not read (and which does
/// not exist on the `wasm32-unknown-unknown` route).
fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            // One line, message first: it is what operators and tests look for.
            let message = info.payload_as_str().unwrap_or("panic with a non-string payload");
            let text = match info.location() {
                Some(at) => format!("{message} (at {}:{}:{})", at.file(), at.line(), at.column()),
                None => message.to_string(),
            };
            log::panicked(&text);
        }));
    });
}

pub(crate) fn source_name() -> String {
    config::source_name()
}

pub(crate) fn setting(name: &str) -> Option<String> {
    config::setting(name)
}

pub(crate) fn secret(name: &str) -> Option<String> {
    config::secret(name)
}

pub(crate) fn checkpoint_load() -> Option<String> {
    checkpoint::load()
}

pub(crate) fn checkpoint_commit(cursor: &str) -> Result<Vec<String>, Error> {
    use checkpoint::CheckpointError as E;
    checkpoint::commit(cursor).map_err(|e| match e {
        E::Conflict(m) => Error::Host(format!("checkpoint conflict, another writer changed this source's state: {m}")),
        E::Storage(m) => Error::Host(format!("checkpoint storage failed: {m}")),
        E::Invalid(m) => Error::Host(format!("checkpoint refused as invalid: {m}")),
    })
}

pub(crate) fn sink_emit(records: Vec<String>) -> Result<(), Error> {
    use sink::SinkError as E;
    sink::emit(&records).map_err(|e| match e {
        E::InvalidRecord((index, m)) => Error::Host(format!("the host refused record {index} of the batch: {m}")),
        E::BufferFull(m) => Error::Host(format!("the host's record buffer is full ({m}); commit more often")),
    })
}

/// The host's native page scan (`siphon:collector/json`), as `siphon_scan`
/// types; `None` when the page is unusual.
pub(crate) fn scan_page(body: &[u8], records_key: &str, fields: &[&str]) -> Option<siphon_scan::PageScan> {
    use siphon_scan::{Element, Kind, PageScan};
    let fields: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
    let scan = json::scan_page(body, records_key, &fields)?;
    let range = |s: json::Span| s.start as usize..s.end as usize;
    Some(PageScan {
        object: scan.object.into_iter().map(|(k, v)| (range(k), range(v))).collect(),
        records: scan.records.map(|elements| {
            elements
                .into_iter()
                .map(|e| Element {
                    span: range(e.span),
                    kind: match e.kind {
                        json::ElementKind::Compact => Kind::Compact,
                        json::ElementKind::Spaced => Kind::Spaced,
                        json::ElementKind::Other => Kind::Other,
                    },
                })
                .collect()
        }),
        fields: scan.fields.into_iter().map(|f| f.map(range)).collect(),
    })
}

pub(crate) fn log(level: Level, message: &str) {
    let level = match level {
        Level::Trace => log::Level::Trace,
        Level::Debug => log::Level::Debug,
        Level::Info => log::Level::Info,
        Level::Warn => log::Level::Warn,
        Level::Error => log::Level::Error,
    };
    log::log(level, message);
}

pub(crate) fn wall_clock() -> Duration {
    let now = wall_clock::now();
    Duration::new(now.seconds, now.nanoseconds)
}

pub(crate) fn sleep(duration: Duration) {
    let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    monotonic_clock::subscribe_duration(nanos).block();
}

/// `len` bytes from `wasi:random/random` (cryptographically secure).
pub(crate) fn random_bytes(len: usize) -> Vec<u8> {
    random::get_random_bytes(len as u64)
}
