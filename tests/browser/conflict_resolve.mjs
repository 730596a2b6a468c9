// After reconnecting: both schools see the two statuses with who set
// each, both notes are kept, and one click keeps one status everywhere.
// node conflict_resolve.mjs APP_A APP_B DOC_ID SCREENSHOT_DIR
import { check, checkAccessibility, eventually, newPage, scenario } from "./lib.mjs";

const [appA, appB, doc, shots] = process.argv.slice(2);

await scenario("conflict_resolve", async (browser) => {
  const pages = [];
  for (const app of [appA, appB]) {
    const page = await newPage(browser);
    await page.goto(app + "doc/" + doc);
    const conflict = page.getByRole("group", { name: "Status: values given at once" });
    await eventually(async () => (await conflict.count()) === 1, "the conflict is shown at " + app, 60_000);
    const text = await conflict.innerText();
    check(text.includes("red") && text.includes("Bank Road"), "the conflict says who gave red: " + text);
    check(text.includes("amber") && text.includes("William Lilley"), "the conflict says who gave amber: " + text);
    check((text.match(/ on \d+ \w+ \d{4}/g) || []).length === 2 || (text.match(/ on \w+day \d+ \w+ \d{4}/g) || []).length === 2, "the conflict says when each was given: " + text);
    const notes = await page.getByRole("textbox", { name: "Notes" }).nth(3).inputValue();
    check(notes.includes("Hilltop: waiting for dates.") && notes.includes("Valley: booked the hall."), "both notes are kept: " + notes);
    pages.push(page);
  }
  const [a, b] = pages;
  await checkAccessibility(a, "plan page with a conflict");
  await a.getByRole("group", { name: "Status: values given at once" }).scrollIntoViewIfNeeded();
  await a.screenshot({ path: `${shots}/conflict.png` });
  // The home page says how many wait.
  const home = await newPage(browser);
  await home.goto(appB);
  await home.getByText(/1 field waits/).waitFor();

  await a.getByRole("button", { name: "Keep “amber”" }).click();
  await a.waitForTimeout(300);
  const toast = await a.locator("#toast").textContent().catch(() => "");
  check(!toast || toast.startsWith("Kept"), "resolving says: " + toast);
  for (const [page, who] of [[a, "A"], [b, "B"]]) {
    await eventually(async () => (await page.getByRole("group", { name: "Status: values given at once" }).count()) === 0,
      `the conflict is gone at ${who}`, 30_000);
    await eventually(async () => (await page.getByRole("combobox", { name: "Status" }).nth(3).inputValue()) === "amber",
      `${who} shows amber`, 30_000);
  }
});
