//! The one `bindgen!` of the host: Rust types and traits for the
//! `siphon:collector/collector` world in `wit/`. The rest of the host uses
//! these through `imports` and `runner`, never the macro output directly.
//! The WIT documents them; the generated Rust carries no docs of its own.
#![allow(missing_docs, reason = "bindgen! output; the WIT in wit/ is the documentation")]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "siphon:collector/collector",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        "wasi:random": wasmtime_wasi::p2::bindings::random,
    },
    require_store_data_send: true,
});

pub use self::siphon::collector::{checkpoint, config, json, log, sink, types};
