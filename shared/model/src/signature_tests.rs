//! Signatures that prove which school gave them: sealed with the school's
//! key, checked against the keys each school is known by; refused for
//! another school or a second time; withdrawn reviews; transcriptions.

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ObjId, ROOT, ReadDoc, Value};
use ed25519_dalek::SigningKey;

use crate::author::{self, Author};
use crate::create;
use crate::error::ModelError;
use crate::history::history;
use crate::plan_file::{self, PlanFile};
use crate::records::{self, Review, Signature, SignatureInput};
use crate::render;
use crate::review::{self, Given};
use crate::schema::Kind;
use crate::signing::{KnownKeys, Signer, Verification, verify};

const BANK_ROAD: &str = "Bank Road Infant and Nursery School";
const WILLIAM_LILLEY: &str = "William Lilley Infant and Nursery School";
const DOCUMENT: &str = "4NMNnkMhL8jXrdJ9jamS2tRB2iVn";
/// 29 November 2026, 14:02 UTC: long after the review of 11 July 2017.
const NOW: i64 = 1_795_960_920;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn bank_road_signer() -> Signer {
    Signer::new(key(1), BANK_ROAD, vec!["Bank Road".into()])
}

fn william_lilley_signer() -> Signer {
    Signer::new(key(2), WILLIAM_LILLEY, Vec::new())
}

/// The keys the relay published: each school's own.
fn published() -> KnownKeys {
    let mut keys = KnownKeys::default();
    keys.insert(&bank_road_signer().public_hex(), BANK_ROAD);
    keys.insert(&william_lilley_signer().public_hex(), WILLIAM_LILLEY);
    keys
}

fn at(school: &str, person: &str, time: i64) -> Author {
    Author {
        school: school.into(),
        person: Some(person.into()),
        time,
    }
}

fn signing(name: Option<&str>, role: &str, school: &str) -> SignatureInput {
    SignatureInput {
        name: name.map(str::to_string),
        role: role.into(),
        school: school.into(),
        date: None,
    }
}

/// Bank Road's plan with a review of 11 July 2017, and William Lilley's
/// copy of it.
fn reviewed() -> (AutoCommit, AutoCommit, String) {
    let mut a = AutoCommit::new().with_actor(ActorId::random());
    let carole = at(BANK_ROAD, "Carole Clemens", NOW - 600);
    create::create(&mut a, Kind::ActionPlan, "Plan 2017-18", None, &carole).unwrap();
    a.commit();
    let id = review::record(
        &mut a,
        "11 July 2017",
        "the HTs and members of the JCC",
        Some("Agreed."),
        Given::Nothing,
        &carole,
    )
    .unwrap();
    a.commit();
    let b = AutoCommit::load(&a.save())
        .unwrap()
        .with_actor(ActorId::random());
    (a, b, id)
}

fn the_review(doc: &AutoCommit, id: &str) -> Review {
    records::find(doc, id).unwrap().1
}

fn check(doc: &AutoCommit, id: &str, n: usize) -> (Signature, Verification) {
    check_in(doc, DOCUMENT, id, n)
}

fn check_in(doc: &AutoCommit, document: &str, id: &str, n: usize) -> (Signature, Verification) {
    let review = the_review(doc, id);
    let signature = review.signatures[n].clone();
    let verification = verify(document, &review, &signature, &published());
    (signature, verification)
}

fn reason(v: &Verification) -> &str {
    match v {
        Verification::NotVerified { reason } => reason,
        other => panic!("expected not verified, got {other:?}"),
    }
}

/// The map of the review's `n`-th signature, to change as a hostile or
/// careless program might.
fn signature_object(doc: &AutoCommit, n: usize) -> ObjId {
    let get = |obj: &ObjId, prop: automerge::Prop| match doc.get(obj, prop).unwrap() {
        Some((Value::Object(_), id)) => id,
        other => panic!("not an object: {other:?}"),
    };
    let reviews = get(&ROOT, "reviews".into());
    let review = get(&reviews, 0.into());
    let signatures = get(&review, "signatures".into());
    get(&signatures, n.into())
}

#[test]
fn a_school_cannot_produce_a_signature_that_verifies_as_another_schools() {
    let (_, mut b, id) = reviewed();
    let sally = at(WILLIAM_LILLEY, "Sally Beardsley", NOW);
    // Through the model, William Lilley cannot name Bank Road at all.
    let refused = review::sign(
        &mut b,
        DOCUMENT,
        &id,
        &signing(Some("Carole Clemens"), "headteacher", BANK_ROAD),
        &william_lilley_signer(),
        &sally,
    )
    .unwrap_err();
    assert_eq!(
        refused,
        ModelError::NotYourSchool {
            yours: WILLIAM_LILLEY.into(),
            named: BANK_ROAD.into()
        }
    );
    assert!(refused.to_string().contains("can sign only for itself"));
    assert!(the_review(&b, &id).signatures.is_empty(), "nothing written");

    // A program that skips the check: William Lilley's own key, Bank
    // Road's name.
    let forger = Signer::new(key(2), BANK_ROAD, Vec::new());
    let input = signing(Some("Carole Clemens"), "headteacher", "");
    review::sign(&mut b, DOCUMENT, &id, &input, &forger, &sally).unwrap();
    let (signature, verification) = check(&b, &id, 0);
    assert_eq!(signature.school, BANK_ROAD);
    assert!(
        reason(&verification).contains(&format!(
            "names {BANK_ROAD} but was made with {WILLIAM_LILLEY}'s key"
        )),
        "{verification:?}"
    );

    // A key of its own making, that the relay never published for Bank Road.
    let stranger = Signer::new(key(9), BANK_ROAD, Vec::new());
    let input = signing(Some("Someone Else"), "headteacher", "");
    review::sign(&mut b, DOCUMENT, &id, &input, &stranger, &sally).unwrap();
    let (_, verification) = check(&b, &id, 1);
    assert!(
        reason(&verification).contains("does not know as"),
        "{verification:?}"
    );

    // Bank Road's public key written beside a seal made with another.
    let input = signing(Some("Third Person"), "headteacher", "");
    review::sign(&mut b, DOCUMENT, &id, &input, &stranger, &sally).unwrap();
    let obj = signature_object(&b, 2);
    b.put(&obj, "key", bank_road_signer().public_hex()).unwrap();
    let (_, verification) = check(&b, &id, 2);
    assert!(
        reason(&verification).contains("changed after it was signed"),
        "{verification:?}"
    );

    // Bank Road's own signature verifies, and the forgery in Carole
    // Clemens's name does not stop her signing.
    let mut a = b.fork();
    let carole = at(BANK_ROAD, "Carole Clemens", NOW);
    let input = signing(Some("Carole Clemens"), "Head Teacher", "Bank Road");
    review::sign(&mut a, DOCUMENT, &id, &input, &bank_road_signer(), &carole).unwrap();
    let (signature, verification) = check(&a, &id, 3);
    assert_eq!(verification, Verification::Verified, "{signature:?}");
    assert_eq!(signature.school, BANK_ROAD, "the name its partners know");
    assert!(verification.sentence(&signature).starts_with(
        "Verified: it was made with Bank Road Infant and Nursery School's signing key"
    ));
}

#[test]
fn a_signature_whose_document_review_version_name_role_or_time_changed_is_not_verified() {
    let (mut a, _, id) = reviewed();
    let carole = at(BANK_ROAD, "Carole Clemens", NOW);
    review::sign(
        &mut a,
        DOCUMENT,
        &id,
        &signing(Some("Carole Clemens"), "headteacher", BANK_ROAD),
        &bank_road_signer(),
        &carole,
    )
    .unwrap();
    a.commit();
    assert_eq!(check(&a, &id, 0).1, Verification::Verified);

    // In another document (copied whole, or the id changed), it fails.
    let verification = check_in(&a, "2x4PGSqPHuaYAuFqNCvM3jcgmvnN", &id, 0).1;
    assert!(
        reason(&verification).contains("copied from another document"),
        "{verification:?}"
    );

    let other_heads = {
        let mut later = a.fork();
        later.put(ROOT, "period", "2017-18").unwrap();
        later.commit();
        later.get_heads()[0].to_string()
    };
    type Change = Box<dyn Fn(&mut AutoCommit, &ObjId)>;
    let changes: Vec<(&str, Change, &str)> = vec![
        (
            "name",
            Box::new(|d, o| d.put(o, "name", "Mallory").unwrap()),
            "changed after it was signed",
        ),
        (
            "role",
            Box::new(|d, o| d.put(o, "role", "chair of governors").unwrap()),
            "changed after it was signed",
        ),
        (
            "school",
            Box::new(|d, o| d.put(o, "school", WILLIAM_LILLEY).unwrap()),
            "a school can sign only for itself",
        ),
        (
            "time",
            Box::new(|d, o| d.put(o, "signedAt", NOW - 60).unwrap()),
            "changed after it was signed",
        ),
        (
            "day",
            Box::new(|d, o| d.put(o, "date", "2017-07-11").unwrap()),
            "not the day it was made",
        ),
        (
            "version",
            Box::new(move |d, o| {
                let heads = d.put_object(o, "heads", automerge::ObjType::List).unwrap();
                d.insert(&heads, 0, other_heads.as_str()).unwrap();
            }),
            "changed after it was signed",
        ),
        (
            "seal",
            Box::new(|d, o| d.put(o, "seal", "00ff").unwrap()),
            "damaged",
        ),
    ];
    for (what, change, expected) in changes {
        let mut copy = a.fork();
        let obj = signature_object(&copy, 0);
        change(&mut copy, &obj);
        let (_, verification) = check(&copy, &id, 0);
        assert!(
            reason(&verification).contains(expected),
            "{what}: {verification:?}"
        );
    }
    // The review it signs, changed: its date.
    let mut copy = a.fork();
    let Some((_, reviews)) = copy.get(ROOT, "reviews").unwrap() else {
        panic!("reviews");
    };
    let Some((_, review)) = copy.get(&reviews, 0).unwrap() else {
        panic!("review");
    };
    copy.put(&review, "date", "2017-07-12").unwrap();
    let verification = check(&copy, &id, 0).1;
    assert!(
        reason(&verification).contains("changed after it was signed"),
        "{verification:?}"
    );
}

#[test]
fn a_signature_made_here_carries_the_time_it_is_made_not_the_reviews_date() {
    let (mut a, _, id) = reviewed();
    let carole = at(BANK_ROAD, "Carole Clemens", NOW);
    let signature = review::sign(
        &mut a,
        DOCUMENT,
        &id,
        &signing(None, "headteacher", ""),
        &bank_road_signer(),
        &carole,
    )
    .unwrap();
    assert_eq!(the_review(&a, &id).date, "2017-07-11");
    assert_eq!(signature.signed_at, Some(NOW));
    assert_eq!(signature.date, "2026-11-29", "the day it was made");
    assert_eq!(render::signed_when(&signature), "2026-11-29 14:02 UTC");
    // A date cannot be given to a signature made here.
    let mut dated = signing(Some("Andy Hitchcock"), "chair", "");
    dated.date = Some("11 July 2017".into());
    let error = review::sign(&mut a, DOCUMENT, &id, &dated, &bank_road_signer(), &carole)
        .unwrap_err()
        .to_string();
    assert!(error.contains("carries the time it is made"), "{error}");
}

#[test]
fn the_same_person_signs_a_review_once() {
    let (mut a, _, id) = reviewed();
    let carole = at(BANK_ROAD, "Carole Clemens", NOW);
    let signer = bank_road_signer();
    let sign = |doc: &mut AutoCommit, name: Option<&str>, role: &str| {
        review::sign(
            doc,
            DOCUMENT,
            &id,
            &signing(name, role, ""),
            &signer,
            &carole,
        )
    };
    sign(&mut a, Some("Carole Clemens"), "headteacher").unwrap();
    for (name, role) in [
        (Some("Carole Clemens"), "headteacher"),
        (Some("carole  clemens"), "chair of governors"),
    ] {
        let error = sign(&mut a, name, role).unwrap_err();
        assert!(
            matches!(&error, ModelError::AlreadySigned { who, .. } if who.starts_with("Carole Clemens")),
            "{error:?}"
        );
        assert!(error.to_string().contains("a person signs a review once"));
    }
    sign(&mut a, None, "chair").unwrap();
    assert!(matches!(
        sign(&mut a, None, "chair of governors"),
        Err(ModelError::AlreadySigned { .. })
    ));
    sign(&mut a, Some("Andy Hitchcock"), "chair").unwrap();
    assert_eq!(the_review(&a, &id).signatures.len(), 3);
    // Recording a review with the same person twice is refused whole.
    let error = review::record(
        &mut a,
        "12 July 2017",
        "the JCC",
        None,
        Given::Signed {
            signer: &signer,
            document: DOCUMENT,
            signatures: &[
                signing(Some("Carole Clemens"), "headteacher", ""),
                signing(Some("Carole Clemens"), "headteacher", ""),
            ],
        },
        &carole,
    )
    .unwrap_err();
    assert!(matches!(error, ModelError::AlreadySigned { .. }));
    assert_eq!(records::reviews(&a).len(), 1, "no second review written");
}

#[test]
fn a_withdrawn_review_stays_with_who_and_when_and_cannot_be_signed() {
    let (mut a, _, id) = reviewed();
    let carole = at(BANK_ROAD, "Carole Clemens", NOW);
    review::withdraw(&mut a, &id, Some("recorded twice"), &carole).unwrap();
    a.commit_with(
        automerge::transaction::CommitOptions::default()
            .with_message("withdrew the review of 11 July 2017".to_string())
            .with_time(NOW),
    );
    let review = the_review(&a, &id);
    let withdrawn = review.withdrawn.clone().expect("withdrawn");
    assert_eq!(
        withdrawn.by,
        "Carole Clemens (Bank Road Infant and Nursery School)"
    );
    assert_eq!(withdrawn.at, NOW);
    assert_eq!(withdrawn.reason.as_deref(), Some("recorded twice"));
    assert_eq!(records::reviews(&a).len(), 1, "it stays in the document");
    assert_eq!(
        render::withdrawal(&review).unwrap(),
        "Withdrawn by Carole Clemens (Bank Road Infant and Nursery School) on 2026-11-29 14:02 UTC: recorded twice"
    );
    let view = crate::read::read(&a).unwrap();
    assert!(render::markdown(&view).contains("(withdrawn)"));
    let withdrawal = history(a.document(), &[], &Default::default())
        .into_iter()
        .find(|e| e.message.as_deref() == Some("withdrew the review of 11 July 2017"))
        .expect("the withdrawal is in the history");
    assert_eq!(withdrawal.person.as_deref(), Some("Carole Clemens"));
    assert_eq!(withdrawal.time, NOW);

    let error = review::sign(
        &mut a,
        DOCUMENT,
        &id,
        &signing(Some("Carole Clemens"), "headteacher", ""),
        &bank_road_signer(),
        &carole,
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("was withdrawn by Carole Clemens"),
        "{error}"
    );
    assert!(matches!(
        review::withdraw(&mut a, &id, None, &carole),
        Err(ModelError::AlreadyWithdrawn { .. })
    ));
    // Exported as a plan file, it is left out.
    let exported = plan_file::export(&view);
    assert!(exported.is_ok_and(|plan| plan.reviews.is_empty()));
}

#[test]
fn signatures_imported_from_a_file_show_as_transcribed() {
    let plan =
        PlanFile::from_json(include_str!("../../../tests/fixtures/action-plan-000.json")).unwrap();
    let author = at(BANK_ROAD, "Carole Clemens", NOW);
    let mut doc = AutoCommit::new().with_actor(ActorId::random());
    plan_file::import_content(&mut doc, &plan, None, &author).unwrap();
    doc.commit();
    plan_file::import_reviews(&mut doc, &plan, &author).unwrap();
    doc.commit();
    let reviews = records::reviews(&doc);
    assert_eq!(reviews.len(), 3);
    for review in &reviews {
        for signature in &review.signatures {
            assert!(signature.transcribed && signature.seal.is_none());
            let verification = verify(DOCUMENT, review, signature, &published());
            assert_eq!(verification, Verification::Transcribed);
            assert_eq!(
                verification.sentence(signature),
                "Transcribed from paper: partnerplan cannot tell who signed it."
            );
        }
    }
    // One recorded before signatures were sealed names no proof at all.
    let mut old = reviews[0].signatures[0].clone();
    old.transcribed = false;
    let verification = verify(DOCUMENT, &reviews[0], &old, &published());
    assert!(
        reason(&verification).contains("carries no digital signature"),
        "{verification:?}"
    );
}

#[test]
fn signatures_given_at_once_at_two_schools_both_verify_at_both() {
    let (mut a, mut b, id) = reviewed();
    author::note_author(&mut b, &at(WILLIAM_LILLEY, "Sally Beardsley", NOW)).unwrap();
    b.commit();
    review::sign(
        &mut a,
        DOCUMENT,
        &id,
        &signing(Some("Carole Clemens"), "headteacher", ""),
        &bank_road_signer(),
        &at(BANK_ROAD, "Carole Clemens", NOW),
    )
    .unwrap();
    review::sign(
        &mut b,
        DOCUMENT,
        &id,
        &signing(Some("Sally Beardsley"), "headteacher", ""),
        &william_lilley_signer(),
        &at(WILLIAM_LILLEY, "Sally Beardsley", NOW + 5),
    )
    .unwrap();
    a.merge(&mut b).unwrap();
    b.merge(&mut a).unwrap();
    for doc in [&a, &b] {
        let review = the_review(doc, &id);
        assert_eq!(review.signatures.len(), 2);
        for signature in &review.signatures {
            assert_eq!(
                verify(DOCUMENT, &review, signature, &published()),
                Verification::Verified,
                "{signature:?}"
            );
        }
    }
}
