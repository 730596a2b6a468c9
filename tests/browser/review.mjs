// A termly review recorded at one school and signed from each school's
// own app, each signature checked at both (verified, transcribed from
// paper, or not verified and why); a review recorded by mistake is
// withdrawn; an edit made after signing is marked at both; the plan can
// be shown as signed. node review.mjs APP_A APP_B DOC_ID SCREENSHOT_DIR
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

  // Every signature says what checking it found, at both schools: each
  // made in its school's app with its key, so verified.
  for (const [page, who] of [[a, "A"], [b, "B"]]) {
    const review = page.getByRole("article", { name: "Reviewed on Friday 12 January 2018" });
    for (const [signer, school] of [["Ann Head", "Bank Road Infant and Nursery School"], ["Bea Chair", "William Lilley Infant and Nursery School"]]) {
      const item = review.getByRole("listitem").filter({ hasText: "Signed by " + signer });
      await eventually(async () => (await item.innerText()).includes(`Verified: it was made with ${school}'s signing key and has not changed since.`),
        `${who} shows ${signer}'s signature as verified`, 15_000);
    }
  }
  // The paper's own signatures, imported, are transcribed; one another
  // program wrote with a key no school published says it is not verified,
  // and why.
  const paper = a.getByRole("article", { name: "Reviewed on Tuesday 11 July 2017" });
  const kevin = paper.getByRole("listitem").filter({ hasText: "Signed by Kevin Snow" });
  check((await kevin.innerText()).includes("Transcribed: partnerplan cannot tell who signed it."), "an imported signature is transcribed");
  const forged = paper.getByRole("listitem").filter({ hasText: "Signed by Someone Forged" });
  await forged.waitFor({ timeout: 15_000 });
  const why = await forged.innerText();
  check(why.includes("Not verified: it was signed with a key that this computer does not know as William Lilley Infant and Nursery School's."), "the forged signature says why: " + why);
  await forged.scrollIntoViewIfNeeded();
  await a.screenshot({ path: `${shots}/signatures.png` });
  await checkAccessibility(a, "reviews with verified, transcribed and not verified signatures");

  // A review recorded by mistake is withdrawn: it stays, marked with who
  // and when, and can no longer be signed, at both schools.
  await a.getByLabel("Date of the review").fill("13 January 2018");
  await a.getByLabel("Reviewed by").fill("Nobody: recorded by mistake");
  await a.getByRole("button", { name: "Record the review" }).click();
  const mistake = a.getByRole("article", { name: "Reviewed on Saturday 13 January 2018" });
  await mistake.waitFor();
  await mistake.getByText("Withdraw this review").click();
  await mistake.getByLabel("Why (optional)").fill("recorded by mistake");
  await mistake.getByRole("button", { name: "Withdraw the review of Saturday 13 January 2018" }).click();
  for (const [page, who] of [[a, "A"], [b, "B"]]) {
    const withdrawn = page.getByRole("article", { name: "Reviewed on Saturday 13 January 2018 (withdrawn)" });
    await withdrawn.getByText(/Withdrawn by Ann Head \(Bank Road Infant and Nursery School\) on .*: recorded by mistake/).waitFor({ timeout: 15_000 });
    check((await withdrawn.getByRole("button").count()) === 0, `${who}: a withdrawn review cannot be signed`);
  }
  await checkAccessibility(a, "a withdrawn review");

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
  await a.getByRole("cell", { name: "Withdrew a review" }).first().waitFor();
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
