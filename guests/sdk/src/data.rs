//! The data kit: the small parsers and encoders that vendor collectors keep
//! needing, each pure (no I/O except [`random_bytes`]) and unit-tested
//! natively.
//!
//! | Module | Owns |
//! |---|---|
//! | [`time`] | timestamps ↔ epoch milliseconds: epoch s/ms, RFC 3339, `+0000` offsets, `YYYY-MM-DD`, RFC 1123 |
//! | [`json`] | byte-exact [`Record`](crate::Record)s from a JSON array (or one object), fields of raw JSON, lenient numbers |
//! | [`ndjson`] | records from newline-delimited JSON, bad lines named by number |
//! | [`compress`] | gunzip (multi-member) and unzip, each with a size cap |
//! | [`hash`] | content keys for records without ids, a bounded set of recent keys, hex |
//! | `crypto` | HMAC-SHA1 / HMAC-SHA256 and base64 (cargo feature `crypto`) |
//! | [`random`] | random bytes from `wasi:random` and UUID v4 text |
//!
//! Every error type here converts into [`Error::Vendor`](crate::Error::Vendor)
//! with `?`: the data came from the vendor, so data it cannot be read from is
//! the vendor's failure.
//!
//! Everything builds on both guest routes (`wasm32-wasip2` and the Debian
//! `wasm32-unknown-unknown` route): no dependency here uses `getrandom`, the
//! system clock or C code.

pub mod compress;
#[cfg(feature = "crypto")]
pub mod crypto;
pub mod hash;
pub mod json;
pub mod ndjson;
pub mod random;
pub mod time;

pub use random::{random_bytes, uuid_v4};

/// Shortens vendor input quoted in an error message, so a multi-megabyte
/// body never lands in a log line.
pub(crate) fn excerpt(text: &str) -> String {
    const MAX_CHARS: usize = 80;
    match text.char_indices().nth(MAX_CHARS) {
        None => text.to_string(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_cuts_long_text_on_a_char_boundary() {
        assert_eq!(excerpt("short"), "short");
        let long = "é".repeat(100);
        let cut = excerpt(&long);
        assert_eq!(cut.chars().count(), 81);
        assert!(cut.ends_with('…'));
    }
}
