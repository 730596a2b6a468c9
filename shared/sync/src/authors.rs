//! Who wrote the changes a sync message carries, read before any of them
//! is applied, so the relay's access policy can decide whether the
//! connection may send them (a school sends only changes made under its
//! own Automerge actors).
//!
//! A sync message's `changes` are Automerge chunks: single changes
//! (plain or compressed), bundles of changes, or a whole document (sent
//! when more than a third of a document is missing). Each is read with
//! Automerge's own parsers; only the changes the receiving document does
//! not hold yet count, since those are the ones applying would add.
//! **No IO.**

use std::collections::BTreeSet;

use automerge::{ActorId, Automerge, Bundle, Change, ChangeHash, LoadOptions, VerificationMode};

/// The first bytes of every Automerge chunk.
const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const DOCUMENT: u8 = 0;
const CHANGE: u8 = 1;
const COMPRESSED_CHANGE: u8 = 2;
const BUNDLE: u8 = 3;

/// The actors of the changes in `chunks` that `doc` does not hold, each
/// once, in order. `Err` says, in words for the sender, why the chunks
/// could not be read (applying them would fail the same way).
pub fn new_authors<'a>(
    doc: &Automerge,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<ActorId>, String> {
    let mut authors: Vec<ActorId> = Vec::new();
    let mut seen: BTreeSet<ActorId> = BTreeSet::new();
    let mut note = |actor: &ActorId, hash: &ChangeHash| {
        if doc.get_change_meta_by_hash(hash).is_none() && seen.insert(actor.clone()) {
            authors.push(actor.clone());
        }
    };
    for bytes in chunks {
        let mut rest = bytes;
        while !rest.is_empty() {
            let (kind, chunk, after) = split_chunk(rest)?;
            rest = after;
            match kind {
                CHANGE | COMPRESSED_CHANGE => {
                    let change = Change::try_from(chunk)
                        .map_err(|e| format!("a change in it cannot be read ({e})"))?;
                    note(change.actor_id(), &change.hash());
                }
                BUNDLE => {
                    let bundle = Bundle::try_from(chunk)
                        .map_err(|e| format!("a bundle of changes in it cannot be read ({e})"))?;
                    let changes = bundle
                        .to_changes()
                        .map_err(|e| format!("a bundle of changes in it cannot be read ({e})"))?;
                    for change in &changes {
                        note(change.actor_id(), &change.hash());
                    }
                }
                DOCUMENT => {
                    let whole = Automerge::load_with_options(
                        chunk,
                        LoadOptions::new().verification_mode(VerificationMode::DontCheck),
                    )
                    .map_err(|e| format!("the document in it cannot be read ({e})"))?;
                    for meta in whole.get_changes_meta(&[]) {
                        note(&meta.actor, &meta.hash);
                    }
                }
                other => return Err(format!("it holds data of an unknown kind ({other})")),
            }
        }
    }
    Ok(authors)
}

/// Splits the first chunk off `bytes`: its kind, the chunk with its
/// header, and what follows it.
fn split_chunk(bytes: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    const TRUNCATED: &str = "a change in it is cut short";
    if bytes.len() < 9 || bytes[..4] != MAGIC {
        return Err("it holds something that is not an Automerge change".into());
    }
    let kind = bytes[8];
    let mut length: u64 = 0;
    let mut at = 9;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(at).ok_or(TRUNCATED)?;
        at += 1;
        length |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
    }
    let end = usize::try_from(length)
        .ok()
        .and_then(|length| at.checked_add(length))
        .filter(|end| *end <= bytes.len())
        .ok_or(TRUNCATED)?;
    Ok((kind, &bytes[..end], &bytes[end..]))
}

#[cfg(test)]
mod tests {
    use automerge::sync::{self, SyncDoc};
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ROOT};

    use super::*;

    fn actor(name: &str) -> ActorId {
        ActorId::from(name.as_bytes())
    }

    /// What one peer's first sync message to another carries, after a
    /// first exchange of heads.
    fn changes_sent(from: &mut Automerge, to: &mut Automerge) -> Vec<Vec<u8>> {
        let (mut ours, mut theirs) = (sync::State::new(), sync::State::new());
        for _ in 0..10 {
            if let Some(message) = from.generate_sync_message(&mut ours) {
                if !message.changes.is_empty() {
                    return message.changes.iter().map(<[u8]>::to_vec).collect();
                }
                to.receive_sync_message(&mut theirs, message).unwrap();
            }
            if let Some(message) = to.generate_sync_message(&mut theirs) {
                from.receive_sync_message(&mut ours, message).unwrap();
            }
        }
        Vec::new()
    }

    #[test]
    fn the_authors_of_changes_the_document_lacks_are_read_from_every_kind_of_chunk() {
        let mut shared = AutoCommit::new().with_actor(actor("hilltop"));
        shared.put(ROOT, "title", "Plan").unwrap();
        let mut relay = shared.document().clone();
        let mut school = shared.fork().with_actor(actor("valley"));
        school.put(ROOT, "lead", "Mrs Okafor").unwrap();
        school.set_actor(actor("valley-2"));
        school.put(ROOT, "status", "green").unwrap();
        let mut school = school.document().clone();

        // Single changes: only the ones the relay lacks count.
        let sent = changes_sent(&mut school, &mut relay);
        assert!(!sent.is_empty());
        let authors = new_authors(&relay, sent.iter().map(Vec::as_slice)).unwrap();
        assert_eq!(authors, vec![actor("valley"), actor("valley-2")]);

        // A whole document, as sent to a peer that has nothing.
        let whole = school.save();
        let authors = new_authors(&Automerge::new(), [whole.as_slice()]).unwrap();
        assert_eq!(
            authors,
            vec![actor("hilltop"), actor("valley"), actor("valley-2")]
        );
        let authors = new_authors(&relay, [whole.as_slice()]).unwrap();
        assert_eq!(authors, vec![actor("valley"), actor("valley-2")]);

        // Compressed changes and several chunks in one run of bytes.
        let incremental = school.save_after(&relay.get_heads());
        let authors = new_authors(&relay, [incremental.as_slice()]).unwrap();
        assert_eq!(authors, vec![actor("valley"), actor("valley-2")]);
        let mut changes = school.get_changes(&relay.get_heads());
        let mut joined = Vec::new();
        for change in &mut changes {
            joined.extend_from_slice(&change.bytes());
        }
        let authors = new_authors(&relay, [joined.as_slice()]).unwrap();
        assert_eq!(authors, vec![actor("valley"), actor("valley-2")]);

        // A bundle.
        let hashes: Vec<ChangeHash> = changes.iter().map(Change::hash).collect();
        let bundle = school.bundle(hashes).unwrap();
        let authors = new_authors(&relay, [bundle.bytes()]).unwrap();
        assert_eq!(authors, vec![actor("valley"), actor("valley-2")]);

        // Nothing new: no authors.
        assert!(new_authors(&school, [whole.as_slice()]).unwrap().is_empty());
    }

    #[test]
    fn bytes_that_are_not_changes_are_refused_in_words() {
        let doc = Automerge::new();
        let error = new_authors(&doc, [b"not a change".as_slice()]).unwrap_err();
        assert!(error.contains("not an Automerge change"), "{error}");
        let mut change = AutoCommit::new();
        change.put(ROOT, "a", 1).unwrap();
        let bytes = change.save();
        let error = new_authors(&doc, [&bytes[..bytes.len() - 3]]).unwrap_err();
        assert!(error.contains("cut short"), "{error}");
        let mut unknown = bytes.clone();
        unknown[8] = 9;
        let error = new_authors(&doc, [unknown.as_slice()]).unwrap_err();
        assert!(error.contains("unknown kind"), "{error}");
    }
}
