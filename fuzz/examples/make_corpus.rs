//! Writes the seed corpus: real frames of every message type for
//! `frame_decoder`, and real exchanges for `relay_core` (a member creating
//! and editing a document; a viewer reading and trying to write; a school
//! asking for, and writing to, another partnership's document; a school
//! writing under a partner's actor; the register changing mid-sync;
//! presence; garbage; our own client's compact frames). Each exchange is run through the harness here, and
//! what it must reach is checked (a seed that creates nothing would teach
//! the fuzzer nothing). `cargo run --example make_corpus` in fuzz/; the
//! fuzzer grows the corpus from these.

use automerge::sync::{self, SyncDoc};
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, Automerge, ROOT};
use partnerplan_fuzz::{
    NORTH_ACTOR, NORTH_DOC, PEERS, Relay, SOUTH_DOC, Seen, Session, Step, join, kept_documents,
    write,
};
use partnerplan_sync::compact;
use partnerplan_sync::message::{CompactFrame, ListedPartnership, PROTOCOL_VERSION, SyncFrame};
use partnerplan_sync::{DocumentId, Message, PeerMetadata};

const RELAY: &str = "partnerplan-relay";
const MEMBER: usize = 0;
const VIEWER: usize = 1;
const SOUTH: usize = 2;
const BOTH: usize = 3;

/// A document made under a fixed actor at time 0, so the corpus comes
/// out the same every time.
fn edited(base: &AutoCommit, actor: u8, field: &str, value: &str) -> AutoCommit {
    let mut doc = base.clone().with_actor(ActorId::from([actor; 16]));
    doc.put(ROOT, field, value).unwrap();
    doc.commit_with(CommitOptions::default().with_time(0));
    doc
}

fn whole(doc: &AutoCommit) -> Automerge {
    doc.clone().document().clone()
}

/// The frames a client holding `client` sends a relay holding `relay`
/// to sync them, found by running the exchange with Automerge alone
/// (the relay's core answers the same way). A client with nothing asks
/// with `request`.
fn exchange(slot: usize, id: DocumentId, client: &AutoCommit, relay: &Automerge) -> Vec<Vec<u8>> {
    exchange_as(slot, id, client, relay, false)
}

/// The same exchange in the compact form our own clients use
/// (`Message::Compact`), for a slot whose `join` offered it.
fn exchange_compact(
    slot: usize,
    id: DocumentId,
    client: &AutoCommit,
    relay: &Automerge,
) -> Vec<Vec<u8>> {
    exchange_as(slot, id, client, relay, true)
}

fn exchange_as(
    slot: usize,
    id: DocumentId,
    client: &AutoCommit,
    relay: &Automerge,
    compact: bool,
) -> Vec<Vec<u8>> {
    let mut client = whole(client);
    let mut relay = relay.clone();
    let (mut ours, mut theirs) = (sync::State::new(), sync::State::new());
    let mut frames = Vec::new();
    let empty = client.get_heads().is_empty();
    for _ in 0..10 {
        let Some(message) = client.generate_sync_message(&mut ours) else {
            break;
        };
        relay
            .receive_sync_message(&mut theirs, message.clone())
            .unwrap();
        let request = empty && frames.is_empty();
        if compact {
            frames.push(
                Message::Compact(CompactFrame {
                    document_id: id,
                    request,
                    data: compact::encode(&client, message),
                })
                .encode(),
            );
        } else {
            let frame = SyncFrame {
                sender_id: PEERS[slot].into(),
                target_id: RELAY.into(),
                document_id: id,
                data: message.encode(),
            };
            frames.push(if request {
                Message::Request(frame).encode()
            } else {
                Message::Sync(frame).encode()
            });
        }
        if let Some(reply) = relay.generate_sync_message(&mut theirs) {
            client.receive_sync_message(&mut ours, reply).unwrap();
        }
    }
    frames
}

fn ephemeral(slot: usize, id: DocumentId, count: u64) -> Vec<u8> {
    Message::Ephemeral {
        sender_id: PEERS[slot].into(),
        target_id: RELAY.into(),
        document_id: id,
        session_id: format!("{}-session", PEERS[slot]),
        count,
        data: vec![0xa1, 0x61, 0x78, 0x01],
    }
    .encode()
}

fn frames(slot: usize, frames: &[Vec<u8>]) -> Vec<Step<'_>> {
    frames
        .iter()
        .map(|bytes| Step::Frame { slot, bytes })
        .collect()
}

fn frame(slot: usize, bytes: &[u8]) -> Step<'_> {
    Step::Frame { slot, bytes }
}

fn every_type() -> Vec<Message> {
    let id = DocumentId::from_bytes([7; 16]);
    let mut empty = AutoCommit::new();
    let data = empty
        .sync()
        .generate_sync_message(&mut sync::State::new())
        .unwrap()
        .encode();
    let sync_frame = SyncFrame {
        sender_id: PEERS[MEMBER].into(),
        target_id: RELAY.into(),
        document_id: id,
        data,
    };
    vec![
        join(MEMBER),
        Message::Peer {
            sender_id: RELAY.into(),
            target_id: PEERS[MEMBER].into(),
            selected_protocol_version: PROTOCOL_VERSION.into(),
            metadata: PeerMetadata::default(),
        },
        Message::Leave {
            sender_id: PEERS[MEMBER].into(),
        },
        Message::Error {
            sender_id: Some(RELAY.into()),
            target_id: None,
            message: "the message could not be read".into(),
            document_id: Some(id),
            retry_after_ms: Some(15_000),
        },
        Message::Request(sync_frame.clone()),
        Message::Sync(sync_frame),
        Message::DocUnavailable {
            sender_id: PEERS[MEMBER].into(),
            target_id: RELAY.into(),
            document_id: id,
        },
        Message::decode(&ephemeral(MEMBER, id, 1), usize::MAX).unwrap(),
        Message::Gossip {
            sender_id: PEERS[MEMBER].into(),
            kind: "remote-heads-changed".into(),
        },
        Message::Listing {
            sender_id: RELAY.into(),
            target_id: PEERS[MEMBER].into(),
            partnerships: vec![ListedPartnership {
                id: "p1".into(),
                name: "North".into(),
                role: partnerplan_sync::access::Role::Member,
                home: true,
                documents: vec![id],
                sizes: Vec::new(),
                shared: Vec::new(),
                schools: Vec::new(),
            }],
            more: false,
        },
        Message::Claim {
            sender_id: PEERS[MEMBER].into(),
            target_id: RELAY.into(),
            document_id: id,
            partnership: "p1".into(),
        },
        Message::Compact(CompactFrame {
            document_id: id,
            request: true,
            data: compact::encode(
                &Automerge::new(),
                Automerge::new()
                    .generate_sync_message(&mut sync::State::new())
                    .unwrap(),
            ),
        }),
    ]
}

fn main() {
    let [(_, north), (_, south)] = kept_documents();
    let nothing = Automerge::new();
    let new_id = DocumentId::from_bytes([0x33; 16]);
    let unknown = DocumentId::from_bytes([0x44; 16]);
    // Six operations: more than the harness's relay applies inline, so
    // it goes to the worker thread.
    let mut plan = AutoCommit::new().with_actor(ActorId::from([0xa2; 16]));
    for (field, value) in [
        ("title", "Our new plan"),
        ("period", "2017-2018"),
        ("status", "amber"),
        ("owner", "Hilltop"),
        ("area", "Writing"),
        ("outcome", "Better writing"),
    ] {
        plan.put(ROOT, field, value).unwrap();
    }
    plan.commit_with(CommitOptions::default().with_time(0));
    let plan_edited = edited(&plan, 0xa2, "status", "green");
    let plan_kept = whole(&plan);

    let member_creates = exchange(MEMBER, new_id, &plan, &nothing);
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let decoder = out.join("frame_decoder");
    std::fs::create_dir_all(&decoder).unwrap();
    // Every type, and a sync message carrying a new document's changes.
    let mut decoder_seeds: Vec<(String, Vec<u8>)> = every_type()
        .iter()
        .map(|message| (message.kind().to_string(), message.encode()))
        .collect();
    decoder_seeds.push((
        "sync-with-changes".into(),
        member_creates.last().unwrap().clone(),
    ));
    for (i, (kind, bytes)) in decoder_seeds.iter().enumerate() {
        std::fs::write(decoder.join(format!("seed-{i:02}-{kind}")), bytes).unwrap();
    }
    let member_edits = exchange(MEMBER, new_id, &plan_edited, &plan_kept);
    let member_reads_north = exchange(MEMBER, NORTH_DOC, &AutoCommit::new(), &whole(&north));
    let member_requests_unknown = exchange(MEMBER, unknown, &AutoCommit::new(), &nothing);
    let viewer_reads = exchange(VIEWER, NORTH_DOC, &AutoCommit::new(), &whole(&north));
    let viewer_writes = exchange(
        VIEWER,
        NORTH_DOC,
        &edited(&north, 0xd4, "status", "red"),
        &whole(&north),
    );
    let south_asks_north = exchange(SOUTH, NORTH_DOC, &AutoCommit::new(), &nothing);
    let south_writes_north = exchange(
        SOUTH,
        NORTH_DOC,
        &edited(&north, 0xb5, "status", "red"),
        &whole(&north),
    );
    let south_writes_own = exchange(
        SOUTH,
        SOUTH_DOC,
        &edited(&south, 0xb6, "status", "green"),
        &whole(&south),
    );
    let south_writes_own_compact = exchange_compact(
        SOUTH,
        SOUTH_DOC,
        &edited(&south, 0xb6, "status", "done"),
        &whole(&south),
    );
    let south_asks_north_compact = exchange_compact(SOUTH, NORTH_DOC, &AutoCommit::new(), &nothing);
    let south_creates_compact = exchange_compact(
        SOUTH,
        DocumentId::from_bytes([0x77; 16]),
        &plan,
        &nothing,
    );
    let both_reads_south = exchange(BOTH, SOUTH_DOC, &AutoCommit::new(), &whole(&south));
    let both_writes_south = exchange(
        BOTH,
        SOUTH_DOC,
        &edited(&south, 0xc3, "status", "red"),
        &whole(&south),
    );
    let both_writes_north = exchange(
        BOTH,
        NORTH_DOC,
        &edited(&north, 0xc3, "status", "done"),
        &whole(&north),
    );
    let both_as_member = exchange(
        BOTH,
        NORTH_DOC,
        &edited(&north, NORTH_ACTOR[0], "status", "done"),
        &whole(&north),
    );
    let claimed_for_south = DocumentId::from_bytes([0x55; 16]);
    let both_creates_for_south = exchange(
        BOTH,
        claimed_for_south,
        &edited(&AutoCommit::new(), 0xc3, "title", "For South"),
        &nothing,
    );
    let claimed_by_south = DocumentId::from_bytes([0x66; 16]);
    let south_creates = exchange(
        SOUTH,
        claimed_by_south,
        &edited(&AutoCommit::new(), 0xb6, "title", "South's"),
        &nothing,
    );
    // North Member edits North's plan 30 times while North Viewer reads
    // nothing: more than the relay lets wait for one connection.
    let mut edits = Vec::new();
    let mut before = north.clone();
    for i in 0..30 {
        let after = edited(&before, NORTH_ACTOR[0], "notes", &format!("note {i}"));
        edits.extend(exchange(MEMBER, NORTH_DOC, &after, &whole(&before)));
        before = after;
    }
    let both_creates = exchange(
        BOTH,
        unknown,
        &edited(&AutoCommit::new(), 0xc3, "title", "Both"),
        &nothing,
    );
    let (viewer_join, both_join) = (join(VIEWER).encode(), join(BOTH).encode());
    let (member_join, leave) = (
        join(MEMBER).encode(),
        Message::Leave {
            sender_id: PEERS[SOUTH].into(),
        }
        .encode(),
    );
    let (presence_north, presence_south) = (
        ephemeral(MEMBER, NORTH_DOC, 1),
        ephemeral(SOUTH, NORTH_DOC, 1),
    );
    let garbage = [0xa1, 0x64, 0x74, 0x79, 0x70, 0x65, 0xff];

    type Check = fn(&Seen) -> bool;
    let seeds: Vec<(&str, Vec<Step<'_>>, Check)> = vec![
        (
            "member-requests-unknown",
            frames(MEMBER, &member_requests_unknown),
            |s| s.persisted == 0,
        ),
        (
            "member-creates-and-edits",
            [
                frames(MEMBER, &member_creates),
                vec![Step::Tick],
                frames(MEMBER, &member_edits),
            ]
            .concat(),
            |s| s.claimed == 1 && s.persisted >= 2 && s.worked >= 1,
        ),
        (
            "viewer-reads-and-tries-to-write",
            [
                vec![frame(VIEWER, &viewer_join)],
                frames(VIEWER, &viewer_reads),
                frames(VIEWER, &viewer_writes),
            ]
            .concat(),
            |s| s.served >= 1 && s.persisted == 0 && s.errors >= 1,
        ),
        (
            "presence-and-reconnect",
            [
                frames(MEMBER, &member_reads_north),
                vec![frame(VIEWER, &viewer_join)],
                frames(VIEWER, &viewer_reads),
                vec![
                    frame(MEMBER, &presence_north),
                    Step::Reconnect { slot: VIEWER },
                    frame(VIEWER, &viewer_join),
                ],
                frames(VIEWER, &viewer_reads),
                vec![frame(MEMBER, &presence_north)],
            ]
            .concat(),
            |s| s.ephemeral >= 1,
        ),
        (
            "idle-and-back",
            [
                frames(MEMBER, &member_creates),
                vec![Step::Tick, Step::Tick],
                frames(MEMBER, &member_edits),
            ]
            .concat(),
            |s| s.claimed == 1 && s.persisted >= 2,
        ),
        (
            "south-asks-for-and-writes-north",
            [
                frames(MEMBER, &member_reads_north),
                frames(SOUTH, &south_asks_north),
                vec![frame(SOUTH, &presence_south)],
                frames(SOUTH, &south_writes_north),
                frames(SOUTH, &south_writes_own),
            ]
            .concat(),
            |s| s.persisted == 1,
        ),
        (
            "both-ways-reads-south-writes-north",
            [
                vec![frame(BOTH, &both_join)],
                frames(BOTH, &both_reads_south),
                frames(BOTH, &both_writes_south),
                frames(BOTH, &both_writes_north),
                frames(BOTH, &both_creates),
            ]
            .concat(),
            |s| s.served >= 1 && s.persisted == 2 && s.claimed == 1 && s.errors >= 1,
        ),
        (
            "both-ways-writes-under-a-partners-actor",
            [vec![frame(BOTH, &both_join)], frames(BOTH, &both_as_member)].concat(),
            |s| s.persisted == 0 && s.errors >= 1,
        ),
        (
            "register-changes-mid-sync",
            [
                vec![frame(BOTH, &both_join)],
                frames(BOTH, &both_reads_south),
                // Both Ways is cut (it is a viewer of North now) and
                // comes back; North Viewer is cut and cannot.
                vec![
                    frame(VIEWER, &viewer_join),
                    Step::RegisterChange,
                    frame(BOTH, &both_join),
                ],
                frames(BOTH, &both_writes_north),
                vec![
                    frame(VIEWER, &viewer_join),
                    Step::RegisterChange,
                    frame(VIEWER, &viewer_join),
                ],
                frames(VIEWER, &viewer_reads),
            ]
            .concat(),
            |s| s.persisted == 0 && s.closed >= 3 && s.served >= 2,
        ),
        (
            "shares-its-own-with-a-partnership-it-views",
            [
                vec![
                    frame(BOTH, &both_join),
                    Step::Claim {
                        slot: BOTH,
                        south: true,
                        document: 0x55,
                    },
                ],
                frames(BOTH, &both_creates_for_south),
            ]
            .concat(),
            |s| s.claimed == 1 && s.persisted == 1,
        ),
        (
            "claims-for-its-own-partnership",
            [
                vec![Step::Claim {
                    slot: SOUTH,
                    south: true,
                    document: 0x66,
                }],
                frames(SOUTH, &south_creates),
            ]
            .concat(),
            |s| s.claimed == 1 && s.persisted == 1,
        ),
        (
            "compact-south-writes-its-own-and-asks-for-north",
            [
                frames(SOUTH, &south_asks_north_compact),
                frames(SOUTH, &south_writes_own_compact),
                frames(SOUTH, &south_creates_compact),
                vec![Step::Tick],
            ]
            .concat(),
            |s| s.persisted >= 2 && s.claimed == 1 && s.worked >= 1,
        ),
        (
            "slow-reader",
            [
                vec![frame(VIEWER, &viewer_join), Step::Stall { slot: VIEWER }],
                frames(VIEWER, &viewer_reads),
                frames(MEMBER, &edits),
                vec![Step::Stall { slot: VIEWER }, Step::Tick],
            ]
            .concat(),
            |s| s.persisted >= 30 && s.served >= 2,
        ),
        (
            "garbage-join-twice-and-leave",
            vec![
                frame(MEMBER, &garbage),
                frame(MEMBER, &member_join),
                Step::Disconnect { slot: SOUTH },
                frame(SOUTH, &leave),
            ],
            |s| s.closed >= 3,
        ),
    ];
    let core = out.join("relay_core");
    std::fs::create_dir_all(&core).unwrap();
    let mut relay = Relay::new();
    for (name, steps, check) in seeds {
        let input = write(&steps);
        let seen = Session::new(&mut relay).run(&input);
        println!("{name}: {seen:?}");
        assert!(
            check(&seen),
            "seed {name} does not reach what it is for: {seen:?}"
        );
        std::fs::write(core.join(format!("seed-{name}")), input).unwrap();
    }
}
