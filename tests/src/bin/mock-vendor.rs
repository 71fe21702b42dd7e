//! `mock-vendor <vendor>`: a vendor mock as a standalone server, for running a collector against
//! it by hand or from a demo script. It seeds records in each stream, optionally keeps appending
//! more, prints `mock-vendor <vendor> listening on http://127.0.0.1:PORT` once bound, logs each
//! request to stderr and exits cleanly on SIGINT/SIGTERM.
//!
//! Vendors are rows of [`VENDORS`]: a name, its streams, and how to start its mock from the
//! common options.

use std::future::Future;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use siphon_tests::mock::VendorMock;
use siphon_tests::mock::ibm_verify;
use siphon_tests::mock::maas360;
use siphon_tests::mock::mimecast;
use siphon_tests::mock::mulesoft;
use siphon_tests::mock::netskope::{ALERT_TYPES, MockConfig, MockNetskope};

/// Secret used when neither --secret nor MOCK_VENDOR_SECRET is given.
const DEFAULT_SECRET: &str = "demo-token";

#[derive(Parser, Debug)]
#[command(about = "A mock vendor API on 127.0.0.1 (see `VENDORS` in src/bin/mock-vendor.rs)")]
struct Args {
    /// The vendor to mock.
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(VENDORS.iter().map(|v| v.name)))]
    vendor: String,
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8089)]
    port: u16,
    /// The credential the mock accepts (Netskope: the API token) [default: $MOCK_VENDOR_SECRET, else
    /// "demo-token"].
    #[arg(long, alias = "token")]
    secret: Option<String>,
    /// Comma-separated streams that get data [default: the vendor's demo streams].
    #[arg(long, alias = "types", value_delimiter = ',')]
    streams: Vec<String>,
    /// Records per stream created at start.
    #[arg(long, default_value_t = 250)]
    initial: usize,
    /// Maximum records per page.
    #[arg(long, default_value_t = 100)]
    page_size: usize,
    /// Append --new-batch records per stream every this many seconds (0 disables).
    #[arg(long, default_value_t = 10)]
    new_every: u64,
    /// Records per stream appended every --new-every seconds (0 disables).
    #[arg(long, default_value_t = 5)]
    new_batch: usize,
    /// A vendor-specific setting, KEY=VALUE; repeatable (netskope: wait_time=SECONDS; ibm-verify:
    /// client_id=ID, token_lifetime=SECONDS, late_every=N).
    #[arg(long = "set", value_parser = key_value)]
    settings: Vec<(String, String)>,
}

/// What every vendor's mock is started from.
struct Options {
    addr: SocketAddr,
    secret: String,
    page_size: usize,
    /// `--set` pairs; a vendor takes the ones it knows, the rest are an error.
    settings: Vec<(String, String)>,
}

impl Options {
    /// Removes and parses setting `key`.
    fn take<T: std::str::FromStr>(&mut self, key: &str) -> anyhow::Result<Option<T>>
    where
        T::Err: std::fmt::Display,
    {
        let Some(pos) = self.settings.iter().position(|(k, _)| k == key) else {
            return Ok(None);
        };
        let (_, value) = self.settings.remove(pos);
        value.parse().map(Some).map_err(|e| anyhow::anyhow!("--set {key}={value}: {e}"))
    }

    /// Fails naming settings no vendor code took.
    fn finish(self, vendor: &str, known: &str) -> anyhow::Result<()> {
        if let Some((key, _)) = self.settings.first() {
            bail!("{vendor} has no setting {key:?} (known: {known})");
        }
        Ok(())
    }
}

type Started = Pin<Box<dyn Future<Output = anyhow::Result<Box<dyn VendorMock>>>>>;

/// One vendor the binary can mock.
struct Vendor {
    name: &'static str,
    /// Every stream the mock knows.
    streams: &'static [&'static str],
    /// Streams seeded when --streams is not given.
    demo_streams: &'static [&'static str],
    start: fn(Options) -> Started,
}

/// The vendors, one row each.
const VENDORS: &[Vendor] = &[
    Vendor {
        name: "netskope",
        streams: &ALERT_TYPES,
        demo_streams: &["dlp", "malware", "policy"],
        start: |o| Box::pin(netskope(o)),
    },
    Vendor {
        name: "ibm-verify",
        streams: &ibm_verify::EVENT_TYPES,
        demo_streams: &["authentication", "sso", "management", "token"],
        start: |o| Box::pin(verify(o)),
    },
    Vendor {
        name: "mulesoft",
        streams: &[mulesoft::STREAM],
        demo_streams: &[mulesoft::STREAM],
        start: |o| Box::pin(mulesoft(o)),
    },
    Vendor {
        name: "maas360",
        streams: &maas360::STREAMS,
        demo_streams: &maas360::STREAMS,
        start: |o| Box::pin(maas360(o)),
    },
    Vendor {
        name: "mimecast",
        streams: &mimecast::STREAMS,
        demo_streams: &["receipt", "process", "delivery", "url protect", "siem", "audit"],
        start: |o| Box::pin(mimecast(o)),
    },
];

async fn netskope(mut o: Options) -> anyhow::Result<Box<dyn VendorMock>> {
    let wait_time = o.take("wait_time")?.unwrap_or(0);
    let cfg = MockConfig {
        token: o.secret.clone(),
        page_size: o.page_size,
        wait_time,
        log_requests: true,
        ..MockConfig::default()
    };
    let addr = o.addr;
    o.finish("netskope", "wait_time")?;
    Ok(Box::new(MockNetskope::start_on(cfg, addr).await?))
}

/// IBM Security Verify: the secret is the API client's `client_secret`; pages are as large as
/// the collector's `size` asks (the API's own limit, 10,000, applies).
async fn verify(mut o: Options) -> anyhow::Result<Box<dyn VendorMock>> {
    let defaults = ibm_verify::MockConfig::default();
    let cfg = ibm_verify::MockConfig {
        client_id: o.take("client_id")?.unwrap_or_else(|| "demo-client".to_owned()),
        client_secret: o.secret.clone(),
        token_lifetime: o.take("token_lifetime")?.map_or(defaults.token_lifetime, Duration::from_secs),
        late_every: o.take("late_every")?.unwrap_or(defaults.late_every),
        log_requests: true,
        ..defaults
    };
    let addr = o.addr;
    o.finish("ibm-verify", "client_id, token_lifetime (seconds), late_every")?;
    Ok(Box::new(ibm_verify::MockVerify::start_on(cfg, addr).await?))
}

/// MuleSoft Anypoint: the secret is the Connected App's `client_secret`; `--set` takes
/// `client_id`, `org_id`, `quota` (query calls a minute; 40 on the EU and Gov planes) and
/// `late_every` (every Nth entry reaches the store 2 s late). Pages are as large as the
/// collector's `limit` asks (at most 200).
async fn mulesoft(mut o: Options) -> anyhow::Result<Box<dyn VendorMock>> {
    let d = mulesoft::MockConfig::default();
    let cfg = mulesoft::MockConfig {
        client_id: o.take("client_id")?.unwrap_or_else(|| "demo-client".to_owned()),
        client_secret: o.secret.clone(),
        org_id: o.take("org_id")?.unwrap_or_else(|| d.org_id.clone()),
        quota_per_minute: o.take("quota")?.unwrap_or(d.quota_per_minute),
        late_every: o.take("late_every")?.unwrap_or(d.late_every),
        log_requests: true,
        ..d
    };
    let addr = o.addr;
    o.finish("mulesoft", "client_id, org_id, quota, late_every")?;
    Ok(Box::new(mulesoft::MockMulesoft::start_on(cfg, addr).await?))
}

/// IBM MaaS360: the secret is the administrator's password; `--set` takes the rest of the login
/// (`billing_id`, `app_id`, `user_name`, `app_access_key`), `token_minutes`, `token_calls` (a token
/// dies after that many data calls) and `count_is_total`.
/// Page sizes are the collector's (25, 50, 100, 200 or 250).
async fn maas360(mut o: Options) -> anyhow::Result<Box<dyn VendorMock>> {
    let d = maas360::MockConfig::default();
    let cfg = maas360::MockConfig {
        billing_id: o.take("billing_id")?.unwrap_or(d.billing_id),
        app_id: o.take("app_id")?.unwrap_or(d.app_id),
        user_name: o.take("user_name")?.unwrap_or(d.user_name),
        app_access_key: o.take("app_access_key")?.unwrap_or(d.app_access_key),
        password: o.secret.clone(),
        token_lifetime_ms: o.take::<u64>("token_minutes")?.map_or(d.token_lifetime_ms, |m| m * 60_000),
        count_is_total: o.take("count_is_total")?.unwrap_or(d.count_is_total),
        token_calls: o.take("token_calls")?,
        log_requests: true,
        ..d
    };
    let addr = o.addr;
    o.finish("maas360", "billing_id, app_id, user_name, app_access_key, token_minutes, token_calls, count_is_total")?;
    Ok(Box::new(maas360::MockMaas360::start_on(cfg, addr).await?))
}

/// Mimecast, API 2.0 and 1.0 on one port: the secret is the 2.0 `client_secret`; `--set` takes
/// `client_id` and the 1.0 `app_id`, `app_key`, `access_key`, `secret_key` (base64). A page holds
/// `--page-size` records: SIEM files of `records_per_file` (default 50), as many as fit.
async fn mimecast(mut o: Options) -> anyhow::Result<Box<dyn VendorMock>> {
    let d = mimecast::MockConfig::default();
    let records_per_file = o.take("records_per_file")?.unwrap_or(50usize).max(1);
    let cfg = mimecast::MockConfig {
        client_id: o.take("client_id")?.unwrap_or(d.client_id),
        client_secret: o.secret.clone(),
        app_id: o.take("app_id")?.unwrap_or(d.app_id),
        app_key: o.take("app_key")?.unwrap_or(d.app_key),
        access_key: o.take("access_key")?.unwrap_or(d.access_key),
        secret_key: o.take("secret_key")?.unwrap_or(d.secret_key),
        records_per_file,
        files_per_page: (o.page_size / records_per_file).max(1),
        audit_page_size: o.page_size,
        log_requests: true,
        ..d
    };
    let addr = o.addr;
    o.finish("mimecast", "client_id, app_id, app_key, access_key, secret_key, records_per_file")?;
    Ok(Box::new(mimecast::MockMimecast::start_on(cfg, addr).await?))
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let vendor = VENDORS.iter().find(|v| v.name == args.vendor).context("clap checked the vendor")?;
    let secret = args
        .secret
        .or_else(|| std::env::var("MOCK_VENDOR_SECRET").ok().filter(|t| !t.is_empty()))
        .unwrap_or_else(|| DEFAULT_SECRET.to_owned());
    let mut streams: Vec<String> =
        args.streams.iter().map(|t| t.trim().to_ascii_lowercase()).filter(|t| !t.is_empty()).collect();
    if streams.is_empty() {
        streams = vendor.demo_streams.iter().map(|s| s.to_string()).collect();
    }
    for s in &streams {
        if !vendor.streams.contains(&s.as_str()) {
            bail!("{} has no stream {s:?}; known: {}", vendor.name, vendor.streams.join(","));
        }
    }
    let options = Options {
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, args.port)),
        secret,
        page_size: args.page_size,
        settings: args.settings,
    };
    let mock = (vendor.start)(options).await?;
    for s in &streams {
        mock.add_records(s, args.initial);
    }
    let label = format!("mock-vendor {}", vendor.name);
    // Scripts wait for this exact line; without the flush it can sit in a pipe buffer.
    let mut out = std::io::stdout().lock();
    writeln!(out, "{label} listening on {}", mock.server().base_url()).context("writing to stdout")?;
    out.flush().context("flushing stdout")?;
    drop(out);
    eprintln!(
        "{label}: streams {} with {} records each, page size {}",
        streams.join(","),
        args.initial,
        args.page_size
    );

    let feeding = args.new_every > 0 && args.new_batch > 0;
    let mut ticker = tokio::time::interval(Duration::from_secs(args.new_every.max(1)));
    // The first tick is immediate; the initial records already cover "now".
    ticker.tick().await;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    loop {
        tokio::select! {
            _ = ticker.tick(), if feeding => {
                for s in &streams {
                    mock.add_records(s, args.new_batch);
                }
                eprintln!("{label}: appended {} records to each of {}", args.new_batch, streams.join(","));
            }
            r = tokio::signal::ctrl_c() => {
                r.context("waiting for SIGINT")?;
                break;
            }
            _ = terminate.recv() => break,
        }
    }
    eprintln!("{label}: shutting down after {} requests", mock.server().request_count());
    Ok(())
}
