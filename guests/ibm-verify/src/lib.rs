//! siphon collector for IBM Security Verify events (`GET /v1.0/events`).
//!
//! `settings` declares and validates the source's settings; `events` owns the
//! request, the response envelope, the `(indexed_at, id)` cursor and what each
//! refusal means. This file wires them to the kit: a client-credentials
//! session on the tenant's token endpoint, the first-run window, the driver.

pub mod events;
pub mod settings;

use std::time::Duration;

use siphon_sdk::auth::{ClientCredentials, Session};
use siphon_sdk::data::time;
use siphon_sdk::driver::{Budget, Checkpoint, collect_streams};
use siphon_sdk::io::{HostIo, Io};
use siphon_sdk::log::Level;
use siphon_sdk::{Collector, Error, Info, Summary, config, export_collector};

use crate::events::{Events, STREAM};
use crate::settings::Config;

/// The checkpoint schema: `{"version":1,"streams":{"events":{"cursor":{"indexed_at":…,"id":…}}}}`.
pub const CHECKPOINT_VERSION: u32 = 1;

/// Verify tokens live about 2 h (`expires_in` 7199); used only when the
/// answer leaves `expires_in` out.
const TOKEN_LIFETIME: Duration = Duration::from_secs(7_199);

/// The IBM Security Verify events collector.
pub struct IbmVerify;

impl Collector for IbmVerify {
    fn info() -> Info {
        let info = Info::new("ibm-verify-events", env!("CARGO_PKG_VERSION"), "IBM Security Verify (Events API v1.0)");
        settings::DECLARED.iter().fold(info, |info, d| info.setting(d.spec()))
    }

    fn collect() -> Result<Summary, Error> {
        run(&mut HostIo)
    }

    fn validate() -> Vec<String> {
        config::problems(&settings::DECLARED, &HostIo)
    }
}

export_collector!(IbmVerify);

/// One collection run.
pub fn run(io: &mut dyn Io) -> Result<Summary, Error> {
    let cfg = Config::read(io)?;
    let mut checkpoint = Checkpoint::parse(io.checkpoint().as_deref(), CHECKPOINT_VERSION, |_, _| None)?;
    if checkpoint.streams.get(STREAM).is_none_or(|s| s.cursor.is_null()) {
        // Pinned before the driver starts, so that whatever it commits first
        // (a page, or a rate-limit pause) keeps this window.
        let from = io.now_ms().saturating_sub(cfg.lookback_ms);
        io.log(Level::Info, &format!("First run: collecting events indexed since {}", time::format_rfc3339(from)));
        checkpoint.streams.entry(STREAM.into()).or_default().cursor = serde_json::json!({ "indexed_at": from });
    }
    let token_url = format!("{}/v1.0/endpoint/default/token", cfg.base_url);
    let login = ClientCredentials::new(token_url, cfg.client_id.clone(), cfg.client_secret.clone(), TOKEN_LIFETIME);
    let budget = Budget { max_pages: cfg.max_pages, ..Budget::default() };
    collect_streams(io, &mut Session::new(login), checkpoint, budget, &[Events::new(&cfg)])
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
