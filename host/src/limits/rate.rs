//! `rate = "40/min"`: a request rate as configured, and the spacing it
//! implies.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

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
}
