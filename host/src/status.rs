//! What the daemon knows about itself and its sources right now: the
//! board the scheduler, the reloader and the backend probe write to, and the
//! [`Snapshot`] that `/status`, `/healthz`, `/readyz`, the status page and
//! `siphon status` read.
//!
//! A source's *state* is derived when a snapshot is taken, in this order:
//! `disabled` (configured with `enabled = false`), `running` (a run is in
//! flight), `failing` (its last run failed), `busy` (its last run was
//! skipped because another run holds the source), `stale` (no successful
//! run for longer than one schedule period plus jitter past when one was
//! due), `waiting` (no run yet, none due), else `ok`.
//!
//! Everything shown is free of secrets: errors and notes pass through the
//! source's redactor and are clipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use croner::Cron;
use serde::{Deserialize, Serialize};

use crate::runner::RunReport;
use crate::secrets::Redactor;
use crate::services::SourceRuntime;

/// Longest error text kept for a source (the status page shows it whole).
const ERROR_CLIP: usize = 600;
/// Longest collector note kept.
const NOTE_CLIP: usize = 300;
/// `/healthz` fails when the scheduler has not reported for this long.
const HEARTBEAT_MAX_AGE: Duration = Duration::from_secs(30);

/// A source's state, as the page and `/status` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceState {
    /// The last run succeeded and the source is on schedule.
    Ok,
    /// The last run failed.
    Failing,
    /// No successful run for longer than the schedule allows.
    Stale,
    /// A run is in flight.
    Running,
    /// The last run was skipped: another run (another daemon) holds the source.
    Busy,
    /// Configured with `enabled = false`.
    Disabled,
    /// Not run yet, and no run is overdue.
    Waiting,
}

impl SourceState {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceState::Ok => "ok",
            SourceState::Failing => "failing",
            SourceState::Stale => "stale",
            SourceState::Running => "running",
            SourceState::Busy => "busy",
            SourceState::Disabled => "disabled",
            SourceState::Waiting => "waiting",
        }
    }
}

/// The whole status, as `/status` serves it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    /// siphon's version.
    pub version: String,
    /// When the daemon started.
    pub started_at: DateTime<Utc>,
    /// Seconds since then.
    pub uptime_s: u64,
    /// When this snapshot was taken.
    pub now: DateTime<Utc>,
    /// The configuration in force.
    pub config: ConfigView,
    /// `/healthz`: the process and its scheduler are alive.
    pub health: Check,
    /// `/readyz`: config loaded, sink and state reachable, no reload pending.
    pub ready: Check,
    /// The last probe of the sink and the state store.
    pub backends: Option<ProbeView>,
    /// One entry per configured source, by name.
    pub sources: Vec<SourceView>,
}

/// The configuration file and its reloads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigView {
    /// The config file.
    pub path: PathBuf,
    /// When the configuration in force was loaded.
    pub loaded_at: DateTime<Utc>,
    /// Whether a reload is being validated right now.
    pub reloading: bool,
    /// The last reload, applied or refused.
    pub last_reload: Option<ReloadView>,
}

/// One reload attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReloadView {
    /// When it finished.
    pub at: DateTime<Utc>,
    /// `applied` or `refused`.
    pub outcome: String,
    /// What changed (applied) or why it was refused.
    pub detail: String,
}

/// A yes/no check with the reasons for a no.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    /// Whether the check passes.
    pub ok: bool,
    /// Why not (empty when it passes).
    pub reasons: Vec<String>,
}

/// The last probe of the backends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeView {
    /// When it ran.
    pub at: DateTime<Utc>,
    /// Whether both answered.
    pub ok: bool,
    /// What failed.
    pub error: Option<String>,
}

/// One source.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceView {
    /// Source name.
    pub name: String,
    /// Derived state (see the module docs).
    pub state: SourceState,
    /// The collector in force (a run in flight may still use the one before).
    pub collector: CollectorView,
    /// Whether the source is scheduled.
    pub enabled: bool,
    /// The cron schedule as configured.
    pub schedule: String,
    /// Start of the run in flight.
    pub running_since: Option<DateTime<Utc>>,
    /// The last finished run.
    pub last_run: Option<LastRunView>,
    /// Start of the last successful run.
    pub last_success: Option<DateTime<Utc>>,
    /// How long a run has been overdue: since the first scheduled time after
    /// the last success (or after the source was added). 0 when on time.
    pub behind_s: u64,
    /// `behind_s` beyond this makes the source stale: one schedule period
    /// plus the jitter.
    pub stale_after_s: u64,
    /// When the next run is due (none while running or disabled).
    pub next_run: Option<DateTime<Utc>>,
    /// The last failed run's error, redacted and clipped.
    pub last_error: Option<String>,
    /// The collector's note from its last successful run.
    pub note: Option<String>,
    /// Failed runs since the last success.
    pub failures_in_a_row: u32,
}

/// A collector component.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CollectorView {
    /// Name from its `info`.
    pub name: String,
    /// Version from its `info`.
    pub version: String,
    /// The `.wasm` file.
    pub path: PathBuf,
    /// SHA-256 of the file's content, hex.
    pub sha256: String,
}

/// A finished run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastRunView {
    /// When it started.
    pub started: DateTime<Utc>,
    /// How long it took, in seconds.
    pub duration_s: f64,
    /// `ok`, or the error kind (`auth`, `busy`, `deadline`, ...).
    pub outcome: String,
    /// Records delivered.
    pub records: u64,
    /// Objects written.
    pub objects: u64,
    /// The collector version it ran.
    pub collector_version: String,
}

/// What the board needs to know about a configured source.
#[derive(Clone)]
pub struct SourceInfo {
    /// The collector.
    pub collector: CollectorView,
    /// Schedule text.
    pub schedule_text: String,
    /// Parsed schedule.
    pub schedule: Cron,
    /// Maximum start delay.
    pub jitter: Duration,
    /// Whether it is scheduled.
    pub enabled: bool,
    /// Scrubs the source's secrets from errors and notes.
    pub redactor: Redactor,
}

impl SourceInfo {
    /// The info of a loaded source whose `.wasm` hashes to `sha256`.
    pub fn of(source: &SourceRuntime, sha256: &str) -> SourceInfo {
        let info = &source.collector.info;
        SourceInfo {
            collector: CollectorView {
                name: info.name.clone(),
                version: info.version.clone(),
                path: source.collector.path.clone(),
                sha256: sha256.to_owned(),
            },
            schedule_text: source.spec.schedule_text.clone(),
            schedule: source.spec.schedule.clone(),
            jitter: source.spec.jitter,
            enabled: source.spec.enabled,
            redactor: source.spec.secrets.redactor(),
        }
    }
}

struct Entry {
    info: SourceInfo,
    added: DateTime<Utc>,
    running: Option<(DateTime<Utc>, String)>,
    last_run: Option<LastRunView>,
    last_success: Option<DateTime<Utc>>,
    last_error: Option<String>,
    note: Option<String>,
    failures: u32,
    next_run: Option<DateTime<Utc>>,
    /// Removed from the config while a run was in flight: dropped when it ends.
    removed: bool,
}

struct Board {
    config_path: PathBuf,
    loaded_at: DateTime<Utc>,
    reloading: bool,
    last_reload: Option<ReloadView>,
    probe: Option<ProbeView>,
    heartbeat: Option<(Instant, bool)>,
    stopping: bool,
    sources: BTreeMap<String, Entry>,
}

/// The daemon's shared status.
pub struct StatusBoard {
    version: String,
    started_at: DateTime<Utc>,
    board: Mutex<Board>,
}

impl StatusBoard {
    /// A board for a daemon that loaded `config_path` just now.
    pub fn new(config_path: &Path) -> StatusBoard {
        let now = Utc::now();
        StatusBoard {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: now,
            board: Mutex::new(Board {
                config_path: std::path::absolute(config_path).unwrap_or_else(|_| config_path.to_owned()),
                loaded_at: now,
                reloading: false,
                last_reload: None,
                probe: None,
                heartbeat: None,
                stopping: false,
                sources: BTreeMap::new(),
            }),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Board) -> T) -> T {
        // A panic while holding the lock leaves plain data; keep serving it.
        let mut board = self.board.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut board)
    }

    /// Make `sources` the configured set: new names are added, known ones
    /// get the new info (their history stays), missing ones are removed (or,
    /// while running, removed when their run ends).
    pub fn set_sources(&self, sources: Vec<(String, SourceInfo)>) {
        let now = Utc::now();
        self.with(|b| {
            let keep: Vec<&String> = sources.iter().map(|(n, _)| n).collect();
            b.sources.retain(|name, e| {
                if keep.contains(&name) {
                    return true;
                }
                e.removed = true;
                e.running.is_some()
            });
            for (name, info) in sources {
                match b.sources.get_mut(&name) {
                    Some(e) => {
                        e.info = info;
                        e.removed = false;
                    }
                    None => {
                        b.sources.insert(
                            name,
                            Entry {
                                info,
                                added: now,
                                running: None,
                                last_run: None,
                                last_success: None,
                                last_error: None,
                                note: None,
                                failures: 0,
                                next_run: None,
                                removed: false,
                            },
                        );
                    }
                }
            }
        });
    }

    /// The configuration now in force was loaded (start or applied reload).
    pub fn config_loaded(&self) {
        self.with(|b| b.loaded_at = Utc::now());
    }

    /// A reload is being validated (`/readyz` says not ready meanwhile).
    pub fn set_reloading(&self, reloading: bool) {
        self.with(|b| b.reloading = reloading);
    }

    /// A reload finished: `Ok(what changed)` or `Err(why refused)`.
    pub fn reload_finished(&self, result: &Result<String, String>) {
        let (outcome, detail) = match result {
            Ok(d) => ("applied", d.clone()),
            Err(e) => ("refused", e.clone()),
        };
        self.with(|b| {
            b.last_reload = Some(ReloadView { at: Utc::now(), outcome: outcome.to_owned(), detail });
            b.reloading = false;
        });
    }

    /// The backends were probed.
    pub fn probed(&self, result: Result<(), String>) {
        self.with(|b| b.probe = Some(ProbeView { at: Utc::now(), ok: result.is_ok(), error: result.err() }));
    }

    /// The scheduler is alive; `tasks_alive` is false when a source task
    /// has ended unexpectedly.
    pub fn heartbeat(&self, tasks_alive: bool) {
        self.with(|b| b.heartbeat = Some((Instant::now(), tasks_alive)));
    }

    /// Shutdown began: no new runs.
    pub fn stopping(&self) {
        self.with(|b| b.stopping = true);
    }

    /// When `name` runs next (none: not scheduled).
    pub fn next_run(&self, name: &str, at: Option<DateTime<Utc>>) {
        self.with(|b| {
            if let Some(e) = b.sources.get_mut(name) {
                e.next_run = at;
            }
        });
    }

    /// A run of `name` started with collector `version`.
    pub fn run_started(&self, name: &str, version: &str) {
        self.with(|b| {
            if let Some(e) = b.sources.get_mut(name) {
                e.running = Some((Utc::now(), version.to_owned()));
                e.next_run = None;
            }
        });
    }

    /// A run of `name` ended: its report, or none when it was abandoned at
    /// shutdown.
    pub fn run_finished(&self, name: &str, report: Option<&RunReport>) {
        self.with(|b| {
            let Some(e) = b.sources.get_mut(name) else { return };
            let running = e.running.take();
            if e.removed {
                b.sources.remove(name);
                return;
            }
            let Some(r) = report else { return };
            let outcome = match &r.outcome {
                Ok(_) => "ok",
                Err(error) => error.kind(),
            };
            // The start `running_since` showed, so a run is known by one time.
            let (started, version) = running.unwrap_or_else(|| (r.started, String::new()));
            e.last_run = Some(LastRunView {
                started,
                duration_s: r.elapsed.as_secs_f64(),
                outcome: outcome.to_owned(),
                records: r.delivered.records,
                objects: r.delivered.objects.len() as u64,
                collector_version: version,
            });
            match &r.outcome {
                Ok(summary) => {
                    e.last_success = Some(started);
                    e.failures = 0;
                    e.note = summary.note.as_deref().map(|n| clip(&e.info.redactor.redact(n), NOTE_CLIP));
                }
                // A skip is not a failure: the source is another run's.
                Err(error) if error.kind() == "busy" => {}
                Err(error) => {
                    e.failures += 1;
                    e.last_error = Some(clip(&e.info.redactor.redact(&error.to_string()), ERROR_CLIP));
                }
            }
        });
    }

    /// Everything, as of `now`.
    pub fn snapshot(&self) -> Snapshot {
        let now = Utc::now();
        self.with(|b| {
            let sources: Vec<SourceView> = b.sources.iter().map(|(name, e)| view(name, e, now)).collect();
            let mut health = Vec::new();
            match b.heartbeat {
                None => health.push("the scheduler has not started".to_owned()),
                Some((at, _)) if at.elapsed() > HEARTBEAT_MAX_AGE => {
                    health.push(format!("the scheduler has not reported for {} s", at.elapsed().as_secs()))
                }
                Some((_, false)) => health.push("a source's scheduling task has ended".to_owned()),
                Some(_) => {}
            }
            if b.stopping {
                health.push("shutting down".to_owned());
            }
            let mut ready = health.clone();
            if b.reloading {
                ready.push("a reload is being validated".to_owned());
            }
            match &b.probe {
                None => ready.push("the sink and state have not been probed yet".to_owned()),
                Some(p) if !p.ok => ready.push(format!(
                    "the last probe of the sink and state failed: {}",
                    p.error.as_deref().unwrap_or("unknown error")
                )),
                Some(_) => {}
            }
            Snapshot {
                version: self.version.clone(),
                started_at: self.started_at,
                uptime_s: (now - self.started_at).num_seconds().max(0) as u64,
                now,
                config: ConfigView {
                    path: b.config_path.clone(),
                    loaded_at: b.loaded_at,
                    reloading: b.reloading,
                    last_reload: b.last_reload.clone(),
                },
                health: Check { ok: health.is_empty(), reasons: health },
                ready: Check { ok: ready.is_empty(), reasons: ready },
                backends: b.probe.clone(),
                sources,
            }
        })
    }
}

fn view(name: &str, e: &Entry, now: DateTime<Utc>) -> SourceView {
    let info = &e.info;
    let period = period(&info.schedule, now).unwrap_or(Duration::from_secs(60));
    let stale_after = period + info.jitter;
    let reference = e.last_success.unwrap_or(e.added);
    let behind = info
        .schedule
        .find_next_occurrence(&reference, false)
        .ok()
        .and_then(|due| (now - due).to_std().ok())
        .unwrap_or_default();
    let last_outcome = e.last_run.as_ref().map(|r| r.outcome.as_str());
    let state = if !info.enabled {
        SourceState::Disabled
    } else if e.running.is_some() {
        SourceState::Running
    } else if last_outcome.is_some_and(|o| o != "ok" && o != "busy") {
        SourceState::Failing
    } else if last_outcome == Some("busy") {
        SourceState::Busy
    } else if behind > stale_after {
        SourceState::Stale
    } else if e.last_run.is_none() {
        SourceState::Waiting
    } else {
        SourceState::Ok
    };
    SourceView {
        name: name.to_owned(),
        state,
        collector: info.collector.clone(),
        enabled: info.enabled,
        schedule: info.schedule_text.clone(),
        running_since: e.running.as_ref().map(|(t, _)| *t),
        last_run: e.last_run.clone(),
        last_success: e.last_success,
        behind_s: if info.enabled { behind.as_secs() } else { 0 },
        stale_after_s: stale_after.as_secs(),
        next_run: e.next_run,
        last_error: if e.failures > 0 { e.last_error.clone() } else { None },
        note: e.note.clone(),
        failures_in_a_row: e.failures,
    }
}

/// The time between the schedule's next two occurrences after `now`.
fn period(schedule: &Cron, now: DateTime<Utc>) -> Option<Duration> {
    let first = schedule.find_next_occurrence(&now, false).ok()?;
    let second = schedule.find_next_occurrence(&first, false).ok()?;
    (second - first).max(TimeDelta::seconds(1)).to_std().ok()
}

/// At most `max` bytes of `text` (on a character boundary), marked when cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;
    use crate::bindings::types::RunSummary;
    use crate::delivery::DeliveryStats;
    use crate::runner::RunError;

    fn info(schedule: &str, secret: &str) -> SourceInfo {
        let mut secrets = crate::secrets::Secrets::default();
        secrets.insert("token".into(), secret.to_owned().into());
        SourceInfo {
            collector: CollectorView {
                name: "c".into(),
                version: "1.0.0".into(),
                path: "/c.wasm".into(),
                sha256: "ab".into(),
            },
            schedule_text: schedule.into(),
            schedule: Cron::from_str(schedule).unwrap(),
            jitter: Duration::ZERO,
            enabled: true,
            redactor: secrets.redactor(),
        }
    }

    fn report(outcome: Result<RunSummary, RunError>, started: DateTime<Utc>) -> RunReport {
        RunReport {
            run_id: "r".into(),
            source: "s".into(),
            collector: "c@1.0.0".into(),
            started,
            elapsed: Duration::from_millis(1500),
            outcome,
            delivered: DeliveryStats { records: 7, objects: vec!["o".into()], bytes: 10, commits: 1 },
            discarded: 0,
            cursor: None,
        }
    }

    fn state(board: &StatusBoard, name: &str) -> SourceView {
        board.snapshot().sources.into_iter().find(|s| s.name == name).unwrap()
    }

    #[test]
    fn states_follow_runs_and_errors_are_redacted() {
        let board = StatusBoard::new(Path::new("/etc/siphon.toml"));
        board.set_sources(vec![("s".into(), info("0 0 1 1 *", "sekrit-value"))]);
        assert_eq!(state(&board, "s").state, SourceState::Waiting);
        board.run_started("s", "1.0.0");
        assert_eq!(state(&board, "s").state, SourceState::Running);
        let ok = RunSummary { pages: 1, duplicates: 0, caught_up: true, note: Some("read 7".into()) };
        board.run_finished("s", Some(&report(Ok(ok), Utc::now())));
        let s = state(&board, "s");
        assert_eq!((s.state, s.note.as_deref(), s.last_run.unwrap().records), (SourceState::Ok, Some("read 7"), 7));

        board.run_started("s", "1.0.0");
        let failed = RunError::Collector { kind: "auth", message: "token sekrit-value refused".into() };
        board.run_finished("s", Some(&report(Err(failed), Utc::now())));
        let s = state(&board, "s");
        assert_eq!((s.state, s.failures_in_a_row), (SourceState::Failing, 1));
        let error = s.last_error.unwrap();
        assert!(error.contains("token [REDACTED] refused") && !error.contains("sekrit"), "{error}");

        board.run_started("s", "1.0.0");
        let busy = RunError::Delivery(crate::delivery::DeliveryError::BusyRace { source_name: "s".into() });
        board.run_finished("s", Some(&report(Err(busy), Utc::now())));
        let s = state(&board, "s");
        assert_eq!((s.state, s.failures_in_a_row), (SourceState::Busy, 1), "a skip is no failure");
    }

    #[test]
    fn a_source_overdue_by_more_than_a_period_is_stale() {
        let board = StatusBoard::new(Path::new("c.toml"));
        board.set_sources(vec![("s".into(), info("* * * * * *", "x"))]);
        let long_ago = Utc::now() - TimeDelta::seconds(30);
        let ok = RunSummary { pages: 1, duplicates: 0, caught_up: true, note: None };
        board.run_finished("s", Some(&report(Ok(ok), long_ago)));
        board.run_started("s", "1.0.0");
        board.run_finished("s", None);
        let s = state(&board, "s");
        assert_eq!(s.state, SourceState::Stale);
        assert!(s.behind_s >= 28 && s.stale_after_s == 1, "{s:?}");
    }

    #[test]
    fn readiness_needs_a_probe_and_no_reload_and_health_a_heartbeat() {
        let board = StatusBoard::new(Path::new("c.toml"));
        let snap = board.snapshot();
        assert!(!snap.health.ok && !snap.ready.ok);
        board.heartbeat(true);
        board.probed(Ok(()));
        let snap = board.snapshot();
        assert!(snap.health.ok && snap.ready.ok, "{snap:?}");
        board.set_reloading(true);
        let snap = board.snapshot();
        assert!(snap.health.ok && !snap.ready.ok);
        assert_eq!(snap.ready.reasons, ["a reload is being validated"]);
        board.reload_finished(&Err("bad".into()));
        board.probed(Err("sink: gone".into()));
        let snap = board.snapshot();
        assert!(!snap.ready.ok && snap.ready.reasons[0].contains("sink: gone"), "{snap:?}");
        assert_eq!(snap.config.last_reload.unwrap().outcome, "refused");
        board.heartbeat(false);
        assert!(!board.snapshot().health.ok);
    }

    #[test]
    fn a_source_removed_while_running_goes_when_its_run_ends() {
        let board = StatusBoard::new(Path::new("c.toml"));
        board.set_sources(vec![("a".into(), info("0 0 1 1 *", "x")), ("b".into(), info("0 0 1 1 *", "x"))]);
        board.run_started("a", "1.0.0");
        board.set_sources(vec![]);
        let names: Vec<String> = board.snapshot().sources.into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["a"]);
        board.run_finished("a", None);
        assert!(board.snapshot().sources.is_empty());
        assert_eq!(clip("héllo", 2), "h…");
    }
}
