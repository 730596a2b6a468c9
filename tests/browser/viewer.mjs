// A viewer (governors, the local authority) reads every document and sees
// no edit control; an edit sent to the app anyway is refused with a
// sentence. node viewer.mjs APP DOC_ID
import { check, checkAccessibility, eventually, newPage, scenario } from "./lib.mjs";

const [app, doc] = process.argv.slice(2);

await scenario("viewer", async (browser) => {
  const page = await newPage(browser);
  await eventually(async () => (await page.goto(app + "doc/" + doc)).ok(), "the plan reaches the viewer", 30_000);
  await page.getByRole("heading", { name: "Collaboration action plan 2017-2018" }).waitFor();
  await page.getByText("You can read this document.").waitFor();
  check((await page.getByRole("textbox").count()) === 0, "no text box");
  check((await page.getByRole("combobox").count()) === 0, "no choice");
  check((await page.getByRole("button").count()) === 0, "no button");
  check((await page.locator("main").innerText()).includes("Peer review by head teachers"), "the plan reads in full");
  await checkAccessibility(page, "the plan, read only");

  const answer = await page.evaluate(async (d) => {
    const token = document.querySelector('meta[name="csrf"]').content;
    const response = await fetch("/doc/" + d + "/field", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": token },
      body: JSON.stringify({ key: "title", value: "Changed by a viewer", heads: document.getElementById("doc").dataset.heads }),
    });
    return { status: response.status, body: await response.json() };
  }, doc);
  check(answer.status === 403, "the edit is refused: " + JSON.stringify(answer));
  check(answer.body.error.includes("can read this partnership's documents but not change them"), "with a sentence: " + answer.body.error);
  await page.reload();
  check(!(await page.locator("main").innerText()).includes("Changed by a viewer"), "nothing changed");

  // A page of another origin: it can send, but the app refuses the change,
  // and the browser does not let it read the app's pages.
  const other = await newPage(browser);
  await other.setContent("<p>another site</p>");
  const attempt = await other.evaluate(async ([base, d]) => {
    const out = {};
    try {
      const r = await fetch(base + "doc/" + d + "/field", { method: "POST", body: '{"key":"title","value":"x","heads":""}' });
      out.change = r.status;
    } catch (e) { out.change = "blocked"; }
    try {
      const r = await fetch(base + "doc/" + d);
      out.read = await r.text();
    } catch (e) { out.read = "blocked"; }
    return out;
  }, [app, doc]);
  check(attempt.read === "blocked", "another origin cannot read the page: " + String(attempt.read).slice(0, 80));
  check(attempt.change === "blocked" || attempt.change === 403, "another origin cannot change it: " + attempt.change);
});
