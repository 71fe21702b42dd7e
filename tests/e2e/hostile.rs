//! Hostile collectors against a real `siphon run` daemon (issue 12): the
//! `hostile` guest, and a hand-written component with several memories and
//! tables. For each attack the run fails (or is clipped) with a message
//! naming the limit, the daemon's peak RSS (the child's `VmHWM`) stays within
//! the hostile source's memory budget plus 64 MiB, and a healthy source beside
//! it goes on delivering. Also: secrets stay out of every log line (at debug
//! level), the sink and the state; the sandbox has no filesystem, environment
//! or sockets; files a run creates are private.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use siphon::config::Settings;

use crate::common::{Install, guest, siphon_bin};

/// A secret with characters that percent-encoding changes.
const SECRET: &str = "S3cr3t-Tok3n/with+special=chars";
/// Slack over the hostile source's memory budget (the acceptance bound).
const SLACK: u64 = 64 << 20;

/// Limits of every hostile source: small, so that exceeding the budget
/// would show in the daemon's RSS.
const LIMITS: &str = r#"memory = "32MiB", max_pending_size = "16MiB", max_response_buffer = "8MiB", max_response_size = "4MiB", run_timeout = "60s""#;

/// The healthy neighbour: 5 records every 2 s.
fn healthy() -> String {
    format!(
        r#"[sources.healthy]
collector = "{}"
schedule = "*/2 * * * * *"
allowed_hosts = ["127.0.0.1:9"]
settings = {{ mode = "emit", count = 5 }}
"#,
        guest("fault").display()
    )
}

fn hostile(name: &str, settings: &str, extra: &str) -> String {
    hostile_with(name, &guest("hostile"), settings, LIMITS, extra)
}

fn hostile_with(name: &str, wasm: &Path, settings: &str, limits: &str, extra: &str) -> String {
    format!(
        r#"[sources.{name}]
collector = "{}"
schedule = "0 0 1 1 *"
allowed_hosts = ["127.0.0.1:9"]
allow_http = true
settings = {{ {settings} }}
limits = {{ {limits} }}
{extra}
"#,
        wasm.display()
    )
}

/// A `siphon run` child; killed (and reaped) on drop.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(install: &Install, config: &Path, rust_log: &str, format: &str) -> Daemon {
        let log = install.path("daemon.log");
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(siphon_bin())
            .args(["run", "--config", config.to_str().expect("utf-8 path"), "--log-format", format])
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .spawn()
            .expect("siphon run starts");
        Daemon { child, log }
    }

    fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Peak resident set of the daemon so far, in bytes.
    fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("proc status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM");
        kib * 1024
    }

    fn still_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Wait up to `secs` for `done`, polling; panics with `what` and the log.
fn wait_for(daemon: &mut Daemon, secs: u64, what: &str, mut done: impl FnMut(&str) -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        let log = daemon.log();
        if done(&log) {
            return;
        }
        assert!(daemon.still_running(), "the daemon died while waiting for {what}:\n{}", tail(&log));
        assert!(Instant::now() < until, "{what} did not happen within {secs} s:\n{}", tail(&log));
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].iter().map(|l| &l[..l.len().min(400)]).collect::<Vec<_>>().join("\n")
}

/// Lines of the run-end events (JSON log) of `source`.
fn run_ends<'a>(log: &'a str, source: &str) -> Vec<&'a str> {
    let tag = format!(r#""source":"{source}""#);
    log.lines().filter(|l| (l.contains("Run failed") || l.contains("Run succeeded")) && l.contains(&tag)).collect()
}

/// What an attack did to the daemon.
struct Outcome {
    log: String,
    peak_rss: u64,
    budget: u64,
}

/// Run the daemon on `sources` (plus the healthy one) until every source in
/// `hostile` has finished a run and the healthy one has finished a run after
/// that; then measure its peak RSS and stop it.
fn attack(install: &Install, sources: &str, hostile: &[&str], rust_log: &str) -> Outcome {
    let (out, check) = attack_checked(install, sources, hostile, rust_log);
    assert!(check.is_empty(), "siphon check failed:\n{check}");
    out
}

/// [`attack`], returning also what `siphon check` reported if it failed
/// (empty if it passed).
fn attack_checked(install: &Install, sources: &str, hostile: &[&str], rust_log: &str) -> (Outcome, String) {
    let config = install.config(&format!("{sources}\n{}", healthy()));
    let settings = Settings::load(&config).unwrap_or_else(|e| panic!("config: {e}"));
    let budget = hostile.iter().map(|s| settings.sources[*s].limits.memory_budget_total()).max().unwrap_or(0);
    // Compile (and cache) the components first: the measured daemon loads
    // them from the cache, as a daemon restarting would.
    let check = Command::new(siphon_bin()).args(["check", "--config", config.to_str().expect("utf-8")]).output();
    let check = check.expect("siphon check runs");
    let check =
        if check.status.success() { String::new() } else { String::from_utf8_lossy(&check.stderr).into_owned() };
    let mut daemon = Daemon::start(install, &config, rust_log, "json");
    wait_for(&mut daemon, 120, "the hostile runs", |log| hostile.iter().all(|s| !run_ends(log, s).is_empty()));
    let healthy_before = run_ends(&daemon.log(), "healthy").len();
    wait_for(&mut daemon, 60, "a healthy run after the attack", |log| run_ends(log, "healthy").len() > healthy_before);
    let peak_rss = daemon.peak_rss();
    let log = daemon.log();
    for line in run_ends(&log, "healthy") {
        assert!(line.contains("Run succeeded"), "the healthy source failed: {line}");
    }
    drop(daemon);
    (Outcome { log, peak_rss, budget }, check)
}

impl Outcome {
    /// The run-end line of `source`, which must have failed.
    fn failure(&self, source: &str) -> String {
        let ends = run_ends(&self.log, source);
        let line = ends.first().unwrap_or_else(|| panic!("no run of {source}"));
        assert!(line.contains("Run failed"), "{source} did not fail: {line}");
        (*line).to_owned()
    }

    fn assert_rss_within_budget(&self) {
        assert!(
            self.peak_rss <= self.budget + SLACK,
            "peak RSS {} MiB exceeds the run's memory budget {} MiB + 64 MiB",
            self.peak_rss >> 20,
            self.budget >> 20
        );
        eprintln!("peak RSS {} MiB, budget {} MiB", self.peak_rss >> 20, self.budget >> 20);
    }
}

/// A loopback HTTP server answering every request with `body_size` bytes;
/// counts connections. Stops with the test process.
fn serve(body_size: usize) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                    head.push(byte[0]);
                }
                let header = format!("HTTP/1.1 200 OK\r\nContent-Length: {body_size}\r\nConnection: close\r\n\r\n");
                let _ = stream.write_all(header.as_bytes());
                let _ = stream.write_all(&vec![b'z'; body_size]);
            });
        }
    });
    (port, hits)
}

#[test]
fn a_fields_bomb_ends_at_the_handle_table_or_the_field_size() {
    let install = Install::new("x");
    // 12 headers of 1000 bytes: under max_field_size, until the table is full.
    let many = hostile("many", r#"mode = "fields-bomb", batch = 12"#, "");
    // 120 headers: one map past max_field_size.
    let large = hostile("large", r#"mode = "fields-bomb", batch = 120"#, "");
    let out = attack(&install, &format!("{many}\n{large}"), &["many", "large"], "info");
    let line = out.failure("many");
    assert!(line.contains("limits.max_resources"), "{line}");
    let line = out.failure("large");
    assert!(line.contains("limits.max_field_size"), "{line}");
    out.assert_rss_within_budget();
}

#[test]
fn unread_responses_end_at_the_response_buffer_or_requests_in_flight() {
    let install = Install::new("x");
    let (port, _) = serve(1 << 20);
    let settings = format!(r#"mode = "unread", url = "http://127.0.0.1:{port}/page", count = 1000"#);
    let sources = hostile("hostile", &settings, "").replace("127.0.0.1:9", &format!("127.0.0.1:{port}"));
    let out = attack(&install, &sources, &["hostile"], "info");
    let line = out.failure("hostile");
    assert!(line.contains("limits.max_requests_in_flight") || line.contains("limits.max_response_buffer"), "{line}");
    out.assert_rss_within_budget();
}

#[test]
fn twenty_million_tiny_records_end_at_the_pending_limit() {
    let install = Install::new("x");
    let batched = hostile("batched", r#"mode = "records", count = 20000000, batch = 100000"#, "");
    // One emit of a list as large as guest memory allows: the host must not
    // copy it all before counting.
    let one_call = hostile_with(
        "onecall",
        &guest("hostile"),
        r#"mode = "records", count = 1500000, batch = 1500000"#,
        &LIMITS.replace(r#"memory = "32MiB""#, r#"memory = "96MiB""#),
        "",
    );
    let out = attack(&install, &format!("{batched}\n{one_call}"), &["batched", "onecall"], "info");
    for source in ["batched", "onecall"] {
        let line = out.failure(source);
        assert!(line.contains("limits.max_pending_size"), "{line}");
        assert!(install.objects().iter().all(|o| !o.contains(source)), "nothing of {source} was delivered");
    }
    out.assert_rss_within_budget();
}

#[test]
fn a_log_flood_is_clipped_escaped_and_summarised() {
    let install = Install::new("x");
    let sources = hostile("hostile", r#"mode = "log-flood", count = 200000"#, "")
        .replace(r#"run_timeout = "60s""#, r#"run_timeout = "60s", max_log_lines = 1000, max_log_bytes = "4MiB""#);
    let config = install.config(&format!("{sources}\n{}", healthy()));
    let mut daemon = Daemon::start(&install, &config, "info", "text");
    wait_for(&mut daemon, 120, "the flood to end", |log| {
        log.lines().any(|l| l.contains("Run succeeded") && l.contains("logged 200000 lines"))
    });
    let log = daemon.log();
    drop(daemon);
    let guest_lines = log.lines().filter(|l| l.contains("siphon::guest") && l.contains("line ")).count();
    assert!(guest_lines <= 1000, "{guest_lines} guest lines kept over a budget of 1000");
    assert!(log.contains("Collector log lines over the run's log budget were dropped"), "{}", tail(&log));
    let summary: Vec<&str> = log.lines().filter(|l| l.contains("over the run's log budget were dropped")).collect();
    assert!(
        summary.len() == 1 && summary[0].contains("199000"),
        "one summary line counts the dropped lines: {summary:?}"
    );
    assert!(!log.contains("\x1b[2J") && !log.contains("\x1b]0;owned"), "no guest terminal escape reaches the log");
    assert!(!log.lines().any(|l| l.starts_with("2030-01-01")), "no forged log line");
    assert!(log.contains(r"\n2030-01-01T00:00:00Z  INFO siphon: Run succeeded forged=true\u{1b}[2J"), "escaped");
    assert!(log.contains("Collector stderr past limits.max_stderr_size was dropped"), "{}", tail(&log));
    assert!(log.len() < 16 << 20, "the log stays small: {} bytes", log.len());
}

#[test]
fn secrets_stay_out_of_logs_records_notes_and_state() {
    let install = Install::new("x");
    std::fs::write(install.path("secret.txt"), SECRET).expect("secret file");
    let (port, _) = serve(10);
    let mut sources = String::new();
    for form in ["plain", "percent", "base64"] {
        let settings = format!(
            r#"mode = "secret", form = "{form}", url = "http://127.0.0.1:{port}", denied_url = "http://127.0.0.1:1""#
        );
        sources.push_str(
            &hostile(&format!("leak-{form}"), &settings, r#"secrets = { token = { file = "secret.txt" } }"#)
                .replace("127.0.0.1:9", &format!("127.0.0.1:{port}")),
        );
    }
    sources.push_str(&hostile("note", r#"mode = "secret-note""#, r#"secrets = { token = { file = "secret.txt" } }"#));
    let all = ["leak-plain", "leak-percent", "leak-base64", "note"];
    let out = attack(&install, &sources, &all, "debug,wasmtime=info,cranelift=info,hyper=info,h2=info");
    for source in ["leak-plain", "leak-percent", "leak-base64"] {
        let line = out.failure(source);
        assert!(line.contains("invalid_record") && line.contains("contains a configured secret"), "{line}");
        assert_eq!(install.cursor(source), None, "{source}: the commit after the record was refused");
    }
    assert!(install.objects().iter().all(|o| o.contains("healthy")), "no hostile record was delivered");
    let note = run_ends(&out.log, "note").join("\n");
    assert!(note.contains("Run succeeded") && note.contains("[REDACTED]"), "{note}");
    // Each place the guest put the secret was logged (at debug level), redacted.
    for needle in
        ["the token is [REDACTED]", "Denied outbound request", "GET http://127.0.0.1:", "[REDACTED]/alerts?[query]"]
    {
        assert!(out.log.contains(needle), "no {needle:?} in the log");
    }
    let mut texts = vec![out.log.clone()];
    for dir in ["out", "state"] {
        for file in files(&install.path(dir)) {
            texts.push(String::from_utf8_lossy(&std::fs::read(file).unwrap_or_default()).into_owned());
        }
    }
    // The forms written independently of the host's redactor: plain,
    // percent-encoded (both hex cases) and base64 of `user:<secret>`.
    let percent = "S3cr3t-Tok3n%2Fwith%2Bspecial%3Dchars";
    let forms = [SECRET, percent, &percent.to_lowercase(), "dXNlcjpTM2NyM3QtVG9rM24vd2l0aCtzcGVjaWFsPWNoYXJz"];
    for text in &texts {
        for form in forms {
            assert!(!text.contains(form), "{form} leaked:\n{}", tail(text));
        }
    }
    out.assert_rss_within_budget();
}

#[test]
fn another_port_of_an_allowed_host_and_names_resolving_to_loopback_are_refused() {
    let install = Install::new("x");
    let (port, hits) = serve(10);
    let url = format!(r#"mode = "get", url = "http://localhost:{port}/x""#);
    // `localhost` alone allows port 80 only.
    let other_port = hostile("otherport", &url, "").replace(r#"["127.0.0.1:9"]"#, r#"["localhost"]"#);
    // `localhost:<port>` is allowed, but it resolves to loopback.
    let hosts = format!(r#"["localhost:{port}"]"#);
    let private = hostile("private", &url, "").replace(r#"["127.0.0.1:9"]"#, &hosts);
    let opted_in = hostile("optedin", &url, "allow_private_addresses = true").replace(r#"["127.0.0.1:9"]"#, &hosts);
    let sources = format!("{other_port}\n{private}\n{opted_in}");
    let out = attack(&install, &sources, &["otherport", "private", "optedin"], "info");
    let line = out.failure("otherport");
    assert!(line.contains("transport") && line.to_lowercase().contains("denied"), "{line}");
    assert!(out.log.contains(&format!("port {port} of localhost is not allowed")), "{}", tail(&out.log));
    let line = out.failure("private");
    assert!(line.contains("transport") && line.contains("DestinationIpProhibited"), "{line}");
    assert!(out.log.contains("resolves only to non-public addresses"), "{}", tail(&out.log));
    let ok = run_ends(&out.log, "optedin").join("\n");
    assert!(ok.contains("Run succeeded") && ok.contains("answered 200"), "{ok}");
    assert_eq!(hits.load(Ordering::SeqCst), 1, "only the opted-in source reached the server");
    out.assert_rss_within_budget();
}

#[test]
fn the_sandbox_has_no_filesystem_environment_or_sockets_and_run_files_are_private() {
    let install = Install::new("x");
    let (port, hits) = serve(10);
    let sources = hostile("sandbox", &format!(r#"mode = "sandbox", count = {port}"#), "");
    let out = attack(&install, &sources, &["sandbox"], "info");
    let line = run_ends(&out.log, "sandbox").join("\n");
    assert!(line.contains("Run succeeded"), "{line}");
    for door in [
        "read_dir=denied",
        "read_file=denied",
        "write_file=denied",
        "env=denied",
        "tcp=denied",
        "udp=denied",
        "dns=denied",
    ] {
        assert!(line.contains(door), "{door} missing: {line}");
    }
    assert!(!line.contains("OPEN"), "{line}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "no connection reached the server");
    // What the runs created is the owner's alone.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    let created: Vec<PathBuf> = ["out", "state"].iter().flat_map(|d| files(&install.path(d))).collect();
    assert!(created.iter().any(|f| f.to_string_lossy().ends_with(".ndjson")), "{created:?}");
    for file in &created {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    for dir in ["out", "state"].iter().flat_map(|d| dirs(&install.path(d))) {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    }
    out.assert_rss_within_budget();
}

#[test]
fn many_memories_and_tables_share_one_cap() {
    let install = Install::new("x");
    let wasm = install.path("memories.wasm");
    std::fs::write(&wasm, wat::parse_str(memories_component(4)).expect("the component assembles")).expect("write");
    let total = hostile_with("memories", &wasm, "", LIMITS, "");
    let fewer = hostile_with("fewer", &wasm, "", &format!("{LIMITS}, max_memories = 2"), "");
    let (out, check) = attack_checked(&install, &format!("{total}\n{fewer}"), &["memories", "fewer"], "info");
    assert!(check.contains("sources.fewer") && check.contains("memory count too high"), "siphon check: {check}");
    let line = out.failure("memories");
    assert!(line.contains("out_of_memory") && line.contains("limits.memory"), "{line}");
    let line = out.failure("fewer");
    assert!(line.contains("limits.max_memories"), "{line}");
    out.assert_rss_within_budget();
}

/// A collector component whose core module has `memories` memories and two
/// tables and, in `collect`, grows each memory by 1 MiB (writing every new
/// page) and each table by 128 Ki elements, round after round, until a
/// growth is refused; then it traps. Checked one by one, each memory would
/// stay under the cap while together they hold several times it.
fn memories_component(memories: usize) -> String {
    let decls: String = (1..memories).map(|i| format!("(memory $m{i} 1)\n")).collect();
    let grow: String = (0..memories)
        .map(|i| {
            format!(
                "(local.set $p (memory.grow $m{i} (i32.const 16)))
                 (if (i32.eq (local.get $p) (i32.const -1)) (then unreachable))
                 (local.set $k (i32.const 0))
                 (loop $touch{i}
                   (i32.store $m{i} (i32.mul (i32.add (local.get $p) (local.get $k)) (i32.const 65536)) (i32.const 1))
                   (local.set $k (i32.add (local.get $k) (i32.const 1)))
                   (br_if $touch{i} (i32.lt_u (local.get $k) (i32.const 16))))\n"
            )
        })
        .collect();
    format!(
        r#"(component
  (core module $m
    (memory $m0 1)
    (export "memory" (memory $m0))
    {decls}
    (table $t0 1 funcref)
    (table $t1 1 funcref)
    (global $heap (mut i32) (i32.const 8192))
    (data (memory $m0) (i32.const 100) "hostile-memories")
    (data (memory $m0) (i32.const 200) "0.1.0")
    (data (memory $m0) (i32.const 300) "siphon test suite")
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
      (local $r i32)
      (local.set $r (global.get $heap))
      (global.set $heap (i32.add (global.get $heap) (local.get 3)))
      (local.get $r))
    (func (export "info") (result i32)
      (i32.store $m0 (i32.const 0) (i32.const 100)) (i32.store $m0 (i32.const 4) (i32.const 16))
      (i32.store $m0 (i32.const 8) (i32.const 200)) (i32.store $m0 (i32.const 12) (i32.const 5))
      (i32.store $m0 (i32.const 16) (i32.const 300)) (i32.store $m0 (i32.const 20) (i32.const 17))
      (i32.store $m0 (i32.const 24) (i32.const 0)) (i32.store $m0 (i32.const 28) (i32.const 0))
      (i32.const 0))
    (func (export "validate") (result i32)
      (i32.store $m0 (i32.const 32) (i32.const 0)) (i32.store $m0 (i32.const 36) (i32.const 0))
      (i32.const 32))
    (func (export "collect") (result i32)
      (local $p i32) (local $k i32)
      (loop $round
        {grow}
        (if (i32.eq (table.grow $t0 (ref.null func) (i32.const 131072)) (i32.const -1)) (then unreachable))
        (if (i32.eq (table.grow $t1 (ref.null func) (i32.const 131072)) (i32.const -1)) (then unreachable))
        (br $round))
      (i32.const 0))
  )
  (core instance $i (instantiate $m))
  (alias core export $i "memory" (core memory $mem))
  (alias core export $i "cabi_realloc" (core func $realloc))
  (type $ss (record (field "name" string) (field "description" string) (field "required" bool)
    (field "secret" bool) (field "default-value" (option string))))
  (export $ss-e "setting-spec" (type $ss))
  (type $ci (record (field "name" string) (field "version" string) (field "vendor" string)
    (field "settings" (list $ss-e))))
  (export $ci-e "collector-info" (type $ci))
  (type $rs (record (field "pages" u32) (field "duplicates" u64) (field "caught-up" bool) (field "note" (option string))))
  (export $rs-e "run-summary" (type $rs))
  (type $ce (variant (case "config" string) (case "auth" string) (case "not-found" string)
    (case "rate-limited" string) (case "vendor" string) (case "transport" string) (case "host" string)))
  (export $ce-e "collect-error" (type $ce))
  (func $info (result $ci-e) (canon lift (core func $i "info") (memory $mem) (realloc $realloc)))
  (export "info" (func $info))
  (func $validate (result (list string)) (canon lift (core func $i "validate") (memory $mem) (realloc $realloc)))
  (export "validate" (func $validate))
  (func $collect (result (result $rs-e (error $ce-e)))
    (canon lift (core func $i "collect") (memory $mem) (realloc $realloc)))
  (export "collect" (func $collect))
)"#
    )
}

/// Every file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    walk(dir).into_iter().filter(|p| p.is_file()).collect()
}

/// `dir` and every directory under it.
fn dirs(dir: &Path) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = walk(dir).into_iter().filter(|p| p.is_dir()).collect();
    all.push(dir.to_owned());
    all
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}
