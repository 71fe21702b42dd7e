use std::io::Write;

use flate2::Compression;
use flate2::write::DeflateEncoder;

use super::*;

/// Python's `zipfile` writing to an unseekable stream (data descriptors):
/// `a.txt` (deflate, 72 bytes), `dir/`, `dir/b.json` (stored).
const PYTHON_ZIP: &str = concat!(
    "504b03041400080008009d64825d00000000000000000000000005000000612e747874cb48cdc9c957c84027b93044088803",
    "00504b07084a0ece111000000048000000504b03041400080000009d64825d00000000000000000000000004000000646972",
    "2f504b0708000000000000000000000000504b03041400080000009d64825d0000000000000000000000000a000000646972",
    "2f622e6a736f6e7b226964223a317d0a504b0708546d9dd90900000009000000504b010214031400080008009d64825d4a0e",
    "ce111000000048000000050000000000000000000000800100000000612e747874504b010214031400080000009d64825d00",
    "0000000000000000000000040000000000000000001000fd41430000006469722f504b010214031400080000009d64825d54",
    "6d9dd909000000090000000a00000000000000000000008001750000006469722f622e6a736f6e504b050600000000030003",
    "009d000000b60000000000",
);

/// Info-ZIP `zip - -` reading stdin: one entry named `-` with ZIP64 local
/// sizes and a ZIP64 end record.
const INFO_ZIP_STREAM: &str = concat!(
    "504b03042d00000008009d64825d195067f5ffffffffffffffff010014002d0100100010000000000000000f000000000000",
    "00ab56aa50b232ace5aa06d146b55c00504b01021e032d00000008009d64825d195067f50f00000010000000010000000000",
    "0000010000008011000000002d504b06062c000000000000001e032d00000000000000000001000000000000000100000000",
    "0000002f000000000000004200000000000000504b060700000000710000000000000001000000504b050600000000010001",
    "002f000000420000000000",
);

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}

/// One file for [`build`].
struct File<'a> {
    name: &'a str,
    data: &'a [u8],
    method: u16,
    flags: u16,
    /// Overrides the size the directory declares.
    declared_size: Option<u32>,
}

fn file<'a>(name: &'a str, data: &'a [u8], method: u16) -> File<'a> {
    File { name, data, method, flags: 0, declared_size: None }
}

/// A minimal zip writer for the cases real tools do not produce.
fn build(files: &[File<'_>], zip64: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for f in files {
        let packed = match f.method {
            METHOD_DEFLATE => {
                let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
                e.write_all(f.data).unwrap();
                e.finish().unwrap()
            }
            _ => f.data.to_vec(),
        };
        let mut crc = Crc::new();
        crc.update(f.data);
        let size = f.declared_size.unwrap_or(f.data.len() as u32);
        let offset = out.len() as u32;
        let mut fixed = Vec::new();
        for v in [f.flags, f.method, 0, 0] {
            fixed.extend(v.to_le_bytes());
        }
        fixed.extend(crc.sum().to_le_bytes());
        let (csize32, size32, offset32) =
            if zip64 { (u32::MAX, u32::MAX, u32::MAX) } else { (packed.len() as u32, size, offset) };
        fixed.extend(csize32.to_le_bytes());
        fixed.extend(size32.to_le_bytes());
        out.extend(LOCAL_SIG.to_le_bytes());
        out.extend(20u16.to_le_bytes());
        out.extend(&fixed[..12]);
        out.extend((packed.len() as u32).to_le_bytes());
        out.extend(size.to_le_bytes());
        out.extend((f.name.len() as u16).to_le_bytes());
        out.extend(0u16.to_le_bytes());
        out.extend(f.name.as_bytes());
        out.extend(&packed);
        let extra: Vec<u8> = if zip64 {
            let mut x = vec![1, 0, 24, 0];
            for v in [u64::from(size), packed.len() as u64, u64::from(offset)] {
                x.extend(v.to_le_bytes());
            }
            x
        } else {
            Vec::new()
        };
        central.extend(CENTRAL_SIG.to_le_bytes());
        central.extend([20, 0, 20, 0]);
        central.extend(&fixed);
        for v in [f.name.len() as u16, extra.len() as u16, 0, 0, 0] {
            central.extend(v.to_le_bytes());
        }
        central.extend(0u32.to_le_bytes());
        central.extend(offset32.to_le_bytes());
        central.extend(f.name.as_bytes());
        central.extend(extra);
    }
    let (directory_offset, n) = (out.len() as u64, files.len() as u64);
    out.extend(&central);
    if zip64 {
        let record = out.len() as u64;
        out.extend(ZIP64_EOCD_SIG.to_le_bytes());
        out.extend(44u64.to_le_bytes());
        out.extend([45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        for v in [n, n, central.len() as u64, directory_offset] {
            out.extend(v.to_le_bytes());
        }
        out.extend(ZIP64_LOCATOR_SIG.to_le_bytes());
        out.extend(0u32.to_le_bytes());
        out.extend(record.to_le_bytes());
        out.extend(1u32.to_le_bytes());
    }
    out.extend(EOCD_SIG.to_le_bytes());
    out.extend([0, 0, 0, 0]);
    let (n16, size32, offset32) =
        if zip64 { (u16::MAX, u32::MAX, u32::MAX) } else { (n as u16, central.len() as u32, directory_offset as u32) };
    for v in [n16, n16] {
        out.extend(v.to_le_bytes());
    }
    out.extend(size32.to_le_bytes());
    out.extend(offset32.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

#[test]
fn reads_a_python_archive_with_data_descriptors() {
    let zip = unhex(PYTHON_ZIP);
    assert_eq!(zip_names(&zip).unwrap(), ["a.txt", "dir/b.json"]);
    let files = unzip(&zip, 1024).unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0].name, "a.txt");
    assert_eq!(files[0].data, b"hello hello hello hello\n".repeat(3));
    assert_eq!(files[1], ZipEntry { name: "dir/b.json".into(), data: b"{\"id\":1}\n".to_vec() });
    assert_eq!(unzip_file(&zip, "dir/b.json", 9).unwrap(), b"{\"id\":1}\n");
}

#[test]
fn reads_an_info_zip_stream_with_zip64_records() {
    let zip = unhex(INFO_ZIP_STREAM);
    assert_eq!(unzip_file(&zip, "-", 1024).unwrap(), b"{\"x\":1}\n{\"x\":2}\n");
}

#[test]
fn reads_zip64_sizes_and_offsets() {
    let zip = build(&[file("a.csv", b"x,y\n1,2\n", METHOD_DEFLATE), file("b.csv", b"z\n", METHOD_STORED)], true);
    let files = unzip(&zip, 100).unwrap();
    assert_eq!(files[0], ZipEntry { name: "a.csv".into(), data: b"x,y\n1,2\n".to_vec() });
    assert_eq!(files[1], ZipEntry { name: "b.csv".into(), data: b"z\n".to_vec() });
}

#[test]
fn reads_an_archive_with_a_comment() {
    let mut zip = build(&[file("a", b"1", METHOD_STORED)], false);
    let n = zip.len();
    zip[n - 2..].copy_from_slice(&5u16.to_le_bytes());
    zip.extend(b"hello");
    assert_eq!(unzip_file(&zip, "a", 1).unwrap(), b"1");
}

#[test]
fn empty_archive_has_no_files() {
    assert!(unzip(&build(&[], false), 0).unwrap().is_empty());
}

#[test]
fn caps_the_total_and_each_file() {
    let zeros = vec![0; 1 << 20];
    let zip = build(&[file("a", &zeros, METHOD_DEFLATE), file("b", &zeros, METHOD_DEFLATE)], false);
    assert!(zip.len() < 10 << 10);
    assert_eq!(unzip(&zip, 2 << 20).unwrap().len(), 2);
    assert_eq!(unzip(&zip, (2 << 20) - 1).unwrap_err(), CompressError::TooLarge { cap: (2 << 20) - 1 });
    assert_eq!(unzip_file(&zip, "b", 1 << 20).unwrap().len(), 1 << 20);
    assert_eq!(unzip_file(&zip, "b", 1000).unwrap_err(), CompressError::TooLarge { cap: 1000 });
}

#[test]
fn a_lying_declared_size_does_not_lift_the_cap() {
    let zeros = vec![0; 1 << 20];
    let zip = build(&[File { declared_size: Some(10), ..file("bomb", &zeros, METHOD_DEFLATE) }], false);
    let e = unzip_file(&zip, "bomb", 1 << 30).unwrap_err();
    assert_eq!(e.to_string(), "corrupt compressed data: zip: \"bomb\" inflates to more than its declared size");
}

#[test]
fn refuses_what_it_cannot_read() {
    let encrypted = build(&[File { flags: FLAG_ENCRYPTED, ..file("s", b"x", METHOD_STORED) }], false);
    assert_eq!(unzip(&encrypted, 10).unwrap_err(), CompressError::Unsupported("\"s\" is encrypted".into()));
    let bzip2 = build(&[file("b", b"x", 12)], false);
    assert!(matches!(unzip(&bzip2, 10), Err(CompressError::Unsupported(m)) if m.contains("method 12")));
    assert_eq!(
        unzip_file(&unhex(PYTHON_ZIP), "dir/", 10).unwrap_err(),
        CompressError::Missing("dir/".into()),
        "directories are not files"
    );
    assert_eq!(
        unzip_file(&unhex(PYTHON_ZIP), "c.txt", 10).unwrap_err().to_string(),
        "no file \"c.txt\" in the zip archive"
    );
}

#[test]
fn detects_damage() {
    let zip = unhex(PYTHON_ZIP);
    for (cut, what) in [(zip.len() - 1, "no end"), (10, "too short"), (0, "too short")] {
        let e = unzip(&zip[..cut], 1024).unwrap_err();
        assert!(matches!(&e, CompressError::Corrupt(m) if m.contains(what)), "{cut}: {e}");
    }
    // Flip a byte of a.txt's deflate data, then of b.json's stored data.
    for at in [40, 145] {
        let mut bad = zip.clone();
        bad[at] ^= 0x55;
        assert!(matches!(unzip(&bad, 1024), Err(CompressError::Corrupt(_))), "byte {at}");
    }
    // A directory pointing past the end.
    let mut bad = build(&[file("a", b"1", METHOD_STORED)], false);
    let n = bad.len();
    bad[n - 6..n - 2].copy_from_slice(&0xFFFF_0000u32.to_le_bytes());
    assert!(unzip(&bad, 10).unwrap_err().to_string().contains("past the end"));
    // A count far larger than the directory.
    let mut bad = build(&[file("a", b"1", METHOD_STORED)], false);
    bad[n - 12..n - 10].copy_from_slice(&0xFFFEu16.to_le_bytes());
    assert!(matches!(unzip(&bad, 10), Err(CompressError::Corrupt(_))));
    assert!(matches!(unzip(b"PK\x03\x04 and then nothing useful at all", 10), Err(CompressError::Corrupt(_))));
}

#[test]
fn utf8_names() {
    let mut zip = build(&[File { flags: FLAG_UTF8, ..file("données.csv", b"1", METHOD_STORED) }], false);
    assert_eq!(zip_names(&zip).unwrap(), ["données.csv"]);
    // The same bytes without the flag still read (legacy names, lossy).
    let flags_at = zip.windows(4).position(|w| w == CENTRAL_SIG.to_le_bytes()).unwrap() + 8;
    zip[flags_at] = 0;
    zip[flags_at + 1] = 0;
    assert_eq!(zip_names(&zip).unwrap(), ["données.csv"]);
}
