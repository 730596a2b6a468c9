// Splits a partner's change (app_bench.mjs partner, with
// BENCH_STRACE_RELAY set in app.sh) into its legs, from the relay's
// socket reads and writes as strace timed them:
//   A: edit sent to A's app -> the relay reads the change from A
//   relay: read from A -> written to B
//   B: written to B -> B's app announces the change (its SSE "doc" event)
// then B's page: the announcement -> the body fetched -> on screen.
//
//   node partner_legs.mjs OUT/partner.json RELAY_STRACE
//
// A change's frame is told from acknowledgements by its size (a sync
// message carrying a change is over 300 bytes on this plan; one with only
// heads is about 240).
import { readFileSync } from "node:fs";

const [jsonPath, stracePath] = process.argv.slice(2);
const result = JSON.parse(readFileSync(jsonPath, "utf8"));
const CHANGE_BYTES = 300;

const events = [];
for (const line of readFileSync(stracePath, "utf8").split("\n")) {
  const m = /^\d+\s+(\d+\.\d+) (recvfrom|sendto|read|write|writev)\((\d+),.*\) = (\d+)$/.exec(line);
  if (!m) continue;
  const [, at, call, fd, bytes] = m;
  if (Number(bytes) < CHANGE_BYTES) continue;
  events.push({ at: Number(at) * 1000, dir: call.startsWith("recv") || call === "read" ? "in" : "out", fd: Number(fd) });
}

function quantiles(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q) => s[Math.round((s.length - 1) * q)];
  const r = (x) => Math.round(x * 10) / 10;
  return { n: s.length, p50: r(at(0.5)), p95: r(at(0.95)), max: r(s[s.length - 1]) };
}

const legs = { a_to_relay: [], relay: [], relay_to_b_notice: [], notice_to_fetch: [], fetch: [], fetched_to_screen: [], total: [] };
for (const change of result.raw) {
  const got = events.find((e) => e.dir === "in" && e.at >= change.sent - 1);
  if (!got || change.notice === undefined) continue;
  const out = events.find((e) => e.dir === "out" && e.fd !== got.fd && e.at >= got.at);
  if (!out || out.at > change.notice + 1) continue;
  legs.a_to_relay.push(got.at - change.sent);
  legs.relay.push(out.at - got.at);
  legs.relay_to_b_notice.push(change.notice - out.at);
  if (change.fetch) {
    legs.notice_to_fetch.push(change.fetch.start - change.notice);
    legs.fetch.push(change.fetch.end - change.fetch.start);
    legs.fetched_to_screen.push(change.shown - change.fetch.end);
  }
  legs.total.push(change.shown - change.sent);
}
const out = {};
for (const [k, v] of Object.entries(legs)) out[k] = quantiles(v);
console.log(JSON.stringify(out, null, 2));
