//! `mock-netskope`: the in-process Netskope mock as a standalone server, for running a
//! collector against it by hand or from a demo script. It seeds some alerts, optionally keeps
//! appending more, prints `mock-netskope listening on http://127.0.0.1:PORT` once bound, logs
//! each request to stderr and exits cleanly on SIGINT/SIGTERM.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use siphon_tests::mock_netskope::{MAX_PAGE_SIZE, MockConfig, MockNetskope};

/// Token used when neither --token nor MOCK_NETSKOPE_TOKEN is given.
const DEFAULT_TOKEN: &str = "demo-token";

#[derive(Parser, Debug)]
#[command(about = "Mock Netskope REST API v2 dataexport alert iterator on 127.0.0.1")]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8089)]
    port: u16,
    /// Valid Netskope-Api-Token value [default: $MOCK_NETSKOPE_TOKEN, else "demo-token"].
    #[arg(long)]
    token: Option<String>,
    /// Comma-separated alert types that get data; every documented type is known (404-free).
    #[arg(long, value_delimiter = ',', default_value = "dlp,malware,policy")]
    types: Vec<String>,
    /// Alerts per type created at start.
    #[arg(long, default_value_t = 250)]
    initial: usize,
    /// Maximum records per page (1..=10000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=MAX_PAGE_SIZE as u64))]
    page_size: u64,
    /// Seconds reported as wait_time in every page.
    #[arg(long, default_value_t = 0)]
    wait_time: u64,
    /// Append --new-batch alerts per type every this many seconds (0 disables).
    #[arg(long, default_value_t = 10)]
    new_every: u64,
    /// Alerts per type appended every --new-every seconds (0 disables).
    #[arg(long, default_value_t = 5)]
    new_batch: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let token = args
        .token
        .or_else(|| std::env::var("MOCK_NETSKOPE_TOKEN").ok().filter(|t| !t.is_empty()))
        .unwrap_or_else(|| DEFAULT_TOKEN.to_string());
    let cfg = MockConfig {
        token,
        page_size: usize::try_from(args.page_size).context("--page-size")?,
        wait_time: args.wait_time,
        log_requests: true,
        ..MockConfig::default()
    };
    let types: Vec<String> =
        args.types.iter().map(|t| t.trim().to_ascii_lowercase()).filter(|t| !t.is_empty()).collect();
    for t in &types {
        if !cfg.alert_types.contains(t) {
            anyhow::bail!("unknown alert type {t:?}; known: {}", cfg.alert_types.join(","));
        }
    }

    let mock = MockNetskope::start_on(cfg, SocketAddr::from((Ipv4Addr::LOCALHOST, args.port))).await?;
    for t in &types {
        mock.add_alerts(t, args.initial);
    }
    // Scripts wait for this exact line; without the flush it can sit in a pipe buffer.
    let mut out = std::io::stdout().lock();
    writeln!(out, "mock-netskope listening on {}", mock.base_url()).context("writing to stdout")?;
    out.flush().context("flushing stdout")?;
    drop(out);
    eprintln!(
        "mock-netskope: types {} with {} alerts each, page size {}, wait_time {}s",
        types.join(","),
        args.initial,
        args.page_size,
        args.wait_time
    );

    let feeding = args.new_every > 0 && args.new_batch > 0;
    let mut ticker = tokio::time::interval(Duration::from_secs(args.new_every.max(1)));
    // The first tick is immediate; the initial alerts already cover "now".
    ticker.tick().await;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    loop {
        tokio::select! {
            _ = ticker.tick(), if feeding => {
                for t in &types {
                    mock.add_alerts(t, args.new_batch);
                }
                eprintln!("mock-netskope: appended {} alerts to each of {}", args.new_batch, types.join(","));
            }
            r = tokio::signal::ctrl_c() => {
                r.context("waiting for SIGINT")?;
                break;
            }
            _ = terminate.recv() => break,
        }
    }
    eprintln!("mock-netskope: shutting down after {} requests", mock.requests().len());
    mock.shutdown().await;
    Ok(())
}
