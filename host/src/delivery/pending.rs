//! Records between `emit` and `commit`, held as the NDJSON they will be
//! stored as: one buffer, each record followed by `\n`. No allocation per
//! record, and an object without gzip is a slice of the buffer, not a copy.
//!
//! Object boundaries (the sink's `max_records` and `max_bytes`) are fixed as
//! records arrive, so a commit knows its objects' names before it reads
//! any of them. Past [`SPOOL_FROM`](crate::limits::SPOOL_FROM) bytes the
//! buffer moves to an anonymous temporary file (`$TMPDIR`, gone when the
//! run drops it): a collector that emits a lot between commits costs the
//! daemon that much disk, not memory, and a commit reads one object back at
//! a time.

use std::fs::File;
use std::os::unix::fs::FileExt;

use bytes::Bytes;

/// The NDJSON of the records waiting for the next commit.
#[derive(Debug)]
pub struct Pending {
    /// The stream's tail not yet spooled.
    buf: Vec<u8>,
    /// The stream's head (bytes `0..spooled`), once it outgrew `spool_from`.
    spool: Option<File>,
    spooled: u64,
    spool_from: usize,
    /// Closed objects: end offset in the stream and records.
    objects: Vec<(u64, usize)>,
    /// The open object: start offset, records.
    open: (u64, usize),
    records: usize,
    max_records: usize,
    max_bytes: u64,
}

impl Pending {
    /// No records, cut into objects of at most `max_records` records and
    /// `max_bytes` bytes (an object holds at least one record), spooled to a
    /// file past `spool_from` bytes.
    pub fn new(max_records: usize, max_bytes: u64, spool_from: usize) -> Self {
        Pending {
            buf: Vec::new(),
            spool: None,
            spooled: 0,
            spool_from,
            objects: Vec::new(),
            open: (0, 0),
            records: 0,
            max_records: max_records.max(1),
            max_bytes,
        }
    }

    /// Records held.
    pub fn records(&self) -> usize {
        self.records
    }

    /// Bytes of NDJSON held, in memory and spooled.
    pub fn bytes(&self) -> u64 {
        self.spooled + self.buf.len() as u64
    }

    /// Bytes held in memory.
    pub fn in_memory(&self) -> usize {
        self.buf.len()
    }

    /// The in-memory buffer, for a batch to append whole lines to; hand it
    /// back with [`Pending::accept`] (the lines stay) or [`Pending::refuse`].
    pub fn take_buffer(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Take back the buffer with lines appended after byte `from`: count
    /// them into objects, and spool once the buffer is past `spool_from`.
    pub fn accept(&mut self, buf: Vec<u8>, from: usize) -> std::io::Result<()> {
        let mut line_start = from;
        for nl in memchr::memchr_iter(b'\n', &buf[from..]) {
            let line_end = from + nl + 1;
            self.add_line(self.spooled + line_end as u64, (line_end - line_start) as u64);
            line_start = line_end;
        }
        self.buf = buf;
        if self.buf.len() >= self.spool_from {
            self.spill()?;
        }
        Ok(())
    }

    /// Take back the buffer, dropping what was appended after byte `from`.
    pub fn refuse(&mut self, mut buf: Vec<u8>, from: usize) {
        buf.truncate(from);
        self.buf = buf;
    }

    /// Queue `records` (each one line, without its `\n`).
    pub fn push<S: AsRef<str>>(&mut self, records: &[S]) -> std::io::Result<()> {
        let mut buf = self.take_buffer();
        let from = buf.len();
        for r in records {
            buf.extend_from_slice(r.as_ref().as_bytes());
            buf.push(b'\n');
        }
        self.accept(buf, from)
    }

    /// The sink's split rule, one line of `len` bytes ending at `end` at a time.
    fn add_line(&mut self, end: u64, len: u64) {
        let (start, count) = self.open;
        let bytes = end - len - start;
        if count > 0 && (count >= self.max_records || bytes + len > self.max_bytes) {
            self.objects.push((end - len, count));
            self.open = (end - len, 0);
        }
        self.open.1 += 1;
        self.records += 1;
    }

    fn spill(&mut self) -> std::io::Result<()> {
        let file = match &self.spool {
            Some(f) => f,
            None => self.spool.insert(tempfile::tempfile()?),
        };
        // At its offset, so a write that failed half-way is overwritten by
        // the next attempt.
        file.write_all_at(&self.buf, self.spooled)?;
        self.spooled += self.buf.len() as u64;
        // The buffer's memory goes too: what is spooled is read back one
        // object at a time.
        self.buf = Vec::new();
        Ok(())
    }

    /// The objects to store: each one's NDJSON and record count, in order.
    pub fn into_objects(mut self) -> Objects {
        if self.open.1 > 0 {
            self.objects.push((self.bytes(), self.open.1));
        }
        let mut start = 0;
        let ranges = self
            .objects
            .iter()
            .map(|&(end, count)| {
                let range = (start, end, count);
                start = end;
                range
            })
            .collect();
        Objects { ranges, spool: self.spool, spooled: self.spooled, tail: Bytes::from(self.buf) }
    }
}

/// A commit's objects, read one at a time (see [`Pending::into_objects`]).
pub struct Objects {
    ranges: Vec<(u64, u64, usize)>,
    spool: Option<File>,
    spooled: u64,
    tail: Bytes,
}

impl Objects {
    /// How many objects.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Object `i`'s NDJSON and its record count: a slice of the in-memory
    /// tail, or read back from the spool file.
    pub fn get(&self, i: usize) -> std::io::Result<(Bytes, usize)> {
        let (start, end, count) = self.ranges[i];
        if start >= self.spooled {
            let (s, e) = ((start - self.spooled) as usize, (end - self.spooled) as usize);
            return Ok((self.tail.slice(s..e), count));
        }
        let mut out = vec![0u8; (end - start) as usize];
        let from_file = (end.min(self.spooled) - start) as usize;
        let file = self.spool.as_ref().ok_or_else(|| std::io::Error::other("spooled records without a spool file"))?;
        file.read_exact_at(&mut out[..from_file], start)?;
        out[from_file..].copy_from_slice(&self.tail[..(end - start) as usize - from_file]);
        Ok((Bytes::from(out), count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(objects: &Objects) -> Vec<(String, usize)> {
        (0..objects.len())
            .map(|i| {
                let (b, n) = objects.get(i).unwrap();
                (String::from_utf8(b.to_vec()).unwrap(), n)
            })
            .collect()
    }

    #[test]
    fn objects_respect_count_and_size() {
        let recs: Vec<String> = (0..10).map(|i| format!("{{\"n\":{i}}}")).collect();
        let mut p = Pending::new(4, 1 << 20, usize::MAX);
        p.push(&recs).unwrap();
        let counts: Vec<usize> = lines(&p.into_objects()).iter().map(|(_, n)| *n).collect();
        assert_eq!(counts, vec![4, 4, 2]);
        // Each line is 8 bytes: two do not fit in 15.
        let mut p = Pending::new(100, 15, usize::MAX);
        p.push(&recs).unwrap();
        assert_eq!(lines(&p.into_objects()), recs.iter().map(|r| (format!("{r}\n"), 1)).collect::<Vec<_>>());
        assert!(Pending::new(4, 1 << 20, usize::MAX).into_objects().is_empty());
    }

    #[test]
    fn spooled_records_read_back_byte_exact_across_the_file_and_memory() {
        let recs: Vec<String> = (0..1000).map(|i| format!("{{\"n\":{i},\"s\":\"josé\"}}")).collect();
        let mut whole = Pending::new(64, 1 << 20, usize::MAX);
        let mut spooled = Pending::new(64, 1 << 20, 700);
        for batch in recs.chunks(37) {
            whole.push(batch).unwrap();
            spooled.push(batch).unwrap();
            assert!(spooled.in_memory() < 700 + 37 * 30);
        }
        assert_eq!(spooled.bytes(), whole.bytes());
        assert!(spooled.spool.is_some());
        assert_eq!(lines(&spooled.into_objects()), lines(&whole.into_objects()));
    }

    #[test]
    fn a_refused_batch_leaves_nothing() {
        let mut p = Pending::new(10, 1 << 20, usize::MAX);
        p.push(&["{\"a\":1}"]).unwrap();
        let mut buf = p.take_buffer();
        let from = buf.len();
        buf.extend_from_slice(b"{\"b\":2}\n");
        p.refuse(buf, from);
        assert_eq!((p.records(), p.bytes()), (1, 8));
        assert_eq!(lines(&p.into_objects()), vec![("{\"a\":1}\n".to_owned(), 1)]);
    }
}
