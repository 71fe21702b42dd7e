//! The status page (`GET /`): one self-contained HTML document rendered
//! from a [`Snapshot`] — no script, no external asset, no build step. It
//! reloads itself every [`REFRESH_S`] seconds, puts the sources that need a
//! look first, and lays each source out as a card that reads on a phone as
//! well as on a wide screen. Every piece of text is HTML-escaped.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::status::{Snapshot, SourceState, SourceView};

/// Seconds between reloads of the page.
pub const REFRESH_S: u32 = 10;

const STYLE: &str = r#"
:root { color-scheme: light dark; --fg: #1d232b; --muted: #5d6875; --bg: #f5f6f8; --card: #fff; --line: #dde1e6;
  --ok: #1f7a3d; --failing: #b42318; --stale: #a15c00; --busy: #5b4bb7; --running: #175cd3; --off: #6b7280; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e8eb; --muted: #9aa4b1; --bg: #12161b; --card: #1b2128;
  --line: #2d3540; --ok: #4ac26b; --failing: #ff7b72; --stale: #e3b341; --busy: #a5a0ff; --running: #79b8ff; } }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
  background: var(--bg); }
header, main, footer { max-width: 72rem; margin: 0 auto; padding: 0 1rem; }
header { padding-top: 1rem; }
h1 { font-size: 1.4rem; margin: 0 0 .25rem; }
h2 { font-size: 1.1rem; margin: 0; overflow-wrap: anywhere; }
.summary { font-size: 1.05rem; margin: .25rem 0 .75rem; }
.alert { border-left: 4px solid var(--failing); background: var(--card); padding: .5rem .75rem; margin: .5rem 0;
  overflow-wrap: anywhere; }
.daemon { display: flex; flex-wrap: wrap; gap: .25rem 1.5rem; color: var(--muted); margin: 0 0 1rem; padding: 0; }
.daemon div { display: flex; gap: .35rem; }
.daemon dt { font-weight: 600; }
.daemon dd { margin: 0; overflow-wrap: anywhere; }
.sources { display: grid; gap: .75rem; grid-template-columns: repeat(auto-fill, minmax(min(100%, 24rem), 1fr));
  margin-bottom: 1rem; }
.source { background: var(--card); border: 1px solid var(--line); border-left: 6px solid var(--state);
  border-radius: 6px; padding: .75rem 1rem; }
.source header { display: flex; justify-content: space-between; align-items: baseline; gap: .5rem; padding: 0;
  margin: 0 0 .5rem; max-width: none; }
.state { font-weight: 700; text-transform: uppercase; letter-spacing: .03em; font-size: .85rem; color: var(--state); }
.source dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem .75rem; margin: 0; }
.source dt { color: var(--muted); }
.source dd { margin: 0; overflow-wrap: anywhere; }
.error { color: var(--failing); white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: .85rem; }
.muted { color: var(--muted); }
.state-ok { --state: var(--ok); } .state-failing { --state: var(--failing); } .state-stale { --state: var(--stale); }
.state-busy { --state: var(--busy); } .state-running { --state: var(--running); }
.state-disabled, .state-waiting { --state: var(--off); }
footer { color: var(--muted); font-size: .85rem; padding-bottom: 1rem; }
"#;

/// The page for `s`.
pub fn render(s: &Snapshot) -> String {
    let mut sources: Vec<&SourceView> = s.sources.iter().collect();
    sources.sort_by_key(|v| (severity(v.state), v.name.clone()));
    let counts = counts(&s.sources);
    let mut out = String::with_capacity(8 * 1024);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_S}\">\n<title>siphon: {}</title>\n<style>{STYLE}</style>\n\
         </head>\n<body>\n<header>\n<h1>siphon</h1>\n<p class=\"summary\">{}</p>\n",
        esc(&counts),
        esc(&format!("{} sources: {counts}", s.sources.len()))
    );
    if !s.health.ok || !s.ready.ok {
        let mut reasons = s.health.reasons.clone();
        reasons.extend(s.ready.reasons.iter().filter(|r| !s.health.reasons.contains(r)).cloned());
        let _ = writeln!(out, "<p class=\"alert\">Not ready: {}</p>", esc(&reasons.join("; ")));
    }
    if let Some(r) = &s.config.last_reload
        && r.outcome == "refused"
    {
        let _ = writeln!(
            out,
            "<p class=\"alert\">Reload refused {}; still running the configuration loaded {}:<br>\
             <span class=\"error\">{}</span></p>",
            esc(&when(r.at, s.now)),
            esc(&when(s.config.loaded_at, s.now)),
            esc(&r.detail)
        );
    }
    out.push_str("<dl class=\"daemon\">\n");
    let daemon = [
        ("Version", s.version.clone()),
        ("Up", duration(s.uptime_s)),
        ("Config", s.config.path.display().to_string()),
        ("Loaded", when(s.config.loaded_at, s.now)),
        (
            "Sink and state",
            match &s.backends {
                None => "not probed yet".to_owned(),
                Some(p) if p.ok => format!("reachable (probed {})", ago(p.at, s.now)),
                Some(p) => format!("unreachable (probed {})", ago(p.at, s.now)),
            },
        ),
    ];
    for (label, value) in daemon {
        let _ = writeln!(out, "<div><dt>{label}</dt><dd>{}</dd></div>", esc(&value));
    }
    out.push_str("</dl>\n</header>\n<main>\n<div class=\"sources\">\n");
    for v in sources {
        source_card(&mut out, v, s.now);
    }
    if s.sources.is_empty() {
        out.push_str("<p class=\"muted\">No sources are configured.</p>\n");
    }
    let _ = write!(
        out,
        "</div>\n</main>\n<footer>As of {} · refreshes every {REFRESH_S} s · \
         JSON at <a href=\"/status\">/status</a> · <a href=\"/metrics\">/metrics</a></footer>\n</body>\n</html>\n",
        esc(&stamp(s.now))
    );
    out
}

fn source_card(out: &mut String, v: &SourceView, now: DateTime<Utc>) {
    let state = v.state.as_str();
    let _ = write!(
        out,
        "<section class=\"source state-{state}\" id=\"source-{name}\">\n<header><h2>{name}</h2>\
         <span class=\"state\">{state}</span></header>\n<dl>\n",
        name = esc(&v.name)
    );
    let mut row = |label: &str, html: String| {
        let _ = writeln!(out, "<dt>{label}</dt><dd>{html}</dd>");
    };
    row(
        "Collector",
        format!(
            "{} {} <span class=\"muted\">({}, sha256 {})</span>",
            esc(&v.collector.name),
            esc(&v.collector.version),
            esc(&file_name(&v.collector.path)),
            esc(v.collector.sha256.get(..12).unwrap_or(&v.collector.sha256))
        ),
    );
    let next = match (v.running_since, v.next_run) {
        (Some(since), _) => format!("running since {}", ago(since, now)),
        (None, Some(next)) => format!("next run {}", when(next, now)),
        (None, None) if !v.enabled => "disabled".to_owned(),
        (None, None) => "no run scheduled".to_owned(),
    };
    row("Schedule", format!("<code>{}</code> · {}", esc(&v.schedule), esc(&next)));
    match &v.last_run {
        Some(r) => {
            let outcome = if r.outcome == "ok" {
                "ok".to_owned()
            } else if r.outcome == "busy" {
                "skipped: busy".to_owned()
            } else {
                format!("failed: {}", r.outcome)
            };
            row(
                "Last run",
                esc(&format!(
                    "{} · {:.1} s · {outcome} · {} records · {} objects",
                    when(r.started, now),
                    r.duration_s,
                    r.records,
                    r.objects
                )),
            );
        }
        None => row("Last run", "none yet".to_owned()),
    }
    let behind =
        if v.behind_s > 0 { format!(" · behind schedule by {}", duration(v.behind_s)) } else { String::new() };
    let success = match v.last_success {
        Some(t) => format!("{}{behind}", when(t, now)),
        None => format!("never{behind}"),
    };
    row("Last success", esc(&success));
    if let Some(e) = &v.last_error {
        let failures =
            if v.failures_in_a_row > 1 { format!(" ({} runs in a row)", v.failures_in_a_row) } else { String::new() };
        row(&format!("Last error{failures}"), format!("<span class=\"error\">{}</span>", esc(e)));
    }
    if let Some(n) = &v.note {
        row("Note", esc(n));
    }
    out.push_str("</dl>\n</section>\n");
}

/// Problems first.
fn severity(state: SourceState) -> u8 {
    match state {
        SourceState::Failing => 0,
        SourceState::Stale => 1,
        SourceState::Busy => 2,
        SourceState::Running => 3,
        SourceState::Waiting => 4,
        SourceState::Ok => 5,
        SourceState::Disabled => 6,
    }
}

/// `2 failing, 1 ok` (states present, problems first).
fn counts(sources: &[SourceView]) -> String {
    let mut states: Vec<SourceState> = sources.iter().map(|s| s.state).collect();
    states.sort_by_key(|s| severity(*s));
    states.dedup();
    if states.is_empty() {
        return "none configured".to_owned();
    }
    states
        .iter()
        .map(|st| format!("{} {}", sources.iter().filter(|s| s.state == *st).count(), st.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// `2026-05-01 12:00:03 UTC (3 min ago)` or `(in 40 s)`.
pub fn when(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!("{} ({})", stamp(t), ago(t, now))
}

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `3 min ago`, `in 40 s`, `just now`.
pub fn ago(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - t).num_seconds();
    match secs {
        0 => "just now".to_owned(),
        s if s > 0 => format!("{} ago", duration(s as u64)),
        s => format!("in {}", duration(s.unsigned_abs())),
    }
}

/// `45 s`, `3 min`, `2 h 5 min`, `3 d 4 h`.
pub fn duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3_600 => format!("{} min", s / 60),
        s if s < 86_400 => match (s / 3_600, s % 3_600 / 60) {
            (h, 0) => format!("{h} h"),
            (h, m) => format!("{h} h {m} min"),
        },
        s => match (s / 86_400, s % 86_400 / 3_600) {
            (d, 0) => format!("{d} d"),
            (d, h) => format!("{d} d {h} h"),
        },
    }
}

/// `text` safe inside HTML text and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::status::{Check, CollectorView, ConfigView, LastRunView};

    fn source(name: &str, state: SourceState, error: Option<&str>) -> SourceView {
        SourceView {
            name: name.into(),
            state,
            collector: CollectorView {
                name: "netskope-alerts".into(),
                version: "0.1.0".into(),
                path: "/opt/siphon/collectors/netskope_alerts.wasm".into(),
                sha256: "0123456789abcdef".into(),
            },
            enabled: true,
            schedule: "*/5 * * * *".into(),
            running_since: None,
            last_run: Some(LastRunView {
                started: "2026-05-01T12:00:00Z".parse().unwrap(),
                duration_s: 1.25,
                outcome: if error.is_some() { "auth".into() } else { "ok".into() },
                records: 42,
                objects: 1,
                collector_version: "0.1.0".into(),
            }),
            last_success: None,
            behind_s: 0,
            stale_after_s: 300,
            next_run: Some("2026-05-01T12:05:00Z".parse().unwrap()),
            last_error: error.map(str::to_owned),
            note: None,
            failures_in_a_row: u32::from(error.is_some()),
        }
    }

    #[test]
    fn the_page_puts_problems_first_and_escapes_everything() {
        let now: DateTime<Utc> = "2026-05-01T12:03:00Z".parse().unwrap();
        let snapshot = Snapshot {
            version: "0.1.0".into(),
            started_at: now,
            uptime_s: 3_700,
            now,
            config: ConfigView {
                path: PathBuf::from("/etc/siphon/siphon.toml"),
                loaded_at: now,
                reloading: false,
                last_reload: None,
            },
            health: Check { ok: true, reasons: vec![] },
            ready: Check { ok: true, reasons: vec![] },
            backends: None,
            sources: vec![
                source("a-ok", SourceState::Ok, None),
                source("z-bad", SourceState::Failing, Some("auth error: HTTP 401 <script>alert(1)</script>")),
            ],
        };
        let page = render(&snapshot);
        assert!(page.find("z-bad").unwrap() < page.find("a-ok").unwrap(), "failing first");
        assert!(page.contains("<title>siphon: 1 failing, 1 ok</title>"), "{page}");
        assert!(page.contains("HTTP 401 &lt;script&gt;alert(1)&lt;/script&gt;"), "{page}");
        assert!(!page.contains("<script"), "no script, not even an injected one");
        assert!(page.contains("failed: auth · 42 records · 1 objects"), "{page}");
        assert!(page.contains("next run 2026-05-01 12:05:00 UTC (in 2 min)"), "{page}");
        assert!(page.contains("1 h 1 min"), "uptime: {page}");
        assert!(!page.contains("http://") && !page.contains("https://"), "no external assets");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(45), "45 s");
        assert_eq!(duration(180), "3 min");
        assert_eq!(duration(7_500), "2 h 5 min");
        assert_eq!(duration(90_000), "1 d 1 h");
        let now: DateTime<Utc> = "2026-05-01T12:00:00Z".parse().unwrap();
        assert_eq!(ago(now, now), "just now");
        assert_eq!(ago(now - chrono::TimeDelta::seconds(90), now), "1 min ago");
        assert_eq!(ago(now + chrono::TimeDelta::seconds(40), now), "in 40 s");
    }
}
