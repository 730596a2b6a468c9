// The relay's admin pages against other sites and other computers: a
// page of another origin cannot change anything, even by posting a form
// from the relay's own computer; at the relay's public address (as
// another computer reaches it, directly or through a proxy) the pages ask
// for the admin password first.
// node admin_guard.mjs ADMIN_HTTP PUBLIC_HTTP PASSWORD
import { createServer } from "node:http";
import { check, checkAccessibility, newPage, scenario } from "./lib.mjs";

const [relay, publicAddress, password] = process.argv.slice(2);

await scenario("admin guard", async (browser) => {
  // Another site, on another port of this computer: it posts a form to
  // the relay as soon as it opens.
  const evil = createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(`<!doctype html><html lang="en"><title>Free resources</title>
      <form id="f" method="post" action="${relay}/admin/partnerships">
        <input name="csrf" value="guessed"><input name="name" value="Taken over by another site">
      </form><script>document.getElementById("f").submit()</script></html>`);
  });
  await new Promise((r) => evil.listen(0, "127.0.0.1", r));
  try {
    const page = await newPage(browser);
    await page.goto(`http://127.0.0.1:${evil.address().port}/`);
    await page.getByRole("heading", { name: "Not changed" }).waitFor();
    await page.getByText("Changes can only be made from the relay's own admin pages").waitFor();
    await page.goto(relay + "/admin");
    await page.getByRole("heading", { name: "Your relay" }).waitFor();
    check(!(await page.content()).includes("Taken over"), "no partnership was made by the other site");
  } finally {
    evil.close();
  }

  // At the public address.
  const remote = await newPage(browser);
  await remote.goto(publicAddress + "/admin");
  await remote.getByRole("heading", { name: "Log in to the relay's admin pages" }).waitFor();
  check(!(await remote.content()).includes("Your relay"), "nothing shows before logging in");
  await checkAccessibility(remote, "the admin login page");
  await remote.getByLabel("The admin password").fill("not the password at all");
  await remote.getByRole("button", { name: "Log in" }).click();
  await remote.getByRole("alert").getByText("That is not the admin password").waitFor();
  await checkAccessibility(remote, "the admin login page with a mistake");
  await remote.getByLabel("The admin password").fill(password);
  await remote.getByRole("button", { name: "Log in" }).click();
  await remote.getByRole("heading", { name: "Your relay" }).waitFor();
  await checkAccessibility(remote, "the relay's page, logged in");
  await remote.getByRole("button", { name: "Log out" }).click();
  await remote.getByRole("heading", { name: "Log in to the relay's admin pages" }).waitFor();
  await remote.goto(publicAddress + "/admin");
  await remote.getByRole("heading", { name: "Log in to the relay's admin pages" }).waitFor();
});
