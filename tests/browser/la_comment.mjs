// The local authority writes a comment to one partnership from its
// overview, with the keyboard (a form with an error summary first), and a
// school of that partnership reads it beside its documents, read only.
// node la_comment.mjs LA_APP SCHOOL_APP
import { check, checkAccessibility, eventually, newPage, scenario } from "./lib.mjs";

const [laApp, schoolApp] = process.argv.slice(2);
const comment = "Please share the moderation timetable with the other schools.";

await scenario("local authority comment", async (browser) => {
  // ACE's school has its documents open while the comment is written.
  const school = await newPage(browser);
  await school.goto(schoolApp);
  await school.getByRole("heading", { level: 1 }).first().waitFor();

  const la = await newPage(browser);
  await la.goto(laApp);
  await la.getByRole("heading", { name: "Partnerships you view", level: 1 }).waitFor();
  await la.getByRole("link", { name: "Write a comment to ACE" }).click();
  await la.getByRole("heading", { name: "Write a comment to ACE", level: 1 }).waitFor();
  const written = await la.locator("ol.comments").innerText();
  check(written.includes("We will visit in June") && written.includes("Jane Okafor"), "the comments written so far: " + written);
  await checkAccessibility(la, "the comment form");

  // Sent without a name or a comment: an error summary that leads to each field.
  await la.getByLabel("Officer", { exact: true }).fill("");
  await la.getByRole("button", { name: "Send the comment" }).click();
  const summary = la.getByRole("alert");
  await summary.getByText("There is a problem").waitFor();
  check((await summary.innerText()).includes("Enter the comment"), "the summary names the comment: " + (await summary.innerText()));
  await checkAccessibility(la, "the comment form with errors");
  await summary.getByRole("link", { name: "Enter the comment" }).focus();
  await la.keyboard.press("Enter");
  await eventually(async () => (await la.evaluate(() => document.activeElement?.id)) === "comment-text", "the summary's link moves to the comment box");

  // With the keyboard only: the comment, the officer, what it concerns.
  await la.keyboard.type(comment);
  await la.getByLabel("Officer", { exact: true }).focus();
  await la.keyboard.type("Maria Lopez");
  await la.getByLabel("Concerning", { exact: true }).selectOption({ label: "ACE action plan 2024-2025 (partnership action plan)" });
  await la.getByRole("button", { name: "Send the comment" }).focus();
  await la.keyboard.press("Enter");
  await la.getByRole("status").getByText("Your comment was saved.").waitFor();
  const list = await la.locator("ol.comments").innerText();
  check(list.includes("Maria Lopez") && list.includes(comment), "the new comment is listed: " + list);
  await checkAccessibility(la, "the comment saved");

  // ACE's school: the comment appears on the open page by itself, beside
  // its documents, with who and when.
  await eventually(
    async () => (await school.locator("main").innerText()).includes(comment),
    "the comment reaches ACE's open page",
    60_000,
  );
  const section = school.getByRole("region", { name: "Comments from the local authority" });
  const text = await section.innerText();
  check(text.includes("Maria Lopez, Kent County Council"), "the officer and the local authority: " + text);
  const today = await la.evaluate(() => new Date().toLocaleDateString("en-GB", { weekday: "long", day: "numeric", month: "long", year: "numeric" }).replace(",", ""));
  check(text.includes(today), `dated today (${today}): ` + text);
  check(text.includes("Concerning: ACE action plan 2024-2025"), "what it concerns: " + text);
  await checkAccessibility(school, "the school's documents with the comments");

  await section.getByRole("link", { name: "Kent County Council's comments to ACE" }).click();
  await school.getByText("only the local authority changes them").waitFor();
  check((await school.getByRole("textbox").count()) === 0, "no text box on the comments");
  check((await school.getByRole("button").count()) === 0, "no button on the comments");
  await checkAccessibility(school, "the comments, read only");
});
