//! Timestamps as vendors send them, to and from epoch milliseconds.
//!
//! Every function here speaks **`u64` milliseconds since the Unix epoch
//! (UTC)**, the unit of [`crate::time::now_millis`], so a parsed vendor time
//! compares directly with the clock and fits a cursor. Times before 1970 are
//! refused: no vendor log is that old, and a negative time in a cursor is a
//! bug worth an error.
//!
//! [`parse`] reads every supported form; the `parse_*` functions each read one
//! form only, for a vendor whose format is known and should be checked:
//!
//! | Form | Example | Function |
//! |---|---|---|
//! | epoch seconds / ms / µs / ns | `1714564800`, `"1714564800123"`, `1714564800.5` | [`parse_epoch`] |
//! | RFC 3339 | `2024-05-01T12:00:00Z`, `2024-05-01T12:00:00.123456+02:00` | [`parse_rfc3339`] |
//! | RFC 3339 with a `+0000` offset (MuleSoft, Mimecast) | `2024-05-01T12:00:00+0000` | [`parse_rfc3339`] |
//! | date | `2024-05-01` (midnight UTC) | [`parse_date`] |
//! | RFC 1123 (MaaS360, HTTP `Date`) | `Wed, 01 May 2024 12:00:00 GMT`, `… UTC` | [`parse_rfc1123`] |
//!
//! Fractions finer than a millisecond are truncated (never rounded up, so a
//! cursor never skips past an event). The calendar maths is the proleptic
//! Gregorian one of [`days_from_civil`] / [`civil_from_days`], done here
//! rather than with a date crate that would pull a system clock into the guest.

use std::fmt;

const MS_PER_SECOND: i64 = 1000;
const MS_PER_DAY: i64 = 86_400_000;

/// Epoch values below this are seconds (up to the year 5138).
const SECONDS_BELOW: u64 = 100_000_000_000;
/// … below this milliseconds (from 1973-03-03).
const MILLIS_BELOW: u64 = 100_000_000_000_000;
/// … below this microseconds (from 1973-03-03); from here on nanoseconds.
const MICROS_BELOW: u64 = 100_000_000_000_000_000;

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// Why a text is not a supported timestamp. Converts into
/// [`Error::Vendor`](crate::Error::Vendor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeError {
    input: String,
    reason: &'static str,
}

impl TimeError {
    fn new(input: &str, reason: &'static str) -> Self {
        Self { input: super::excerpt(input), reason }
    }

    /// What is wrong, e.g. `month out of range`.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for TimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot read {:?} as a time: {}", self.input, self.reason)
    }
}

impl std::error::Error for TimeError {}

impl From<TimeError> for crate::Error {
    fn from(e: TimeError) -> Self {
        crate::Error::Vendor(e.to_string())
    }
}

/// Reads any supported form (see the [module docs](self)); surrounding
/// whitespace is ignored.
pub fn parse(text: &str) -> Result<u64, TimeError> {
    let t = text.trim();
    let b = t.as_bytes();
    match b.first() {
        None => Err(TimeError::new(text, "empty")),
        Some(_) if b.iter().all(|c| c.is_ascii_digit() || *c == b'.') => parse_epoch(t),
        Some(c) if c.is_ascii_alphabetic() => parse_rfc1123(t),
        Some(_) if b.len() == 10 && b.get(4) == Some(&b'-') => parse_date(t),
        Some(_) if b.get(4) == Some(&b'-') => parse_rfc3339(t),
        Some(_) => parse_rfc1123(t),
    }
}

/// Turns an epoch number of unknown unit into milliseconds.
///
/// Vendors send seconds, milliseconds and sometimes micro- or nanoseconds,
/// often in the same field name across products; the magnitude tells them
/// apart for any time after 1973-03-03:
///
/// | value | read as | covers |
/// |---|---|---|
/// | < 10¹¹ | seconds | 1970 – 5138 |
/// | < 10¹⁴ | milliseconds | 1973-03-03 – 5138 |
/// | < 10¹⁷ | microseconds | 1973-03-03 – 5138 |
/// | otherwise | nanoseconds | 1973-03-03 – 2554 (`u64` limit) |
///
/// So a millisecond value from before March 1973 would be misread as
/// seconds; no vendor log goes back that far.
pub fn epoch_to_millis(value: u64) -> u64 {
    if value < SECONDS_BELOW {
        value * 1000
    } else if value < MILLIS_BELOW {
        value
    } else if value < MICROS_BELOW {
        value / 1000
    } else {
        value / 1_000_000
    }
}

/// Reads an epoch number, `digits` or `digits.digits`, with the unit guessed
/// by [`epoch_to_millis`] from the whole part. A fraction counts in that unit:
/// `1714564800.5` is 1714564800500 ms. Signs and exponents are refused.
pub fn parse_epoch(text: &str) -> Result<u64, TimeError> {
    let t = text.trim();
    let (whole, fraction) = t.split_once('.').unwrap_or((t, ""));
    let all_digits = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) || (t.contains('.') && fraction.is_empty()) {
        return Err(TimeError::new(text, "not an epoch number (digits with an optional fraction)"));
    }
    let value: u64 = whole.parse().map_err(|_| TimeError::new(text, "epoch number too large"))?;
    let millis = epoch_to_millis(value);
    // Only seconds have a sub-millisecond fraction worth keeping.
    if value < SECONDS_BELOW {
        return Ok(millis + fraction_millis(fraction));
    }
    Ok(millis)
}

/// Reads RFC 3339: `YYYY-MM-DDTHH:MM:SS[.fraction]` and an offset `Z`,
/// `±HH:MM`, `±HHMM` (MuleSoft, Mimecast) or `±HH`. `t` and a space are
/// accepted for `T`, `z` for `Z`; a leap second `:60` counts as the next
/// second. A time without an offset is refused: guessing UTC could shift a
/// cursor by hours (see [`parse_naive_utc`] for vendors documented as UTC).
pub fn parse_rfc3339(text: &str) -> Result<u64, TimeError> {
    let mut c = Cursor::new(text);
    let ms = c.date_time(text)?;
    let offset = c.offset(text)?.ok_or_else(|| TimeError::new(text, "no UTC offset (expected Z or +HH:MM)"))?;
    c.end(text)?;
    to_u64(ms - offset, text)
}

/// Reads `YYYY-MM-DD[THH:MM:SS[.fraction]]` **without** an offset, as UTC —
/// only for vendors whose documentation says their offset-less times are
/// UTC.
pub fn parse_naive_utc(text: &str) -> Result<u64, TimeError> {
    let mut c = Cursor::new(text);
    let ms = if text.trim().len() == 10 { c.date(text)? } else { c.date_time(text)? };
    c.end(text)?;
    to_u64(ms, text)
}

/// Reads a date `YYYY-MM-DD` as its first millisecond in UTC.
pub fn parse_date(text: &str) -> Result<u64, TimeError> {
    let mut c = Cursor::new(text);
    let ms = c.date(text)?;
    c.end(text)?;
    to_u64(ms, text)
}

/// Reads an RFC 1123 date as in HTTP and MaaS360: `Wed, 01 May 2024
/// 12:00:00 GMT`. The weekday is optional and not checked against the date
/// (HTTP tells recipients to ignore it); the day may have one digit; month
/// names are case-insensitive; the zone is `GMT`, `UTC`, `UT`, `Z` or a
/// numeric `±HHMM`.
pub fn parse_rfc1123(text: &str) -> Result<u64, TimeError> {
    let mut c = Cursor::new(text);
    if c.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
        let day = c.word();
        if !WEEKDAYS.iter().any(|w| w.eq_ignore_ascii_case(day.get(..3).unwrap_or(day))) {
            return Err(TimeError::new(text, "unknown weekday"));
        }
        c.expect(b',', text, "expected ',' after the weekday")?;
        c.spaces();
    }
    let day = c.number(1, 2).ok_or_else(|| TimeError::new(text, "expected the day of the month"))?;
    c.spaces();
    let month = c.word();
    let month = MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(month))
        .ok_or_else(|| TimeError::new(text, "unknown month name"))?;
    c.spaces();
    let year = c.number(4, 4).ok_or_else(|| TimeError::new(text, "expected a four-digit year"))?;
    c.spaces();
    let date = civil_millis(i64::from(year), month as u32 + 1, day, text)?;
    let time = c.clock(text)?;
    c.spaces();
    let offset = match c.word() {
        z if ["GMT", "UTC", "UT", "Z"].iter().any(|n| n.eq_ignore_ascii_case(z)) => 0,
        "" => c.offset(text)?.ok_or_else(|| TimeError::new(text, "expected a zone (GMT, UTC or ±HHMM)"))?,
        _ => return Err(TimeError::new(text, "unknown zone (expected GMT, UTC or ±HHMM)")),
    };
    c.end(text)?;
    to_u64(date + time - offset, text)
}

/// `2024-05-01T12:00:00Z`: RFC 3339 in whole seconds (milliseconds are
/// truncated).
pub fn format_rfc3339(ms: u64) -> String {
    let (y, mo, d, h, mi, s, _) = split(ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `2024-05-01T12:00:00.000Z`: RFC 3339 with milliseconds.
pub fn format_rfc3339_millis(ms: u64) -> String {
    let (y, mo, d, h, mi, s, milli) = split(ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

/// `2024-05-01T12:00:00+0000`: the offset spelling MuleSoft and Mimecast
/// expect in queries (whole seconds).
pub fn format_offset(ms: u64) -> String {
    let (y, mo, d, h, mi, s, _) = split(ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}+0000")
}

/// `2024-05-01`: the UTC date.
pub fn format_date(ms: u64) -> String {
    let (y, mo, d, ..) = split(ms);
    format!("{y:04}-{mo:02}-{d:02}")
}

/// `Wed, 01 May 2024 12:00:00 GMT`: the RFC 1123 form of HTTP `Date`
/// headers (Mimecast signs one into each request).
pub fn format_rfc1123(ms: u64) -> String {
    let (y, mo, d, h, mi, s, _) = split(ms);
    let days = (ms / MS_PER_DAY as u64) as usize;
    // 1970-01-01 was a Thursday.
    let weekday = WEEKDAYS[(days + 4) % 7];
    let month = MONTHS[mo as usize - 1];
    format!("{weekday}, {d:02} {month} {y:04} {h:02}:{mi:02}:{s:02} GMT")
}

/// Days since 1970-01-01 of a proleptic Gregorian date (negative before).
///
/// Howard Hinnant's `days_from_civil`; valid for any date whose day count
/// fits an `i64`. Does not validate: day 31 of April is May 1.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let (month, day) = (i64::from(month), i64::from(day));
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The `(year, month, day)` of a day count from [`days_from_civil`].
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// (year, month, day, hour, minute, second, millisecond) of an epoch time.
fn split(ms: u64) -> (i64, u32, u32, u64, u64, u64, u64) {
    let day_ms = MS_PER_DAY as u64;
    let (days, in_day) = ((ms / day_ms) as i64, ms % day_ms);
    let (y, mo, d) = civil_from_days(days);
    let secs = in_day / 1000;
    (y, mo, d, secs / 3600, secs / 60 % 60, secs % 60, in_day % 1000)
}

fn civil_millis(year: i64, month: u32, day: u32, text: &str) -> Result<i64, TimeError> {
    if !(1..=12).contains(&month) {
        return Err(TimeError::new(text, "month out of range"));
    }
    if day == 0 || day > days_in_month(year, month) {
        return Err(TimeError::new(text, "day out of range for the month"));
    }
    Ok(days_from_civil(year, month, day) * MS_PER_DAY)
}

fn to_u64(ms: i64, text: &str) -> Result<u64, TimeError> {
    u64::try_from(ms).map_err(|_| TimeError::new(text, "before the Unix epoch (1970-01-01)"))
}

/// The first three digits of a fraction of a second, as milliseconds.
fn fraction_millis(digits: &str) -> u64 {
    digits.bytes().chain(std::iter::repeat(b'0')).take(3).fold(0, |acc, d| acc * 10 + u64::from(d - b'0'))
}

/// A byte cursor over a timestamp; every method leaves the position after
/// what it read.
struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        let text = text.trim();
        Self { text, at: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let hit = self.peek() == Some(byte);
        self.at += usize::from(hit);
        hit
    }

    fn expect(&mut self, byte: u8, text: &str, reason: &'static str) -> Result<(), TimeError> {
        if self.eat(byte) { Ok(()) } else { Err(TimeError::new(text, reason)) }
    }

    fn spaces(&mut self) {
        while self.eat(b' ') {}
    }

    /// An unsigned number of `min..=max` digits.
    fn number(&mut self, min: usize, max: usize) -> Option<u32> {
        let start = self.at;
        while self.at - start < max && self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        let digits = &self.text[start..self.at];
        if digits.len() < min {
            self.at = start;
            return None;
        }
        digits.parse().ok()
    }

    /// A run of ASCII letters (possibly empty).
    fn word(&mut self) -> &'a str {
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
            self.at += 1;
        }
        &self.text[start..self.at]
    }

    /// `YYYY-MM-DD` as milliseconds (may be negative).
    fn date(&mut self, text: &str) -> Result<i64, TimeError> {
        let bad = || TimeError::new(text, "expected a date YYYY-MM-DD");
        let year = self.number(4, 4).ok_or_else(bad)?;
        self.expect(b'-', text, "expected a date YYYY-MM-DD")?;
        let month = self.number(2, 2).ok_or_else(bad)?;
        self.expect(b'-', text, "expected a date YYYY-MM-DD")?;
        let day = self.number(2, 2).ok_or_else(bad)?;
        civil_millis(i64::from(year), month, day, text)
    }

    /// `HH:MM:SS[.fraction]` as milliseconds into the day.
    fn clock(&mut self, text: &str) -> Result<i64, TimeError> {
        let bad = || TimeError::new(text, "expected a time HH:MM:SS");
        let hour = self.number(2, 2).ok_or_else(bad)?;
        self.expect(b':', text, "expected a time HH:MM:SS")?;
        let minute = self.number(2, 2).ok_or_else(bad)?;
        self.expect(b':', text, "expected a time HH:MM:SS")?;
        let second = self.number(2, 2).ok_or_else(bad)?;
        if hour > 23 || minute > 59 || second > 60 {
            return Err(TimeError::new(text, "time of day out of range"));
        }
        let mut millis = 0;
        if self.eat(b'.') {
            let start = self.at;
            while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                self.at += 1;
            }
            if self.at == start {
                return Err(TimeError::new(text, "expected digits after '.'"));
            }
            millis = fraction_millis(&self.text[start..self.at]) as i64;
        }
        Ok(((i64::from(hour) * 60 + i64::from(minute)) * 60 + i64::from(second)) * MS_PER_SECOND + millis)
    }

    /// `date` `T` `clock`.
    fn date_time(&mut self, text: &str) -> Result<i64, TimeError> {
        let date = self.date(text)?;
        if !(self.eat(b'T') || self.eat(b't') || self.eat(b' ')) {
            return Err(TimeError::new(text, "expected 'T' between date and time"));
        }
        Ok(date + self.clock(text)?)
    }

    /// `Z`, `±HH:MM`, `±HHMM` or `±HH` as milliseconds east of UTC; `None`
    /// when there is no offset.
    fn offset(&mut self, text: &str) -> Result<Option<i64>, TimeError> {
        if self.eat(b'Z') || self.eat(b'z') {
            return Ok(Some(0));
        }
        let sign = match self.peek() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return Ok(None),
        };
        self.at += 1;
        let bad = || TimeError::new(text, "expected an offset ±HH:MM or ±HHMM");
        let hours = self.number(2, 2).ok_or_else(bad)?;
        let colon = self.eat(b':');
        let minutes = match self.number(2, 2) {
            Some(m) => m,
            None if colon => return Err(bad()),
            None => 0,
        };
        if hours > 23 || minutes > 59 {
            return Err(TimeError::new(text, "offset out of range"));
        }
        Ok(Some(sign * (i64::from(hours) * 60 + i64::from(minutes)) * 60 * MS_PER_SECOND))
    }

    fn end(&self, text: &str) -> Result<(), TimeError> {
        if self.at == self.text.len() { Ok(()) } else { Err(TimeError::new(text, "unexpected text after the time")) }
    }
}

#[cfg(test)]
mod tests;
