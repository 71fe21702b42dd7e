//! Newline-delimited JSON (one object per line) into records.
//!
//! Vendors' exports differ in the details, so [`lines`] tolerates them: the
//! last line may or may not end in `\n`, `\r\n` line ends are fine, blank
//! (whitespace-only) lines are skipped, and a UTF-8 byte order mark before
//! the first line is ignored. Each line must be one JSON object; a line that
//! is not is reported with its 1-based line number, and iteration goes on
//! with the next line, so the caller decides whether one bad line fails the
//! page ([`records`]) or is skipped and logged.

use std::fmt;

use crate::Record;

/// A line that is not a JSON object. Converts into
/// [`Error::Vendor`](crate::Error::Vendor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    line: usize,
    message: String,
}

impl LineError {
    /// The 1-based line number, counting blank lines.
    pub fn line(&self) -> usize {
        self.line
    }

    /// What is wrong with the line.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NDJSON line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for LineError {}

impl From<LineError> for crate::Error {
    fn from(e: LineError) -> Self {
        crate::Error::Vendor(e.to_string())
    }
}

/// The records of `buf`, one per non-blank line, in order.
///
/// ```
/// use siphon_sdk::data::ndjson;
///
/// let body = b"{\"a\": 1}\r\n\n{\"a\": 2}";
/// let records: Vec<_> = ndjson::lines(body).collect::<Result<_, _>>()?;
/// assert_eq!(records[1].as_str(), r#"{"a":2}"#);
/// # Ok::<(), ndjson::LineError>(())
/// ```
pub fn lines(buf: &[u8]) -> Lines<'_> {
    let buf = buf.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(buf);
    Lines { rest: buf, line: 0 }
}

/// All records of `buf`; the first bad line fails the whole buffer.
pub fn records(buf: &[u8]) -> Result<Vec<Record>, LineError> {
    lines(buf).collect()
}

/// Iterator over the records of an NDJSON buffer; see [`lines`].
#[derive(Debug, Clone)]
pub struct Lines<'a> {
    rest: &'a [u8],
    /// Number of the line last read.
    line: usize,
}

impl Lines<'_> {
    /// The number of the line last returned (0 before the first).
    pub fn line(&self) -> usize {
        self.line
    }
}

impl Iterator for Lines<'_> {
    type Item = Result<Record, LineError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (line, rest) = match self.rest.iter().position(|b| *b == b'\n') {
                Some(end) => (&self.rest[..end], &self.rest[end + 1..]),
                None => (self.rest, &[][..]),
            };
            self.rest = rest;
            self.line += 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let error = |message: String| LineError { line: self.line, message };
            let parsed = match std::str::from_utf8(line) {
                Ok(text) => Record::parse(text).map_err(|e| error(e.0)),
                Err(e) => Err(error(format!("not UTF-8 (at byte {})", e.valid_up_to()))),
            };
            return Some(parsed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(buf: &[u8]) -> Vec<String> {
        records(buf).unwrap().into_iter().map(Record::into_string).collect()
    }

    #[test]
    fn last_line_with_or_without_newline() {
        assert_eq!(texts(b"{\"a\":1}\n{\"a\":2}\n"), ["{\"a\":1}", "{\"a\":2}"]);
        assert_eq!(texts(b"{\"a\":1}\n{\"a\":2}"), ["{\"a\":1}", "{\"a\":2}"]);
    }

    #[test]
    fn crlf_blank_lines_and_bom_are_tolerated() {
        let buf = b"\xEF\xBB\xBF{\"a\": 1}\r\n\r\n   \n{ \"s\": \"x y\" }\r\n\n";
        assert_eq!(texts(buf), ["{\"a\":1}", "{\"s\":\"x y\"}"]);
    }

    #[test]
    fn empty_buffers_hold_no_records() {
        assert!(texts(b"").is_empty());
        assert!(texts(b"\n\r\n  \n").is_empty());
    }

    #[test]
    fn records_keep_bytes_exact() {
        assert_eq!(
            texts(br#"{"id":18446744073709551616,"u":"\u00e9","f":1.0E+2}"#),
            [r#"{"id":18446744073709551616,"u":"\u00e9","f":1.0E+2}"#]
        );
    }

    #[test]
    fn bad_lines_are_reported_with_their_number_and_iteration_goes_on() {
        let buf = b"{\"a\":1}\n\n[1]\n{\"a\":\n\xff\n{\"a\":2}";
        let results: Vec<_> = lines(buf).collect();
        assert_eq!(results.len(), 5);
        assert_eq!(results[0].as_ref().map(Record::as_str), Ok("{\"a\":1}"));
        let e = results[1].as_ref().unwrap_err();
        assert_eq!((e.line(), e.message()), (3, "expected a JSON object, found an array"));
        assert_eq!(results[2].as_ref().unwrap_err().line(), 4);
        assert!(results[2].as_ref().unwrap_err().message().starts_with("not valid JSON"));
        assert_eq!(results[3].as_ref().unwrap_err().message(), "not UTF-8 (at byte 0)");
        assert_eq!(results[4].as_ref().map(Record::as_str), Ok("{\"a\":2}"));
    }

    #[test]
    fn records_fails_on_the_first_bad_line() {
        let e = records(b"{}\n{}\nnull\n{}").unwrap_err();
        assert_eq!(e.to_string(), "NDJSON line 3: expected a JSON object, found null");
        assert!(matches!(crate::Error::from(e), crate::Error::Vendor(_)));
    }

    #[test]
    fn two_objects_on_one_line_are_an_error() {
        assert!(records(b"{} {}").is_err());
    }

    #[test]
    fn line_counter_follows_iteration() {
        let mut it = lines(b"\n{}\n{}");
        assert_eq!(it.line(), 0);
        assert!(it.next().is_some());
        assert_eq!(it.line(), 2);
    }
}
