//! The compact form of a sync message, for our own peers (both said
//! [`COMPACT_VERSION`](crate::message::COMPACT_VERSION) in `join` and
//! `peer`). The content is automerge's sync message, unchanged in meaning:
//! the same `sync::State` machine makes and reads it on both sides. Only
//! the bytes differ:
//!
//! - changes travel as one chunk, the smallest of the raw changes and an
//!   Automerge bundle of them (the document's columnar encoding, about a
//!   fifth of the raw changes for a run of edits), then deflated when that
//!   is smaller still; a document sent whole (automerge's v2 message) is
//!   already compressed and goes as it is;
//! - heads and hashes are bare 32-byte runs with a count; heads that are
//!   just the hash of the one change sent (a live edit) are not written,
//!   the receiver hashes the change; and a `have` whose last sync equals
//!   the heads (every acknowledgement) does not repeat them.
//!
//! [`catch_up`] is the other half: a peer that kept its sync state sends
//! what the other may lack in its first message, rather than waiting a
//! round trip for the other's summary.
//!
//! Layout: one byte of marks (automerge's three flags in its low bits),
//! heads (unless marked as the change's), need, haves (each last sync,
//! unless marked as the heads, and a bloom filter), then the changes chunk
//! to the end. Counts and lengths are LEB128. No IO.

use std::io::{Read, Write};

use automerge::sync::{self, BloomFilter, ChunkList, Have, MessageFlags, MessageVersion};
use automerge::{Automerge, Change, ChangeHash, ReadDoc};

/// Automerge's flags, in the marks byte's low bits.
const FLAG_BITS: [u8; 3] = [
    MessageFlags::SYNC_RESET,
    MessageFlags::READ_ONLY,
    MessageFlags::SUPPORTS_SYNC_RESET,
];
/// Automerge's flags were present.
const HAS_FLAGS: u8 = 1 << 3;
/// The changes are deflated.
const DEFLATED: u8 = 1 << 4;
/// The first `have`'s last sync is the heads, not written again.
const LAST_SYNC_IS_HEADS: u8 = 1 << 5;
/// The heads are the hash of the one raw change sent, not written.
const HEADS_ARE_THE_CHANGE: u8 = 1 << 6;

/// Changes smaller than this are not worth deflating.
const DEFLATE_FROM: usize = 128;

/// Writes `message` compactly. `doc` is the document it was made from,
/// for bundling its changes.
pub fn encode(doc: &Automerge, message: sync::Message) -> Vec<u8> {
    let sync::Message {
        heads,
        need,
        have,
        changes,
        flags,
        version,
    } = message;
    let mut marks = flags.map_or(0, |flags| {
        FLAG_BITS
            .into_iter()
            .filter(|&flag| flags.contains(flag))
            .fold(HAS_FLAGS, |bits, flag| bits | flag)
    });
    let last_sync_is_heads = have.first().is_some_and(|h| h.last_sync == heads);
    if last_sync_is_heads {
        marks |= LAST_SYNC_IS_HEADS;
    }
    // Automerge sends raw changes one per chunk (v1) or run together in
    // one (v2, to peers that take it), and a whole document as one v2
    // chunk. Changes are written smallest; a document goes as it is, its
    // columns compressed already.
    let joined: Vec<u8> = changes.iter().flatten().copied().collect();
    let raw: Option<Vec<&[u8]>> = match version {
        MessageVersion::V1 => Some(changes.iter().collect()),
        MessageVersion::V2 => split_changes(&joined),
    };
    let mut heads_are_the_change = false;
    let chunk = match raw {
        _ if joined.is_empty() => Vec::new(),
        Some(raw) => {
            heads_are_the_change = raw.len() == 1
                && heads.len() == 1
                && Change::from_bytes(raw[0].to_vec()).is_ok_and(|c| c.hash() == heads[0]);
            if heads_are_the_change {
                marks |= HEADS_ARE_THE_CHANGE;
            }
            let (chunk, deflated) = smallest_chunk(doc, &raw);
            if deflated {
                marks |= DEFLATED;
            }
            chunk
        }
        None => joined,
    };
    let mut out = Vec::with_capacity(chunk.len() + 40 + 32 * heads.len());
    out.push(marks);
    if !heads_are_the_change {
        write_hashes(&mut out, &heads);
    }
    write_hashes(&mut out, &need);
    write_len(&mut out, have.len());
    for (index, h) in have.iter().enumerate() {
        if !(index == 0 && last_sync_is_heads) {
            write_hashes(&mut out, &h.last_sync);
        }
        let bloom = h.bloom.to_bytes();
        write_len(&mut out, bloom.len());
        out.extend_from_slice(&bloom);
    }
    out.extend_from_slice(&chunk);
    out
}

/// Reads what [`encode`] wrote. Changes inflate to at most `max_bytes`.
/// The error says what was wrong, for the peer.
pub fn decode(bytes: &[u8], max_bytes: usize) -> Result<sync::Message, String> {
    let mut input = Input { bytes, at: 0 };
    let marks = input.byte()?;
    let heads_are_the_change = marks & HEADS_ARE_THE_CHANGE != 0;
    let mut heads = if heads_are_the_change {
        Vec::new()
    } else {
        input.hashes()?
    };
    let need = input.hashes()?;
    let count = input.len()?;
    let mut have = Vec::new();
    for index in 0..count {
        if index >= 16 {
            return Err("it summarises what it has in too many parts".into());
        }
        let last_sync = if index == 0 && marks & LAST_SYNC_IS_HEADS != 0 {
            if heads_are_the_change {
                return Err("its summary names heads it does not give".into());
            }
            heads.clone()
        } else {
            input.hashes()?
        };
        let len = input.len()?;
        let bloom = BloomFilter::try_from(input.take(len)?)
            .map_err(|e| format!("its summary of changes is malformed ({e})"))?;
        have.push(Have { last_sync, bloom });
    }
    let rest = &bytes[input.at..];
    let chunk = if rest.is_empty() {
        None
    } else if marks & DEFLATED != 0 {
        Some(inflate(rest, max_bytes)?)
    } else {
        Some(rest.to_vec())
    };
    if heads_are_the_change {
        let change = chunk
            .as_ref()
            .and_then(|c| Change::from_bytes(c.clone()).ok())
            .ok_or("the change it sends could not be read")?;
        heads.push(change.hash());
    }
    Ok(sync::Message {
        heads,
        need,
        have,
        changes: chunk.map_or_else(ChunkList::empty, ChunkList::from),
        flags: (marks & HAS_FLAGS != 0).then(|| {
            let mut flags = MessageFlags::new();
            for flag in FLAG_BITS.into_iter().filter(|&flag| marks & flag != 0) {
                flags.set(flag);
            }
            flags
        }),
        version: MessageVersion::V1,
    })
}

/// For a peer whose sync state was kept from an earlier connection and
/// who has said nothing yet on this one: adds to `message` every change
/// the peer may lack (those since the heads both last shared), so it
/// arrives with our first message instead of after a round trip. Without
/// a kept state, or once the peer has spoken, automerge's own exchange
/// decides.
pub fn catch_up(doc: &Automerge, state: &mut sync::State, message: &mut sync::Message) {
    // `their_heads` is set by the peer's first message on a connection.
    if state.their_heads.is_some()
        || state.shared_heads.is_empty()
        || !message.changes.is_empty()
        || state.is_peer_read_only()
        || !state
            .shared_heads
            .iter()
            .all(|h| doc.get_change_by_hash(h).is_some())
    {
        return;
    }
    let changes = doc.get_changes(&state.shared_heads);
    if changes.is_empty() {
        return;
    }
    state.sent_hashes.extend(changes.iter().map(|c| c.hash()));
    message.changes = ChunkList::from(
        changes
            .iter()
            .map(|c| c.raw_bytes().to_vec())
            .collect::<Vec<_>>(),
    );
}

/// The raw changes run together in `bytes`, one by one; `None` unless
/// every chunk there is an uncompressed change (a document, say).
fn split_changes(bytes: &[u8]) -> Option<Vec<&[u8]>> {
    /// Chunk header: magic bytes, checksum, type, then the length.
    const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
    const CHANGE: u8 = 1;
    let mut chunks = Vec::new();
    let mut input = Input { bytes, at: 0 };
    while input.at < bytes.len() {
        let start = input.at;
        if input.take(4).ok()? != MAGIC {
            return None;
        }
        input.take(4).ok()?;
        if input.byte().ok()? != CHANGE {
            return None;
        }
        let len = input.len().ok()?;
        input.take(len).ok()?;
        chunks.push(&bytes[start..input.at]);
    }
    Some(chunks)
}

/// The smallest form of these raw changes: as they are, or bundled, then
/// deflated if that is smaller. Returns it and whether it is deflated.
fn smallest_chunk(doc: &Automerge, changes: &[&[u8]]) -> (Vec<u8>, bool) {
    let raw: Vec<u8> = changes.iter().copied().flatten().copied().collect();
    let mut best = raw;
    if changes.len() > 1 {
        let hashes: Option<Vec<ChangeHash>> = changes
            .iter()
            .map(|c| Change::from_bytes(c.to_vec()).ok().map(|c| c.hash()))
            .collect();
        if let Some(bundle) = hashes.and_then(|h| doc.bundle(h).ok()) {
            let bundle = bundle.bytes();
            if bundle.len() < best.len() {
                best = bundle.to_vec();
            }
        }
    }
    if best.len() >= DEFLATE_FROM {
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        if encoder.write_all(&best).is_ok()
            && let Ok(deflated) = encoder.finish()
            && deflated.len() < best.len()
        {
            return (deflated, true);
        }
    }
    (best, false)
}

fn inflate(bytes: &[u8], max_bytes: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(bytes)
        .take(max_bytes as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("its changes could not be inflated ({e})"))?;
    if out.len() > max_bytes {
        return Err(format!(
            "its changes inflate to more than this peer's limit of {max_bytes} bytes"
        ));
    }
    Ok(out)
}

fn write_len(out: &mut Vec<u8>, mut value: usize) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn write_hashes(out: &mut Vec<u8>, hashes: &[ChangeHash]) {
    write_len(out, hashes.len());
    for hash in hashes {
        out.extend_from_slice(&hash.0);
    }
}

struct Input<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Input<'a> {
    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len());
        let end = end.ok_or("it ends part-way")?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn len(&mut self) -> Result<usize, String> {
        let mut value = 0usize;
        for shift in (0..35).step_by(7) {
            let byte = self.byte()?;
            value |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a length in it is too long".into())
    }

    fn hashes(&mut self) -> Result<Vec<ChangeHash>, String> {
        let count = self.len()?;
        // Each hash takes 32 bytes: a count the frame cannot hold is a lie.
        if count > (self.bytes.len() - self.at) / 32 {
            return Err("it names more changes than it holds".into());
        }
        (0..count)
            .map(|_| {
                let bytes: [u8; 32] = self.take(32)?.try_into().expect("32 bytes taken");
                Ok(ChangeHash(bytes))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::sync::SyncDoc;
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ObjType, ROOT, ReadDoc};

    /// A document with a text and a map, edited `n` times after a base
    /// both peers share; returns (base, edited).
    fn edited(n: usize) -> (AutoCommit, AutoCommit) {
        let mut base = AutoCommit::new();
        let notes = base.put_object(ROOT, "notes", ObjType::Text).unwrap();
        base.splice_text(&notes, 0, 0, "Notes:").unwrap();
        base.put(ROOT, "status", "red").unwrap();
        base.commit();
        let mut doc = base.fork();
        for i in 0..n {
            if i % 2 == 0 {
                doc.put(ROOT, "status", ["amber", "green"][i % 4 / 2])
                    .unwrap();
            } else {
                let len = doc.length(&notes);
                doc.splice_text(&notes, len, 0, &format!(" Checked {i} with the head."))
                    .unwrap();
            }
            doc.commit();
        }
        (base, doc)
    }

    /// Runs automerge's exchange between two documents, each message
    /// through the compact form; returns the messages each way.
    fn exchange(
        a: &mut AutoCommit,
        sa: &mut sync::State,
        b: &mut AutoCommit,
        sb: &mut sync::State,
    ) -> Vec<usize> {
        let mut sizes = Vec::new();
        for _ in 0..20 {
            let mut quiet = true;
            let message = a.sync().generate_sync_message(sa);
            if let Some(m) = message {
                let bytes = encode(a.document(), m);
                sizes.push(bytes.len());
                let m = decode(&bytes, 1 << 24).unwrap();
                b.sync().receive_sync_message(sb, m).unwrap();
                quiet = false;
            }
            let message = b.sync().generate_sync_message(sb);
            if let Some(m) = message {
                let bytes = encode(b.document(), m);
                sizes.push(bytes.len());
                let m = decode(&bytes, 1 << 24).unwrap();
                a.sync().receive_sync_message(sa, m).unwrap();
                quiet = false;
            }
            if quiet {
                return sizes;
            }
        }
        panic!("the exchange did not settle");
    }

    #[test]
    fn messages_read_back_as_automerge_wrote_them() {
        let (mut base, mut doc) = edited(6);
        let (mut sa, mut sb) = (sync::State::new(), sync::State::new());
        exchange(&mut doc, &mut sa, &mut base, &mut sb);
        assert_eq!(base.get_heads(), doc.get_heads());
        // Every message, flags and haves included, survives the trip.
        let mut fresh = sync::State::new();
        let message = doc.sync().generate_sync_message(&mut fresh).unwrap();
        let message = message.clone();
        let back = decode(&encode(doc.document(), message.clone()), 1 << 20).unwrap();
        assert_eq!(back.heads, message.heads);
        assert_eq!(back.need, message.need);
        assert_eq!(back.have, message.have);
        assert_eq!(back.flags, message.flags);
    }

    /// Many edits go as one deflated bundle, smaller than the raw
    /// changes deflated, and an empty document takes them too.
    #[test]
    fn a_run_of_changes_goes_as_a_deflated_bundle() {
        let (mut base, mut doc) = edited(50);
        let changes = doc.document().get_changes(&base.get_heads());
        let raw: Vec<u8> = changes
            .iter()
            .flat_map(|c| c.raw_bytes().to_vec())
            .collect();
        let chunks: Vec<&[u8]> = changes.iter().map(|c| c.raw_bytes()).collect();
        let (chunk, deflated) = smallest_chunk(doc.document(), &chunks);
        assert!(deflated);
        assert!(
            chunk.len() * 3 < raw.len(),
            "{} bytes for {} raw",
            chunk.len(),
            raw.len()
        );
        let mut receiver = base.fork();
        receiver
            .load_incremental(&inflate(&chunk, 1 << 20).unwrap())
            .unwrap();
        assert_eq!(receiver.get_heads(), doc.get_heads());
    }

    /// A lone change is sent as it is: bundling or deflating it would
    /// only add bytes.
    #[test]
    fn a_lone_change_goes_as_it_is() {
        let (mut base, mut doc) = edited(1);
        let change = doc.document().get_changes(&base.get_heads())[0]
            .raw_bytes()
            .to_vec();
        let (chunk, deflated) = smallest_chunk(doc.document(), &[change.as_slice()]);
        assert!(!deflated);
        assert_eq!(chunk, change);
    }

    /// With both sync states kept from last time, the edits arrive in the
    /// first message and the answer completes the sync: one round trip.
    #[test]
    fn a_kept_sync_state_converges_in_one_round_trip() {
        let (mut relay, _) = edited(0);
        let mut school = relay.fork();
        let (mut ss, mut sr) = (sync::State::new(), sync::State::new());
        exchange(&mut school, &mut ss, &mut relay, &mut sr);
        // Both keep their states; the school edits offline.
        let mut ss = sync::State::decode(&ss.encode()).unwrap();
        let mut sr = sync::State::decode(&sr.encode()).unwrap();
        let notes = school.get(ROOT, "notes").unwrap().unwrap().1;
        for i in 0..50 {
            school.splice_text(&notes, 0, 0, &format!("{i} ")).unwrap();
            school.commit();
        }
        let mut first = school.sync().generate_sync_message(&mut ss).unwrap();
        catch_up(school.document(), &mut ss, &mut first);
        let bytes = encode(school.document(), first);
        relay
            .sync()
            .receive_sync_message(&mut sr, decode(&bytes, 1 << 20).unwrap())
            .unwrap();
        assert_eq!(relay.get_heads(), school.get_heads(), "the edits arrived");
        let answer = relay.sync().generate_sync_message(&mut sr).unwrap();
        let answer = decode(&encode(relay.document(), answer), 1 << 20).unwrap();
        school.sync().receive_sync_message(&mut ss, answer).unwrap();
        assert!(school.sync().generate_sync_message(&mut ss).is_none());
        assert!(relay.sync().generate_sync_message(&mut sr).is_none());
        assert_eq!(ss.shared_heads, school.get_heads());
    }

    /// A live edit between peers in sync: the change, its summary, and
    /// back an acknowledgement of about 40 bytes (heads once, an empty
    /// summary). The change's own hash is not sent beside it.
    #[test]
    fn a_live_edit_costs_little_beyond_its_change() {
        // A document of some history: automerge sends it whole when the
        // changes to send are over a third of it.
        let (mut base, mut doc) = edited(12);
        let (mut sa, mut sb) = (sync::State::new(), sync::State::new());
        exchange(&mut doc, &mut sa, &mut base, &mut sb);
        // In a running sync the peers know each other (v2 messages).
        let before = doc.get_heads();
        doc.put(ROOT, "status", "done").unwrap();
        doc.commit();
        let change = doc.document().get_changes(&before)[0].raw_bytes().len();
        let sizes = exchange(&mut doc, &mut sa, &mut base, &mut sb);
        assert_eq!(base.get_heads(), doc.get_heads());
        assert_eq!(sizes.len(), 2, "{sizes:?}");
        assert!(
            sizes[0] <= change + 50,
            "{sizes:?} for a change of {change}"
        );
        assert!(sizes[1] <= 40, "{sizes:?}");
    }

    /// Changes run together in one chunk (automerge's v2 message) are
    /// found one by one; a document is not taken for changes.
    #[test]
    fn runs_of_changes_are_split_and_documents_left_whole() {
        let (mut base, mut doc) = edited(5);
        let changes = doc.document().get_changes(&base.get_heads());
        let joined: Vec<u8> = changes
            .iter()
            .flat_map(|c| c.raw_bytes().to_vec())
            .collect();
        let split = split_changes(&joined).unwrap();
        assert_eq!(split.len(), 5);
        assert_eq!(split[4], changes[4].raw_bytes());
        assert!(split_changes(&doc.save()).is_none());
        assert!(split_changes(&joined[..joined.len() - 1]).is_none());
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let (_, mut doc) = edited(8);
        let mut state = sync::State::new();
        let message = doc.sync().generate_sync_message(&mut state).unwrap();
        let bytes = encode(doc.document(), message);
        for cut in 0..bytes.len() {
            let _ = decode(&bytes[..cut], 1 << 20);
        }
        assert!(decode(&[0, 0xff, 0xff, 0xff, 0xff, 0x0f], 1 << 20).is_err());
        assert!(decode(&[HEADS_ARE_THE_CHANGE, 0, 0, 1, 2, 3], 1 << 20).is_err());
        // A deflate bomb stops at the limit.
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&vec![0u8; 1 << 20]).unwrap();
        let mut bomb = vec![DEFLATED, 0, 0, 0];
        bomb.extend(encoder.finish().unwrap());
        let error = decode(&bomb, 1000).unwrap_err();
        assert!(error.contains("limit"), "{error}");
    }
}
