//! The typed partnership documents through the real `partnerplan`
//! program: importing the seed action plan, two schools editing one plan
//! offline and merging through a real relay, reviews and what changed
//! since, and errors that say what to do.

use std::path::{Path, PathBuf};

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ObjType, ROOT, ReadDoc, Value as Am};
use partnerplan_model::When;
use partnerplan_model::plan_file::PlanFile;
use partnerplan_sync::{DocumentId, Store, StoreError};
use partnerplan_tests::{RelayProcess, School};
use serde_json::{Value, json};

const BANK_ROAD: &str = "Bank Road Infant and Nursery School";
const WILLIAM_LILLEY: &str = "William Lilley Infant and Nursery School";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/action-plan-000.json")
}

fn json_of(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn canonical(when: &Value) -> Value {
    match when.as_str() {
        Some(s) => json!(When::parse(s).unwrap().to_string()),
        None => Value::Null,
    }
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("")
}

/// The URL printed after `label:` by `import`.
fn printed_url(out: &str, label: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(label))
        .map(|u| u.trim().to_string())
        .unwrap_or_else(|| panic!("no “{label}” in {out}"))
}

#[test]
fn importing_the_seed_plan_brings_every_area_action_impact_entry_and_signed_review() {
    let root = tempfile::tempdir().unwrap();
    let school = School::offline(root.path(), BANK_ROAD);
    let file = fixture();
    let out = school.ok(&["--as", "Carole Clemens", "import", file.to_str().unwrap()]);
    let plan_url = printed_url(&out, "Action plan:");
    let partnership_url = printed_url(&out, "Partnership:");

    let seed = json_of(&std::fs::read_to_string(&file).unwrap());
    let plan = json_of(&school.ok(&["view", &plan_url, "--json"]));
    assert_eq!(plan["kind"], json!("action-plan"));
    assert_eq!(plan["title"], seed["title"]);
    assert_eq!(plan["overridingObjective"], seed["overridingObjective"]);
    assert_eq!(plan["partnership"], json!(partnership_url));

    let objectives = plan["objectives"].as_array().unwrap();
    assert_eq!(objectives.len(), 10);
    for (got, want) in objectives
        .iter()
        .zip(seed["objectives"].as_array().unwrap())
    {
        assert_eq!(got["number"], want["number"]);
        assert_eq!(got["text"], want["text"]);
    }

    let areas = plan["areas"].as_array().unwrap();
    let seed_areas = seed["areas"].as_array().unwrap();
    assert_eq!(areas.len(), 10, "every area arrives");
    let (mut actions, mut impact) = (0, 0);
    for (got, want) in areas.iter().zip(seed_areas) {
        let name = text(&want["name"]);
        assert_eq!(got["name"], want["name"]);
        assert_eq!(got["links"], want["links"], "{name}: objective links");
        assert_eq!(got["keyObjectives"], want["keyObjectives"], "{name}");
        assert_eq!(got["outcome"], want["outcome"], "{name}: intended outcome");
        assert_eq!(
            got["timeline"],
            canonical(&want["timeline"]),
            "{name}: timeline"
        );
        let got_actions = got["actions"].as_array().unwrap();
        let want_actions = want["actions"].as_array().unwrap();
        assert_eq!(got_actions.len(), want_actions.len(), "{name}: actions");
        for (a, w) in got_actions.iter().zip(want_actions) {
            assert_eq!(a["what"], w["what"]);
            assert_eq!(
                a["reviewDate"],
                canonical(&w["reviewDate"]),
                "{}",
                w["what"]
            );
            assert_eq!(text(&a["notes"]), text(&w["notes"]));
            for part in ["person", "role", "school"] {
                assert_eq!(
                    a["responsibility"][part], w["responsibility"][part],
                    "{}: responsibility {part}",
                    w["what"]
                );
            }
            assert_eq!(a["status"], Value::Null, "the paper gives no status");
        }
        let got_impact = got["impact"].as_array().unwrap();
        let want_impact = want["impact"].as_array().unwrap();
        assert_eq!(
            got_impact.len(),
            want_impact.len(),
            "{name}: impact to date"
        );
        for (i, w) in got_impact.iter().zip(want_impact) {
            assert_eq!(i["text"], w["text"]);
            assert_eq!(i["date"], json!("July 2017"));
        }
        actions += got_actions.len();
        impact += got_impact.len();
    }
    assert_eq!((actions, impact), (34, 21));

    let reviews = plan["reviews"].as_array().unwrap();
    assert_eq!(
        reviews.len(),
        3,
        "July, November (HTs) and 14 November (JCC)"
    );
    assert_eq!(reviews[0]["date"], json!("2017-07-11"));
    assert_eq!(reviews[0]["by"], json!("the HTs and members of the JCC"));
    assert_eq!(reviews[1]["date"], json!("November 2017"));
    assert_eq!(reviews[2]["date"], json!("2017-11-14"));
    for (got, want) in reviews.iter().zip(seed["reviews"].as_array().unwrap()) {
        let signatures = got["signatures"].as_array().unwrap();
        let wanted = want["signatures"].as_array().unwrap();
        assert_eq!(signatures.len(), wanted.len());
        for (s, w) in signatures.iter().zip(wanted) {
            assert_eq!(s["name"], w["name"]);
            assert_eq!(s["school"], w["school"]);
            assert!(
                ["headteacher", "chair of governors"].contains(&text(&s["role"])),
                "{s}"
            );
            assert_eq!(s["heads"], got["heads"], "each signed the imported version");
        }
    }
    assert_eq!(reviews[0]["signatures"][3]["name"], json!("Kevin Snow"));
    assert_eq!(
        reviews[0]["signatures"][3]["role"],
        json!("chair of governors")
    );

    // The export gives the file back.
    let exported = school.ok(&["export", &plan_url, "--format", "json"]);
    let exported = PlanFile::from_json(&exported).unwrap();
    let original = PlanFile::from_json(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(exported.normalised(), original.normalised());

    // The partnership lists its schools and the plan.
    let partnership = json_of(&school.ok(&["view", &partnership_url, "--json"]));
    let schools: Vec<&str> = partnership["schools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| text(&s["name"]))
        .collect();
    assert_eq!(schools, vec![BANK_ROAD, WILLIAM_LILLEY]);
    assert_eq!(partnership["documents"][0]["url"], json!(plan_url));
    assert_eq!(partnership["documents"][0]["kind"], json!("action-plan"));

    // What governors get: print-ready HTML, Markdown and CSV with every
    // signature and the version it signed.
    let html_path = root.path().join("plan.html");
    school.ok(&[
        "export",
        &plan_url,
        "--format",
        "html",
        "--output",
        html_path.to_str().unwrap(),
    ]);
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.contains("@media print") && html.contains("Andy Hitchcock"));
    let version = &text(&reviews[0]["heads"][0])[..8];
    assert!(html.contains(version), "the version signed is printed");
    let markdown = school.ok(&["export", &plan_url, "--format", "markdown"]);
    assert!(markdown.contains("### Combined SIP priorities (2017-2018)"));
    assert!(markdown.contains("| Sally Beardsley | Headteacher |"));
    let csv = school.ok(&["export", &plan_url, "--format", "csv"]);
    assert_eq!(
        csv.lines().filter(|l| l.starts_with("Signature,")).count(),
        10
    );

    // A readable table in the terminal.
    let shown = school.ok(&["view", &plan_url]);
    assert!(shown.contains("■ Pupil Premium"), "{shown}");
    assert!(shown.contains("Tuesday 23 January 2018"), "{shown}");
}

fn sync_all(schools: &[&School]) {
    // Two rounds: the second carries what others sent after each school's
    // first sync.
    for _ in 0..2 {
        for school in schools {
            school.sync();
        }
    }
}

#[test]
fn two_schools_edit_one_plan_offline_and_merge_through_the_relay() {
    let root = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&root.path().join("relay"), &[]);
    let a = School::init(root.path(), BANK_ROAD, &relay);
    let b = School::init(root.path(), WILLIAM_LILLEY, &relay);
    let a_as = |args: &[&str]| {
        let mut all = vec!["--as", "Carole Clemens"];
        all.extend_from_slice(args);
        a.ok(&all).trim().to_string()
    };
    let b_as = |args: &[&str]| {
        let mut all = vec!["--as", "Sally Beardsley"];
        all.extend_from_slice(args);
        b.ok(&all).trim().to_string()
    };

    let partnership = a_as(&["new", "partnership", "--title", "BR and WL collaboration"]);
    a_as(&[
        "partnership",
        "add-school",
        &partnership,
        "--name",
        BANK_ROAD,
        "--phase",
        "infant",
    ]);
    let plan = a_as(&[
        "new",
        "action-plan",
        "--title",
        "Action plan 2017-18",
        "--partnership",
        &partnership,
    ]);
    let area = a_as(&[
        "row",
        "add",
        &plan,
        "areas",
        "name=Safeguarding",
        "links=1, 2, 5, 10",
        "timeline=Autumn 2017",
    ]);
    let action = a_as(&[
        "row",
        "add",
        &plan,
        "actions",
        "--in",
        &area,
        "what=Peer review of safeguarding arrangements",
        "notes=Notes:",
    ]);
    a.sync();

    // The partner finds everything from the partnership document alone.
    b.ok(&["open", &partnership]);
    b.sync();
    let listed = json_of(&b.ok(&["view", &partnership, "--json"]));
    assert_eq!(listed["documents"][0]["url"], json!(plan));
    let opened = b.ok(&["partnership", "open-all", &partnership]);
    assert!(opened.contains("1 document will be fetched"), "{opened}");
    b.sync();
    assert!(b.has(&plan));

    // Offline, the same week.
    a_as(&["plan", "status", &plan, &action, "amber"]);
    b_as(&["plan", "status", &plan, &action, "green"]);
    a_as(&[
        "type",
        &plan,
        "notes",
        "--row",
        &action,
        "--append",
        " Took place 25 April.",
    ]);
    b_as(&[
        "type",
        &plan,
        "notes",
        "--row",
        &action,
        "--insert-at",
        "0",
        "--text",
        "[WL] ",
    ]);
    a_as(&[
        "row",
        "add",
        &plan,
        "actions",
        "--in",
        &area,
        "what=Safeguarding governors compare audits",
    ]);
    b_as(&[
        "row",
        "add",
        &plan,
        "actions",
        "--in",
        &area,
        "what=Share CP and safeguarding posters",
    ]);
    b_as(&[
        "partnership",
        "add-school",
        &partnership,
        "--name",
        WILLIAM_LILLEY,
        "--joined",
        "Autumn 2016",
    ]);
    let memorandum = a_as(&[
        "new",
        "memorandum",
        "--title",
        "Memorandum of understanding",
        "--partnership",
        &partnership,
    ]);
    sync_all(&[&a, &b]);

    let at_a = json_of(&a.ok(&["view", &plan, "--json"]));
    let at_b = json_of(&b.ok(&["view", &plan, "--json"]));
    assert_eq!(at_a, at_b, "both schools hold the same plan");
    let actions = at_a["areas"][0]["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 3, "both schools' new actions are kept");
    assert_eq!(
        actions[0]["notes"],
        json!("[WL] Notes: Took place 25 April."),
        "both schools' typing is kept"
    );
    let conflicts = at_a["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    let mut who_set_what: Vec<(String, String, String)> = conflicts[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                text(&v["text"]).to_string(),
                text(&v["school"]).to_string(),
                text(&v["person"]).to_string(),
            )
        })
        .collect();
    who_set_what.sort();
    assert_eq!(
        who_set_what,
        vec![
            ("amber".into(), BANK_ROAD.into(), "Carole Clemens".into()),
            (
                "green".into(),
                WILLIAM_LILLEY.into(),
                "Sally Beardsley".into()
            ),
        ]
    );
    let said = a.ok(&["conflicts", &plan]);
    assert!(
        said.contains("“amber” set by Carole Clemens")
            && said.contains("“green” set by Sally Beardsley"),
        "{said}"
    );

    let joined = json_of(&a.ok(&["view", &partnership, "--json"]));
    assert_eq!(joined["schools"].as_array().unwrap().len(), 2);
    let urls: Vec<&str> = joined["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| text(&d["url"]))
        .collect();
    assert!(urls.contains(&plan.as_str()) && urls.contains(&memorandum.as_str()));

    // William Lilley resolves it; Bank Road sees the choice.
    b_as(&["resolve", &plan, "status", "green", "--row", &action]);
    sync_all(&[&b, &a]);
    let resolved = json_of(&a.ok(&["view", &plan, "--json"]));
    assert_eq!(resolved["conflicts"], json!([]));
    assert_eq!(resolved["areas"][0]["actions"][0]["status"], json!("green"));

    // History names both schools and people.
    let history = json_of(&a.ok(&["history", &plan, "--json"]));
    let people: Vec<&str> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| text(&e["person"]))
        .collect();
    assert!(people.contains(&"Carole Clemens") && people.contains(&"Sally Beardsley"));
}

#[test]
fn a_signed_review_keeps_its_version_and_the_changes_since_are_shown() {
    let root = tempfile::tempdir().unwrap();
    let a = School::offline(root.path(), BANK_ROAD);
    let plan = a.ok(&["new", "plan", "--title", "Plan"]).trim().to_string();
    let area = a
        .ok(&["row", "add", &plan, "areas", "name=Parents"])
        .trim()
        .to_string();
    let action = a
        .ok(&[
            "row",
            "add",
            &plan,
            "actions",
            "--in",
            &area,
            "what=Send summary reports",
            "status=amber",
        ])
        .trim()
        .to_string();
    let minutes = a
        .ok(&[
            "row",
            "add",
            &plan,
            "actions",
            "--in",
            &area,
            "what=Post JCC minutes in the foyers",
        ])
        .trim()
        .to_string();
    let review = a
        .ok(&[
            "--as",
            "Carole Clemens",
            "review",
            "record",
            &plan,
            "--date",
            "11th July 2017",
            "--by",
            "the HTs and members of the JCC",
            "--sign",
            "Carole Clemens; Head Teacher",
            "--sign",
            "; chair of governors",
        ])
        .trim()
        .to_string();
    a.ok(&[
        "--as",
        "Andy Hitchcock",
        "plan",
        "status",
        &plan,
        &action,
        "done",
    ]);
    a.ok(&["row", "remove", &plan, &minutes]);

    let signed = json_of(&a.ok(&["view", &plan, "--review", &review, "--json"]));
    assert_eq!(signed["areas"][0]["actions"][0]["status"], json!("amber"));
    let now = json_of(&a.ok(&["view", &plan, "--json"]));
    assert_eq!(now["areas"][0]["actions"][0]["status"], json!("done"));
    assert!(now["areas"][0]["actions"][1]["removed"].is_object());
    assert!(signed["areas"][0]["actions"][1]["removed"].is_null());

    let changes = a.ok(&["changes", &plan, "--since", "11 July 2017"]);
    assert!(changes.contains("Status: “amber” → “done”"), "{changes}");
    assert!(
        changes.contains("Removed area “Parents” › action “Post JCC minutes in the foyers”"),
        "{changes}"
    );
    let changes = json_of(&a.ok(&["changes", &plan, "--since", &review, "--json"]));
    assert_eq!(
        changes["differences"].as_array().unwrap().len(),
        2,
        "{changes}"
    );
    // Recording the review, the new status, the removal: each change
    // names the person at this school who made it.
    let who: Vec<(&str, &str)> = changes["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (text(&e["person"]), text(&e["message"])))
        .collect();
    assert_eq!(
        who,
        vec![
            ("Carole Clemens", "recorded the review of 11th July 2017"),
            (
                "Andy Hitchcock",
                &format!("set status of action {} to done", &action[..8])
            ),
            ("Andy Hitchcock", &format!("removed row {}", &minutes[..8])),
        ]
    );

    let listed = a.ok(&["review", "list", &plan]);
    assert!(
        listed.contains("Signed: Chair of governors (name not recorded), Bank Road"),
        "{listed}"
    );
    let later = a.ok(&[
        "review",
        "sign",
        &plan,
        &review,
        "--name",
        "Andy Hitchcock",
        "--role",
        "chair",
    ]);
    assert!(
        later.contains("Signed by Andy Hitchcock, chair of governors"),
        "{later}"
    );
}

#[test]
fn mistakes_are_explained_in_sentences_that_say_what_to_do() {
    let root = tempfile::tempdir().unwrap();
    let a = School::offline(root.path(), BANK_ROAD);
    let plan = a
        .ok(&["new", "action-plan", "--title", "Plan"])
        .trim()
        .to_string();
    let area = a
        .ok(&["row", "add", &plan, "areas", "name=CPD"])
        .trim()
        .to_string();

    let said = a.fails(&["put", &plan, "timeline", "31 February 2018", "--row", &area]);
    assert!(said.contains("February 2018 has 28 days"), "{said}");
    let said = a.fails(&["put", &plan, "timeline", "Spring 3", "--row", &area]);
    assert!(said.contains("a term has two halves"), "{said}");
    let said = a.fails(&["row", "add", &plan, "actions", "what=Share CPD"]);
    assert!(said.contains("say which with --in"), "{said}");
    let said = a.fails(&["plan", "status", &plan, "ffffffff", "green"]);
    assert!(said.contains("there is no row “ffffffff”"), "{said}");
    let said = a.fails(&["new", "minutes", "--title", "x"]);
    assert!(
        said.contains("is not a kind of document: use partnership"),
        "{said}"
    );
    let plain = a.create("Plain notes");
    let said = a.fails(&["view", &plain]);
    assert!(said.contains("partnerplan new"), "{said}");
    let said = a.fails(&["export", &plan, "--format", "pdf"]);
    assert!(said.contains("use markdown, html, csv or json"), "{said}");

    let bad = root.path().join("bad.json");
    let mut plan_file: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture()).unwrap()).unwrap();
    plan_file["areas"][2]["actions"][3]["reviewDate"] = json!("31 November 2017");
    std::fs::write(&bad, plan_file.to_string()).unwrap();
    let said = a.fails(&["import", bad.to_str().unwrap()]);
    assert!(
        said.contains("areas[2] (Staff).actions[3].reviewDate")
            && said.contains("November 2017 has 30 days"),
        "{said}"
    );
    std::fs::write(&bad, "{\"title\": \"not a plan\"}").unwrap();
    let said = a.fails(&["import", bad.to_str().unwrap()]);
    assert!(
        said.contains("not a partnerplan action plan file"),
        "{said}"
    );

    // Every read command speaks JSON when asked.
    for args in [
        vec!["view", plan.as_str(), "--json"],
        vec!["conflicts", plan.as_str(), "--json"],
        vec!["history", plan.as_str(), "--json"],
        vec!["review", "list", plan.as_str(), "--json"],
    ] {
        json_of(&a.ok(&args));
    }
}

#[test]
fn every_kind_of_document_can_be_created_filled_and_read() {
    let root = tempfile::tempdir().unwrap();
    let a = School::offline(root.path(), BANK_ROAD);
    let partnership = a
        .ok(&["new", "partnership", "--title", "Tenterden Rural Alliance"])
        .trim()
        .to_string();
    a.ok(&["put", &partnership, "partnershipKind", "alliance"]);
    a.ok(&["put", &partnership, "budgetHolder", "Tenterden Junior"]);
    a.ok(&["put", &partnership, "term", "two years"]);
    a.ok(&["put", &partnership, "noticePeriod", "one term"]);
    a.ok(&[
        "partnership",
        "add-school",
        &partnership,
        "--name",
        "Repton Manor",
        "--phase",
        "primary",
        "--joined",
        "September 2013",
    ]);
    // (kind, a table of it, one row as the seeds would fill it)
    let kinds: [(&str, &str, &[&str]); 8] = [
        (
            "principles",
            "principles",
            &["text=Commit to a common set of values and goals"],
        ),
        (
            "memorandum",
            "signatures",
            &[
                "school=Repton Manor",
                "headteacher=A. Head",
                "date=1 September 2013",
            ],
        ),
        (
            "aims-audit",
            "aims",
            &[
                "aim=Collaboration has effective provision for SEND",
                "needs=Training for TAs",
                "whoCanHelp=Maryland Special School",
            ],
        ),
        (
            "partnership-audit",
            "schools",
            &[
                "school=Burford Teaching School",
                "strengths=SLE for maths",
                "needs=Specialist support for pupils with autism",
            ],
        ),
        (
            "audit-analysis",
            "needs",
            &[
                "need=Higher-achieving maths enrichment for Upper key stage 2",
                "provider=SLE for mathematics from Burford Teaching School Alliance",
            ],
        ),
        (
            "action-plan",
            "objectives",
            &[
                "number=1",
                "text=Collaboration has effective SEND provision",
            ],
        ),
        (
            "outcomes",
            "results",
            &[
                "school=Lincolnshire - in a collaboration",
                "year=2014",
                "keyStage=Key Stage 2",
                "inPartnership=yes",
                "pupils=1990",
                "measure=Level 4+ R, W & M",
                "percent=78.3%",
            ],
        ),
        ("progress-report", "", &[]),
    ];
    for (kind, table, values) in kinds {
        let url = a
            .ok(&["new", kind, "--title", kind, "--partnership", &partnership])
            .trim()
            .to_string();
        if table.is_empty() {
            a.ok(&["put", &url, "period", "Spring 2014"]);
            a.ok(&[
                "type",
                &url,
                "strengths",
                "--append",
                "Competition has given way to collaboration.",
            ]);
        } else {
            let mut args = vec!["row", "add", url.as_str(), table];
            args.extend_from_slice(values);
            a.ok(&args);
        }
        let view = json_of(&a.ok(&["view", &url, "--json"]));
        assert_eq!(view["kind"], json!(kind));
        assert_eq!(view["schemaVersion"], json!(2));
        if !table.is_empty() {
            assert_eq!(view[table].as_array().unwrap().len(), 1, "{view}");
        }
        if kind == "outcomes" {
            let result = &view["results"][0];
            assert_eq!(
                (&result["keyStage"], &result["percent"], &result["pupils"]),
                (&json!("KS2"), &json!(78.3), &json!(1990))
            );
        }
        assert!(a.ok(&["view", &url]).contains(kind));
        assert!(
            a.ok(&["export", &url, "--format", "markdown"])
                .starts_with(&format!("# {kind}"))
        );
    }
    let listed = json_of(&a.ok(&["view", &partnership, "--json"]));
    assert_eq!(listed["documents"].as_array().unwrap().len(), 8);
    assert_eq!(listed["partnershipKind"], json!("alliance"));
    assert_eq!(listed["schools"][0]["joined"], json!("September 2013"));
}

#[test]
fn generic_set_and_edit_refuse_a_typed_document_and_leave_its_signatures_alone() {
    let root = tempfile::tempdir().unwrap();
    let school = School::offline(root.path(), BANK_ROAD);
    let plan = school
        .ok(&["new", "action-plan", "--title", "Plan"])
        .trim()
        .to_string();
    school.ok(&[
        "review",
        "record",
        &plan,
        "--date",
        "11 July 2017",
        "--by",
        "the HTs",
        "--sign",
        "Carole Clemens; headteacher",
    ]);
    let before = school.ok(&["history", &plan, "--json"]);

    for args in [
        vec![
            "set",
            plan.as_str(),
            "reviews.0.signatures.0.name",
            "Mallory",
        ],
        vec!["set", plan.as_str(), "status", "purple"],
        vec!["set", plan.as_str(), "schemaVersion", "1"],
        vec!["edit", plan.as_str(), "title", "--append", " (forged)"],
    ] {
        let said = school.fails(&args);
        assert!(
            said.contains("typed partnership document")
                && said.contains("partnerplan put")
                && said.contains("partnerplan type"),
            "{args:?}: {said}"
        );
    }

    let listed = school.ok(&["review", "list", &plan]);
    assert!(
        listed.contains("Signed: Carole Clemens, headteacher, Bank Road"),
        "{listed}"
    );
    assert!(!listed.contains("Mallory"), "{listed}");
    assert_eq!(
        school.ok(&["history", &plan, "--json"]),
        before,
        "nothing was written"
    );

    // A plain document is still the generic commands' to change.
    let plain = school.create("Notes");
    school.ok(&["set", &plain, "status", "purple"]);
    school.ok(&["edit", &plain, "title", "--append", " (draft)"]);
}

/// Writes into a school's copy of a document as a partner school's
/// program might have (another version, or a hostile one), then syncs
/// it in: how odd data reaches a school without going through its own
/// commands.
fn as_a_partner(school: &School, url: &str, edit: impl FnOnce(&mut AutoCommit)) {
    let mut store = Store::open(school.dir.join("school.sqlite")).unwrap();
    let id = DocumentId::parse_url_or_id(url).unwrap();
    store
        .change(
            &id,
            &ActorId::random(),
            Some("a partner's edit".into()),
            |doc| -> Result<(), StoreError> {
                edit(doc);
                Ok(())
            },
        )
        .unwrap();
}

fn object(doc: &AutoCommit, obj: &automerge::ObjId, key: &str) -> automerge::ObjId {
    match doc.get(obj, key).unwrap() {
        Some((Am::Object(_), id)) => id,
        other => panic!("{key} is not an object: {other:?}"),
    }
}

fn item(doc: &AutoCommit, list: &automerge::ObjId, index: usize) -> automerge::ObjId {
    match doc.get(list, index).unwrap() {
        Some((Am::Object(_), id)) => id,
        other => panic!("no item {index}: {other:?}"),
    }
}

#[test]
fn ids_and_versions_that_are_not_plain_ascii_are_shown_without_a_crash() {
    // “a” then “é”s: the eighth byte falls inside a character.
    const ODD: &str = "aéééééééé";
    let root = tempfile::tempdir().unwrap();
    let school = School::offline(root.path(), BANK_ROAD);
    let plan = school
        .ok(&["new", "action-plan", "--title", "Plan"])
        .trim()
        .to_string();
    school.ok(&["row", "add", &plan, "areas", "name=Parents"]);
    school.ok(&[
        "review",
        "record",
        &plan,
        "--date",
        "11 July 2017",
        "--by",
        "the HTs",
        "--sign",
        "Carole Clemens; headteacher",
    ]);

    let said = school.fails(&["put", &plan, "status", "amber", "--row", ODD]);
    assert!(said.contains(&format!("there is no row “{ODD}”")), "{said}");
    let said = school.fails(&["row", "remove", &plan, ODD]);
    assert!(said.contains("there is no row"), "{said}");

    as_a_partner(&school, &plan, |doc| {
        let areas = object(doc, &ROOT, "areas");
        let area = doc.insert_object(&areas, 1, ObjType::Map).unwrap();
        doc.put(&area, "id", ODD).unwrap();
        doc.put(&area, "position", 7.0).unwrap();
        let reviews = object(doc, &ROOT, "reviews");
        let review = item(doc, &reviews, 0);
        doc.put(&review, "id", ODD).unwrap();
        let heads = object(doc, &review, "heads");
        doc.put(&heads, 0, ODD).unwrap();
        let signatures = object(doc, &review, "signatures");
        let signature = item(doc, &signatures, 0);
        let heads = object(doc, &signature, "heads");
        doc.put(&heads, 0, ODD).unwrap();
    });

    let shown = school.ok(&["view", &plan]);
    assert!(shown.contains("aééé"), "{shown}");
    school.ok(&["view", &plan, "--removed"]);
    let listed = school.ok(&["review", "list", &plan]);
    assert!(listed.contains("Carole Clemens"), "{listed}");
    for format in ["markdown", "html", "csv"] {
        school.ok(&["export", &plan, "--format", format]);
    }
}

#[test]
fn a_bad_import_file_names_the_place_and_writes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let school = School::offline(root.path(), BANK_ROAD);
    let plan = school
        .ok(&["new", "action-plan", "--title", "Plan"])
        .trim()
        .to_string();
    let before = school.ok(&["list"]);
    let seed: Value = serde_json::from_str(&std::fs::read_to_string(fixture()).unwrap()).unwrap();
    let bad = root.path().join("bad.json");

    type Spoil = fn(&mut Value);
    let cases: [(Spoil, &[&str]); 5] = [
        (
            |f| f["reviews"][0]["signatures"][0]["school"] = json!(" "),
            &["reviews[0].signatures[0]", "say which school"],
        ),
        (
            |f| f["objectives"][0]["number"] = json!(0),
            &["objectives[0].number", "numbered from 1"],
        ),
        (
            |f| f["objectives"][1]["number"] = json!(1),
            &["objectives[1].number", "objective 1 is given twice"],
        ),
        (
            |f| f["objectives"] = json!([]),
            &[
                "areas[0] (Safeguarding).links",
                "objective 1",
                "no objectives",
            ],
        ),
        (
            |f| f["areas"][1]["links"] = json!([-2]),
            &["areas[1] (Teaching and Learning).links", "numbered from 1"],
        ),
    ];
    for (spoil, said_wanted) in cases {
        let mut file = seed.clone();
        spoil(&mut file);
        std::fs::write(&bad, file.to_string()).unwrap();
        let said = school.fails(&["import", bad.to_str().unwrap()]);
        for wanted in said_wanted {
            assert!(said.contains(wanted), "{wanted}: {said}");
        }
        assert_eq!(school.ok(&["list"]), before, "nothing was written: {said}");
    }

    // A good file, listed in something that is not a partnership.
    let said = school.fails(&[
        "import",
        fixture().to_str().unwrap(),
        "--partnership",
        &plan,
    ]);
    assert!(
        said.contains("not a partnership") && said.contains("--partnership"),
        "{said}"
    );
    assert_eq!(school.ok(&["list"]), before, "nothing was written");
}

#[test]
fn exporting_a_document_from_a_newer_version_warns_that_it_may_be_incomplete() {
    let root = tempfile::tempdir().unwrap();
    let school = School::offline(root.path(), BANK_ROAD);
    let plan = school
        .ok(&["new", "action-plan", "--title", "Plan"])
        .trim()
        .to_string();
    let quiet = school.run(&["export", &plan, "--format", "markdown"]);
    assert!(quiet.status.success() && quiet.stderr.is_empty());
    as_a_partner(&school, &plan, |doc| {
        doc.put(ROOT, "schemaVersion", 99).unwrap();
    });
    for format in ["markdown", "html", "csv", "json"] {
        let out = school.run(&["export", &plan, "--format", format]);
        assert!(out.status.success(), "{format}");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            said.contains("newer partnerplan (schema version 99")
                && said.contains("Update partnerplan"),
            "{format}: {said}"
        );
    }
}

#[test]
fn a_review_whose_version_cannot_be_read_says_so() {
    let root = tempfile::tempdir().unwrap();
    let school = School::offline(root.path(), BANK_ROAD);
    let plan = school
        .ok(&["new", "action-plan", "--title", "Plan"])
        .trim()
        .to_string();
    for date in ["1 July 2017", "2 July 2017", "3 July 2017"] {
        school.ok(&["review", "record", &plan, "--date", date, "--by", "the HTs"]);
    }
    as_a_partner(&school, &plan, |doc| {
        let reviews = object(doc, &ROOT, "reviews");
        let spoilt: [&[&str]; 3] = [&[], &["not a version"], &[&"0".repeat(64)]];
        for (i, heads) in spoilt.iter().enumerate() {
            let review = item(doc, &reviews, i);
            let list = doc.put_object(&review, "heads", ObjType::List).unwrap();
            for (j, head) in heads.iter().enumerate() {
                doc.insert(&list, j, *head).unwrap();
            }
        }
    });
    for date in ["1 July 2017", "2 July 2017", "3 July 2017"] {
        for args in [
            vec!["view", plan.as_str(), "--review", date],
            vec!["changes", plan.as_str(), "--since", date],
        ] {
            let said = school.fails(&args);
            assert!(
                said.contains("cannot be read")
                    && !said.contains("not one of the partnership documents"),
                "{args:?}: {said}"
            );
        }
    }
    school.ok(&["view", &plan]);
    school.ok(&["review", "list", &plan]);
}
