//! The seam between the portable API and the host.
//!
//! Inside a component (`target_family = "wasm"`) every function here calls a
//! WIT import through the generated bindings (`sys/wasm.rs`). A native build
//! has no host; `sys/native.rs` provides stand-ins so vendor crates compile
//! and unit-test natively.

#[cfg(not(target_family = "wasm"))]
mod native;
#[cfg(target_family = "wasm")]
pub(crate) mod wasm;

#[cfg(not(target_family = "wasm"))]
pub(crate) use native::*;
#[cfg(target_family = "wasm")]
pub(crate) use wasm::*;
