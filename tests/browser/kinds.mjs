// "Start a new document" offers the nine kinds; each opens on its own
// page, takes a row and some text, and passes axe-core.
// node kinds.mjs APP
import { check, checkAccessibility, eventually, newPage, scenario } from "./lib.mjs";

const [app] = process.argv.slice(2);

await scenario("kinds", async (browser) => {
  const page = await newPage(browser);
  await page.goto(app);
  const kinds = await page.getByLabel("Kind of document").locator("option").allTextContents();
  check(kinds.length === 9, "nine kinds are offered: " + kinds.join(", "));
  for (const kind of kinds) {
    await page.goto(app);
    await page.getByLabel("Kind of document").selectOption({ label: kind });
    await page.getByLabel("Title").fill(kind + " for the test");
    await page.getByRole("button", { name: "Create it" }).click();
    await page.getByRole("heading", { name: kind + " for the test", level: 1 }).waitFor();
    check((await page.locator("p.kind").innerText()) === kind, "the page says what kind it is");
    const add = page.getByRole("button", { name: /^Add (a|an) / }).first();
    if (await add.count()) {
      const before = await page.getByRole("row").count();
      await add.click();
      await eventually(async () => (await page.getByRole("row").count()) > before || (await page.locator("li.action").count()) > 0,
        "a row is added to the " + kind);
    }
    const text = page.locator("#doc textarea[data-text]").first();
    const typed = (await text.count()) > 0;
    if (typed) {
      await text.click();
      await text.pressSequentially("Agreed at the meeting.");
      await page.keyboard.press("Tab");
      await eventually(async () => (await page.evaluate(() => window.partnerplan.pending())) === 0, "saved");
    }
    await checkAccessibility(page, kind + " page");
    await page.reload();
    if (typed) {
      const value = await page.locator("#doc textarea[data-text]").first().inputValue();
      check(value.includes("Agreed at the meeting."), "the " + kind + " keeps its text: " + value);
    }
  }
});
