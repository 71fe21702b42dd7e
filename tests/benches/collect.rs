//! `make bench`: throughput and memory of one full collection — the real
//! Netskope component under the real host, 10 000-record pages from the
//! loopback mock, delivered to a local sink. Prints numbers; asserts nothing
//! about speed (targets are read by people, not enforced by tests).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use siphon::config::Settings;
use siphon::runner;
use siphon::services::Runtime;
use siphon_tests::mock::netskope::{MockConfig, MockNetskope};

const TOKEN: &str = "bench-token-0001";

/// Peak resident set size of this process, from /proc (Linux).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let per_type = 25_000;
    let mock = MockNetskope::start(MockConfig { token: TOKEN.into(), ..MockConfig::default() }).await?;
    mock.add_alerts("dlp", per_type);
    mock.add_alerts("malware", per_type);
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("token.txt"), TOKEN)?;
    let wasm = siphon_harness::guest("netskope_alerts")?;
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/siphon-test-cache");
    let config = format!(
        r#"[engine]
cache_dir = "{cache}"
[sink]
backend = "local"
[sink.local]
dir = "out"
[state]
backend = "local"
[state.local]
dir = "state"
[sources.bench]
collector = "{wasm}"
schedule = "0 * * * *"
allowed_hosts = ["{authority}"]
allow_http = true
settings = {{ base_url = "{base}", alert_types = ["dlp", "malware"], index = "bench" }}
secrets = {{ api_token = {{ file = "token.txt" }} }}
limits = {{ requests_per_second = 100 }}
"#,
        cache = cache.display(),
        wasm = wasm.display(),
        authority = mock.authority(),
        base = mock.base_url(),
    );
    let path = dir.path().join("siphon.toml");
    std::fs::write(&path, config)?;
    let settings = Settings::load(&path)?;

    let loaded = Instant::now();
    let runtime = Runtime::from_settings(&settings, None).await?;
    let load_time = loaded.elapsed();
    let source = runtime.source("bench").ok_or_else(|| anyhow::anyhow!("no source"))?;
    let started = Instant::now();
    let report = runner::run(&runtime, &Arc::clone(&source)).await;
    let elapsed = started.elapsed();
    let summary = report.outcome.as_ref().map_err(|e| anyhow::anyhow!("run failed: {e}"))?;
    let records = report.delivered.records;
    println!(
        "collect: {records} alerts in {} pages of up to 10000, {} objects, {:.1} MiB NDJSON",
        summary.pages,
        report.delivered.objects.len(),
        report.delivered.bytes as f64 / (1 << 20) as f64
    );
    println!("  load (compile or cache hit):  {load_time:.2?}");
    println!("  run wall time:                {elapsed:.2?}");
    println!(
        "  throughput:                   {:.0} records/s, {:.1} MiB/s",
        records as f64 / elapsed.as_secs_f64(),
        report.delivered.bytes as f64 / (1 << 20) as f64 / elapsed.as_secs_f64()
    );
    if let Some(rss) = peak_rss_mib() {
        println!("  peak RSS (host + mock):       {rss:.0} MiB");
    }
    anyhow::ensure!(records == 2 * per_type as u64, "expected {} records, got {records}", 2 * per_type);
    Ok(())
}
