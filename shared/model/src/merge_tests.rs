//! Two schools edit their own replicas at once, then merge: each test
//! checks the merged document is what a school would expect.

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ObjType, ROOT, ScalarValue};

use crate::author::{self, Author};
use crate::diff::{Difference, diff};
use crate::edit::{self, ProseEdit};
use crate::error::ModelError;
use crate::records::{self, SignatureInput};
use crate::review;
use crate::rows::{self, Placement};
use crate::schema::{Kind, SCHEMA_VERSION};
use crate::signing::Signer;
use crate::{create, read};
use ed25519_dalek::SigningKey;

const BANK_ROAD: &str = "Bank Road Infant and Nursery School";
const WILLIAM_LILLEY: &str = "William Lilley Infant and Nursery School";

fn author(school: &str, person: &str) -> Author {
    Author {
        school: school.into(),
        person: Some(person.into()),
        time: 1_500_000_000,
    }
}

fn bank_road() -> Author {
    author(BANK_ROAD, "Carole Clemens")
}

fn william_lilley() -> Author {
    author(WILLIAM_LILLEY, "Sally Beardsley")
}

/// A new document at Bank Road, built by `setup`, and William Lilley's
/// copy of it after one sync.
fn shared(kind: Kind, setup: impl FnOnce(&mut AutoCommit)) -> (AutoCommit, AutoCommit) {
    let mut a = AutoCommit::new().with_actor(ActorId::random());
    create::create(
        &mut a,
        kind,
        "Collaboration action plan 2017-18",
        None,
        &bank_road(),
    )
    .unwrap();
    setup(&mut a);
    a.commit();
    let mut b = AutoCommit::load(&a.save())
        .unwrap()
        .with_actor(ActorId::random());
    author::note_author(&mut b, &william_lilley()).unwrap();
    b.commit();
    a.merge(&mut b).unwrap();
    (a, b)
}

fn sync(a: &mut AutoCommit, b: &mut AutoCommit) {
    a.merge(b).unwrap();
    b.merge(a).unwrap();
}

fn add(
    doc: &mut AutoCommit,
    table: &str,
    parent: Option<&str>,
    values: &[(&str, &str)],
    who: &Author,
) -> String {
    let values: Vec<(String, String)> = values
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    rows::add_row(doc, table, parent, &values, &Placement::End, who).unwrap()
}

/// A plan with one area (Safeguarding) and one action in it.
fn plan() -> (AutoCommit, AutoCommit, String, String) {
    let mut ids = (String::new(), String::new());
    let (a, b) = shared(Kind::ActionPlan, |a| {
        let area = add(
            a,
            "areas",
            None,
            &[("name", "Safeguarding"), ("links", "1, 2, 5, 10")],
            &bank_road(),
        );
        let action = add(
            a,
            "actions",
            Some(&area),
            &[
                (
                    "what",
                    "Peer review by head teachers of each setting's safeguarding arrangements",
                ),
                ("notes", "Notes:"),
            ],
            &bank_road(),
        );
        ids = (area, action);
    });
    (a, b, ids.0, ids.1)
}

fn actions(doc: &AutoCommit, area: &str) -> Vec<String> {
    let view = read::read(doc).unwrap();
    view.row(area)
        .unwrap()
        .live("actions")
        .iter()
        .map(|r| r.field("what").unwrap().text.clone())
        .collect()
}

#[test]
fn both_schools_add_actions_to_one_area_and_both_are_kept_in_one_order() {
    let (mut a, mut b, area, _) = plan();
    add(
        &mut a,
        "actions",
        Some(&area),
        &[("what", "Safeguarding governors compare audits")],
        &bank_road(),
    );
    add(
        &mut b,
        "actions",
        Some(&area),
        &[("what", "Share CP and safeguarding posters")],
        &william_lilley(),
    );
    add(
        &mut b,
        "actions",
        Some(&area),
        &[("what", "Review the SCR with office staff")],
        &william_lilley(),
    );
    sync(&mut a, &mut b);
    let at_a = actions(&a, &area);
    assert_eq!(at_a, actions(&b, &area), "both schools see one order");
    assert_eq!(at_a.len(), 4);
    assert!(
        at_a[0].starts_with("Peer review"),
        "the older action stays first"
    );
    for added in [
        "Safeguarding governors compare audits",
        "Share CP and safeguarding posters",
        "Review the SCR with office staff",
    ] {
        assert!(at_a.iter().any(|w| w == added), "{added} is kept: {at_a:?}");
    }
    // William Lilley's two actions keep the order they were typed in.
    let share = at_a.iter().position(|w| w.starts_with("Share")).unwrap();
    let scr = at_a
        .iter()
        .position(|w| w.starts_with("Review the SCR"))
        .unwrap();
    assert!(share < scr, "{at_a:?}");
}

#[test]
fn an_edit_to_a_row_another_school_removed_is_kept_and_the_row_can_be_restored() {
    let (mut a, mut b, area, action) = plan();
    rows::remove_row(&mut a, &action, &bank_road()).unwrap();
    edit::set_field(&mut b, Some(&action), "status", "green", &william_lilley()).unwrap();
    edit::edit_prose(
        &mut b,
        Some(&action),
        "notes",
        &ProseEdit::Append(" Took place on 25 April.".into()),
        &william_lilley(),
    )
    .unwrap();
    sync(&mut a, &mut b);

    let view = read::read(&a).unwrap();
    assert!(actions(&a, &area).is_empty(), "the removal stands");
    let row = view
        .row(&action)
        .expect("the removed row is still in the document");
    let removed = row.removed.as_ref().expect("marked removed");
    assert!(removed.by.contains("Carole Clemens"), "{removed:?}");
    assert!(row.edited_after_removal, "the concurrent edit is flagged");
    assert_eq!(
        row.field("notes").unwrap().text,
        "Notes: Took place on 25 April."
    );
    assert_eq!(view.removed_while_edited().len(), 1);

    // Editing it now is refused with a sentence that says what to do.
    let error = edit::set_field(&mut a, Some(&action), "status", "red", &bank_road()).unwrap_err();
    assert!(matches!(error, ModelError::RowRemoved { .. }));
    assert!(error.to_string().contains("row restore"), "{error}");

    rows::restore_row(&mut b, &action, &william_lilley()).unwrap();
    sync(&mut a, &mut b);
    let view = read::read(&a).unwrap();
    let row = view.row(&action).unwrap();
    assert!(row.removed.is_none());
    assert_eq!(row.field("status").unwrap().text, "green");
    assert_eq!(actions(&a, &area).len(), 1);
}

#[test]
fn a_removal_nobody_edited_against_is_not_flagged() {
    let (mut a, mut b, _, action) = plan();
    rows::remove_row(&mut a, &action, &bank_road()).unwrap();
    sync(&mut a, &mut b);
    let view = read::read(&b).unwrap();
    let row = view.row(&action).unwrap();
    assert!(row.removed.is_some() && !row.edited_after_removal);
    assert!(view.removed_while_edited().is_empty());
}

#[test]
fn two_statuses_on_one_action_are_a_conflict_with_who_set_each_until_resolved() {
    let (mut a, mut b, _, action) = plan();
    edit::set_field(&mut a, Some(&action), "status", "amber", &bank_road()).unwrap();
    edit::set_field(&mut b, Some(&action), "status", "Green", &william_lilley()).unwrap();
    sync(&mut a, &mut b);

    for replica in [&a, &b] {
        let view = read::read(replica).unwrap();
        let conflicts = view.conflicts();
        assert_eq!(conflicts.len(), 1, "{conflicts:?}");
        let conflict = &conflicts[0];
        assert_eq!(conflict.field, "status");
        assert_eq!(conflict.row.as_deref(), Some(action.as_str()));
        assert!(
            conflict.place.contains("Safeguarding") && conflict.place.contains("Status"),
            "{}",
            conflict.place
        );
        let mut values: Vec<(String, String, String)> = conflict
            .values
            .iter()
            .map(|c| {
                (
                    c.text.clone(),
                    c.school.clone().unwrap(),
                    c.person.clone().unwrap(),
                )
            })
            .collect();
        values.sort();
        assert_eq!(
            values,
            vec![
                ("amber".into(), BANK_ROAD.into(), "Carole Clemens".into()),
                (
                    "green".into(),
                    WILLIAM_LILLEY.into(),
                    "Sally Beardsley".into()
                ),
            ]
        );
        let json = view.to_json();
        let status = &json["areas"][0]["actions"][0]["status"]["conflict"];
        assert_eq!(status.as_array().unwrap().len(), 2, "{json}");
    }

    // Resolving keeps the chosen value, everywhere, once synced.
    let kept = edit::resolve(
        &mut a,
        Some(&action),
        "status",
        "William Lilley",
        &bank_road(),
    )
    .unwrap();
    assert_eq!(kept, "green");
    sync(&mut a, &mut b);
    for replica in [&a, &b] {
        let view = read::read(replica).unwrap();
        assert!(view.conflicts().is_empty());
        assert_eq!(
            view.row(&action).unwrap().field("status").unwrap().text,
            "green"
        );
    }
    let error = edit::resolve(&mut a, Some(&action), "status", "red", &bank_road()).unwrap_err();
    assert!(
        error.to_string().contains("no conflict to resolve"),
        "{error}"
    );
}

/// Two schools whose names overlap set one action's status at once; the
/// school whose name contains the other's sets its value with the
/// lower actor, so it comes first among the values.
fn statuses_from(first: &str, second: &str) -> (AutoCommit, String) {
    let (mut a, mut b, _, action) = plan();
    a.set_actor(ActorId::from([0x01; 16]));
    b.set_actor(ActorId::from([0xfe; 16]));
    edit::set_field(
        &mut a,
        Some(&action),
        "status",
        "amber",
        &author(first, "A"),
    )
    .unwrap();
    edit::set_field(
        &mut b,
        Some(&action),
        "status",
        "green",
        &author(second, "B"),
    )
    .unwrap();
    sync(&mut a, &mut b);
    let values: Vec<String> = read::read(&a).unwrap().conflicts()[0]
        .values
        .iter()
        .map(|c| c.text.clone())
        .collect();
    assert_eq!(values, vec!["amber", "green"]);
    (a, action)
}

#[test]
fn resolving_by_school_prefers_the_school_named_exactly() {
    let (mut a, action) = statuses_from("St Mary's RC", "St Mary's");
    let kept = edit::resolve(&mut a, Some(&action), "status", "st mary's", &bank_road()).unwrap();
    assert_eq!(kept, "green");
}

#[test]
fn resolving_by_part_of_a_name_two_schools_share_is_refused() {
    let (mut a, action) = statuses_from("Bank Road Infant", "Bank Road Junior");
    let error = edit::resolve(&mut a, Some(&action), "status", "Bank Road", &bank_road())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("“amber” (A (Bank Road Infant))")
            && error.contains("“green” (B (Bank Road Junior))"),
        "{error}"
    );
    assert_eq!(
        read::read(&a).unwrap().conflicts().len(),
        1,
        "nothing chosen"
    );
    let kept = edit::resolve(&mut a, Some(&action), "status", "Junior", &bank_road()).unwrap();
    assert_eq!(kept, "green");
}

#[test]
fn the_same_status_set_at_both_schools_is_not_a_conflict() {
    let (mut a, mut b, _, action) = plan();
    edit::set_field(&mut a, Some(&action), "status", "green", &bank_road()).unwrap();
    edit::set_field(&mut b, Some(&action), "status", "green", &william_lilley()).unwrap();
    sync(&mut a, &mut b);
    assert!(read::read(&a).unwrap().conflicts().is_empty());
}

#[test]
fn two_named_responsibilities_at_once_are_reported_whole() {
    let (mut a, mut b, _, action) = plan();
    edit::set_field(
        &mut a,
        Some(&action),
        "responsibility",
        "Carole Clemens; headteacher; Bank Road",
        &bank_road(),
    )
    .unwrap();
    edit::set_field(
        &mut b,
        Some(&action),
        "responsibility",
        "Sally Beardsley; headteacher; William Lilley",
        &william_lilley(),
    )
    .unwrap();
    sync(&mut a, &mut b);
    let view = read::read(&a).unwrap();
    let conflicts = view.conflicts();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    let mut texts: Vec<String> = conflicts[0]
        .values
        .iter()
        .map(|c| format!("{} by {}", c.text, c.who()))
        .collect();
    texts.sort();
    assert_eq!(
        texts,
        vec![
            format!("Carole Clemens (headteacher), Bank Road by Carole Clemens ({BANK_ROAD})"),
            format!(
                "Sally Beardsley (headteacher), William Lilley by Sally Beardsley ({WILLIAM_LILLEY})"
            ),
        ]
    );
    edit::resolve(
        &mut b,
        Some(&action),
        "responsibility",
        "Bank Road",
        &william_lilley(),
    )
    .unwrap();
    sync(&mut a, &mut b);
    let view = read::read(&a).unwrap();
    assert!(view.conflicts().is_empty());
    assert_eq!(
        view.row(&action)
            .unwrap()
            .field("responsibility")
            .unwrap()
            .text,
        "Carole Clemens (headteacher), Bank Road"
    );
}

#[test]
fn two_whole_responsibilities_at_once_are_a_conflict_not_a_blend() {
    let (mut a, mut b, _, action) = plan();
    edit::set_field(
        &mut a,
        Some(&action),
        "responsibility",
        "Smith; ; Bank Road",
        &bank_road(),
    )
    .unwrap();
    edit::set_field(
        &mut b,
        Some(&action),
        "responsibility",
        "; SENCO; Bank Road",
        &william_lilley(),
    )
    .unwrap();
    sync(&mut a, &mut b);
    for replica in [&a, &b] {
        let view = read::read(replica).unwrap();
        let conflicts = view.conflicts();
        assert_eq!(conflicts.len(), 1, "{conflicts:?}");
        let mut texts: Vec<String> = conflicts[0]
            .values
            .iter()
            .map(|c| format!("{} by {}", c.text, c.school.as_deref().unwrap()))
            .collect();
        texts.sort();
        assert_eq!(
            texts,
            vec![
                format!("SENCO, Bank Road by {WILLIAM_LILLEY}"),
                format!("Smith, Bank Road by {BANK_ROAD}"),
            ],
            "each whole as the school gave it"
        );
    }
    // An empty part is read as no part.
    edit::resolve(
        &mut a,
        Some(&action),
        "responsibility",
        "SENCO, Bank Road",
        &bank_road(),
    )
    .unwrap();
    let view = read::read(&a).unwrap();
    let field = view.row(&action).unwrap().field("responsibility").unwrap();
    assert_eq!(field.text, "SENCO, Bank Road");
    assert_eq!(
        field.value,
        serde_json::json!({"role": "SENCO", "school": "Bank Road"})
    );
}

#[test]
fn both_schools_typing_into_one_notes_cell_keep_both_texts() {
    let (mut a, mut b, _, action) = plan();
    edit::edit_prose(
        &mut a,
        Some(&action),
        "notes",
        &ProseEdit::Append(" Peer review took place on 25 April.".into()),
        &bank_road(),
    )
    .unwrap();
    edit::edit_prose(
        &mut b,
        Some(&action),
        "notes",
        &ProseEdit::Insert {
            at: 0,
            text: "[WL] ".into(),
        },
        &william_lilley(),
    )
    .unwrap();
    sync(&mut a, &mut b);
    let notes = |d: &AutoCommit| {
        read::read(d)
            .unwrap()
            .row(&action)
            .unwrap()
            .field("notes")
            .unwrap()
            .text
            .clone()
    };
    assert_eq!(notes(&a), "[WL] Notes: Peer review took place on 25 April.");
    assert_eq!(notes(&a), notes(&b));
    assert!(read::read(&a).unwrap().conflicts().is_empty());
}

#[test]
fn a_school_joins_the_partnership_while_another_adds_a_document() {
    let (mut a, mut b) = shared(Kind::Partnership, |a| {
        add(
            a,
            "schools",
            None,
            &[("name", BANK_ROAD), ("phase", "Infant")],
            &bank_road(),
        );
    });
    add(
        &mut a,
        "schools",
        None,
        &[
            ("name", WILLIAM_LILLEY),
            ("phase", "infant"),
            ("joined", "September 2016"),
        ],
        &bank_road(),
    );
    add(
        &mut b,
        "documents",
        None,
        &[
            ("kind", "action plan"),
            ("title", "Action plan 2017-18"),
            ("url", "automerge:2j9knpCseyhnK8izDmLpGP5WMdZQ"),
        ],
        &william_lilley(),
    );
    sync(&mut a, &mut b);
    for replica in [&a, &b] {
        let view = read::read(replica).unwrap();
        let schools: Vec<String> = view
            .live("schools")
            .iter()
            .map(|r| r.field("name").unwrap().text.clone())
            .collect();
        assert_eq!(schools, vec![BANK_ROAD, WILLIAM_LILLEY]);
        let documents = view.live("documents");
        assert_eq!(documents.len(), 1);
        assert_eq!(documents[0].field("kind").unwrap().text, "action-plan");
        assert_eq!(
            view.live("schools")[1].field("joined").unwrap().text,
            "September 2016"
        );
    }
}

#[test]
fn a_move_and_an_edit_of_the_same_row_at_once_both_land() {
    let (mut a, mut b, area, action) = plan();
    let second = add(
        &mut a,
        "actions",
        Some(&area),
        &[("what", "Safeguarding governors compare audits")],
        &bank_road(),
    );
    sync(&mut a, &mut b);
    rows::move_row(
        &mut a,
        &second,
        &Placement::Before(action.clone()),
        &bank_road(),
    )
    .unwrap();
    edit::set_field(&mut b, Some(&second), "status", "amber", &william_lilley()).unwrap();
    sync(&mut a, &mut b);
    let order = actions(&b, &area);
    assert!(order[0].starts_with("Safeguarding governors"), "{order:?}");
    let view = read::read(&b).unwrap();
    assert_eq!(
        view.row(&second).unwrap().field("status").unwrap().text,
        "amber"
    );
}

#[test]
fn objective_links_added_at_two_schools_are_all_kept() {
    let (mut a, mut b, area, _) = plan();
    edit::set_field(&mut a, Some(&area), "links", "1, 2, 3, 5, 10", &bank_road()).unwrap();
    edit::set_field(
        &mut b,
        Some(&area),
        "links",
        "Objective 1 Objective 2 Objective 5 Objective 9 Objective 10",
        &william_lilley(),
    )
    .unwrap();
    sync(&mut a, &mut b);
    let view = read::read(&a).unwrap();
    assert_eq!(
        view.row(&area).unwrap().field("links").unwrap().text,
        "1, 2, 3, 5, 9, 10"
    );
}

#[test]
fn bad_values_are_refused_with_what_was_wrong() {
    let (mut a, _, area, action) = plan();
    let error = |e: ModelError| e.to_string();
    let e =
        error(edit::set_field(&mut a, Some(&action), "status", "blue", &bank_road()).unwrap_err());
    assert_eq!(
        e,
        "Status: “blue” is not a status: use red, amber, green or done."
    );
    let e = error(
        edit::set_field(
            &mut a,
            Some(&action),
            "reviewDate",
            "31 February 2018",
            &bank_road(),
        )
        .unwrap_err(),
    );
    assert!(
        e.starts_with("Review date: “31 February 2018”: February 2018 has 28 days"),
        "{e}"
    );
    let e = error(
        edit::set_field(&mut a, Some(&area), "timeline", "Spring 3", &bank_road()).unwrap_err(),
    );
    assert!(e.contains("two halves"), "{e}");
    let e =
        error(edit::set_field(&mut a, Some(&action), "colour", "red", &bank_road()).unwrap_err());
    assert!(
        e.contains("not a field of an action") && e.contains("status"),
        "{e}"
    );
    let e = error(
        rows::add_row(&mut a, "actions", None, &[], &Placement::End, &bank_road()).unwrap_err(),
    );
    assert!(e.contains("--in"), "{e}");
}

#[test]
fn a_signed_review_keeps_the_version_signed_and_shows_what_changed_since() {
    let (mut a, mut b, _, action) = plan();
    edit::set_field(&mut a, Some(&action), "status", "amber", &bank_road()).unwrap();
    let bank_road_key = Signer::new(SigningKey::from_bytes(&[1; 32]), BANK_ROAD, Vec::new());
    let id = review::record(
        &mut a,
        "11th July 2017",
        "the HTs and members of the JCC",
        None,
        review::Given::Signed {
            signer: &bank_road_key,
            document: "plan",
            signatures: &[
                SignatureInput {
                    name: Some("Carole Clemens".into()),
                    role: "Head Teacher".into(),
                    school: BANK_ROAD.into(),
                    date: None,
                },
                SignatureInput {
                    name: None,
                    role: "Chair of Governing Board".into(),
                    school: String::new(),
                    date: None,
                },
            ],
        },
        &bank_road(),
    )
    .unwrap();
    sync(&mut a, &mut b);
    edit::set_field(&mut b, Some(&action), "status", "done", &william_lilley()).unwrap();
    edit::set_field(
        &mut b,
        None,
        "overridingObjective",
        "To improve pupil outcomes.",
        &william_lilley(),
    )
    .unwrap();
    sync(&mut a, &mut b);

    let (_, signed) = records::find(&a, &id[..8]).unwrap();
    assert_eq!(signed.date, "2017-07-11");
    assert_eq!(signed.signatures.len(), 2);
    assert_eq!(signed.signatures[1].role, "chair of governors");
    assert_eq!(signed.signatures[1].name, None);
    assert_eq!(signed.signatures[0].heads, signed.heads);
    let then = read::read_at(a.document(), &signed.heads().unwrap()).unwrap();
    assert_eq!(
        then.row(&action).unwrap().field("status").unwrap().text,
        "amber"
    );
    let now = read::read(&a).unwrap();
    assert_eq!(
        now.row(&action).unwrap().field("status").unwrap().text,
        "done"
    );
    let changes = diff(&then, &now);
    assert!(
        changes.iter().any(|d| matches!(d, Difference::Changed { field: "status", before, after, .. } if before == "amber" && after == "done")),
        "{changes:?}"
    );
    assert!(changes.iter().any(|d| matches!(
        d,
        Difference::Changed {
            field: "overridingObjective",
            ..
        }
    )));
    // A later signature signs the later version.
    let william_lilley_key =
        Signer::new(SigningKey::from_bytes(&[2; 32]), WILLIAM_LILLEY, Vec::new());
    let later = review::sign(
        &mut b,
        "plan",
        &id,
        &SignatureInput {
            name: Some("Kevin Snow".into()),
            role: "chair".into(),
            school: WILLIAM_LILLEY.into(),
            date: None,
        },
        &william_lilley_key,
        &william_lilley(),
    )
    .unwrap();
    assert_ne!(later.heads, signed.heads);
}

/// A version 1 action plan, written as the first release of the model
/// wrote it: no row positions or edit counters, and a named
/// responsibility as one line of text.
fn version_1_plan() -> AutoCommit {
    let mut doc = AutoCommit::new().with_actor(ActorId::random());
    doc.put(ROOT, "kind", "action-plan").unwrap();
    doc.put(ROOT, "schemaVersion", 1).unwrap();
    let title = doc.put_object(ROOT, "title", ObjType::Text).unwrap();
    doc.splice_text(&title, 0, 0, "Old plan").unwrap();
    let areas = doc.put_object(ROOT, "areas", ObjType::List).unwrap();
    let area = doc.insert_object(&areas, 0, ObjType::Map).unwrap();
    doc.put(&area, "id", "0a0a0a0a-0000-4000-8000-000000000001")
        .unwrap();
    doc.put(&area, "name", "Parents").unwrap();
    let actions = doc.put_object(&area, "actions", ObjType::List).unwrap();
    for (i, (what, who)) in [
        ("Send summary reports", "HTs, both schools"),
        ("Post JCC minutes", "Office staff"),
    ]
    .iter()
    .enumerate()
    {
        let action = doc.insert_object(&actions, i, ObjType::Map).unwrap();
        doc.put(
            &action,
            "id",
            format!("0b0b0b0b-0000-4000-8000-00000000000{i}"),
        )
        .unwrap();
        let text = doc.put_object(&action, "what", ObjType::Text).unwrap();
        doc.splice_text(&text, 0, 0, what).unwrap();
        doc.put(&action, "responsibility", *who).unwrap();
        doc.put(&action, "status", "amber").unwrap();
    }
    doc.commit();
    doc
}

#[test]
fn a_document_written_by_an_older_version_opens_and_can_be_edited() {
    let mut old = version_1_plan();
    let view = read::read(&old).unwrap();
    assert_eq!(view.schema_version, 1);
    let area = &view.live("areas")[0];
    let actions = area.live("actions");
    assert_eq!(actions.len(), 2);
    assert_eq!(
        actions[0].field("what").unwrap().text,
        "Send summary reports"
    );
    assert_eq!(
        actions[0].field("responsibility").unwrap().text,
        "HTs, both schools"
    );
    assert_eq!(actions[1].field("status").unwrap().text, "amber");

    let who = bank_road();
    edit::set_field(
        &mut old,
        Some("0b0b0b0b-0000-4000-8000-000000000001"),
        "status",
        "done",
        &who,
    )
    .unwrap();
    edit::set_field(
        &mut old,
        Some("0b0b0b0b-0000-4000-8000-000000000000"),
        "responsibility",
        "; headteacher; Bank Road",
        &who,
    )
    .unwrap();
    let added = add(
        &mut old,
        "actions",
        Some("0a0a0a0a"),
        &[("what", "Newsletters")],
        &who,
    );
    edit::edit_prose(
        &mut old,
        Some("0b0b0b0b-0000-4000-8000-000000000001"),
        "notes",
        &ProseEdit::Append("Ratified.".into()),
        &who,
    )
    .unwrap();
    let view = read::read(&old).unwrap();
    assert_eq!(view.schema_version, SCHEMA_VERSION);
    let actions = view.live("areas")[0].live("actions");
    assert_eq!(
        actions
            .iter()
            .map(|a| a.field("what").unwrap().text.as_str())
            .collect::<Vec<_>>(),
        vec!["Send summary reports", "Post JCC minutes", "Newsletters"]
    );
    assert_eq!(
        actions[0].field("responsibility").unwrap().text,
        "headteacher, Bank Road"
    );
    assert_eq!(actions[1].field("status").unwrap().text, "done");
    assert_eq!(actions[1].field("notes").unwrap().text, "Ratified.");
    assert_eq!(actions[2].id, added);
}

#[test]
fn a_part_of_a_version_1_responsibility_keeps_the_old_line_as_the_person() {
    let mut old = version_1_plan();
    edit::set_field(
        &mut old,
        Some("0b0b0b0b-0000-4000-8000-000000000000"),
        "responsibility.school",
        "Bank Road",
        &bank_road(),
    )
    .unwrap();
    let view = read::read(&old).unwrap();
    let field = view
        .row("0b0b0b0b-0000-4000-8000-000000000000")
        .unwrap()
        .field("responsibility")
        .unwrap();
    assert_eq!(field.text, "HTs, both schools, Bank Road");
    assert_eq!(
        field.value,
        serde_json::json!({"person": "HTs, both schools", "school": "Bank Road"})
    );
}

#[test]
fn two_schools_converting_one_version_1_responsibility_at_once_is_a_conflict() {
    let mut a = version_1_plan();
    author::note_author(&mut a, &bank_road()).unwrap();
    a.commit();
    let mut b = AutoCommit::load(&a.save())
        .unwrap()
        .with_actor(ActorId::random());
    author::note_author(&mut b, &william_lilley()).unwrap();
    b.commit();
    sync(&mut a, &mut b);
    let action = "0b0b0b0b-0000-4000-8000-000000000001";
    edit::set_field(
        &mut a,
        Some(action),
        "responsibility.school",
        "Bank Road",
        &bank_road(),
    )
    .unwrap();
    edit::set_field(
        &mut b,
        Some(action),
        "responsibility.role",
        "SBM",
        &william_lilley(),
    )
    .unwrap();
    sync(&mut a, &mut b);
    for replica in [&a, &b] {
        let view = read::read(replica).unwrap();
        let conflicts = view.conflicts();
        assert_eq!(conflicts.len(), 1, "{conflicts:?}");
        let mut texts: Vec<String> = conflicts[0]
            .values
            .iter()
            .map(|c| format!("{} by {}", c.text, c.school.as_deref().unwrap()))
            .collect();
        texts.sort();
        assert_eq!(
            texts,
            vec![
                format!("Office staff (SBM) by {WILLIAM_LILLEY}"),
                format!("Office staff, Bank Road by {BANK_ROAD}"),
            ]
        );
    }
    // A part cannot be given until one whole is chosen.
    let error = edit::set_field(
        &mut a,
        Some(action),
        "responsibility.person",
        "Jo",
        &bank_road(),
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("two different responsibilities")
            && error.to_string().contains("choose one"),
        "{error}"
    );
    edit::resolve(
        &mut a,
        Some(action),
        "responsibility",
        "William Lilley",
        &bank_road(),
    )
    .unwrap();
    sync(&mut a, &mut b);
    let view = read::read(&b).unwrap();
    assert!(view.conflicts().is_empty());
    assert_eq!(
        view.row(action)
            .unwrap()
            .field("responsibility")
            .unwrap()
            .text,
        "Office staff (SBM)"
    );
}

#[test]
fn a_document_from_a_newer_version_is_read_but_not_changed() {
    let (mut a, _, _, action) = plan();
    a.put(ROOT, "schemaVersion", SCHEMA_VERSION + 1).unwrap();
    a.put(
        ROOT,
        "somethingNew",
        ScalarValue::Str("from the future".into()),
    )
    .unwrap();
    let view = read::read(&a).unwrap();
    assert_eq!(view.live("areas").len(), 1);
    let error = edit::set_field(&mut a, Some(&action), "status", "red", &bank_road()).unwrap_err();
    assert!(error.to_string().contains("update partnerplan"), "{error}");
}

#[test]
fn a_newer_version_marked_while_a_partner_migrated_stays_newer() {
    // One school's newer partnerplan marks the document version 3 while
    // another's migrates it from 1 to 2; the migration has the higher
    // actor, so it would win a last-writer-wins read.
    let mut newer = version_1_plan().with_actor(ActorId::from([0x01; 16]));
    let mut older = AutoCommit::load(&newer.save())
        .unwrap()
        .with_actor(ActorId::from([0xfe; 16]));
    newer
        .put(ROOT, "schemaVersion", SCHEMA_VERSION + 1)
        .unwrap();
    edit::set_field(&mut older, None, "period", "2017-2018", &bank_road()).unwrap();
    sync(&mut newer, &mut older);
    for replica in [&newer, &older] {
        assert_eq!(
            read::read(replica).unwrap().schema_version,
            SCHEMA_VERSION + 1
        );
    }
    let error = edit::set_field(&mut older, None, "period", "2018-2019", &bank_road()).unwrap_err();
    assert!(error.to_string().contains("update partnerplan"), "{error}");
}

#[test]
fn a_plain_document_is_not_taken_for_a_typed_one() {
    let mut plain = AutoCommit::new();
    plain.put(ROOT, "title", "Notes").unwrap();
    let error = read::read(&plain).unwrap_err();
    assert!(error.to_string().contains("partnerplan new"), "{error}");
}

#[test]
fn two_texts_made_at_once_are_a_conflict_that_resolving_ends() {
    let (mut a, mut b) = shared(Kind::ProgressReport, |_| {});
    // As an older version would have done: each school makes the text.
    for (doc, words) in [(&mut a, "Learning walks"), (&mut b, "Joint INSET day")] {
        let text = doc.put_object(ROOT, "activity", ObjType::Text).unwrap();
        doc.splice_text(&text, 0, 0, words).unwrap();
    }
    sync(&mut a, &mut b);
    let view = read::read(&a).unwrap();
    assert_eq!(view.conflicts().len(), 1);
    edit::resolve(&mut a, None, "activity", "Joint INSET day", &bank_road()).unwrap();
    sync(&mut a, &mut b);
    let view = read::read(&b).unwrap();
    assert!(view.conflicts().is_empty());
    assert_eq!(view.field("activity").unwrap().text, "Joint INSET day");
}
