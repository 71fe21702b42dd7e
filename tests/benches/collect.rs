//! `make bench` (`make bench-quick`: `-- --quick`): siphon against a native
//! Rust pipeline doing the same work, on the same pages of the same mock.
//!
//! Every measurement runs in a child process of this binary, so CPU time and
//! peak RSS are those of the thing measured: the mock Netskope tenant
//! (`mock`), the native baseline (`native`, see `collect/native.rs`), one
//! siphon collection (`siphon`: the real Netskope component under the real
//! host, local sink and state), caught-up runs (`idle`), daemon start with
//! five collectors (`start`) and the 1,000-source daemon (`daemon`).
//!
//! Throughput is alerts per CPU-second (user + system of the whole process);
//! the ratio is siphon's over the baseline's, medians of the repetitions.
//! The outputs of both are compared (NDJSON content, gzip decoded) and must
//! be identical. Speed is reported, never asserted; the last line is
//! machine-readable:
//! `bench: ratio_nogzip=… ratio_gzip=… rss_100k_mb=… rss_1m_mb=… sources_1000_rss_mb=… idle_run_ms=…`.

#[path = "collect/native.rs"]
mod native;
#[path = "collect/siphon.rs"]
mod siphon_runs;
#[path = "collect/stats.rs"]
mod stats;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use siphon_tests::config::{SecretRef, SourceToml};
use siphon_tests::mock::netskope::{MockConfig, MockNetskope};
use stats::{Daemon, child, median, num, spread};

const TOKEN: &str = "bench-token-0001";
const TYPES: [&str; 2] = ["dlp", "malware"];
const FULL_PAGE: usize = 10_000;

fn main() -> anyhow::Result<()> {
    let process_start = Instant::now();
    // siphon's processes allocate as the daemon does (see `siphon::limits`).
    let mode = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    if mode.is_some_and(|m| ["siphon", "idle", "start", "daemon"].contains(&m.as_str())) {
        siphon::limits::use_one_malloc_arena();
    }
    // `cargo bench` adds `--bench`; modes are the first plain argument.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick") || std::env::var_os("BENCH_QUICK").is_some();
    let plain: Vec<&str> = args.iter().map(String::as_str).filter(|a| !a.starts_with("--")).collect();
    let rt = |threads: usize| {
        if threads == 1 {
            tokio::runtime::Builder::new_current_thread().enable_all().build()
        } else {
            tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()
        }
    };
    match plain.as_slice() {
        ["mock", per_type] => rt(2)?.block_on(mock(per_type.parse()?)),
        ["native", base, index, max_pages, gzip, out] => {
            let cpu0 = stats::cpu_seconds();
            let t = Instant::now();
            let d = rt(1)?.block_on(native::collect(
                base,
                TOKEN,
                &TYPES,
                index,
                FULL_PAGE,
                max_pages.parse()?,
                *gzip == "gzip",
                Path::new(out),
            ))?;
            stats::report(&[
                ("records", d.records.to_string()),
                ("bytes", d.bytes.to_string()),
                ("run_s", format!("{:.3}", t.elapsed().as_secs_f64())),
                ("cpu_s", format!("{:.3}", stats::cpu_seconds() - cpu0)),
                ("hwm_mib", format!("{:.1}", stats::status_mib("VmHWM"))),
            ]);
            Ok(())
        }
        ["siphon", config] => rt(2)?.block_on(siphon_runs::collect(Path::new(config))),
        ["idle", config, n] => rt(2)?.block_on(siphon_runs::idle(Path::new(config), n.parse()?)),
        ["start", config] => rt(2)?.block_on(siphon_runs::start(Path::new(config), process_start)),
        ["daemon", config, cycles, period, jitter] => {
            rt(2)?.block_on(siphon_runs::daemon(Path::new(config), cycles.parse()?, period.parse()?, jitter.parse()?))
        }
        [] => bench(quick),
        other => anyhow::bail!("unknown bench mode {other:?}"),
    }
}

/// `mock <per_type>`: the mock tenant with `per_type` alerts of each type.
async fn mock(per_type: usize) -> anyhow::Result<()> {
    let cfg = MockConfig { token: TOKEN.into(), rate_limit: u32::MAX, ..MockConfig::default() };
    let mock = MockNetskope::start(cfg).await?;
    for t in TYPES {
        mock.add_alerts(t, per_type);
    }
    println!("READY {}", mock.base_url());
    tokio::task::spawn_blocking(stats::wait_for_stdin_eof).await?;
    mock.shutdown().await;
    Ok(())
}

/// One throughput case: alerts, gzip or not.
struct Case {
    alerts: usize,
    gzip: bool,
    reps: usize,
}

/// Medians of one case.
struct Measured {
    native_rate: Vec<f64>,
    siphon_rate: Vec<f64>,
    native_wall: Vec<f64>,
    siphon_wall: Vec<f64>,
    siphon_hwm: Vec<f64>,
    native_hwm: Vec<f64>,
}

fn bench(quick: bool) -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let dir = work.path();
    std::fs::write(dir.join("token.txt"), TOKEN)?;
    let wasm = siphon_harness::guest("netskope_alerts")?;
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/siphon-test-cache");

    let cases: Vec<Case> = if quick {
        vec![Case { alerts: 100_000, gzip: false, reps: 2 }, Case { alerts: 100_000, gzip: true, reps: 2 }]
    } else {
        vec![
            Case { alerts: 100_000, gzip: false, reps: 3 },
            Case { alerts: 100_000, gzip: true, reps: 3 },
            Case { alerts: 1_000_000, gzip: false, reps: 5 },
            Case { alerts: 1_000_000, gzip: true, reps: 5 },
        ]
    };
    let per_type = cases.iter().map(|c| c.alerts / TYPES.len()).max().unwrap_or(0);
    eprintln!("bench: starting the mock tenant with {per_type} alerts per type");
    let mock = Daemon::start(&["mock", &per_type.to_string()])?;
    let base = mock.ready.clone();
    let authority = base.trim_start_matches("http://").to_owned();

    let mut results: Vec<(&Case, Measured)> = Vec::new();
    let mut run_no = 0;
    for case in &cases {
        let max_pages = case.alerts / TYPES.len() / FULL_PAGE;
        // Past a full backlog the next request finds an empty page, as a daemon's would.
        let max_pages_setting = if case.alerts / TYPES.len() >= per_type { 1_000 } else { max_pages };
        let mut m = Measured {
            native_rate: vec![],
            siphon_rate: vec![],
            native_wall: vec![],
            siphon_wall: vec![],
            siphon_hwm: vec![],
            native_hwm: vec![],
        };
        // Untimed: the first run of a case would otherwise be the one to
        // take the memory the hypervisor took back (see `stats::warm_page_pool`).
        stats::warm_page_pool(dir, case.alerts as u64 * 1_100)?;
        for rep in 0..case.reps {
            run_no += 1;
            let out_native = dir.join(format!("native-{run_no}"));
            let native = child(&[
                "native",
                &base,
                &format!("native-{run_no}"),
                &max_pages_setting.to_string(),
                if case.gzip { "gzip" } else { "plain" },
                &out_native.display().to_string(),
            ])?;
            // Each output is checked and deleted right after its run, so
            // both runs write into memory freed just before they start.
            let native_content = if rep == 0 { Some(stats::content_hash(&out_native)?) } else { None };
            std::fs::remove_dir_all(&out_native)?;
            let run_dir = dir.join(format!("siphon-{run_no}"));
            let config = collect_config(
                &run_dir,
                &cache,
                &wasm,
                &base,
                &authority,
                &format!("siphon-{run_no}"),
                max_pages_setting,
                case.gzip,
            )?;
            let siphon = child(&["siphon", &config.display().to_string()])?;
            let alerts = num(&siphon, "records")?;
            anyhow::ensure!(
                alerts as usize == case.alerts && num(&native, "records")? as usize == case.alerts,
                "expected {} alerts, siphon delivered {alerts}, native {}",
                case.alerts,
                num(&native, "records")?
            );
            if let Some(a) = native_content {
                let b = stats::content_hash(&run_dir.join("out"))?;
                anyhow::ensure!(a == b, "siphon's output differs from the native baseline's ({a:?} vs {b:?})");
            }
            std::fs::remove_dir_all(&run_dir)?;
            let (nc, sc) = (num(&native, "cpu_s")?, num(&siphon, "cpu_s")?);
            m.native_rate.push(alerts / nc);
            m.siphon_rate.push(alerts / sc);
            m.native_wall.push(alerts / num(&native, "run_s")?);
            m.siphon_wall.push(alerts / num(&siphon, "run_s")?);
            m.siphon_hwm.push(num(&siphon, "hwm_mib")?);
            m.native_hwm.push(num(&native, "hwm_mib")?);
            eprintln!(
                "bench: {} alerts gzip={}: native {:.0}/cpu-s ({nc:.2} cpu-s, {:.0} MiB), siphon {:.0}/cpu-s ({sc:.2} cpu-s, {:.0} MiB)",
                case.alerts,
                case.gzip,
                alerts / nc,
                num(&native, "hwm_mib")?,
                alerts / sc,
                num(&siphon, "hwm_mib")?
            );
        }
        results.push((case, m));
    }
    drop(mock);

    // Caught-up runs, daemon start and the many-source daemon use a small
    // tenant, on a disk that is done with the gigabytes written above.
    stats::settle();
    let small = Daemon::start(&["mock", "20"])?;
    let small_authority = small.ready.trim_start_matches("http://").to_owned();
    let idle_dir = dir.join("idle");
    let idle_config = collect_config(&idle_dir, &cache, &wasm, &small.ready, &small_authority, "idle", 1_000, false)?;
    let idle = child(&["idle", &idle_config.display().to_string(), "30"])?;

    let (cold, warm) = start_times(dir, &wasm, &small.ready, &small_authority)?;

    let n_sources = 1_000;
    // Runs wait for their requests' pacing, so a slot is held longer than a
    // run computes: 100 concurrent runs let 1,000 start within the jitter.
    let (cycles, period, jitter) = if quick { (1, 30, 10.0) } else { (2, 30, 10.0) };
    stats::settle();
    let daemon_config = daemon_config(dir, &cache, &wasm, &small.ready, &small_authority, n_sources, period, jitter)?;
    eprintln!("bench: {n_sources} sources on one daemon for {cycles} schedule ticks");
    let daemon = child(&[
        "daemon",
        &daemon_config.display().to_string(),
        &cycles.to_string(),
        &period.to_string(),
        &jitter.to_string(),
    ])?;
    drop(small);

    print_table(&results, &idle, &cold, &warm, &daemon, n_sources, quick)
}

#[allow(clippy::too_many_arguments)]
fn collect_config(
    run_dir: &Path,
    cache: &Path,
    wasm: &Path,
    base: &str,
    authority: &str,
    index: &str,
    max_pages: usize,
    gzip: bool,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(run_dir)?;
    std::fs::write(run_dir.join("token.txt"), TOKEN)?;
    let source = SourceToml::new("bench", wasm)
        .host(authority)
        .set("base_url", base)
        .set_raw("alert_types", r#"["dlp", "malware"]"#)
        .set("index", index)
        .set_raw("max_pages_per_run", &max_pages.to_string())
        .secret("api_token", SecretRef::File("token.txt".into()))
        .limit("requests_per_second", "1000")
        .render();
    let config = format!(
        "[engine]\ncache_dir = {cache:?}\n[sink]\nbackend = \"local\"\ngzip = {gzip}\n[sink.local]\ndir = \"out\"\n\
         [state]\nbackend = \"local\"\n[state.local]\ndir = \"state\"\n{source}",
        cache = cache.display().to_string(),
    );
    let path = run_dir.join("siphon.toml");
    std::fs::write(&path, config)?;
    Ok(path)
}

/// Daemon start with five distinct collectors (the Netskope component with a
/// different custom section each, so each compiles on its own): with an
/// empty compile cache, then with it warm. Returns both `start` results.
#[allow(clippy::type_complexity)]
fn start_times(
    dir: &Path,
    wasm: &Path,
    base: &str,
    authority: &str,
) -> anyhow::Result<(BTreeMap<String, String>, BTreeMap<String, String>)> {
    let start_dir = dir.join("start");
    std::fs::create_dir_all(&start_dir)?;
    std::fs::write(start_dir.join("token.txt"), TOKEN)?;
    let bytes = std::fs::read(wasm)?;
    let mut sources = String::new();
    for i in 0..5 {
        let mut variant = bytes.clone();
        // A component custom section (id 0): size, name length, name, payload.
        let name = format!("siphon-bench-{i}");
        variant.push(0);
        variant.push((1 + name.len()) as u8);
        variant.push(name.len() as u8);
        variant.extend_from_slice(name.as_bytes());
        let path = start_dir.join(format!("collector-{i}.wasm"));
        std::fs::write(&path, variant)?;
        sources.push_str(
            &SourceToml::new(&format!("s{i}"), &path)
                .host(authority)
                .set("base_url", base)
                .set("index", &format!("start-{i}"))
                .secret("api_token", SecretRef::File("token.txt".into()))
                .render(),
        );
    }
    let config = format!(
        "[engine]\ncache_dir = \"cache\"\n[sink]\nbackend = \"local\"\n[sink.local]\ndir = \"out\"\n\
         [state]\nbackend = \"local\"\n[state.local]\ndir = \"state\"\n{sources}"
    );
    let path = start_dir.join("siphon.toml");
    std::fs::write(&path, config)?;
    let path = path.display().to_string();
    let cold = child(&["start", &path])?;
    let warm = child(&["start", &path])?;
    Ok((cold, warm))
}

#[allow(clippy::too_many_arguments)]
fn daemon_config(
    dir: &Path,
    cache: &Path,
    wasm: &Path,
    base: &str,
    authority: &str,
    n: usize,
    period: u64,
    jitter: f64,
) -> anyhow::Result<PathBuf> {
    let daemon_dir = dir.join("daemon");
    std::fs::create_dir_all(&daemon_dir)?;
    std::fs::write(daemon_dir.join("token.txt"), TOKEN)?;
    let mut config = format!(
        "[engine]\ncache_dir = {cache:?}\nmax_concurrent_runs = 100\n[sink]\nbackend = \"local\"\n[sink.local]\n\
         dir = \"out\"\n[state]\nbackend = \"local\"\n[state.local]\ndir = \"state\"\n",
        cache = cache.display().to_string()
    );
    for i in 0..n {
        let mut table = SourceToml::new(&format!("src{i:04}"), wasm)
            .schedule(&format!("*/{period} * * * * *"))
            .host(authority)
            .set("base_url", base)
            .set("index", &format!("daemon-{i}"))
            .secret("api_token", SecretRef::File("token.txt".into()))
            .limit("requests_per_second", "20")
            .render();
        table.push_str(&format!("jitter = \"{}ms\"\n", (jitter * 1e3) as u64));
        config.push_str(&table);
    }
    let path = daemon_dir.join("siphon.toml");
    std::fs::write(&path, config)?;
    Ok(path)
}

fn print_table(
    results: &[(&Case, Measured)],
    idle: &BTreeMap<String, String>,
    cold: &BTreeMap<String, String>,
    warm: &BTreeMap<String, String>,
    daemon: &BTreeMap<String, String>,
    n_sources: usize,
    quick: bool,
) -> anyhow::Result<()> {
    println!();
    println!(
        "siphon vs native, Netskope alerts from a loopback mock in its own process, {FULL_PAGE}-alert pages, local sink{}",
        if quick { " (quick)" } else { "" }
    );
    println!(
        "| alerts | gzip | native alerts/cpu-s | siphon alerts/cpu-s | ratio (noise) | native alerts/s wall | siphon alerts/s wall | peak RSS native / siphon MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut ratio = BTreeMap::new();
    let mut rss = BTreeMap::new();
    for (case, m) in results {
        let ratios: Vec<f64> = m.siphon_rate.iter().zip(&m.native_rate).map(|(s, n)| s / n).collect();
        let r = median(&m.siphon_rate) / median(&m.native_rate);
        ratio.entry((case.alerts, case.gzip)).or_insert(r);
        rss.entry(case.alerts).or_insert_with(Vec::new).push(median(&m.siphon_hwm));
        println!(
            "| {} | {} | {:.0} | {:.0} | {r:.2} ({}) | {:.0} | {:.0} | {:.0} / {:.0} |",
            case.alerts,
            if case.gzip { "yes" } else { "no" },
            median(&m.native_rate),
            median(&m.siphon_rate),
            spread(&ratios, 2),
            median(&m.native_wall),
            median(&m.siphon_wall),
            median(&m.native_hwm),
            median(&m.siphon_hwm),
        );
    }
    println!();
    println!(
        "caught-up run (in-process, state writes included): median {} ms, p90 {} ms",
        idle.get("idle_ms").map_or("?", String::as_str),
        idle.get("idle_p90_ms").map_or("?", String::as_str)
    );
    println!(
        "daemon start with {} collectors: cold compile cache {} ms, warm {} ms (whole process {} ms)",
        warm.get("sources").map_or("?", String::as_str),
        cold.get("load_ms").map_or("?", String::as_str),
        warm.get("load_ms").map_or("?", String::as_str),
        warm.get("process_ms").map_or("?", String::as_str)
    );
    println!(
        "{n_sources} sources on one daemon (same .wasm, every {} s, jitter {} s): load {} s ({} MiB loaded), {} of {} runs \
         started, {} errors; peak RSS {} MiB (VmHWM {} MiB); start after its tick: median {} s, latest {} s, {} runs \
         later than jitter + 1 s",
        daemon.get("period_s").map_or("?", String::as_str),
        daemon.get("jitter_s").map_or("?", String::as_str),
        daemon.get("load_s").map_or("?", String::as_str),
        daemon.get("loaded_rss_mib").map_or("?", String::as_str),
        daemon.get("runs").map_or("?", String::as_str),
        daemon.get("expected_runs").map_or("?", String::as_str),
        daemon.get("errors").map_or("?", String::as_str),
        daemon.get("peak_rss_mib").map_or("?", String::as_str),
        daemon.get("hwm_mib").map_or("?", String::as_str),
        daemon.get("late_p50_s").map_or("?", String::as_str),
        daemon.get("late_max_s").map_or("?", String::as_str),
        daemon.get("late_beyond_jitter").map_or("?", String::as_str),
    );
    let fmt = |v: Option<f64>, d: usize| v.map_or("na".to_owned(), |v| format!("{v:.d$}"));
    let r = |gzip: bool| {
        // The largest backlog measured decides (1M in a full run, 100k in quick).
        ratio.iter().filter(|((_, g), _)| *g == gzip).max_by_key(|((a, _), _)| *a).map(|(_, r)| *r)
    };
    // Peak RSS of a backlog: the larger of the gzip and plain medians.
    let rss_of = |alerts: usize| rss.get(&alerts).map(|v| v.iter().copied().fold(f64::NAN, f64::max));
    println!(
        "bench: ratio_nogzip={} ratio_gzip={} rss_100k_mb={} rss_1m_mb={} sources_{n_sources}_rss_mb={} idle_run_ms={}",
        fmt(r(false), 2),
        fmt(r(true), 2),
        fmt(rss_of(100_000), 0),
        fmt(rss_of(1_000_000), 0),
        fmt(num(daemon, "hwm_mib").ok(), 0),
        fmt(num(idle, "idle_ms").ok(), 1),
    );
    Ok(())
}
