//! A viewer school (a governor, the local authority) reads its
//! partnership's documents and holds no private edits: the command line
//! refuses every change with a sentence, as the app does, rather than
//! making one the relay will never share.

use partnerplan_tests::{RelayProcess, School, TEST_PARTNERSHIP};

#[test]
fn a_viewers_command_line_refuses_every_edit_and_writes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&root.path().join("relay"), &[]);
    let lead = School::init(root.path(), "Bank Road Infant and Nursery School", &relay);
    let (plan, review) = lead.plan_with_review();
    let notes = lead.create("Notes");
    lead.sync();
    let invite = relay
        .invite(TEST_PARTNERSHIP, "Kent County Council", "viewer")
        .unwrap();
    let la = School::join(root.path(), "Kent County Council", &invite);
    la.sync();
    assert!(la.has(&plan) && la.has(&notes), "a viewer reads everything");
    let before = (
        la.ok(&["history", &plan, "--json"]),
        la.ok(&["list", "--json"]),
    );

    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/action-plan-000.json");
    let fixture = fixture.to_str().unwrap();
    let edits: Vec<Vec<&str>> = vec![
        vec!["new", "action-plan", "--title", "Mine"],
        vec!["put", &plan, "period", "2017-18"],
        vec!["type", &plan, "overridingObjective", "--append", "More."],
        vec!["row", "add", &plan, "areas", "name=Parents"],
        vec![
            "review",
            "record",
            &plan,
            "--date",
            "12 July 2017",
            "--by",
            "the LA",
        ],
        vec![
            "review",
            "sign",
            &plan,
            &review,
            "--name",
            "A. Officer",
            "--role",
            "chair",
        ],
        vec!["review", "withdraw", &plan, &review],
        vec!["import", fixture],
        vec!["create", "--title", "Mine"],
        vec!["set", &notes, "status", "draft"],
        vec!["edit", &notes, "title", "--append", " (LA)"],
    ];
    for args in edits {
        let said = la.fails(&args);
        assert!(
            said.contains("your school can read its partnership's documents but not change them, so nothing was changed"),
            "{args:?}: {said}"
        );
    }
    assert_eq!(
        (
            la.ok(&["history", &plan, "--json"]),
            la.ok(&["list", "--json"]),
        ),
        before,
        "nothing was written"
    );
    let status = la.ok(&["status"]);
    assert!(!status.contains("not confirmed"), "{status}");
}
