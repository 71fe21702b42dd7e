//! A small zip reader: the central directory, stored and deflate entries,
//! ZIP64 sizes and offsets, CRC-32 checked.
//!
//! Enough for vendors' report downloads; no encryption, no multi-disk
//! archives, no other compression methods (each refused with
//! [`CompressError::Unsupported`]). Written here because the `zip` crate's
//! dependency tree is large for a guest; the format parts needed fit in this
//! file. Names flagged UTF-8 are read as UTF-8; legacy (CP437) names are read
//! as UTF-8 too, with invalid bytes replaced, which is exact for ASCII names.

use flate2::Crc;
use flate2::read::DeflateDecoder;

use super::{CompressError, read_capped};

const LOCAL_SIG: u32 = 0x0403_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const EOCD_SIG: u32 = 0x0605_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const EOCD_LEN: usize = 22;
const LOCAL_HEADER_LEN: usize = 30;
const CENTRAL_HEADER_LEN: usize = 46;
const MAX_COMMENT: usize = 0xFFFF;
const FLAG_ENCRYPTED: u16 = 1;
const FLAG_UTF8: u16 = 1 << 11;
const METHOD_STORED: u16 = 0;
const METHOD_DEFLATE: u16 = 8;

/// One file of a zip archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipEntry {
    /// The path inside the archive, `/`-separated, e.g. `reports/day.csv`.
    pub name: String,
    /// The decompressed content.
    pub data: Vec<u8>,
}

/// The names of the files in the archive (directories left out), in
/// archive order.
pub fn zip_names(data: &[u8]) -> Result<Vec<String>, CompressError> {
    Ok(directory(data)?.into_iter().filter(|e| !e.is_dir()).map(|e| e.name).collect())
}

/// Every file of the archive (directories left out), in archive order, at
/// most `cap` decompressed bytes in total.
pub fn unzip(data: &[u8], cap: usize) -> Result<Vec<ZipEntry>, CompressError> {
    let mut left = cap;
    let mut files = Vec::new();
    for entry in directory(data)?.into_iter().filter(|e| !e.is_dir()) {
        let content = entry.extract(data, left).map_err(|e| match e {
            CompressError::TooLarge { .. } => CompressError::TooLarge { cap },
            other => other,
        })?;
        left -= content.len();
        files.push(ZipEntry { name: entry.name, data: content });
    }
    Ok(files)
}

/// The file named `name` (exactly, e.g. `reports/day.csv`), at most `cap`
/// decompressed bytes.
pub fn unzip_file(data: &[u8], name: &str, cap: usize) -> Result<Vec<u8>, CompressError> {
    let entry = directory(data)?
        .into_iter()
        .find(|e| e.name == name && !e.is_dir())
        .ok_or_else(|| CompressError::Missing(name.to_string()))?;
    entry.extract(data, cap)
}

/// One central directory record.
struct Entry {
    name: String,
    flags: u16,
    method: u16,
    crc: u32,
    compressed: u64,
    size: u64,
    local_offset: u64,
}

impl Entry {
    fn is_dir(&self) -> bool {
        self.name.ends_with('/')
    }

    fn extract(&self, data: &[u8], cap: usize) -> Result<Vec<u8>, CompressError> {
        let name = &self.name;
        if self.flags & FLAG_ENCRYPTED != 0 {
            return Err(CompressError::Unsupported(format!("{name:?} is encrypted")));
        }
        // The declared size refuses a bomb before inflating anything; the
        // inflate itself is capped at the declared size, so a lying header
        // cannot make it produce more.
        let declared = usize::try_from(self.size).unwrap_or(usize::MAX);
        if declared > cap {
            return Err(CompressError::TooLarge { cap });
        }
        let mut r = Reader::at(data, self.local_offset)?;
        if r.u32()? != LOCAL_SIG {
            return Err(corrupt(format!("{name:?}: no local header at offset {}", self.local_offset)));
        }
        r.skip(LOCAL_HEADER_LEN - 8)?;
        let (name_len, extra_len) = (r.u16()?, r.u16()?);
        r.skip(usize::from(name_len) + usize::from(extra_len))?;
        let packed = r.bytes(self.compressed)?;
        let content = match self.method {
            METHOD_STORED => packed.to_vec(),
            METHOD_DEFLATE => inflate(name, packed, declared)?,
            method => {
                return Err(CompressError::Unsupported(format!(
                    "{name:?} uses compression method {method} (only stored and deflate are read)"
                )));
            }
        };
        if content.len() != declared {
            return Err(corrupt(format!("{name:?} holds {} bytes, the directory says {declared}", content.len())));
        }
        let mut crc = Crc::new();
        crc.update(&content);
        if crc.sum() != self.crc {
            return Err(corrupt(format!("{name:?} fails its CRC-32 check")));
        }
        Ok(content)
    }
}

/// Inflates an entry's deflate data, which must come to `declared` bytes.
fn inflate(name: &str, packed: &[u8], declared: usize) -> Result<Vec<u8>, CompressError> {
    read_capped(DeflateDecoder::new(packed), declared, packed.len()).map_err(|e| match e {
        CompressError::TooLarge { .. } => corrupt(format!("{name:?} inflates to more than its declared size")),
        CompressError::Corrupt(m) => corrupt(format!("{name:?}: {m}")),
        other => other,
    })
}

/// The central directory's records, in order.
fn directory(data: &[u8]) -> Result<Vec<Entry>, CompressError> {
    let eocd = find_eocd(data)?;
    let mut r = Reader::at(data, eocd as u64 + 4)?;
    let (disk, directory_disk, _, count16) = (r.u16()?, r.u16()?, r.u16()?, r.u16()?);
    let (size32, offset32) = (r.u32()?, r.u32()?);
    let (count, offset) = if count16 == 0xFFFF || size32 == 0xFFFF_FFFF || offset32 == 0xFFFF_FFFF {
        zip64_directory(data, eocd)?
    } else {
        if disk != 0 || directory_disk != 0 {
            return Err(CompressError::Unsupported("multi-disk zip archive".to_string()));
        }
        (u64::from(count16), u64::from(offset32))
    };
    let mut r = Reader::at(data, offset)?;
    // A lying count must not reserve more than the data could hold.
    let most = data.len() / CENTRAL_HEADER_LEN;
    let mut entries = Vec::with_capacity(usize::try_from(count).unwrap_or(most).min(most));
    for _ in 0..count {
        entries.push(central_entry(&mut r)?);
    }
    Ok(entries)
}

/// Finds the end-of-central-directory record, searching back over a
/// trailing archive comment.
fn find_eocd(data: &[u8]) -> Result<usize, CompressError> {
    let last = data.len().checked_sub(EOCD_LEN).ok_or_else(|| corrupt("not a zip archive (too short)"))?;
    let first = last.saturating_sub(MAX_COMMENT);
    (first..=last)
        .rev()
        .find(|&at| {
            let comment_len = usize::from(u16::from_le_bytes([data[at + 20], data[at + 21]]));
            data[at..at + 4] == EOCD_SIG.to_le_bytes() && at + EOCD_LEN + comment_len <= data.len()
        })
        .ok_or_else(|| corrupt("not a zip archive (no end of central directory record)"))
}

/// (entry count, directory offset) from the ZIP64 records before the EOCD.
fn zip64_directory(data: &[u8], eocd: usize) -> Result<(u64, u64), CompressError> {
    let no_locator = || corrupt("ZIP64 sizes without a ZIP64 locator");
    let locator = eocd.checked_sub(20).ok_or_else(no_locator)?;
    let mut r = Reader::at(data, locator as u64)?;
    if r.u32()? != ZIP64_LOCATOR_SIG {
        return Err(no_locator());
    }
    r.skip(4)?;
    let record = r.u64()?;
    let mut r = Reader::at(data, record)?;
    if r.u32()? != ZIP64_EOCD_SIG {
        return Err(corrupt("no ZIP64 end of central directory record"));
    }
    // Record size (8), versions (4), this disk and the directory's (8),
    // entries on this disk (8).
    r.skip(28)?;
    let count = r.u64()?;
    r.skip(8)?;
    Ok((count, r.u64()?))
}

fn central_entry(r: &mut Reader<'_>) -> Result<Entry, CompressError> {
    if r.u32()? != CENTRAL_SIG {
        return Err(corrupt("bad central directory record"));
    }
    r.skip(4)?;
    let (flags, method) = (r.u16()?, r.u16()?);
    r.skip(4)?;
    let crc = r.u32()?;
    let (compressed32, size32) = (r.u32()?, r.u32()?);
    let (name_len, extra_len, comment_len) = (r.u16()?, r.u16()?, r.u16()?);
    r.skip(8)?;
    let offset32 = r.u32()?;
    let raw_name = r.bytes(u64::from(name_len))?;
    let name = if flags & FLAG_UTF8 != 0 {
        String::from_utf8(raw_name.to_vec()).map_err(|_| corrupt("a file name flagged UTF-8 is not UTF-8"))?
    } else {
        String::from_utf8_lossy(raw_name).into_owned()
    };
    let mut entry = Entry {
        name,
        flags,
        method,
        crc,
        compressed: u64::from(compressed32),
        size: u64::from(size32),
        local_offset: u64::from(offset32),
    };
    let mut extra = Reader { data: r.bytes(u64::from(extra_len))?, at: 0 };
    while extra.at + 4 <= extra.data.len() {
        let (id, len) = (extra.u16()?, extra.u16()?);
        let mut field = Reader { data: extra.bytes(u64::from(len))?, at: 0 };
        if id == 1 {
            // ZIP64: 64-bit values for exactly the fields that are all ones, in this order.
            for (value, short) in
                [(&mut entry.size, size32), (&mut entry.compressed, compressed32), (&mut entry.local_offset, offset32)]
            {
                if short == 0xFFFF_FFFF {
                    *value = field.u64()?;
                }
            }
        }
    }
    r.skip(usize::from(comment_len))?;
    Ok(entry)
}

fn corrupt(message: impl Into<String>) -> CompressError {
    CompressError::Corrupt(format!("zip: {}", message.into()))
}

/// Little-endian reads with bounds checks.
struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn at(data: &'a [u8], offset: u64) -> Result<Self, CompressError> {
        match usize::try_from(offset) {
            Ok(at) if at <= data.len() => Ok(Self { data, at }),
            _ => Err(corrupt(format!("offset {offset} is past the end of the archive"))),
        }
    }

    fn bytes(&mut self, len: u64) -> Result<&'a [u8], CompressError> {
        let end =
            usize::try_from(len).ok().and_then(|len| self.at.checked_add(len)).filter(|&end| end <= self.data.len());
        let end = end.ok_or_else(|| corrupt("truncated archive"))?;
        let slice = &self.data[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn skip(&mut self, len: usize) -> Result<(), CompressError> {
        self.bytes(len as u64).map(|_| ())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CompressError> {
        let mut out = [0; N];
        out.copy_from_slice(self.bytes(N as u64)?);
        Ok(out)
    }

    fn u16(&mut self) -> Result<u16, CompressError> {
        self.array().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Result<u32, CompressError> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, CompressError> {
        self.array().map(u64::from_le_bytes)
    }
}

#[cfg(test)]
mod tests;
