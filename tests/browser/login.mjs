// The app served with a password: nothing but the login page without
// it, a wrong password is refused with a sentence, the right one opens it.
// node login.mjs APP PASSWORD
import { check, checkAccessibility, newPage, scenario } from "./lib.mjs";

const [app, password] = process.argv.slice(2);

await scenario("login", async (browser) => {
  const page = await newPage(browser);
  await page.goto(app);
  await page.getByRole("heading", { name: "Log in to your school's partnerplan" }).waitFor();
  check(!(await page.locator("body").innerText()).includes("Collaboration action plan"), "nothing shows before logging in");
  await checkAccessibility(page, "login page");
  await page.getByLabel("The app's password").fill("not the password at all");
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByRole("alert").getByText("That is not the app's password").waitFor();
  await page.getByLabel("The app's password").fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByRole("link", { name: "Collaboration action plan 2017-2018" }).waitFor();
});
