//! How much work Automerge data would be, measured without handing it to
//! automerge: the number of operations and changes in a run of chunks
//! (changes, compressed changes, whole documents, bundles), read from
//! their column encodings in one pass over the bytes.
//!
//! Why: automerge's cost is per operation (a few microseconds each to
//! apply), and its run-length encoding lets a 1 KB change carry a million
//! operations (nine seconds of work) or, with a crafted run length,
//! billions. Counting runs instead of expanding them costs time in
//! proportion to the bytes, and compressed columns are inflated as a
//! stream with a cap on the bytes inflated, so a message's cost is known,
//! and bounded, before automerge sees it.
//!
//! The counts are upper bounds on what automerge iterates: `ops` is the
//! largest number of entries in any operation column (every column holds
//! one entry per operation, or per predecessor), `changes` the same for
//! change columns. Pure: no IO.

use std::io::Read;

/// The first four bytes of every Automerge chunk.
const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
/// More columns than any version of automerge writes.
const MAX_COLUMNS: u64 = 64;
/// The deflate bit of a column specification.
const DEFLATE: u32 = 0b1000;

/// What a run of chunks holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkSize {
    pub ops: u64,
    pub changes: u64,
}

impl ChunkSize {
    fn add(&mut self, other: ChunkSize) {
        self.ops = self.ops.saturating_add(other.ops);
        self.changes = self.changes.saturating_add(other.changes);
    }
}

/// Why a run of chunks could not be measured. Sentences for the peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("it holds more than {limit} operations")]
    TooManyOps { limit: u64 },
    #[error("its compressed data expands past {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("its changes are not Automerge data ({0})")]
    Malformed(&'static str),
}

/// The limits a measurement stops at, so measuring is bounded too.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Operations (or changes, if more) over all the chunks measured
    /// together; no column may hold more entries than are left.
    pub entries: u64,
    /// Bytes inflated from compressed columns and chunks together.
    pub inflated_bytes: u64,
}

impl Limits {
    /// No limit: for data already accepted (what is stored).
    pub const NONE: Limits = Limits {
        entries: u64::MAX,
        inflated_bytes: u64::MAX,
    };
}

/// Whether `bytes` starts with a whole document, which may repeat what
/// the receiver holds, rather than with changes. A bundle (chunk type 3,
/// what our own peers send each other, `compact.rs`) holds new changes,
/// so it counts as added, as single changes do.
pub fn is_snapshot(bytes: &[u8]) -> bool {
    bytes.len() > 8 && bytes[..4] == MAGIC && bytes[8] == 0
}

/// Measures every chunk in `bytes` (as stored, or as a sync message
/// carries them).
pub fn measure(bytes: &[u8], limits: Limits) -> Result<ChunkSize, SizeError> {
    let mut budget = Budget {
        entries: limits.entries,
        inflated: limits.inflated_bytes,
        limits,
    };
    let mut total = ChunkSize::default();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (size, after) = chunk(rest, &mut budget)?;
        total.add(size);
        rest = after;
    }
    Ok(total)
}

/// How many entries each list of an encoded sync message holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncShape {
    pub heads: u64,
    pub need: u64,
    pub have: u64,
    /// The longest `lastSync` list among the `have` entries.
    pub last_sync: u64,
    pub changes: u64,
}

/// Reads the list lengths of an encoded sync message, skipping over the
/// hashes and filters, so a message that lists millions of entries is
/// known before anything is allocated for them. Stops reading a list as
/// soon as its length is over `most` (the rest is then left unread).
pub fn sync_shape(data: &[u8], most: u64) -> Result<SyncShape, SizeError> {
    let mut input = Input::new(data);
    let mut shape = SyncShape::default();
    if !matches!(input.byte()?, 0x42 | 0x43) {
        return Err(SizeError::Malformed("it is not a sync message"));
    }
    shape.heads = input.uleb()?;
    if shape.heads > most {
        return Ok(shape);
    }
    input.skip(shape.heads * 32)?;
    shape.need = input.uleb()?;
    if shape.need > most {
        return Ok(shape);
    }
    input.skip(shape.need * 32)?;
    shape.have = input.uleb()?;
    if shape.have > most {
        return Ok(shape);
    }
    for _ in 0..shape.have {
        let last_sync = input.uleb()?;
        shape.last_sync = shape.last_sync.max(last_sync);
        if last_sync > most {
            return Ok(shape);
        }
        input.skip(last_sync * 32)?;
        input.skip_bytes()?; // the bloom filter
    }
    shape.changes = input.uleb()?;
    Ok(shape)
}

/// Entries and inflated bytes still allowed.
struct Budget {
    entries: u64,
    inflated: u64,
    limits: Limits,
}

impl Budget {
    /// A column holding `entries` so far is still within what is left.
    /// (Each column counts every operation or every change once, so the
    /// limit is on the columns one by one, not on their sum: a change's
    /// dozen columns are still one operation each.)
    fn check_column(&self, entries: u64) -> Result<(), SizeError> {
        if entries > self.entries {
            return Err(SizeError::TooManyOps {
                limit: self.limits.entries,
            });
        }
        Ok(())
    }

    /// A chunk was measured: what it holds is spent.
    fn spend(&mut self, size: ChunkSize) {
        self.entries = self.entries.saturating_sub(size.ops.max(size.changes));
    }
}

/// One chunk at the start of `bytes`; returns it and what follows.
fn chunk<'a>(bytes: &'a [u8], budget: &mut Budget) -> Result<(ChunkSize, &'a [u8]), SizeError> {
    let mut input = Input::new(bytes);
    let mut magic = [0u8; 4];
    input.read_exact(&mut magic)?;
    if magic != MAGIC {
        return Err(SizeError::Malformed("no chunk header"));
    }
    input.skip(4)?; // checksum
    let kind = input.byte()?;
    let len = input.uleb()?;
    let start = input.position();
    let end = usize::try_from(len)
        .ok()
        .and_then(|len| start.checked_add(len))
        .filter(|end| *end <= bytes.len())
        .ok_or(SizeError::Malformed("a chunk runs past the end"))?;
    let body = &bytes[start..end];
    let size = match kind {
        0 => document(&mut Input::new(body), budget)?,
        1 => change(&mut Input::new(body), budget)?,
        2 => {
            let inflated = Inflated::new(body, budget.inflated);
            let mut input = Input::inflating(inflated, budget.limits.inflated_bytes);
            let size = change(&mut input, budget)?;
            budget.inflated -= input.into_inner().used();
            size
        }
        3 => bundle(&mut Input::new(body), budget)?,
        _ => return Err(SizeError::Malformed("an unknown chunk type")),
    };
    budget.spend(size);
    Ok((size, &bytes[end..]))
}

fn change<R: Read>(input: &mut Input<R>, budget: &mut Budget) -> Result<ChunkSize, SizeError> {
    hashes(input)?; // dependencies
    input.skip_bytes()?; // actor
    input.uleb()?; // seq
    input.uleb()?; // start op
    input.sleb()?; // time
    input.skip_bytes()?; // message
    let actors = input.uleb()?;
    for _ in 0..actors {
        input.skip_bytes()?;
    }
    let columns = column_specs(input)?;
    let ops = columns_entries(input, &columns, budget)?;
    Ok(ChunkSize { ops, changes: 1 })
}

fn document(input: &mut Input<&[u8]>, budget: &mut Budget) -> Result<ChunkSize, SizeError> {
    let actors = input.uleb()?;
    for _ in 0..actors {
        input.skip_bytes()?;
    }
    hashes(input)?; // heads
    let change_columns = column_specs(input)?;
    let op_columns = column_specs(input)?;
    let changes = columns_entries(input, &change_columns, budget)?;
    let ops = columns_entries(input, &op_columns, budget)?;
    Ok(ChunkSize { ops, changes })
}

fn bundle(input: &mut Input<&[u8]>, budget: &mut Budget) -> Result<ChunkSize, SizeError> {
    hashes(input)?; // dependencies
    let actors = input.uleb()?;
    for _ in 0..actors {
        input.skip_bytes()?;
    }
    let change_columns = column_specs(input)?;
    let changes = columns_entries(input, &change_columns, budget)?;
    let op_columns = column_specs(input)?;
    let ops = columns_entries(input, &op_columns, budget)?;
    Ok(ChunkSize { ops, changes })
}

/// A count and that many 32-byte hashes.
fn hashes<R: Read>(input: &mut Input<R>) -> Result<(), SizeError> {
    let count = input.uleb()?;
    let bytes = count
        .checked_mul(32)
        .ok_or(SizeError::Malformed("too many hashes"))?;
    input.skip(bytes)
}

/// Column specifications and their lengths in bytes.
fn column_specs<R: Read>(input: &mut Input<R>) -> Result<Vec<(u32, u64)>, SizeError> {
    let count = input.uleb()?;
    if count > MAX_COLUMNS {
        return Err(SizeError::Malformed("too many columns"));
    }
    let mut columns = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let spec = u32::try_from(input.uleb()?)
            .map_err(|_| SizeError::Malformed("a column specification is too large"))?;
        columns.push((spec, input.uleb()?));
    }
    Ok(columns)
}

/// Reads the columns' data in order; returns the most entries in any.
fn columns_entries<R: Read>(
    input: &mut Input<R>,
    columns: &[(u32, u64)],
    budget: &mut Budget,
) -> Result<u64, SizeError> {
    let mut most = 0;
    for &(spec, len) in columns {
        // A column is read whole (it is within the frame already, or
        // within what may be inflated), then counted.
        let mut data = Vec::new();
        if let Err(error) = (&mut input.inner).take(len).read_to_end(&mut data) {
            return Err(input.fail(error));
        }
        input.read += data.len();
        if (data.len() as u64) < len {
            return Err(SizeError::Malformed("a column runs past the end"));
        }
        let entries = if spec & DEFLATE != 0 {
            let inflated = Inflated::new(&data[..], budget.inflated);
            let mut column = Input::inflating(inflated, budget.limits.inflated_bytes);
            let entries = column_entries(&mut column, spec, budget)?;
            budget.inflated -= column.into_inner().used();
            entries
        } else {
            column_entries(&mut Input::new(&data[..]), spec, budget)?
        };
        most = most.max(entries);
    }
    Ok(most)
}

/// The number of values one column holds, from its encoding.
fn column_entries<R: Read>(
    column: &mut Input<R>,
    spec: u32,
    budget: &mut Budget,
) -> Result<u64, SizeError> {
    let mut entries = 0u64;
    let mut count = |n: u64, budget: &mut Budget| -> Result<(), SizeError> {
        entries = entries.saturating_add(n);
        budget.check_column(entries)
    };
    match spec & 0b111 {
        // Raw values: their count is in the metadata column.
        7 => column.skip_rest()?,
        // Booleans: alternating run lengths.
        4 => {
            while let Some(run) = column.uleb_or_end()? {
                count(run, budget)?;
            }
        }
        kind => {
            // Run-length encoded: a positive count and one value, a
            // negative count and that many values, or 0 and a null count.
            while let Some(run) = column.sleb_or_end()? {
                match run {
                    0 => count(column.uleb()?, budget)?,
                    n if n > 0 => {
                        count(n as u64, budget)?;
                        value(column, kind)?;
                    }
                    n => {
                        let n = n.unsigned_abs();
                        count(n, budget)?;
                        for _ in 0..n {
                            value(column, kind)?;
                        }
                    }
                }
            }
        }
    }
    Ok(entries)
}

/// Skips one value of a run-length encoded column of type `kind`.
fn value<R: Read>(column: &mut Input<R>, kind: u32) -> Result<(), SizeError> {
    match kind {
        3 => column.sleb().map(drop), // delta integers
        5 => column.skip_bytes(),     // strings
        _ => column.uleb().map(drop), // integers, actors, groups, metadata
    }
}

/// A deflate stream that stops (with an error) past `limit` bytes out.
struct Inflated<'a> {
    decoder: flate2::read::DeflateDecoder<&'a [u8]>,
    used: u64,
    limit: u64,
}

impl<'a> Inflated<'a> {
    fn new(data: &'a [u8], limit: u64) -> Inflated<'a> {
        Inflated {
            decoder: flate2::read::DeflateDecoder::new(data),
            used: 0,
            limit,
        }
    }

    fn used(&self) -> u64 {
        self.used
    }
}

impl Read for Inflated<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let room = (self.limit - self.used).min(buf.len() as u64) as usize;
        if room == 0 && !buf.is_empty() {
            // Anything more is over the limit.
            let mut probe = [0u8; 1];
            return match self.decoder.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(std::io::Error::other("inflated past the limit")),
            };
        }
        let n = self.decoder.read(&mut buf[..room])?;
        self.used += n as u64;
        Ok(n)
    }
}

/// Bytes read one LEB128 number at a time, from a slice or a stream.
struct Input<R> {
    inner: std::io::BufReader<R>,
    read: usize,
    over_limit: Option<u64>,
}

impl<R: Read> Input<R> {
    fn new(inner: R) -> Input<R> {
        Input {
            inner: std::io::BufReader::new(inner),
            read: 0,
            over_limit: None,
        }
    }

    /// Reads what `Inflated` gives, which fails past `limit` bytes.
    fn inflating(inner: R, limit: u64) -> Input<R> {
        Input {
            over_limit: Some(limit),
            ..Input::new(inner)
        }
    }

    fn into_inner(self) -> R {
        self.inner.into_inner()
    }

    fn position(&self) -> usize {
        self.read
    }

    fn fail(&mut self, error: std::io::Error) -> SizeError {
        match self.over_limit {
            Some(limit) if error.kind() == std::io::ErrorKind::Other => {
                SizeError::TooLarge { limit }
            }
            Some(_) => SizeError::Malformed("its compressed data cannot be inflated"),
            None => SizeError::Malformed("it ends too soon"),
        }
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), SizeError> {
        match self.inner.read_exact(buf) {
            Ok(()) => {
                self.read += buf.len();
                Ok(())
            }
            Err(error) => Err(self.fail(error)),
        }
    }

    /// The next byte, or None at a clean end.
    fn next(&mut self) -> Result<Option<u8>, SizeError> {
        let mut byte = [0u8; 1];
        loop {
            match self.inner.read(&mut byte) {
                Ok(0) => return Ok(None),
                Ok(_) => {
                    self.read += 1;
                    return Ok(Some(byte[0]));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.fail(e)),
            }
        }
    }

    fn byte(&mut self) -> Result<u8, SizeError> {
        self.next()?.ok_or(SizeError::Malformed("it ends too soon"))
    }

    fn skip(&mut self, n: u64) -> Result<(), SizeError> {
        let copied = std::io::copy(&mut (&mut self.inner).take(n), &mut std::io::sink())
            .map_err(|e| self.fail(e))?;
        self.read += copied as usize;
        if copied < n {
            return Err(SizeError::Malformed("it ends too soon"));
        }
        Ok(())
    }

    fn skip_rest(&mut self) -> Result<(), SizeError> {
        let copied =
            std::io::copy(&mut self.inner, &mut std::io::sink()).map_err(|e| self.fail(e))?;
        self.read += copied as usize;
        Ok(())
    }

    /// A length and that many bytes.
    fn skip_bytes(&mut self) -> Result<(), SizeError> {
        let len = self.uleb()?;
        self.skip(len)
    }

    fn uleb(&mut self) -> Result<u64, SizeError> {
        self.uleb_or_end()?
            .ok_or(SizeError::Malformed("it ends too soon"))
    }

    fn sleb(&mut self) -> Result<i64, SizeError> {
        self.sleb_or_end()?
            .ok_or(SizeError::Malformed("it ends too soon"))
    }

    fn uleb_or_end(&mut self) -> Result<Option<u64>, SizeError> {
        let Some(mut byte) = self.next()? else {
            return Ok(None);
        };
        let mut value = 0u64;
        let mut shift = 0;
        loop {
            if shift > 63 {
                return Err(SizeError::Malformed("a number is too long"));
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(Some(value));
            }
            shift += 7;
            byte = self.byte()?;
        }
    }

    fn sleb_or_end(&mut self) -> Result<Option<i64>, SizeError> {
        let Some(mut byte) = self.next()? else {
            return Ok(None);
        };
        let mut value = 0i64;
        let mut shift = 0;
        loop {
            if shift > 63 {
                return Err(SizeError::Malformed("a number is too long"));
            }
            value |= i64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                if shift < 64 && byte & 0x40 != 0 {
                    value |= -1i64 << shift;
                }
                return Ok(Some(value));
            }
            byte = self.byte()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ObjType, ROOT};

    use super::*;

    /// A whole document may repeat what the receiver holds; a bundle of
    /// changes adds to it, and is charged like the changes it holds.
    #[test]
    fn only_a_whole_document_counts_as_a_snapshot() {
        let mut doc = AutoCommit::new();
        doc.put(ROOT, "a", 1).unwrap();
        doc.put(ROOT, "b", 2).unwrap();
        let hashes: Vec<_> = doc.get_changes(&[]).iter().map(|c| c.hash()).collect();
        let bundle = doc.document().bundle(hashes).unwrap().bytes().to_vec();
        assert!(!is_snapshot(&bundle));
        assert_eq!(measure(&bundle, LIMITS).unwrap().ops, 2);
        assert!(is_snapshot(&doc.save()));
        assert!(!is_snapshot(
            doc.get_last_local_change().unwrap().raw_bytes()
        ));
    }

    const LIMITS: Limits = Limits {
        entries: 100_000_000,
        inflated_bytes: 64 * 1024 * 1024,
    };

    fn text_change(chars: usize, same: bool) -> (AutoCommit, Vec<u8>) {
        let mut doc = AutoCommit::new();
        let text = doc.put_object(ROOT, "notes", ObjType::Text).unwrap();
        doc.commit();
        let before = doc.get_heads();
        let words: String = if same {
            "a".repeat(chars)
        } else {
            (0..chars)
                .map(|i| char::from(b'a' + (i.wrapping_mul(2654435761) >> 7) as u8 % 26))
                .collect()
        };
        doc.splice_text(&text, 0, 0, &words).unwrap();
        doc.commit();
        let chunk = doc.save_after(&before);
        (doc, chunk)
    }

    #[test]
    fn counts_the_operations_of_changes_as_automerge_writes_them() {
        for (chars, same) in [(10, false), (5_000, false), (60_000, true), (30_000, false)] {
            let (mut doc, chunk) = text_change(chars, same);
            let size = measure(&chunk, LIMITS).unwrap();
            assert_eq!(
                size,
                ChunkSize {
                    ops: chars as u64,
                    changes: 1
                },
                "{chars} {same}"
            );
            // One change as a sync message carries it (compressed when large).
            let mut change = doc.get_last_local_change().unwrap();
            let bytes = change.bytes().to_vec();
            assert_eq!(measure(&bytes, LIMITS).unwrap().ops, chars as u64);
        }
    }

    #[test]
    fn counts_whole_documents_and_runs_of_chunks() {
        let (mut doc, chunk) = text_change(20_000, false);
        doc.put(ROOT, "title", "Plan").unwrap();
        doc.commit();
        let saved = doc.save();
        let size = measure(&saved, LIMITS).unwrap();
        assert_eq!(size.changes, 3);
        assert!(
            (20_001..20_010).contains(&size.ops),
            "a document counts its operations: {size:?}"
        );
        let mut run = chunk.clone();
        run.extend_from_slice(&chunk);
        assert_eq!(measure(&run, LIMITS).unwrap().ops, 40_000);
    }

    /// The limit is on operations, as the relay's refusal says: a change
    /// has a dozen columns, each with one entry per operation, and their
    /// sum is not what it holds. Chunks measured together share it.
    #[test]
    fn the_limit_is_on_operations_not_on_every_columns_entries_together() {
        let (mut doc, chunk) = text_change(150_000, false);
        let limits = Limits {
            entries: 200_000,
            ..LIMITS
        };
        assert_eq!(measure(&chunk, limits).unwrap().ops, 150_000);
        let saved = doc.save();
        assert!(measure(&saved, limits).unwrap().ops > 150_000);
        let mut run = chunk.clone();
        run.extend_from_slice(&chunk);
        assert_eq!(
            measure(&run, limits),
            Err(SizeError::TooManyOps { limit: 200_000 })
        );
    }

    /// The attacks: a million operations in a kilobyte, a run length
    /// claiming billions, and a compressed column that inflates forever.
    #[test]
    fn stops_at_its_limits_in_time_proportional_to_the_bytes() {
        let (mut doc, plain) = text_change(300_000, true);
        let chunk = doc.get_last_local_change().unwrap().bytes().to_vec();
        assert!(
            chunk.len() < 1024,
            "300,000 operations fit in {} bytes",
            chunk.len()
        );
        let limits = Limits {
            entries: 100_000,
            ..LIMITS
        };
        assert_eq!(
            measure(&chunk, limits),
            Err(SizeError::TooManyOps { limit: 100_000 })
        );
        let started = std::time::Instant::now();
        measure(&plain, LIMITS).unwrap();
        eprintln!("{} bytes measured in {:?}", plain.len(), started.elapsed());
        let started = std::time::Instant::now();
        let saved = text_change(100_000, true).0.save();
        let limits = Limits {
            entries: 1_000,
            ..LIMITS
        };
        assert!(measure(&saved, limits).is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(5));

        let garbage = [MAGIC.as_slice(), &[0, 0, 0, 0, 1, 3, 0, 0, 0]].concat();
        assert!(matches!(
            measure(&garbage, LIMITS),
            Err(SizeError::Malformed(_))
        ));
        assert!(matches!(
            measure(b"not automerge", LIMITS),
            Err(SizeError::Malformed(_))
        ));
    }

    #[test]
    fn a_compressed_column_is_inflated_only_up_to_the_limit() {
        let saved = text_change(60_000, false).0.save();
        let limits = Limits {
            inflated_bytes: 1024,
            ..LIMITS
        };
        assert_eq!(
            measure(&saved, limits),
            Err(SizeError::TooLarge { limit: 1024 })
        );
        assert!(measure(&saved, LIMITS).is_ok());
    }

    #[test]
    fn truncated_chunks_are_errors_not_panics() {
        let (mut doc, chunk) = text_change(2_000, false);
        let saved = doc.save();
        for bytes in [chunk, saved] {
            for cut in (0..bytes.len()).step_by(7) {
                let _ = measure(&bytes[..cut], LIMITS);
            }
        }
    }
}
