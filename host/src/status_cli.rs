//! `siphon status`: the per-source table an operator reads first. It asks
//! the running daemon (`GET /status` on the config's `[http] listen`); when
//! no daemon answers, it reads each source's checkpoint from the state store
//! instead and says so. Needs no vendor secrets.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::Utc;

use crate::config::Settings;
use crate::services::{state_backend, state_location};
use crate::status::Snapshot;
use crate::status_page::{ago, duration};

/// How long to wait for the daemon.
const ASK_TIMEOUT: Duration = Duration::from_secs(3);

/// The text `siphon status` prints.
pub async fn status(settings: &Settings) -> anyhow::Result<String> {
    let asked = match &settings.http {
        Some(http) => {
            let addr = http.listen.to_string().replacen("0.0.0.0:", "127.0.0.1:", 1).replacen("[::]:", "[::1]:", 1);
            let url = format!("http://{addr}/status");
            match ask(&url).await {
                Ok(snapshot) => return Ok(render(&snapshot, &url)),
                Err(e) => format!("no daemon answered at {url} ({e})"),
            }
        }
        None => "the config has no [http] listen, so there is no daemon to ask".to_owned(),
    };
    from_state(settings, &asked).await
}

async fn ask(url: &str) -> Result<Snapshot, String> {
    crate::gcs::install_crypto_provider();
    let client = reqwest::Client::builder().timeout(ASK_TIMEOUT).build().map_err(|e| e.to_string())?;
    let response = client.get(url).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    let body = response.text().await.map_err(|e| e.to_string())?;
    serde_json::from_str(&body).map_err(|e| format!("not a siphon status: {e}"))
}

/// The daemon's view: a header, one row per source, then each error.
pub fn render(s: &Snapshot, url: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "siphon {} at {url}, up {}; config {} loaded {}",
        s.version,
        duration(s.uptime_s),
        s.config.path.display(),
        ago(s.config.loaded_at, s.now)
    );
    let verdict = |ok: bool, yes: &str, no: &str, reasons: &[String]| {
        if ok { yes.to_owned() } else { format!("{no}: {}", reasons.join("; ")) }
    };
    let _ = writeln!(
        out,
        "{}; {}",
        verdict(s.health.ok, "healthy", "NOT HEALTHY", &s.health.reasons),
        verdict(s.ready.ok, "ready", "NOT READY", &s.ready.reasons)
    );
    if let Some(r) = &s.config.last_reload {
        let _ = writeln!(out, "last reload {} {}: {}", r.outcome, ago(r.at, s.now), r.detail);
    }
    out.push('\n');
    let mut rows = vec![
        ["SOURCE", "STATE", "COLLECTOR", "LAST RUN", "OUTCOME", "RECORDS", "LAST SUCCESS", "BEHIND", "NEXT RUN"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for v in &s.sources {
        let last = v.last_run.as_ref();
        rows.push(vec![
            v.name.clone(),
            v.state.as_str().to_owned(),
            format!("{}@{}", v.collector.name, v.collector.version),
            last.map_or("-".to_owned(), |r| format!("{} ({:.1} s)", ago(r.started, s.now), r.duration_s)),
            last.map_or("-".to_owned(), |r| r.outcome.clone()),
            last.map_or("-".to_owned(), |r| r.records.to_string()),
            v.last_success.map_or("never".to_owned(), |t| ago(t, s.now)),
            if v.behind_s > 0 { duration(v.behind_s) } else { "-".to_owned() },
            match (v.running_since, v.next_run) {
                (Some(since), _) => format!("running since {}", ago(since, s.now)),
                (None, Some(next)) => ago(next, s.now),
                (None, None) => "-".to_owned(),
            },
        ]);
    }
    table(&mut out, &rows);
    for v in &s.sources {
        if let Some(e) = &v.last_error {
            let _ = writeln!(out, "\n{}: {}", v.name, e);
        }
    }
    out
}

/// Without a daemon: what the state store says of each source.
async fn from_state(settings: &Settings, why: &str) -> anyhow::Result<String> {
    let store = state_backend(&settings.state, false).await?;
    let mut out = format!("{why}; from the state store ({}) instead:\n\n", store.describe());
    let mut rows =
        vec![["SOURCE", "CHECKPOINT", "UPDATED", "RUN IN PROGRESS", "COMMIT PENDING"].map(str::to_owned).to_vec()];
    let now = Utc::now();
    for name in settings.sources.keys() {
        let row = match store.load(name).await {
            Ok(None) => vec![name.clone(), "none".into(), "-".into(), "-".into(), "-".into()],
            Ok(Some(stored)) => {
                let st = &stored.state;
                vec![
                    name.clone(),
                    if st.cursor.is_some() { format!("generation {}", stored.generation) } else { "no cursor".into() },
                    st.updated_at.map_or("-".to_owned(), |t| ago(t, now)),
                    match &st.lease {
                        Some(l) if l.until > now => format!("run {} on {} (pid {})", l.run_id, l.host, l.pid),
                        _ => "-".to_owned(),
                    },
                    st.pending.as_ref().map_or("-".to_owned(), |p| format!("{} records", p.records)),
                ]
            }
            Err(e) => vec![name.clone(), format!("unreadable: {e}"), "-".into(), "-".into(), "-".into()],
        };
        rows.push(row);
    }
    table(&mut out, &rows);
    out.push_str("\n(`siphon state show --config ... SOURCE` prints a checkpoint in full: ");
    let first = settings.sources.keys().next().map(|n| state_location(&settings.state, n)).unwrap_or_default();
    let _ = writeln!(out, "e.g. {first})");
    Ok(out)
}

/// Left-aligned columns two spaces apart.
fn table(out: &mut String, rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r.get(c).map_or(0, |v| v.chars().count())).max().unwrap_or(0))
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, value) in row.iter().enumerate() {
            let _ = write!(line, "{value:<width$}  ", width = widths[c]);
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}
