// A new school joins from its first page with nothing but the invite;
// every partnership document arrives by itself, and so does one a partner
// creates later; an edit made with the command line beside the app shows
// on the open page. node join.mjs APP INVITE CLIENT_BINARY PARTNER_DIR OWN_DIR SCREENSHOT_DIR
import { execFileSync } from "node:child_process";
import { check, checkAccessibility, eventually, newPage, scenario } from "./lib.mjs";

const [app, invite, client, partnerDir, ownDir, shots] = process.argv.slice(2);
const cli = (dir, args) => execFileSync(client, ["--data", dir, ...args], { encoding: "utf8", timeout: 60_000 });

await scenario("join", async (browser) => {
  const page = await newPage(browser);
  await page.goto(app);
  await page.getByRole("heading", { name: "Join your partnership" }).waitFor();
  await checkAccessibility(page, "join page");

  // A mistake is explained, and what was typed is kept.
  await page.getByLabel("Invite from your lead school").fill("not an invite");
  await page.getByLabel("Your school's name").fill("William Lilley Infant and Nursery School");
  await page.getByLabel("Your name").fill("Bea Chair");
  await page.getByRole("button", { name: "Join the partnership" }).click();
  await page.getByRole("alert").waitFor();
  check((await page.getByLabel("Your name").inputValue()) === "Bea Chair", "what was typed is kept");
  await checkAccessibility(page, "join page with an error");

  await page.getByLabel("Invite from your lead school").fill(invite);
  await page.getByLabel("Your role").fill("Chair of governors");
  await page.getByRole("button", { name: "Join the partnership" }).click();

  // Every document arrives by itself.
  await eventually(async () => (await page.getByRole("link", { name: "Collaboration action plan 2017-2018" }).count()) === 1,
    "the plan arrives with nothing typed but the invite", 30_000).catch(async (e) => {
    throw new Error(e.message + "; the page says: " + (await page.locator("body").innerText()));
  });
  await page.getByRole("heading", { name: "Bank Road and William Lilley collaboration", level: 1 }).waitFor();
  await page.getByText(/Shared with partners/).waitFor({ timeout: 30_000 });
  await checkAccessibility(page, "home page after joining");
  await page.screenshot({ path: `${shots}/home.png` });

  // A partner creates a document later: it appears on the open page.
  const out = cli(partnerDir, ["--as", "Ann Head", "new", "progress-report", "--title", "Progress report, autumn 2017"]);
  check(out.includes("automerge:"), "the partner made a document: " + out);
  cli(partnerDir, ["sync", "--timeout", "60"]);
  await eventually(async () => (await page.getByRole("link", { name: "Progress report, autumn 2017" }).count()) === 1,
    "a partner's new document appears without a reload", 30_000);

  // The command line beside the app: its edit shows on the open page.
  await page.getByRole("link", { name: "Progress report, autumn 2017" }).click();
  const url = out.match(/automerge:[1-9A-HJ-NP-Za-km-z]+/)[0];
  cli(ownDir, ["--as", "Bea Chair", "put", url, "collaborative", "Tenterden Rural Alliance"]);
  await eventually(async () => (await page.getByRole("textbox", { name: "Collaborative" }).inputValue()) === "Tenterden Rural Alliance",
    "the command line's edit shows within a second or two", 3_000);
  await checkAccessibility(page, "progress report page");
});
