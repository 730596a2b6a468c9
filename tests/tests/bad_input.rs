//! Bad input gets a clear error and loses nothing: malformed and hostile
//! frames over a real socket, damaged databases on disk.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use partnerplan_sync::message::{Message, PeerMetadata, SyncFrame};
use partnerplan_sync::{DocumentId, Store};
use partnerplan_tests::{RelayProcess, School, TEST_PARTNERSHIP, relay_binary, run_bounded};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message as Ws;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const LIMIT: Duration = Duration::from_secs(10);

/// Connects and completes the handshake as peer `peer_id`.
async fn joined(url: &str, peer_id: &str) -> Socket {
    let (mut socket, _) = tokio::time::timeout(LIMIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("connects in time")
        .expect("connects");
    let join = Message::Join {
        sender_id: peer_id.into(),
        supported_protocol_versions: vec!["1".into()],
        metadata: PeerMetadata::default(),
    };
    socket.send(Ws::Binary(join.encode().into())).await.unwrap();
    match next_message(&mut socket).await {
        Some(Message::Peer { target_id, .. }) => assert_eq!(target_id, peer_id),
        other => panic!("expected peer, got {other:?}"),
    }
    socket
}

/// The next protocol message, or None once the connection is closed.
async fn next_message(socket: &mut Socket) -> Option<Message> {
    loop {
        let frame = tokio::time::timeout(LIMIT, socket.next())
            .await
            .expect("the relay answers in time");
        match frame {
            Some(Ok(Ws::Binary(bytes))) => {
                return Some(
                    Message::decode(&bytes, usize::MAX).expect("the relay sends valid messages"),
                );
            }
            Some(Ok(Ws::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

/// Sends `frame` and returns the error the relay answers with, checking
/// that it then closes the connection.
async fn refused_with(socket: &mut Socket, frame: Ws) -> String {
    socket.send(frame).await.unwrap();
    let message = loop {
        match next_message(socket).await {
            Some(Message::Error { message, .. }) => break message,
            Some(_) => continue,
            None => panic!("the relay closed the connection without saying why"),
        }
    };
    assert!(
        next_message(socket).await.is_none(),
        "the connection is closed after the error"
    );
    message
}

fn stored_snapshot(relay: &RelayProcess) -> Vec<(String, Vec<Vec<u8>>)> {
    let store = Store::open(relay.data.join("relay.sqlite")).unwrap();
    store
        .document_ids()
        .unwrap()
        .into_iter()
        .map(|id| (id.to_string(), store.load(&id).unwrap().0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_frame_gets_an_error_closes_one_connection_and_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&root.path().join("relay"), &["--max-frame-bytes", "65536"]);
    let school = School::init(root.path(), "Hilltop", &relay);
    let url = school.create("Plan");
    school.sync();
    let before = stored_snapshot(&relay);
    let intruder = relay
        .invite(TEST_PARTNERSHIP, "Intruder", "member")
        .unwrap();
    let partner = relay.invite(TEST_PARTNERSHIP, "Partner", "member").unwrap();
    let doc = DocumentId::parse_url_or_id(&url).unwrap();
    let sync = |sender: &str, data: Vec<u8>| {
        Ws::Binary(
            Message::Sync(SyncFrame {
                sender_id: sender.into(),
                target_id: "relay".into(),
                document_id: doc,
                data,
            })
            .encode()
            .into(),
        )
    };
    let short_id = {
        let mut e = minicbor::Encoder::new(Vec::new());
        e.map(5).unwrap();
        e.str("type").unwrap().str("request").unwrap();
        e.str("senderId").unwrap().str("intruder").unwrap();
        e.str("targetId").unwrap().str("relay").unwrap();
        e.str("documentId").unwrap().str(&bs58_10_bytes()).unwrap();
        e.str("data").unwrap().bytes(&[]).unwrap();
        e.into_writer()
    };
    let unknown_type = {
        let mut e = minicbor::Encoder::new(Vec::new());
        e.map(2).unwrap();
        e.str("type").unwrap().str("take-everything").unwrap();
        e.str("senderId").unwrap().str("intruder").unwrap();
        e.into_writer()
    };
    let cases: Vec<(Ws, &str)> = vec![
        (
            Ws::Binary(vec![0xbf, 0x61, 0x74, 0xff, 0x00].into()),
            "could not be read",
        ),
        (
            Ws::Binary(unknown_type.into()),
            "“take-everything” is not part of the automerge-repo protocol",
        ),
        (
            sync("intruder", vec![0x42, 0xff, 0xff, 0x01]),
            "the sync data for document",
        ),
        (
            Ws::Binary(short_id.into()),
            "holds 10 bytes where a document id holds 16",
        ),
        (
            sync("somebody-else", Vec::new()),
            "this connection belongs to peer “intruder”",
        ),
        (
            Ws::Binary(vec![0u8; 100_000].into()),
            "over this relay's limit of 65536 bytes",
        ),
        (
            Ws::Text("hello".into()),
            "text frames are not part of the automerge-repo protocol",
        ),
    ];
    for (frame, expected) in cases {
        let mut socket = joined(&intruder, "intruder").await;
        let message = refused_with(&mut socket, frame).await;
        assert!(
            message.contains(expected),
            "expected “{expected}” in “{message}”"
        );
        // Everyone else keeps working, and nothing stored changed.
        let other = joined(&partner, "partner").await;
        drop(other);
    }
    assert_eq!(stored_snapshot(&relay), before, "nothing stored changed");
    school.ok(&["set", &url, "status", "green"]);
    school.sync();
    let newcomer = School::init(root.path(), "Newcomer", &relay);
    newcomer.ok(&["open", &url]);
    newcomer.sync();
    assert_eq!(
        newcomer.show(&url)["status"],
        json!("green"),
        "the relay still serves everyone"
    );
}

fn bs58_10_bytes() -> String {
    bs58::encode([7u8; 10]).with_check().into_string()
}

#[test]
fn the_health_check_answers_while_the_database_works() {
    let root = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&root.path().join("relay"), &[]);
    let mut stream = TcpStream::connect(relay.addr).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    write!(
        stream,
        "GET /health HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        relay.addr
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("can read and write its database")
            && response.contains("documents: 0 in memory, 0 at rest"),
        "{response}"
    );
}

#[test]
fn a_relay_refuses_a_damaged_database_and_leaves_it_alone() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("relay");
    std::fs::create_dir_all(&data).unwrap();
    let junk = b"minutes of the joint committee, not a database\n".repeat(100);
    std::fs::write(data.join("relay.sqlite"), &junk).unwrap();
    let mut command = Command::new(relay_binary());
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(&data);
    let output = run_bounded(command, Duration::from_secs(30));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("relay.sqlite") && stderr.contains("not a partnerplan database"),
        "{stderr}"
    );
    assert!(stderr.contains("left untouched"), "{stderr}");
    assert_eq!(std::fs::read(data.join("relay.sqlite")).unwrap(), junk);
}

#[test]
fn a_client_refuses_a_damaged_database_and_leaves_it_alone() {
    let root = tempfile::tempdir().unwrap();
    let school = School::unjoined(root.path(), "Hilltop");
    school.ok(&["init", "--school", "Hilltop", "--relay", "ws://127.0.0.1:9"]);
    let path = school.dir.join("school.sqlite");
    let junk = b"not a database".repeat(500);
    std::fs::write(&path, &junk).unwrap();
    let _ = std::fs::remove_file(school.dir.join("school.sqlite-wal"));
    let _ = std::fs::remove_file(school.dir.join("school.sqlite-shm"));
    let error = school.fails(&["status"]);
    assert!(
        error.contains("school.sqlite") && error.contains("not a partnerplan database"),
        "{error}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), junk);
}

#[test]
fn a_client_says_in_a_sentence_when_the_relay_cannot_be_reached() {
    let root = tempfile::tempdir().unwrap();
    // Nothing listens on a port we bound and released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let school = School::unjoined(root.path(), "Hilltop");
    school.ok(&[
        "init",
        "--school",
        "Hilltop",
        "--relay",
        &format!("ws://127.0.0.1:{port}"),
    ]);
    let url = school.create("Plan");
    let error = school.fails(&["sync", "--timeout", "2"]);
    assert!(
        error.contains(&format!(
            "the relay at ws://127.0.0.1:{port} could not be reached"
        )),
        "{error}"
    );
    assert!(error.contains("Your edits are kept"), "{error}");
    assert_eq!(school.show(&url)["title"], json!("Plan"));
}

#[test]
fn a_client_says_in_a_sentence_why_the_relay_closed_the_connection() {
    let root = tempfile::tempdir().unwrap();
    // A limit so small that even the client's opening message is over it.
    let relay = RelayProcess::start(&root.path().join("relay"), &["--max-frame-bytes", "32"]);
    let school = School::init(root.path(), "Hilltop", &relay);
    let url = school.create("Plan");
    let error = school.fails(&["sync", "--timeout", "30"]);
    assert!(
        error.contains(&format!("the relay at {}/?partnership=", relay.url()))
            && error.contains(
                "closed the connection: the message is over this relay's limit of 32 bytes"
            ),
        "{error}"
    );
    assert!(error.contains("Your edits are kept here"), "{error}");
    assert_eq!(
        school.show(&url)["title"],
        json!("Plan"),
        "local data stays"
    );
}
