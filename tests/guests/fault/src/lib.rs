//! A collector that misbehaves on request, for the host's fault-handling tests.
//!
//! The `mode` setting picks one behaviour per run:
//!
//! | `mode` | Behaviour | Host should report |
//! |---|---|---|
//! | `spin` | burns CPU forever | the run's deadline (epoch interruption) |
//! | `alloc-bomb` | allocates and touches memory until allocation fails | the memory cap |
//! | `panic` | `panic!("fault guest panicked on purpose")` | a panic with that message |
//! | `forbidden-host` | GETs setting `url`, returns the failure as `transport` | the allow-list denial |
//! | `emit` | emits `count` (default 3) records `{"n":i,"source":…}`, commits `{"done":true}` | a normal run |
//! | `sleep` | sleeps `seconds` (default 1), then returns ok | a normal (slow) run |

use std::hint::black_box;
use std::time::Duration;

use siphon_sdk::{
    Collector, Error, Info, Record, SettingSpec, Summary, checkpoint, config, export_collector, http, sink, time,
};

const MODES: &str = "spin, alloc-bomb, panic, forbidden-host, emit, sleep";

/// The fault-injection collector.
struct Fault;

impl Collector for Fault {
    fn info() -> Info {
        Info::new("fault", env!("CARGO_PKG_VERSION"), "siphon test suite (fault injection)")
            .setting(SettingSpec::required(
                "mode",
                "What to do: spin, alloc-bomb, panic, forbidden-host, emit or sleep",
            ))
            .setting(SettingSpec::optional_without_default("url", "URL to GET in mode `forbidden-host`"))
            .setting(SettingSpec::optional("count", "Records to emit in mode `emit`", "3"))
            .setting(SettingSpec::optional("seconds", "Seconds to sleep in mode `sleep`", "1"))
    }

    fn collect() -> Result<Summary, Error> {
        let mode = config::required_setting("mode")?;
        match mode.trim() {
            "spin" => spin(),
            "alloc-bomb" => alloc_bomb(),
            "panic" => panic!("fault guest panicked on purpose"),
            "forbidden-host" => forbidden_host(),
            "emit" => emit(),
            "sleep" => sleep(),
            other => Err(config::invalid("mode", other, &format!("expected one of: {MODES}"))),
        }
    }
}

export_collector!(Fault);

/// Loops forever; `black_box` keeps the optimiser from proving the loop
/// side-effect free and deleting it (an infinite loop without side effects is
/// otherwise fair game).
fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

/// Allocates 1 MiB blocks filled with a non-zero byte (so the memory is really
/// written, not just reserved) and keeps them all, until the allocator cannot
/// grow the linear memory and the guest aborts.
fn alloc_bomb() -> ! {
    const BLOCK: usize = 1 << 20;
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(black_box(vec![0xA5; BLOCK]));
    }
}

fn forbidden_host() -> Result<Summary, Error> {
    let url = config::required_setting("url")?;
    match http::Request::get(url.as_str()).send() {
        Err(e) => Err(Error::Transport(e.to_string())),
        Ok(response) => Err(Error::Vendor(format!(
            "expected the host to refuse the request to {url}, but it answered HTTP {}",
            response.status
        ))),
    }
}

fn emit() -> Result<Summary, Error> {
    let count = config::setting_u64_or("count", 3)?;
    let source = config::source_name();
    let records = (0..count)
        .map(|n| Record::from_serialize(&serde_json::json!({ "n": n, "source": source })))
        .collect::<Result<Vec<_>, _>>()?;
    sink::emit(records)?;
    checkpoint::commit(r#"{"done":true}"#)?;
    Ok(Summary { pages: 1, duplicates: 0, caught_up: true, note: Some(format!("emitted {count} records")) })
}

fn sleep() -> Result<Summary, Error> {
    let seconds = config::setting_u64_or("seconds", 1)?;
    time::sleep(Duration::from_secs(seconds));
    Ok(Summary { pages: 0, duplicates: 0, caught_up: true, note: Some(format!("slept {seconds}s")) })
}
