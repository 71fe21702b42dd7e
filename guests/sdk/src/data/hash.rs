//! Record keys: stable content hashes for vendors without ids, and a
//! bounded set of recent keys for dropping duplicates.
//!
//! A [`RecordKey`] is 128 bits of SHA-256. Keys are persisted in checkpoints
//! (e.g. the keys of the records at a cursor's boundary timestamp), so their
//! definition is part of the cursor format and **never changes**:
//!
//! - [`RecordKey::of_content`]: the first 16 bytes of SHA-256 of the record's
//!   JSON text as emitted (compacted, see [`crate::sink::compact`]), so the
//!   same vendor record sent with different whitespace gets the same key; a
//!   different key order or number spelling is a different record. It
//!   equals `printf %s "$record" | sha256sum | cut -c1-32`.
//! - [`RecordKey::of_parts`]: the first 16 bytes of SHA-256 of the parts
//!   written as netstrings (`<decimal length>:<bytes>,` each), so `["ab",
//!   "c"]` and `["a", "bc"]` differ; [`RecordKey::of_id`] is one part.
//!
//! The text form is 32 lower-case hex digits. The tests pin known values, so
//! a change to any of this fails them.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::Record;

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// SHA-256 of `bytes` as 64 lower-case hex digits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&sha256(bytes))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// The bytes of hex text (either case); `None` when `text` is not hex or
/// has an odd length.
pub fn parse_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| char::from(c).to_digit(16);
    text.as_bytes().chunks(2).map(|pair| Some((digit(pair[0])? << 4 | digit(pair[1])?) as u8)).collect()
}

/// A 128-bit key of a record, for dedup and for checkpoints; see the
/// [module docs](self) for its exact, stable definition.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordKey([u8; 16]);

impl RecordKey {
    /// The key of a record's content, for vendors whose records have no id.
    pub fn of_content(record: &Record) -> Self {
        Self::of_bytes(record.as_str().as_bytes())
    }

    /// The first 16 bytes of SHA-256 of `bytes`.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self::truncate(sha256(bytes))
    }

    /// The key of a vendor's record id (`of_parts(&[id])`), so that ids of
    /// any length take the same 16 bytes of memory.
    pub fn of_id(id: &str) -> Self {
        Self::of_parts(&[id])
    }

    /// The key of several fields that together identify a record, e.g.
    /// `[alert_type, id]`.
    pub fn of_parts(parts: &[&str]) -> Self {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update(part.len().to_string().as_bytes());
            hasher.update(b":");
            hasher.update(part.as_bytes());
            hasher.update(b",");
        }
        Self::truncate(hasher.finalize().into())
    }

    /// The key's 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// A key from its 16 bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    fn truncate(digest: [u8; 32]) -> Self {
        let mut key = [0; 16];
        key.copy_from_slice(&digest[..16]);
        Self(key)
    }
}

impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordKey({self})")
    }
}

/// Why a text is not a [`RecordKey`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidKey(String);

impl fmt::Display for InvalidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a record key (32 hex digits): {:?}", self.0)
    }
}

impl std::error::Error for InvalidKey {}

impl FromStr for RecordKey {
    type Err = InvalidKey;

    /// Reads the 32-hex-digit text form.
    fn from_str(text: &str) -> Result<Self, InvalidKey> {
        let bytes = parse_hex(text).ok_or_else(|| InvalidKey(super::excerpt(text)))?;
        <[u8; 16]>::try_from(bytes).map(Self).map_err(|_| InvalidKey(super::excerpt(text)))
    }
}

impl Serialize for RecordKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex(&self.0))
    }
}

impl<'de> Deserialize<'de> for RecordKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = RecordKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a record key (32 hex digits)")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<RecordKey, E> {
                text.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// The most recent `capacity` distinct keys, for dropping duplicates in
/// bounded memory (about 40 bytes a key): when full, inserting a new key
/// forgets the oldest.
///
/// ```
/// use siphon_sdk::data::hash::{RecentKeys, RecordKey};
///
/// let mut seen = RecentKeys::new(2);
/// assert!(seen.insert(RecordKey::of_id("a")));
/// assert!(!seen.insert(RecordKey::of_id("a")), "a duplicate");
/// seen.insert(RecordKey::of_id("b"));
/// seen.insert(RecordKey::of_id("c")); // forgets "a"
/// assert!(seen.insert(RecordKey::of_id("a")));
/// ```
#[derive(Debug, Clone)]
pub struct RecentKeys {
    capacity: usize,
    order: VecDeque<RecordKey>,
    set: HashSet<RecordKey, KeyBits>,
}

/// Hashes a [`RecordKey`] by its own bits: keys are SHA-256 or keyed
/// SipHash outputs, already uniform and not choosable by a vendor, so
/// hashing them again (SipHash, the std default) was pure cost per record.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyBits;

impl std::hash::BuildHasher for KeyBits {
    type Hasher = KeyBitsHasher;

    fn build_hasher(&self) -> KeyBitsHasher {
        KeyBitsHasher(0)
    }
}

/// The [`KeyBits`] hasher: folds the key's bytes into a word.
#[derive(Debug, Clone, Copy)]
pub struct KeyBitsHasher(u64);

impl std::hash::Hasher for KeyBitsHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl RecentKeys {
    /// An empty set that holds at most `capacity` keys (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self { capacity, order: VecDeque::new(), set: HashSet::with_hasher(KeyBits) }
    }

    /// A set holding `keys` (oldest first, e.g. from a checkpoint), of
    /// which only the last `capacity` are kept.
    pub fn with_keys(capacity: usize, keys: impl IntoIterator<Item = RecordKey>) -> Self {
        let mut set = Self::new(capacity);
        for key in keys {
            set.insert(key);
        }
        set
    }

    /// Adds `key`; true when it was not in the set (the record is new),
    /// false for a duplicate (which does not refresh its age).
    pub fn insert(&mut self, key: RecordKey) -> bool {
        if !self.set.insert(key) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.set.remove(&oldest);
        }
        true
    }

    /// Whether `key` is in the set.
    pub fn contains(&self, key: &RecordKey) -> bool {
        self.set.contains(key)
    }

    /// The number of keys held.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The most keys held at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The keys, oldest first (the order [`RecentKeys::with_keys`] takes).
    pub fn iter(&self) -> impl Iterator<Item = &RecordKey> {
        self.order.iter()
    }

    /// Forgets every key.
    pub fn clear(&mut self) {
        self.order.clear();
        self.set.clear();
    }
}

/// A cursor's high-water mark for lists whose time filter includes its own
/// value, or whose records share timestamps: the newest position delivered
/// and the keys of the records delivered *at* it. The next query starts at
/// the position itself and drops exactly those records, so neither an
/// inclusive filter nor a page boundary between equal timestamps repeats or
/// skips one. Persisted as `{"at": 1722300000000, "keys": ["<32 hex>", …]}`.
///
/// ```
/// use siphon_sdk::data::hash::{RecordKey, Watermark};
///
/// let (a, b) = (RecordKey::of_id("a"), RecordKey::of_id("b"));
/// let mut mark = Watermark::new(100);
/// assert!(mark.admits(100, &a) && !mark.admits(99, &a));
/// mark.advance(100, a);
/// assert!(!mark.admits(100, &a), "delivered at the mark");
/// assert!(mark.admits(100, &b), "same time, another record");
/// mark.advance(101, b);
/// assert_eq!((mark.at, mark.keys.as_slice()), (101, [b].as_slice()));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Watermark {
    /// The newest position delivered (e.g. epoch ms).
    pub at: u64,
    /// Keys of the records delivered at `at`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<RecordKey>,
}

impl Watermark {
    /// A mark at `at` with no record delivered there yet (e.g. a first run's
    /// look-back start).
    pub fn new(at: u64) -> Self {
        Self { at, keys: Vec::new() }
    }

    /// True for a record past the mark: a later position, or the mark's own
    /// with a key not delivered yet.
    pub fn admits(&self, at: u64, key: &RecordKey) -> bool {
        at > self.at || (at == self.at && !self.keys.contains(key))
    }

    /// Takes a delivered record in: a later position moves the mark there
    /// (forgetting the old keys), the mark's own position adds the key, an
    /// earlier one changes nothing.
    pub fn advance(&mut self, at: u64, key: RecordKey) {
        self.advance_to(at);
        if at == self.at && !self.keys.contains(&key) {
            self.keys.push(key);
        }
    }

    /// Moves the mark to `at` when that is later, with no keys (nothing was
    /// delivered there, e.g. the end of a queried window).
    pub fn advance_to(&mut self, at: u64) {
        if at > self.at {
            *self = Self::new(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watermark_keeps_the_keys_at_its_position_only() {
        let k = |i: u32| RecordKey::of_id(&i.to_string());
        let mut mark = Watermark::new(10);
        for (at, i) in [(10, 0), (12, 1), (12, 2), (12, 2), (11, 3)] {
            mark.advance(at, k(i));
        }
        assert_eq!(mark, Watermark { at: 12, keys: vec![k(1), k(2)] }, "an earlier record changes nothing");
        assert!(!mark.admits(12, &k(2)) && mark.admits(12, &k(9)) && mark.admits(13, &k(2)) && !mark.admits(11, &k(9)));
        mark.advance_to(12);
        assert_eq!(mark.keys.len(), 2, "advancing to the same position keeps its keys");
        mark.advance_to(20);
        assert_eq!(mark, Watermark::new(20));
        let json = serde_json::to_string(&Watermark { at: 5, keys: vec![k(1)] }).unwrap();
        assert_eq!(json, format!(r#"{{"at":5,"keys":["{}"]}}"#, k(1)));
        assert_eq!(serde_json::from_str::<Watermark>(r#"{"at":7}"#).unwrap(), Watermark::new(7));
        assert_eq!(serde_json::to_string(&Watermark::new(7)).unwrap(), r#"{"at":7}"#);
    }

    #[test]
    fn sha256_known_vectors() {
        // FIPS 180-2 examples.
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(sha256_hex(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    #[test]
    fn content_keys_are_pinned() {
        // These values are persisted in checkpoints: they must never change.
        let record = Record::parse("{ \"a\": 1 }").unwrap();
        assert_eq!(RecordKey::of_content(&record).to_string(), sha256_hex(b"{\"a\":1}")[..32]);
        assert_eq!(RecordKey::of_content(&record).to_string(), "015abd7f5cc57a2dd94b7590f04ad808");
        assert_eq!(RecordKey::of_id("abc").to_string(), sha256_hex(b"3:abc,")[..32]);
        assert_eq!(RecordKey::of_id("abc").to_string(), "d7863618cccd3bb7b6a1e37bb28ab7d0");
        assert_eq!(RecordKey::of_parts(&["dlp", "42"]).to_string(), sha256_hex(b"3:dlp,2:42,")[..32]);
    }

    #[test]
    fn parts_are_unambiguous() {
        assert_ne!(RecordKey::of_parts(&["ab", "c"]), RecordKey::of_parts(&["a", "bc"]));
        assert_ne!(RecordKey::of_parts(&["a"]), RecordKey::of_parts(&["a", ""]));
        assert_ne!(RecordKey::of_id("a"), RecordKey::of_bytes(b"a"));
    }

    #[test]
    fn whitespace_does_not_change_a_content_key() {
        let a = Record::parse("{\"a\": [1, 2]}").unwrap();
        let b = Record::parse("{\n  \"a\" : [ 1,2 ]\n}").unwrap();
        assert_eq!(RecordKey::of_content(&a), RecordKey::of_content(&b));
        let reordered = Record::parse("{\"b\":1,\"a\":2}").unwrap();
        assert_ne!(
            RecordKey::of_content(&reordered),
            RecordKey::of_content(&Record::parse("{\"a\":2,\"b\":1}").unwrap())
        );
    }

    #[test]
    fn key_text_and_serde_round_trip() {
        let key = RecordKey::of_id("x");
        assert_eq!(key.to_string().parse::<RecordKey>().unwrap(), key);
        assert_eq!(key.to_string().to_uppercase().parse::<RecordKey>().unwrap(), key);
        let json = serde_json::to_string(&vec![key]).unwrap();
        assert_eq!(json, format!("[\"{key}\"]"));
        assert_eq!(serde_json::from_str::<Vec<RecordKey>>(&json).unwrap(), [key]);
        assert!(serde_json::from_str::<RecordKey>("\"abc\"").is_err());
        assert!(serde_json::from_str::<RecordKey>("12").is_err());
        assert_eq!("zz".parse::<RecordKey>().unwrap_err().to_string(), "not a record key (32 hex digits): \"zz\"");
        assert_eq!(RecordKey::from_bytes(*key.as_bytes()), key);
        assert_eq!(format!("{key:?}"), format!("RecordKey({key})"));
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(parse_hex("000fA0ff").unwrap(), [0, 0x0f, 0xa0, 0xff]);
        assert!(parse_hex("abc").is_none());
        assert!(parse_hex("0g").is_none());
        assert!(parse_hex("+1").is_none());
        assert_eq!(parse_hex("").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn recent_keys_forget_the_oldest() {
        let k = |i: u32| RecordKey::of_id(&i.to_string());
        let mut seen = RecentKeys::new(3);
        for i in 0..3 {
            assert!(seen.insert(k(i)));
        }
        assert!(!seen.insert(k(0)));
        assert_eq!(seen.len(), 3);
        assert!(seen.insert(k(3)));
        assert!(!seen.contains(&k(0)));
        assert!(seen.contains(&k(1)));
        assert_eq!(seen.iter().copied().collect::<Vec<_>>(), [k(1), k(2), k(3)]);
        let restored = RecentKeys::with_keys(2, seen.iter().copied());
        assert_eq!(restored.iter().copied().collect::<Vec<_>>(), [k(2), k(3)]);
        assert_eq!(restored.capacity(), 2);
        seen.clear();
        assert!(seen.is_empty());
        assert_eq!(RecentKeys::new(0).capacity(), 1);
    }

    #[test]
    fn recent_keys_stay_bounded() {
        let mut seen = RecentKeys::new(100);
        for i in 0..10_000u32 {
            seen.insert(RecordKey::of_bytes(&i.to_le_bytes()));
        }
        assert_eq!((seen.len(), seen.set.len()), (100, 100));
    }
}
