//! Lenient numbers: the text of a JSON number or of a numeric string.
//!
//! Whole numbers are read exactly, in decimal, never through `f64`: `1.5e3`
//! is 1500, `"4871139218723649281"` keeps every digit, and `1.5` is refused
//! as a whole number rather than rounded (a count or an id off by a fraction
//! is a bug to report, not to hide).

use super::JsonError;

/// Reads a whole number ≥ 0: `123`, `"123"`, `" 123 "`, `1.5e3`, `1500.0`,
/// `+7`, `-0`. Refuses fractions (`1.5`), negatives, values above
/// `u64::MAX`, and anything that is not a decimal number.
pub fn lenient_u64(text: &str) -> Result<u64, JsonError> {
    // Plain digits that cannot overflow (the usual timestamp or id): no
    // decimal bookkeeping.
    if (1..=19).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(text.bytes().fold(0, |n, b| n * 10 + u64::from(b - b'0')));
    }
    let (negative, magnitude) = whole(text)?;
    if negative && magnitude != 0 {
        return Err(JsonError::new(format!("{:?} is negative", text.trim())));
    }
    u64::try_from(magnitude).map_err(|_| too_large(text))
}

/// Reads a whole number, possibly negative, as [`lenient_u64`] does.
pub fn lenient_i64(text: &str) -> Result<i64, JsonError> {
    let (negative, magnitude) = whole(text)?;
    let magnitude = i128::try_from(magnitude).map_err(|_| too_large(text))?;
    let value = if negative { -magnitude } else { magnitude };
    i64::try_from(value).map_err(|_| too_large(text))
}

/// Reads a finite number: `1.5`, `"1.5"`, `-2e-3`. Refuses `NaN` and
/// infinities (which JSON cannot hold, but a string can).
pub fn lenient_f64(text: &str) -> Result<f64, JsonError> {
    let t = text.trim();
    let bad = || JsonError::new(format!("{t:?} is not a number"));
    // std also reads "inf" and "nan"; a vendor number never is one.
    if !t.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-')) {
        return Err(bad());
    }
    t.parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(bad)
}

/// Sign and magnitude of a decimal that must be a whole number.
fn whole(text: &str) -> Result<(bool, u128), JsonError> {
    let t = text.trim();
    let Some(Decimal { negative, digits, exponent }) = Decimal::parse(t) else {
        return Err(JsonError::new(format!("{t:?} is not a number")));
    };
    // The value is digits × 10^exponent; trailing zeros move into the exponent.
    let significant = digits.trim_start_matches('0');
    let trimmed = significant.trim_end_matches('0');
    let exponent = exponent + (significant.len() - trimmed.len()) as i64;
    if trimmed.is_empty() {
        return Ok((negative, 0));
    }
    if exponent < 0 {
        return Err(JsonError::new(format!("{t:?} is not a whole number")));
    }
    // u128 holds 38 full decimal digits; more is above any u64/i64 anyway.
    if trimmed.len() as i64 + exponent > 38 {
        return Err(too_large(t));
    }
    let mantissa: u128 = trimmed.parse().map_err(|_| too_large(t))?;
    let scale = 10u128.checked_pow(exponent as u32).ok_or_else(|| too_large(t))?;
    mantissa.checked_mul(scale).map(|m| (negative, m)).ok_or_else(|| too_large(t))
}

fn too_large(text: &str) -> JsonError {
    JsonError::new(format!("{:?} is out of range", text.trim()))
}

/// A decimal number as written: `digits` × 10^`exponent`.
struct Decimal {
    negative: bool,
    /// The integer and fraction digits, concatenated.
    digits: String,
    exponent: i64,
}

impl Decimal {
    /// `[+-]digits[.digits][(e|E)[+-]digits]`, with at least one digit in
    /// the mantissa (`.5` and `5.` are accepted, as vendors' strings hold them).
    fn parse(text: &str) -> Option<Self> {
        let (negative, rest) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(at) => (&rest[..at], Some(&rest[at + 1..])),
            None => (rest, None),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let is_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if !is_digits(int) || !is_digits(frac) || int.len() + frac.len() == 0 {
            return None;
        }
        let exponent: i64 = match exponent {
            None => 0,
            Some(e) => {
                let unsigned = e.strip_prefix(['+', '-']).unwrap_or(e);
                if unsigned.is_empty() || !is_digits(unsigned) || unsigned.len() > 6 {
                    return None;
                }
                e.strip_prefix('+').unwrap_or(e).parse().ok()?
            }
        };
        Some(Self { negative, digits: format!("{int}{frac}"), exponent: exponent - frac.len() as i64 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u64_accepts_numbers_and_numeric_strings() {
        for (text, want) in [
            ("123", 123),
            (" 123 ", 123),
            ("0", 0),
            ("-0", 0),
            ("+7", 7),
            ("1.5e3", 1500),
            ("1.5E+3", 1500),
            ("1500.000", 1500),
            ("15000e-1", 1500),
            ("0.0", 0),
            ("18446744073709551615", u64::MAX),
            ("4871139218723649281", 4_871_139_218_723_649_281),
            ("1.8446744073709551615e19", u64::MAX),
            ("0e999999", 0),
        ] {
            assert_eq!(lenient_u64(text).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn u64_refuses_fractions_negatives_and_junk() {
        for (text, message) in [
            ("1.5", "\"1.5\" is not a whole number"),
            ("1e-1", "\"1e-1\" is not a whole number"),
            ("-1", "\"-1\" is negative"),
            ("18446744073709551616", "\"18446744073709551616\" is out of range"),
            ("1e39", "\"1e39\" is out of range"),
            ("1e9999999", "\"1e9999999\" is not a number"),
            ("", "\"\" is not a number"),
            ("abc", "\"abc\" is not a number"),
            ("1,000", "\"1,000\" is not a number"),
            ("0x10", "\"0x10\" is not a number"),
            ("1e", "\"1e\" is not a number"),
            (".", "\".\" is not a number"),
            ("--1", "\"--1\" is not a number"),
        ] {
            assert_eq!(lenient_u64(text).unwrap_err().message(), message, "{text}");
        }
    }

    #[test]
    fn i64_keeps_the_sign_and_range() {
        assert_eq!(lenient_i64("-42").unwrap(), -42);
        assert_eq!(lenient_i64("\t-4.2e1").unwrap(), -42);
        assert_eq!(lenient_i64("-9223372036854775808").unwrap(), i64::MIN);
        assert_eq!(lenient_i64("9223372036854775807").unwrap(), i64::MAX);
        assert!(lenient_i64("9223372036854775808").is_err());
        assert!(lenient_i64("-9223372036854775809").is_err());
        assert!(lenient_i64("-0.5").is_err());
    }

    #[test]
    fn f64_reads_finite_numbers_only() {
        assert_eq!(lenient_f64("1.5").unwrap(), 1.5);
        assert_eq!(lenient_f64(" -2e-3 ").unwrap(), -0.002);
        assert_eq!(lenient_f64("7").unwrap(), 7.0);
        for bad in ["NaN", "inf", "-infinity", "1e999", "", "1.2.3", "one"] {
            assert!(lenient_f64(bad).is_err(), "{bad}");
        }
    }
}
