//! siphon collector for IBM MaaS360 (vendor-apis.md §1): devices, action history, admin changes,
//! admin logins and compliance events, each record tagged with `_maas360_record_type` as its
//! first key so that one SecOps feed tells them apart. This file owns the settings and the run;
//! `login` the Authentication 2.0 session, `feed` the five lists and their cursors.

mod feed;
mod login;

use std::time::Duration;

use siphon_sdk::auth::Session;
use siphon_sdk::config::{self, Declared, Secret, Setting, parse};
use siphon_sdk::driver::{Budget, Checkpoint, collect_streams};
use siphon_sdk::{Collector, Error, HostIo, Info, Io, Summary, export_collector};

pub use feed::{Cursor, Feed, KINDS, Kind, OVERLAP_MS};
pub use login::{Credentials, TOKEN_LIFETIME_MS};

/// Checkpoint schema version.
pub const CHECKPOINT_VERSION: u32 = 1;

const BASE_URL: Setting<String> =
    Setting::new("base_url", "Web-services host, e.g. https://services.m3.maas360.com", None, parse::base_url);
const BILLING_ID: Setting<String> =
    Setting::new("billing_id", "Billing ID: the Account ID under the portal's profile menu", None, parse::alphanumeric);
const APP_ID: Setting<String> =
    Setting::new("app_id", "App ID of the web-services access key (e.g. com.<billing id>.api)", None, parse::text);
const USER_NAME: Setting<String> =
    Setting::new("user_name", "Administrator whose role grants web-service access", None, parse::text);
const PLATFORM_ID: Setting<String> =
    Setting::new("platform_id", "Platform ID of the access key", Some("3"), parse::text);
const APP_VERSION: Setting<String> =
    Setting::new("app_version", "App version of the access key", Some("1.0"), parse::text);
const STREAMS: Setting<Vec<&'static str>> = Setting::new(
    "streams",
    "Lists to collect: devices, action_history, admin_changes, admin_logins, compliance_events",
    Some(r#"["devices", "action_history", "admin_changes", "admin_logins"]"#),
    |v| parse::subset(v, &KINDS.map(|k| k.name)),
);
const LOOKBACK_HOURS: Setting<u64> =
    Setting::new("lookback_hours", "Hours of history a stream's first run starts from", Some("24"), parse::u64);
const PAGE_SIZE: Setting<u64> =
    Setting::new("page_size", "Records per page: 25, 50, 100, 200 or 250", Some("250"), |v| {
        parse::u64_among(v, &[25, 50, 100, 200, 250])
    });
const MAX_PAGES: Setting<u64> =
    Setting::new("max_pages_per_run", "Most pages fetched per stream in one run", Some("200"), parse::positive);
const APP_ACCESS_KEY: Secret = Secret::required("app_access_key", "App access key of the web-services access key");
const PASSWORD: Secret = Secret::required("password", "Password of `user_name`");

/// Every setting and secret, in the order `siphon inspect` lists them.
#[rustfmt::skip]
const DECLARED: [&dyn Declared; 12] = [
    &BASE_URL, &BILLING_ID, &APP_ID, &USER_NAME, &PLATFORM_ID, &APP_VERSION,
    &STREAMS, &LOOKBACK_HOURS, &PAGE_SIZE, &MAX_PAGES, &APP_ACCESS_KEY, &PASSWORD,
];

/// The MaaS360 collector.
pub struct Maas360;

impl Collector for Maas360 {
    fn info() -> Info {
        let info = Info::new("maas360", env!("CARGO_PKG_VERSION"), "IBM MaaS360 web services");
        DECLARED.iter().fold(info, |info, d| info.setting(d.spec()))
    }

    fn collect() -> Result<Summary, Error> {
        run(&mut HostIo)
    }

    fn validate() -> Vec<String> {
        config::problems(&DECLARED, &HostIo)
    }
}

export_collector!(Maas360);

/// One run over `io`: log in once, then every configured list in order.
pub fn run(io: &mut dyn Io) -> Result<Summary, Error> {
    let (base_url, billing_id, streams) = (BASE_URL.get(io)?, BILLING_ID.get(io)?, STREAMS.get(io)?);
    let page_size = u32::try_from(PAGE_SIZE.get(io)?).unwrap_or(250);
    let lookback_ms = LOOKBACK_HOURS.get(io)?.saturating_mul(3_600_000);
    let feed = |kind| Feed { kind, base_url: base_url.clone(), billing_id: billing_id.clone(), page_size, lookback_ms };
    let feeds: Vec<Feed> = KINDS.into_iter().filter(|k| streams.contains(&k.name)).map(feed).collect();
    let app = [("appID", APP_ID.get(io)?), ("appVersion", APP_VERSION.get(io)?), ("platformID", PLATFORM_ID.get(io)?)];
    let (user_name, password, app_access_key) = (USER_NAME.get(io)?, PASSWORD.get(io)?, APP_ACCESS_KEY.get(io)?);
    let (url, id) = (base_url.clone(), billing_id.clone());
    let login = Credentials { base_url: url, billing_id: id, user_name, app, password, app_access_key };
    let budget = Budget { max_pages: u32::try_from(MAX_PAGES.get(io)?).unwrap_or(u32::MAX), ..Budget::default() };
    let mut checkpoint = Checkpoint::parse(io.checkpoint().as_deref(), CHECKPOINT_VERSION, |_, _| None)?;
    if checkpoint.scope.as_deref() != Some(&billing_id) {
        // Cursors of another account (the billing id changed) mean nothing here: start over.
        if let Some(old) = checkpoint.scope.replace(billing_id) {
            io.log(siphon_sdk::log::Level::Warn, &format!("Dropped the checkpoint of billing id {old}"));
        }
        checkpoint.streams.clear();
    }
    // Renew 5 minutes early: IBM documents 60 minutes and suggests ~55.
    collect_streams(io, &mut Session::new(login).renew_ahead(Duration::from_secs(300)), checkpoint, budget, &feeds)
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod run_tests;
