//! Request signing: HMAC-SHA1, HMAC-SHA256 and base64 (cargo feature
//! `crypto`, off by default so that collectors without signed requests do
//! not carry the code).
//!
//! Built on the RustCrypto `hmac`, `sha1` and `sha2` crates and `base64`,
//! all pure Rust and free of `getrandom`. For example Mimecast API 1.0 signs
//! each request as `base64(HMAC-SHA1(base64decode(secret), "date:id:uri:app_key"))`:
//!
//! ```
//! use siphon_sdk::data::crypto::{base64_decode, base64_encode, hmac_sha1};
//!
//! let secret = base64_decode("c2VjcmV0")?;
//! let signature = base64_encode(&hmac_sha1(&secret, b"date:id:/api/x:key"));
//! assert_eq!(signature.len(), 28);
//! # Ok::<(), siphon_sdk::data::crypto::Base64Error>(())
//! ```

use std::fmt;

use base64::Engine;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD, URL_SAFE_NO_PAD};
use hmac::Hmac;
use hmac::digest::{Digest, KeyInit, Mac};
use sha1::Sha1;
use sha2::Sha256;

/// Standard alphabet; decoding takes the text with or without `=` padding.
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// URL-safe alphabet; decoding takes the text with or without `=` padding.
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// HMAC-SHA1 (RFC 2104) of `message` under `key` (any length).
pub fn hmac_sha1(key: &[u8], message: &[u8]) -> [u8; 20] {
    let mut mac = Hmac::<Sha1>::new(&key_block::<Sha1>(key));
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key` (any length).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new(&key_block::<Sha256>(key));
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// SHA-1 of `bytes` (for vendor protocols that still ask for it; use
/// [`super::hash::sha256`] for anything new).
pub fn sha1(bytes: &[u8]) -> [u8; 20] {
    Sha1::digest(bytes).into()
}

/// RFC 2104's key preparation: a key longer than the hash's block is
/// hashed, then the key is padded with zeros to one block. Done here so that
/// the fixed-size `KeyInit::new` applies and no fallible constructor is
/// needed for what cannot fail.
fn key_block<D>(key: &[u8]) -> hmac::digest::Key<Hmac<D>>
where
    D: Digest + hmac::EagerHash,
    Hmac<D>: KeyInit,
{
    let mut block = hmac::digest::Key::<Hmac<D>>::default();
    if key.len() > block.len() {
        let digest = D::digest(key);
        block[..digest.len()].copy_from_slice(&digest);
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    block
}

/// Standard base64 (RFC 4648 §4) with `=` padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes standard base64, with or without padding; ASCII whitespace
/// (line breaks of wrapped text, a stray newline in a secret) is ignored.
pub fn base64_decode(text: &str) -> Result<Vec<u8>, Base64Error> {
    decode(&STANDARD_LENIENT, text)
}

/// URL-safe base64 (RFC 4648 §5) without padding, as in JWTs.
pub fn base64url_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes URL-safe base64, with or without padding; ASCII whitespace is
/// ignored.
pub fn base64url_decode(text: &str) -> Result<Vec<u8>, Base64Error> {
    decode(&URL_SAFE_LENIENT, text)
}

fn decode(engine: &GeneralPurpose, text: &str) -> Result<Vec<u8>, Base64Error> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    // The error names the position, never the text: it may be a secret.
    engine.decode(compact).map_err(|e| Base64Error(e.to_string()))
}

/// Why a text is not base64. The message never quotes the text, which may
/// be a secret. Converts into [`Error::Vendor`](crate::Error::Vendor); map
/// it to [`Error::Config`](crate::Error::Config) yourself when the text is
/// a configured secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base64Error(String);

impl fmt::Display for Base64Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not valid base64: {}", self.0)
    }
}

impl std::error::Error for Base64Error {}

impl From<Base64Error> for crate::Error {
    fn from(e: Base64Error) -> Self {
        crate::Error::Vendor(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::hash::hex;

    const LONG_DATA: &[u8] = b"Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data";
    const HASH_KEY_FIRST: &[u8] = b"Test Using Larger Than Block-Size Key - Hash Key First";

    #[test]
    fn hmac_sha1_rfc2202_vectors() {
        assert_eq!(hex(&hmac_sha1(&[0x0b; 20], b"Hi There")), "b617318655057264e28bc0b6fb378c8ef146be00");
        assert_eq!(
            hex(&hmac_sha1(b"Jefe", b"what do ya want for nothing?")),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        assert_eq!(hex(&hmac_sha1(&[0xaa; 80], HASH_KEY_FIRST)), "aa4ae5e15272d00e95705637ce8a3b55ed402112");
        assert_eq!(hex(&hmac_sha1(&[0xaa; 80], LONG_DATA)), "e8e99d0f45237d786d6bbaa7965c7808bbff1a91");
    }

    #[test]
    fn hmac_sha256_rfc4231_vectors() {
        assert_eq!(
            hex(&hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block is hashed first.
        assert_eq!(
            hex(&hmac_sha256(&[0xaa; 131], HASH_KEY_FIRST)),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn hmac_keys_at_the_block_size_boundary() {
        // 64 bytes is used as is; 65 bytes is hashed: the results differ
        // from each other and from the hashed key used directly.
        let at = hmac_sha256(&[7; 64], b"m");
        let over = hmac_sha256(&[7; 65], b"m");
        assert_ne!(at, over);
        assert_eq!(over, hmac_sha256(&crate::data::hash::sha256(&[7; 65]), b"m"));
        assert_eq!(hmac_sha1(&[7; 65], b"m"), hmac_sha1(&sha1(&[7; 65]), b"m"));
        assert_eq!(hmac_sha1(b"", b""), hmac_sha1(&[0; 64], b""));
    }

    #[test]
    fn sha1_known_vector() {
        assert_eq!(hex(&sha1(b"abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
    }

    #[test]
    fn base64_rfc4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
            assert_eq!(base64_decode(encoded).unwrap(), plain.as_bytes());
            assert_eq!(base64_decode(encoded.trim_end_matches('=')).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn base64_decode_is_lenient_about_whitespace_only() {
        assert_eq!(base64_decode("Zm9v\r\nYmFy\n").unwrap(), b"foobar");
        let e = base64_decode("Zm9v!").unwrap_err();
        assert!(e.to_string().starts_with("not valid base64: "), "{e}");
        assert!(!e.to_string().contains("Zm9v"), "the text may be a secret");
        assert!(base64_decode("Z").is_err());
        assert!(matches!(crate::Error::from(e), crate::Error::Vendor(_)));
    }

    #[test]
    fn base64url_round_trips() {
        let bytes = [0xfb, 0xff, 0xfe];
        assert_eq!(base64_encode(&bytes), "+//+");
        assert_eq!(base64url_encode(&bytes), "-__-");
        assert_eq!(base64url_decode("-__-").unwrap(), bytes);
        assert_eq!(base64url_decode("Zg==").unwrap(), b"f");
        assert!(base64url_decode("+//+").is_err());
    }
}
