//! Run leases: at most one live run per source, across processes and hosts.
//!
//! A run records a lease in the source's state with its first write (when
//! it opens the state, before the collector runs): which run holds the
//! source, from which host and process, and until when. Another run that
//! opens the state while the lease is live stops as *busy* before the
//! collector sends a single request. This matters for consume-once vendor
//! cursors (Netskope's iterator): two live runs that both talk to the
//! vendor can lose a page even though every state write is conditional —
//! e.g. while a Kubernetes RollingUpdate runs the old and the new pod side
//! by side.
//!
//! `until` is the run's start plus its `run_timeout` plus a margin. The host
//! ends every run at `run_timeout` (epoch deadline, Store dropped, requests
//! aborted), so once a lease has expired no request of its run can still
//! reach the vendor. A lease is void before that when its holder is known to
//! be gone: its process on this host no longer exists (a crash or a kill),
//! or it is this very process (a daemon whose earlier run could not release
//! it; runs of one source never overlap within a process). A run releases
//! its lease when it ends.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// Added to `run_timeout`: requests sent just before the deadline may
/// still be arriving at the vendor.
pub const MARGIN: TimeDelta = TimeDelta::seconds(60);

/// Who holds a source, and until when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lease {
    /// The holding run's id (as in its logs).
    pub run_id: String,
    /// The holder's host name.
    pub host: String,
    /// The holder's process id on that host.
    pub pid: u32,
    /// When the lease ends by itself.
    pub until: DateTime<Utc>,
}

impl Lease {
    /// A lease for a run of this process that started at `started` and is
    /// ended by the host after `run_timeout`.
    pub fn for_run(run_id: &str, started: DateTime<Utc>, run_timeout: std::time::Duration) -> Lease {
        let timeout = TimeDelta::from_std(run_timeout).unwrap_or(TimeDelta::MAX);
        let until = started.checked_add_signed(timeout).and_then(|t| t.checked_add_signed(MARGIN));
        Lease { run_id: run_id.to_owned(), host: host_name(), pid: std::process::id(), until: until.unwrap_or(started) }
    }

    /// Whether this lease, found in the state, still keeps the run `ours`
    /// out at `now`.
    pub fn excludes(&self, ours: &Lease, now: DateTime<Utc>) -> bool {
        if self.run_id == ours.run_id || self.until <= now {
            return false;
        }
        if self.host != ours.host {
            return true;
        }
        self.pid != ours.pid && process_exists(self.pid)
    }
}

/// This machine's host name (in Kubernetes, the pod name).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned())
}

/// Whether a process with this id exists on this host. Where that cannot be
/// told (no `/proc`), it is assumed to exist: the lease then simply expires.
fn process_exists(pid: u32) -> bool {
    let proc = std::path::Path::new("/proc");
    !proc.is_dir() || proc.join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(run_id: &str, host: &str, pid: u32, until: DateTime<Utc>) -> Lease {
        Lease { run_id: run_id.into(), host: host.into(), pid, until }
    }

    #[test]
    fn a_live_lease_of_another_run_excludes_until_it_expires_or_its_holder_is_gone() {
        let now = Utc::now();
        let later = now + TimeDelta::minutes(5);
        let ours = Lease::for_run("ours", now, std::time::Duration::from_secs(600));
        assert_eq!(ours.until, now + TimeDelta::seconds(600) + MARGIN);
        assert_eq!(ours.pid, std::process::id());

        // Another host: only expiry ends it.
        assert!(lease("a", "elsewhere", 1, later).excludes(&ours, now));
        assert!(!lease("a", "elsewhere", 1, now).excludes(&ours, now), "expired");
        // This host: a live other process holds it; a gone one does not.
        let mut child = std::process::Command::new("sleep").arg("30").spawn().expect("sleep");
        let live = lease("b", &ours.host, child.id(), later);
        assert!(live.excludes(&ours, now));
        child.kill().expect("kill");
        child.wait().expect("reaped");
        assert!(!live.excludes(&ours, now), "its process is gone");
        // This process (an earlier run not released) and this run: never.
        assert!(!lease("c", &ours.host, ours.pid, later).excludes(&ours, now));
        assert!(!lease("ours", "elsewhere", 1, later).excludes(&ours, now));
    }
}
