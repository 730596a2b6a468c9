//! The protocol core driven through an in-memory network: one relay,
//! several clients, storage as maps. No sockets, no sleeps.

use std::collections::{HashMap, HashSet, VecDeque};

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT, ReadDoc};

use super::*;
use crate::access::{AccessRecord, Grant, Owner};
use crate::message::ListedPartnership;

/// Node 0 is the relay; node i > 0 is client i, whose connection to the
/// relay is conn i at the relay and conn 0 at the client.
struct Net {
    nodes: Vec<Repo>,
    stores: Vec<HashMap<DocumentId, Vec<Vec<u8>>>>,
    sync_states: Vec<HashMap<(DocumentId, String), Vec<u8>>>,
    linked: Vec<bool>,
    /// Frames from these clients to the relay are lost (a peer that never
    /// answers).
    muted: Vec<bool>,
    /// When the network is quiet and a node waits for a time (a paced
    /// message), time moves on to it: off for tests that watch the wait.
    time_flows: bool,
    queue: VecDeque<(usize, Event)>,
    /// Every effect seen, by node, for assertions on order.
    log: Vec<(usize, Effect)>,
    now_ms: u64,
    /// What each client's connection authenticated as at the relay.
    grants: HashMap<usize, Grant>,
    /// Document owners the relay asked to keep.
    owners: HashMap<DocumentId, Owner>,
    /// Documents each node asked to keep tracked, in order.
    tracked: Vec<Vec<DocumentId>>,
    /// What the relay's policy asked to keep, in order.
    records: Vec<AccessRecord>,
    /// The schools each node was told its actors belong to.
    named: Vec<HashMap<Vec<u8>, String>>,
    /// Signing keys the relay asked to keep, in order.
    signing_keys: Vec<crate::access::SchoolKey>,
    /// Clients that stopped reading, and what the relay sent them since.
    not_reading: HashMap<usize, Vec<Vec<u8>>>,
    /// Work the worker thread holds until `finish_work` (`None`: work
    /// finishes after what is already queued).
    held_work: Option<Vec<(usize, Event)>>,
}

impl Net {
    fn new(clients: usize) -> Net {
        Net::with_relay_policy(clients, Box::new(AllowAll))
    }

    fn with_relay_policy(clients: usize, policy: Box<dyn AccessPolicy>) -> Net {
        let mut nodes = vec![Repo::new(
            RepoConfig::new("relay", Some("relay-storage".into())),
            policy,
        )];
        for i in 1..=clients {
            nodes.push(Repo::new(
                RepoConfig::new(format!("school-{i}"), Some(format!("school-{i}-storage"))),
                Box::new(AllowAll),
            ));
        }
        Net {
            stores: vec![HashMap::new(); clients + 1],
            sync_states: vec![HashMap::new(); clients + 1],
            linked: vec![false; clients + 1],
            muted: vec![false; clients + 1],
            time_flows: true,
            nodes,
            queue: VecDeque::new(),
            log: Vec::new(),
            now_ms: 0,
            grants: HashMap::new(),
            owners: HashMap::new(),
            tracked: vec![Vec::new(); clients + 1],
            records: Vec::new(),
            named: vec![HashMap::new(); clients + 1],
            signing_keys: Vec::new(),
            not_reading: HashMap::new(),
            held_work: None,
        }
    }

    fn connect(&mut self, client: usize) {
        self.linked[client] = true;
        self.queue.push_back((
            0,
            Event::Connected {
                conn: client as ConnId,
                initiate: false,
                grant: self.grants.get(&client).cloned(),
            },
        ));
        self.queue.push_back((
            client,
            Event::Connected {
                conn: 0,
                initiate: true,
                grant: None,
            },
        ));
        self.run();
    }

    fn disconnect(&mut self, client: usize) {
        self.linked[client] = false;
        self.queue.push_back((
            0,
            Event::Disconnected {
                conn: client as ConnId,
            },
        ));
        self.queue
            .push_back((client, Event::Disconnected { conn: 0 }));
        self.run();
    }

    /// A school edits its own copy: the edit lands in its storage first,
    /// as the command line does, and the core hears of it.
    fn edit(&mut self, client: usize, document_id: DocumentId, f: impl FnOnce(&mut AutoCommit)) {
        self.edit_later(client, document_id, f);
        self.run();
    }

    /// An edit whose news waits in the network's queue, behind what is
    /// already there: several of these make edits that cross in flight.
    fn edit_later(
        &mut self,
        client: usize,
        document_id: DocumentId,
        f: impl FnOnce(&mut AutoCommit),
    ) {
        let chunks = self.stores[client].entry(document_id).or_default();
        let mut doc = AutoCommit::new();
        for chunk in chunks.iter() {
            doc.load_incremental(chunk).unwrap();
        }
        doc.set_actor(automerge::ActorId::from(
            format!("actor-{client}").as_bytes(),
        ));
        let before = doc.get_heads();
        f(&mut doc);
        let chunk = doc.save_after(&before);
        chunks.push(chunk.clone());
        self.queue
            .push_back((client, Event::LocalChanges { document_id, chunk }));
    }

    /// A school edits under an actor of its choosing (another school's,
    /// copied from a document's history, say).
    fn edit_as(
        &mut self,
        client: usize,
        actor: &str,
        document_id: DocumentId,
        f: impl FnOnce(&mut AutoCommit),
    ) {
        let chunks = self.stores[client].entry(document_id).or_default();
        let mut doc = AutoCommit::new();
        for chunk in chunks.iter() {
            doc.load_incremental(chunk).unwrap();
        }
        doc.set_actor(automerge::ActorId::from(actor.as_bytes()));
        let before = doc.get_heads();
        f(&mut doc);
        let chunk = doc.save_after(&before);
        chunks.push(chunk.clone());
        self.queue
            .push_back((client, Event::LocalChanges { document_id, chunk }));
        self.run();
    }

    fn track(&mut self, client: usize, document_id: DocumentId) {
        self.queue.push_back((client, Event::Track { document_id }));
        self.run();
    }

    fn send_raw(&mut self, client: usize, bytes: Vec<u8>) {
        self.queue.push_back((
            0,
            Event::Frame {
                conn: client as ConnId,
                bytes,
            },
        ));
        self.run();
    }

    /// The owners the relay asked to keep, as its database gives them back.
    fn owners_by_partnership(&self) -> HashMap<DocumentId, String> {
        self.owners
            .iter()
            .map(|(id, owner)| (*id, owner.partnership.clone()))
            .collect()
    }

    fn stored(&self, node: usize, document_id: DocumentId) -> AutoCommit {
        let mut doc = AutoCommit::new();
        for chunk in self.stores[node].get(&document_id).into_iter().flatten() {
            doc.load_incremental(chunk).unwrap();
        }
        doc
    }

    fn run(&mut self) {
        let mut steps = 0;
        loop {
            while let Some((node, event)) = self.queue.pop_front() {
                steps += 1;
                assert!(steps < 100_000, "the network did not settle");
                let effects = self.nodes[node].handle(event);
                for effect in effects {
                    self.log.push((node, effect.clone()));
                    self.apply(node, effect);
                }
            }
            let next = (0..self.nodes.len())
                .filter_map(|node| Some((self.nodes[node].next_wakeup()?, node)))
                .min();
            match next {
                Some((at, node)) if self.time_flows => {
                    self.now_ms = self.now_ms.max(at);
                    let now_ms = self.now_ms;
                    self.queue.push_back((node, Event::Time { now_ms }));
                }
                _ => return,
            }
        }
    }

    fn apply(&mut self, node: usize, effect: Effect) {
        match effect {
            Effect::Send { conn, bytes } => {
                let (to, to_conn) = if node == 0 {
                    (conn as usize, 0)
                } else {
                    (0, node as ConnId)
                };
                let client = if node == 0 { conn as usize } else { node };
                if node == 0
                    && let Some(unread) = self.not_reading.get_mut(&client)
                {
                    unread.push(bytes);
                    return;
                }
                if self.linked[client] && !(node != 0 && self.muted[client]) {
                    if node == 0 {
                        // Written at once: the relay hears so.
                        self.queue.push_back((
                            0,
                            Event::Written {
                                conn,
                                bytes: bytes.len(),
                            },
                        ));
                    }
                    self.queue.push_back((
                        to,
                        Event::Frame {
                            conn: to_conn,
                            bytes,
                        },
                    ));
                }
            }
            Effect::Close { conn, .. } => {
                let client = if node == 0 { conn as usize } else { node };
                if self.linked[client] {
                    self.linked[client] = false;
                    let (to, to_conn) = if node == 0 {
                        (client, 0)
                    } else {
                        (0, node as ConnId)
                    };
                    self.queue
                        .push_back((to, Event::Disconnected { conn: to_conn }));
                }
            }
            Effect::Load { document_id } => {
                let chunks = self.stores[node]
                    .get(&document_id)
                    .cloned()
                    .unwrap_or_default();
                let sync_states = self.sync_states[node]
                    .iter()
                    .filter(|((d, _), _)| *d == document_id)
                    .map(|((_, s), state)| (s.clone(), state.clone()))
                    .collect();
                self.queue.push_front((
                    node,
                    Event::Loaded {
                        document_id,
                        chunks,
                        sync_states,
                    },
                ));
            }
            Effect::Persist { document_id, chunk } => {
                self.stores[node]
                    .entry(document_id)
                    .or_default()
                    .push(chunk);
            }
            Effect::PersistSyncState {
                document_id,
                storage_id,
                state,
            } => {
                self.sync_states[node].insert((document_id, storage_id), state);
            }
            Effect::PersistOwner { document_id, owner } => {
                self.owners.entry(document_id).or_insert(owner);
            }
            Effect::PersistTracked { document_id } => {
                self.tracked[node].push(document_id);
            }
            Effect::PersistAccess { record } => self.records.push(record),
            Effect::ActorsNamed { actors } => {
                for named in actors {
                    self.named[node].insert(named.actor, named.school);
                }
            }
            Effect::PersistSigningKey { key } => self.signing_keys.push(key),
            Effect::Work(work) => {
                // Run here, after what is already queued, as a worker
                // thread would finish it later; or held, for a test to
                // decide what happens meanwhile.
                let worked = (node, Event::Worked(work.run()));
                match &mut self.held_work {
                    Some(held) => held.push(worked),
                    None => self.queue.push_back(worked),
                }
            }
            Effect::PeerJoined { .. }
            | Effect::Listed { .. }
            | Effect::Unavailable { .. }
            | Effect::StorageUnreadable { .. }
            | Effect::RemoteError { .. } => {}
        }
    }

    /// The worker thread finishes what it holds, and what that hands it
    /// is held again.
    fn finish_work(&mut self) {
        let held = self.held_work.replace(Vec::new()).unwrap_or_default();
        self.queue.extend(held);
        self.run();
    }

    /// The client stops reading what the relay sends it.
    fn stop_reading(&mut self, client: usize) {
        self.not_reading.insert(client, Vec::new());
    }

    /// Bytes the relay has sent the client that it has not read.
    fn unread_bytes(&self, client: usize) -> usize {
        self.not_reading
            .get(&client)
            .map(|unread| unread.iter().map(Vec::len).sum())
            .unwrap_or(0)
    }

    /// The client reads everything waiting for it, and stops again.
    fn read_waiting(&mut self, client: usize) {
        let unread = self
            .not_reading
            .insert(client, Vec::new())
            .unwrap_or_default();
        for bytes in unread {
            self.queue.push_back((
                0,
                Event::Written {
                    conn: client as ConnId,
                    bytes: bytes.len(),
                },
            ));
            self.queue
                .push_back((client, Event::Frame { conn: 0, bytes }));
        }
        self.run();
    }

    fn tick(&mut self, advance_ms: u64) {
        self.now_ms += advance_ms;
        for node in 0..self.nodes.len() {
            let now_ms = self.now_ms;
            self.queue.push_back((node, Event::Time { now_ms }));
            self.queue.push_back((node, Event::Tick { now_ms }));
        }
        self.run();
    }

    /// Sync frames `from` sent `to` (0 being the relay) since log entry
    /// `since`, with the number of changes each carried.
    fn syncs(&self, from: usize, to: usize, since: usize) -> Vec<usize> {
        self.log[since..]
            .iter()
            .filter_map(|(node, effect)| match effect {
                Effect::Send { conn, bytes } if *node == from => {
                    let target = if from == 0 { *conn as usize } else { 0 };
                    (target == to).then_some(bytes)
                }
                _ => None,
            })
            .filter_map(|bytes| sync_message(bytes).map(|m| m.changes.len()))
            .collect()
    }

    fn sent_errors(&self, node: usize) -> Vec<String> {
        self.log
            .iter()
            .filter(|(n, _)| *n == node)
            .filter_map(|(_, e)| match e {
                Effect::Send { bytes, .. } => match Message::decode(bytes, usize::MAX) {
                    Ok(Message::Error { message, .. }) => Some(message),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }
}

fn text_of(doc: &AutoCommit, field: &str) -> String {
    let (_, id) = doc.get(ROOT, field).unwrap().unwrap();
    doc.text(&id).unwrap()
}

/// The sync message a frame carries, in either form (our cores speak the
/// compact one to each other; raw frames in tests are standard).
fn sync_message(bytes: &[u8]) -> Option<sync::Message> {
    match Message::decode(bytes, usize::MAX) {
        Ok(Message::Sync(frame) | Message::Request(frame)) => {
            Some(sync::Message::decode(&frame.data).unwrap())
        }
        Ok(Message::Compact(frame)) => {
            Some(crate::compact::decode(&frame.data, usize::MAX).unwrap())
        }
        _ => None,
    }
}

fn new_doc_with_title(net: &mut Net, client: usize, title: &str) -> DocumentId {
    new_doc_with_id(net, client, DocumentId::random(), title)
}

fn new_doc_with_id(net: &mut Net, client: usize, id: DocumentId, title: &str) -> DocumentId {
    let title = title.to_string();
    net.edit(client, id, move |doc| {
        let text = doc.put_object(ROOT, "title", ObjType::Text).unwrap();
        doc.splice_text(&text, 0, 0, &title).unwrap();
    });
    net.track(client, id);
    id
}

#[test]
fn a_document_created_at_one_school_reaches_another_through_the_relay() {
    let mut net = Net::new(2);
    net.connect(1);
    net.connect(2);
    let id = new_doc_with_title(&mut net, 1, "Action plan");
    assert_eq!(
        text_of(&net.stored(0, id), "title"),
        "Action plan",
        "the relay stored it"
    );
    net.track(2, id);
    assert_eq!(
        text_of(&net.stored(2, id), "title"),
        "Action plan",
        "school 2 stored it"
    );
    assert_eq!(net.nodes[1].progress(&id, 0), SyncProgress::InSync);
    assert_eq!(net.nodes[2].progress(&id, 0), SyncProgress::InSync);
}

#[test]
fn a_live_edit_reaches_every_subscribed_school() {
    let mut net = Net::new(3);
    for c in 1..=3 {
        net.connect(c);
    }
    let id = new_doc_with_title(&mut net, 1, "Plan");
    net.track(2, id);
    net.track(3, id);
    net.edit(2, id, |doc| {
        doc.put(ROOT, "status", "amber").unwrap();
    });
    for c in [1, 3] {
        let doc = net.stored(c, id);
        assert_eq!(
            doc.get(ROOT, "status").unwrap().unwrap().0.as_str(),
            Some("amber")
        );
    }
}

#[test]
fn offline_edits_converge_and_a_scalar_conflict_keeps_both_values() {
    let mut net = Net::new(2);
    net.connect(1);
    net.connect(2);
    let id = new_doc_with_title(&mut net, 1, "Plan");
    net.track(2, id);
    net.disconnect(1);
    net.disconnect(2);
    net.edit(1, id, |doc| {
        doc.put(ROOT, "status", "red").unwrap();
        doc.put(ROOT, "owner", "Mrs Patel").unwrap();
        let (_, title) = doc.get(ROOT, "title").unwrap().unwrap();
        doc.splice_text(&title, 4, 0, " A").unwrap();
    });
    net.edit(2, id, |doc| {
        doc.put(ROOT, "status", "green").unwrap();
        doc.put(ROOT, "review", "Spring 1").unwrap();
        let (_, title) = doc.get(ROOT, "title").unwrap().unwrap();
        doc.splice_text(&title, 0, 0, "B ").unwrap();
    });
    net.connect(1);
    net.connect(2);
    net.connect(1); // a second reconnect must change nothing
    let one = net.stored(1, id);
    let two = net.stored(2, id);
    let mut h1 = one.clone().get_heads();
    let mut h2 = two.clone().get_heads();
    h1.sort();
    h2.sort();
    assert_eq!(h1, h2, "both schools hold the same changes");
    assert_eq!(text_of(&one, "title"), "B Plan A");
    assert_eq!(
        one.get(ROOT, "owner").unwrap().unwrap().0.as_str(),
        Some("Mrs Patel")
    );
    assert_eq!(
        two.get(ROOT, "review").unwrap().unwrap().0.as_str(),
        Some("Spring 1")
    );
    let conflict: Vec<String> = one
        .get_all(ROOT, "status")
        .unwrap()
        .into_iter()
        .map(|(v, _)| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        conflict.len(),
        2,
        "both statuses stay visible: {conflict:?}"
    );
    assert!(conflict.contains(&"red".to_string()) && conflict.contains(&"green".to_string()));
}

#[test]
fn a_request_for_an_unknown_document_is_unavailable_until_it_appears() {
    let mut net = Net::new(2);
    net.connect(1);
    net.connect(2);
    let id = DocumentId::random();
    net.track(2, id);
    assert_eq!(net.nodes[2].progress(&id, 0), SyncProgress::Unavailable);
    assert!(!net.stores[0].contains_key(&id), "the relay stored nothing");
    assert!(
        net.log
            .iter()
            .any(|(n, e)| *n == 2 && matches!(e, Effect::Unavailable { .. }))
    );
    net.edit(1, id, |doc| {
        doc.put(ROOT, "title", "late").unwrap();
    });
    net.track(1, id);
    let doc = net.stored(2, id);
    assert_eq!(
        doc.get(ROOT, "title").unwrap().unwrap().0.as_str(),
        Some("late")
    );
}

#[test]
fn the_relay_confirms_a_change_only_after_asking_to_persist_it() {
    let mut net = Net::new(1);
    net.connect(1);
    let id = new_doc_with_title(&mut net, 1, "Plan");
    let relay_effects: Vec<&Effect> = net
        .log
        .iter()
        .filter(|(n, _)| *n == 0)
        .map(|(_, e)| e)
        .collect();
    let persist = relay_effects
        .iter()
        .position(|e| matches!(e, Effect::Persist { document_id, .. } if *document_id == id))
        .expect("the relay persisted the document");
    // The reply that carries the relay's new heads comes after it.
    let reply_after = relay_effects[persist..]
        .iter()
        .any(|e| matches!(e, Effect::Send { .. }));
    assert!(reply_after);
    assert_eq!(net.nodes[1].progress(&id, 0), SyncProgress::InSync);
}

#[test]
fn a_malformed_frame_closes_only_that_connection_and_changes_nothing_stored() {
    let mut net = Net::new(2);
    net.connect(1);
    net.connect(2);
    let id = new_doc_with_title(&mut net, 1, "Plan");
    net.track(2, id);
    let stored_before = net.stores[0].clone();
    net.send_raw(2, vec![0xa1, 0x64, b't', b'y']);
    assert!(!net.linked[2], "the bad connection was closed");
    let errors = net.sent_errors(0);
    assert!(
        errors.iter().any(|e| e.contains("could not be read")),
        "{errors:?}"
    );
    assert_eq!(net.stores[0], stored_before);
    // School 1 keeps working.
    net.edit(1, id, |doc| {
        doc.put(ROOT, "status", "done").unwrap();
    });
    assert_eq!(
        net.stored(0, id)
            .get(ROOT, "status")
            .unwrap()
            .unwrap()
            .0
            .as_str(),
        Some("done")
    );
}

#[test]
fn bad_input_gets_an_error_that_says_what_was_wrong() {
    let id = DocumentId::random();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            Message::Gossip {
                sender_id: "school-1".into(),
                kind: "hello".into(),
            }
            .encode(),
            "not part of the automerge-repo protocol",
        ),
        (
            Message::Sync(SyncFrame {
                sender_id: "someone-else".into(),
                target_id: "relay".into(),
                document_id: id,
                data: vec![],
            })
            .encode(),
            "this connection belongs to peer",
        ),
        (
            Message::Sync(SyncFrame {
                sender_id: "school-1".into(),
                target_id: "relay".into(),
                document_id: id,
                data: vec![0x42, 0x99, 1, 2, 3],
            })
            .encode(),
            "sync data for document",
        ),
        (
            {
                let mut e = minicbor::Encoder::new(Vec::new());
                e.map(5).unwrap();
                e.str("type").unwrap().str("sync").unwrap();
                e.str("senderId").unwrap().str("school-1").unwrap();
                e.str("targetId").unwrap().str("relay").unwrap();
                e.str("documentId")
                    .unwrap()
                    .str(&bs58::encode([7u8; 10]).with_check().into_string())
                    .unwrap();
                e.str("data").unwrap().bytes(&[]).unwrap();
                e.into_writer()
            },
            "holds 10 bytes where a document id holds 16",
        ),
    ];
    for (bytes, expected) in cases {
        let mut net = Net::new(1);
        net.connect(1);
        net.send_raw(1, bytes);
        assert!(!net.linked[1]);
        let errors = net.sent_errors(0);
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "expected “{expected}” in {errors:?}"
        );
        assert!(net.stores[0].is_empty());
    }
}

#[test]
fn ephemeral_messages_reach_other_subscribers_once_and_are_never_stored() {
    let mut net = Net::new(3);
    for c in 1..=3 {
        net.connect(c);
    }
    let id = new_doc_with_title(&mut net, 1, "Plan");
    net.track(2, id);
    net.track(3, id);
    let stored_before = net.stores[0].clone();
    let message = Message::Ephemeral {
        sender_id: "school-1".into(),
        target_id: "relay".into(),
        document_id: id,
        session_id: "cursor".into(),
        count: 1,
        data: vec![42],
    };
    let sends_before = net.log.len();
    net.send_raw(1, message.encode());
    net.send_raw(1, message.encode()); // a duplicate
    // A JS peer echoes what it received back, under the first sender's id.
    if let Message::Ephemeral { sender_id, .. } = &message {
        let echo = Message::Ephemeral {
            sender_id: sender_id.clone(),
            target_id: "relay".into(),
            document_id: id,
            session_id: "cursor".into(),
            count: 1,
            data: vec![42],
        };
        net.send_raw(2, echo.encode());
    }
    assert!(
        net.linked[2],
        "an echoed ephemeral message does not cost the connection"
    );
    let forwarded: Vec<usize> = net.log[sends_before..]
        .iter()
        .filter_map(|(n, e)| match e {
            Effect::Send { conn, bytes } if *n == 0 => match Message::decode(bytes, usize::MAX) {
                Ok(Message::Ephemeral { target_id, .. }) => {
                    assert_eq!(target_id, format!("school-{conn}"));
                    Some(*conn as usize)
                }
                _ => None,
            },
            _ => None,
        })
        .collect();
    let mut forwarded_sorted = forwarded.clone();
    forwarded_sorted.sort();
    assert_eq!(
        forwarded_sorted,
        vec![2, 3],
        "each other school once: {forwarded:?}"
    );
    assert_eq!(net.stores[0], stored_before);
}

/// Two schools that ask for the same made-up id (nobody has it, so no
/// partnership owns it) share nothing through it, not even presence:
/// the relay keeps no requesters of an id nobody has.
#[test]
fn presence_for_a_document_nobody_has_goes_nowhere() {
    let mut net = Net::new(2);
    net.connect(1);
    net.connect(2);
    let id = DocumentId::random();
    // Each asks for it, as a JS client's `find` does.
    let empty = automerge::Automerge::new();
    let ask = {
        use automerge::sync::SyncDoc;
        empty
            .generate_sync_message(&mut automerge::sync::State::new())
            .unwrap()
            .encode()
    };
    for school in [1, 2] {
        let frame = SyncFrame {
            sender_id: format!("school-{school}"),
            target_id: "relay".into(),
            document_id: id,
            data: ask.clone(),
        };
        net.send_raw(school, Message::Request(frame).encode());
    }
    let before = net.log.len();
    let presence = Message::Ephemeral {
        sender_id: "school-1".into(),
        target_id: "relay".into(),
        document_id: id,
        session_id: "cursor".into(),
        count: 1,
        data: b"a note for whoever else asks".to_vec(),
    };
    net.send_raw(1, presence.encode());
    let forwarded = net.log[before..].iter().any(|(node, effect)| {
        *node == 0
            && matches!(effect, Effect::Send { bytes, .. }
                if matches!(Message::decode(bytes, usize::MAX), Ok(Message::Ephemeral { .. })))
    });
    assert!(!forwarded, "nothing went to school 2");
}

#[test]
fn idle_documents_are_unloaded_and_load_again_when_asked() {
    let mut net = Net::new(2);
    net.connect(1);
    let id = new_doc_with_title(&mut net, 1, "Plan");
    net.disconnect(1);
    assert_eq!(net.nodes[0].loaded_documents(), 1);
    net.tick(120_000);
    assert_eq!(
        net.nodes[0].loaded_documents(),
        0,
        "nobody syncs it: unloaded"
    );
    net.connect(2);
    net.track(2, id);
    assert_eq!(text_of(&net.stored(2, id), "title"), "Plan");
}

fn status_of(doc: &AutoCommit) -> Option<String> {
    doc.get(ROOT, "status")
        .unwrap()
        .and_then(|(value, _)| value.as_str().map(str::to_string))
}

#[test]
fn a_burst_of_changes_reaches_each_other_subscriber_in_a_message_or_two() {
    let mut net = Net::new(3);
    for c in 1..=3 {
        net.connect(c);
    }
    let id = new_doc_with_title(&mut net, 1, "Plan");
    net.track(2, id);
    net.track(3, id);
    let before = net.log.len();
    // School 1 types twenty changes before any answer comes back.
    for i in 0..20 {
        net.edit_later(1, id, move |doc| {
            doc.put(ROOT, "status", format!("step {i}")).unwrap();
        });
    }
    net.run();
    for c in [2, 3] {
        assert_eq!(status_of(&net.stored(c, id)).as_deref(), Some("step 19"));
        let syncs = net.syncs(0, c, before);
        // The first change goes at once; the rest wait for its
        // acknowledgement and follow together.
        assert!(
            syncs.len() <= 3,
            "school {c} was sent {} messages for 20 changes",
            syncs.len()
        );
    }
    // Every change is acknowledged to its sender too.
    assert_eq!(net.nodes[1].progress(&id, 0), SyncProgress::InSync);
}

#[test]
fn a_quiet_documents_change_goes_to_every_subscriber_at_once() {
    let mut net = Net::new(3);
    for c in 1..=3 {
        net.connect(c);
    }
    let id = new_doc_with_title(&mut net, 1, "Plan");
    net.track(2, id);
    net.track(3, id);
    let before = net.log.len();
    net.edit(2, id, |doc| {
        doc.put(ROOT, "status", "amber").unwrap();
    });
    for c in [1, 3] {
        assert_eq!(
            net.syncs(0, c, before),
            vec![1],
            "one message to school {c}, with the change"
        );
        // Its acknowledgement is not answered: nothing was new.
        assert_eq!(net.syncs(c, 0, before).len(), 1);
    }
    // The sender hears once that the relay holds it.
    assert_eq!(net.syncs(0, 2, before), vec![0]);
}

#[test]
fn a_subscriber_that_never_answers_is_sent_what_waits_after_a_while() {
    let mut net = Net::new(2);
    net.connect(1);
    net.connect(2);
    let id = new_doc_with_title(&mut net, 1, "Plan");
    net.track(2, id);
    net.muted[2] = true;
    net.time_flows = false;
    net.edit(1, id, |doc| {
        doc.put(ROOT, "status", "amber").unwrap();
    });
    net.edit(1, id, |doc| {
        doc.put(ROOT, "status", "green").unwrap();
    });
    // The first change went; the second waits for an answer that is lost.
    assert_eq!(status_of(&net.stored(2, id)).as_deref(), Some("amber"));
    net.tick(crate::pacing::REPLY_WAIT_MS - 1);
    assert_eq!(status_of(&net.stored(2, id)).as_deref(), Some("amber"));
    net.tick(1);
    assert_eq!(status_of(&net.stored(2, id)).as_deref(), Some("green"));
}

#[test]
fn an_idle_document_leaves_memory_while_its_subscribers_stay_and_comes_back_in_one_exchange() {
    let mut net = Net::new(3);
    for c in 1..=3 {
        net.connect(c);
    }
    let id = new_doc_with_title(&mut net, 1, "Plan");
    net.track(2, id);
    net.track(3, id);
    net.tick(30_000);
    assert_eq!(net.nodes[0].loaded_documents(), 1, "in use a while ago");
    net.tick(31_000);
    assert_eq!(net.nodes[0].loaded_documents(), 0, "idle for a minute");
    assert_eq!(net.nodes[0].resting_documents(), 1, "its subscribers stay");

    // Presence goes on while it rests, and does not wake it.
    let before = net.log.len();
    let presence = Message::Ephemeral {
        sender_id: "school-1".into(),
        target_id: "relay".into(),
        document_id: id,
        session_id: "cursor".into(),
        count: 1,
        data: vec![7],
    };
    net.send_raw(1, presence.encode());
    let heard: Vec<ConnId> = net.log[before..]
        .iter()
        .filter_map(|(node, effect)| match effect {
            Effect::Send { conn, bytes } if *node == 0 => matches!(
                Message::decode(bytes, usize::MAX),
                Ok(Message::Ephemeral { .. })
            )
            .then_some(*conn),
            _ => None,
        })
        .collect();
    assert_eq!(heard.len(), 2, "schools 2 and 3 hear it: {heard:?}");
    assert_eq!(net.nodes[0].loaded_documents(), 0);

    let before = net.log.len();
    net.edit(2, id, |doc| {
        doc.put(ROOT, "status", "amber").unwrap();
    });
    // One message each way with the editor, and the change straight to
    // the others: no round trip to find out where they stood.
    assert_eq!(net.syncs(2, 0, before), vec![1]);
    assert_eq!(net.syncs(0, 2, before), vec![0]);
    for c in [1, 3] {
        assert_eq!(net.syncs(0, c, before), vec![1]);
        assert_eq!(status_of(&net.stored(c, id)).as_deref(), Some("amber"));
        assert_eq!(net.nodes[c].progress(&id, 0), SyncProgress::InSync);
    }
    assert_eq!(net.nodes[0].loaded_documents(), 1);

    // At rest again, then every subscriber leaves: nothing is left.
    net.tick(61_000);
    assert_eq!(net.nodes[0].resting_documents(), 1);
    for c in 1..=3 {
        net.disconnect(c);
    }
    assert_eq!(net.nodes[0].resting_documents(), 0);
    assert_eq!(net.nodes[0].loaded_documents(), 0);
}

/// What the relay's bound counts for a document, from what it stored.
fn relay_estimate(net: &Net, id: DocumentId) -> u64 {
    memory_estimate(net.stores[0][&id].iter().map(|c| c.len() as u64).sum())
}

#[test]
fn over_its_memory_bound_the_relay_rests_the_documents_untouched_longest_first() {
    let mut net = Net::new(2);
    net.connect(1);
    net.connect(2);
    let mut ids = Vec::new();
    for title in ["Plan A", "Plan B", "Plan C"] {
        let id = new_doc_with_title(&mut net, 1, title);
        net.track(2, id);
        ids.push(id);
        net.tick(1_000);
    }
    let [a, b, c] = [ids[0], ids[1], ids[2]];
    let is_resting = |net: &Net, id: DocumentId| {
        matches!(net.nodes[0].documents.get(&id), Some(Slot::Resting(_)))
    };
    // Room for two of the three.
    let bound = relay_estimate(&net, a) + relay_estimate(&net, b) + relay_estimate(&net, c) / 2;
    net.nodes[0].config.document_memory = Some(bound);

    // Plan C, touched last, has been untouched for 4.5 s, under the
    // minimum: only the oldest goes, and that is enough.
    net.tick(3_500);
    assert_eq!(net.nodes[0].resting_documents(), 1);
    assert!(is_resting(&net, a), "the one untouched longest rests");
    assert!(!is_resting(&net, b) && !is_resting(&net, c));

    // Nothing fits now, but a document touched under 5 s ago stays.
    net.nodes[0].config.document_memory = Some(1);
    net.tick(100);
    assert!(is_resting(&net, b));
    assert!(!is_resting(&net, c), "touched 4.6 s ago");
    net.tick(500);
    assert!(is_resting(&net, c));
    assert_eq!(net.nodes[0].loaded_documents(), 0);

    // A rested plan comes back with its next edit, in one exchange.
    let before = net.log.len();
    net.edit(1, a, |doc| {
        doc.put(ROOT, "status", "amber").unwrap();
    });
    assert_eq!(net.syncs(1, 0, before), vec![1]);
    assert_eq!(net.syncs(0, 2, before), vec![1]);
    assert_eq!(status_of(&net.stored(2, a)).as_deref(), Some("amber"));
    assert!(!is_resting(&net, a));
}

/// A relay policy that refuses changes while the test says so, as one
/// over a school's daily allowance does.
struct Charges(std::sync::Arc<std::sync::Mutex<Option<Refusal>>>);

impl AccessPolicy for Charges {
    fn permission(&self, _: ConnId, _: &DocumentId) -> Permission {
        Permission::ReadWrite
    }

    fn charge(&mut self, _: ConnId, _: u64, _: u64, _: u64) -> Result<(), Refusal> {
        match self.0.lock().unwrap().clone() {
            Some(refusal) => Err(refusal),
            None => Ok(()),
        }
    }
}

#[test]
fn changes_refused_for_a_reason_that_passes_go_again_on_the_same_connection() {
    let refusing = std::sync::Arc::new(std::sync::Mutex::new(None));
    let mut net = Net::with_relay_policy(2, Box::new(Charges(refusing.clone())));
    net.connect(1);
    net.connect(2);
    let id = new_doc_with_title(&mut net, 1, "Plan");
    net.track(2, id);

    // Over the allowance until it refills in 30 s.
    *refusing.lock().unwrap() = Some(Refusal {
        reason: "School 1 has sent all it may today".into(),
        retry_after_ms: Some(30_000),
    });
    net.edit(1, id, |doc| {
        doc.put(ROOT, "status", "amber").unwrap();
    });
    assert_eq!(net.nodes[1].progress(&id, 0), SyncProgress::Refused);
    assert!(net.nodes[1].refusal_passes(&id, 0));
    assert_eq!(
        net.nodes[1].refusal(&id, 0),
        Some("School 1 has sent all it may today")
    );
    *refusing.lock().unwrap() = None;
    net.tick(29_000);
    assert_eq!(status_of(&net.stored(2, id)), None, "not before its time");
    assert_eq!(net.nodes[1].progress(&id, 0), SyncProgress::Refused);

    // Once it has passed, the change goes, without reconnecting.
    net.tick(2_000);
    assert_eq!(status_of(&net.stored(2, id)).as_deref(), Some("amber"));
    assert_eq!(status_of(&net.stored(0, id)).as_deref(), Some("amber"));
    assert_eq!(net.nodes[1].progress(&id, 0), SyncProgress::InSync);
    assert_eq!(net.nodes[1].refusal(&id, 0), None);

    // A refusal that does not pass holds until the school reconnects.
    *refusing.lock().unwrap() = Some(Refusal {
        reason: "document over this relay's limit".into(),
        retry_after_ms: None,
    });
    net.edit(1, id, |doc| {
        doc.put(ROOT, "status", "green").unwrap();
    });
    assert!(!net.nodes[1].refusal_passes(&id, 0));
    *refusing.lock().unwrap() = None;
    net.tick(25 * 60 * 60 * 1000);
    assert_eq!(net.nodes[1].progress(&id, 0), SyncProgress::Refused);
    assert_eq!(status_of(&net.stored(2, id)).as_deref(), Some("amber"));
    net.disconnect(1);
    net.connect(1);
    assert_eq!(status_of(&net.stored(2, id)).as_deref(), Some("green"));
}

/// A new document whose first changes meet a refusal that passes: when
/// the wait is over, the relay answers its first message again, and the
/// document reaches it. (Found in review: the relay had noted the id as
/// absent for that connection, and stayed silent.)
#[test]
fn a_new_document_refused_for_a_while_reaches_the_relay_after_the_wait() {
    let refusing = std::sync::Arc::new(std::sync::Mutex::new(Some(Refusal {
        reason: "School 1 has sent all it may today".into(),
        retry_after_ms: Some(30_000),
    })));
    let mut net = Net::with_relay_policy(1, Box::new(Charges(refusing.clone())));
    net.connect(1);
    let id = new_doc_with_title(&mut net, 1, "Plan");
    assert_eq!(net.nodes[1].progress(&id, 0), SyncProgress::Refused);
    assert!(!net.stores[0].contains_key(&id));
    *refusing.lock().unwrap() = None;
    net.tick(31_000);
    assert_eq!(text_of(&net.stored(0, id), "title"), "Plan");
    assert_eq!(net.nodes[1].progress(&id, 0), SyncProgress::InSync);
}

/// Over the bound, a document nobody syncs any more leaves memory before
/// one whose subscribers are still connected, however recently touched.
/// (Found in review.)
#[test]
fn over_its_memory_bound_the_relay_drops_documents_nobody_syncs_first() {
    let mut net = Net::new(2);
    net.connect(1);
    net.connect(2);
    let kept = new_doc_with_title(&mut net, 1, "Plan A");
    net.track(2, kept);
    net.tick(1_000);
    let left = new_doc_with_title(&mut net, 2, "Plan B");
    net.disconnect(2);
    // Room for one of the two.
    let bound = relay_estimate(&net, kept) + relay_estimate(&net, left) / 2;
    net.nodes[0].config.document_memory = Some(bound);
    net.tick(6_000);
    assert!(
        !net.nodes[0].documents.contains_key(&left),
        "the one nobody syncs left"
    );
    assert!(
        matches!(net.nodes[0].documents.get(&kept), Some(Slot::Ready(_))),
        "the one school 1 syncs stays, though touched earlier"
    );
}

#[test]
fn a_subscriber_that_reconnects_while_its_document_rests_resumes_from_kept_state() {
    let mut net = Net::new(2);
    net.connect(1);
    net.connect(2);
    let id = new_doc_with_title(&mut net, 1, "Plan");
    net.track(2, id);
    net.tick(61_000);
    assert_eq!(net.nodes[0].resting_documents(), 1);
    // The relay keeps sync states when peers leave; a peer may never
    // leave while its document rests, so they are kept as it goes to rest.
    let kept = net.sync_states[0][&(id, "school-2-storage".to_string())].clone();
    assert_eq!(
        sync::State::decode(&kept).unwrap().shared_heads,
        net.stored(0, id).get_heads()
    );
    net.disconnect(2);
    assert_eq!(
        net.nodes[0].resting_documents(),
        1,
        "school 1 still subscribes"
    );
    net.edit(1, id, |doc| {
        doc.put(ROOT, "status", "green").unwrap();
    });
    net.connect(2);
    assert_eq!(status_of(&net.stored(2, id)).as_deref(), Some("green"));
    assert_eq!(net.nodes[2].progress(&id, 0), SyncProgress::InSync);
}

/// A school whose bloom filter check gives a false positive sends a change
/// without its parent; the relay keeps it waiting, in memory only, until
/// the parent comes. The sender counts it as sent for as long as the
/// connection lasts, so a document that went to rest meanwhile would lose
/// it on that connection for good (the random schedules found this).
#[test]
fn a_change_waiting_for_its_parent_keeps_its_document_in_memory_until_it_applies() {
    let mut net = Net::new(1);
    net.connect(1);
    let id = new_doc_with_title(&mut net, 1, "Plan");
    // Two changes made at school 1, the second on top of the first.
    let mut doc = net.stored(1, id);
    doc.set_actor(automerge::ActorId::from("actor-1".as_bytes()));
    doc.put(ROOT, "status", "amber").unwrap();
    let parent = doc.get_last_local_change().unwrap().raw_bytes().to_vec();
    doc.put(ROOT, "status", "green").unwrap();
    let child = doc.get_last_local_change().unwrap().raw_bytes().to_vec();
    let heads = doc.get_heads();
    let frame = |change: Vec<u8>| {
        Message::Sync(SyncFrame {
            sender_id: "school-1".into(),
            target_id: "relay".into(),
            document_id: id,
            data: automerge::sync::Message {
                heads: heads.clone(),
                need: vec![],
                have: vec![],
                changes: vec![change].into(),
                flags: None,
                version: automerge::sync::MessageVersion::V1,
            }
            .encode(),
        })
        .encode()
    };
    net.send_raw(1, frame(child));
    assert_eq!(status_of(&net.stored(0, id)), None, "the child waits");
    net.tick(61_000);
    assert_eq!(
        net.nodes[0].resting_documents(),
        0,
        "a document holding a change that waits for its parent stays in memory"
    );
    net.send_raw(1, frame(parent));
    let mut stored = net.stored(0, id);
    assert_eq!(status_of(&stored).as_deref(), Some("green"));
    assert_eq!(stored.get_heads(), heads, "both changes are saved");
    // Once nothing waits, the idle document rests as any other.
    net.tick(61_000);
    assert_eq!(net.nodes[0].resting_documents(), 1);
}

#[test]
fn a_reconnect_with_kept_sync_state_sends_only_what_is_new() {
    reconnect_sends_only_what_is_new(true);
}

#[test]
fn a_relay_that_keeps_sync_states_only_at_disconnect_still_resumes_cheaply() {
    reconnect_sends_only_what_is_new(false);
}

fn reconnect_sends_only_what_is_new(eager_relay: bool) {
    fn bytes_sent_by(net: &Net, node: usize, since: usize) -> usize {
        net.log[since..]
            .iter()
            .filter_map(|(n, e)| match e {
                Effect::Send { bytes, .. } if *n == node => Some(bytes.len()),
                _ => None,
            })
            .sum()
    }
    let mut net = Net::new(1);
    let mut relay_config = RepoConfig::new("relay", Some("relay-storage".into()));
    relay_config.eager_sync_states = eager_relay;
    net.nodes[0] = Repo::new(relay_config, Box::new(AllowAll));
    net.connect(1);
    let id = DocumentId::random();
    // A term's worth of edits, each its own change.
    for i in 0..30 {
        net.edit(1, id, move |doc| {
            let list = match doc.get(ROOT, "rows").unwrap() {
                Some((_, list)) => list,
                None => doc.put_object(ROOT, "rows", ObjType::List).unwrap(),
            };
            for j in 0..20 {
                doc.insert(&list, j, format!("row {i}.{j} with some words in it"))
                    .unwrap();
            }
        });
    }
    let before_first = net.log.len();
    net.track(1, id);
    let first_sync = bytes_sent_by(&net, 1, before_first);
    net.disconnect(1);
    net.edit(1, id, |doc| {
        doc.put(ROOT, "status", "green").unwrap();
    });
    let before = net.log.len();
    net.connect(1);
    let reconnect = bytes_sent_by(&net, 1, before);
    assert!(
        reconnect * 4 < first_sync,
        "the reconnect sent {reconnect} bytes where the first sync sent {first_sync}"
    );
    assert_eq!(
        net.stored(0, id)
            .get(ROOT, "status")
            .unwrap()
            .unwrap()
            .0
            .as_str(),
        Some("green")
    );
}

/// The frames `node` sent on `conn`, decoded, from log entry `since` on.
fn frames_sent(net: &Net, node: usize, conn: ConnId, since: usize) -> Vec<Message> {
    net.log[since..]
        .iter()
        .filter_map(|(n, e)| match e {
            Effect::Send { conn: c, bytes } if *n == node && *c == conn => {
                Some(Message::decode(bytes, usize::MAX).unwrap())
            }
            _ => None,
        })
        .collect()
}

/// Our own peers agree on compact frames in `join` and `peer`; a peer
/// that does not offer them (a JS or samod client) is sent the standard
/// `sync`, and syncs as before.
#[test]
fn compact_sync_is_used_only_when_both_sides_offer_it() {
    let mut net = Net::new(2);
    let mut plain = RepoConfig::new("school-2", Some("school-2-storage".into()));
    plain.compact = false;
    net.nodes[2] = Repo::new(plain, Box::new(AllowAll));
    net.connect(1);
    net.connect(2);
    let id = new_doc_with_title(&mut net, 1, "Plan");
    net.track(2, id);
    net.edit(2, id, |doc| {
        doc.put(ROOT, "status", "amber").unwrap();
    });
    let status = net.stored(1, id);
    assert_eq!(
        status.get(ROOT, "status").unwrap().unwrap().0.as_str(),
        Some("amber")
    );
    let kinds = |node: usize, conn: ConnId| -> HashSet<String> {
        frames_sent(&net, node, conn, 0)
            .iter()
            .filter(|m| m.document_id().is_some())
            .map(|m| m.kind().to_string())
            .collect()
    };
    let compact: HashSet<String> = [crate::message::COMPACT_TYPE.to_string()].into();
    assert_eq!(kinds(0, 1), compact, "relay to our client");
    assert_eq!(kinds(1, 0), compact, "our client to the relay");
    let standard: HashSet<String> = ["sync".to_string()].into();
    assert_eq!(kinds(0, 2), standard, "relay to a standard peer");
    assert!(kinds(2, 0).is_subset(&["sync".into(), "request".into()].into()));
}

/// A school that edited offline, reconnecting with the sync state both
/// sides kept: its edits go in its first message and the relay's answer
/// completes the sync. One round trip, in a few hundred bytes.
#[test]
fn offline_edits_reach_the_relay_in_one_round_trip() {
    let mut net = Net::new(1);
    net.connect(1);
    let id = new_doc_with_title(&mut net, 1, "Plan");
    net.edit(1, id, |doc| {
        doc.put_object(ROOT, "notes", ObjType::Text).unwrap();
    });
    net.disconnect(1);
    for i in 0..50 {
        net.edit(1, id, move |doc| {
            if i % 2 == 0 {
                doc.put(ROOT, "status", ["red", "amber", "green"][i % 3])
                    .unwrap();
            } else {
                let (_, notes) = doc.get(ROOT, "notes").unwrap().unwrap();
                let len = doc.length(&notes);
                doc.splice_text(&notes, len, 0, &format!(" Visit {i} went well."))
                    .unwrap();
            }
        });
    }
    let before = net.log.len();
    net.connect(1);
    let up: Vec<Message> = frames_sent(&net, 1, 0, before)
        .into_iter()
        .filter(|m| m.document_id() == Some(id))
        .collect();
    let down: Vec<Message> = frames_sent(&net, 0, 1, before)
        .into_iter()
        .filter(|m| m.document_id() == Some(id))
        .collect();
    assert_eq!((up.len(), down.len()), (1, 1), "one message each way");
    assert_eq!(net.nodes[1].progress(&id, 0), SyncProgress::InSync);
    let mut school = net.stored(1, id);
    assert_eq!(net.stored(0, id).get_heads(), school.get_heads());
    let sent = up[0].encode().len();
    assert!(sent < 1500, "the fifty edits took {sent} bytes");
}

/// Partnerships as the relay keeps them, reduced to what the core asks:
/// client i (conn i) is in the partnerships listed for it, with a role.
#[derive(Default)]
struct Partnerships {
    /// conn -> (partnership -> may write)
    members: HashMap<ConnId, HashMap<&'static str, bool>>,
    owners: HashMap<DocumentId, &'static str>,
}

#[derive(Clone, Default)]
struct SharedPartnerships(std::sync::Arc<std::sync::Mutex<Partnerships>>);

impl SharedPartnerships {
    fn member(&self, conn: ConnId, partnership: &'static str, may_write: bool) {
        self.0
            .lock()
            .unwrap()
            .members
            .entry(conn)
            .or_default()
            .insert(partnership, may_write);
    }
    fn remove(&self, conn: ConnId, partnership: &'static str) {
        self.0
            .lock()
            .unwrap()
            .members
            .entry(conn)
            .or_default()
            .remove(partnership);
    }
    fn owner(&self, id: &DocumentId) -> Option<&'static str> {
        self.0.lock().unwrap().owners.get(id).copied()
    }
}

impl AccessPolicy for SharedPartnerships {
    fn permission(&self, conn: ConnId, id: &DocumentId) -> Permission {
        let state = self.0.lock().unwrap();
        let Some(member_of) = state.members.get(&conn) else {
            return Permission::None;
        };
        match state.owners.get(id) {
            Some(owner) => match member_of.get(owner) {
                Some(true) => Permission::ReadWrite,
                Some(false) => Permission::Read,
                None => Permission::None,
            },
            None if member_of.values().any(|&w| w) => Permission::Create,
            None => Permission::None,
        }
    }

    fn claim(&mut self, conn: ConnId, id: &DocumentId) -> Result<Option<Owner>, String> {
        let mut state = self.0.lock().unwrap();
        let home = state.members[&conn]
            .iter()
            .find(|(_, w)| **w)
            .map(|(p, _)| *p)
            .ok_or("no partnership to put it in")?;
        state.owners.insert(*id, home);
        Ok(None)
    }
}

fn remote_errors(net: &Net, node: usize) -> Vec<String> {
    net.sent_errors(node)
}

#[test]
fn each_partnership_sees_only_its_own_documents() {
    let partnerships = SharedPartnerships::default();
    partnerships.member(1, "north", true);
    partnerships.member(2, "south", true);
    partnerships.member(3, "north", true);
    partnerships.member(3, "south", true); // one school in both
    let mut net = Net::with_relay_policy(3, Box::new(partnerships.clone()));
    for c in 1..=3 {
        net.connect(c);
    }
    let north = new_doc_with_title(&mut net, 1, "North plan");
    assert_eq!(
        partnerships.owner(&north),
        Some("north"),
        "claimed by its creator's partnership"
    );
    let south = new_doc_with_title(&mut net, 2, "South plan");
    assert_eq!(partnerships.owner(&south), Some("south"));

    // School 2 knows north's id but gets nothing of it.
    net.track(2, north);
    assert!(!net.stores[2].contains_key(&north) || net.stored(2, north).get_heads().is_empty());
    assert_eq!(net.nodes[2].progress(&north, 0), SyncProgress::Unavailable);
    // Nor can it take it over by sending changes for it.
    net.edit(2, north, |doc| {
        doc.put(ROOT, "title", "stolen").unwrap();
    });
    assert_eq!(text_of(&net.stored(0, north), "title"), "North plan");
    assert_eq!(partnerships.owner(&north), Some("north"));

    // School 3, in both, gets both.
    net.track(3, north);
    net.track(3, south);
    assert_eq!(text_of(&net.stored(3, north), "title"), "North plan");
    assert_eq!(text_of(&net.stored(3, south), "title"), "South plan");
}

#[test]
fn a_viewer_reads_but_its_changes_are_never_applied_and_it_is_told() {
    let partnerships = SharedPartnerships::default();
    partnerships.member(1, "north", true);
    partnerships.member(2, "north", false); // the local authority
    partnerships.member(3, "north", true);
    let mut net = Net::with_relay_policy(3, Box::new(partnerships.clone()));
    for c in 1..=3 {
        net.connect(c);
    }
    let id = new_doc_with_title(&mut net, 1, "Plan");
    net.track(2, id);
    net.track(3, id);
    assert_eq!(
        text_of(&net.stored(2, id), "title"),
        "Plan",
        "the viewer reads it"
    );
    let relay_before = net.stores[0].clone();
    net.edit(2, id, |doc| {
        doc.put(ROOT, "status", "red").unwrap();
    });
    assert_eq!(
        net.stores[0], relay_before,
        "nothing the viewer wrote is stored"
    );
    for school in [1, 3] {
        assert!(
            net.stored(school, id)
                .get(ROOT, "status")
                .unwrap()
                .is_none(),
            "nor passed on"
        );
    }
    let told = remote_errors(&net, 0);
    assert!(
        told.iter()
            .any(|m| m.contains("may read document") && m.contains("not saved or passed on")),
        "{told:?}"
    );
    assert!(
        net.linked[2],
        "the viewer stays connected and keeps reading"
    );
    net.edit(1, id, |doc| {
        doc.put(ROOT, "status", "green").unwrap();
    });
    assert_eq!(
        net.stored(2, id).get_all(ROOT, "status").unwrap().len(),
        2,
        "its own edit stays local beside the new one"
    );
}

#[test]
fn a_school_removed_from_a_partnership_receives_nothing_more() {
    let partnerships = SharedPartnerships::default();
    partnerships.member(1, "north", true);
    partnerships.member(2, "north", true);
    let mut net = Net::with_relay_policy(2, Box::new(partnerships.clone()));
    net.connect(1);
    net.connect(2);
    let id = new_doc_with_title(&mut net, 1, "Plan");
    net.track(2, id);
    partnerships.remove(2, "north");
    net.edit(1, id, |doc| {
        doc.put(ROOT, "secret", "after removal").unwrap();
    });
    assert!(net.stored(2, id).get(ROOT, "secret").unwrap().is_none());
}

#[test]
fn a_stored_document_with_no_owner_cannot_be_claimed_by_whoever_asks_first() {
    let partnerships = SharedPartnerships::default();
    partnerships.member(1, "north", true);
    let mut net = Net::with_relay_policy(1, Box::new(partnerships.clone()));
    // Written before ownership was recorded.
    let id = DocumentId::random();
    let mut legacy = AutoCommit::new();
    legacy.put(ROOT, "title", "old").unwrap();
    net.stores[0].insert(id, vec![legacy.save()]);
    net.connect(1);
    net.track(1, id);
    assert_eq!(net.nodes[1].progress(&id, 0), SyncProgress::Unavailable);
    assert_eq!(partnerships.owner(&id), None);
}

/// A sync message whose bloom filter claims one entry with no bits: it
/// would divide by zero inside automerge.
fn poisoned_sync(sender: &str, id: DocumentId) -> Vec<u8> {
    let bloom = automerge::sync::BloomFilter::try_from(&[1u8, 0, 7][..]).expect("parses");
    let mut message = automerge::sync::Message {
        heads: vec![],
        need: vec![],
        have: vec![automerge::sync::Have {
            last_sync: vec![],
            bloom,
        }],
        changes: automerge::sync::ChunkList::empty(),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    };
    message.heads.clear();
    Message::Sync(SyncFrame {
        sender_id: sender.into(),
        target_id: "relay".into(),
        document_id: id,
        data: message.encode(),
    })
    .encode()
}

#[test]
fn a_poisoned_bloom_filter_is_refused_and_the_relay_keeps_serving() {
    let mut net = Net::new(2);
    net.connect(1);
    net.connect(2);
    let id = new_doc_with_title(&mut net, 1, "Plan");
    net.send_raw(2, poisoned_sync("school-2", id));
    assert!(!net.linked[2]);
    let errors = net.sent_errors(0);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("bloom filter) is malformed")),
        "{errors:?}"
    );
    net.edit(1, id, |doc| {
        doc.put(ROOT, "status", "green").unwrap();
    });
    assert_eq!(
        net.stored(0, id)
            .get(ROOT, "status")
            .unwrap()
            .unwrap()
            .0
            .as_str(),
        Some("green")
    );
}

/// What a real peer never sends is refused before automerge sees it:
/// each `have` entry costs a pass over the document's changes, and each
/// repeated need a copy of a change in the reply.
#[test]
fn oversized_sync_lists_are_refused_and_repeated_needs_answered_once() {
    let mut net = Net::new(2);
    net.connect(1);
    net.connect(2);
    let id = new_doc_with_title(&mut net, 1, "Plan");
    let frame = |message: automerge::sync::Message| {
        Message::Sync(SyncFrame {
            sender_id: "school-2".into(),
            target_id: "relay".into(),
            document_id: id,
            data: message.encode(),
        })
        .encode()
    };
    let empty = || automerge::sync::Message {
        heads: vec![],
        need: vec![],
        have: vec![],
        changes: automerge::sync::ChunkList::empty(),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    };
    let heads = net.stored(0, id).get_heads();
    let cases = [
        (
            automerge::sync::Message {
                have: vec![automerge::sync::Have::default(); MAX_SYNC_HAVES as usize + 1],
                ..empty()
            },
            "it lists 17 summaries (“have”), where a peer sends at most 16",
        ),
        (
            automerge::sync::Message {
                need: vec![heads[0]; MAX_SYNC_HASHES as usize + 1],
                ..empty()
            },
            "it lists 1025 hashes in “need”, where a peer sends at most 1024",
        ),
        (
            automerge::sync::Message {
                heads: vec![heads[0]; MAX_SYNC_HASHES as usize + 1],
                ..empty()
            },
            "it lists 1025 hashes in “heads”",
        ),
    ];
    for (message, expected) in cases {
        net.connect(2);
        net.send_raw(2, frame(message));
        assert!(!net.linked[2], "{expected}");
        let errors = net.sent_errors(0);
        assert!(errors.iter().any(|e| e.contains(expected)), "{errors:?}");
    }

    // A need repeated 1,000 times (within the limit) brings the change once.
    net.connect(2);
    let before = net.log.len();
    net.send_raw(
        2,
        frame(automerge::sync::Message {
            need: vec![heads[0]; 1000],
            ..empty()
        }),
    );
    let changes_sent: usize = net.log[before..]
        .iter()
        .filter_map(|(n, e)| match e {
            Effect::Send { conn: 2, bytes } if *n == 0 => {
                sync_message(bytes).map(|m| m.changes.len())
            }
            _ => None,
        })
        .sum();
    assert_eq!(changes_sent, 1, "the needed change is sent once");
    assert!(net.linked[2]);
}

#[test]
fn a_change_that_clashes_stops_only_that_document_not_the_connection() {
    let mut net = Net::new(2);
    net.connect(1);
    net.connect(2);
    let plan = new_doc_with_title(&mut net, 1, "Plan");
    let other = new_doc_with_title(&mut net, 1, "Other");
    // School 2 writes under school 1's actor (a copied data directory):
    // its change has the same actor and sequence number as one the relay
    // already holds, with different content.
    net.track(2, plan);
    net.disconnect(1);
    net.edit(1, plan, |doc| {
        doc.put(ROOT, "status", "red").unwrap();
    });
    let chunks = net.stores[2].get(&plan).cloned().unwrap_or_default();
    let mut clash = AutoCommit::new();
    for chunk in &chunks {
        clash.load_incremental(chunk).unwrap();
    }
    clash.set_actor(automerge::ActorId::from("actor-1".as_bytes()));
    let before = clash.get_heads();
    clash.put(ROOT, "status", "amber").unwrap();
    let chunk = clash.save_after(&before);
    net.stores[2].get_mut(&plan).unwrap().push(chunk.clone());
    net.queue.push_back((
        2,
        Event::LocalChanges {
            document_id: plan,
            chunk,
        },
    ));
    net.run();
    net.connect(1);
    assert!(net.linked[1], "the school keeps its connection");
    // Whichever side meets the clash first says so, and keeps the link.
    let mut told = net.sent_errors(0);
    told.extend(net.sent_errors(1));
    assert!(
        told.iter()
            .any(|m| m.contains("stops syncing on this connection")),
        "{told:?}"
    );
    // Its other documents still sync.
    net.edit(1, other, |doc| {
        doc.put(ROOT, "note", "still syncing").unwrap();
    });
    assert_eq!(
        net.stored(0, other)
            .get(ROOT, "note")
            .unwrap()
            .unwrap()
            .0
            .as_str(),
        Some("still syncing")
    );
}

#[test]
fn a_forbidden_document_answers_exactly_like_a_missing_one() {
    let partnerships = SharedPartnerships::default();
    partnerships.member(1, "north", true);
    partnerships.member(2, "south", true);
    partnerships.member(3, "south", false);
    let mut net = Net::with_relay_policy(3, Box::new(partnerships.clone()));
    net.connect(1);
    net.connect(2);
    net.connect(3);
    let north = new_doc_with_title(&mut net, 1, "North plan");
    // What a peer with nothing sends, and what one that holds a version
    // of the document sends first.
    let nothing = automerge::Automerge::new()
        .generate_sync_message(&mut automerge::sync::State::new())
        .unwrap()
        .encode();
    let mut held = AutoCommit::new();
    held.put(ROOT, "title", "mine").unwrap();
    let something = held
        .document()
        .generate_sync_message(&mut automerge::sync::State::new())
        .unwrap()
        .encode();
    // And its changes, which only a school that may create documents
    // gets to create one with: a viewer's are answered alike.
    let changes = automerge::sync::Message {
        changes: vec![held.save()].into(),
        ..automerge::sync::Message::decode(&something).unwrap()
    }
    .encode();
    // Everything the relay sends on school 2's connection, ids left out.
    let answers = |net: &mut Net, school: usize, id: DocumentId| -> Vec<(String, Vec<u8>)> {
        let before = net.log.len();
        let mut sent = vec![
            (true, &nothing),
            (true, &nothing),
            (false, &something),
            (false, &something),
            (true, &something),
        ];
        if school == 3 {
            sent.push((false, &changes));
        }
        for (request, data) in sent {
            let frame = SyncFrame {
                sender_id: format!("school-{school}"),
                target_id: "relay".into(),
                document_id: id,
                data: data.clone(),
            };
            let message = if request {
                Message::Request(frame)
            } else {
                Message::Sync(frame)
            };
            net.send_raw(school, message.encode());
        }
        net.log[before..]
            .iter()
            .filter_map(|(n, e)| match e {
                Effect::Send { bytes, conn } if *n == 0 && *conn == school as ConnId => {
                    let message = Message::decode(bytes, usize::MAX).unwrap();
                    let data = match &message {
                        Message::Sync(f) | Message::Request(f) => f.data.clone(),
                        Message::Compact(f) => f.data.clone(),
                        _ => Vec::new(),
                    };
                    Some((message.kind().to_string(), data))
                }
                _ => None,
            })
            .collect()
    };
    let forbidden = answers(&mut net, 2, north);
    let missing = answers(&mut net, 2, DocumentId::random());
    assert_eq!(forbidden, missing);
    let forbidden = answers(&mut net, 3, north);
    let missing = answers(&mut net, 3, DocumentId::random());
    assert_eq!(forbidden, missing, "a viewer offering changes");
    assert_eq!(
        forbidden.last().map(|(k, _)| k.as_str()),
        Some("doc-unavailable"),
        "changes that are not taken are answered as unavailable"
    );
    let kinds: Vec<&str> = missing.iter().map(|(k, _)| k.as_str()).collect();
    // School 2's core agreed on the compact form with the relay.
    assert!(
        kinds.starts_with(&["pp-sync", "doc-unavailable"]),
        "{kinds:?}"
    );
    assert_eq!(
        net.nodes[0].loaded_documents(),
        1,
        "only the real document is held; the made-up one left nothing"
    );
}

#[test]
fn requests_for_made_up_ids_leave_nothing_behind() {
    let mut net = Net::new(1);
    net.connect(1);
    for _ in 0..200 {
        net.track(1, DocumentId::random());
    }
    assert_eq!(
        net.nodes[0].loaded_documents(),
        0,
        "a document nobody has is answered and forgotten at once"
    );
    let unavailable = net
        .log
        .iter()
        .filter(|(n, e)| *n == 1 && matches!(e, Effect::Unavailable { .. }))
        .count();
    assert!(unavailable >= 200, "each request was answered");
}

// The relay's real policy, `access::PartnershipPolicy`, in the same network:
// a register of schools, grants handed over with each connection, owners
// as effects, time from ticks.

mod relay_policy {
    use std::sync::Arc;

    use super::*;
    use crate::access::{Credential, PartnershipPolicy, Register, Role, School};

    /// School i's token hashes to [i; 32].
    fn credential(school: usize) -> Credential {
        [school as u8; 32]
    }

    /// A register where school i is in the partnerships listed for it.
    fn register(version: i64, schools: &[(usize, &[(&str, Role)])]) -> Register {
        let mut register = Register {
            version,
            ..Register::default()
        };
        for (school, memberships) in schools {
            for (partnership, _) in memberships.iter() {
                register
                    .partnerships
                    .insert(partnership.to_string(), format!("Cluster {partnership}"));
            }
            register.schools.insert(
                format!("school-id-{school}"),
                School {
                    name: format!("School {school}"),
                    credential: credential(*school),
                    memberships: memberships
                        .iter()
                        .map(|(p, role)| (p.to_string(), *role))
                        .collect(),
                },
            );
        }
        register
    }

    /// A network whose relay runs the real policy, each client authenticated
    /// as the school of the same number.
    fn net_with(register: Register, clients: usize) -> Net {
        let register = Arc::new(register);
        let policy = PartnershipPolicy::new(register.clone(), HashMap::new(), 2);
        let mut net = Net::with_relay_policy(clients, Box::new(policy));
        for client in 1..=clients {
            if let Ok(grant) = register.authenticate(&credential(client), None) {
                net.grants.insert(client, grant);
            }
        }
        net
    }

    fn change_register(net: &mut Net, register: Register) {
        net.queue.push_back((
            0,
            Event::RegisterChanged {
                register: Arc::new(register),
            },
        ));
        net.run();
    }

    #[test]
    fn members_write_viewers_read_and_outsiders_are_told_it_does_not_exist() {
        let mut net = net_with(
            register(
                1,
                &[
                    (1, &[("north", Role::Member)]),
                    (2, &[("north", Role::Viewer)]),
                    (3, &[("south", Role::Member)]),
                    (4, &[("north", Role::Member)]),
                ],
            ),
            4,
        );
        for c in 1..=4 {
            net.connect(c);
        }
        let id = new_doc_with_title(&mut net, 1, "North plan");
        net.track(2, id);
        net.track(3, id);
        net.track(4, id);
        assert_eq!(text_of(&net.stored(4, id), "title"), "North plan");
        assert_eq!(text_of(&net.stored(2, id), "title"), "North plan");
        assert_eq!(net.nodes[3].progress(&id, 0), SyncProgress::Unavailable);
        assert!(net.stored(3, id).get_heads().is_empty());

        // A member's change reaches everyone in the partnership.
        net.edit(4, id, |doc| {
            doc.put(ROOT, "status", "green").unwrap();
        });
        assert!(net.stored(1, id).get(ROOT, "status").unwrap().is_some());
        // A viewer's is neither kept nor passed on, and it is told.
        let relay_before = net.stores[0].clone();
        net.edit(2, id, |doc| {
            doc.put(ROOT, "status", "red").unwrap();
        });
        assert_eq!(net.stores[0], relay_before);
        assert!(
            net.sent_errors(0)
                .iter()
                .any(|m| m.contains("may read document"))
        );
        // The outsider cannot take the document over by writing to it.
        net.edit(3, id, |doc| {
            doc.put(ROOT, "title", "stolen").unwrap();
        });
        assert_eq!(text_of(&net.stored(0, id), "title"), "North plan");
        assert_eq!(net.owners[&id].partnership, "north");
    }

    #[test]
    fn a_new_documents_owner_is_kept_with_and_before_its_first_chunk() {
        let mut net = net_with(register(1, &[(1, &[("north", Role::Member)])]), 1);
        net.connect(1);
        let id = new_doc_with_title(&mut net, 1, "Plan");
        let relay_writes: Vec<&Effect> = net
            .log
            .iter()
            .filter(|(node, e)| {
                *node == 0
                    && matches!(e, Effect::PersistOwner { document_id, .. } | Effect::Persist { document_id, .. } if *document_id == id)
            })
            .map(|(_, e)| e)
            .collect();
        assert!(
            matches!(relay_writes.as_slice(), [Effect::PersistOwner { owner, .. }, Effect::Persist { .. }, ..] if owner.partnership == "north" && owner.claimed_by == "school-id-1"),
            "{relay_writes:?}"
        );
        // Later changes claim nothing more.
        net.edit(1, id, |doc| {
            doc.put(ROOT, "status", "green").unwrap();
        });
        let owners = net
            .log
            .iter()
            .filter(|(_, e)| matches!(e, Effect::PersistOwner { .. }))
            .count();
        assert_eq!(owners, 1);
    }

    #[test]
    fn a_claim_whose_write_failed_is_claimed_again() {
        let mut net = net_with(register(1, &[(1, &[("north", Role::Member)])]), 1);
        net.connect(1);
        let id = new_doc_with_title(&mut net, 1, "Plan");
        // The engine's transaction failed: neither the chunk nor the owner
        // was kept.
        net.stores[0].clear();
        net.owners.clear();
        net.queue.push_back((
            0,
            Event::WriteFailed {
                document_ids: vec![id],
                unowned: vec![id],
                forgotten: Vec::new(),
            },
        ));
        net.run();
        net.disconnect(1);
        net.connect(1);
        net.track(1, id);
        assert_eq!(text_of(&net.stored(0, id), "title"), "Plan");
        assert_eq!(net.owners[&id].partnership, "north", "claimed again");
    }

    #[test]
    fn a_register_change_cuts_the_connections_that_lost_rights_saying_why() {
        let mut net = net_with(
            register(
                1,
                &[
                    (1, &[("north", Role::Member)]),
                    (2, &[("north", Role::Member)]),
                    (3, &[("north", Role::Member)]),
                    (4, &[("north", Role::Member)]),
                ],
            ),
            4,
        );
        for c in 1..=4 {
            net.connect(c);
        }
        let id = new_doc_with_title(&mut net, 1, "Plan");
        for c in 2..=4 {
            net.track(c, id);
        }
        let mut changed = register(
            2,
            &[
                (1, &[("north", Role::Member)]),
                (3, &[("north", Role::Viewer)]),
                (4, &[("north", Role::Member)]),
            ],
        );
        changed.schools.get_mut("school-id-4").unwrap().credential = [99; 32];
        change_register(&mut net, changed);
        let said = net.sent_errors(0);
        for expected in [
            "School 2 was removed from this relay by the lead school",
            "School 3's place in Cluster north was changed by the lead school; it reconnects with its current rights",
            "your school's access token was replaced; ask your lead school for the new invite",
        ] {
            assert!(said.iter().any(|m| m == expected), "{expected} in {said:?}");
        }
        assert!(
            net.linked[1],
            "a school whose rights stand keeps its connection"
        );
        assert!(!net.linked[2] && !net.linked[3] && !net.linked[4]);
        // And the removed school receives nothing more.
        net.edit(1, id, |doc| {
            doc.put(ROOT, "secret", "after removal").unwrap();
        });
        assert!(net.stored(2, id).get(ROOT, "secret").unwrap().is_none());
    }

    #[test]
    fn a_grant_is_checked_again_as_the_connection_opens() {
        let first = register(1, &[(1, &[("north", Role::Member)])]);
        let mut net = net_with(first.clone(), 3);
        // Clients 2 and 3 present school 1's token too: its allowance is 2.
        let grant = net.grants[&1].clone();
        net.grants.insert(2, grant.clone());
        net.grants.insert(3, grant);
        net.connect(1);
        net.connect(2);
        net.connect(3);
        assert!(net.linked[1] && net.linked[2] && !net.linked[3]);
        assert!(
            net.sent_errors(0).iter().any(|m| m.contains(
                "School 1 already has 2 connections open to this relay, the most allowed"
            )),
            "{:?}",
            net.sent_errors(0)
        );
        // The token is replaced between authenticating and opening.
        let mut rotated = first;
        rotated.version = 2;
        rotated.schools.get_mut("school-id-1").unwrap().credential = [42; 32];
        net.disconnect(2);
        change_register(&mut net, rotated);
        net.log.clear();
        net.connect(3);
        assert!(!net.linked[3]);
        assert!(
            net.sent_errors(0)
                .iter()
                .any(|m| m.starts_with("the access token is not valid")),
            "{:?}",
            net.sent_errors(0)
        );
    }

    #[test]
    fn a_peer_id_stays_its_schools_for_a_day_by_the_events_clock() {
        let mut net = net_with(
            register(
                1,
                &[
                    (1, &[("north", Role::Member)]),
                    (2, &[("south", Role::Member)]),
                ],
            ),
            2,
        );
        // School 2's client introduces itself with school 1's peer id.
        net.nodes[2] = Repo::new(
            RepoConfig::new("school-1", Some("school-2-storage".into())),
            Box::new(AllowAll),
        );
        net.connect(1);
        net.disconnect(1);
        net.tick(60_000);
        net.connect(2);
        assert!(!net.linked[2], "squatting refused");
        assert!(
            net.sent_errors(0)
                .iter()
                .any(|m| m.contains("the peer id “school-1” belongs to another school")),
            "{:?}",
            net.sent_errors(0)
        );
        // A day after school 1 last used it, it is free.
        net.tick(crate::access::PEER_ID_KEPT_MS);
        net.connect(2);
        assert!(net.linked[2]);
    }

    // Actors: a school sends only changes made under its own.

    fn status_at(net: &Net, node: usize, id: DocumentId) -> Option<String> {
        net.stored(node, id)
            .get(ROOT, "status")
            .unwrap()
            .and_then(|(v, _)| v.as_str().map(str::to_string))
    }

    fn actor(name: &str) -> Vec<u8> {
        name.as_bytes().to_vec()
    }

    /// The errors the relay sent that stopped a document, with the id.
    fn stopped_documents(net: &Net) -> Vec<(DocumentId, String)> {
        net.log
            .iter()
            .filter(|(n, _)| *n == 0)
            .filter_map(|(_, e)| match e {
                Effect::Send { bytes, .. } => match Message::decode(bytes, usize::MAX) {
                    Ok(Message::Error {
                        message,
                        document_id: Some(id),
                        ..
                    }) => Some((id, message)),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_school_writing_under_a_partners_actor_is_refused_and_the_partner_keeps_syncing() {
        let mut net = net_with(
            register(
                1,
                &[
                    (1, &[("north", Role::Member)]),
                    (2, &[("north", Role::Member)]),
                ],
            ),
            2,
        );
        net.connect(1);
        net.connect(2);
        let plan = new_doc_with_title(&mut net, 1, "Plan");
        let other = new_doc_with_title(&mut net, 2, "Other");
        net.track(2, plan);
        net.edit(1, plan, |doc| doc.put(ROOT, "status", "green").unwrap());
        assert_eq!(status_at(&net, 2, plan).as_deref(), Some("green"));

        // School 2 copies school 1's actor from the document and writes
        // with the next sequence number school 1 will use.
        net.log.clear();
        net.edit_as(2, "actor-1", plan, |doc| {
            doc.put(ROOT, "status", "red").unwrap()
        });
        assert_eq!(status_at(&net, 0, plan).as_deref(), Some("green"));
        let stopped = stopped_documents(&net);
        assert!(
            matches!(stopped.as_slice(), [(id, m)] if *id == plan
                && m.contains("belongs to another school")
                && m.contains("stops syncing on this connection")),
            "{stopped:?}"
        );
        assert!(net.linked[2], "the connection stays open");
        assert_eq!(net.nodes[2].progress(&plan, 0), SyncProgress::Refused);
        assert!(
            net.nodes[2]
                .refusal(&plan, 0)
                .is_some_and(|m| m.contains("belongs to another school"))
        );
        // School 2's other documents still sync.
        net.edit(2, other, |doc| doc.put(ROOT, "status", "amber").unwrap());
        assert_eq!(status_at(&net, 0, other).as_deref(), Some("amber"));

        // School 1's own next change (the same actor and sequence number
        // as the refused one) is taken and reaches its partners.
        net.edit(1, plan, |doc| doc.put(ROOT, "status", "done").unwrap());
        assert_eq!(status_at(&net, 0, plan).as_deref(), Some("done"));
        assert_eq!(net.nodes[1].progress(&plan, 0), SyncProgress::InSync);
        assert!(net.linked[1]);
    }

    /// The kinds of work the relay handed out for `id`, in order.
    fn work_on(net: &Net, id: DocumentId) -> Vec<String> {
        net.log
            .iter()
            .filter_map(|(n, e)| match e {
                Effect::Work(work) if *n == 0 && work.document_id() == id => {
                    let text = format!("{work:?}");
                    Some(text.split_whitespace().next().unwrap_or("").to_string())
                }
                _ => None,
            })
            .collect()
    }

    /// Reading who made a heavy message's changes parses them all (a
    /// whole document's, loading it), so it runs as work too, before the
    /// policy decides and the message is applied: the engine never does
    /// automerge's heavy reading itself. A spoofed heavy change is read
    /// there, refused, and never applied.
    #[test]
    fn a_heavy_messages_authors_are_read_as_work_before_it_is_applied() {
        let register = Arc::new(register(
            1,
            &[
                (1, &[("north", Role::Member)]),
                (2, &[("north", Role::Member)]),
            ],
        ));
        let policy = PartnershipPolicy::new(register.clone(), HashMap::new(), 2);
        let mut net = Net::with_relay_policy(2, Box::new(policy));
        let mut config = RepoConfig::new("relay", Some("relay-storage".into()));
        config.heavy_ops = Some(100);
        let policy = PartnershipPolicy::new(register.clone(), HashMap::new(), 2);
        net.nodes[0] = Repo::new(config, Box::new(policy));
        for client in 1..=2 {
            let grant = register.authenticate(&credential(client), None).unwrap();
            net.grants.insert(client, grant);
        }
        net.connect(1);
        net.connect(2);
        let long = "typed ".repeat(200);
        let plan = new_doc_with_title(&mut net, 1, &long);
        assert_eq!(
            work_on(&net, plan),
            vec!["Work(authors", "Work(apply"],
            "its authors were read as work, then it was applied as work"
        );
        assert_eq!(text_of(&net.stored(0, plan), "title"), long);
        assert!(
            net.records.iter().any(|r| matches!(r,
                AccessRecord::ActorBound { actor, school } if *actor == self::actor("actor-1") && school == "school-id-1")),
            "the actor was bound to its school: {:?}",
            net.records
        );

        // School 2 writes a heavy change under school 1's actor.
        net.track(2, plan);
        net.log.clear();
        net.edit_as(2, "actor-1", plan, |doc| {
            let notes = doc.put_object(ROOT, "notes", ObjType::Text).unwrap();
            doc.splice_text(&notes, 0, 0, &"spoofed ".repeat(50))
                .unwrap();
        });
        assert_eq!(
            work_on(&net, plan),
            vec!["Work(authors"],
            "read as work, refused, never applied"
        );
        let stopped = stopped_documents(&net);
        assert!(
            matches!(stopped.as_slice(), [(id, m)] if *id == plan && m.contains("belongs to another school")),
            "{stopped:?}"
        );
        assert!(net.stored(0, plan).get(ROOT, "notes").unwrap().is_none());
        // The document is back in the core: school 1 carries on.
        net.edit(1, plan, |doc| doc.put(ROOT, "status", "green").unwrap());
        assert_eq!(status_at(&net, 0, plan).as_deref(), Some("green"));
    }

    /// A new document is claimed for its partnership with the grant of
    /// the connection that sent it. When that connection closes while
    /// the document's first (heavy) changes are applied on the worker,
    /// nothing of it is kept (a stored document no one owns could never
    /// be claimed again); the school sends it again when it reconnects,
    /// and then it is claimed and kept. Found by the `relay_core` fuzz
    /// target.
    #[test]
    fn a_new_document_whose_sender_leaves_while_it_is_applied_is_kept_only_when_sent_again() {
        let register = Arc::new(register(1, &[(1, &[("north", Role::Member)])]));
        let mut net = Net::with_relay_policy(1, Box::new(AllowAll));
        let mut config = RepoConfig::new("relay", Some("relay-storage".into()));
        config.heavy_ops = Some(100);
        let policy = PartnershipPolicy::new(register.clone(), HashMap::new(), 2);
        net.nodes[0] = Repo::new(config, Box::new(policy));
        let grant = register.authenticate(&credential(1), None).unwrap();
        net.grants.insert(1, grant);
        net.connect(1);
        net.held_work = Some(Vec::new());
        let long = "typed ".repeat(200);
        let plan = new_doc_with_title(&mut net, 1, &long);
        net.finish_work();
        assert_eq!(
            work_on(&net, plan),
            vec!["Work(authors", "Work(apply"],
            "its authors were read, and it is being applied"
        );
        net.disconnect(1);
        net.finish_work();
        let kept: Vec<&Effect> = net
            .log
            .iter()
            .filter(|(node, e)| {
                *node == 0
                    && matches!(e, Effect::Persist { document_id, .. } if *document_id == plan)
            })
            .map(|(_, e)| e)
            .collect();
        assert!(kept.is_empty(), "kept with no owner: {kept:?}");
        assert!(!net.owners.contains_key(&plan));
        assert!(
            net.records
                .iter()
                .all(|r| !matches!(r, AccessRecord::ActorBound { .. })),
            "nothing was bound for changes not kept: {:?}",
            net.records
        );

        net.held_work = None;
        net.connect(1);
        assert_eq!(
            net.owners.get(&plan).map(|o| o.partnership.as_str()),
            Some("north")
        );
        assert_eq!(text_of(&net.stored(0, plan), "title"), long);
    }

    #[test]
    fn an_actor_is_bound_to_the_first_school_that_uses_it_in_the_write_of_its_changes() {
        let mut net = net_with(register(1, &[(1, &[("north", Role::Member)])]), 1);
        net.connect(1);
        let id = new_doc_with_title(&mut net, 1, "Plan");
        let writes: Vec<&Effect> = net
            .log
            .iter()
            .filter(|(node, e)| {
                *node == 0
                    && matches!(
                        e,
                        Effect::PersistAccess {
                            record: AccessRecord::ActorBound { .. }
                        } | Effect::Persist { .. }
                    )
            })
            .map(|(_, e)| e)
            .collect();
        assert!(
            matches!(writes.as_slice(), [Effect::PersistAccess { record: AccessRecord::ActorBound { actor, school } }, Effect::Persist { document_id, .. }]
                if *actor == self::actor("actor-1") && school == "school-id-1" && *document_id == id),
            "{writes:?}"
        );
        // Later changes bind nothing more.
        net.edit(1, id, |doc| doc.put(ROOT, "status", "green").unwrap());
        let bound = net
            .records
            .iter()
            .filter(|r| matches!(r, AccessRecord::ActorBound { .. }))
            .count();
        assert_eq!(bound, 1);
    }

    #[test]
    fn a_binding_whose_write_failed_is_made_again() {
        let mut net = net_with(register(1, &[(1, &[("north", Role::Member)])]), 1);
        net.connect(1);
        let id = new_doc_with_title(&mut net, 1, "Plan");
        let forgotten: Vec<AccessRecord> = std::mem::take(&mut net.records);
        net.stores[0].clear();
        net.owners.clear();
        net.queue.push_back((
            0,
            Event::WriteFailed {
                document_ids: vec![id],
                unowned: vec![id],
                forgotten,
            },
        ));
        net.run();
        net.disconnect(1);
        net.connect(1);
        net.track(1, id);
        assert!(
            net.records.iter().any(
                |r| matches!(r, AccessRecord::ActorBound { school, .. } if school == "school-id-1")
            ),
            "bound again: {:?}",
            net.records
        );
    }

    /// A relay restarted (or restored) from what it kept: the stored
    /// chunks given, the policy's records replayed as its database would
    /// hold them, `restored` the schools whose changes a restore lost.
    fn restart_relay(
        net: &mut Net,
        register: Register,
        restored: &[&str],
        bindings_incomplete: bool,
    ) {
        let mut kept = crate::access::Kept::default();
        for record in &net.records {
            match record {
                AccessRecord::ActorBound { actor, school } => {
                    kept.actors.push((actor.clone(), school.clone()))
                }
                AccessRecord::PeerSeen {
                    peer_id,
                    school,
                    at_ms,
                } => kept.peers.push((peer_id.clone(), school.clone(), *at_ms)),
            }
        }
        let until = net.now_ms + crate::access::RESTORE_WAITS_MS;
        kept.restored = restored.iter().map(|s| (s.to_string(), until)).collect();
        kept.bindings_incomplete = bindings_incomplete;
        let register = Arc::new(register);
        let policy =
            PartnershipPolicy::new(register, net.owners_by_partnership(), 2).with_kept(kept);
        for client in 1..net.nodes.len() {
            if net.linked[client] {
                net.disconnect(client);
            }
        }
        net.nodes[0] = Repo::new(
            RepoConfig::new("relay", Some("relay-storage-2".into())),
            Box::new(policy),
        );
        net.queue.push_back((0, Event::Tick { now_ms: net.now_ms }));
        net.run();
    }

    #[test]
    fn bindings_and_peer_id_claims_are_kept_across_a_restart() {
        let register = register(
            1,
            &[
                (1, &[("north", Role::Member)]),
                (2, &[("north", Role::Member)]),
            ],
        );
        let mut net = net_with(register.clone(), 2);
        net.connect(1);
        let plan = new_doc_with_title(&mut net, 1, "Plan");
        net.disconnect(1);
        net.tick(60_000);
        restart_relay(&mut net, register, &[], false);

        // School 2 introduces itself with school 1's peer id: refused,
        // though the relay restarted since school 1 used it.
        let school_2 = std::mem::replace(
            &mut net.nodes[2],
            Repo::new(
                RepoConfig::new("school-1", Some("school-2-storage".into())),
                Box::new(AllowAll),
            ),
        );
        net.log.clear();
        net.connect(2);
        assert!(!net.linked[2], "squatting refused");
        assert!(
            net.sent_errors(0)
                .iter()
                .any(|m| m.contains("the peer id “school-1” belongs to another school")),
            "{:?}",
            net.sent_errors(0)
        );
        // And school 1's actor is still school 1's.
        net.nodes[2] = school_2;
        net.connect(2);
        net.track(2, plan);
        net.log.clear();
        net.edit_as(2, "actor-1", plan, |doc| {
            doc.put(ROOT, "status", "red").unwrap()
        });
        assert_eq!(status_at(&net, 0, plan), None);
        assert!(
            stopped_documents(&net)
                .iter()
                .any(|(id, m)| *id == plan && m.contains("belongs to another school"))
        );
    }

    #[test]
    fn after_a_restore_partners_send_back_what_the_relay_lost_until_its_school_returns() {
        let register = register(
            1,
            &[
                (1, &[("north", Role::Member)]),
                (2, &[("north", Role::Member)]),
            ],
        );
        let mut net = net_with(register.clone(), 2);
        net.connect(1);
        net.connect(2);
        let plan = new_doc_with_title(&mut net, 1, "Plan");
        net.track(2, plan);
        // The backup is taken here.
        let backup = net.stores[0].clone();
        let kept_records = net.records.clone();
        // After it: school 1 edits under its bound actor, and school 2
        // under a new one.
        net.edit(1, plan, |doc| doc.put(ROOT, "status", "green").unwrap());
        net.edit_as(2, "actor-2-new", plan, |doc| {
            doc.put(ROOT, "lead", "Mrs Okafor").unwrap()
        });
        assert_eq!(status_at(&net, 2, plan).as_deref(), Some("green"));

        // The relay is restored from the backup: it lost both changes
        // (and, its replaced database lost, the binding of the new actor).
        net.stores[0] = backup;
        net.records = kept_records;
        restart_relay(&mut net, register, &["school-id-1", "school-id-2"], true);

        // School 2 comes back first and sends what it holds, school 1's
        // change too: taken, since school 1 has not sent it back itself.
        net.log.clear();
        net.connect(2);
        assert_eq!(status_at(&net, 0, plan).as_deref(), Some("green"));
        let lead = net
            .stored(0, plan)
            .get(ROOT, "lead")
            .unwrap()
            .map(|(v, _)| v.to_string());
        assert!(lead.is_some_and(|l| l.contains("Okafor")));
        assert!(
            stopped_documents(&net).is_empty(),
            "{:?}",
            stopped_documents(&net)
        );
        assert_eq!(net.nodes[2].progress(&plan, 0), SyncProgress::InSync);
        // The new actor is not bound meanwhile: it may be a partner's
        // from after the backup.
        assert!(
            !net.records.iter().any(|r| matches!(r, AccessRecord::ActorBound { actor, .. } if *actor == self::actor("actor-2-new")))
        );

        // School 1 comes back and syncs the plan: from now on only it
        // sends its changes to it.
        net.connect(1);
        assert_eq!(net.nodes[1].progress(&plan, 0), SyncProgress::InSync);
        net.log.clear();
        net.edit_as(2, "actor-1", plan, |doc| {
            doc.put(ROOT, "status", "red").unwrap()
        });
        assert_eq!(status_at(&net, 0, plan).as_deref(), Some("green"));
        assert!(!stopped_documents(&net).is_empty());
        // Once the relay has stopped waiting, a new actor is bound on
        // first use again.
        net.tick(crate::access::RESTORE_WAITS_MS);
        net.edit_as(1, "actor-1-person", plan, |doc| {
            doc.put(ROOT, "note", "bound").unwrap()
        });
        assert!(net.records.iter().any(|r| matches!(r, AccessRecord::ActorBound { actor, school } if *actor == self::actor("actor-1-person") && school == "school-id-1")));
    }

    #[test]
    fn after_a_restore_schools_that_all_return_at_once_each_send_back_the_others_changes() {
        let register = register(
            1,
            &[
                (1, &[("north", Role::Member)]),
                (2, &[("north", Role::Member)]),
                (3, &[("north", Role::Member)]),
            ],
        );
        let mut net = net_with(register.clone(), 3);
        for c in 1..=3 {
            net.connect(c);
        }
        let plan = new_doc_with_title(&mut net, 1, "Plan");
        net.track(2, plan);
        net.track(3, plan);
        let backup = net.stores[0].clone();
        let kept_records = net.records.clone();
        // After the backup each school edits, and each holds them all.
        for (c, key) in [(1, "status"), (2, "lead"), (3, "note")] {
            net.edit(c, plan, |doc| {
                doc.put(ROOT, key, format!("by {c}")).unwrap()
            });
        }
        net.stores[0] = backup;
        net.records = kept_records;
        restart_relay(
            &mut net,
            register,
            &["school-id-1", "school-id-2", "school-id-3"],
            false,
        );

        // All three connect before any of them sends: each one's message
        // holds the others' changes the relay lost.
        net.log.clear();
        for c in 1..=3 {
            net.linked[c] = true;
            net.queue.push_back((
                0,
                Event::Connected {
                    conn: c as ConnId,
                    initiate: false,
                    grant: net.grants.get(&c).cloned(),
                },
            ));
        }
        for c in 1..=3 {
            net.queue.push_back((
                c,
                Event::Connected {
                    conn: 0,
                    initiate: true,
                    grant: None,
                },
            ));
        }
        net.run();
        assert!(
            stopped_documents(&net).is_empty(),
            "{:?}",
            stopped_documents(&net)
        );
        let relay = net.stored(0, plan);
        for key in ["status", "lead", "note"] {
            assert!(relay.get(ROOT, key).unwrap().is_some(), "{key}");
        }
        for c in 1..=3 {
            assert_eq!(net.nodes[c].progress(&plan, 0), SyncProgress::InSync);
        }
    }

    #[test]
    fn schools_that_ask_are_told_whose_each_actor_is_before_its_changes_arrive() {
        let mut net = net_with(
            register(
                1,
                &[
                    (1, &[("north", Role::Member)]),
                    (2, &[("north", Role::Viewer)]),
                    (3, &[("south", Role::Member)]),
                    (4, &[("north", Role::Member)]),
                ],
            ),
            4,
        );
        for client in 1..=3 {
            asks_for_listing(&mut net, client);
            net.connect(client);
        }
        let plan = new_doc_with_title(&mut net, 1, "Plan");
        net.track(2, plan);
        let hilltop = actor("actor-1");
        assert_eq!(
            net.named[2].get(&hilltop).map(String::as_str),
            Some("School 1")
        );
        assert_eq!(
            net.named[1].get(&hilltop).map(String::as_str),
            Some("School 1")
        );
        assert!(
            net.named[3].is_empty(),
            "another partnership's actors stay unnamed"
        );
        // The name went out before the changes made under it.
        let to_2: Vec<&str> = net
            .log
            .iter()
            .filter_map(|(node, e)| match e {
                Effect::Send { conn: 2, bytes } if *node == 0 => {
                    Message::decode(bytes, usize::MAX).ok()
                }
                _ => None,
            })
            .filter_map(|m| match m {
                Message::Actors { .. } => Some("actors"),
                Message::Sync(_) => Some("sync"),
                _ => None,
            })
            .collect();
        assert_eq!(to_2.first(), Some(&"actors"), "{to_2:?}");

        // A school that connects later is told every actor of its
        // partnerships as it joins; a client that did not ask, nothing.
        net.connect(4);
        assert!(net.named[4].is_empty());
        net.disconnect(2);
        net.named[2].clear();
        net.connect(2);
        assert_eq!(
            net.named[2].get(&hilltop).map(String::as_str),
            Some("School 1")
        );
    }

    /// Schools 1 and 2 of North, both asking for listings; school 1,
    /// alone connected, makes a plan whose first changes are heavy: their
    /// authors have been read on the worker, and applying them is held
    /// there (`Net::held_work`).
    fn heavy_first_changes_being_applied() -> (Net, DocumentId) {
        let register = Arc::new(register(
            1,
            &[
                (1, &[("north", Role::Member)]),
                (2, &[("north", Role::Member)]),
            ],
        ));
        let mut net = Net::with_relay_policy(2, Box::new(AllowAll));
        let mut config = RepoConfig::new("relay", Some("relay-storage".into()));
        config.heavy_ops = Some(100);
        let policy = PartnershipPolicy::new(register.clone(), HashMap::new(), 2);
        net.nodes[0] = Repo::new(config, Box::new(policy));
        for client in [1, 2] {
            let grant = register.authenticate(&credential(client), None).unwrap();
            net.grants.insert(client, grant);
            asks_for_listing(&mut net, client);
        }
        net.connect(1);
        net.held_work = Some(Vec::new());
        let plan = new_doc_with_title(&mut net, 1, &"typed ".repeat(200));
        net.finish_work();
        (net, plan)
    }

    /// An actor bound by heavy changes still being applied on the worker
    /// is not named to a school that joins meanwhile: the binding is kept
    /// only with the changes, and is forgotten if they fail. Found by the
    /// `relay_core` fuzz target.
    #[test]
    fn an_actor_is_named_only_once_the_changes_that_bound_it_are_kept() {
        let (mut net, plan) = heavy_first_changes_being_applied();
        assert_eq!(
            work_on(&net, plan),
            vec!["Work(authors", "Work(apply"],
            "its authors were read, and it is being applied"
        );
        let hilltop = actor("actor-1");
        net.connect(2);
        assert_eq!(
            net.named[2].get(&hilltop),
            None,
            "named before its changes were kept"
        );
        net.finish_work();
        net.held_work = None;
        assert_eq!(
            net.named[2].get(&hilltop).map(String::as_str),
            Some("School 1"),
            "named once they were"
        );
    }

    /// Heavy changes away on the worker when the turn's writes fail: the
    /// document leaves memory, and what the policy bound for the changes
    /// goes with it, so the school's resent changes bind it again, kept
    /// and named. (Found in review.)
    #[test]
    fn a_binding_for_changes_whose_document_was_dropped_meanwhile_is_made_again() {
        let (mut net, plan) = heavy_first_changes_being_applied();
        assert_eq!(work_on(&net, plan), vec!["Work(authors", "Work(apply"]);
        // A write of that turn failed: the document is dropped from memory
        // while its changes are still being applied.
        net.queue.push_back((
            0,
            Event::WriteFailed {
                document_ids: vec![plan],
                unowned: Vec::new(),
                forgotten: Vec::new(),
            },
        ));
        net.run();
        net.finish_work();
        net.held_work = None;
        net.disconnect(1);
        net.connect(1);
        net.track(1, plan);
        assert!(
            net.records.iter().any(
                |r| matches!(r, AccessRecord::ActorBound { school, .. } if school == "school-id-1")
            ),
            "bound again and kept: {:?}",
            net.records
        );
        net.connect(2);
        assert_eq!(
            net.named[2].get(&actor("actor-1")).map(String::as_str),
            Some("School 1")
        );
    }

    #[test]
    fn a_school_may_bind_only_so_many_bytes_of_actors() {
        use crate::access::ACTOR_BYTES_PER_SCHOOL;
        let register = Arc::new(register(1, &[(1, &[("north", Role::Member)])]));
        let mut policy = PartnershipPolicy::new(register.clone(), HashMap::new(), 2);
        let grant = register.authenticate(&credential(1), None).unwrap();
        policy.connected(7, Some(grant)).unwrap();
        let id = DocumentId::random();
        let actors: Vec<automerge::ActorId> = (0..ACTOR_BYTES_PER_SCHOOL / 16)
            .map(|i| automerge::ActorId::from((i as u128).to_be_bytes().as_slice()))
            .collect();
        policy.authors(7, &id, &actors, 0).unwrap();
        assert_eq!(policy.take_records().len(), actors.len());
        let one_more = automerge::ActorId::from(u128::MAX.to_be_bytes().as_slice());
        let refused = policy.authors(7, &id, &[one_more], 0).unwrap_err();
        assert!(
            refused.contains(
                "School 1 has already sent changes under 16384 different Automerge actor ids"
            ),
            "{refused}"
        );
        let long = automerge::ActorId::from([7u8; 65].as_slice());
        let refused = policy.authors(7, &id, &[long], 0).unwrap_err();
        assert!(refused.contains("65 bytes long"), "{refused}");
        // Actors already its own still pass.
        policy.authors(7, &id, &actors[..3], 0).unwrap();
    }

    // Listings: the relay tells a client that asks which documents its
    // school may see, from the owners it recorded.

    /// Client `client` asks for the listing, as our client does.
    fn asks_for_listing(net: &mut Net, client: usize) {
        net.nodes[client].config.ask_for_listing = true;
    }

    /// The listings the relay sent to `client`, in order.
    fn listings_to(net: &Net, client: usize) -> Vec<(Vec<ListedPartnership>, bool)> {
        net.log
            .iter()
            .filter_map(|(node, e)| match e {
                Effect::Send { conn, bytes } if *node == 0 && *conn == client as ConnId => {
                    match Message::decode(bytes, usize::MAX).unwrap() {
                        Message::Listing {
                            partnerships, more, ..
                        } => Some((partnerships, more)),
                        _ => None,
                    }
                }
                _ => None,
            })
            .collect()
    }

    fn listed_ids(listings: &[(Vec<ListedPartnership>, bool)]) -> Vec<DocumentId> {
        listings
            .iter()
            .flat_map(|(partnerships, _)| partnerships.iter().flat_map(|p| p.documents.clone()))
            .collect()
    }

    fn north_south() -> Register {
        register(
            1,
            &[
                (1, &[("north", Role::Member)]),
                (2, &[("north", Role::Member)]),
                (3, &[("south", Role::Member)]),
                (4, &[("south", Role::Member)]),
                (5, &[("north", Role::Viewer)]),
            ],
        )
    }

    #[test]
    fn a_member_that_asks_is_listed_its_partnerships_documents_and_receives_them() {
        let mut net = net_with(north_south(), 5);
        net.connect(1);
        net.connect(3);
        let north = new_doc_with_title(&mut net, 1, "North plan");
        let south = new_doc_with_title(&mut net, 3, "South plan");

        // School 2 never tracked anything: it asks, and is listed North's.
        asks_for_listing(&mut net, 2);
        net.connect(2);
        let listings = listings_to(&net, 2);
        assert_eq!(listed_ids(&listings), vec![north]);
        let (partnerships, more) = &listings[0];
        assert!(!more, "the listing is one message");
        assert_eq!(partnerships.len(), 1);
        assert_eq!(partnerships[0].name, "Cluster north");
        assert_eq!(partnerships[0].role, Role::Member);
        assert!(partnerships[0].home);
        // With the bytes the relay stores for it, so the school can tell
        // how much is coming.
        let stored: usize = net.stores[0][&north].iter().map(Vec::len).sum();
        assert_eq!(partnerships[0].sizes, vec![stored as u64]);
        // Its core tracked the document (kept across restarts) and
        // fetched it.
        assert_eq!(net.tracked[2], vec![north]);
        assert_eq!(text_of(&net.stored(2, north), "title"), "North plan");
        assert!(!net.stores[2].contains_key(&south));
        assert_eq!(net.nodes[2].progress(&north, 0), SyncProgress::InSync);
        let listed = net
            .log
            .iter()
            .any(|(node, e)| *node == 2 && matches!(e, Effect::Listed { more: false, .. }));
        assert!(listed, "the driver hears the listing ended");
        let heard: Vec<DocumentId> = net
            .log
            .iter()
            .filter(|(node, _)| *node == 2)
            .filter_map(|(_, e)| match e {
                Effect::Listed { partnerships, .. } => Some(partnerships),
                _ => None,
            })
            .flat_map(|partnerships| partnerships.iter().flat_map(|p| p.documents.clone()))
            .collect();
        assert_eq!(
            heard,
            vec![north],
            "and which documents are the partnership's"
        );

        // A document North claims later reaches it by itself; South's
        // later one does not.
        let later = new_doc_with_title(&mut net, 1, "Later North plan");
        let later_south = new_doc_with_title(&mut net, 3, "Later South plan");
        assert_eq!(listed_ids(&listings_to(&net, 2)), vec![north, later]);
        assert_eq!(text_of(&net.stored(2, later), "title"), "Later North plan");
        assert!(!net.stores[2].contains_key(&later_south));
        assert_eq!(net.tracked[2], vec![north, later]);

        // South's asking school is listed South's documents only.
        asks_for_listing(&mut net, 4);
        net.connect(4);
        // (in the relay's order: by id)
        let mut south_ids = vec![south, later_south];
        south_ids.sort();
        assert_eq!(listed_ids(&listings_to(&net, 4)), south_ids);
        assert!(!net.stores[4].contains_key(&north) && !net.stores[4].contains_key(&later));
    }

    #[test]
    fn a_viewers_listing_says_viewer_and_it_reads_what_is_listed() {
        let mut net = net_with(north_south(), 5);
        net.connect(1);
        let plan = new_doc_with_title(&mut net, 1, "North plan");
        asks_for_listing(&mut net, 5);
        net.connect(5);
        let listings = listings_to(&net, 5);
        assert_eq!(listed_ids(&listings), vec![plan]);
        assert_eq!(listings[0].0[0].role, Role::Viewer);
        assert!(!listings[0].0[0].home, "a viewer creates nowhere");
        assert_eq!(text_of(&net.stored(5, plan), "title"), "North plan");
    }

    #[test]
    fn a_viewers_claimed_document_is_its_own_and_read_by_that_partnership_only() {
        let mut net = net_with(
            register(
                1,
                &[
                    (1, &[("north", Role::Member)]),
                    (2, &[("north", Role::Member)]),
                    (3, &[("south", Role::Member)]),
                    (5, &[("county", Role::Member), ("north", Role::Viewer)]),
                ],
            ),
            5,
        );
        net.connect(5);
        let comment = DocumentId::random();
        net.queue.push_back((
            5,
            Event::Claim {
                document_id: comment,
                partnership: "north".into(),
            },
        ));
        new_doc_with_id(&mut net, 5, comment, "Comments to North");
        assert_eq!(
            text_of(&net.stored(0, comment), "title"),
            "Comments to North",
            "the relay took the local authority's own document"
        );

        // North's school is listed it as shared, and receives it.
        asks_for_listing(&mut net, 2);
        net.connect(2);
        let listings = listings_to(&net, 2);
        assert_eq!(listed_ids(&listings), vec![comment]);
        assert_eq!(listings[0].0[0].shared, vec![comment]);
        assert_eq!(
            text_of(&net.stored(2, comment), "title"),
            "Comments to North"
        );
        // Its changes to it are kept to itself.
        net.edit(2, comment, |doc| {
            doc.put(ROOT, "status", "ours").unwrap();
        });
        assert!(
            net.stored(0, comment)
                .get(ROOT, "status")
                .unwrap()
                .is_none()
        );

        // South's school is never told of it, and asking gets nothing.
        asks_for_listing(&mut net, 3);
        net.connect(3);
        assert!(listed_ids(&listings_to(&net, 3)).is_empty());
        net.track(3, comment);
        assert!(!net.stores[3].contains_key(&comment));

        // The local authority's later changes reach North.
        net.edit(5, comment, |doc| {
            doc.put(ROOT, "status", "second comment").unwrap();
        });
        assert_eq!(
            net.stored(2, comment)
                .get(ROOT, "status")
                .unwrap()
                .map(|(v, _)| v.to_string()),
            Some("\"second comment\"".to_string())
        );
    }

    #[test]
    fn a_connection_that_did_not_ask_receives_no_listing_message() {
        let mut net = net_with(north_south(), 5);
        net.connect(1);
        net.connect(2);
        let plan = new_doc_with_title(&mut net, 1, "North plan");
        new_doc_with_title(&mut net, 1, "Another");
        net.disconnect(2);
        net.connect(2);
        net.track(2, plan);
        // As a JS client: only automerge-repo message types, and nothing
        // in the relay's `peer` about listings.
        for client in [1, 2] {
            for (node, effect) in &net.log {
                if let Effect::Send { conn, bytes } = effect
                    && *node == 0
                    && *conn == client as ConnId
                {
                    let message = Message::decode(bytes, usize::MAX).unwrap();
                    assert!(!matches!(message, Message::Listing { .. }), "{message:?}");
                    if let Message::Peer { metadata, .. } = message {
                        assert!(!metadata.listing);
                    }
                }
            }
        }
        assert_eq!(text_of(&net.stored(2, plan), "title"), "North plan");
    }

    #[test]
    fn a_long_listing_is_split_and_its_documents_start_a_few_hundred_a_tick() {
        let register = Arc::new(north_south());
        let owners: HashMap<DocumentId, String> = (0..2_500)
            .map(|_| (DocumentId::random(), "north".to_string()))
            .collect();
        let policy = PartnershipPolicy::new(register.clone(), owners.clone(), 2);
        let mut net = Net::with_relay_policy(2, Box::new(policy));
        net.grants
            .insert(2, register.authenticate(&credential(2), None).unwrap());
        asks_for_listing(&mut net, 2);
        net.connect(2);
        let mut sizes = Vec::new();
        for (node, effect) in &net.log {
            if let Effect::Send { conn: 2, bytes } = effect
                && *node == 0
                && matches!(
                    Message::decode(bytes, usize::MAX),
                    Ok(Message::Listing { .. })
                )
            {
                sizes.push(bytes.len());
            }
        }
        let listings = listings_to(&net, 2);
        assert_eq!(
            listings.iter().map(|(_, more)| *more).collect::<Vec<_>>(),
            vec![true, true, false]
        );
        assert!(sizes.iter().all(|&size| size < 64 * 1024), "{sizes:?}");
        let mut listed = listed_ids(&listings);
        listed.sort();
        let mut expected: Vec<DocumentId> = owners.keys().copied().collect();
        expected.sort();
        assert_eq!(listed, expected);
        // Each document costs a request frame: a few hundred a tick.
        assert_eq!(net.tracked[2].len(), ANNOUNCE_PER_TICK);
        assert!(net.nodes[2].announcing() > 0);
        for _ in 0..10 {
            net.tick(200);
        }
        assert_eq!(net.nodes[2].announcing(), 0);
        assert_eq!(net.tracked[2].len(), 2_500);
    }

    #[test]
    fn a_school_added_to_a_partnership_is_listed_its_documents_without_reconnecting() {
        let mut net = net_with(north_south(), 5);
        net.connect(3);
        let south = new_doc_with_title(&mut net, 3, "South plan");
        asks_for_listing(&mut net, 2);
        net.connect(2);
        assert!(listed_ids(&listings_to(&net, 2)).is_empty());
        let mut changed = north_south();
        changed.version = 2;
        changed
            .schools
            .get_mut("school-id-2")
            .unwrap()
            .memberships
            .insert("south".into(), Role::Viewer);
        change_register(&mut net, changed);
        assert!(net.linked[2]);
        assert_eq!(listed_ids(&listings_to(&net, 2)), vec![south]);
        assert_eq!(text_of(&net.stored(2, south), "title"), "South plan");
    }

    // Signing keys: a school's public key arrives in its client's `join`
    // and reaches its partners in their listings.

    /// The keys the latest listing to `client` names for `school`.
    fn keys_listed(net: &Net, client: usize, school: &str) -> Vec<[u8; 32]> {
        listings_to(net, client)
            .last()
            .into_iter()
            .flat_map(|(partnerships, _)| partnerships.iter())
            .flat_map(|p| p.schools.iter())
            .filter(|s| s.name == school)
            .flat_map(|s| s.keys.clone())
            .collect()
    }

    #[test]
    fn a_schools_signing_key_is_kept_for_it_and_listed_to_its_partners_at_once() {
        let mut net = net_with(north_south(), 5);
        asks_for_listing(&mut net, 2);
        asks_for_listing(&mut net, 3);
        net.connect(2);
        net.connect(3);
        assert!(keys_listed(&net, 2, "School 1").is_empty());

        net.nodes[1].config.signing_key = Some([1; 32]);
        asks_for_listing(&mut net, 1);
        net.connect(1);
        assert_eq!(
            net.signing_keys,
            vec![crate::access::SchoolKey {
                school: "school-id-1".into(),
                key: [1; 32]
            }],
            "kept for the school the token authenticated"
        );
        assert_eq!(keys_listed(&net, 1, "School 1"), vec![[1; 32]]);
        // Its partner, connected already, hears of it at once; a school
        // of another partnership does not.
        assert_eq!(keys_listed(&net, 2, "School 1"), vec![[1; 32]]);
        assert!(
            listings_to(&net, 3)
                .iter()
                .flat_map(|(p, _)| p.iter().flat_map(|p| p.schools.iter()))
                .all(|s| s.keys.is_empty()),
            "South hears of no North key"
        );
        let told = listings_to(&net, 2).len();

        // The same key again is nothing new.
        net.disconnect(1);
        net.connect(1);
        assert_eq!(net.signing_keys.len(), 1);
        assert_eq!(listings_to(&net, 2).len(), told);

        // Another school presenting school 1's key is told why, keeps its
        // connection, and the key stays school 1's.
        net.nodes[4].config.signing_key = Some([1; 32]);
        net.connect(4);
        assert!(net.linked[4]);
        assert!(
            net.sent_errors(0)
                .iter()
                .any(|m| m.contains("already registered to another school")),
            "{:?}",
            net.sent_errors(0)
        );
        assert_eq!(net.signing_keys.len(), 1);

        // A school's keys are bounded.
        for n in 2..=crate::access::MAX_SIGNING_KEYS_PER_SCHOOL as u8 + 1 {
            net.disconnect(1);
            net.nodes[1].config.signing_key = Some([n; 32]);
            net.connect(1);
        }
        assert_eq!(
            net.signing_keys.len(),
            crate::access::MAX_SIGNING_KEYS_PER_SCHOOL
        );
        assert!(
            net.sent_errors(0)
                .iter()
                .any(|m| m.contains("the most allowed")),
            "{:?}",
            net.sent_errors(0)
        );
        assert!(net.linked[1], "the connection stays open");
    }

    #[test]
    fn keys_kept_in_the_register_are_listed_after_a_restart() {
        let register = Arc::new(north_south());
        let policy = PartnershipPolicy::new(register.clone(), HashMap::new(), 2)
            .with_signing_keys([([9; 32], "school-id-1".to_string())]);
        let mut net = Net::with_relay_policy(2, Box::new(policy));
        net.grants
            .insert(2, register.authenticate(&credential(2), None).unwrap());
        asks_for_listing(&mut net, 2);
        net.connect(2);
        assert_eq!(keys_listed(&net, 2, "School 1"), vec![[9; 32]]);
    }
}

/// A peer that reads slowly is never cut: the relay holds back its sync
/// messages while more than its outbox limit waits, and makes them, with
/// whatever is new, once the peer has read.
#[test]
fn a_slow_reader_is_held_back_not_cut_and_gets_everything() {
    let mut net = Net::new(2);
    let mut config = RepoConfig::new("relay", Some("relay-storage".into()));
    config.outbox_bytes = Some(4096);
    net.nodes[0] = Repo::new(config, Box::new(AllowAll));
    net.connect(1);
    net.connect(2);
    let long: String = (0..3000).map(|i| format!("{i} ")).collect();
    let ids: Vec<DocumentId> = (0..5)
        .map(|_| new_doc_with_title(&mut net, 1, &long))
        .collect();
    net.stop_reading(2);
    for id in &ids {
        net.track(2, *id);
    }
    let mut most = 0;
    for _ in 0..50 {
        most = most.max(net.unread_bytes(2));
        if ids
            .iter()
            .all(|id| net.nodes[2].progress(id, 0) == SyncProgress::InSync)
        {
            break;
        }
        net.read_waiting(2);
    }
    for id in &ids {
        assert_eq!(
            text_of(&net.stored(2, *id), "title"),
            long,
            "everything arrived"
        );
    }
    let one_document = net.stores[0][&ids[0]].iter().map(Vec::len).sum::<usize>();
    assert!(
        most <= 4096 + 2 * one_document,
        "at most the limit and a message waited: {most} bytes"
    );
    assert!(net.linked[2], "the slow reader was never cut");
}

/// A message with many operations is applied by `Effect::Work`, off the
/// core (on the relay, the engine's worker thread); meanwhile what
/// arrives for that document waits, other documents carry on, and the
/// result is the same as applying it here.
#[test]
fn a_heavy_message_is_applied_as_work_and_what_waits_for_it_follows() {
    let mut net = Net::new(2);
    let mut config = RepoConfig::new("relay", Some("relay-storage".into()));
    config.heavy_ops = Some(100);
    net.nodes[0] = Repo::new(config, Box::new(AllowAll));
    net.connect(1);
    net.connect(2);
    let small = new_doc_with_title(&mut net, 1, "Small");
    let long: String = "typed ".repeat(200);
    let big = new_doc_with_title(&mut net, 1, &long);
    let worked: Vec<DocumentId> = net
        .log
        .iter()
        .filter_map(|(n, e)| match e {
            Effect::Work(work) if *n == 0 => Some(work.document_id()),
            _ => None,
        })
        .collect();
    assert_eq!(worked, vec![big], "only the heavy message went to work");
    net.edit(1, big, |doc| {
        doc.put(ROOT, "status", "green").unwrap();
    });
    net.track(2, big);
    net.track(2, small);
    assert_eq!(
        text_of(&net.stored(0, big), "title"),
        long,
        "the relay kept it"
    );
    let at_school = net.stored(2, big);
    assert_eq!(text_of(&at_school, "title"), long);
    assert_eq!(
        at_school.get(ROOT, "status").unwrap().unwrap().0.as_str(),
        Some("green")
    );
    assert_eq!(text_of(&net.stored(2, small), "title"), "Small");

    // After a restart the large document is assembled as work too.
    net.disconnect(1);
    net.disconnect(2);
    let mut config = RepoConfig::new("relay", Some("relay-storage".into()));
    config.heavy_ops = Some(100);
    net.nodes[0] = Repo::new(config, Box::new(AllowAll));
    let before = net.log.len();
    net.connect(2);
    net.edit(2, big, |doc| {
        doc.put(ROOT, "status", "red").unwrap();
    });
    let loads = net.log[before..]
        .iter()
        .filter(|(n, e)| *n == 0 && format!("{e:?}").contains("Work(load"))
        .count();
    assert_eq!(loads, 1, "loaded once, as work");
    let at_relay = net.stored(0, big);
    assert_eq!(text_of(&at_relay, "title"), long);
    assert_eq!(
        at_relay.get(ROOT, "status").unwrap().unwrap().0.as_str(),
        Some("red")
    );
}
