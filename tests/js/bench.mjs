#!/usr/bin/env node
// The official automerge-repo 2.5 client in the sync benchmark
// (tests/src/bin/sync_bench.rs), doing what our own client does there, so
// the bytes and times compare. Edits go to the seed action plan as our
// model writes it: an action's `status`, and text appended to its `notes`.
//
//   node bench.mjs offline <wsUrl> <automergeUrl> <storageDir> <k>
//       Fetches the plan into storage, disconnects, makes k edits offline
//       (a status change, then a sentence appended to notes, in turn),
//       prints {"ready":true} and waits for a line on stdin; then
//       reconnects and prints {"synced":true,"ms":N} once the server's
//       sync state holds every edit.
//   node bench.mjs pair <wsUrlA> <wsUrlB> <automergeUrl> <n> <gapMs>
//       Two clients on their own lines fetch the plan, print
//       {"ready":true} and wait for a line on stdin; then A makes n status
//       edits gapMs apart; prints {"latencies":[ms...]}, each from A's
//       edit to B seeing it.
//
// Output: one JSON line on stdout; logs on stderr. Every wait is bounded.

import { Repo } from "@automerge/automerge-repo"
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket"
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs"
import * as A from "@automerge/automerge"
import readline from "node:readline"

for (const level of ["log", "info", "warn", "debug"]) {
  console[level] = (...args) => console.error(...args)
}

const LIMIT_MS = 600_000
setTimeout(() => {
  process.stdout.write(JSON.stringify({ error: "timed out" }) + "\n")
  process.exit(1)
}, LIMIT_MS).unref()

const sleep = ms => new Promise(r => setTimeout(r, ms))

async function until(what, check, limitMs = 300_000) {
  const end = Date.now() + limitMs
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(10)
  }
}

/** A repo; with a URL, once it has its server as a peer (over a slow
 *  line, a `find` asked before that finds nothing). */
async function repo({ url, dir }) {
  const r = new Repo({
    // The adapter replaces a socket that has not opened within its retry
    // interval: over a 300 ms line the upgrade alone takes 600 ms, so a
    // short interval never connects. 5 s is the adapter's own default.
    network: url ? [new WebSocketClientAdapter(url, 5000)] : [],
    storage: dir ? new NodeFSStorageAdapter(dir) : undefined,
    sharePolicy: async () => true,
  })
  if (url) await until("the server as a peer", () => r.peers.length > 0)
  return r
}

/** Paths of every action of the plan: ["areas", a, "actions", b]. */
function actionPaths(doc) {
  const paths = []
  ;(doc.areas ?? []).forEach((area, a) =>
    (area.actions ?? []).forEach((_, b) => paths.push(["areas", a, "actions", b])),
  )
  return paths
}

function at(doc, path) {
  return path.reduce((obj, key) => obj[key], doc)
}

/** Edit i as our model makes it: a status, or a sentence on the notes. */
function edit(handle, paths, i) {
  const statuses = ["amber", "green", "done", "red"]
  const path = paths[i % paths.length]
  handle.change(d => {
    const action = at(d, path)
    if (i % 2 === 0) {
      action.status = statuses[Math.floor(i / 2) % 4]
    } else {
      const notes = [...path, "notes"]
      const len = (at(d, notes) ?? "").length
      A.splice(d, notes, len, 0, ` Checked with the head on visit ${i}; evidence filed.`)
    }
  })
}

function serverStorageId(r) {
  return Object.values(r.peerMetadataByPeerId).find(m => m?.storageId)?.storageId
}

async function offline([url, docUrl, dir, k]) {
  // Fetch the plan and keep it (and the sync state) in storage.
  let r = await repo({ url, dir })
  let handle = await r.find(docUrl)
  await until("the plan", () => handle.doc()?.areas)
  await until("the server's storage id", () => serverStorageId(r))
  await sleep(1000)
  await r.shutdown()
  // Offline: edits into storage only.
  r = await repo({ dir })
  handle = await r.find(docUrl)
  const paths = actionPaths(handle.doc())
  for (let i = 0; i < Number(k); i++) edit(handle, paths, i)
  await r.flush()
  await r.shutdown()
  process.stdout.write(JSON.stringify({ ready: true }) + "\n")
  const lines = readline.createInterface({ input: process.stdin })
  await new Promise(res => lines.once("line", res))
  // Back online.
  const start = Date.now()
  r = await repo({ url, dir })
  handle = await r.find(docUrl)
  const heads = JSON.stringify(handle.heads())
  await until("the server to hold every edit", () => {
    const id = serverStorageId(r)
    const info = id && handle.getSyncInfo(id)
    return info && JSON.stringify(info.lastHeads) === heads
  })
  const ms = Date.now() - start
  await r.flush()
  process.stdout.write(JSON.stringify({ synced: true, ms }) + "\n")
  await sleep(500)
  process.exit(0)
}

async function pair([urlA, urlB, docUrl, n, gapMs]) {
  const a = await repo({ url: urlA })
  const b = await repo({ url: urlB })
  const ha = await a.find(docUrl)
  const hb = await b.find(docUrl)
  await until("both hold the plan", () => ha.doc()?.areas && hb.doc()?.areas)
  await sleep(2000)
  process.stdout.write(JSON.stringify({ ready: true }) + "\n")
  const lines = readline.createInterface({ input: process.stdin })
  await new Promise(res => lines.once("line", res))
  const paths = actionPaths(ha.doc())
  const latencies = []
  for (let i = 0; i < Number(n); i++) {
    const path = paths[i % paths.length]
    const status = ["amber", "green", "done", "red"][i % 4]
    const started = Date.now()
    ha.change(d => {
      at(d, path).status = status
    })
    await until(`edit ${i} at B`, () => at(hb.doc(), path).status === status, 60_000)
    latencies.push(Date.now() - started)
    await sleep(Number(gapMs))
  }
  process.stdout.write(JSON.stringify({ latencies }) + "\n")
  process.exit(0)
}

const [command, ...args] = process.argv.slice(2)
const commands = { offline, pair }
if (!commands[command]) {
  process.stdout.write(JSON.stringify({ error: `unknown command ${command}` }) + "\n")
  process.exit(2)
}
commands[command](args).catch(e => {
  console.error(e)
  process.stdout.write(JSON.stringify({ error: String(e?.message ?? e) }) + "\n")
  process.exit(1)
})
