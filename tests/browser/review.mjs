// A termly review recorded at one school and signed from each school's
// own app; an edit made after signing is marked at both; the plan can be
// shown as signed. node review.mjs APP_A APP_B DOC_ID SCREENSHOT_DIR
import { check, checkAccessibility, eventually, newPage, scenario } from "./lib.mjs";

const [appA, appB, doc, shots] = process.argv.slice(2);

async function open(browser, app) {
  const page = await newPage(browser);
  await eventually(async () => (await page.goto(app + "doc/" + doc)).ok(), "the plan is at " + app, 30_000);
  return page;
}

await scenario("review", async (browser) => {
  const a = await open(browser, appA);
  const b = await open(browser, appB);

  await a.getByLabel("Date of the review").fill("12 January 2018");
  await a.getByLabel("Reviewed by").fill("The headteachers and members of the JCC");
  await a.getByRole("button", { name: "Record the review" }).click();
  const reviewA = a.getByRole("article", { name: "Reviewed on Friday 12 January 2018" });
  await reviewA.waitFor();
  await reviewA.getByLabel("Your name").fill("Ann Head");
  await reviewA.getByLabel("Signing as").selectOption("headteacher");
  await reviewA.getByRole("button", { name: "Sign for Bank Road Infant and Nursery School" }).click();
  await reviewA.getByText("Signed by Ann Head, headteacher, Bank Road Infant and Nursery School").waitFor().catch(async (e) => {
    throw new Error("after signing, the review says: " + (await reviewA.evaluate((e) => e.outerHTML)) + " / " + (await a.locator("#toast").textContent().catch(() => "")));
  });

  // The review reaches William Lilley live; its chair signs there.
  const reviewB = b.getByRole("article", { name: "Reviewed on Friday 12 January 2018" });
  await reviewB.waitFor({ timeout: 15_000 });
  await reviewB.getByLabel("Your name").fill("Bea Chair");
  await reviewB.getByLabel("Signing as").selectOption("chair of governors");
  await reviewB.getByRole("button", { name: "Sign for William Lilley Infant and Nursery School" }).click();
  await reviewA.getByText("Signed by Bea Chair, chair of governors, William Lilley Infant and Nursery School").waitFor({ timeout: 15_000 });

  // An edit after signing is marked at both schools.
  const notesB = b.getByRole("textbox", { name: "Notes" }).first();
  await notesB.click();
  await notesB.press("End");
  await notesB.pressSequentially(" Changed after signing.");
  await b.keyboard.press("Tab");
  for (const [page, who] of [[a, "A"], [b, "B"]]) {
    await eventually(async () => (await page.locator("textarea.marked[aria-label='Notes']").count()) === 1,
      `${who} marks the notes changed since signing`, 15_000);
    await page.getByText(/1 change since it was signed on/).waitFor();
  }
  check((await a.locator("select.marked").count()) === 0, "unchanged cells are not marked");
  await a.locator(".marked").first().scrollIntoViewIfNeeded();
  await a.screenshot({ path: `${shots}/changed-since-signed.png` });

  // The plan as signed: read only, without the later edit.
  await a.getByRole("link", { name: "See it as signed" }).click();
  await a.getByText(/This is the document as signed on/).waitFor();
  // A partner's edit arriving meanwhile leaves the signed version as it is.
  const notesB2 = b.getByRole("textbox", { name: "Notes" }).nth(1);
  await notesB2.click();
  await notesB2.pressSequentially("Arrives while A reads the signed plan.");
  await b.keyboard.press("Tab");
  await eventually(async () => (await b.evaluate(() => window.partnerplan.pending())) === 0, "B's edit is saved");
  await a.waitForTimeout(1500);
  check((await a.getByRole("textbox").count()) === 0, "the signed version has no edit controls");
  check(!(await a.locator("#doc").innerText()).includes("Arrives while A reads"), "the signed version stays as signed");
  const text = await a.locator("#doc").innerText();
  check(!text.includes("Changed after signing."), "the signed version lacks the later edit");
  check(!/[0-9a-f]{16}/.test(text), "no hex ids on the signed version");
  await checkAccessibility(a, "the plan as signed");

  // History names who changed what.
  await a.goto(appA + "doc/" + doc + "/history");
  await a.getByRole("cell", { name: /William Lilley Infant and Nursery School/ }).first().waitFor();
  await a.getByRole("cell", { name: "Signed a review" }).first().waitFor();
  await checkAccessibility(a, "history page");

  // The document as it stood at the end of a day: today's, which holds
  // every change so far.
  const today = new Date().toISOString().slice(0, 10);
  await a.getByLabel("See the document as it stood at the end of").fill(today);
  await a.getByRole("button", { name: "Show it" }).click();
  await a.getByText(/This is the document as it stood at the end of/).waitFor();
  check((await a.locator("#doc").innerText()).includes("Changed after signing."), "the end of today holds today's edit");
  await checkAccessibility(a, "the plan as of a day");
});
