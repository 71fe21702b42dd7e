//! Every resource and network limit a source's runs are held to, in one
//! place, each with the reason for its default.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

/// `[sources.<name>.limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Longest one run may take, wall clock, including waits for the vendor.
    /// A run past it is stopped (CPU-bound code by the epoch deadline, waits
    /// by a timer) and commits nothing more. Default 10 min: an hourly
    /// schedule with room for a slow vendor.
    #[serde(with = "humantime_serde")]
    pub run_timeout: Duration,
    /// Largest linear memory a collector instance may grow to. A 10 000-record
    /// vendor page is 10-40 MB of JSON; twice that plus parse overhead fits.
    /// Default 256 MiB.
    pub memory: ByteSize,
    /// Time to establish a TCP (and TLS) connection. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Time from sending a request to the first response byte. Vendors build
    /// large pages before answering. Default 60 s.
    #[serde(with = "humantime_serde")]
    pub first_byte_timeout: Duration,
    /// Longest pause between response body chunks. Default 60 s.
    #[serde(with = "humantime_serde")]
    pub between_bytes_timeout: Duration,
    /// Largest response body (after gzip decoding) handed to the collector.
    /// Default 128 MiB: several times a full 10 000-record page.
    pub max_response_size: ByteSize,
    /// Retries of a request answered 429/502/503/504 or failing to connect,
    /// before the collector sees the failure. Default 4.
    pub max_retries: u32,
    /// Longest single wait between retries, whatever `Retry-After` asks;
    /// a longer hint ends the retries so the run's deadline is not spent
    /// sleeping. Default 2 min.
    #[serde(with = "humantime_serde")]
    pub max_retry_wait: Duration,
    /// Requests this source may send per period, e.g. `"40/min"`, `"5/s"`,
    /// `"1000/h"`, `"30/h"` or `"1/10s"` (units `s`, `min`, `h`, `d` and
    /// their long forms; a count before the unit stretches the period).
    /// Requests are spaced evenly, one every period / count, with no burst:
    /// vendors count quotas such as "40 calls per minute" in windows, and a
    /// burst of 40 followed by the steady rate would put up to 80 calls in
    /// one of them. Protects the vendor quota shared with other tools; a
    /// wait for the next slot counts against `run_timeout`. Excludes
    /// `requests_per_second`. Default: `requests_per_second` 5.
    pub rate: Option<String>,
    /// Older form of `rate`: requests per second, as a token bucket with a
    /// burst of the same size (`requests_per_second = 5` may send 5 at once,
    /// `rate = "5/s"` one every 200 ms). Default 5 when `rate` is not set.
    pub requests_per_second: Option<NonZeroU32>,
    /// Records held in memory between commits. Default 512 MiB.
    pub max_pending_size: ByteSize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            run_timeout: Duration::from_secs(600),
            memory: ByteSize::mib(256),
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(60),
            between_bytes_timeout: Duration::from_secs(60),
            max_response_size: ByteSize::mib(128),
            max_retries: 4,
            max_retry_wait: Duration::from_secs(120),
            rate: None,
            requests_per_second: None,
            max_pending_size: ByteSize::mib(512),
        }
    }
}

impl Limits {
    /// Problems, each starting with the field name.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.run_timeout < Duration::from_secs(1) {
            problems.push("run_timeout: must be at least 1s".to_owned());
        }
        if self.memory < ByteSize::mib(16) {
            problems.push("memory: must be at least 16 MiB".to_owned());
        }
        if self.memory > ByteSize::gib(4) {
            problems.push("memory: must be at most 4 GiB (wasm32 address space)".to_owned());
        }
        if self.max_response_size < ByteSize::kib(64) {
            problems.push("max_response_size: must be at least 64 KiB".to_owned());
        }
        if self.max_retries > 20 {
            problems.push("max_retries: must be at most 20".to_owned());
        }
        if let Err(e) = self.request_rate() {
            problems.push(e);
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    /// The request rate in force: `rate`, else `requests_per_second`, else
    /// 5 per second. An error starts with the field name.
    pub fn request_rate(&self) -> Result<Rate, String> {
        match (&self.rate, self.requests_per_second) {
            (Some(_), Some(_)) => Err("rate: `rate` and `requests_per_second` are mutually exclusive; keep `rate` \
                 (`requests_per_second = N` is `rate = \"N/s\"` with a burst of N)"
                .to_owned()),
            (Some(text), None) => text.parse().map_err(|e| format!("rate: {text:?} is invalid: {e}")),
            (None, Some(n)) => Ok(Rate::per_second(n)),
            (None, None) => Ok(Rate::DEFAULT),
        }
    }
}

/// A request rate: `count` requests per `period`, at most `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests per period.
    pub count: NonZeroU32,
    /// The period.
    pub period: Duration,
    /// Requests that may go out back to back before the spacing applies.
    pub burst: NonZeroU32,
}

/// Longest period a `rate` may name: vendor quotas are per second, minute,
/// hour or day.
const MAX_PERIOD: Duration = Duration::from_secs(86_400);

impl Rate {
    /// 5 requests per second with a burst of 5: `requests_per_second`'s
    /// default, kept for sources that set neither key.
    pub const DEFAULT: Rate = {
        let five = match NonZeroU32::new(5) {
            Some(n) => n,
            None => NonZeroU32::MIN,
        };
        Rate { count: five, period: Duration::from_secs(1), burst: five }
    };

    /// `requests_per_second = n`: n per second with a burst of n.
    pub fn per_second(n: NonZeroU32) -> Rate {
        Rate { count: n, period: Duration::from_secs(1), burst: n }
    }

    /// Time between two requests at the steady rate (never zero).
    pub fn interval(&self) -> Duration {
        (self.period / self.count.get()).max(Duration::from_nanos(1))
    }
}

impl FromStr for Rate {
    type Err = String;

    /// `<count>/<period>`: `40/min`, `5/s`, `1000/h`, `1/10s`, `100/15min`.
    fn from_str(text: &str) -> Result<Rate, String> {
        const HINT: &str = "write `<count>/<period>`, e.g. \"40/min\", \"5/s\", \"1000/h\" or \"1/10s\"";
        let (count, per) = text.split_once('/').ok_or_else(|| HINT.to_owned())?;
        let count = count.trim();
        let count: u32 = count.parse().map_err(|_| format!("`{count}` is not a whole number of requests; {HINT}"))?;
        let count = NonZeroU32::new(count).ok_or("the count must be at least 1")?;
        let per = per.trim();
        let digits = per.find(|c: char| !c.is_ascii_digit()).unwrap_or(per.len());
        let (times, unit) = per.split_at(digits);
        let times: u64 = match times {
            "" => 1,
            t => t.parse().ok().filter(|&t| t > 0).ok_or_else(|| format!("`{t}` is not a period length"))?,
        };
        let unit_secs: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hr" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86_400,
            "" => return Err(format!("the period has no unit; {HINT}")),
            other => return Err(format!("unknown period unit `{other}` (use s, min, h or d)")),
        };
        let period = Duration::from_secs(times.saturating_mul(unit_secs));
        if period > MAX_PERIOD {
            return Err("the period must be at most one day".to_owned());
        }
        if period / count.get() < Duration::from_micros(1) {
            return Err("more than a million requests per second is not a rate limit".to_owned());
        }
        Ok(Rate { count, period, burst: NonZeroU32::MIN })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}s", self.count, self.period.as_secs())?;
        if self.burst.get() > 1 {
            write!(f, " (burst {})", self.burst)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(text: &str) -> Rate {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn rates_parse_with_every_unit_spelling() {
        for (text, count, period) in [
            ("40/min", 40, secs(60)),
            ("40/m", 40, secs(60)),
            ("40 / minute", 40, secs(60)),
            ("5/s", 5, secs(1)),
            ("5/sec", 5, secs(1)),
            ("5/second", 5, secs(1)),
            ("1000/h", 1000, secs(3600)),
            ("1000/hour", 1000, secs(3600)),
            ("1000/HR", 1000, secs(3600)),
            ("10000/d", 10000, secs(86_400)),
            ("10000/day", 10000, secs(86_400)),
            ("1/10s", 1, secs(10)),
            ("100/15min", 100, secs(900)),
        ] {
            let r = rate(text);
            assert_eq!((r.count.get(), r.period, r.burst.get()), (count, period, 1), "{text}");
        }
    }

    #[test]
    fn rates_below_one_per_second_space_requests_evenly() {
        assert_eq!(rate("40/min").interval(), Duration::from_millis(1500));
        assert_eq!(rate("1/min").interval(), secs(60));
        assert_eq!(rate("30/h").interval(), secs(120));
        assert_eq!(rate("1/10s").interval(), secs(10));
        assert_eq!(rate("5/s").interval(), Duration::from_millis(200));
    }

    #[test]
    fn bad_rates_say_what_is_wrong() {
        for (text, needle) in [
            ("40/fortnight", "unknown period unit `fortnight`"),
            ("40", "write `<count>/<period>`"),
            ("forty/min", "`forty` is not a whole number"),
            ("-1/min", "`-1` is not a whole number"),
            ("0/min", "at least 1"),
            ("1.5/s", "`1.5` is not a whole number"),
            ("40/", "no unit"),
            ("40/10", "no unit"),
            ("40/0s", "`0` is not a period length"),
            ("1/2d", "at most one day"),
            ("2000000/s", "million"),
        ] {
            let e = text.parse::<Rate>().unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn requests_per_second_still_works_and_excludes_rate() {
        let mut limits = Limits::default();
        assert_eq!(limits.request_rate(), Ok(Rate::DEFAULT));
        assert_eq!(Rate::DEFAULT.burst.get(), 5, "the default keeps its burst");
        limits.requests_per_second = NonZeroU32::new(10);
        let r = limits.request_rate().unwrap();
        assert_eq!((r.count.get(), r.period, r.burst.get()), (10, secs(1), 10));
        limits.rate = Some("40/min".to_owned());
        let e = limits.validate().unwrap_err().join("\n");
        assert!(e.starts_with("rate: ") && e.contains("mutually exclusive"), "{e}");
        limits.requests_per_second = None;
        assert_eq!(limits.request_rate(), Ok(rate("40/min")));
        limits.rate = Some("40/fortnight".to_owned());
        let e = limits.validate().unwrap_err().join("\n");
        assert!(e.starts_with(r#"rate: "40/fortnight" is invalid: unknown period unit"#), "{e}");
    }
}
