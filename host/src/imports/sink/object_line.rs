//! Is a record one JSON object? The host checks every record a collector
//! emits (a collector is not trusted to), so this is on the hot path of
//! every run: one pass, no recursion, no allocation below 64 levels of
//! nesting, strings skipped sixteen bytes at a time (SSE2 on x86_64).
//!
//! It accepts exactly what `serde_json::from_str::<IgnoredAny>` accepts for
//! a text starting with `{` and holding no line break (tested side by side
//! on generated inputs below), and names a line break as such:
//! RFC 8259 grammar, any nesting depth (serde_json skips values without a
//! recursion limit), duplicate keys allowed, any `\u` escape (unpaired
//! surrogates included, as serde_json skips them unchecked), whitespace
//! around values. The text is a `str`, so it is already valid UTF-8.

/// What [`Invalid::what`] says of a line break (outside or inside a string):
/// the record would not be one NDJSON line.
pub const LINE_BREAK: &str = "line break";

/// Why a text is not one JSON object, and at which column (1-based; a
/// record is one line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// What was wrong.
    pub what: &'static str,
    /// Byte column where it was found.
    pub column: usize,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at column {}", self.what, self.column)
    }
}

/// Checks that `text` is one JSON object, optionally surrounded by
/// whitespace.
pub fn check(text: &str) -> Result<(), Invalid> {
    Checker { b: text.as_bytes(), i: 0 }.object_text()
}

struct Checker<'a> {
    b: &'a [u8],
    i: usize,
}

/// Containers open around the current position, a bit each (1 for an
/// object, 0 for an array), innermost in the lowest bit of `inner`; words
/// of outer levels are kept in `outer` past 64 levels.
#[derive(Default)]
struct Nesting {
    inner: u64,
    outer: Vec<u64>,
    depth: usize,
}

impl Nesting {
    fn push(&mut self, object: bool) {
        if self.depth > 0 && self.depth.is_multiple_of(64) {
            self.outer.push(self.inner);
            self.inner = 0;
        }
        self.inner = self.inner << 1 | u64::from(object);
        self.depth += 1;
    }

    fn pop(&mut self) {
        self.inner >>= 1;
        self.depth -= 1;
        if self.depth > 0 && self.depth.is_multiple_of(64) {
            self.inner = self.outer.pop().unwrap_or_default();
        }
    }

    fn in_object(&self) -> bool {
        self.inner & 1 == 1
    }
}

impl Checker<'_> {
    fn fail<T>(&self, what: &'static str) -> Result<T, Invalid> {
        Err(Invalid { what, column: self.i + 1 })
    }

    /// Skips spaces and tabs; a line break is JSON whitespace too, but
    /// not in an NDJSON line, so it stops the check.
    fn skip_ws(&mut self) -> Result<(), Invalid> {
        loop {
            match self.b.get(self.i) {
                Some(b' ' | b'\t') => self.i += 1,
                Some(b'\n' | b'\r') => return self.fail(LINE_BREAK),
                _ => return Ok(()),
            }
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn object_text(mut self) -> Result<(), Invalid> {
        self.skip_ws()?;
        if self.peek() != Some(b'{') {
            return self.fail("expected an object");
        }
        let mut nest = Nesting::default();
        // Each turn reads one value, then closes what it completes.
        loop {
            self.skip_ws()?;
            match self.peek() {
                Some(open @ (b'{' | b'[')) => {
                    self.i += 1;
                    nest.push(open == b'{');
                    self.skip_ws()?;
                    let close = if open == b'{' { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.i += 1;
                        nest.pop();
                    } else {
                        if open == b'{' {
                            self.key()?;
                        }
                        continue;
                    }
                }
                Some(b'"') => self.string()?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                Some(_) => return self.fail("expected value"),
                None => return self.fail("EOF while parsing a value"),
            }
            // A value ended: go on in the innermost container, or close it.
            loop {
                if nest.depth == 0 {
                    self.skip_ws()?;
                    return if self.i == self.b.len() { Ok(()) } else { self.fail("trailing characters") };
                }
                self.skip_ws()?;
                let in_object = nest.in_object();
                match (self.peek(), in_object) {
                    (Some(b','), _) => {
                        self.i += 1;
                        if in_object {
                            self.skip_ws()?;
                            self.key()?;
                        }
                        break;
                    }
                    (Some(b'}'), true) | (Some(b']'), false) => {
                        self.i += 1;
                        nest.pop();
                    }
                    (None, _) => return self.fail("EOF while parsing a container"),
                    (Some(_), true) => return self.fail("expected `,` or `}`"),
                    (Some(_), false) => return self.fail("expected `,` or `]`"),
                }
            }
        }
    }

    /// `"key" :` with the whitespace after the colon left for the value.
    fn key(&mut self) -> Result<(), Invalid> {
        if self.peek() != Some(b'"') {
            return self.fail("key must be a string");
        }
        self.string()?;
        self.skip_ws()?;
        if self.peek() != Some(b':') {
            return self.fail("expected `:`");
        }
        self.i += 1;
        Ok(())
    }

    /// A string from its opening quote. Control characters are refused and
    /// escapes checked; plain runs are skipped a word at a time.
    fn string(&mut self) -> Result<(), Invalid> {
        self.i += 1;
        loop {
            self.i = plain_run(self.b, self.i);
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                        Some(b'u') => {
                            self.i += 1;
                            for _ in 0..4 {
                                if !self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                                    return self.fail("invalid \\u escape");
                                }
                                self.i += 1;
                            }
                        }
                        Some(_) => return self.fail("invalid escape"),
                        None => return self.fail("EOF while parsing a string"),
                    }
                }
                Some(b'\n' | b'\r') => return self.fail(LINE_BREAK),
                Some(_) => return self.fail("control character in a string"),
                None => return self.fail("EOF while parsing a string"),
            }
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Result<(), Invalid> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.i += 1;
                if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    return self.fail("invalid number");
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return self.fail("invalid number"),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return self.fail("invalid number");
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return self.fail("invalid number");
            }
        }
        Ok(())
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        self.i - start
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Invalid> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            self.fail("expected value")
        }
    }
}

/// Index of the first `"`, `\\` or control character (below 0x20) in `b`
/// at or after `at` (`b.len()` when none): SSE2, shared with the page scan.
fn plain_run(b: &[u8], at: usize) -> usize {
    at + siphon_scan::special_offset(b.get(at..).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::{LINE_BREAK, check};

    /// What the check accepts: serde_json's JSON, on one line.
    fn serde_accepts(text: &str) -> bool {
        !text.contains(['\n', '\r']) && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
    }

    #[test]
    fn a_line_break_anywhere_is_refused_as_such() {
        for text in ["{\"a\":\n1}", "{\"a\":1}\r\n", "{\"a\":\"x\ny\"}", "{\"a\":\"x\ry\"}", "\n{}"] {
            assert_eq!(check(text).map_err(|e| e.what), Err(LINE_BREAK), "{text:?}");
        }
    }

    #[test]
    fn accepts_and_refuses_like_serde_json() {
        let cases = [
            r#"{}"#,
            r#" { } "#,
            r#"{"a":1,"b":[true,false,null,-0,0.5,1e9,-2E-3,1.5e+7],"c":{"d":"\u00e9\n\"x\"\/"}}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"big":18446744073709551617123456789,"s":"josé 😀","u":"\ud800"}"#,
            "{\"tab\":\t1\t}",
            r#"{"a":01}"#,
            r#"{"a":-}"#,
            r#"{"a":1.}"#,
            r#"{"a":1e}"#,
            r#"{"a":.5}"#,
            r#"{"a":+1}"#,
            r#"{"a":tru}"#,
            r#"{"a":"\x"}"#,
            r#"{"a":"\u12g4"}"#,
            "{\"a\":\"\u{1}\"}",
            r#"{"a" 1}"#,
            r#"{"a":1,}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":[1 2]}"#,
            r#"{a:1}"#,
            r#"{"a":1}}"#,
            r#"{"a":1} {"b":2}"#,
            "{\"a\":1}\n",
            "{\"a\":\"\n\"}",
            r#"{"a":[}"#,
            r#"{"a":{]}"#,
            r#"{"a":"#,
            r#"{"a":"unterminated"#,
            r#"{"#,
            r#"{"a":1"#,
        ];
        for case in cases {
            assert_eq!(check(case).is_ok(), serde_accepts(case), "{case}");
        }
    }

    #[test]
    fn any_depth_of_mixed_nesting_closes_in_order() {
        for depth in [1, 63, 64, 65, 128, 129, 1_000] {
            // Objects and arrays alternating, so a wrong bit after a word
            // boundary closes the wrong kind.
            let open: String = (0..depth).map(|d| if d % 2 == 0 { "{\"a\":" } else { "[" }).collect();
            let close: String = (0..depth).rev().map(|d| if d % 2 == 0 { "}" } else { "]" }).collect();
            let text = format!("{open}1{close}");
            assert!(check(&text).is_ok() && serde_accepts(&text), "depth {depth}");
            let swapped = format!("{open}1{}", close.replace('}', "#").replace(']', "}").replace('#', "]"));
            assert_eq!(check(&swapped).is_ok(), serde_accepts(&swapped), "depth {depth}");
            assert!(depth == 1 || check(&swapped).is_err());
        }
    }

    #[test]
    fn errors_say_where() {
        let err = check(r#"{"a":1,"b":x}"#).unwrap_err();
        assert_eq!(err.to_string(), "expected value at column 12");
    }

    /// Mutations of real-looking records (bytes replaced, inserted, cut),
    /// each judged by both: they must agree on every one.
    #[test]
    fn agrees_with_serde_json_on_generated_mutations() {
        let seeds = [
            r#"{"_id":"f1e2d3c4b5a6","timestamp":1700000000,"alert_type":"DLP","user":"ana@example.com","score":-1.25e-3,"tags":["a","b\u0041"],"nested":{"x":[{},[],null,true,false,0]}}"#,
            r#"{"a":"\\\"\/\b\f\n\r\t","b":[1,2,{"c":[3,{"d":4}]}],"e":12345678901234567890}"#,
        ];
        let alphabet = b"{}[]:,\"\\ \t\n\r01-+.eEtrufalsn\x01\x1fxu9";
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut disagreements = Vec::new();
        let mut accepted = 0;
        for round in 0..20_000 {
            let mut bytes = seeds[round % seeds.len()].as_bytes().to_vec();
            for _ in 0..1 + next() % 3 {
                if bytes.is_empty() {
                    break;
                }
                let at = (next() % bytes.len() as u64) as usize;
                let c = alphabet[(next() % alphabet.len() as u64) as usize];
                match next() % 4 {
                    0 => bytes[at] = c,
                    1 => bytes.insert(at, c),
                    2 => bytes.truncate(at.max(1)),
                    _ => {
                        bytes.remove(at);
                    }
                }
            }
            let Ok(text) = String::from_utf8(bytes) else { continue };
            if !text.starts_with('{') {
                continue;
            }
            let ours = check(&text).is_ok();
            accepted += usize::from(ours);
            if ours != serde_accepts(&text) {
                disagreements.push(text);
            }
        }
        assert!(disagreements.is_empty(), "disagree with serde_json on: {disagreements:?}");
        assert!(accepted > 1_000, "the mutations should leave many records valid ({accepted})");
    }
}
