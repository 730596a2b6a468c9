//! Changes bound to schools, with the real relay and client programs: a
//! school that copies a partner's Automerge actor is refused in a
//! sentence and told the truth, the partner keeps syncing, history names
//! the right school, and a relay restart keeps which actor and which peer
//! id is whose.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use partnerplan_sync::Store;
use partnerplan_sync::message::{Message, PeerMetadata};
use partnerplan_tests::{RelayProcess, School};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as Ws;

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).expect("JSON")
}

/// What a school's own database says its Automerge actor is.
fn actor_of(school: &School) -> String {
    Store::open(school.dir.join("school.sqlite"))
        .unwrap()
        .meta("actor_id")
        .unwrap()
        .expect("a school has an actor")
}

/// `thief` starts editing under `victim`'s actor, as if its data folder
/// were copied from the victim's computer or the actor id were read off
/// a document's history.
fn copy_actor(victim: &School, thief: &School) {
    Store::open(thief.dir.join("school.sqlite"))
        .unwrap()
        .set_meta("actor_id", &actor_of(victim))
        .unwrap();
}

/// Which school history credits with each change, by what it says it did.
fn credited(school: &School, url: &str) -> Vec<(String, String)> {
    let history = json_of(&school.ok(&["history", url, "--json"]));
    history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["school"].as_str().unwrap_or_default().to_string(),
                e["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_school_writing_under_a_partners_actor_is_refused_and_the_partner_keeps_syncing() {
    let root = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&root.path().join("relay"), &[]);
    let hilltop = School::init(root.path(), "Hilltop", &relay);
    let valley = School::init(root.path(), "Valley", &relay);
    let cedar = School::init(root.path(), "Cedar", &relay);
    let plan = hilltop
        .ok(&["new", "plan", "--title", "Plan"])
        .trim()
        .to_string();
    hilltop.ok(&["put", &plan, "period", "2017-18"]);
    hilltop.sync();
    for school in [&valley, &cedar] {
        school.ok(&["open", &plan]);
        school.sync();
    }

    // Valley calls itself Hilltop, and edits under its own actor: taken
    // (its changes are its own), and history names it as the relay knows
    // it, not as it called itself.
    Store::open(valley.dir.join("school.sqlite"))
        .unwrap()
        .set_meta("school_name", "Hilltop")
        .unwrap();
    valley.ok(&["put", &plan, "source", "signed by Hilltop, honest"]);
    valley.sync();
    cedar.sync();
    let named = credited(&cedar, &plan);
    assert!(
        named
            .iter()
            .any(|(s, m)| s == "Valley" && m.contains("source")),
        "{named:?}"
    );

    // Valley edits under Hilltop's actor and syncs: refused, and told
    // the truth about it.
    copy_actor(&hilltop, &valley);
    valley.ok(&["put", &plan, "period", "taken over by Valley"]);
    let said = valley.fails(&["sync", "--timeout", "30"]);
    assert!(
        said.contains(&format!(
            "the relay refused this school's changes to {plan}, so they have not been shared, and syncing again will not share them"
        )),
        "{said}"
    );
    assert!(
        said.contains(
            "belongs to another school, and a school may send only changes it made itself"
        ),
        "{said}"
    );
    assert!(!said.contains("will be sent"), "{said}");
    let status = valley.ok(&["status"]);
    assert!(
        status.contains(&format!(
            "The relay refused this school's changes to {plan}"
        )) && status.contains("change the relay refused"),
        "{status}"
    );
    // Trying again changes nothing, and says so again.
    let again = valley.fails(&["sync", "--timeout", "30"]);
    assert!(again.contains("the relay refused"), "{again}");

    // Hilltop's own next edits (the same actor, the same sequence numbers
    // as Valley's) are taken, and reach its partners.
    hilltop.ok(&["put", &plan, "period", "2018-19"]);
    let synced = hilltop.ok(&["sync", "--timeout", "30"]);
    assert!(synced.contains("In sync"), "{synced}");
    hilltop.ok(&["put", &plan, "source", "the JCC"]);
    hilltop.sync();
    cedar.sync();
    let seen = json_of(&cedar.ok(&["view", &plan, "--json"]));
    assert_eq!(seen["period"], json!("2018-19"));
    assert_eq!(seen["source"], json!("the JCC"));

    // History credits Hilltop with Hilltop's changes and Valley with
    // Valley's own, and holds nothing made under Hilltop's actor by Valley.
    for school in [&hilltop, &cedar] {
        let credited = credited(school, &plan);
        let hilltops: Vec<&String> = credited
            .iter()
            .filter(|(s, _)| s == "Hilltop")
            .map(|(_, m)| m)
            .collect();
        assert!(
            hilltops.iter().any(|m| m.contains("period"))
                && hilltops.iter().all(|m| !m.contains("signed by")),
            "{credited:?}"
        );
        let valleys = credited.iter().filter(|(s, _)| s == "Valley").count();
        assert_eq!(valleys, 1, "{credited:?}");
        let view = json_of(&school.ok(&["view", &plan, "--json"]));
        assert_ne!(view["period"], json!("taken over by Valley"));
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a connection with an invite and introduces itself as `peer`:
/// the open socket, or what the relay refused it with.
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
async fn a_relay_restart_keeps_whose_actor_and_whose_peer_id_is_whose() {
    let root = tempfile::tempdir().unwrap();
    let mut relay = RelayProcess::start(&root.path().join("relay"), &[]);
    let first = relay
        .invite(partnerplan_tests::TEST_PARTNERSHIP, "First", "member")
        .unwrap();
    let second = relay
        .invite(partnerplan_tests::TEST_PARTNERSHIP, "Second", "member")
        .unwrap();
    let hilltop = School::init(root.path(), "Hilltop", &relay);
    let valley = School::init(root.path(), "Valley", &relay);
    let (plan, hilltop, valley) = tokio::task::spawn_blocking(move || {
        let plan = hilltop
            .ok(&["new", "plan", "--title", "Plan"])
            .trim()
            .to_string();
        hilltop.sync();
        valley.ok(&["open", &plan]);
        valley.sync();
        (plan, hilltop, valley)
    })
    .await
    .unwrap();
    // A peer id used by one school, its connection closed.
    let socket = join_as(&first, "first-school-peer").await.unwrap();
    drop(socket);
    tokio::time::sleep(Duration::from_millis(500)).await;

    relay.restart();

    // Another school takes that peer id: refused, though the relay has
    // restarted since.
    let refused = join_as(&second, "first-school-peer")
        .await
        .expect_err("the peer id is still First's");
    assert!(
        refused.contains("the peer id “first-school-peer” belongs to another school"),
        "{refused}"
    );
    join_as(&first, "first-school-peer")
        .await
        .expect("its own school uses it again");

    // And Hilltop's actor is still Hilltop's.
    let said = tokio::task::spawn_blocking(move || {
        copy_actor(&hilltop, &valley);
        valley.ok(&["put", &plan, "period", "taken over by Valley"]);
        valley.fails(&["sync", "--timeout", "30"])
    })
    .await
    .unwrap();
    assert!(said.contains("belongs to another school"), "{said}");
}
