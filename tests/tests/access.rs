//! Who may see what: partnerships, roles, removal, tokens, limits and
//! wss, with the real relay, its admin commands and real clients.

use std::time::Duration;

use automerge::transaction::Transactable;
use futures_util::{SinkExt, StreamExt};
use partnerplan_sync::message::{Message, PeerMetadata};
use partnerplan_tests::{RelayProcess, School, wait_until};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message as Ws;

const NORTH: &str = "Cluster North";
const SOUTH: &str = "Cluster South";

fn relay(root: &std::path::Path, extra: &[&str]) -> RelayProcess {
    let relay = RelayProcess::start(&root.join("relay"), extra);
    relay.partnership(NORTH);
    relay.partnership(SOUTH);
    relay
}

fn school(
    root: &std::path::Path,
    relay: &RelayProcess,
    partnership: &str,
    name: &str,
    role: &str,
) -> School {
    let invite = relay
        .invite(partnership, name, role)
        .expect("a new school gets an invite");
    School::join(root, name, &invite)
}

fn unavailable(school: &School, url: &str) -> bool {
    school.ok(&["open", url]);
    let out = school.ok(&["sync", "--timeout", "30"]);
    out.contains(&format!("The relay does not have {url}")) && !school.has(url)
}

#[test]
fn each_school_syncs_exactly_its_partnerships_documents() {
    let root = tempfile::tempdir().unwrap();
    let relay = relay(root.path(), &[]);
    let north = school(root.path(), &relay, NORTH, "Hilltop", "member");
    let south = school(root.path(), &relay, SOUTH, "Seaside", "member");
    let both = school(root.path(), &relay, NORTH, "Bridge", "member");
    assert_eq!(
        relay.invite(SOUTH, "Bridge", "member"),
        None,
        "one school, one token, two partnerships"
    );

    let north_plan = north.create("North plan");
    north.sync();
    let south_plan = south.create("South plan");
    south.sync();
    let bridge_plan = both.create("Bridge plan");
    both.sync();

    for url in [&north_plan, &south_plan, &bridge_plan] {
        both.ok(&["open", url]);
    }
    both.sync();
    assert_eq!(both.show(&north_plan)["title"], json!("North plan"));
    assert_eq!(both.show(&south_plan)["title"], json!("South plan"));

    // Knowing another partnership's ids gets a school nothing of them.
    assert!(unavailable(&south, &north_plan));
    assert!(
        unavailable(&south, &bridge_plan),
        "Bridge's new document belongs to its home, North"
    );
    assert!(unavailable(&north, &south_plan));
    north.ok(&["open", &bridge_plan]);
    north.sync();
    assert_eq!(north.show(&bridge_plan)["title"], json!("Bridge plan"));

    // Bridge switches to South's address (same token) to create for South.
    let added = relay.admin_ok(&[
        "school",
        "add",
        "--partnership",
        SOUTH,
        "Newcomer",
        "--json",
    ]);
    assert!(added.contains("token"));
    let again = relay.admin(&["school", "add", "--partnership", SOUTH, "Bridge"]);
    assert!(!again.status.success(), "Bridge is already in South");
    let address = {
        let out = relay.admin_ok(&["partnership", "list", "--json"]);
        let list: serde_json::Value = serde_json::from_str(&out).unwrap();
        let id = list
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == SOUTH)
            .unwrap()["id"]
            .clone();
        format!("{}/?partnership={}", relay.url(), id.as_str().unwrap())
    };
    both.ok(&["set-relay", &address]);
    let bridge_south = both.create("Bridge for the south");
    both.sync();
    south.ok(&["open", &bridge_south]);
    south.sync();
    assert_eq!(
        south.show(&bridge_south)["title"],
        json!("Bridge for the south")
    );
    assert!(unavailable(&north, &bridge_south));

    let listed = relay.admin_ok(&["partnership", "list"]);
    assert!(
        listed.contains("Cluster North  (2 schools, 2 documents"),
        "{listed}"
    );
    assert!(
        listed.contains("Cluster South  (3 schools, 2 documents"),
        "{listed}"
    );
}

/// Changes `school`'s copy of `url` under its own actor, as a program
/// that writes the store without the command line's checks would.
fn as_program_of(school: &School, url: &str, edit: impl FnOnce(&mut automerge::AutoCommit)) {
    let mut store = partnerplan_sync::Store::open(school.dir.join("school.sqlite")).unwrap();
    let actor = store.meta("actor_id").unwrap().unwrap();
    let actor = automerge::ActorId::try_from(actor.as_str()).unwrap();
    let id = partnerplan_sync::DocumentId::parse_url_or_id(url).unwrap();
    store
        .change(
            &id,
            &actor,
            Some("a change no command made".into()),
            |doc| -> Result<(), partnerplan_sync::StoreError> {
                edit(doc);
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn a_viewer_reads_and_its_changes_never_reach_anyone() {
    let root = tempfile::tempdir().unwrap();
    let relay = relay(root.path(), &[]);
    let member = school(root.path(), &relay, NORTH, "Hilltop", "member");
    let viewer = school(root.path(), &relay, NORTH, "Local Authority", "viewer");
    let plan = member.create("Action plan");
    member.sync();
    viewer.ok(&["open", &plan]);
    viewer.sync();
    assert_eq!(
        viewer.show(&plan)["title"],
        json!("Action plan"),
        "a viewer reads"
    );

    // Its own command line refuses to change anything; a program that
    // skips that check (an older partnerplan, a hostile one) gets no
    // further at the relay.
    let said = viewer.fails(&["set", &plan, "status", "red"]);
    assert!(said.contains("nothing was changed"), "{said}");
    as_program_of(&viewer, &plan, |doc| {
        doc.put(automerge::ROOT, "status", "red").unwrap();
    });
    let said = viewer.ok(&["sync", "--timeout", "30"]);
    assert!(
        said.contains("The relay said: your school may read document"),
        "{said}"
    );
    assert!(said.contains("not saved or passed on"), "{said}");
    assert!(
        said.contains("This school may only read 1 of them"),
        "{said}"
    );
    member.sync();
    assert_eq!(
        member.show(&plan).get("status"),
        None,
        "the viewer's change reached no one"
    );
    let newcomer = school(root.path(), &relay, NORTH, "Newcomer", "member");
    newcomer.ok(&["open", &plan]);
    newcomer.sync();
    assert_eq!(
        newcomer.show(&plan).get("status"),
        None,
        "nor was it stored"
    );

    // A viewer creates nothing either.
    let own = partnerplan_sync::DocumentId::random().url();
    as_program_of(&viewer, &own, |doc| {
        doc.put(automerge::ROOT, "title", "Viewer's own").unwrap();
    });
    viewer.ok(&["sync", "--timeout", "30"]);
    assert!(unavailable(&member, &own));
}

#[test]
fn a_removed_school_is_cut_off_and_misses_later_edits() {
    let root = tempfile::tempdir().unwrap();
    let relay = relay(root.path(), &[]);
    let stays = school(root.path(), &relay, NORTH, "Hilltop", "member");
    let leaves = school(root.path(), &relay, NORTH, "Withdrawn", "member");
    let plan = stays.create("Plan");
    stays.sync();
    leaves.ok(&["open", &plan]);
    leaves.sync();
    let _watch = leaves.watch();
    wait_until(
        Duration::from_secs(20),
        "the leaving school is connected",
        || leaves.ok(&["status"]).contains("Connected to the relay"),
    );

    let said = relay.admin_ok(&["school", "remove", "Withdrawn", "--partnership", NORTH]);
    assert!(said.contains("no longer in Cluster North"), "{said}");
    wait_until(
        Duration::from_secs(10),
        "the leaving school's connection is cut",
        || {
            let status = leaves.ok(&["status"]);
            status.contains("Not connected") && status.contains("not in any partnership")
                || status.contains("was changed by the lead school")
        },
    );
    stays.ok(&["set", &plan, "status", "green"]);
    stays.sync();
    let error = leaves.fails(&["sync", "--timeout", "10"]);
    assert!(
        error.contains("Withdrawn is not in any partnership on this relay any more"),
        "{error}"
    );
    assert_eq!(
        leaves.show(&plan).get("status"),
        None,
        "it received nothing written after it left"
    );
    assert_eq!(
        leaves.show(&plan)["title"],
        json!("Plan"),
        "what it had stays"
    );
}

#[test]
fn wrong_rotated_and_removed_tokens_are_refused_in_a_sentence() {
    let root = tempfile::tempdir().unwrap();
    let relay = relay(root.path(), &[]);
    let hilltop = school(root.path(), &relay, NORTH, "Hilltop", "member");
    let plan = hilltop.create("Plan");
    hilltop.sync();

    // The token file is readable only by its owner.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(hilltop.dir.join("relay-token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let rotated = relay.admin_ok(&[
        "token",
        "rotate",
        "Hilltop",
        "--url",
        &relay.url(),
        "--json",
    ]);
    let rotated: serde_json::Value = serde_json::from_str(&rotated).unwrap();
    let error = hilltop.fails(&["sync", "--timeout", "10"]);
    assert!(
        error.contains("the access token is not valid: it may have been replaced or revoked"),
        "{error}"
    );
    assert!(hilltop.has(&plan), "local data stays");
    hilltop.ok(&["join", rotated["invite"].as_str().unwrap()]);
    hilltop.sync();

    std::fs::write(hilltop.dir.join("relay-token"), "pp_not-the-token").unwrap();
    let error = hilltop.fails(&["sync", "--timeout", "10"]);
    assert!(error.contains("the access token is not valid"), "{error}");
    hilltop.ok(&["join", rotated["invite"].as_str().unwrap()]);

    relay.admin_ok(&["school", "remove", "Hilltop"]);
    let error = hilltop.fails(&["sync", "--timeout", "10"]);
    assert!(error.contains("the access token is not valid"), "{error}");
    assert_eq!(hilltop.show(&plan)["title"], json!("Plan"));

    let bad = hilltop.fails(&["join", "ws://relay.example/?partnership=x"]);
    assert!(bad.contains("it has no token"), "{bad}");
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn join_as(invite: &str, peer: &str) -> Result<Socket, String> {
    let (mut socket, _) = tokio_tungstenite::connect_async(invite)
        .await
        .map_err(|e| e.to_string())?;
    let join = Message::Join {
        sender_id: peer.into(),
        supported_protocol_versions: vec!["1".into()],
        metadata: PeerMetadata::default(),
    };
    socket
        .send(Ws::Binary(join.encode().into()))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Ok(Some(Ok(Ws::Binary(bytes)))) => {
                return match Message::decode(&bytes, usize::MAX) {
                    Ok(Message::Peer { .. }) => Ok(socket),
                    Ok(Message::Error { message, .. }) => Err(message),
                    other => Err(format!("unexpected {other:?}")),
                };
            }
            Ok(Some(Ok(Ws::Ping(_) | Ws::Pong(_)))) => continue,
            other => return Err(format!("no answer: {other:?}")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_and_too_many_connections_are_refused_while_others_keep_syncing() {
    let root = tempfile::tempdir().unwrap();
    let relay = relay(
        root.path(),
        &[
            "--max-messages-per-second",
            "20",
            "--max-connections-per-school",
            "2",
        ],
    );
    let flooder = relay.invite(NORTH, "Flooder", "member").unwrap();
    let hilltop = school(root.path(), &relay, NORTH, "Hilltop", "member");
    let plan = hilltop.create("Plan");

    let mut socket = join_as(&flooder, "flooder").await.unwrap();
    let second = join_as(&flooder, "flooder-2").await.unwrap();
    let third = join_as(&flooder, "flooder-3").await;
    let refused = third.expect_err("a third connection is refused");
    assert!(
        refused.contains("Flooder already has 2 connections open to this relay, the most allowed"),
        "{refused}"
    );
    drop(second);

    let gossip = Message::Gossip {
        sender_id: "flooder".into(),
        kind: "remote-subscription-change".into(),
    };
    let mut told = None;
    for _ in 0..500 {
        if socket
            .send(Ws::Binary(gossip.encode().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    while let Ok(Some(Ok(frame))) =
        tokio::time::timeout(Duration::from_secs(10), socket.next()).await
    {
        if let Ws::Binary(bytes) = frame
            && let Ok(Message::Error { message, .. }) = Message::decode(&bytes, usize::MAX)
        {
            told = Some(message);
            break;
        }
    }
    let told = told.expect("the flood is told why it is cut");
    assert!(
        told.contains("too many messages: this relay takes at most 20 a second"),
        "{told}"
    );

    // Meanwhile another school syncs as usual.
    let hilltop_sync = tokio::task::spawn_blocking(move || {
        hilltop.sync();
        hilltop.show(&plan)["title"].clone()
    });
    assert_eq!(hilltop_sync.await.unwrap(), json!("Plan"));
}

#[test]
fn a_relay_serves_wss_and_the_client_verifies_its_certificate() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let root = tempfile::tempdir().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Hilltop Federation test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let (cert_path, key_path, ca_path) = (
        root.path().join("relay.pem"),
        root.path().join("relay-key.pem"),
        root.path().join("ca.pem"),
    );
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    std::fs::write(&ca_path, ca.pem()).unwrap();

    let relay = relay(
        root.path(),
        &[
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
    );
    assert!(relay.url().starts_with("wss://"));
    let invite = relay.invite(NORTH, "Hilltop", "member").unwrap();
    assert!(invite.starts_with("wss://"));

    // Without the school's CA, the self-signed relay is not trusted.
    let untrusting = School::join(root.path(), "Untrusting", &invite);
    untrusting.create("Plan");
    let error = untrusting.fails(&["sync", "--timeout", "10"]);
    assert!(
        error.contains("presented a certificate this computer does not trust"),
        "{error}"
    );
    assert!(error.contains("--ca-file"), "{error}");

    let trusting = School::unjoined(root.path(), "Hilltop");
    trusting.ok(&[
        "join",
        &invite,
        "--school",
        "Hilltop",
        "--ca-file",
        ca_path.to_str().unwrap(),
    ]);
    let plan = trusting.create("Secure plan");
    trusting.sync();
    let other_invite = relay.invite(NORTH, "Seaside", "member").unwrap();
    let other = School::unjoined(root.path(), "Seaside");
    other.ok(&[
        "join",
        &other_invite,
        "--school",
        "Seaside",
        "--ca-file",
        ca_path.to_str().unwrap(),
    ]);
    other.ok(&["open", &plan]);
    other.sync();
    assert_eq!(other.show(&plan)["title"], json!("Secure plan"));
}

#[test]
fn the_relay_logs_neither_tokens_nor_document_content() {
    let root = tempfile::tempdir().unwrap();
    let log = root.path().join("relay.log");
    let relay = RelayProcess::start_logging(&root.path().join("relay"), &[], &log);
    relay.partnership(NORTH);
    let invite = relay.invite(NORTH, "Hilltop", "member").unwrap();
    let token = invite.split("token=").nth(1).unwrap().to_string();
    let hilltop = School::join(root.path(), "Hilltop", &invite);
    let secret = "Confidential safeguarding note about pupil X";
    let plan = hilltop.create(secret);
    hilltop.ok(&["set", &plan, "notes", "Another private sentence"]);
    hilltop.sync();
    // A wrong token, in the address, is logged as refused, not echoed.
    let wrong = School::unjoined(root.path(), "Stranger");
    wrong.ok(&[
        "join",
        &format!("{}/?token=pp_wrong_but_secret", relay.url()),
        "--school",
        "Stranger",
    ]);
    wrong.fails(&["sync", "--timeout", "10"]);
    drop(relay);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("connection opened"),
        "the log is really written at trace level"
    );
    assert!(!logged.contains(&token), "the token appears in the log");
    assert!(
        !logged.contains("pp_wrong_but_secret"),
        "a presented token appears in the log"
    );
    assert!(
        !logged.contains("Confidential") && !logged.contains("private sentence"),
        "document content appears in the log"
    );
}

fn listed_urls(school: &School) -> Vec<String> {
    let list: serde_json::Value = serde_json::from_str(&school.ok(&["list", "--json"])).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|d| d["url"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_document_of_a_schools_partnerships_arrives_by_itself() {
    let root = tempfile::tempdir().unwrap();
    let relay = relay(root.path(), &[]);
    let creator = school(root.path(), &relay, NORTH, "Hilltop", "member");
    let partner = school(root.path(), &relay, NORTH, "Valley", "member");
    let governors = school(root.path(), &relay, NORTH, "Governors", "viewer");
    let outsider = school(root.path(), &relay, SOUTH, "Seaside", "member");
    let first = creator.create("First plan");
    creator.sync();

    // No URL typed, no `open`: one sync brings it.
    partner.sync();
    assert_eq!(listed_urls(&partner), vec![first.clone()]);
    assert_eq!(partner.show(&first)["title"], json!("First plan"));
    governors.sync();
    assert_eq!(governors.show(&first)["title"], json!("First plan"));
    outsider.sync();
    assert!(listed_urls(&outsider).is_empty());
    assert!(!outsider.has(&first));

    // The app reads the partnership's name and the school's role.
    let meta = |school: &School, key: &str| {
        partnerplan_sync::Store::open(school.dir.join("school.sqlite"))
            .unwrap()
            .meta(key)
            .unwrap()
    };
    assert_eq!(meta(&partner, "partnership_name").as_deref(), Some(NORTH));
    assert_eq!(meta(&partner, "role").as_deref(), Some("member"));
    assert_eq!(meta(&governors, "role").as_deref(), Some("viewer"));
    assert_eq!(meta(&outsider, "partnership_name").as_deref(), Some(SOUTH));
    let partnerships: serde_json::Value =
        serde_json::from_str(&meta(&governors, "partnerships").unwrap()).unwrap();
    assert_eq!(partnerships[0]["name"], json!(NORTH));
    assert_eq!(partnerships[0]["role"], json!("viewer"));

    // A document created later reaches a running sync by itself.
    let _partner_watch = partner.watch();
    let _outsider_watch = outsider.watch();
    for school in [&partner, &outsider] {
        wait_until(Duration::from_secs(20), "the sync is connected", || {
            school.ok(&["status"]).contains("Connected to the relay")
        });
    }
    let later = creator.create("Later plan");
    creator.sync();
    wait_until(
        Duration::from_secs(20),
        "the partner holds the later document",
        || partner.has(&later),
    );
    assert_eq!(partner.show(&later)["title"], json!("Later plan"));
    assert!(listed_urls(&partner).contains(&later));
    // The outsider's sync saw the same moment pass and received nothing.
    std::thread::sleep(Duration::from_secs(1));
    assert!(listed_urls(&outsider).is_empty());
    assert!(!outsider.has(&later));
}
