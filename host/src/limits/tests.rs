//! Limits: validation, the request rate in force, the memory limiter's
//! totals, the run budget and the log budget.

use std::num::NonZeroU32;
use std::time::Duration;

use wasmtime::ResourceLimiter;

use super::*;

#[test]
fn requests_per_second_still_works_and_excludes_rate() {
    let mut limits = Limits::default();
    assert_eq!(limits.request_rate(), Ok(Rate::DEFAULT));
    assert_eq!(Rate::DEFAULT.burst.get(), 5, "the default keeps its burst");
    limits.requests_per_second = NonZeroU32::new(10);
    let r = limits.request_rate().unwrap();
    assert_eq!((r.count.get(), r.period, r.burst.get()), (10, Duration::from_secs(1), 10));
    limits.rate = Some("40/min".to_owned());
    let e = limits.validate().unwrap_err().join("\n");
    assert!(e.starts_with("rate: ") && e.contains("mutually exclusive"), "{e}");
    limits.requests_per_second = None;
    assert_eq!(limits.request_rate(), Ok("40/min".parse().unwrap()));
    limits.rate = Some("40/fortnight".to_owned());
    let e = limits.validate().unwrap_err().join("\n");
    assert!(e.starts_with(r#"rate: "40/fortnight" is invalid: unknown period unit"#), "{e}");
}

#[test]
fn defaults_are_valid_and_bad_values_name_their_key() {
    assert_eq!(Limits::default().validate(), Ok(()));
    let bad = Limits {
        max_memories: 0,
        max_resources: 10,
        max_field_size: ByteSize::b(10),
        max_response_buffer: ByteSize::mib(1),
        max_commits: 0,
        ..Limits::default()
    };
    let e = bad.validate().unwrap_err();
    for key in ["max_memories", "max_resources", "max_field_size", "max_response_buffer", "max_commits"] {
        assert!(e.iter().any(|p| p.starts_with(&format!("{key}: "))), "{key}: {e:?}");
    }
}

#[test]
fn the_budget_adds_up_its_parts() {
    let limits = Limits::default();
    let parts = limits.memory_budget();
    assert_eq!(parts[0], ("memory", 256 << 20));
    assert_eq!(limits.memory_budget_total(), parts.iter().map(|p| p.1).sum::<u64>());
    assert!(limits.memory_budget_total() < 1 << 30, "the defaults stay under 1 GiB per run");
}

#[test]
fn the_limiter_caps_all_memories_and_tables_together() {
    let limits = Limits { memory: ByteSize::mib(16), ..Limits::default() };
    let mut l = MemoryLimiter::new("s", &limits);
    let mib = 1 << 20;
    assert!(l.memory_growing(0, 6 * mib, None).unwrap());
    assert!(l.memory_growing(0, 6 * mib, None).unwrap(), "a second memory");
    assert!(!l.memory_growing(6 * mib, 12 * mib, None).unwrap(), "each is under the cap, the total is not");
    assert_eq!((l.refused, l.largest_request), (1, 18 * mib));
    assert!(l.table_growing(0, 1000, None).unwrap());
    assert_eq!(l.used(), 12 * mib + 8000);
    assert!(!l.table_growing(1000, 1 << 20, None).unwrap(), "8 MiB of table elements do not fit");
    // A growth wasmtime approved but could not make is given back.
    assert!(l.memory_growing(6 * mib, 7 * mib, None).unwrap());
    l.memory_grow_failed(wasmtime::format_err!("no")).unwrap();
    assert_eq!(l.used(), 12 * mib + 8000);
    assert_eq!((l.memories(), l.tables(), l.instances()), (4, 8, 16));
}

#[test]
fn the_run_budget_counts_requests_and_response_bytes() {
    let limits = Limits { max_requests_in_flight: 2, max_response_buffer: ByteSize::b(100), ..Limits::default() };
    let budget = RunBudget::new(&limits);
    let mut a = budget.start_request().unwrap();
    let b = budget.start_request().unwrap();
    let e = budget.start_request().unwrap_err();
    assert_eq!(e.key, "max_requests_in_flight");
    assert!(budget.stopped(), "going past a limit stops the run");
    drop(b);
    let _c = budget.start_request().expect("a slot is free again");
    a.add(60).unwrap();
    assert_eq!(budget.response_bytes(), 60);
    a.release(50);
    assert_eq!(budget.response_bytes(), 10);
    drop(a);
    assert_eq!(budget.response_bytes(), 0);
    let mut d = budget.start_request().unwrap();
    let e = d.add(101).unwrap_err();
    assert_eq!(e.key, "max_response_buffer");
    assert_eq!(budget.exceeded().unwrap().key, "max_requests_in_flight", "the first limit is kept");
    assert!(e.to_string().ends_with("the limit is 100 B (limits.max_response_buffer)"), "{e}");
}

#[test]
fn the_log_budget_is_per_level() {
    let limits = Limits { max_log_lines: 2, max_log_bytes: ByteSize::b(10), ..Limits::default() };
    let mut b = LogBudget::new(&limits);
    assert!(b.admit(2, 4));
    assert!(b.admit(2, 4));
    assert!(!b.admit(2, 1), "third info line");
    assert!(b.admit(0, 10), "errors have their own budget");
    assert!(!b.admit(1, 11), "a line over the byte budget");
    assert_eq!(b.dropped(), [0, 1, 1, 0, 0]);
}
