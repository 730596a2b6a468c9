// Both schools offline: each sets a different status on one action and
// types in its notes. node conflict_make.mjs APP_A APP_B DOC_ID
import { eventually, newPage, scenario } from "./lib.mjs";

const [appA, appB, doc] = process.argv.slice(2);

await scenario("conflict_make", async (browser) => {
  for (const [app, status, note] of [[appA, "red", "Hilltop: waiting for dates. "], [appB, "amber", "Valley: booked the hall. "]]) {
    const page = await newPage(browser);
    await page.goto(app + "doc/" + doc);
    await page.getByText(/^Offline/).waitFor({ timeout: 30_000 });
    await page.getByRole("combobox", { name: "Status" }).nth(3).selectOption(status);
    const notes = page.getByRole("textbox", { name: "Notes" }).nth(3);
    await notes.click();
    await notes.press("Home");
    await notes.pressSequentially(note);
    await page.keyboard.press("Tab");
    await eventually(async () => (await page.evaluate(() => window.partnerplan.pending())) === 0, "saved");
    await page.getByText(/on this computer only/).waitFor();
  }
});
