//! siphon collector for Netskope REST API v2 alerts, read through the
//! dataexport iterator (`/api/v2/events/dataexport/alerts/{type}`).
//!
//! | Module | Owns |
//! |---|---|
//! | `settings` | setting declarations, defaults and validation |
//! | `cursor` | the versioned checkpoint and the choice of `operation` |
//! | `api` | requests, response classification, byte-exact page parsing |
//! | `run` | the per-type page loop: commit protocol, pacing, dedup, summary |
//!
//! This file is only the glue: [`Collector`] for the component and the
//! [`run::Env`] that connects a run to the siphon SDK.

pub mod api;
pub mod cursor;
pub mod run;
pub mod settings;

use siphon_sdk::http::Response;
use siphon_sdk::log::Level;
use siphon_sdk::{Collector, Error, Info, Record, Summary, checkpoint, config, export_collector, sink, time};

use crate::cursor::{Cursor, Op};
use crate::settings::Settings;

/// The Netskope alerts collector.
pub struct NetskopeAlerts;

impl Collector for NetskopeAlerts {
    fn info() -> Info {
        let info = Info::new(
            "netskope-alerts",
            env!("CARGO_PKG_VERSION"),
            "Netskope REST API v2 (dataexport iterator, alerts)",
        );
        settings::specs().into_iter().fold(info, Info::setting)
    }

    fn collect() -> Result<Summary, Error> {
        let settings = Settings::parse(&config::source_name(), config::setting)?;
        let token = config::required_secret(settings::API_TOKEN)?;
        let cursor = Cursor::load(checkpoint::load().as_deref(), &settings.index)?;
        let mut env = SdkEnv { settings: &settings, token };
        run::run(&mut env, &settings, cursor)
    }
}

export_collector!(NetskopeAlerts);

/// [`run::Env`] over the siphon host.
struct SdkEnv<'a> {
    settings: &'a Settings,
    token: String,
}

impl run::Env for SdkEnv<'_> {
    fn now_ms(&self) -> u64 {
        time::now_millis()
    }

    fn sleep_ms(&mut self, ms: u64) {
        time::sleep(std::time::Duration::from_millis(ms));
    }

    fn fetch(&mut self, alert_type: &str, op: Op) -> Result<Response, Error> {
        Ok(api::request(self.settings, &self.token, alert_type, op).send()?)
    }

    fn emit(&mut self, records: Vec<Record>) -> Result<(), Error> {
        sink::emit(records)
    }

    fn commit(&mut self, cursor: &str) -> Result<(), Error> {
        checkpoint::commit(cursor).map(drop)
    }

    fn log(&mut self, level: Level, message: &str) {
        siphon_sdk::log::log(level, message);
    }
}
