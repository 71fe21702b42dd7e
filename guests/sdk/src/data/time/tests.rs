use super::*;

/// 2024-05-01T12:00:00Z, a Wednesday.
const MAY_1: u64 = 1_714_564_800_000;

#[test]
fn civil_round_trips_every_day_from_1900_to_2400() {
    let start = days_from_civil(1900, 1, 1);
    let end = days_from_civil(2400, 12, 31);
    let mut expected = (1900, 1, 1);
    for days in start..=end {
        assert_eq!(civil_from_days(days), expected, "day {days}");
        assert_eq!(days_from_civil(expected.0, expected.1, expected.2), days);
        let (y, m, d) = expected;
        expected = if d < days_in_month(y, m) {
            (y, m, d + 1)
        } else if m < 12 {
            (y, m + 1, 1)
        } else {
            (y + 1, 1, 1)
        };
    }
}

#[test]
fn civil_known_days() {
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(days_from_civil(1969, 12, 31), -1);
    assert_eq!(days_from_civil(2000, 2, 29), 11_016);
    assert_eq!(civil_from_days(19_844), (2024, 5, 1));
}

#[test]
fn leap_years() {
    assert_eq!(days_in_month(2000, 2), 29);
    assert_eq!(days_in_month(1900, 2), 28);
    assert_eq!(days_in_month(2024, 2), 29);
    assert_eq!(days_in_month(2023, 2), 28);
}

#[test]
fn epoch_heuristic_tells_units_apart() {
    assert_eq!(epoch_to_millis(1_714_564_800), MAY_1);
    assert_eq!(epoch_to_millis(MAY_1), MAY_1);
    assert_eq!(epoch_to_millis(MAY_1 * 1000 + 999), MAY_1);
    assert_eq!(epoch_to_millis(MAY_1 * 1_000_000 + 1), MAY_1);
    assert_eq!(epoch_to_millis(0), 0);
    // The boundaries: the last second value, the first millisecond value.
    assert_eq!(epoch_to_millis(99_999_999_999), 99_999_999_999_000);
    assert_eq!(epoch_to_millis(100_000_000_000), 100_000_000_000);
    assert_eq!(epoch_to_millis(u64::MAX), u64::MAX / 1_000_000);
}

#[test]
fn parse_epoch_numbers_and_fractions() {
    assert_eq!(parse_epoch("1714564800").unwrap(), MAY_1);
    assert_eq!(parse_epoch("1714564800000").unwrap(), MAY_1);
    assert_eq!(parse_epoch(" 1714564800.5 ").unwrap(), MAY_1 + 500);
    assert_eq!(parse_epoch("1714564800.123999").unwrap(), MAY_1 + 123);
    assert_eq!(parse_epoch("1714564800000.9").unwrap(), MAY_1);
    for bad in ["", "-1", "1e9", "12a", "1.", ".5", "1.2.3", "99999999999999999999999"] {
        assert!(parse_epoch(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn parse_rfc3339_forms() {
    for text in [
        "2024-05-01T12:00:00Z",
        "2024-05-01t12:00:00z",
        "2024-05-01 12:00:00Z",
        "2024-05-01T12:00:00+00:00",
        "2024-05-01T12:00:00+0000",
        "2024-05-01T12:00:00-00:00",
        "2024-05-01T14:00:00+02:00",
        "2024-05-01T14:00:00+0200",
        "2024-05-01T14:00:00+02",
        "2024-05-01T07:30:00-0430",
        "2024-05-01T12:00:00.000Z",
        "2024-05-01T12:00:00.0004+00:00",
    ] {
        assert_eq!(parse_rfc3339(text).unwrap(), MAY_1, "{text}");
    }
    assert_eq!(parse_rfc3339("2024-05-01T12:00:00.1Z").unwrap(), MAY_1 + 100);
    assert_eq!(parse_rfc3339("2024-05-01T12:00:00.123456789Z").unwrap(), MAY_1 + 123);
    assert_eq!(parse_rfc3339("2024-05-01T12:00:00.999+0000").unwrap(), MAY_1 + 999);
    // A leap second is the next second.
    assert_eq!(parse_rfc3339("2016-12-31T23:59:60Z").unwrap(), 1_483_228_800_000);
    // An offset that moves the time across midnight and a year.
    assert_eq!(parse_rfc3339("2024-01-01T01:00:00+02:00").unwrap(), 1_704_063_600_000);
}

#[test]
fn parse_rfc3339_refuses_malformed_input() {
    for (text, reason) in [
        ("2024-05-01T12:00:00", "no UTC offset (expected Z or +HH:MM)"),
        ("2024-13-01T12:00:00Z", "month out of range"),
        ("2023-02-29T12:00:00Z", "day out of range for the month"),
        ("2024-05-01T24:00:00Z", "time of day out of range"),
        ("2024-05-01T12:00:00.Z", "expected digits after '.'"),
        ("2024-05-01T12:00:00+2:00", "expected an offset ±HH:MM or ±HHMM"),
        ("2024-05-01T12:00:00+02:0", "expected an offset ±HH:MM or ±HHMM"),
        ("2024-05-01T12:00:00+24:00", "offset out of range"),
        ("2024-05-01T12:00:00Z junk", "unexpected text after the time"),
        ("2024-05-01X12:00:00Z", "expected 'T' between date and time"),
        ("2024-5-01T12:00:00Z", "expected a date YYYY-MM-DD"),
        ("2024-05-01T12:00Z", "expected a time HH:MM:SS"),
        ("1969-12-31T23:59:59Z", "before the Unix epoch (1970-01-01)"),
    ] {
        assert_eq!(parse_rfc3339(text).unwrap_err().reason(), reason, "{text}");
    }
}

#[test]
fn parse_naive_utc_assumes_utc() {
    assert_eq!(parse_naive_utc("2024-05-01T12:00:00").unwrap(), MAY_1);
    assert_eq!(parse_naive_utc("2024-05-01 12:00:00.250").unwrap(), MAY_1 + 250);
    assert_eq!(parse_naive_utc("2024-05-01").unwrap(), MAY_1 - 12 * 3_600_000);
    assert!(parse_naive_utc("2024-05-01T12:00:00Z").is_err());
}

#[test]
fn parse_date_is_midnight_utc() {
    assert_eq!(parse_date("2024-05-01").unwrap(), 1_714_521_600_000);
    assert_eq!(parse_date("1970-01-01").unwrap(), 0);
    assert_eq!(parse_date("2000-02-29").unwrap(), 951_782_400_000);
    assert!(parse_date("2024-05-01T00:00:00Z").is_err());
    assert!(parse_date("2024-02-30").is_err());
}

#[test]
fn parse_rfc1123_forms() {
    for text in [
        "Wed, 01 May 2024 12:00:00 GMT",
        "Wed, 01 May 2024 12:00:00 UTC",
        "Wednesday, 01 May 2024 12:00:00 GMT",
        "wed, 1 may 2024 12:00:00 gmt",
        "01 May 2024 12:00:00 GMT",
        "Wed, 01 May 2024 14:00:00 +0200",
        "Wed, 01 May 2024 12:00:00 Z",
        // The weekday is not checked against the date (HTTP says ignore it).
        "Fri, 01 May 2024 12:00:00 GMT",
    ] {
        assert_eq!(parse_rfc1123(text).unwrap(), MAY_1, "{text}");
    }
    for (text, reason) in [
        ("Wed, 01 Mai 2024 12:00:00 GMT", "unknown month name"),
        ("Xyz, 01 May 2024 12:00:00 GMT", "unknown weekday"),
        ("Wed 01 May 2024 12:00:00 GMT", "expected ',' after the weekday"),
        ("Wed, 01 May 2024 12:00:00 CET", "unknown zone (expected GMT, UTC or ±HHMM)"),
        ("Wed, 01 May 2024 12:00:00", "expected a zone (GMT, UTC or ±HHMM)"),
        ("Wed, 31 Apr 2024 12:00:00 GMT", "day out of range for the month"),
        ("Wed, 01 May 24 12:00:00 GMT", "expected a four-digit year"),
    ] {
        assert_eq!(parse_rfc1123(text).unwrap_err().reason(), reason, "{text}");
    }
}

#[test]
fn parse_picks_the_form() {
    for text in [
        "1714564800",
        "1714564800000",
        "1714564800.000",
        "2024-05-01T12:00:00Z",
        "2024-05-01T12:00:00+0000",
        "Wed, 01 May 2024 12:00:00 GMT",
        "01 May 2024 12:00:00 UTC",
        "  2024-05-01T12:00:00.000Z\n",
    ] {
        assert_eq!(parse(text).unwrap(), MAY_1, "{text}");
    }
    assert_eq!(parse("2024-05-01").unwrap(), 1_714_521_600_000);
    assert_eq!(parse("").unwrap_err().reason(), "empty");
    assert!(parse("yesterday").is_err());
    assert!(parse("-5").is_err());
}

#[test]
fn formats() {
    let t = MAY_1 + 7;
    assert_eq!(format_rfc3339(t), "2024-05-01T12:00:00Z");
    assert_eq!(format_rfc3339_millis(t), "2024-05-01T12:00:00.007Z");
    assert_eq!(format_offset(t), "2024-05-01T12:00:00+0000");
    assert_eq!(format_date(t), "2024-05-01");
    assert_eq!(format_rfc1123(t), "Wed, 01 May 2024 12:00:00 GMT");
    assert_eq!(format_rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(format_rfc1123(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(format_rfc3339(4_102_444_799_999), "2099-12-31T23:59:59Z");
}

#[test]
fn format_then_parse_round_trips() {
    // Every 997th hour across 130 years: leap days, month and year ends.
    let mut t = 0;
    while t < 4_102_444_800_000 {
        assert_eq!(parse_rfc3339(&format_rfc3339_millis(t)).unwrap(), t);
        assert_eq!(parse(&format_offset(t)).unwrap(), t - t % 1000);
        assert_eq!(parse(&format_rfc1123(t)).unwrap(), t - t % 1000);
        assert_eq!(parse(&format_date(t)).unwrap(), t - t % 86_400_000);
        t += 997 * 3_600_000 + 123;
    }
}

#[test]
fn error_message_names_input_and_reason() {
    let e = parse_rfc3339("2024-05-01").unwrap_err();
    assert_eq!(e.to_string(), "cannot read \"2024-05-01\" as a time: expected 'T' between date and time");
    assert!(matches!(crate::Error::from(e), crate::Error::Vendor(_)));
}
