// One school's app with the imported 000 plan: the home page, the plan
// as the paper has it, editing in place, rows added and removed (with
// undo), the print view, and axe-core on every page.
// node plan.mjs APP_URL SCREENSHOT_DIR FIXTURE_JSON
import { readFileSync } from "node:fs";
import { check, checkAccessibility, eventually, newPage, scenario } from "./lib.mjs";

const [app, shots, fixture] = process.argv.slice(2);
const paper = JSON.parse(readFileSync(fixture, "utf8"));

await scenario("plan", async (browser) => {
  const page = await newPage(browser);

  // Home: the partnership, its schools, its documents by name.
  await page.goto(app);
  await page.getByRole("heading", { name: "Bank Road and William Lilley collaboration", level: 1 }).waitFor();
  await page.getByText("William Lilley Infant and Nursery School").first().waitFor();
  await checkAccessibility(page, "home page");
  const homeText = await page.locator("main").innerText();
  check(!/automerge:|[0-9a-f]{16}/.test(homeText), "the home page shows no ids: " + homeText);

  // The plan, every area and action readable in full.
  await page.getByRole("link", { name: "Collaboration action plan 2017-2018" }).click();
  await page.getByRole("heading", { name: "Collaboration action plan 2017-2018" }).waitFor();
  for (const area of ["Safeguarding", "Teaching and Learning", "Staff", "Moderation / assessment", "School Council", "Pupil Premium", "Parents", "Governors"]) {
    check(await page.locator(`input[value="${area}"]`).count() >= 1, `the area ${area} is on the plan`);
  }
  const action = page.getByRole("textbox", { name: "Action" }).first();
  check((await action.inputValue()).startsWith("Peer review by head teachers"), "the first action is the paper's");
  await checkAccessibility(page, "plan page");
  await page.locator("#areas-heading").evaluate((e) => e.scrollIntoView());
  await page.screenshot({ path: `${shots}/plan.png` });

  // From the keyboard alone: a button pressed with Enter adds an impact
  // entry, whose date and text are typed and saved.
  const addImpact = page.getByRole("button", { name: "Add impact to date for Safeguarding" });
  const impactsBefore = await page.getByRole("textbox", { name: "Impact", exact: true }).count();
  await addImpact.focus();
  await page.keyboard.press("Enter");
  await eventually(async () => (await page.getByRole("textbox", { name: "Impact", exact: true }).count()) === impactsBefore + 1, "Enter adds an impact entry");
  await page.keyboard.type("December 2017");
  await page.keyboard.press("Tab");
  await page.keyboard.type("Audit shared with both governing boards.");
  await page.keyboard.press("Tab");
  await eventually(async () => (await page.evaluate(() => window.partnerplan.pending())) === 0, "the impact entry is saved");

  // A status picked from the keyboard becomes a chip, saved at once.
  const status = page.getByRole("combobox", { name: "Status" }).first();
  await status.focus();
  await status.selectOption("amber");
  await eventually(async () => (await status.getAttribute("class")).includes("status-amber"), "the status shows as an amber chip");

  // Typing in a notes cell is saved on this computer.
  const notes = page.getByRole("textbox", { name: "Notes" }).first();
  await notes.click();
  await notes.pressSequentially("Met on 4 December.");
  await page.keyboard.press("Tab");
  await eventually(async () => (await page.evaluate(() => window.partnerplan.pending())) === 0, "the notes are saved");
  await page.reload();
  check((await page.getByRole("textbox", { name: "Notes" }).first().inputValue()).includes("Met on 4 December."), "the notes survive a reload");
  check((await page.getByRole("combobox", { name: "Status" }).first().inputValue()) === "amber", "the status survives a reload");

  // A date that is not one is refused with the model's sentence.
  const review = page.getByRole("textbox", { name: "Review date" }).first();
  await review.fill("the thirty-first of Smarch");
  await review.press("Tab");
  await page.getByRole("alert").filter({ hasText: /date|term/i }).first().waitFor();

  // Add an action, type it, remove it, then undo the removal.
  const actionsBefore = await page.getByRole("textbox", { name: "Action" }).count();
  await page.getByRole("button", { name: "Add an action to Safeguarding" }).click();
  await eventually(async () => (await page.getByRole("textbox", { name: "Action" }).count()) === actionsBefore + 1, "a new action appears");
  await page.keyboard.type("Share the safeguarding audit with governors");
  await page.keyboard.press("Tab");
  await eventually(async () => (await page.evaluate(() => window.partnerplan.pending())) === 0, "the new action is saved");
  await page.getByRole("button", { name: /^Remove action Share the safeguarding audit/ }).click();
  await page.getByText("The action was removed.").waitFor();
  await page.getByRole("button", { name: "Undo" }).click();
  await eventually(async () => {
    const values = await page.getByRole("textbox", { name: "Action" }).evaluateAll((els) => els.map((e) => e.value));
    return values.includes("Share the safeguarding audit with governors");
  }, "undo brings the action back");

  // The print view holds every area and action of the paper, and no ids.
  const id = new URL(page.url()).pathname.split("/")[2];
  await page.goto(app + "doc/" + id + "/print");
  const printed = await page.locator("main").innerText();
  for (const area of paper.areas) {
    check(printed.includes(area.name), "the print view holds the area " + area.name);
    for (const action of area.actions || []) {
      check(printed.includes(action.what.trim().split("\n")[0]), "the print view holds the action " + action.what);
    }
  }
  check(!/automerge:|[0-9a-f]{16}|\/tmp\//.test(printed), "the print view shows no ids or paths");
  check(/Printed on /.test(printed), "the print view says when it was printed");
  await checkAccessibility(page, "print view");
  await page.emulateMedia({ media: "print" });
  await page.pdf({ path: `${shots}/plan-print.pdf`, format: "A4", landscape: true, printBackground: true });

  const problems = page.problems.filter((p) => !p.includes("422"));
  check(problems.length === 0, "no script errors: " + problems.join("; "));
});
