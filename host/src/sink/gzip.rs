//! gzip for `.ndjson.gz` objects, on several cores for large objects.
//!
//! A large object is cut into chunks compressed in parallel, the way pigz
//! does it: each chunk is raw deflate primed with the last 32 KiB of the
//! chunk before it (so the ratio hardly changes), ended with a sync flush
//! (an empty stored block, so the next chunk starts on a byte boundary) and
//! the last with the final block; the chunks are joined under one gzip
//! header and one trailer (CRC-32 combined from the chunks' CRCs). The result
//! is one ordinary gzip member that every reader decodes to the same bytes;
//! only the compressed bytes differ from a single-threaded encoder's.

use std::io::Write;

use flate2::{Compress, Compression, FlushCompress, Status};

/// Objects smaller than this are compressed on one core (threads cost more
/// than they save).
const PARALLEL_FROM: usize = 2 << 20;

/// Fewest bytes per chunk: big enough that the 32 KiB dictionaries and the
/// sync flushes cost nothing measurable. An object is cut into one chunk per
/// thread when that makes them larger (each dictionary costs about 3 % of
/// compressing a 1 MiB chunk).
const CHUNK: usize = 1 << 20;

/// deflate's window: how much of the previous chunk primes the next.
const WINDOW: usize = 32 << 10;

/// One compressed chunk: raw deflate, the CRC-32 and length of its input.
type Deflated = (Vec<u8>, u32, usize);

/// Compresses `data` as one gzip member at the default level.
pub fn compress(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
    if data.len() < PARALLEL_FROM || threads < 2 {
        let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(data.len() / 4), Compression::default());
        enc.write_all(data)?;
        return enc.finish();
    }
    let size = CHUNK.max(data.len().div_ceil(threads));
    let chunks: Vec<(usize, &[u8])> = data.chunks(size).enumerate().collect();
    let last = chunks.len() - 1;
    let per_thread = chunks.len().div_ceil(threads);
    let results: Vec<std::io::Result<Vec<Deflated>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .chunks(per_thread)
            .map(|batch| {
                scope.spawn(move || {
                    batch
                        .iter()
                        .map(|(i, chunk)| {
                            let start = i * size;
                            let dictionary = &data[start.saturating_sub(WINDOW)..start];
                            let deflated = deflate_chunk(chunk, dictionary, *i == last)?;
                            let mut crc = crc32fast::Hasher::new();
                            crc.update(chunk);
                            Ok((deflated, crc.finalize(), chunk.len()))
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(std::io::Error::other("a gzip thread panicked"))))
            .collect()
    });
    let mut out = Vec::with_capacity(data.len() / 4);
    // The header flate2's GzEncoder writes at the default level: no name, no
    // mtime, XFL 0, OS unknown.
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
    let mut crc = crc32fast::Hasher::new();
    for batch in results {
        for (deflated, chunk_crc, len) in batch? {
            out.extend_from_slice(&deflated);
            crc.combine(&crc32fast::Hasher::new_with_initial_len(chunk_crc, len as u64));
        }
    }
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    Ok(out)
}

/// Raw deflate of `chunk` primed with `dictionary`; a sync flush at the end,
/// or the final block when `last`.
fn deflate_chunk(chunk: &[u8], dictionary: &[u8], last: bool) -> std::io::Result<Vec<u8>> {
    let mut c = Compress::new(Compression::default(), false);
    if !dictionary.is_empty() {
        c.set_dictionary(dictionary).map_err(std::io::Error::other)?;
    }
    let flush = if last { FlushCompress::Finish } else { FlushCompress::Sync };
    let mut out = Vec::with_capacity(chunk.len() / 3 + 1024);
    loop {
        let consumed = c.total_in() as usize;
        let status = c.compress_vec(&chunk[consumed..], &mut out, flush).map_err(std::io::Error::other)?;
        let done = c.total_in() as usize == chunk.len()
            && match status {
                Status::StreamEnd => true,
                // A sync flush is complete once it left spare room in `out`.
                Status::Ok | Status::BufError => !last && out.len() < out.capacity(),
            };
        if done {
            return Ok(out);
        }
        out.reserve(out.capacity().max(64 << 10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes), &mut out).unwrap();
        out
    }

    fn sample(len: usize) -> Vec<u8> {
        let mut data = Vec::with_capacity(len);
        let mut n = 0u64;
        while data.len() < len {
            n = n.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            data.extend_from_slice(
                format!("{{\"_id\":\"{n:016x}\",\"alert\":\"policy violation\",\"n\":{}}}\n", n >> 50).as_bytes(),
            );
        }
        data.truncate(len);
        data
    }

    #[test]
    fn parallel_output_is_one_gzip_member_of_the_same_bytes() {
        for len in [0, 10, PARALLEL_FROM - 1, PARALLEL_FROM, 3 * CHUNK + 12_345, 5 * CHUNK] {
            let data = sample(len);
            let gz = compress(&data).unwrap();
            assert_eq!(gunzip(&gz), data, "len {len}");
            // One member: the single-member decoder read it all.
            let mut one = flate2::read::GzDecoder::new(&gz[..]);
            std::io::copy(&mut one, &mut std::io::sink()).unwrap();
            assert!(one.into_inner().is_empty(), "len {len}: nothing after the first member");
        }
    }

    #[test]
    fn parallel_ratio_is_close_to_single_threaded() {
        let data = sample(6 * CHUNK);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(&data).unwrap();
        let single = enc.finish().unwrap().len();
        let parallel = compress(&data).unwrap().len();
        assert!(parallel as f64 <= single as f64 * 1.01, "parallel {parallel} vs single {single}");
    }
}
