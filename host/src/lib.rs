//! siphon: a daemon that runs one sandboxed WebAssembly collector per SaaS
//! vendor and lands their security logs as NDJSON objects.
//!
//! Layout: `bindings` (the WIT world), `imports/*` (one module per imported
//! WIT interface), `engine` (compile and instantiate), `runner` (one run),
//! `scheduler` (cron, concurrency, shutdown), `delivery` (the commit
//! protocol), `sink/*` and `state/*` (backends; `gcs` holds what the GCS
//! ones share), `egress` (outbound HTTP policy), `config`, `limits`,
//! `secrets`, `telemetry`, and `state_cli` (`siphon state show|reset`).
//! Operating the daemon: `daemon` (`siphon run`: signals, heartbeat, probes),
//! `reload` (SIGHUP), `status` (what the daemon knows), `http_server`
//! (`/healthz`, `/readyz`, `/status`, `/metrics`), `status_page` (`/`) and
//! `status_cli` (`siphon status`).

pub mod bindings;
pub mod config;
pub mod daemon;
pub mod delivery;
pub mod egress;
pub mod engine;
pub mod gcs;
pub mod http_server;
pub mod imports;
pub mod lease;
pub mod limits;
pub mod reload;
pub mod runner;
pub mod scheduler;
pub mod secrets;
pub mod services;
pub mod sink;
pub mod state;
pub mod state_cli;
pub mod status;
pub mod status_cli;
pub mod status_page;
pub mod telemetry;
