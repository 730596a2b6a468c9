// A local authority officer's app, viewer of eight partnerships with one
// token: the overview with its filters, the county table reproducing seed
// 001's rows (and a partnership with no report this term shown as
// missing, until its report arrives), the outcomes reproducing seed 002's
// figures, the funding and its total, the exports and print, and nothing
// of a partnership's it may change.
// node local_authority.mjs APP FIXTURES CLIENT_BINARY LATE_SCHOOL_DIR SCREENSHOT_DIR
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { check, checkAccessibility, eventually, newPage, scenario } from "./lib.mjs";

const [app, fixtures, client, lateDir, shots] = process.argv.slice(2);
const cli = (dir, args) => execFileSync(client, ["--data", dir, ...args], { encoding: "utf8", timeout: 60_000 });

// Seed 001's rows, as transcribed: district, collaborative, lead school(s)
// and the areas for further development.
const files = [
  "kent-2013-cats.json", "kent-2013-ace.json", "kent-2013-eas-hub.json", "kent-2013-tenterden.json",
  "kent-2013-coastal-alliance.json", "kent-2013-raid.json", "kent-2013-samphire-hub.json", "kent-2013-sandwich-consortium.json",
];
const seedRows = files.map((f) => {
  const docs = JSON.parse(readFileSync(join(fixtures, f), "utf8")).documents;
  const partnership = docs.find((d) => d.kind === "partnership");
  const report = docs.find((d) => d.kind === "progress-report");
  return [partnership.fields.district, report.fields.collaborative, report.fields.leadSchool, report.fields.development];
});

// The table's rows as a person reads them: each cell's text.
async function tableRows(page, selector) {
  return await page.locator(selector + " tbody tr").evaluateAll((rows) =>
    rows.map((r) => [...r.children].map((c) => c.innerText.trim())));
}

async function choose(page, label, option) {
  await page.getByLabel(label, { exact: true }).selectOption({ label: option });
}

await scenario("local authority", async (browser) => {
  const page = await newPage(browser);

  // The home page is the overview; every partnership arrives by itself.
  await page.goto(app);
  await page.getByRole("heading", { name: "Partnerships you view", level: 1 }).waitFor();
  await eventually(async () => {
    await page.reload();
    return (await page.locator("table.overview tbody tr").count()) === 8
      && (await page.locator("table.overview").innerText()).includes("Samphire Hub Action Plan");
  }, "eight partnerships are listed", 60_000).catch(async (e) => {
    throw new Error(e.message + "; the page says: " + (await page.locator("main").innerText()));
  });
  await page.getByText(/Shared with partners|Receiving \d+ of \d+ documents/).waitFor();

  // This term's reports: the overview asks about the term chosen.
  await choose(page, "Term of the progress report", "Spring 2013");
  await page.getByRole("button", { name: "Show" }).click();
  await page.getByText("Progress reports for Spring 2013: 7 in, 1 missing.").waitFor();
  const overview = await tableRows(page, "table.overview");
  const row = (name) => overview.find((r) => r[0] === name);
  check(row("Sandwich Consortium")?.[8] === "Missing", "Sandwich Consortium's report is missing: " + JSON.stringify(row("Sandwich Consortium")));
  check(row("RAiD")[8] === "In" && row("RAiD")[1] === "Dover", "RAiD's is in: " + JSON.stringify(row("RAiD")));
  check(row("RAiD")[2].includes("Priory Fields") && row("RAiD")[2].includes("Budget holder: Priory Fields"), "leads and budget holder: " + row("RAiD")[2]);
  check(row("RAiD")[7] === "Spring 2013", "the latest report's period: " + row("RAiD")[7]);
  const cats = row("Central Ashford Town Schools (CATS)");
  check(cats[4].includes("1 red") && cats[4].includes("1 amber") && cats[4].includes("1 done"), "CATS's actions by status: " + cats[4]);
  check(cats[5] === "1", "one action is past its review date: " + cats[5]);
  check(cats[6] === "Monday 11 March 2013", "the last signed review: " + cats[6]);
  check(row("Tenterden Rural Alliance")[3].startsWith("1 school"), "member schools: " + row("Tenterden Rural Alliance")[3]);
  await checkAccessibility(page, "the overview");
  await page.screenshot({ path: `${shots}/la-overview.png`, fullPage: true });
  await page.evaluate(() => window.dispatchEvent(new Event("beforeprint")));
  check((await page.locator("table.overview details[open]").count()) === 6, "printed, every member school is listed");

  // Filters: report missing; a district; a status; sorting.
  await page.getByLabel("Only those whose report is missing").check();
  await page.getByRole("button", { name: "Show" }).click();
  await page.getByText("Showing 1 partnership.").waitFor();
  check((await tableRows(page, "table.overview"))[0][0] === "Sandwich Consortium", "only the missing one");
  await page.getByLabel("Only those whose report is missing").uncheck();
  await choose(page, "District", "Dover");
  await page.getByRole("button", { name: "Show" }).click();
  // Sandwich Consortium has shared nothing yet, so no district either.
  await page.getByText("Showing 2 partnerships.").waitFor();
  const dover = (await tableRows(page, "table.overview")).map((r) => r[0]);
  check(JSON.stringify(dover) === JSON.stringify(["RAiD", "Samphire Hub Action Plan"]), "Dover's: " + dover);
  await choose(page, "District", "All districts");
  await choose(page, "With actions that are", "Red");
  await page.getByRole("button", { name: "Show" }).click();
  await page.getByText("Showing 1 partnership.").waitFor();
  await choose(page, "With actions that are", "Any status");
  await choose(page, "Sort by", "District");
  await page.getByRole("button", { name: "Show" }).click();
  const byDistrict = (await tableRows(page, "table.overview")).map((r) => r[1]);
  const known = byDistrict.filter((d) => d !== "—");
  check(JSON.stringify(known) === JSON.stringify([...known].sort()) && byDistrict.at(-1) === "—",
    "sorted by district, a partnership with none last: " + byDistrict);

  // Nothing of a partnership's can be changed here.
  await page.getByRole("link", { name: "RAiD", exact: true }).click();
  await page.getByText("You can read this document.").waitFor();
  check((await page.getByRole("textbox").count()) === 0, "no text box on a partnership's document");

  // The county table for Spring 2013: seed 001's rows, and Sandwich
  // Consortium's missing.
  await page.goto(app + "county");
  await page.getByRole("heading", { name: "County table", level: 1 }).waitFor();
  await choose(page, "Reports", "For Spring 2013");
  await page.getByRole("button", { name: "Show" }).click();
  await page.getByText("1 partnership has no report for this term.").waitFor();
  let county = await tableRows(page, "table.county");
  for (const [district, collaborative, lead, development] of seedRows.slice(0, 7)) {
    const found = county.find((r) => r[1] === collaborative);
    check(found, "the county table has " + collaborative);
    check(found[0] === district && found[2] === lead, `${collaborative}: ${JSON.stringify(found.slice(0, 3))}`);
    check(found[3] === development, `${collaborative}'s areas for further development, as the paper has them:\n${found[3]}\n---\n${development}`);
    check(found[4] === "Spring 2013", collaborative + "'s report period");
  }
  const sandwich = county.find((r) => r[1] === "Sandwich Consortium");
  check(sandwich && sandwich[3] === "No report", "Sandwich Consortium shows as missing: " + JSON.stringify(sandwich));
  await checkAccessibility(page, "the county table");

  // Exported as CSV and as Markdown, with the same rows.
  const exported = await page.evaluate(async () => {
    const csv = await (await fetch("/county.csv?question=development&term=Spring+2013")).text();
    const md = await (await fetch("/county.md?question=development&term=Spring+2013")).text();
    return { csv, md };
  });
  check(exported.csv.startsWith("District,Collaborative,Lead school(s),Areas for further development as a collaborative,Report\n"), "CSV header: " + exported.csv.slice(0, 120));
  check(exported.csv.includes("Dover,RAiD,Priory Fields (budget holder),\"Further development for groups of staff"), "a CSV row");
  check(exported.md.includes("| Ashford | ACE | Hamstreet Primary | In light of new curriculum many areas for development will be linked to this:<br>Moderation of writing"), "a Markdown row");

  // Sandwich Consortium's report arrives: the open table shows it.
  cli(lateDir, ["--as", "Eastry headteacher", "import", join(fixtures, "kent-2013-sandwich-consortium.json")]);
  cli(lateDir, ["sync", "--timeout", "60"]);
  await eventually(async () => {
    const rows = await tableRows(page, "table.county");
    const s = rows.find((r) => r[1] === "Sandwich Consortium");
    return s && s[3] === seedRows[7][3];
  }, "the late report appears on the open page", 30_000);
  county = await tableRows(page, "table.county");
  const districts = county.map((r) => r[0]);
  check(JSON.stringify(districts) === JSON.stringify([...districts].sort()), "by district, as the paper: " + districts);
  for (const [district, collaborative, lead, development] of seedRows) {
    check(county.some((r) => r[0] === district && r[1] === collaborative && r[2] === lead && r[3] === development), "seed 001's row for " + collaborative);
  }
  await page.screenshot({ path: `${shots}/la-county.png`, fullPage: true });

  // Strengths: the papers give none, so each says so.
  await choose(page, "Question", "Strengths so far as a collaborative");
  await page.getByRole("button", { name: "Show" }).click();
  await page.getByRole("columnheader", { name: "Strengths so far as a collaborative" }).waitFor();
  check((await tableRows(page, "table.county")).every((r) => r[3] === "Not answered"), "strengths not answered");

  // Printable: the print layout has no controls.
  await page.emulateMedia({ media: "print" });
  check(!(await page.locator("form.filters").isVisible()) && !(await page.locator("nav.la-nav").isVisible()), "print shows no filters or links");
  check(await page.locator("table.county").isVisible(), "the table prints");
  await page.emulateMedia({ media: "screen" });

  // Outcomes: seed 002's figures, the line for all schools computed.
  await page.getByRole("link", { name: "Outcomes" }).click();
  await page.getByRole("heading", { name: "Outcomes in and not in a partnership" }).waitFor();
  const ks1 = await tableRows(page, "table.outcomes:nth-of-type(1)");
  const ks2 = await tableRows(page, "table.outcomes:nth-of-type(2)");
  const expect = (rows, wanted, what) => check(JSON.stringify(rows) === JSON.stringify(wanted), `${what}:\n${JSON.stringify(rows)}\n${JSON.stringify(wanted)}`);
  expect(ks1, [
    ["In a partnership", "132", "2,174", "85.4%", "68.1%", "12.3%"],
    ["Not in a partnership", "132", "5,250", "83.4%", "63.6%", "11.6%"],
    ["All schools", "264", "7,424", "84.0%", "64.9%", "11.8%"],
  ], "key stage 1, 2014");
  expect(ks2, [
    ["In a partnership", "130", "1,990", "78.3%", "66.9%", "23.3%", "0.1%"],
    ["Not in a partnership", "130", "5,064", "78.2%", "66.7%", "22.1%", "0.1%"],
    ["All schools", "260", "7,054", "78.2%", "66.8%", "22.4%", "0.1%"],
  ], "key stage 2, 2014");
  check((await page.locator("table.outcomes caption").allInnerTexts()).join("|") === "Key stage 1, 2014|Key stage 2, 2014", "captions");
  await checkAccessibility(page, "the outcomes");
  const outcomesMd = await page.evaluate(async () => (await fetch("/outcomes.md")).text());
  check(outcomesMd.includes("| All schools | 260 | 7,054 | 78.2% | 66.8% | 22.4% | 0.1% |"), "outcomes as Markdown: " + outcomesMd);
  const outcomesCsv = await page.evaluate(async () => (await fetch("/outcomes.csv")).text());
  check(outcomesCsv.includes("2014,KS1,All schools,264,7424,\"Level 2+ R, W & M\",84.0"), "outcomes as CSV: " + outcomesCsv.slice(0, 300));

  // Funding: what partnerships recorded, and the total.
  await page.getByRole("link", { name: "Funding" }).click();
  await page.getByRole("heading", { name: "Funding", level: 1 }).waitFor();
  await page.getByText("£89,500 to 2 partnerships of 2 schools.").waitFor();
  const funding = await tableRows(page, "table.funding");
  check(funding.some((r) => r[1] === "RAiD" && r[3] === "£38,500"), "RAiD's funding: " + JSON.stringify(funding));
  check(funding.some((r) => r[1] === "ACE" && r[3] === "Not recorded"), "ACE has none recorded");
  check((await page.locator("table.funding tfoot").innerText()).includes("£89,500"), "the total");
  await checkAccessibility(page, "the funding");
  const fundingCsv = await page.evaluate(async () => (await fetch("/funding.csv")).text());
  check(fundingCsv.includes(",Total (2 partnerships),2,\"£89,500\""), "funding as CSV: " + fundingCsv);

  // The local authority's own document is its own to change.
  await page.getByRole("link", { name: "All documents" }).click();
  await page.getByRole("link", { name: "Key stage outcomes 2014, schools in and not in a collaboration" }).click();
  await page.getByRole("heading", { name: "Key stage outcomes 2014, schools in and not in a collaboration" }).waitFor();
  check((await page.getByRole("textbox").count()) > 0, "its own outcomes document can be edited");
  check(page.problems.length === 0, "no script errors: " + page.problems.join("; "));
});
