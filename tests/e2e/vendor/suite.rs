//! The one e2e suite every vendor row meets: each test loops over [`CASES`](super::CASES) and runs
//! the real collector component under the real host (or the `siphon` binary) against the row's
//! mock. What a test may not assume about a vendor it asks the [`Tenant`].

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use siphon_tests::mock::server::Fault;

use super::{Tenant, VendorCase, each_case};
use crate::common::{Install, assert_exactly_once, run_once, siphon_bin};
use crate::crash::{Plan, crash_loop};

/// Records per stream a test starts with: several pages each.
const PER_STREAM: usize = 60;

/// An installation and config (local sink and state) for `tenant`'s source named after `case`.
fn install(case: &dyn VendorCase, tenant: &dyn Tenant, sink_extra: &str) -> (Install, std::path::PathBuf) {
    let install = Install::for_tenant(tenant);
    let config = install.config_with(&tenant.source(case.name()).render(), sink_extra);
    (install, config)
}

/// The keys of every record in the sink.
fn sink_keys(install: &Install, tenant: &dyn Tenant) -> Vec<String> {
    install.sink_lines().iter().map(|l| tenant.key_of(l)).collect()
}

/// Data requests the mock answered with 200.
fn pages_served(tenant: &dyn Tenant) -> usize {
    let path = tenant.data_path();
    tenant.mock().server().requests().iter().filter(|r| r.path.starts_with(&path) && r.status == 200).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vendor_pages_to_the_end_byte_exact_then_collects_only_new_records() {
    each_case("paging, byte-exact records, second run", |case| async move {
        let tenant = case.start(PER_STREAM).await;
        let (install, config) = install(case, tenant.as_ref(), "");
        let runtime = install.runtime(&config).await;
        let source = case.name();

        let report = run_once(&runtime, source).await;
        assert!(report.ok(), "{:?}", report.outcome);
        let streams = tenant.streams().len();
        let delivered = assert_exactly_once(&sink_keys(&install, tenant.as_ref()), &tenant.expected_keys());
        assert_eq!(delivered, streams * PER_STREAM);
        assert_eq!(report.delivered.records as usize, delivered);
        // Whether a vendor pages each stream apart or all together, this many pages at least.
        let pages = (PER_STREAM * streams).div_ceil(tenant.page_size());
        assert!(pages_served(tenant.as_ref()) >= pages, "{streams} streams of {PER_STREAM} need {pages} pages");

        // Records reach the sink byte for byte as the vendor sent them.
        let mut lines: Vec<String> = install.sink_lines();
        let mut records = tenant.expected_records();
        lines.sort();
        records.sort();
        assert!(lines == records, "records changed on the way to the sink");

        // Objects follow <source>/<yyyy>/<mm>/<dd>/<source>-<timestamp>-<seq>.ndjson
        for name in install.objects() {
            let parts: Vec<&str> = name.split('/').collect();
            assert_eq!(parts.len(), 5, "{name}");
            assert_eq!(parts[0], source, "{name}");
            assert!(parts[4].starts_with(&format!("{source}-")) && parts[4].ends_with(".ndjson"), "{name}");
        }

        // Second run: only the new records; a third finds nothing.
        let cursor = install.cursor(source).expect("a cursor after the first run");
        tenant.add_records(7);
        let report = run_once(&runtime, source).await;
        assert!(report.ok(), "{:?}", report.outcome);
        assert_eq!(report.delivered.records as usize, 7 * streams);
        assert_exactly_once(&sink_keys(&install, tenant.as_ref()), &tenant.expected_keys());
        assert_ne!(install.cursor(source), Some(cursor), "the cursor moved on");
        let report = run_once(&runtime, source).await;
        assert!(report.ok(), "{:?}", report.outcome);
        assert_eq!(report.delivered.records, 0, "nothing new, nothing delivered");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vendor_fails_bad_credentials_as_auth_and_keeps_the_cursor() {
    each_case("bad credentials", |case| async move {
        let tenant = case.start(PER_STREAM).await;
        let (install, config) = install(case, tenant.as_ref(), "");
        let source = case.name();
        let report = run_once(&install.runtime(&config).await, source).await;
        assert!(report.ok(), "{:?}", report.outcome);
        let cursor = install.cursor(source);
        let delivered = install.sink_lines().len();

        tenant.add_records(5);
        let bad = tenant.bad_secrets();
        install.write_secrets(&bad);
        let report = run_once(&install.runtime(&config).await, source).await;
        let err = report.outcome.as_ref().expect_err("bad credentials fail the run");
        let text = err.to_string();
        assert_eq!(err.kind(), "auth", "{text}");
        assert!(tenant.refusal().iter().any(|r| text.contains(r)), "the error says what the vendor answered: {text}");
        for (name, value) in bad.iter().chain(&tenant.secrets()) {
            assert!(!text.contains(value.as_str()), "secret {name} echoed: {text}");
        }
        assert_eq!(install.cursor(source), cursor, "cursor unchanged");
        assert_eq!(install.sink_lines().len(), delivered, "nothing delivered");

        // Good credentials again: the run picks up where the last good one stopped.
        install.write_secrets(&tenant.secrets());
        let report = run_once(&install.runtime(&config).await, source).await;
        assert!(report.ok(), "{:?}", report.outcome);
        assert_exactly_once(&sink_keys(&install, tenant.as_ref()), &tenant.expected_keys());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vendor_survives_rate_limits_server_errors_and_cut_bodies_exactly_once() {
    each_case("fault storms", |case| async move {
        let tenant = case.start(PER_STREAM).await;
        let (install, config) = install(case, tenant.as_ref(), "");
        let runtime = install.runtime(&config).await;
        let source = case.name();
        // In this order on the data requests: a 429 storm, 503 pages from a proxy, 500s, a cut
        // body and a reset connection.
        tenant.inject(Fault::too_many_requests(1), 3);
        tenant.inject(Fault::html_503(), 2);
        tenant.inject(Fault::status(500, r#"{"message":"Internal Server Error"}"#), 2);
        tenant.inject(Fault::Truncate, 1);
        tenant.inject(Fault::Reset, 1);
        let server = tenant.mock().server();
        let mut outcomes = Vec::new();
        // Runs until one succeeds with every fault served; each failed run must have said why.
        // Bounded by time, not by a count of runs: a vendor whose 503 means "quota used up"
        // (MuleSoft) rightly makes no call until the next quota window, however many runs come.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(150);
        while std::time::Instant::now() < deadline {
            let report = run_once(&runtime, source).await;
            outcomes.push(report.outcome.as_ref().map(|_| "ok".to_owned()).unwrap_or_else(|e| e.kind().to_owned()));
            if report.ok() && server.pending_faults() == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        assert_eq!(server.pending_faults(), 0, "faults left unserved; outcomes {outcomes:?}");
        assert_eq!(outcomes.last().map(String::as_str), Some("ok"), "no run succeeded: {outcomes:?}");
        println!("{}: runs until the storm was over: {outcomes:?}", case.name());
        assert_exactly_once(&sink_keys(&install, tenant.as_ref()), &tenant.expected_keys());

        // Retry-After was honoured: the retry of a 429 came a second later.
        let log = server.requests();
        for pair in log.windows(2).filter(|w| w[0].status == 429) {
            let gap = pair[1].at.duration_since(pair[0].at);
            assert!(gap >= Duration::from_millis(950), "a request {gap:?} after a 429 with Retry-After: 1");
        }
        let faults: HashMap<&str, usize> = log.iter().filter_map(|r| r.fault).fold(HashMap::new(), |mut m, f| {
            *m.entry(f).or_default() += 1;
            m
        });
        assert_eq!(faults.values().sum::<usize>(), 9, "{faults:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vendor_delivers_exactly_once_through_50_sigkills() {
    each_case("kill -9 loop", |case| async move {
        let tenant = case.start(150).await;
        // Small objects: several per commit, so kills also land between objects.
        let (install, config) = install(case, tenant.as_ref(), "max_records = 7");
        let plan = Plan { kills: 50, max_new: 40, window: tenant.kill_window(), targets: Vec::new() };
        let read = async || sink_keys(&install, tenant.as_ref());
        let report = crash_loop(&config, case.name(), tenant.as_ref(), plan, read).await;
        println!("{}", report.line(&format!("{} local/local", case.name())));
        assert_eq!(report.kills, 50);
    })
    .await;
}

/// `siphon collect` of `source` with debug logs and `env`.
async fn collect(config: &Path, source: &str, env: Vec<(String, String)>, json: bool) -> Output {
    let (config, source) = (config.to_owned(), source.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(siphon_bin());
        cmd.arg("collect").arg("--config").arg(&config).arg(&source).env("RUST_LOG", "debug").envs(env);
        if json {
            cmd.args(["--log-format", "json"]);
        }
        cmd.output().expect("siphon collect runs")
    })
    .await
    .expect("runner thread")
}

fn files_below(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("readable dir").flatten() {
        let p = e.path();
        if p.is_dir() { files_below(&p, out) } else { out.push(p) }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_vendor_secret_appears_in_logs_sink_or_state() {
    each_case("secret scan", |case| async move {
        let tenant = case.start(PER_STREAM).await;
        let source = case.name();
        // Secrets from the environment, so no file of the installation holds one on purpose.
        let install = Install::new("unused");
        let mut table = tenant.source(source);
        let vars = table.secrets_from_env("SIPHON_E2E_");
        let config = install.config(&table.render());
        let env_of = |secrets: &[(&str, String)]| -> Vec<(String, String)> {
            let value = |name: &str| secrets.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone());
            vars.iter().map(|(name, var)| (var.clone(), value(name).expect("a value for every secret"))).collect()
        };
        // A good run with debug logs, then one with bad credentials.
        let ok = collect(&config, source, env_of(&tenant.secrets()), false).await;
        let mut logs = format!("{}{}", String::from_utf8_lossy(&ok.stdout), String::from_utf8_lossy(&ok.stderr));
        assert!(ok.status.success(), "{logs}");
        let records = tenant.streams().len() * PER_STREAM;
        assert!(logs.contains(&format!("records:   {records}")), "{logs}");
        let bad = collect(&config, source, env_of(&tenant.bad_secrets()), true).await;
        assert!(!bad.status.success());
        logs.push_str(&String::from_utf8_lossy(&bad.stdout));
        logs.push_str(&String::from_utf8_lossy(&bad.stderr));

        let mut secrets: Vec<String> =
            tenant.secrets().into_iter().chain(tenant.bad_secrets()).map(|(_, v)| v).collect();
        secrets.extend(tenant.issued_secrets());
        let mut files = Vec::new();
        files_below(install.dir.path(), &mut files);
        assert!(files.iter().any(|f| f.extension().is_some_and(|e| e == "ndjson")), "records were written");
        assert!(files.iter().any(|f| f.ends_with(format!("state/{source}.json"))), "state was written");
        for secret in &secrets {
            assert!(!logs.contains(secret.as_str()), "a secret is in the logs");
            for f in &files {
                let bytes = std::fs::read(f).expect("readable");
                assert!(!String::from_utf8_lossy(&bytes).contains(secret.as_str()), "a secret is in {}", f.display());
            }
        }
    })
    .await;
}
