//! gzip and zip, with a cap on the decompressed size.
//!
//! A few hundred kilobytes of gzip can inflate to gigabytes, and a guest
//! that tries is killed by the host's memory limit with no useful message.
//! So every function here takes `cap`, the most decompressed bytes it will
//! produce, and fails with [`CompressError::TooLarge`] naming the cap as soon
//! as the output would pass it — without ever holding more than `cap + 1`
//! bytes. Pick a cap below the host's memory limit for the source.
//!
//! Decompression is flate2 on the pure-Rust miniz_oxide backend, which builds
//! on both guest routes.

use std::borrow::Cow;
use std::fmt;
use std::io::Read;

use flate2::read::MultiGzDecoder;

mod zip;

pub use zip::{ZipEntry, unzip, unzip_file, zip_names};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Why compressed data cannot be read. Converts into
/// [`Error::Vendor`](crate::Error::Vendor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompressError {
    /// The decompressed data would be larger than `cap` bytes.
    TooLarge {
        /// The cap that was passed, in bytes.
        cap: usize,
    },
    /// The data is not in the format or is damaged (truncated, bad checksum).
    Corrupt(String),
    /// A zip feature this reader does not have (encryption, multi-disk
    /// archives, compression methods other than stored and deflate).
    Unsupported(String),
    /// [`unzip_file`] found no file of that name.
    Missing(String),
}

impl fmt::Display for CompressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompressError::TooLarge { cap } => {
                write!(f, "decompressed data is larger than the cap of {cap} bytes")
            }
            CompressError::Corrupt(m) => write!(f, "corrupt compressed data: {m}"),
            CompressError::Unsupported(m) => write!(f, "unsupported compressed data: {m}"),
            CompressError::Missing(name) => write!(f, "no file {name:?} in the zip archive"),
        }
    }
}

impl std::error::Error for CompressError {}

impl From<CompressError> for crate::Error {
    fn from(e: CompressError) -> Self {
        crate::Error::Vendor(e.to_string())
    }
}

/// Whether `data` starts like a gzip stream (`1f 8b`).
pub fn is_gzip(data: &[u8]) -> bool {
    data.starts_with(&GZIP_MAGIC)
}

/// Decompresses a gzip stream of one or more members (as `cat a.gz b.gz`
/// makes, and as some vendors' exports are), producing at most `cap` bytes.
///
/// ```
/// use siphon_sdk::data::compress::{gunzip, CompressError};
///
/// // Two members, "a\n" and "b\n".
/// let gz = [
///     0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 3, 0x4b, 0xe4, 2, 0, 7, 0xa1, 0xea, 0xdd, 2, 0, 0, 0, //
///     0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 3, 0x4b, 0xe2, 2, 0, 0xc4, 0xf2, 0xc7, 0xf6, 2, 0, 0, 0,
/// ];
/// assert_eq!(gunzip(&gz, 1024)?, b"a\nb\n");
/// assert_eq!(gunzip(&gz, 3), Err(CompressError::TooLarge { cap: 3 }));
/// # Ok::<(), CompressError>(())
/// ```
pub fn gunzip(data: &[u8], cap: usize) -> Result<Vec<u8>, CompressError> {
    if !is_gzip(data) {
        return Err(CompressError::Corrupt("not gzip (no 1f 8b header)".to_string()));
    }
    read_capped(MultiGzDecoder::new(data), cap, data.len()).map_err(|e| match e {
        CompressError::Corrupt(m) => CompressError::Corrupt(format!("gzip: {m}")),
        other => other,
    })
}

/// [`gunzip`] when `data` is gzip ([`is_gzip`]), else `data` unchanged: for
/// vendors whose downloads are sometimes compressed and sometimes not.
pub fn gunzip_if_gzip(data: &[u8], cap: usize) -> Result<Cow<'_, [u8]>, CompressError> {
    if is_gzip(data) {
        return gunzip(data, cap).map(Cow::Owned);
    }
    if data.len() > cap {
        return Err(CompressError::TooLarge { cap });
    }
    Ok(Cow::Borrowed(data))
}

/// Reads `reader` to its end, failing once more than `cap` bytes come out.
/// `hint` is the compressed size, to size the first allocation.
fn read_capped(reader: impl Read, cap: usize, hint: usize) -> Result<Vec<u8>, CompressError> {
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::with_capacity(hint.saturating_mul(4).min(cap));
    reader.take(limit).read_to_end(&mut out).map_err(|e| CompressError::Corrupt(e.to_string()))?;
    if out.len() > cap {
        return Err(CompressError::TooLarge { cap });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn gunzip_one_member() {
        let text = b"{\"a\":1}\n{\"a\":2}\n".repeat(100);
        assert_eq!(gunzip(&gzip(&text), text.len()).unwrap(), text);
    }

    #[test]
    fn gunzip_reads_every_member() {
        let mut both = gzip(b"first\n");
        both.extend(gzip(b""));
        both.extend(gzip(b"second\n"));
        assert_eq!(gunzip(&both, 1024).unwrap(), b"first\nsecond\n");
    }

    #[test]
    fn gunzip_of_an_empty_stream_is_empty() {
        assert_eq!(gunzip(&gzip(b""), 0).unwrap(), b"");
    }

    #[test]
    fn gunzip_stops_a_bomb_at_the_cap() {
        // 64 MiB of zeros compress to about 64 KiB.
        let bomb = gzip(&vec![0; 64 << 20]);
        assert!(bomb.len() < 128 << 10);
        let e = gunzip(&bomb, 1 << 20).unwrap_err();
        assert_eq!(e, CompressError::TooLarge { cap: 1 << 20 });
        assert_eq!(e.to_string(), "decompressed data is larger than the cap of 1048576 bytes");
        // The cap is inclusive.
        assert_eq!(gunzip(&gzip(&[7; 100]), 100).unwrap().len(), 100);
        assert!(gunzip(&gzip(&[7; 101]), 100).is_err());
    }

    #[test]
    fn gunzip_reports_truncated_and_foreign_data() {
        let whole = gzip(b"some text that is long enough to matter");
        let e = gunzip(&whole[..whole.len() - 6], 1024).unwrap_err();
        assert!(matches!(&e, CompressError::Corrupt(m) if m.starts_with("gzip: ")), "{e}");
        let mut bad_crc = whole.clone();
        let n = bad_crc.len();
        bad_crc[n - 8] ^= 1;
        assert!(matches!(gunzip(&bad_crc, 1024), Err(CompressError::Corrupt(_))));
        assert_eq!(
            gunzip(b"{\"a\":1}", 1024).unwrap_err().to_string(),
            "corrupt compressed data: not gzip (no 1f 8b header)"
        );
        assert!(gunzip(b"", 1024).is_err());
    }

    #[test]
    fn gunzip_if_gzip_passes_plain_data_through() {
        assert!(matches!(gunzip_if_gzip(b"plain", 10).unwrap(), Cow::Borrowed(b"plain")));
        assert_eq!(gunzip_if_gzip(&gzip(b"packed"), 10).unwrap().as_ref(), b"packed");
        assert_eq!(gunzip_if_gzip(b"plain", 2).unwrap_err(), CompressError::TooLarge { cap: 2 });
    }

    #[test]
    fn errors_convert_to_vendor_errors() {
        let e = crate::Error::from(CompressError::Missing("x.csv".into()));
        assert_eq!(e, crate::Error::Vendor("no file \"x.csv\" in the zip archive".into()));
    }
}
