#!/usr/bin/env node
// Live editing with the official automerge-repo client: N clients, each in
// its own Repo with its own WebSocketClientAdapter (as N browser tabs at N
// schools would be), edit one action plan (10 areas x 5 actions) every
// --interval-ms, --edits times each, all at once. Then it waits until every
// client holds every edit and all hold the same heads.
//
//   node live-edit.mjs <wsUrl>[,<wsUrl>...] [--clients 9] [--interval-ms 50]
//                      [--edits 50] [--timeout-ms 120000]
//
// Client i connects to the i-th URL (modulo their number), so each can be a
// school of its own (a token each). An edit sets one action's status and
// appends a few words to its notes, and counts the client's edits in
// `edits`, which is how convergence is told.
//
// Output: one JSON line on stdout:
//   {"clients","edits","converge_ms","edit_ms","latency_ms":{"p50","p95","max"},
//    "heads","cpu_ms"}
// converge_ms runs from the first edit until every client holds every edit;
// edit_ms from the first edit to the last one made. An edit's latency runs
// from when it was made until every other client held it. cpu_ms is this
// process's user + system time over the whole run. Exit 1 with {"error"} on
// failure or timeout. Logs go to stderr.

import { Repo, splice } from "@automerge/automerge-repo"
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket"

for (const level of ["log", "info", "warn", "debug"]) {
  console[level] = (...args) => console.error(...args)
}
const log = (...args) => console.error("[live-edit]", ...args)

const opts = { clients: 9, intervalMs: 50, edits: 50, timeoutMs: 120000 }
const positional = []
const argv = process.argv.slice(2)
for (let i = 0; i < argv.length; i++) {
  const flag = argv[i]
  const number = () => {
    const n = Number(argv[++i])
    if (!Number.isFinite(n) || n < 0) fail(`${flag} needs a non-negative number`)
    return n
  }
  switch (flag) {
    case "--clients": opts.clients = number(); break
    case "--interval-ms": opts.intervalMs = number(); break
    case "--edits": opts.edits = number(); break
    case "--timeout-ms": opts.timeoutMs = number(); break
    default:
      if (flag.startsWith("--")) fail(`unknown option ${flag}`)
      positional.push(flag)
  }
}

function fail(message) {
  log("error:", message)
  process.stdout.write(JSON.stringify({ error: String(message) }) + "\n", () => process.exit(1))
  setTimeout(() => process.exit(1), 1000).unref()
  throw new Error(message)
}

const urls = (positional[0] ?? "").split(",").filter(Boolean)
if (urls.length === 0 || !urls.every(u => /^wss?:\/\//.test(u))) {
  fail("usage: node live-edit.mjs <wsUrl>[,<wsUrl>...] [--clients N] [--interval-ms N] [--edits N]")
}
const deadline = performance.now() + opts.timeoutMs
setTimeout(() => fail(`timed out after ${opts.timeoutMs} ms`), opts.timeoutMs).unref()
process.on("uncaughtException", e => fail(`uncaught exception: ${e?.stack ?? e}`))
process.on("unhandledRejection", e => fail(`unhandled rejection: ${e?.stack ?? e}`))

const STATUSES = ["not started", "on track", "at risk", "behind", "complete"]
const AREAS = 10
const ACTIONS = 5

function plan() {
  const areas = []
  for (let a = 0; a < AREAS; a++) {
    const actions = []
    for (let b = 0; b < ACTIONS; b++) {
      actions.push({
        id: `a${a}-${b}`,
        text: `Action ${b + 1} of area ${a + 1}: run a shared staff session on the area's priorities`,
        owner: `Lead ${a + 1}.${b + 1}`,
        due: "2026-07-15",
        status: "not started",
        notes: "Notes:",
      })
    }
    areas.push({ title: `Area ${a + 1}`, objective: `Objective ${a + 1}`, actions })
  }
  return { kind: "actionPlan", title: "Cluster action plan", areas, edits: {} }
}

function waitFor(what, check, emitters, limitMs = opts.timeoutMs) {
  return new Promise((resolve, reject) => {
    const test = () => {
      const value = check()
      if (value) {
        cleanup()
        resolve(value)
      }
    }
    const timer = setTimeout(() => {
      cleanup()
      reject(new Error(`timed out waiting for ${what}`))
    }, limitMs)
    const poll = setInterval(test, 50)
    const cleanup = () => {
      clearTimeout(timer)
      clearInterval(poll)
      for (const [emitter, event] of emitters) emitter.off(event, test)
    }
    for (const [emitter, event] of emitters) emitter.on(event, test)
    test()
  })
}

// Sync messages each way, counted at the clients: how many, and the bytes
// of their Automerge payloads (the wire bytes are counted by a proxy).
const messages = { sent: 0, sent_bytes: 0, received: 0, received_bytes: 0, largest_received: 0 }

function connect(i) {
  const adapter = new WebSocketClientAdapter(urls[i % urls.length], 1000)
  const send = adapter.send.bind(adapter)
  adapter.send = message => {
    messages.sent += 1
    messages.sent_bytes += message.data?.byteLength ?? 0
    return send(message)
  }
  adapter.on("message", message => {
    const size = message.data?.byteLength ?? 0
    messages.received += 1
    messages.received_bytes += size
    messages.largest_received = Math.max(messages.largest_received, size)
  })
  const repo = new Repo({ network: [adapter] })
  return waitFor(`client ${i} to connect`, () => repo.peers[0] && repo, [[repo.networkSubsystem, "peer"]])
}

const percentile = (sorted, p) =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : null

const cpuStart = process.cpuUsage()
const repos = await Promise.all(Array.from({ length: opts.clients }, (_, i) => connect(i)))
log(`${repos.length} clients connected`)

// The first client creates the plan; it is on the server once the server
// says it holds its heads.
const first = repos[0].create(plan())
const serverPeer = repos[0].peers[0]
await waitFor(
  "the server to hold the new plan",
  () => {
    const storageId = repos[0].getStorageIdOfPeer(serverPeer)
    const theirs = storageId && first.getSyncInfo(storageId)?.lastHeads
    return theirs && first.heads().every(h => theirs.includes(h))
  },
  [[first, "remote-heads"]],
)
const handles = [first]
for (const repo of repos.slice(1)) {
  handles.push(await repo.find(first.url))
}
log("every client holds the plan")

// Who has seen which edit, and when: seen[k][i] = time every client held
// client i's k-th edit.
const made = Array.from({ length: opts.clients }, () => [])
const seenBy = Array.from({ length: opts.clients }, () =>
  Array.from({ length: opts.clients }, () => 0),
)
const latencies = []
const total = opts.clients * opts.edits

function observe(j) {
  const doc = handles[j].doc()
  const now = performance.now()
  for (let i = 0; i < opts.clients; i++) {
    const count = doc.edits?.[`c${i}`] ?? 0
    while (seenBy[i][j] < count) {
      const k = seenBy[i][j]++
      if (i === j) continue
      // Latency is complete once the last of the others has it.
      if (seenBy[i].every((n, other) => other === i || n > k)) {
        latencies.push(now - made[i][k])
      }
    }
  }
}
handles.forEach((handle, j) => handle.on("change", () => observe(j)))

const start = performance.now()
let lastEdit = start
const editing = handles.map(
  (handle, i) =>
    new Promise(resolve => {
      let k = 0
      const edit = () => {
        const action = (i * 7 + k * 3) % (AREAS * ACTIONS)
        const area = Math.floor(action / ACTIONS)
        const row = action % ACTIONS
        made[i][k] = performance.now()
        handle.change(d => {
          const target = d.areas[area].actions[row]
          target.status = STATUSES[(k + i) % STATUSES.length]
          splice(d, ["areas", area, "actions", row, "notes"], target.notes.length, 0, ` [${i}.${k}] checked`)
          d.edits[`c${i}`] = k + 1
        })
        k += 1
        if (k >= opts.edits) {
          lastEdit = Math.max(lastEdit, performance.now())
          resolve()
        } else {
          setTimeout(edit, opts.intervalMs)
        }
      }
      // Spread the clients' first edits across one interval.
      setTimeout(edit, (i * opts.intervalMs) / opts.clients)
    }),
)
await Promise.all(editing)
log("every edit made")

const sameHeads = () => {
  const heads = handles.map(h => [...h.heads()].sort().join(","))
  return heads.every(h => h === heads[0])
}
await waitFor(
  "every client to hold every edit",
  () => latencies.length === total && sameHeads(),
  handles.map(h => [h, "change"]),
  Math.max(1000, deadline - performance.now() - 1000),
).catch(e => {
  const have = handles.map(h => Object.values(h.doc().edits ?? {}).reduce((a, b) => a + b, 0))
  fail(`${e.message}; edits held per client: ${have.join(", ")} of ${total}; ${latencies.length} seen by all; same heads: ${sameHeads()}`)
})
const converged = performance.now()
const cpu = process.cpuUsage(cpuStart)
latencies.sort((a, b) => a - b)
const round = x => (x === null ? null : Math.round(x * 10) / 10)
const result = {
  clients: opts.clients,
  edits: total,
  converge_ms: round(converged - start),
  edit_ms: round(lastEdit - start),
  latency_ms: {
    p50: round(percentile(latencies, 50)),
    p95: round(percentile(latencies, 95)),
    max: round(latencies[latencies.length - 1] ?? null),
  },
  heads: handles[0].heads(),
  cpu_ms: Math.round((cpu.user + cpu.system) / 1000),
  messages,
}
await Promise.race([
  Promise.all(repos.map(r => r.shutdown().catch(() => {}))),
  new Promise(res => setTimeout(res, 2000).unref()),
])
process.stdout.write(JSON.stringify(result) + "\n", () => process.exit(0))
