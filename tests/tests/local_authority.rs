//! The local authority's view end to end: a real relay with eight
//! partnerships of seed 001, each with its lead school, and one local
//! authority that views them all with one token; its app in Debian's
//! headless Chromium (tests/browser/local_authority.mjs).

use std::path::{Path, PathBuf};

use partnerplan_tests::app::{AppProcess, scenario, screenshots_dir};
use partnerplan_tests::{RelayProcess, School};

fn county_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/county")
        .join(name)
}

/// The eight collaboratives: relay name (the paper's), the school that
/// joins for it, and its fixture. The paper names no school of Samphire
/// Hub, so the test gives it one.
const PARTNERSHIPS: [(&str, &str, &str); 8] = [
    (
        "Central Ashford Town Schools (CATS)",
        "Willesborough Junior",
        "kent-2013-cats.json",
    ),
    ("ACE", "Hamstreet Primary", "kent-2013-ace.json"),
    ("EAS Hub", "Downs View Infant", "kent-2013-eas-hub.json"),
    (
        "Tenterden Rural Alliance",
        "Tenterden Junior",
        "kent-2013-tenterden.json",
    ),
    (
        "Coastal Alliance",
        "Herne Bay High",
        "kent-2013-coastal-alliance.json",
    ),
    ("RAiD", "Priory Fields", "kent-2013-raid.json"),
    (
        "Samphire Hub Action Plan",
        "A Samphire Hub school",
        "kent-2013-samphire-hub.json",
    ),
    (
        "Sandwich Consortium",
        "Eastry",
        "kent-2013-sandwich-consortium.json",
    ),
];

const LA: &str = "Kent County Council";

/// The URL `import` printed for the document of `kind`.
fn url_of(out: &str, kind: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{kind}: ")))
        .unwrap_or_else(|| panic!("import printed no {kind}: {out}"))
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn the_local_authority_reads_every_partnership_it_views() {
    let root = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&root.path().join("relay"), &[]);

    // The local authority's own partnership, where it writes its own
    // documents; then a viewer of each of the eight with the same token.
    let la_invite = relay
        .invite(LA, LA, "member")
        .expect("the local authority is new to the relay");
    let mut schools = Vec::new();
    for (partnership, school, _) in PARTNERSHIPS {
        let invite = relay
            .invite(partnership, school, "member")
            .expect("each lead school is new");
        assert_eq!(
            relay.invite(partnership, LA, "viewer"),
            None,
            "the local authority keeps its one token for every partnership"
        );
        schools.push(School::join(root.path(), school, &invite));
    }
    let listed = relay.admin_ok(&["school", "list", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let la = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == LA)
        .expect("the local authority is registered");
    assert_eq!(
        la["partnerships"].as_array().map(Vec::len),
        Some(9),
        "its own partnership and the eight it views: {la}"
    );

    // Seven lead schools share their partnership and their Spring 2013
    // report; Sandwich Consortium's comes later in the scenario.
    let mut partnership_urls = Vec::new();
    for (i, (_, _, fixture)) in PARTNERSHIPS.iter().enumerate().take(7) {
        let school = &schools[i];
        let out = school.ok(&[
            "--as",
            "Lead headteacher",
            "import",
            county_fixture(fixture).to_str().unwrap(),
        ]);
        partnership_urls.push(url_of(&out, "Partnership"));
    }
    // Test data the papers do not give: funding for two partnerships, and
    // an action plan for CATS with a signed review.
    schools[0].ok(&["put", &partnership_urls[0], "funding", "£51,000"]);
    schools[5].ok(&["put", &partnership_urls[5], "funding", "£38,500"]);
    let plan_file = root.path().join("cats-plan.json");
    std::fs::write(
        &plan_file,
        serde_json::json!({
            "format": "partnerplan-documents",
            "version": 1,
            "source": "Test data: seed 001 gives no action plan.",
            "documents": [{
                "kind": "action-plan",
                "title": "CATS action plan 2012-2013",
                "fields": {"period": "2012-2013", "overridingObjective": "Raise the rate of progress of more able pupils."},
                "tables": {"areas": [{"name": "Writing", "actions": [
                    {"what": "Moderate writing across all year groups", "status": "red", "reviewDate": "Spring 2013"},
                    {"what": "Learning walks between the schools", "status": "amber", "reviewDate": "Summer 2040"},
                    {"what": "A joint development day", "status": "done", "reviewDate": "Autumn 2012"}
                ]}]}
            }]
        })
        .to_string(),
    )
    .unwrap();
    let out = schools[0].ok(&[
        "--as",
        "Lead headteacher",
        "import",
        plan_file.to_str().unwrap(),
        "--partnership",
        &partnership_urls[0],
    ]);
    let plan = url_of(&out, "Partnership action plan");
    schools[0].ok(&[
        "review",
        "record",
        &plan,
        "--date",
        "11 March 2013",
        "--by",
        "the headteachers",
        "--sign",
        "Ann Head; headteacher; Willesborough Junior",
    ]);
    for school in schools.iter().take(7) {
        school.sync();
    }

    // The local authority joins, and keeps its own figures (seed 002's
    // schools not in a partnership among them) in its own partnership.
    let la = School::join(root.path(), LA, &la_invite);
    la.ok(&[
        "--as",
        "Data officer",
        "import",
        county_fixture("lincolnshire-2014-outcomes.json")
            .to_str()
            .unwrap(),
    ]);
    let app = AppProcess::start(&la);
    let shots = screenshots_dir();
    std::fs::create_dir_all(&shots).unwrap();
    let late = &schools[7];
    scenario(
        "local_authority.mjs",
        &[
            &app.url,
            county_fixture("").to_str().unwrap(),
            partnerplan_tests::client_binary().to_str().unwrap(),
            late.dir.to_str().unwrap(),
            shots.to_str().unwrap(),
        ],
    );

    // The command line beside the app refuses the same: a local authority
    // is a member of its own partnership, yet changes none it views.
    let refused = la.fails(&["put", &partnership_urls[5], "funding", "£1"]);
    assert!(refused.contains("can read"), "{refused}");
    let refused = la.fails(&[
        "import",
        county_fixture("kent-2013-raid.json").to_str().unwrap(),
        "--partnership",
        &partnership_urls[5],
    ]);
    assert!(refused.contains("can read"), "{refused}");

    // The local authority's own documents (its figures, its comments)
    // reach a partnership's school once the lead school adds it as a
    // viewer of the local authority's partnership, with its one token.
    assert_eq!(relay.invite(LA, PARTNERSHIPS[5].1, "viewer"), None);
    let raid = &schools[5];
    raid.sync();
    let list = raid.ok(&["list", "--json"]);
    assert!(
        list.contains("Key stage outcomes 2014, schools in and not in a collaboration"),
        "{list}"
    );
}
