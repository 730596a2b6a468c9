// The command line beside the app, on a school not joined to any relay
// yet: its edit shows on the open page by itself.
// node cli_beside.mjs APP CLIENT_BINARY DATA_DIR
import { execFileSync } from "node:child_process";
import { eventually, newPage, scenario } from "./lib.mjs";

const [app, client, dir] = process.argv.slice(2);

await scenario("cli_beside", async (browser) => {
  const page = await newPage(browser);
  await page.goto(app);
  await page.getByRole("link", { name: "Collaboration action plan 2017-2018" }).click();
  const url = "automerge:" + new URL(page.url()).pathname.split("/")[2];
  execFileSync(client, ["--data", dir, "--as", "Ann Head", "put", url, "period", "2018-2019"], { timeout: 30_000 });
  await eventually(async () => (await page.getByRole("textbox", { name: "Period" }).inputValue()) === "2018-2019",
    "the command line's edit shows on the open page", 3_000);
});
