// What every browser scenario shares: Debian's Chromium driven by
// playwright-core, bounded waits, accessibility checks with axe-core,
// and a failure that says what a person would have seen.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

export const CHROMIUM = process.env.PARTNERPLAN_CHROMIUM || "/usr/bin/chromium";

const launched = [];

/// A browser of its own (a school's own computer). Every browser launched
/// is closed when the scenario ends, however it ends.
export async function launch() {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  launched.push(browser);
  return browser;
}

export async function newPage(browser, options = {}) {
  const context = await browser.newContext({
    viewport: { width: 1366, height: 900 },
    locale: "en-GB",
    ...options,
  });
  const page = await context.newPage();
  // Generous: CI machines are shared and busy; a real failure still fails.
  page.setDefaultTimeout(20_000);
  const problems = [];
  page.on("pageerror", (e) => problems.push("script error: " + e.message));
  page.on("console", (m) => {
    if (m.type() === "error") problems.push("console error: " + m.text());
  });
  page.problems = problems;
  return page;
}

/// Fails on any serious or critical accessibility violation.
export async function checkAccessibility(page, what) {
  await page.addScriptTag({ content: axeSource });
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    return await axe.run(document, { resultTypes: ["violations"] });
  });
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  if (bad.length > 0) {
    const lines = bad.map(
      (v) => `${v.impact}: ${v.id} (${v.help}) at ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join("; ")}`,
    );
    throw new Error(`${what}: accessibility violations:\n  ${lines.join("\n  ")}`);
  }
}

export function check(condition, message) {
  if (!condition) throw new Error(message);
}

/// Waits until `probe()` returns something truthy, for at most `ms`.
export async function eventually(probe, message, ms = 10_000) {
  const start = Date.now();
  let last;
  while (Date.now() - start < ms) {
    try {
      last = await probe();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${message} (waited ${ms} ms; last: ${last})`);
}

/// Runs a scenario: prints `ok` and exits 0, or prints why and exits 1.
export async function scenario(name, body) {
  const browser = await launch();
  const timer = setTimeout(() => {
    console.error(`${name}: gave up after 120 s`);
    process.exit(1);
  }, 120_000);
  try {
    await body(browser);
    console.log(`${name}: ok`);
  } catch (e) {
    console.error(`${name}: ${e.stack || e}`);
    process.exitCode = 1;
  } finally {
    clearTimeout(timer);
    for (const b of launched) await b.close().catch(() => {});
  }
}
