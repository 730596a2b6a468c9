#!/usr/bin/env node
// The reference automerge-repo sync server (as automerge-repo-sync-server
// runs it): Repo + NodeWSServerAdapter + NodeFSStorageAdapter, sharePolicy
// false, so it syncs a document only with peers that ask for it.
//
//   node reference-server.mjs <port> <dataDir>
//
// Listens on 127.0.0.1 only. Port 0 picks a free port. Prints exactly
// `listening <port>` on stdout once listening (logs go to stderr), and exits 0
// on SIGTERM or SIGINT after flushing storage.

import os from "node:os"
import { WebSocketServer } from "ws"
import { Repo } from "@automerge/automerge-repo"
import { NodeWSServerAdapter } from "@automerge/automerge-repo-network-websocket"
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs"

for (const level of ["log", "info", "warn", "debug"]) {
  console[level] = (...args) => console.error(...args)
}

const [portArg, dir] = process.argv.slice(2)
const port = Number(portArg)
if (portArg === undefined || !Number.isInteger(port) || port < 0 || port > 65535 || !dir) {
  console.error("usage: node reference-server.mjs <port|0> <dataDir>")
  process.exit(2)
}

const wss = new WebSocketServer({ host: "127.0.0.1", port })
wss.on("error", e => {
  console.error(`reference-server: could not listen on 127.0.0.1:${port}: ${e.message}`)
  process.exit(1)
})

const repo = new Repo({
  network: [new NodeWSServerAdapter(wss)],
  storage: new NodeFSStorageAdapter(dir),
  peerId: `storage-server-${os.hostname()}`,
  sharePolicy: async () => false,
})

wss.on("listening", () => {
  process.stdout.write(`listening ${wss.address().port}\n`)
})

let stopping = false
async function stop(signal) {
  if (stopping) return
  stopping = true
  console.error(`reference-server: ${signal}, stopping`)
  setTimeout(() => process.exit(0), 3000).unref()
  try {
    for (const client of wss.clients) client.terminate()
    wss.close()
    await repo.flush()
  } catch (e) {
    console.error("reference-server: error while stopping:", e?.message ?? e)
  }
  process.exit(0)
}
process.on("SIGTERM", () => stop("SIGTERM"))
process.on("SIGINT", () => stop("SIGINT"))
