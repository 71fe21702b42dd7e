//! `siphon state show SOURCE` and `siphon state reset SOURCE [--to CURSOR]`:
//! what an operator needs to look at or move a source's checkpoint, on any
//! state backend. A reset is a conditional write like every other state
//! write, so it cannot silently clobber a daemon that commits meanwhile, and
//! it refuses to drop a commit in progress unless forced.

use std::fmt::Write as _;

use anyhow::{Context, bail};
use chrono::Utc;

use crate::config::Settings;
use crate::services::{state_backend, state_location};
use crate::state::{Generation, STATE_VERSION, SourceState, StateStore, Stored};

/// The text `siphon state show` prints.
pub async fn show(settings: &Settings, source: &str) -> anyhow::Result<String> {
    configured(settings, source)?;
    // Read-only: no write probe, so a read-only credential can look.
    let store = state_backend(&settings.state, false).await?;
    let stored = store.load(source).await?;
    Ok(render(source, &state_location(&settings.state, source), stored.as_ref()))
}

/// Reset `source`'s cursor to `to` (none: start over from the collector's
/// initial position). Returns what to print.
pub async fn reset(settings: &Settings, source: &str, to: Option<String>, force: bool) -> anyhow::Result<String> {
    configured(settings, source)?;
    let store = state_backend(&settings.state, false).await?;
    let location = state_location(&settings.state, source);
    let outcome = reset_in(store.as_ref(), source, to, force).await.with_context(|| format!("state {location}"))?;
    Ok(match outcome {
        Reset::NothingToDo => {
            format!("source `{source}` has no state at {location}; nothing to reset\n")
        }
        // Cursors are collector text: escaped for the terminal.
        Reset::Written { before, generation, cursor } => format!(
            "reset source `{source}` at {location}\n  cursor:     {} (was {})\n  generation: {generation} (was {})\n",
            crate::telemetry::escape(cursor.as_deref().unwrap_or("none")),
            crate::telemetry::escape(before.as_ref().and_then(|b| b.state.cursor.as_deref()).unwrap_or("none")),
            before.as_ref().map_or("none".to_owned(), |b| b.generation.to_string()),
        ),
    })
}

/// What [`reset_in`] did.
#[derive(Debug)]
pub enum Reset {
    /// No state and no cursor asked for: nothing was written.
    NothingToDo,
    /// A new state was written.
    Written {
        /// The state it replaced.
        before: Option<Stored>,
        /// The new generation.
        generation: Generation,
        /// The new cursor.
        cursor: Option<String>,
    },
}

/// Replace the state of `source` by one holding only `to`, conditional on
/// the generation just read. A pending commit is refused unless `force`.
pub async fn reset_in(store: &dyn StateStore, source: &str, to: Option<String>, force: bool) -> anyhow::Result<Reset> {
    let before = store.load(source).await?;
    if before.is_none() && to.is_none() {
        return Ok(Reset::NothingToDo);
    }
    if let Some(pending) = before.as_ref().and_then(|b| b.state.pending.as_ref())
        && !force
    {
        bail!(
            "source `{source}` has a commit in progress ({} records in {} objects); run the source once \
             (`siphon collect`) to finish or undo it, or pass --force to drop it (objects it already wrote \
             then stay in the sink and their records may be delivered again)",
            pending.records,
            pending.objects.len()
        );
    }
    let state = SourceState {
        version: STATE_VERSION,
        cursor: to.clone(),
        pending: None,
        updated_at: Some(Utc::now()),
        lease: None,
    };
    let generation = store.store(source, &state, before.as_ref().map(|b| b.generation)).await?;
    Ok(Reset::Written { before, generation, cursor: to })
}

fn configured(settings: &Settings, source: &str) -> anyhow::Result<()> {
    if settings.sources.contains_key(source) {
        return Ok(());
    }
    let known: Vec<&str> = settings.sources.keys().map(String::as_str).collect();
    bail!("no source named `{source}` in {} (configured: {})", settings.path.display(), known.join(", "))
}

/// Human-readable state: location, generation, cursor (pretty-printed when
/// it is JSON) and any pending commit.
pub fn render(source: &str, location: &str, stored: Option<&Stored>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "source:     {source}");
    let _ = writeln!(out, "location:   {location}");
    let Some(stored) = stored else {
        let _ = writeln!(out, "state:      none (no commit yet; the first run starts where the collector starts)");
        return out;
    };
    let st = &stored.state;
    let _ = writeln!(out, "generation: {}", stored.generation);
    let updated = st.updated_at.map_or("unknown".to_owned(), |t| t.to_rfc3339());
    let _ = writeln!(out, "updated:    {updated}");
    let _ = writeln!(out, "cursor:     {}", cursor_text(st.cursor.as_deref()));
    if let Some(l) = &st.lease {
        let until = l.until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let _ = writeln!(out, "lease:      run {} on host {} (pid {}) until {until}", l.run_id, l.host, l.pid);
    }
    match &st.pending {
        None => {
            let _ = writeln!(out, "pending:    none");
        }
        Some(p) => {
            let _ = writeln!(
                out,
                "pending:    a commit of {} records in {} objects (the next run keeps it if every object exists, \
                 otherwise undoes it)",
                p.records,
                p.objects.len()
            );
            let _ = writeln!(out, "  to cursor: {}", cursor_text(p.cursor.as_deref()));
            for o in &p.objects {
                let _ = writeln!(out, "  object:    {o}");
            }
        }
    }
    out
}

/// A JSON object or array cursor indented under its label; anything else as
/// is. The cursor is the collector's text: control characters are escaped
/// so it cannot forge output lines or drive the terminal.
fn cursor_text(cursor: Option<&str>) -> String {
    use crate::telemetry::escape;
    let Some(c) = cursor else {
        return "none".to_owned();
    };
    match serde_json::from_str::<serde_json::Value>(c) {
        Ok(v @ (serde_json::Value::Object(_) | serde_json::Value::Array(_))) => serde_json::to_string_pretty(&v)
            .map(|p| format!("\n{}", p.lines().map(|l| format!("  {}", escape(l))).collect::<Vec<_>>().join("\n")))
            .unwrap_or_else(|_| escape(c).into_owned()),
        _ => escape(c).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::PendingCommit;
    use crate::state::memory::MemoryStateStore;

    #[test]
    fn renders_json_cursors_pretty_and_pending_commits() {
        let stored = Stored {
            state: SourceState {
                version: 1,
                cursor: Some(r#"{"dlp":"next"}"#.to_owned()),
                pending: Some(PendingCommit {
                    objects: vec!["a/b.ndjson".into()],
                    cursor: Some("c2".into()),
                    records: 3,
                }),
                updated_at: None,
                lease: Some(crate::lease::Lease {
                    run_id: "r1".into(),
                    host: "h".into(),
                    pid: 7,
                    until: "2026-11-23T10:00:00Z".parse().unwrap(),
                }),
            },
            generation: 42,
        };
        let text = render("ns", "gs://b/siphon/state/ns.json", Some(&stored));
        assert!(text.contains("location:   gs://b/siphon/state/ns.json"), "{text}");
        assert!(text.contains("generation: 42"), "{text}");
        assert!(text.contains("cursor:     \n  {\n    \"dlp\": \"next\"\n  }"), "{text}");
        assert!(text.contains("a commit of 3 records in 1 objects"), "{text}");
        assert!(text.contains("object:    a/b.ndjson"), "{text}");
        assert!(text.contains("lease:      run r1 on host h (pid 7) until 2026-11-23T10:00:00Z"), "{text}");
        assert!(render("ns", "x", None).contains("state:      none"));
        assert_eq!(cursor_text(Some("plain-token")), "plain-token");
        assert_eq!(cursor_text(Some("a\nsource: forged\x1b[2J")), "a\\nsource: forged\\u{1b}[2J");
        assert_eq!(cursor_text(Some(r#"{"k":"\u202eevil"}"#)), "\n  {\n    \"k\": \"\\u{202e}evil\"\n  }");
    }

    #[tokio::test]
    async fn reset_is_conditional_and_refuses_a_pending_commit_unless_forced() {
        let store = MemoryStateStore::default();
        assert!(matches!(reset_in(&store, "s", None, false).await.unwrap(), Reset::NothingToDo));
        let pending = SourceState {
            version: 1,
            cursor: Some("c1".into()),
            pending: Some(PendingCommit { objects: vec!["o".into()], cursor: Some("c2".into()), records: 1 }),
            updated_at: None,
            lease: None,
        };
        store.store("s", &pending, None).await.unwrap();
        let e = reset_in(&store, "s", Some("c0".into()), false).await.unwrap_err().to_string();
        assert!(e.contains("commit in progress") && e.contains("--force"), "{e}");
        let Reset::Written { before, generation, cursor } =
            reset_in(&store, "s", Some("c0".into()), true).await.unwrap()
        else {
            panic!("nothing written")
        };
        assert_eq!(before.unwrap().generation, 1);
        assert_eq!((generation, cursor.as_deref()), (2, Some("c0")));
        let now = store.load("s").await.unwrap().unwrap();
        assert_eq!(now.state.cursor.as_deref(), Some("c0"));
        assert!(now.state.pending.is_none());
    }
}
