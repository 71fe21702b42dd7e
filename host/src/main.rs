//! The `siphon` command line: `run` (daemon), `collect` (one run now),
//! `check` (validate config and components, probe the buckets), `status`
//! (the running daemon's per-source table), `inspect` (describe a `.wasm`),
//! `state show|reset` (look at or move a checkpoint).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use siphon::config::{SecretsMode, Settings, SinkTarget, StateSettings};
use siphon::engine::SiphonEngine;
use siphon::runner::{self, RunReport};
use siphon::services::Runtime;
use siphon::telemetry::{self, LogFormat};

/// Collect security logs from SaaS APIs with sandboxed WebAssembly
/// collectors and land them as NDJSON objects.
#[derive(Parser)]
#[command(name = "siphon", version, about)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text", env = "SIPHON_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: every enabled source on its schedule until
    /// SIGTERM/SIGINT; SIGHUP reloads the config and the collectors.
    Run {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run one source once, now, and print its summary.
    Collect {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Source name (`[sources.<name>]`).
        source: String,
    },
    /// Validate the configuration, load every collector and prove the sink and
    /// state are writable (GCS: a probe object is created, read and deleted);
    /// exit 1 on any problem.
    Check {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Do not contact the sink or the state store (for CI, where the
        /// buckets are out of reach); everything else is checked.
        #[arg(long)]
        offline: bool,
    },
    /// Print each source's state, last run, last success and next run, as
    /// the running daemon reports them (`[http] listen`), or from the state
    /// store when no daemon answers. Needs no vendor secrets.
    Status {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Describe a collector component: name, version, settings, imports, exports.
    Inspect {
        /// The `.wasm` file.
        file: PathBuf,
    },
    /// Show or reset a source's checkpoint (local or GCS state).
    State {
        #[command(subcommand)]
        action: StateCommand,
    },
}

#[derive(Subcommand)]
enum StateCommand {
    /// Print a source's checkpoint: location, generation, cursor, pending commit.
    Show {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Source name (`[sources.<name>]`).
        source: String,
    },
    /// Replace a source's checkpoint by one holding only `--to` (or no cursor:
    /// the next run starts where the collector starts). Conditional on the
    /// generation read, so a daemon committing meanwhile is never overwritten.
    Reset {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Source name (`[sources.<name>]`).
        source: String,
        /// The cursor to continue from (as `state show` prints it).
        #[arg(long)]
        to: Option<String>,
        /// Also drop a commit in progress (its objects stay in the sink and
        /// their records may be delivered again).
        #[arg(long)]
        force: bool,
    },
}

fn main() -> ExitCode {
    siphon::limits::use_one_malloc_arena();
    let cli = Cli::parse();
    telemetry::init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run { config } => {
            siphon::daemon::run(&config, siphon::daemon::os_signals()?).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Collect { config, source } => collect(&config, &source).await,
        Command::Check { config, offline } => check(&config, offline).await,
        Command::Inspect { file } => inspect(&file).await,
        Command::Status { config } => {
            print!("{}", siphon::status_cli::status(&load_without_secrets(&config)?).await?);
            Ok(ExitCode::SUCCESS)
        }
        // Checkpoints need no vendor token: secrets are not read.
        Command::State { action: StateCommand::Show { config, source } } => {
            print!("{}", siphon::state_cli::show(&load_without_secrets(&config)?, &source).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::State { action: StateCommand::Reset { config, source, to, force } } => {
            let settings = load_without_secrets(&config)?;
            print!("{}", siphon::state_cli::reset(&settings, &source, to, force).await?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn load(config: &Path) -> anyhow::Result<Settings> {
    Ok(Settings::load(config)?)
}

fn load_without_secrets(config: &Path) -> anyhow::Result<Settings> {
    Ok(Settings::load_with(config, SecretsMode::Skip)?)
}

async fn collect(config: &Path, source: &str) -> anyhow::Result<ExitCode> {
    let settings = load(config)?;
    let runtime = Runtime::from_settings(&settings, Some(source)).await?;
    let src = runtime.source(source).context("source not loaded")?;
    let report = runner::run(&runtime, &src).await;
    print_report(&report);
    Ok(if report.ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn print_report(r: &RunReport) {
    // Guest text is already redacted and clipped by the runner; escaping it
    // again here keeps any other text from driving the terminal.
    use telemetry::escape;
    let d = &r.delivered;
    println!("source:    {}", r.source);
    println!("collector: {}", r.collector);
    println!("run_id:    {}", r.run_id);
    match &r.outcome {
        Ok(s) => {
            println!("outcome:   ok{}", if s.caught_up { " (caught up)" } else { "" });
            println!("pages:     {}", s.pages);
            println!("duplicates dropped: {}", s.duplicates);
            if let Some(note) = &s.note {
                println!("note:      {}", escape(note));
            }
        }
        Err(e) => {
            println!("outcome:   FAILED ({})", e.kind());
            println!("error:     {}", escape(&e.to_string()));
            println!("discarded: {} uncommitted records (fetched again next run)", r.discarded);
        }
    }
    println!("records:   {}", d.records);
    println!("objects:   {}", d.objects.len());
    for o in &d.objects {
        println!("  {o}");
    }
    println!("elapsed:   {:.2?}", r.elapsed);
}

async fn check(config: &Path, offline: bool) -> anyhow::Result<ExitCode> {
    let settings = load(config)?;
    let runtime =
        if offline { Runtime::offline(&settings).await? } else { Runtime::from_settings(&settings, None).await? };
    // Values only the collector can judge (ranges, formats), before any run.
    let mut problems = Vec::new();
    for s in runtime.sources() {
        let name = &s.spec.name;
        let found = runtime.engine.validate(&s.collector, Arc::clone(&s.spec)).await;
        let found = found.with_context(|| format!("sources.{name}: `validate` of {} failed", s.collector_name()))?;
        problems.extend(found.into_iter().map(|p| format!("sources.{name}: {p}")));
    }
    anyhow::ensure!(problems.is_empty(), "{}:\n  - {}", settings.path.display(), problems.join("\n  - "));
    for s in runtime.sources() {
        println!(
            "ok: source `{}`: {} ({}), schedule `{}`, hosts [{}]",
            s.spec.name,
            telemetry::escape(&s.collector_name()),
            s.spec.collector.display(),
            s.spec.schedule_text,
            s.spec.allowed_hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(", ")
        );
        let limits = &s.spec.limits;
        let parts: Vec<String> =
            limits.memory_budget().iter().map(|(key, b)| format!("{key} {}", bytesize::ByteSize::b(*b))).collect();
        println!(
            "    memory budget per run: {} ({})",
            bytesize::ByteSize::b(limits.memory_budget_total()),
            parts.join(" + ")
        );
    }
    if offline {
        println!("ok: sink and state not contacted (--offline)");
        return Ok(ExitCode::SUCCESS);
    }
    println!("ok: sink: {}; state: {}", runtime.sink.describe(), runtime.state.describe());
    if matches!(settings.sink.target, SinkTarget::Gcs(_)) || matches!(settings.state, StateSettings::Gcs { .. }) {
        println!("ok: GCS buckets are writable (a probe object was created, read back and deleted)");
    }
    Ok(ExitCode::SUCCESS)
}

async fn inspect(file: &Path) -> anyhow::Result<ExitCode> {
    let engine = SiphonEngine::new(None)?;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let component = wasmtime::component::Component::new(engine.engine(), &bytes)
        .map_err(|e| anyhow::anyhow!("{}: not a valid WebAssembly component: {e:#}", file.display()))?;
    let ty = component.component_type();
    println!("file: {} ({} bytes)", file.display(), bytes.len());
    println!("imports:");
    // Everything below comes from the component: escaped, so a collector's
    // strings cannot drive the terminal.
    use telemetry::escape;
    for (name, _) in ty.imports(engine.engine()) {
        println!("  {}", escape(name));
    }
    println!("exports:");
    for (name, _) in ty.exports(engine.engine()) {
        println!("  {}", escape(name));
    }
    let loaded = engine.load(file).await?;
    let info = &loaded.info;
    println!("name:    {}", escape(&info.name));
    println!("version: {}", escape(&info.version));
    println!("vendor:  {}", escape(&info.vendor));
    println!("settings:");
    for s in &info.settings {
        let kind = if s.secret { "secret " } else { "setting" };
        let req = if s.required { "required" } else { "optional" };
        let default = s.default_value.as_deref().map(|d| format!(" [default: {}]", escape(d))).unwrap_or_default();
        println!("  {kind} {:<20} {req}  {}{default}", escape(&s.name), escape(&s.description));
    }
    Ok(ExitCode::SUCCESS)
}
