// Two schools' apps through one relay: a partner's edit appears live, and
// a partner's text that arrives while a cell is being typed in keeps both.
// node live.mjs APP_A APP_B DOC_ID
import { check, eventually, launch, newPage, scenario } from "./lib.mjs";

const [appA, appB, doc] = process.argv.slice(2);

async function openPlan(browser, app) {
  const page = await newPage(browser);
  await eventually(async () => (await page.goto(app + "doc/" + doc)).ok(), "the plan arrives at " + app, 30_000);
  await page.getByRole("heading", { name: "Collaboration action plan 2017-2018" }).waitFor();
  return page;
}

const saved = (page) => eventually(async () => (await page.evaluate(() => window.partnerplan.pending())) === 0, "saved");

await scenario("live", async (browser) => {
  // Two schools, two computers: each its own browser, so working in one
  // never takes the focus from the other.
  const other = await launch();
  const a = await openPlan(browser, appA);
  const b = await openPlan(other, appB);

  // An edit at one school appears at the other without a reload.
  const statusA = a.getByRole("combobox", { name: "Status" }).nth(1);
  await statusA.selectOption("green");
  await eventually(async () => (await b.getByRole("combobox", { name: "Status" }).nth(1).inputValue()) === "green",
    "B sees A's status live", 15_000);

  // B is typing in a notes cell when A's text for the same cell arrives.
  const notesB = b.getByRole("textbox", { name: "Notes" }).nth(2);
  await notesB.click();
  await notesB.pressSequentially("Valley will host. ");
  const notesA = a.getByRole("textbox", { name: "Notes" }).nth(2);
  await notesA.click();
  await notesA.pressSequentially("Hilltop brings the audit.");
  await a.keyboard.press("Tab");
  await saved(a);
  // A's text reaches B's page while B's cell is still being edited: B's
  // typing is not disturbed.
  await b.waitForTimeout(1500);
  check((await notesB.inputValue()) === "Valley will host. ", "B's typing is untouched: " + (await notesB.inputValue()));
  check(await notesB.evaluate((e) => e === document.activeElement), "B's cell keeps the focus");
  await notesB.pressSequentially("Bring lunch.");
  await b.keyboard.press("Tab");
  await saved(b);
  for (const [page, who] of [[a, "A"], [b, "B"]]) {
    await eventually(async () => {
      const text = await page.getByRole("textbox", { name: "Notes" }).nth(2).inputValue();
      return text.includes("Hilltop brings the audit.") && text.includes("Valley will host. Bring lunch.");
    }, `${who} holds both schools' text`, 15_000);
  }
});
