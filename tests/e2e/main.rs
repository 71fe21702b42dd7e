//! siphon end to end: real compiled guests, the real host, mock vendors on
//! 127.0.0.1. One module per concern.
//!
//! Needs the guest components (`make guests`) and, for the CLI tests, the
//! `siphon` binary (`cargo build -p siphon`); `make test` builds both.

mod cli;
mod common;
mod faults;
mod netskope;
