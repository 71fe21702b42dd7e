//! What a bench process knows about itself (from /proc, Linux), how it hands
//! results to the parent (one `RESULT key=value …` line on stdout), and the
//! small statistics the table is made of.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};

/// Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux).
const TICKS_PER_S: f64 = 100.0;

/// CPU seconds (user + system, all threads, living and ended) used by this process so far.
pub fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return f64::NAN };
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after `) `.
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(f64::NAN);
    (ticks(11) + ticks(12)) / TICKS_PER_S
}

/// A `Vm*:` line of /proc/self/status in MiB (e.g. `VmHWM`, peak RSS; `VmRSS`, current).
pub fn status_mib(key: &str) -> f64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else { return f64::NAN };
    status
        .lines()
        .find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// Prints the line the parent reads.
pub fn report(pairs: &[(&str, String)]) {
    let text: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("RESULT {}", text.join(" "));
}

/// The `RESULT` of a child run of this bench binary with `args`.
pub fn child(args: &[&str]) -> anyhow::Result<BTreeMap<String, String>> {
    let exe = std::env::current_exe()?;
    let out = Command::new(exe).args(args).stdin(Stdio::null()).stderr(Stdio::inherit()).output()?;
    anyhow::ensure!(out.status.success(), "bench child {args:?} failed ({})", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .ok_or_else(|| anyhow::anyhow!("bench child {args:?} printed no RESULT line:\n{text}"))?;
    Ok(line.split_whitespace().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect())
}

/// A number from a child's `RESULT`.
pub fn num(result: &BTreeMap<String, String>, key: &str) -> anyhow::Result<f64> {
    result
        .get(key)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("bench child result has no number `{key}`: {result:?}"))
}

/// A long-lived child (the mock vendor): started with `args`, it prints one
/// `READY <text>` line; it exits when its stdin closes, i.e. when this
/// handle is dropped or the bench dies.
pub struct Daemon {
    child: std::process::Child,
    /// What the child printed after `READY`.
    pub ready: String,
}

impl Daemon {
    /// Starts the child and waits for its `READY` line.
    pub fn start(args: &[&str]) -> anyhow::Result<Daemon> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        let ready = line
            .trim()
            .strip_prefix("READY ")
            .ok_or_else(|| anyhow::anyhow!("bench child {args:?} did not start: {line:?}"))?
            .to_owned();
        Ok(Daemon { child, ready })
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// Blocks until stdin is closed (the parent's [`Daemon`] dropped or the parent died).
pub fn wait_for_stdin_eof() {
    let mut sink = Vec::new();
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
}

/// Median of `xs` (NaN when empty).
pub fn median(xs: &[f64]) -> f64 {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// `min–max` of `xs`, for the noise column.
pub fn spread(xs: &[f64], decimals: usize) -> String {
    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{lo:.decimals$}–{hi:.decimals$}")
}

/// Writes and deletes a scratch file of `bytes` under `dir`, untimed.
///
/// This machine's hypervisor takes back guest memory that stays free for a
/// while (virtio-balloon free page reporting); the next process to write
/// into it pays the host's page faults inside the kernel's copy to the page
/// cache (up to 4x its cost, measured). Runs that start right after this
/// write page cache into memory that was just in use, as runs that follow
/// each other do.
pub fn warm_page_pool(dir: &Path, bytes: u64) -> anyhow::Result<()> {
    use std::io::Write;
    let path = dir.join("warm-up.tmp");
    let chunk = vec![0x5au8; 1 << 20];
    let mut f = std::fs::File::create(&path)?;
    for _ in 0..bytes.div_ceil(chunk.len() as u64) {
        f.write_all(&chunk)?;
    }
    f.sync_all()?;
    drop(f);
    std::fs::remove_file(&path)?;
    Ok(())
}

/// Flushes the page cache's dirty pages and lets the kernel's writeback
/// threads finish, untimed: a phase that follows gigabytes of writes should
/// not run beside their writeback.
pub fn settle() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    #[allow(unsafe_code)]
    unsafe {
        libc::sync();
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
}

/// An order-sensitive hash of the NDJSON content (gzip decoded) of every
/// object under `dir`, objects in name order, and the number of lines: two
/// pipelines that delivered the same bytes in the same order agree.
pub fn content_hash(dir: &Path) -> anyhow::Result<(u64, u64)> {
    let mut files = Vec::new();
    collect_files(dir, &mut files)?;
    files.sort();
    let (mut hash, mut lines) = (0xcbf2_9ce4_8422_2325u64, 0u64);
    for f in files {
        let raw = std::fs::read(&f)?;
        let body = if f.extension().is_some_and(|e| e == "gz") {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&raw[..]), &mut out)?;
            out
        } else {
            raw
        };
        for b in &body {
            hash = (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        lines += body.iter().filter(|b| **b == b'\n').count() as u64;
    }
    Ok((hash, lines))
}

fn collect_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(&path, out)?;
        } else if path.file_name().is_some_and(|n| !n.to_string_lossy().starts_with('.')) {
            out.push(path);
        }
    }
    Ok(())
}
