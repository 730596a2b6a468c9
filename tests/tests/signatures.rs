//! Signatures that prove which school gave them, end to end: each school's
//! key reaches its partners through a real relay, every client checks
//! every signature, and the command line refuses what a school may not
//! sign.

use automerge::ActorId;
use partnerplan_client::ClientError;
use partnerplan_client::school::signing_key;
use partnerplan_model::Author;
use partnerplan_model::records::SignatureInput;
use partnerplan_model::review;
use partnerplan_model::signing::Signer;
use partnerplan_sync::{DocumentId, Store};
use partnerplan_tests::{RelayProcess, School};
use serde_json::{Value, json};

const BANK_ROAD: &str = "Bank Road Infant and Nursery School";
const WILLIAM_LILLEY: &str = "William Lilley Infant and Nursery School";
const REPTON_MANOR: &str = "Repton Manor Primary School";

fn json_of(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// Each review's signatures as `review list --json` gives them: name,
/// school and the verification status.
fn statuses(school: &School, plan: &str) -> Vec<Vec<(String, String, String)>> {
    let listed = json_of(&school.ok(&["review", "list", plan, "--json"]));
    listed["reviews"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["signatures"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    (
                        s["name"].as_str().unwrap_or("").to_string(),
                        s["school"].as_str().unwrap_or("").to_string(),
                        s["verification"]["status"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .collect()
}

fn sync_all(schools: &[&School]) {
    for _ in 0..2 {
        for school in schools {
            school.sync();
        }
    }
}

/// Writes a signature into `school`'s copy as a program that skips every
/// check might: sealed with `key_of`'s signing key, naming `name`.
fn forge(school: &School, plan: &str, review_id: &str, key_of: &std::path::Path, name: &str) {
    let signer = Signer::new(signing_key(key_of).unwrap(), BANK_ROAD, Vec::new());
    let mut store = Store::open(school.dir.join("school.sqlite")).unwrap();
    let id = DocumentId::parse_url_or_id(plan).unwrap();
    let who = Author {
        school: school.name.clone(),
        person: None,
        time: 1_800_000_000,
    };
    store
        .change(
            &id,
            &ActorId::random(),
            Some("a forged signature".into()),
            |doc| -> Result<(), ClientError> {
                review::sign(
                    doc,
                    &id.to_string(),
                    review_id,
                    &SignatureInput {
                        name: Some(name.into()),
                        role: "headteacher".into(),
                        school: String::new(),
                        date: None,
                    },
                    &signer,
                    &who,
                )
                .map(|_| ())
                .map_err(ClientError::from)
            },
        )
        .unwrap();
}

#[test]
fn signatures_are_checked_at_every_school_and_none_verifies_as_another_schools() {
    let root = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&root.path().join("relay"), &[]);
    let a = School::init(root.path(), BANK_ROAD, &relay);
    let b = School::init(root.path(), WILLIAM_LILLEY, &relay);
    let c = School::init(root.path(), REPTON_MANOR, &relay);
    let plan = a
        .ok(&[
            "--as",
            "Carole Clemens",
            "new",
            "action-plan",
            "--title",
            "Plan",
        ])
        .trim()
        .to_string();
    let review_id = a
        .ok(&[
            "--as",
            "Carole Clemens",
            "review",
            "record",
            &plan,
            "--date",
            "11 July 2017",
            "--by",
            "the HTs and members of the JCC",
            "--sign",
            "Carole Clemens; headteacher",
        ])
        .trim()
        .to_string();
    sync_all(&[&a, &b, &c]);
    b.ok(&[
        "--as",
        "Sally Beardsley",
        "review",
        "sign",
        &plan,
        &review_id,
        "--name",
        "Sally Beardsley",
        "--role",
        "headteacher",
    ]);
    sync_all(&[&b, &a, &c]);

    let genuine = vec![
        (
            "Carole Clemens".to_string(),
            BANK_ROAD.to_string(),
            "verified".to_string(),
        ),
        (
            "Sally Beardsley".to_string(),
            WILLIAM_LILLEY.to_string(),
            "verified".to_string(),
        ),
    ];
    for school in [&a, &b, &c] {
        assert_eq!(
            statuses(school, &plan),
            vec![genuine.clone()],
            "{}",
            school.name
        );
    }
    let listed = c.ok(&["review", "list", &plan]);
    assert!(
        listed.contains(&format!(
            "Verified: it was made with {WILLIAM_LILLEY}'s signing key and has not changed since."
        )),
        "{listed}"
    );

    // William Lilley's program writes a signature naming Bank Road, with
    // William Lilley's own key, and another with a key of its making.
    forge(&b, &plan, &review_id, &b.dir, "Carole Clemens's deputy");
    let stranger = root.path().join("stranger");
    std::fs::create_dir_all(&stranger).unwrap();
    forge(&b, &plan, &review_id, &stranger, "Someone Else");
    sync_all(&[&b, &a, &c]);
    for school in [&a, &c] {
        let got = statuses(school, &plan);
        assert_eq!(got[0].len(), 4, "{}: {got:?}", school.name);
        assert_eq!(got[0][..2], genuine[..], "{}", school.name);
        for forged in &got[0][2..] {
            assert_eq!(forged.1, BANK_ROAD);
            assert_eq!(forged.2, "not-verified", "{}: {forged:?}", school.name);
        }
        let listed = school.ok(&["review", "list", &plan]);
        assert!(
            listed.contains(&format!(
                "Not verified: it names {BANK_ROAD} but was made with {WILLIAM_LILLEY}'s key, and a school can sign only for itself."
            )),
            "{listed}"
        );
        assert!(
            listed.contains("signed with a key that this computer does not know as"),
            "{listed}"
        );
    }
}

#[test]
fn the_command_line_signs_only_for_its_own_school_once_and_at_the_time_it_signs() {
    let root = tempfile::tempdir().unwrap();
    let a = School::offline(root.path(), BANK_ROAD);
    let (plan, review_id) = a.plan_with_review();
    let before = a.ok(&["history", &plan, "--json"]);

    // Another school's name, in either command.
    let said = a.fails(&[
        "review",
        "sign",
        &plan,
        &review_id,
        "--name",
        "Sally Beardsley",
        "--role",
        "headteacher",
        "--school",
        WILLIAM_LILLEY,
    ]);
    assert!(
        said.contains(&format!(
            "{BANK_ROAD} can sign only for itself, not for {WILLIAM_LILLEY}"
        )),
        "{said}"
    );
    let said = a.fails(&[
        "review",
        "record",
        &plan,
        "--date",
        "12 July 2017",
        "--by",
        "the HTs",
        "--sign",
        &format!("Sally Beardsley; headteacher; {WILLIAM_LILLEY}"),
    ]);
    assert!(said.contains("can sign only for itself"), "{said}");
    assert_eq!(
        a.ok(&["history", &plan, "--json"]),
        before,
        "nothing written"
    );

    // Signed today, years after the review, and said so.
    let signed = a.ok(&[
        "review",
        "sign",
        &plan,
        &review_id,
        "--name",
        "Carole Clemens",
        "--role",
        "headteacher",
    ]);
    assert!(
        signed.contains("for the review of Tuesday 11 July 2017"),
        "{signed}"
    );
    let listed = json_of(&a.ok(&["review", "list", &plan, "--json"]));
    let signature = &listed["reviews"][0]["signatures"][0];
    let signed_at = signature["signedAt"].as_i64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - signed_at).abs() < 600, "{signature}");
    assert_ne!(
        signature["date"],
        json!("2017-07-11"),
        "not the review's date"
    );
    assert_eq!(signature["verification"]["status"], json!("verified"));

    // The same person again, however written, is refused.
    let before = a.ok(&["history", &plan, "--json"]);
    let said = a.fails(&[
        "review",
        "sign",
        &plan,
        &review_id,
        "--name",
        "carole clemens",
        "--role",
        "chair",
    ]);
    assert!(
        said.contains("Carole Clemens, headteacher")
            && said.contains("a person signs a review once"),
        "{said}"
    );
    assert_eq!(
        a.ok(&["history", &plan, "--json"]),
        before,
        "nothing written"
    );

    // A signature given on paper is transcribed with its own date.
    let out = a.ok(&[
        "review",
        "sign",
        &plan,
        &review_id,
        "--name",
        "Andy Hitchcock",
        "--role",
        "chair",
        "--date",
        "12 July 2017",
    ]);
    assert!(out.contains("Transcribed from paper"), "{out}");
    let listed = a.ok(&["review", "list", &plan]);
    assert!(
        listed.contains("on Wednesday 12 July 2017 (transcribed from paper)")
            && listed.contains("Transcribed from paper: partnerplan cannot tell who signed it."),
        "{listed}"
    );
}

#[test]
fn a_withdrawn_review_shows_who_and_when_at_every_school_and_stays_in_history() {
    let root = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&root.path().join("relay"), &[]);
    let a = School::init(root.path(), BANK_ROAD, &relay);
    let b = School::init(root.path(), WILLIAM_LILLEY, &relay);
    let (plan, mistake) = a.plan_with_review();
    sync_all(&[&a, &b]);
    let out = b.ok(&[
        "--as",
        "Sally Beardsley",
        "review",
        "withdraw",
        &plan,
        &mistake,
        "--reason",
        "recorded twice",
    ]);
    assert!(
        out.contains("Withdrew the review of Tuesday 11 July 2017"),
        "{out}"
    );
    sync_all(&[&b, &a]);

    let listed = a.ok(&["review", "list", &plan]);
    assert!(
        listed.contains("Reviewed Tuesday 11 July 2017 by the HTs (withdrawn)")
            && listed.contains(&format!(
                "Withdrawn by Sally Beardsley ({WILLIAM_LILLEY}) on "
            ))
            && listed.contains(": recorded twice"),
        "{listed}"
    );
    let history = a.ok(&["history", &plan]);
    assert!(
        history.contains("withdrew the review of Tuesday 11 July 2017")
            && history.contains("recorded the review of 11 July 2017"),
        "{history}"
    );
    let said = a.fails(&[
        "review",
        "sign",
        &plan,
        &mistake,
        "--name",
        "Carole Clemens",
        "--role",
        "headteacher",
    ]);
    assert!(said.contains("was withdrawn by Sally Beardsley"), "{said}");
    let said = a.fails(&["review", "withdraw", &plan, &mistake]);
    assert!(said.contains("was already withdrawn"), "{said}");
}

#[test]
fn signatures_imported_from_a_paper_plan_show_as_transcribed() {
    let root = tempfile::tempdir().unwrap();
    let a = School::offline(root.path(), BANK_ROAD);
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/action-plan-000.json");
    let out = a.ok(&[
        "--as",
        "Carole Clemens",
        "import",
        fixture.to_str().unwrap(),
    ]);
    let plan = out
        .lines()
        .find_map(|l| l.strip_prefix("Action plan:"))
        .unwrap()
        .trim()
        .to_string();
    let all = statuses(&a, &plan);
    assert_eq!(all.len(), 3);
    assert!(
        all.iter()
            .flatten()
            .all(|(_, _, status)| status == "transcribed"),
        "{all:?}"
    );
    let listed = a.ok(&["review", "list", &plan]);
    assert!(
        listed.contains("Transcribed from paper: partnerplan cannot tell who signed it."),
        "{listed}"
    );
    assert!(!listed.contains("Verified"), "{listed}");
}
