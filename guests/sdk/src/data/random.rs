//! Random bytes and UUID v4 text.
//!
//! Inside a component the bytes come from `wasi:random/random`'s
//! `get-random-bytes`, which the host fills from a cryptographically secure
//! generator. A native build (unit tests) has no host: it uses a simple
//! time-and-counter source that is **not** secure; see `src/sys/native.rs`.
//! std's own randomness (`getrandom`) is not used: it does not exist on the
//! `wasm32-unknown-unknown` guest route.

use crate::sys;

/// `len` random bytes (cryptographically secure in a component).
pub fn random_bytes(len: usize) -> Vec<u8> {
    sys::random_bytes(len)
}

/// A fresh random UUID (version 4) as 36 lower-case characters, e.g.
/// `1b4e28ba-2fa1-4d2a-8f3c-6c3c4b1e7a5d`, as request ids (Mimecast's
/// `x-mc-req-id`) and nonces want.
pub fn uuid_v4() -> String {
    uuid_v4_from(&mut crate::io::HostIo)
}

/// A fresh UUID v4 from the run's [`Io`](crate::io::Io): `wasi:random` inside a component, the
/// deterministic bytes of [`crate::testing::FakeIo`] in a native test, so a collector that puts
/// request ids into signed requests (Mimecast's `x-mc-req-id`) can assert them.
pub fn uuid_v4_from(io: &mut dyn crate::io::Io) -> String {
    let mut bytes = [0; 16];
    for (byte, random) in bytes.iter_mut().zip(io.random_bytes(16)) {
        *byte = random;
    }
    format_uuid_v4(bytes)
}

/// The UUID v4 text of 16 random bytes: sets the version nibble to 4 and
/// the variant bits to `10` (RFC 9562 §5.4), then writes 8-4-4-4-12 hex
/// digits.
pub fn format_uuid_v4(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = super::hash::hex(&bytes);
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn format_sets_version_and_variant() {
        assert_eq!(format_uuid_v4([0; 16]), "00000000-0000-4000-8000-000000000000");
        assert_eq!(format_uuid_v4([0xff; 16]), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let bytes: [u8; 16] = std::array::from_fn(|i| i as u8 * 17);
        assert_eq!(format_uuid_v4(bytes), "00112233-4455-4677-8899-aabbccddeeff");
    }

    #[test]
    fn uuid_v4_has_the_right_shape() {
        let id = uuid_v4();
        assert_eq!(id.len(), 36);
        let dashes: Vec<usize> = id.match_indices('-').map(|(i, _)| i).collect();
        assert_eq!(dashes, [8, 13, 18, 23]);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }

    #[test]
    fn uuids_from_a_fake_host_are_repeatable() {
        let fake = || crate::testing::FakeIo::new(crate::testing::Script::default());
        let (mut a, mut b) = (fake(), fake());
        let first = uuid_v4_from(&mut a);
        assert_eq!(first, uuid_v4_from(&mut b), "the same fake gives the same ids");
        assert_ne!(first, uuid_v4_from(&mut a), "and a fresh one per call");
        assert_eq!((first.len(), &first[14..15]), (36, "4"));
    }

    #[test]
    fn random_values_differ() {
        let ids: HashSet<String> = (0..1000).map(|_| uuid_v4()).collect();
        assert_eq!(ids.len(), 1000);
        assert_eq!(random_bytes(0).len(), 0);
        assert_eq!(random_bytes(33).len(), 33);
        assert_ne!(random_bytes(16), random_bytes(16));
    }
}
