#!/usr/bin/env node
// A school's official automerge-repo client joining late: it opens every
// document it is given (one id a line) with repo.find, all at once, as an
// app that lists a partnership's plans would, and reports when it holds
// them all.
//
//   node cold-join.mjs <wsUrl> <idsFile> [--timeout-ms 300000]
//
// Output: one JSON line on stdout:
//   {"documents","found","secs","cpu_ms"}
// secs runs from the first find to the last document ready; cpu_ms is this
// process's user + system time over the whole run. Exit 1 with {"error"}
// on failure or timeout. Logs go to stderr.

import fs from "node:fs"
import { Repo } from "@automerge/automerge-repo"
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket"

for (const level of ["log", "info", "warn", "debug"]) {
  console[level] = (...args) => console.error(...args)
}

function fail(message) {
  console.error("[cold-join] error:", message)
  process.stdout.write(JSON.stringify({ error: String(message) }) + "\n", () => process.exit(1))
  setTimeout(() => process.exit(1), 1000).unref()
}

const args = process.argv.slice(2)
let timeoutMs = 300000
const positional = []
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--timeout-ms") timeoutMs = Number(args[++i])
  else positional.push(args[i])
}
const [url, idsFile] = positional
if (!/^wss?:\/\//.test(url ?? "") || !idsFile) {
  fail("usage: node cold-join.mjs <wsUrl> <idsFile> [--timeout-ms N]")
} else {
  setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs).unref()
  const ids = fs
    .readFileSync(idsFile, "utf8")
    .split("\n")
    .map(line => line.trim())
    .filter(Boolean)
    .map(id => (id.startsWith("automerge:") ? id : `automerge:${id}`))
  const cpuStart = process.cpuUsage()
  const repo = new Repo({ network: [new WebSocketClientAdapter(url, 1000)] })
  await new Promise(resolve => {
    const check = () => repo.peers.length > 0 && resolve()
    repo.networkSubsystem.on("peer", check)
    check()
  })
  const started = performance.now()
  let found = 0
  const handles = await Promise.all(
    ids.map(id =>
      repo.find(id).then(handle => {
        found += 1
        if (found % 200 === 0) console.error(`[cold-join] ${found} of ${ids.length}`)
        return handle
      }),
    ),
  ).catch(e => fail(`a document could not be found: ${e?.message ?? e}`))
  if (handles) {
    const secs = (performance.now() - started) / 1000
    const cpu = process.cpuUsage(cpuStart)
    const result = {
      documents: ids.length,
      found: handles.filter(h => h.isReady()).length,
      secs: Math.round(secs * 100) / 100,
      cpu_ms: Math.round((cpu.user + cpu.system) / 1000),
    }
    await Promise.race([repo.shutdown().catch(() => {}), new Promise(res => setTimeout(res, 2000).unref())])
    process.stdout.write(JSON.stringify(result) + "\n", () => process.exit(0))
  }
}
