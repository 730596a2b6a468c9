// The school's app on the 000 plan, measured over HTTP as its page uses
// it, and a partner's change in a headless Chromium. Run by app.sh.
//
//   node app_bench.mjs single APP DOC
//   node app_bench.mjs partner APP_A APP_B DOC
//
// Prints one JSON object with every figure (milliseconds and bytes).
import { gzipSync } from "node:zlib";
import { performance } from "node:perf_hooks";

const EDITS = Number(process.env.BENCH_EDITS || 200);
const PAGES = Number(process.env.BENCH_PAGES || 100);
const PARTNER = Number(process.env.BENCH_PARTNER || 30);
const BROWSER_EDITS = Number(process.env.BENCH_BROWSER_EDITS || 30);
const STATUSES = ["red", "amber", "green", "done"];

function quantiles(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q) => s[Math.round((s.length - 1) * q)];
  const r = (x) => Math.round(x * 100) / 100;
  return { n: s.length, p50: r(at(0.5)), p95: r(at(0.95)), max: r(s[s.length - 1]), min: r(s[0]) };
}

function unescape(html) {
  return html
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&#x27;/g, "'")
    .replace(/&amp;/g, "&");
}

class App {
  constructor(url, doc) {
    this.url = url;
    this.doc = doc;
    this.origin = url.replace(/\/$/, "");
  }
  async page() {
    const response = await fetch(this.url + "doc/" + this.doc);
    const text = await response.text();
    if (!response.ok) throw new Error("the plan page answered " + response.status);
    this.csrf = /<meta name="csrf" content="([^"]*)"/.exec(text)[1];
    return text;
  }
  async body() {
    const response = await fetch(this.url + "doc/" + this.doc + "/body");
    const text = await response.text();
    if (!response.ok) throw new Error("the body answered " + response.status);
    return text;
  }
  async post(what, json) {
    const response = await fetch(this.url + "doc/" + this.doc + "/" + what, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": this.csrf, Origin: this.origin },
      body: JSON.stringify(json),
    });
    const answer = await response.json();
    if (!response.ok || !answer.ok) throw new Error(`${what} answered ${response.status}: ${JSON.stringify(answer)}`);
    return answer;
  }
}

const headsOf = (html) => /data-heads="([^"]*)"/.exec(html)[1];
const statusRows = (html) => [...html.matchAll(/<select id="f-([0-9a-f-]{36})-status"/g)].map((m) => m[1]);
function notesOf(html, row) {
  const m = new RegExp(`<textarea id="f-${row}-notes"[^>]*>([\\s\\S]*?)</textarea>`).exec(html);
  if (!m) throw new Error("no notes for row " + row);
  // A textarea's first newline is not part of its value.
  return unescape(m[1]).replace(/^\n/, "");
}

async function single(url, doc) {
  const app = new App(url, doc);
  const first = await app.page();
  const rows = statusRows(first);
  if (rows.length === 0) throw new Error("the plan page shows no status controls");
  let heads = headsOf(first);
  // As imported, before this run's edits lengthen the notes.
  const sizesFresh = await sizesOf(url, doc);
  // Warm up: the page, its body, one edit of each kind.
  for (let i = 0; i < 5; i++) await app.body();

  // Status edits: POST /field, then GET /body (what the page does next).
  const current = new Map(rows.map((r) => [r, ""]));
  const field = { total: [], post: [], body: [] };
  for (let i = 0; i < EDITS; i++) {
    const row = rows[i % rows.length];
    const value = STATUSES.find((s) => s !== current.get(row) && s !== STATUSES[(i + 3) % 4]) || "red";
    current.set(row, value);
    const t0 = performance.now();
    const answer = await app.post("field", { row, key: "status", value, heads });
    const t1 = performance.now();
    const body = await app.body();
    const t2 = performance.now();
    if (answer.heads) heads = answer.heads;
    if (!body.includes(heads)) throw new Error("the body after an edit is not at its version");
    field.total.push(t2 - t0);
    field.post.push(t1 - t0);
    field.body.push(t2 - t1);
  }

  // Text edits: a sentence appended to an action's notes, against the
  // version the last answer named, as the page does.
  let body = await app.body();
  heads = headsOf(body);
  const notes = new Map();
  const textRows = rows.filter((r) => new RegExp(`id="f-${r}-notes"`).test(body));
  for (const r of textRows) notes.set(r, notesOf(body, r));
  const text = { total: [], post: [], body: [] };
  for (let i = 0; i < EDITS; i++) {
    const row = textRows[i % textRows.length];
    const after = notes.get(row) + ` Checked ${i}.`;
    const t0 = performance.now();
    const answer = await app.post("text", { row, key: "notes", heads, after });
    const t1 = performance.now();
    body = await app.body();
    const t2 = performance.now();
    if (answer.heads) heads = answer.heads;
    notes.set(row, after);
    text.total.push(t2 - t0);
    text.post.push(t1 - t0);
    text.body.push(t2 - t1);
  }
  const check = await app.body();
  for (const r of textRows.slice(0, 3)) {
    if (notesOf(check, r) !== notes.get(r)) throw new Error("the notes typed did not arrive whole in row " + r);
  }

  // The plan page, whole.
  const page = [];
  let html = "";
  for (let i = 0; i < PAGES; i++) {
    const t0 = performance.now();
    html = await app.page();
    page.push(performance.now() - t0);
  }
  const sizes = await sizesOf(url, doc);
  const rowsShown = statusRows(html).length;

  // The same edit made in the page itself, in Chromium: from the change
  // of a status to the page's refresh done (its version moved on and
  // nothing is being saved), as the person editing sees it.
  const { launch, newPage } = await import("../browser/lib.mjs");
  const browser = await launch();
  const own = [];
  try {
    const page = await newPage(browser);
    await page.goto(url + "doc/" + doc);
    await page.waitForSelector(`#f-${rows[0]}-status`);
    for (let i = 0; i < BROWSER_EDITS; i++) {
      const row = rows[(i * 3) % rows.length];
      await new Promise((r) => setTimeout(r, 200));
      const [heads, started] = await page.evaluate(([id, statuses, i]) => {
        const root = document.getElementById("doc");
        const select = document.getElementById(id);
        const value = statuses.find((s) => s !== select.value && s !== statuses[i % 4]);
        const heads = root.dataset.heads;
        const started = Date.now();
        select.value = value;
        select.dispatchEvent(new Event("change", { bubbles: true }));
        return [heads, started];
      }, [`f-${row}-status`, STATUSES, i]);
      const done = await page.waitForFunction(
        (before) => document.getElementById("doc").dataset.heads !== before && window.partnerplan.pending() === 0 ? Date.now() : false,
        heads,
        { polling: 5, timeout: 15_000 },
      );
      own.push((await done.jsonValue()) - started);
    }
    if (page.problems.length) throw new Error("the page reported: " + page.problems.join("; "));
  } finally {
    await browser.close().catch(() => {});
  }
  return {
    edits: EDITS,
    status_edit_then_body: quantiles(field.total),
    status_edit_post: quantiles(field.post),
    status_body_get: quantiles(field.body),
    text_edit_then_body: quantiles(text.total),
    text_edit_post: quantiles(text.post),
    text_body_get: quantiles(text.body),
    plan_page_get: quantiles(page),
    browser_status_change_to_page_refreshed: quantiles(own),
    sizes_as_imported: sizesFresh,
    sizes_after_edits: sizes,
    actions_on_page: rowsShown,
  };
}

// The plan page, its body and its assets as served, and gzipped.
async function sizesOf(url, doc) {
  const sizes = {};
  for (const [name, path] of [["page", "doc/" + doc], ["body", "doc/" + doc + "/body"], ["app.css", "assets/app.css"], ["app.js", "assets/app.js"], ["favicon", "favicon.ico"]]) {
    const response = await fetch(url + path);
    const bytes = Buffer.from(await response.arrayBuffer());
    sizes[name] = { bytes: bytes.length, gzip: gzipSync(bytes).length, encoding: response.headers.get("content-encoding") || "none" };
  }
  const assets = ["page", "app.css", "app.js", "favicon"];
  sizes.total = {
    bytes: assets.reduce((n, a) => n + sizes[a].bytes, 0),
    gzip: assets.reduce((n, a) => n + sizes[a].gzip, 0),
  };
  return sizes;
}

// Reads the app's live updates (SSE) and calls `on(event, data)` for each.
async function listenEvents(url, on) {
  const controller = new AbortController();
  const response = await fetch(url + "events", { signal: controller.signal, headers: { Accept: "text/event-stream" } });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let event = "message";
          let data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) event = line.slice(6).trim();
            else if (line.startsWith("data:")) data += line.slice(5).trim();
          }
          on(event, data, Date.now());
        }
      }
    } catch {
      // aborted
    }
  })();
  return () => controller.abort();
}

async function partner(urlA, urlB, doc) {
  const { launch, newPage, eventually } = await import("../browser/lib.mjs");
  const a = new App(urlA, doc);
  const first = await a.page();
  const rows = statusRows(first);
  const browser = await launch();
  try {
    const page = await newPage(browser);
    await eventually(async () => (await page.goto(urlB + "doc/" + doc)).ok(), "the plan arrives at B", 30_000);
    await page.waitForSelector(`#f-${rows[0]}-status`);
    // B's app's own notice of the change (its SSE "doc" event), as a
    // second clock: from A's edit to B holding it, without the page.
    let bNotice = [];
    const stop = await listenEvents(urlB, (event, data, at) => {
      if (event === "doc" && (data === doc || data === "*")) bNotice.push(at);
    });
    // When B's page fetched its body (Chromium's own timing of it).
    let bodyFetches = [];
    page.on("requestfinished", (request) => {
      if (!request.url().endsWith("/body")) return;
      const t = request.timing();
      bodyFetches.push({ start: t.startTime, end: t.startTime + t.responseEnd });
    });
    const raw = [];
    const fetchStartAfterNotice = [];
    const fetchTime = [];
    const fetchEndToShown = [];
    const total = [];
    const toB = [];
    const bPage = [];
    const aPost = [];
    for (let i = 0; i < PARTNER; i++) {
      const row = rows[(i * 7) % rows.length];
      const before = await page.$eval(`#f-${row}-status`, (e) => e.value);
      const value = STATUSES.find((s) => s !== before && s !== STATUSES[i % 4]) || "red";
      bNotice = [];
      bodyFetches = [];
      await new Promise((r) => setTimeout(r, 300));
      const sent = Date.now();
      const watch = page.waitForFunction(
        ([id, v]) => {
          const e = document.getElementById(id);
          return e && e.value === v ? Date.now() : false;
        },
        [`f-${row}-status`, value],
        { polling: 5, timeout: 15_000 },
      );
      const t0 = performance.now();
      await a.post("field", { row, key: "status", value, heads: "" });
      aPost.push(performance.now() - t0);
      const shown = await (await watch).jsonValue();
      total.push(shown - sent);
      const notice = bNotice.find((t) => t >= sent);
      if (notice !== undefined) {
        toB.push(notice - sent);
        bPage.push(shown - notice);
      }
      // The fetch that brought the change: the last one to end before it
      // was on screen.
      const fetched = bodyFetches.filter((f) => f.end <= shown + 1).pop();
      if (fetched && notice !== undefined) {
        fetchStartAfterNotice.push(fetched.start - notice);
        fetchTime.push(fetched.end - fetched.start);
        fetchEndToShown.push(shown - fetched.end);
      }
      raw.push({ sent, notice, fetch: fetched, shown });
    }
    stop();
    return {
      changes: PARTNER,
      a_edit_to_b_screen: quantiles(total),
      a_edit_post: quantiles(aPost),
      a_edit_to_b_app_notice: quantiles(toB),
      b_notice_to_screen: quantiles(bPage),
      b_notice_to_body_fetch_start: quantiles(fetchStartAfterNotice),
      b_body_fetch: quantiles(fetchTime),
      b_body_fetched_to_screen: quantiles(fetchEndToShown),
      raw,
      problems: page.problems,
    };
  } finally {
    await browser.close().catch(() => {});
  }
}

const [mode, ...args] = process.argv.slice(2);
const result = mode === "single" ? await single(...args) : mode === "partner" ? await partner(...args) : null;
if (!result) {
  console.error("usage: node app_bench.mjs single APP DOC | partner APP_A APP_B DOC");
  process.exit(2);
}
console.log(JSON.stringify(result, null, 2));
process.exit(0);
