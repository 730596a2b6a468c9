// The relay's admin pages as the office manager uses them: create a
// partnership, add a school and read its invite once (copy button, QR
// code), the school joins with nothing but that invite and syncs, the
// page shows it connected with its client's version and its document,
// a new invite cuts the old one, a role changes, the school is removed.
// node admin.mjs RELAY_HTTP CLIENT_BINARY ROOT_DIR SCREENSHOT_DIR
import { execFileSync, spawn } from "node:child_process";
import { check, checkAccessibility, eventually, newPage, scenario } from "./lib.mjs";

const [relay, client, root, shots] = process.argv.slice(2);
const cli = (dir, args) => execFileSync(client, ["--data", dir, ...args], { encoding: "utf8", timeout: 60_000 });
const PARTNERSHIP = "Bank Road and William Lilley collaboration";
const SCHOOL = "Bank Road Infant and Nursery School";
const GOVERNORS = "Kent County Council governors";
const watchers = [];

await scenario("admin", async (browser) => {
  try {
    await run(browser);
  } finally {
    for (const w of watchers) w.kill();
  }
});

async function run(browser) {
  const page = await newPage(browser);
  await page.context().grantPermissions(["clipboard-read", "clipboard-write"], { origin: relay });
  await page.goto(relay + "/admin");
  await page.getByRole("heading", { name: "Your relay" }).waitFor();
  await page.getByText("Working: the relay can read and write it.").waitFor();
  await checkAccessibility(page, "the relay's page, empty");

  // A backup at a click, before anything else: it lands in the relay's
  // backups folder (the test looks), and the page gives its time.
  await page.getByText("None yet.").waitFor();
  await page.getByRole("button", { name: "Back up now" }).click();
  await page.getByRole("status").getByText(/^A backup was made and checked: 0 documents, .* in the folder .*backups\.$/).waitFor();
  check(!(await page.getByText("None yet.").isVisible()), "the page gives the backup's time, not 'None yet'");
  await checkAccessibility(page, "after a backup");

  // A partnership, from the keyboard.
  await page.getByLabel("Name of a new partnership").fill(PARTNERSHIP);
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: PARTNERSHIP, level: 1 }).waitFor();
  await page.getByRole("status").getByText(`${PARTNERSHIP} is created`).waitFor();
  await checkAccessibility(page, "a new partnership");

  // A mistake is explained at the top, linked to its field.
  await page.getByLabel("The school's name, as its partners know it").fill("   ");
  await page.getByRole("button", { name: "Add the school" }).click();
  await page.getByRole("alert").getByText("A name cannot be empty").waitFor();
  await eventually(async () => (await page.evaluate(() => document.activeElement?.id)) === "error-summary", "the keyboard is taken to the mistake");
  await page.keyboard.press("Tab");
  await page.keyboard.press("Enter");
  await eventually(async () => (await page.evaluate(() => document.activeElement?.id)) === "school-name", "the mistake's link leads to its field");
  await checkAccessibility(page, "adding a school, with a mistake");

  // Add the school: its invite, shown once.
  await page.getByLabel("The school's name, as its partners know it").fill(SCHOOL);
  const [inviteResponse] = await Promise.all([
    page.waitForResponse((r) => r.url().includes("/admin/invites/") && r.request().method() === "GET"),
    page.getByRole("button", { name: "Add the school" }).click(),
  ]);
  await page.getByRole("heading", { name: `The invite for ${SCHOOL}` }).waitFor();
  const invite = await page.getByLabel("Invite", { exact: true }).inputValue();
  check(invite.startsWith("ws://") && /&token=pp_[0-9a-f]{64}$/.test(invite), "the invite names the relay and ends with the token: " + invite);
  check(invite.includes("school=Bank%20Road%20Infant%20and%20Nursery%20School"), "the invite names the school: " + invite);
  check(invite.includes("partnership="), "the invite names the partnership: " + invite);
  await page.getByRole("img", { name: `QR code of the invite for ${SCHOOL}` }).waitFor();
  check((await page.locator("figure.qr svg").count()) === 1, "the QR code is drawn");
  await page.getByRole("button", { name: "Copy the invite" }).focus();
  await page.keyboard.press("Enter");
  await page.getByText("Copied.").waitFor();
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  check(copied === invite, "the copy button copies the invite exactly: " + copied);
  await checkAccessibility(page, "the invite");
  await page.screenshot({ path: `${shots}/relay-admin-invite.png`, fullPage: true });
  const token = invite.split("token=")[1];

  // Once: the partnership's page never shows it again.
  await page.getByRole("link", { name: "Back to the partnership" }).click();
  await page.getByRole("heading", { name: PARTNERSHIP, level: 1 }).waitFor();
  check(!(await page.content()).includes(token), "the token is not on the partnership's page");
  // Nor does the browser keep a copy for Back to show.
  check(inviteResponse.headers()["cache-control"] === "no-store", "the invite page is not kept by the browser");

  // A viewer too.
  await page.getByLabel("The school's name, as its partners know it").fill(GOVERNORS);
  await page.getByLabel("Viewer: reads them, never writes").check();
  await page.getByRole("button", { name: "Add the school" }).click();
  await page.getByRole("heading", { name: `The invite for ${GOVERNORS}` }).waitFor();
  await page.getByRole("link", { name: "Back to the partnership" }).click();
  const schoolsTable = page.locator("table.schools");
  await schoolsTable.getByRole("row", { name: new RegExp(GOVERNORS) }).getByText("Viewer: reads only").waitFor();

  // The school joins with the invite alone (its name comes with it), writes a
  // document and syncs.
  const dir = `${root}/bank-road`;
  cli(dir, ["join", invite]);
  const created = cli(dir, ["create", "--title", "Collaboration action plan 2025-2026"]);
  check(created.includes("automerge:"), "the school made a document: " + created);
  cli(dir, ["sync", "--timeout", "60"]);
  await page.reload();
  await page.getByRole("cell", { name: "Collaboration action plan 2025-2026" }).waitFor();
  const docRow = await page.getByRole("row", { name: /Collaboration action plan 2025-2026/ }).innerText();
  check(docRow.includes(SCHOOL) && /just now|minute/.test(docRow) && /(bytes|KB)/.test(docRow), "the document's row: " + docRow);
  const schoolRow = await schoolsTable.getByRole("row", { name: new RegExp(SCHOOL) }).innerText();
  check(/just now|minute/.test(schoolRow), "the school's last sync shows: " + schoolRow);
  await checkAccessibility(page, "the partnership with a school and a document");
  await page.screenshot({ path: `${shots}/relay-admin-partnership.png`, fullPage: true });

  // Connected now, with its client's version.
  const watch = spawn(client, ["--data", dir, "sync", "--watch"], { stdio: "ignore" });
  watchers.push(watch);
  await page.goto(relay + "/admin");
  let seen = "";
  await eventually(async () => {
    await page.reload();
    seen = await page.locator("main").innerText();
    const table = await page.locator("#connected + table").innerText().catch(() => "");
    return table.includes(SCHOOL) && /partnerplan \d+\.\d+\.\d+/.test(table);
  }, "the school shows as connected, with its client", 40_000).catch((e) => {
    throw new Error(`${e.message}; the page said: ${seen}`);
  });
  const schools = await page.getByRole("row", { name: new RegExp(SCHOOL) }).last().innerText();
  check(schools.includes("Connected now"), "the schools table says it is connected: " + schools);
  await checkAccessibility(page, "the relay's page with a school connected");
  await page.screenshot({ path: `${shots}/relay-admin.png`, fullPage: true });

  // A new invite: the old token stops working and its connection is cut.
  await page.getByRole("link", { name: PARTNERSHIP }).click();
  await page.getByRole("button", { name: `New invite for ${SCHOOL}` }).click();
  await page.getByRole("heading", { name: `The invite for ${SCHOOL}` }).waitFor();
  await page.getByText("has a new token: the old one no longer works").waitFor();
  const renewed = await page.getByLabel("Invite", { exact: true }).inputValue();
  check(renewed !== invite && renewed.includes("token=pp_"), "a different invite: " + renewed);
  // Reloading the page (or coming back to it) shows it no more, and makes
  // no other token: the invite just given out still works.
  await page.reload();
  await page.getByRole("heading", { name: "This invite has been shown already" }).waitFor();
  check(!(await page.content()).includes(renewed.split("token=")[1]), "the token is not shown again");
  await checkAccessibility(page, "an invite asked for again");
  const again = `${root}/bank-road-again`;
  cli(again, ["join", renewed]);
  cli(again, ["sync", "--timeout", "60"]);
  await page.goto(relay + "/admin");
  await eventually(async () => {
    await page.reload();
    const table = await page.locator("#connected + table").innerText().catch(() => "");
    return !table.includes(SCHOOL);
  }, "the old token's connection is cut", 20_000);
  watch.kill();

  // A role changes.
  await page.getByRole("link", { name: PARTNERSHIP }).click();
  await page.getByLabel(`Role of ${GOVERNORS}`).selectOption("member");
  await page.getByRole("button", { name: `Change role of ${GOVERNORS}` }).click();
  await page.getByRole("status").getByText(`${GOVERNORS} is now a member of ${PARTNERSHIP}`).waitFor();
  await schoolsTable.getByRole("row", { name: new RegExp(GOVERNORS) }).getByText("Member: reads and writes").waitFor();

  // The school is removed from the relay altogether, after a question.
  await page.getByRole("link", { name: `Remove ${SCHOOL}` }).click();
  await page.getByRole("heading", { name: `Remove ${SCHOOL}?` }).waitFor();
  await checkAccessibility(page, "removing a school");
  await page.getByLabel("This relay altogether").check();
  await page.getByRole("button", { name: `Yes, remove ${SCHOOL}` }).click();
  await page.getByRole("status").getByText(`${SCHOOL} is removed from this relay`).waitFor();
  check((await schoolsTable.getByRole("row", { name: new RegExp(SCHOOL) }).count()) === 0, "the school is no longer listed");
  await checkAccessibility(page, "the partnership after a removal");
  // (A form sent back with a mistake comes with status 422, which the
  // console reports; only the script's own errors count here.)
  const scriptErrors = page.problems.filter((p) => p.startsWith("script error"));
  check(scriptErrors.length === 0, "no script errors: " + scriptErrors.join("; "));
}
