// Saves screenshots of app pages: node screenshot.mjs OUT_DIR URL NAME [URL NAME …]
import { launch, newPage } from "./lib.mjs";

const [out, ...pairs] = process.argv.slice(2);
const browser = await launch();
try {
  const page = await newPage(browser);
  for (let i = 0; i < pairs.length; i += 2) {
    await page.goto(pairs[i]);
    await page.screenshot({ path: `${out}/${pairs[i + 1]}.png`, fullPage: !process.env.VIEWPORT_ONLY });
  }
} finally {
  await browser.close();
}
