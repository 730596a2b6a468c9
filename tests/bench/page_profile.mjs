// Where B's page spends its time when a partner's change arrives: a V8
// CPU profile of the page (Chromium's DevTools protocol) over N changes
// made at A, each waited for on B's screen. Prints the time inside the
// page's own functions (outermost call only, so recursion counts once)
// and the top functions by self time. Run by app.sh (BENCH_PROFILE_PAGE=1).
//
//   node page_profile.mjs APP_A APP_B DOC [N]
import { eventually, launch, newPage } from "../browser/lib.mjs";

const [urlA, urlB, doc, n = "10"] = process.argv.slice(2);
const STATUSES = ["red", "amber", "green", "done"];

const pageA = await (await fetch(urlA + "doc/" + doc)).text();
const csrf = /<meta name="csrf" content="([^"]*)"/.exec(pageA)[1];
const rows = [...pageA.matchAll(/<select id="f-([0-9a-f-]{36})-status"/g)].map((m) => m[1]);

const browser = await launch();
try {
  const page = await newPage(browser);
  await eventually(async () => (await page.goto(urlB + "doc/" + doc)).ok(), "the plan arrives at B", 30_000);
  await page.waitForSelector(`#f-${rows[0]}-status`);
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Profiler.enable");
  await cdp.send("Profiler.setSamplingInterval", { interval: 200 });
  await cdp.send("Profiler.start");
  const started = Date.now();
  for (let i = 0; i < Number(n); i++) {
    const row = rows[(i * 5) % rows.length];
    const before = await page.$eval(`#f-${row}-status`, (e) => e.value);
    const value = STATUSES.find((s) => s !== before && s !== STATUSES[i % 4]);
    const watch = page.waitForFunction(
      ([id, v]) => document.getElementById(id)?.value === v,
      [`f-${row}-status`, value],
      { polling: 5, timeout: 15_000 },
    );
    const response = await fetch(urlA + "doc/" + doc + "/field", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf, Origin: urlA.replace(/\/$/, "") },
      body: JSON.stringify({ row, key: "status", value, heads: "" }),
    });
    if (!response.ok) throw new Error("A's edit answered " + response.status);
    await watch;
    await new Promise((r) => setTimeout(r, 300));
  }
  const { profile } = await cdp.send("Profiler.stop");
  const wall = Date.now() - started;

  // Self time per node from the samples.
  const byId = new Map(profile.nodes.map((node) => [node.id, { ...node, self: 0 }]));
  const deltas = profile.timeDeltas;
  for (let i = 0; i < profile.samples.length; i++) {
    const next = deltas[i + 1] ?? 0;
    byId.get(profile.samples[i]).self += next / 1000;
  }
  const parent = new Map();
  for (const node of byId.values()) for (const c of node.children || []) parent.set(c, node.id);
  const inclusive = (id) => {
    const node = byId.get(id);
    return node.self + (node.children || []).reduce((s, c) => s + inclusive(c), 0);
  };
  const names = ["refresh", "morph", "localTimes", "fitAll", "fit"];
  const totals = Object.fromEntries(names.map((name) => [name, 0]));
  for (const node of byId.values()) {
    const name = node.callFrame.functionName;
    if (!names.includes(name)) continue;
    let p = parent.get(node.id);
    let outer = true;
    while (p !== undefined) {
      if (byId.get(p).callFrame.functionName === name) outer = false;
      p = parent.get(p);
    }
    if (outer) totals[name] += inclusive(node.id);
  }
  const self = new Map();
  for (const node of byId.values()) {
    const key = `${node.callFrame.functionName || "(anonymous)"} ${node.callFrame.url.split("/").pop()}:${node.callFrame.lineNumber + 1}`;
    self.set(key, (self.get(key) || 0) + node.self);
  }
  const top = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 15);
  const per = (ms) => Math.round((ms / Number(n)) * 10) / 10;
  console.log(JSON.stringify({
    changes: Number(n),
    profiled_ms: wall,
    per_change_ms_inclusive: Object.fromEntries(names.map((k) => [k, per(totals[k])])),
    top_self_ms_per_change: top.map(([k, v]) => [k, per(v)]),
  }, null, 2));
} finally {
  await browser.close().catch(() => {});
}
process.exit(0);
