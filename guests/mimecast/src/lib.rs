//! siphon collector for Mimecast (vendor-apis.md §5): settings and the run here; `envelope`: failures, rate limits;
//! `v2`: API 2.0 SIEM batch files; `v1`: API 1.0 signing and SIEM log files; `audit`: audit events on either API.

mod audit;
mod envelope;
mod v1;
mod v2;

use std::time::Duration;

use siphon_sdk::auth::{Auth, ClientCredentials, Session};
use siphon_sdk::config::{self, Declared, Secret, Setting, parse};
use siphon_sdk::data::crypto::base64_decode;
use siphon_sdk::driver::{Budget, Checkpoint, Driver};
use siphon_sdk::{Collector, Error, HostIo, Info, Io, SettingSpec, Summary, export_collector};

/// The Cloud Gateway SIEM batch types (vendor-apis.md §5.2.3), comma-separated.
pub const SIEM_TYPES: &str = "receipt,process,delivery,av,spam,internal email protect,impersonation protect,\
                              url protect,attachment protect,journal";
/// The API 2.0 host every tenant can use.
pub const V2_HOST: &str = "https://api.services.mimecast.com";

const API: Setting<&str> = Setting::new("api", "\"2.0\" (OAuth client) or \"1.0\" (signed calls)", Some("2.0"), |v| {
    parse::one_of(v, &["2.0", "1.0"])
});
const BASE_URL: Setting<String> =
    Setting::new("base_url", "API host; API 1.0: the regional host (required)", Some(V2_HOST), parse::base_url);
const STREAMS: Setting<Vec<&str>> =
    Setting::new("streams", "[\"siem\"] or [\"audit\"]: one source each", Some("siem"), |v| {
        parse::subset(v, &["siem", "audit"])
    });
const TYPES: Setting<Vec<&str>> = Setting::new("siem_types", "API 2.0: SIEM batch types", Some(SIEM_TYPES), |v| {
    parse::subset(v, &SIEM_TYPES.split(',').collect::<Vec<_>>())
});
const LOOKBACK_HOURS: Setting<u64> =
    Setting::new("lookback_hours", "First run: hours of history", Some("24"), |v| parse::u64_in(v, 1, 1_440));
const MAX_PAGES: Setting<u64> =
    Setting::new("max_pages_per_run", "Most pages per stream in one run", Some("100"), parse::positive);
/// Read only with API 1.0, so declared without a default and checked by [`credentials`].
const APP_ID: &str = "app_id";
const CLIENT_ID: Secret = Secret::optional("client_id", "API 2.0 client id (required there)");
const CLIENT_SECRET: Secret = Secret::optional("client_secret", "API 2.0 client secret (required there)");
const APP_KEY: Secret = Secret::optional("app_key", "API 1.0 application key (required there)");
const ACCESS_KEY: Secret = Secret::optional("access_key", "API 1.0 access key (required there)");
const SECRET_KEY: Secret = Secret::optional("secret_key", "API 1.0 secret key, base64 (required there)");
const SETTINGS: [&dyn Declared; 6] = [&API, &BASE_URL, &STREAMS, &TYPES, &LOOKBACK_HOURS, &MAX_PAGES];
const SECRETS: [&dyn Declared; 5] = [&CLIENT_ID, &CLIENT_SECRET, &APP_KEY, &ACCESS_KEY, &SECRET_KEY];
const TOKEN_LIFE: Duration = Duration::from_secs(1_799); // about 30 min; used without `expires_in`

/// The Mimecast collector.
pub struct Mimecast;

impl Collector for Mimecast {
    fn info() -> Info {
        let info = Info::new("mimecast", env!("CARGO_PKG_VERSION"), "Mimecast API 2.0 / 1.0 (SIEM logs, audit events)")
            .setting(SettingSpec::optional_without_default(APP_ID, "API 1.0 application id (required there)"));
        SETTINGS.iter().chain(&SECRETS).fold(info, |info, d| info.setting(d.spec()))
    }

    fn validate() -> Vec<String> {
        problems(&HostIo)
    }

    fn collect() -> Result<Summary, Error> {
        run(&mut HostIo)
    }
}

export_collector!(Mimecast);

/// Every problem with the source's configuration, then the first thing the chosen `api` lacks.
pub fn problems(io: &dyn Io) -> Vec<String> {
    let found = [config::problems(&SETTINGS, io), config::problems(&SECRETS, io)].concat();
    let api = if found.is_empty() { credentials(io).err() } else { None };
    found.into_iter().chain(api.map(|e| e.message().to_string())).collect()
}

/// One run over `io`: every configured stream in order.
pub fn run(io: &mut dyn Io) -> Result<Summary, Error> {
    let (streams, types) = (STREAMS.get(io)?, TYPES.get(io)?);
    let (lookback_ms, run_started_ms) = (LOOKBACK_HOURS.get(io)?.saturating_mul(3_600_000), io.now_ms());
    let budget = Budget { max_pages: u32::try_from(MAX_PAGES.get(io)?).unwrap_or(u32::MAX), ..Budget::default() };
    let (v2, base, mut auth) = credentials(io)?;
    let checkpoint = Checkpoint::parse(io.checkpoint().as_deref(), 1, |_, _| None)?; // schema version 1
    let mut driver = Driver::new(io, auth.as_mut(), checkpoint, budget);
    let siem = streams.contains(&"siem");
    for kind in types.into_iter().filter(|_| siem && v2) {
        driver.run(&v2::Batch { base: base.clone(), kind, lookback_ms })?;
    }
    if siem && !v2 {
        driver.run(&v1::SiemLogs { base: base.clone() })?;
    }
    if streams.contains(&"audit") {
        driver.run(&audit::Audit { base, lookback_ms, run_started_ms })?;
    }
    driver.finish()
}

/// The chosen API (true: 2.0), its host and its credentials, or what is missing for it.
fn credentials(io: &dyn Io) -> Result<(bool, String, Box<dyn Auth>), Error> {
    let (api, base) = (API.get(io)?, BASE_URL.get(io)?);
    let need = |s: &Secret| s.get(io).map_err(|e| Error::Config(format!("{} with api = \"{api}\"", e.message())));
    if api == "2.0" {
        let login =
            ClientCredentials::new(format!("{base}/oauth/token"), need(&CLIENT_ID)?, need(&CLIENT_SECRET)?, TOKEN_LIFE);
        return Ok((true, base, Box::new(Session::new(login).renew_ahead(Duration::from_secs(300)))));
    }
    if io.setting(BASE_URL.name).is_none() || base.contains(".services.mimecast.com") {
        return Err(Error::Config("setting `base_url` is required with api = \"1.0\": the regional host".into()));
    }
    let app_id = io.setting(APP_ID).filter(|v| !v.trim().is_empty());
    let app_id = app_id.ok_or_else(|| Error::Config(format!("setting `{APP_ID}` is required with api = \"1.0\"")))?;
    let (app_key, access_key) = (need(&APP_KEY)?, need(&ACCESS_KEY)?);
    let secret = base64_decode(&need(&SECRET_KEY)?)
        .map_err(|e| Error::Config(format!("secret `secret_key` is {e}; paste it as the console shows it")))?;
    Ok((false, base, Box::new(v1::Signer { app_id: app_id.trim().into(), app_key, access_key, secret })))
}

#[cfg(test)]
mod run_tests;
#[cfg(test)]
mod tests;
