//! siphon end to end: real compiled guests, the real host, mock vendors on
//! 127.0.0.1. One module per concern.
//!
//! Needs the guest components (`make guests`), for the CLI tests the
//! `siphon` binary (`cargo build -p siphon`), and for `gcs`, `faults_gcs`,
//! `conflict` and `crash` the GCS emulator (`make gcs-emulator`); `make test`
//! builds all three.

mod cli;
mod common;
mod conflict;
mod crash;
mod daemon;
mod faults;
mod faults_gcs;
mod gcs;
mod hostile;
mod ibm_verify;
mod maas360;
mod mimecast;
mod mulesoft;
mod netskope;
mod ops;
mod python;
mod rate;
mod reload;
mod vendor;
