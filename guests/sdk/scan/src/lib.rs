//! One pass over a vendor page: validate the JSON as serde_json validates it
//! (UTF-8, strings, escapes, numbers, nesting), split the records array and
//! find chosen top-level fields of each record — the work every collector
//! does on every page, written once.
//!
//! The SDK's `data::json::scan_page` is built on [`scan_page`]: inside a
//! component the host runs it natively (the `siphon:collector/json`
//! import), in a native build the SDK calls it directly. Either way the
//! answer is byte offsets into the body the caller holds, so nothing is
//! copied and the caller checks every offset it is given.
//!
//! Anything unusual — invalid JSON, a body that is not an object, a
//! duplicate top-level key, an escaped key, a records field that is not an
//! array or `null`, nesting deeper than [`MAX_DEPTH`] — is [`Unusual`]: the
//! caller reads the page with a full JSON parser instead, which also words
//! the error.

use std::ops::Range;

/// Deepest nesting accepted (below serde_json's recursion limit of 128, so
/// anything deeper goes the serde way).
pub const MAX_DEPTH: u32 = 100;

/// The body is not the plain page [`scan_page`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unusual;

/// What an element of the records array is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A JSON object with no whitespace outside its strings: a record as is.
    Compact,
    /// A JSON object holding whitespace outside strings (pretty-printed):
    /// a record once compacted. Its fields are not looked up here.
    Spaced,
    /// Not an object (an array, string, number, boolean or `null`).
    Other,
}

/// One element of the records array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// Where it is in the body.
    pub span: Range<usize>,
    /// What it is.
    pub kind: Kind,
}

/// A page read by [`scan_page`]; every range is into the scanned body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageScan {
    /// The body's top-level fields other than the records field: the key
    /// (inside its quotes, never escaped) and the raw value.
    pub object: Vec<(Range<usize>, Range<usize>)>,
    /// The records field's elements in order; `None` when the field is
    /// missing or `null`.
    pub records: Option<Vec<Element>>,
    /// For each element, one entry per requested field, in the order asked:
    /// the raw value of the first occurrence of that top-level key, `None`
    /// when it is absent or `null` (and for elements that are not
    /// [`Kind::Compact`] records).
    pub fields: Vec<Option<Range<usize>>>,
}

/// Reads a JSON object `body` whose top-level field `records_key` holds an
/// array of records, finding top-level `fields` of each record (see the
/// crate docs). A page that would take more than `max_entries` elements plus
/// field entries to describe is unusual (it bounds what a caller allocates
/// for a hostile page).
///
/// ```
/// let body = br#"{"ok":1,"result":[{"_id":"a","ts":7},[1]]}"#;
/// let page = siphon_scan::scan_page(body, "result", &["_id", "ts"], usize::MAX).map_err(|_| "unusual")?;
/// let records = page.records.ok_or("no records")?;
/// assert_eq!(&body[records[0].span.clone()], br#"{"_id":"a","ts":7}"#);
/// assert_eq!(page.fields[1].clone().map(|f| &body[f]), Some(&b"7"[..]));
/// assert_eq!(records[1].kind, siphon_scan::Kind::Other);
/// # Ok::<(), &str>(())
/// ```
pub fn scan_page(body: &[u8], records_key: &str, fields: &[&str], max_entries: usize) -> Result<PageScan, Unusual> {
    std::str::from_utf8(body).map_err(|_| Unusual)?;
    let mut s = Scanner { b: body, i: 0, ws: false, max_entries };
    let mut page = PageScan::default();
    let mut seen_records = false;
    s.skip_ws();
    s.expect(b'{')?;
    s.skip_ws();
    if s.peek() == Some(b'}') {
        s.i += 1;
    } else {
        loop {
            s.skip_ws();
            let key = s.key()?;
            s.skip_ws();
            s.expect(b':')?;
            s.skip_ws();
            if &body[key.clone()] == records_key.as_bytes() {
                if seen_records {
                    return Err(Unusual);
                }
                seen_records = true;
                page.records = s.records(fields, &mut page.fields)?;
            } else {
                if page.object.iter().any(|(k, _)| body[k.clone()] == body[key.clone()]) {
                    return Err(Unusual);
                }
                let start = s.i;
                s.value(1)?;
                page.object.push((key, start..s.i));
                if page.object.len() > s.max_entries {
                    return Err(Unusual);
                }
            }
            s.skip_ws();
            match s.next()? {
                b',' => {}
                b'}' => break,
                _ => return Err(Unusual),
            }
        }
    }
    s.skip_ws();
    if s.i != body.len() {
        return Err(Unusual);
    }
    Ok(page)
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    /// Whitespace was skipped since last reset (a record needs compacting).
    ws: bool,
    max_entries: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Result<u8, Unusual> {
        let c = *self.b.get(self.i).ok_or(Unusual)?;
        self.i += 1;
        Ok(c)
    }

    fn expect(&mut self, c: u8) -> Result<(), Unusual> {
        if self.next()? == c { Ok(()) } else { Err(Unusual) }
    }

    fn skip_ws(&mut self) {
        let start = self.i;
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
        self.ws |= self.i != start;
    }

    /// An object key without its quotes; one holding an escape is unusual
    /// (it would have to be decoded before it is compared).
    fn key(&mut self) -> Result<Range<usize>, Unusual> {
        let start = self.i;
        if self.peek() != Some(b'"') || self.string()? {
            return Err(Unusual);
        }
        Ok(start + 1..self.i - 1)
    }

    /// The records array (or `null`); pushes `fields.len()` entries per
    /// element to `found`.
    fn records(
        &mut self,
        fields: &[&str],
        found: &mut Vec<Option<Range<usize>>>,
    ) -> Result<Option<Vec<Element>>, Unusual> {
        match self.peek() {
            Some(b'n') => {
                self.literal(b"null")?;
                return Ok(None);
            }
            Some(b'[') => self.i += 1,
            _ => return Err(Unusual),
        }
        let mut out = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(Some(out));
        }
        loop {
            self.skip_ws();
            let start = self.i;
            self.ws = false;
            let at = found.len();
            if out.len() + at + fields.len() >= self.max_entries {
                return Err(Unusual);
            }
            found.resize(at + fields.len(), None);
            let kind = if self.peek() == Some(b'{') {
                self.record_object(fields, &mut found[at..])?;
                if self.ws {
                    found[at..].fill(None);
                    Kind::Spaced
                } else {
                    Kind::Compact
                }
            } else {
                self.value(2)?;
                Kind::Other
            };
            out.push(Element { span: start..self.i, kind });
            self.skip_ws();
            match self.next()? {
                b',' => {}
                b']' => break,
                _ => return Err(Unusual),
            }
        }
        Ok(Some(out))
    }

    /// A record object at depth 2, noting where `fields` are in `found`.
    fn record_object(&mut self, fields: &[&str], found: &mut [Option<Range<usize>>]) -> Result<(), Unusual> {
        // `null` counts as absent, but a later duplicate must not win over
        // it: its slot is taken with an empty range until the end.
        self.expect(b'{')?;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.skip_ws();
            let key = self.key()?;
            self.skip_ws();
            self.expect(b':')?;
            self.skip_ws();
            let start = self.i;
            self.value(3)?;
            let key = &self.b[key];
            if let Some(slot) = fields.iter().position(|f| f.as_bytes() == key)
                && found[slot].is_none()
            {
                found[slot] = Some(if &self.b[start..self.i] == b"null" { 0..0 } else { start..self.i });
            }
            self.skip_ws();
            match self.next()? {
                b',' => {}
                b'}' => break,
                _ => return Err(Unusual),
            }
        }
        for slot in found {
            if slot.as_ref().is_some_and(|r| r.is_empty()) {
                *slot = None;
            }
        }
        Ok(())
    }

    /// Skips one value starting at `i`, validating it.
    fn value(&mut self, depth: u32) -> Result<(), Unusual> {
        match self.peek().ok_or(Unusual)? {
            b'"' => self.string().map(|_| ()),
            b'{' => self.container(depth, b'}', |s| {
                if s.peek() != Some(b'"') {
                    return Err(Unusual);
                }
                s.string()?;
                s.skip_ws();
                s.expect(b':')?;
                s.skip_ws();
                s.value(depth + 1)
            }),
            b'[' => self.container(depth, b']', |s| s.value(depth + 1)),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(Unusual),
        }
    }

    /// An object or array at `i` (by `close`), each member read by `member`.
    fn container(
        &mut self,
        depth: u32,
        close: u8,
        mut member: impl FnMut(&mut Self) -> Result<(), Unusual>,
    ) -> Result<(), Unusual> {
        if depth > MAX_DEPTH {
            return Err(Unusual);
        }
        self.i += 1;
        self.skip_ws();
        if self.peek() == Some(close) {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.skip_ws();
            member(self)?;
            self.skip_ws();
            match self.next()? {
                b',' => {}
                c if c == close => return Ok(()),
                _ => return Err(Unusual),
            }
        }
    }

    fn literal(&mut self, lit: &[u8]) -> Result<(), Unusual> {
        if self.b[self.i..].starts_with(lit) {
            self.i += lit.len();
            Ok(())
        } else {
            Err(Unusual)
        }
    }

    /// JSON number grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Result<(), Unusual> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.next()? {
            b'0' => {
                if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    return Err(Unusual);
                }
            }
            b'1'..=b'9' => self.digits(),
            _ => return Err(Unusual),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            self.some_digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            self.some_digits()?;
        }
        Ok(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
    }

    fn some_digits(&mut self) -> Result<(), Unusual> {
        let start = self.i;
        self.digits();
        if self.i == start { Err(Unusual) } else { Ok(()) }
    }

    /// Skips a string starting at its opening quote; returns whether it held
    /// an escape. Control characters are refused, as serde_json does.
    fn string(&mut self) -> Result<bool, Unusual> {
        self.expect(b'"')?;
        let mut escaped = false;
        loop {
            self.i += special_offset(self.b.get(self.i..).unwrap_or_default());
            match self.next()? {
                b'"' => return Ok(escaped),
                b'\\' => {
                    escaped = true;
                    match self.next()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => {
                            for _ in 0..4 {
                                if !self.next()?.is_ascii_hexdigit() {
                                    return Err(Unusual);
                                }
                            }
                        }
                        _ => return Err(Unusual),
                    }
                }
                // A control character (the only other byte that stops the skip).
                _ => return Err(Unusual),
            }
        }
    }
}

/// How many leading bytes of `b` are ordinary string content: not `"`, not
/// `\` and not a control character (below 0x20); `b.len()` when all are.
/// Sixteen bytes a step with SSE2 on x86_64 (the host), eight a step in
/// one 64-bit word elsewhere (components).
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[inline]
pub fn special_offset(b: &[u8]) -> usize {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    let mut at = 0;
    // SAFETY: SSE2 is part of every x86_64 CPU (the target's baseline), and
    // each load reads 16 bytes at `at` only while `at + 16 <= b.len()`; an
    // unaligned load has no alignment requirement.
    unsafe {
        let (quote, backslash, below) = (_mm_set1_epi8(b'"' as i8), _mm_set1_epi8(b'\\' as i8), _mm_set1_epi8(0x1f));
        while at + 16 <= b.len() {
            let x = _mm_loadu_si128(b.as_ptr().add(at).cast::<__m128i>());
            // x <= 0x1f exactly when max(x, 0x1f) == 0x1f (unsigned bytes).
            let control = _mm_cmpeq_epi8(_mm_max_epu8(x, below), below);
            let special = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, backslash)), control);
            let mask = _mm_movemask_epi8(special) as u32;
            if mask != 0 {
                return at + mask.trailing_zeros() as usize;
            }
            at += 16;
        }
    }
    at + special_offset_words(&b[at..])
}

/// [`special_offset`] without SSE2.
#[cfg(not(target_arch = "x86_64"))]
pub fn special_offset(b: &[u8]) -> usize {
    special_offset_words(b)
}

/// [`special_offset`] eight bytes per step in a 64-bit word (SWAR).
fn special_offset_words(b: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while i + 8 <= b.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&b[i..i + 8]);
        let x = u64::from_le_bytes(word);
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        // A byte is flagged when it is zero (quote/backslash matched) or
        // below 0x20; the lowest flag is exact (borrows only run upwards).
        let hits = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (x.wrapping_sub(ONES * 0x20) & !x);
        let hits = hits & HIGH;
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < b.len() && !matches!(b[i], b'"' | b'\\' | 0..=0x1f) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::{special_offset, special_offset_words};

    #[test]
    fn special_offset_ends_at_the_first_special_byte() {
        let special = |c: u8| c == b'"' || c == b'\\' || c < 0x20;
        let long = "x".repeat(40);
        for short in
            ["", "abc", "abcdefgh", "abcdefghij\"", "ab\\", "abcdefghijklmnop\u{1f}x", "é\"", "\"", "\u{7f}\u{80}ÿ"]
        {
            for text in [short.to_owned(), format!("{long}{short}"), format!("{short}{long}")] {
                let b = text.as_bytes();
                for from in [0, 3, 17] {
                    let rest = b.get(from..).unwrap_or_default();
                    let expected = rest.iter().position(|&c| special(c)).unwrap_or(rest.len());
                    assert_eq!(special_offset(rest), expected, "{text:?} from {from}");
                    assert_eq!(special_offset_words(rest), expected, "words: {text:?} from {from}");
                }
            }
        }
    }
}
