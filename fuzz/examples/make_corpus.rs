//! Writes the seed corpus: real frames of every message type for
//! `frame_decoder`, and real exchanges (a member creating and editing a
//! document, a viewer joining, reading, trying to write, presence) for
//! `relay_core`. `cargo run --example make_corpus` in fuzz/; the fuzzer
//! grows the corpus from these.

use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ROOT};
use partnerplan_fuzz::{MEMBER_PEER, Step, write};
use partnerplan_sync::message::{ListedPartnership, PROTOCOL_VERSION, SyncFrame};
use partnerplan_sync::{DocumentId, Message, PeerMetadata};

const RELAY: &str = "partnerplan-relay";
const VIEWER: &str = "fuzz-viewer";

fn sync_data(doc: &mut AutoCommit) -> Vec<u8> {
    let mut state = sync::State::new();
    doc.sync()
        .generate_sync_message(&mut state)
        .expect("a first message")
        .encode()
}

fn frame(sender: &str, id: DocumentId, data: Vec<u8>) -> SyncFrame {
    SyncFrame {
        sender_id: sender.into(),
        target_id: RELAY.into(),
        document_id: id,
        data,
    }
}

fn join(sender: &str) -> Message {
    Message::Join {
        sender_id: sender.into(),
        supported_protocol_versions: vec![PROTOCOL_VERSION.into()],
        metadata: PeerMetadata {
            storage_id: Some(format!("{sender}-storage")),
            is_ephemeral: false,
            listing: true,
            ..PeerMetadata::default()
        },
    }
}

fn main() {
    let id = DocumentId::from_bytes([7; 16]);
    let mut empty = AutoCommit::new();
    let mut doc = AutoCommit::new();
    doc.put(ROOT, "title", "Action plan").unwrap();
    doc.put(ROOT, "status", "amber").unwrap();
    let mut edit = doc.fork();
    edit.put(ROOT, "status", "green").unwrap();
    let request = Message::Request(frame(MEMBER_PEER, id, sync_data(&mut empty)));
    let create = Message::Sync(frame(MEMBER_PEER, id, sync_data(&mut doc)));
    let change = Message::Sync(frame(MEMBER_PEER, id, sync_data(&mut edit)));
    let viewer_request = Message::Request(frame(VIEWER, id, sync_data(&mut empty)));
    let viewer_write = Message::Sync(frame(VIEWER, id, sync_data(&mut edit)));
    let ephemeral = Message::Ephemeral {
        sender_id: VIEWER.into(),
        target_id: RELAY.into(),
        document_id: id,
        session_id: "session".into(),
        count: 1,
        data: vec![0xa1, 0x61, 0x78, 0x01],
    };
    let every_type = vec![
        join(MEMBER_PEER),
        Message::Peer {
            sender_id: RELAY.into(),
            target_id: MEMBER_PEER.into(),
            selected_protocol_version: PROTOCOL_VERSION.into(),
            metadata: PeerMetadata::default(),
        },
        Message::Leave {
            sender_id: MEMBER_PEER.into(),
        },
        Message::Error {
            sender_id: Some(RELAY.into()),
            target_id: None,
            message: "the message could not be read".into(),
            document_id: None,
        },
        request.clone(),
        create.clone(),
        change.clone(),
        Message::DocUnavailable {
            sender_id: MEMBER_PEER.into(),
            target_id: RELAY.into(),
            document_id: id,
        },
        ephemeral.clone(),
        Message::Gossip {
            sender_id: MEMBER_PEER.into(),
            kind: "remote-heads-changed".into(),
        },
        Message::Listing {
            sender_id: RELAY.into(),
            target_id: MEMBER_PEER.into(),
            partnerships: vec![ListedPartnership {
                id: "p1".into(),
                name: "Fuzz".into(),
                role: partnerplan_sync::access::Role::Member,
                home: true,
                documents: vec![id],
                shared: Vec::new(),
                schools: Vec::new(),
            }],
            more: false,
        },
        Message::Claim {
            sender_id: MEMBER_PEER.into(),
            target_id: RELAY.into(),
            document_id: id,
            partnership: "p1".into(),
        },
    ];
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let decoder = out.join("frame_decoder");
    std::fs::create_dir_all(&decoder).unwrap();
    for (i, message) in every_type.iter().enumerate() {
        std::fs::write(
            decoder.join(format!("seed-{i:02}-{}", message.kind())),
            message.encode(),
        )
        .unwrap();
    }
    let enc = |m: &Message| m.encode();
    let (request, create, change) = (enc(&request), enc(&create), enc(&change));
    let (viewer_join, viewer_request, viewer_write, ephemeral) = (
        enc(&join(VIEWER)),
        enc(&viewer_request),
        enc(&viewer_write),
        enc(&ephemeral),
    );
    let member = |bytes| Step::Frame {
        viewer: false,
        bytes,
    };
    let viewer = |bytes| Step::Frame {
        viewer: true,
        bytes,
    };
    let exchanges: Vec<(&str, Vec<Step<'_>>)> = vec![
        ("member-requests-unknown", vec![member(&request)]),
        (
            "member-creates-and-edits",
            vec![member(&create), member(&change), Step::Tick],
        ),
        (
            "viewer-reads-and-tries-to-write",
            vec![
                member(&create),
                viewer(&viewer_join),
                viewer(&viewer_request),
                viewer(&viewer_write),
            ],
        ),
        (
            "viewer-presence-and-reconnect",
            vec![
                member(&create),
                viewer(&viewer_join),
                viewer(&viewer_request),
                viewer(&ephemeral),
                Step::Reconnect,
                viewer(&viewer_join),
                viewer(&viewer_write),
            ],
        ),
        (
            "idle-and-back",
            vec![member(&create), Step::Tick, Step::Tick, member(&change)],
        ),
    ];
    let core = out.join("relay_core");
    std::fs::create_dir_all(&core).unwrap();
    for (name, steps) in exchanges {
        std::fs::write(core.join(format!("seed-{name}")), write(&steps)).unwrap();
    }
}
