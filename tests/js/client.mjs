#!/usr/bin/env node
// A one-shot automerge-repo JavaScript client for the partnerplan end-to-end
// tests. It uses the stock JS stack (Repo + WebSocketClientAdapter, no
// storage) exactly as a browser app would, so the Rust tests can check that
// our relay interoperates with real automerge-repo 2.5.x clients.
//
//   node client.mjs create         <wsUrl> <jsonObject>
//   node client.mjs read           <wsUrl> <automergeUrl>
//   node client.mjs wait-for       <wsUrl> <automergeUrl> <key> <expectedJson>
//   node client.mjs set            <wsUrl> <automergeUrl> <key> <json>
//   node client.mjs expect-refused <wsUrl>
//
// Options (anywhere on the line):
//   --timeout-ms N          bound for the whole command (default 15000)
//   --retry-ms N            reconnect interval of the WebSocket adapter (default 1000)
//   --protocol-versions a,b expect-refused: versions offered in `join` (default "1")
//   --garbage               expect-refused: send a non-CBOR frame instead of `join`
//   --oversize-bytes N      expect-refused: after `peer`, send an ephemeral message
//                           carrying N bytes of data
//
// Output: exactly one JSON line on stdout. Exit 0 on success; on failure exit 1
// with {"error": "..."}. Everything else (logs) goes to stderr.

import { isDeepStrictEqual } from "node:util"
import WebSocket from "ws"
import {
  Repo,
  cbor,
  decodeHeads,
  isValidAutomergeUrl,
} from "@automerge/automerge-repo"
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket"

// ---------------------------------------------------------------- plumbing

// Keep stdout for the single result line: libraries sometimes console.log.
for (const level of ["log", "info", "warn", "debug"]) {
  console[level] = (...args) => console.error(...args)
}
const log = (...args) => console.error("[client]", ...args)

let finished = false
let repo = null

function writeLineAndExit(obj, code) {
  if (finished) return
  finished = true
  const line = JSON.stringify(obj) + "\n"
  const exit = () => process.exit(code)
  // Pipes are synchronous on Linux, but don't rely on it; never hang either.
  setTimeout(exit, 1000).unref()
  process.stdout.write(line, exit)
}

async function shutdownRepo() {
  if (!repo) return
  const r = repo
  repo = null
  // shutdown() throws "Assertion failed" if the adapter never connected, and
  // must never keep us from exiting.
  await Promise.race([
    Promise.resolve()
      .then(() => r.shutdown())
      .catch(e => log("repo.shutdown failed (ignored):", e?.message ?? e)),
    new Promise(res => setTimeout(res, 2000).unref()),
  ])
}

async function succeed(obj) {
  await shutdownRepo()
  writeLineAndExit(obj, 0)
}

async function fail(message) {
  log("error:", message)
  await shutdownRepo()
  writeLineAndExit({ error: String(message) }, 1)
}

class Usage extends Error {}

// The Node WebSocket adapter rethrows socket errors other than ECONNREFUSED
// (e.g. "Unexpected server response: 401", ECONNRESET) from an event
// listener, which would crash the process. Turn them into a clean failure.
let uncaughtHook = null
process.on("uncaughtException", e => {
  log("uncaught exception:", e?.stack ?? e)
  if (uncaughtHook) return uncaughtHook(e)
  fail(`uncaught exception: ${e?.message ?? e}`)
})
process.on("unhandledRejection", e => {
  log("unhandled rejection:", e?.stack ?? e)
  if (uncaughtHook) return uncaughtHook(e)
  fail(`unhandled rejection: ${e?.message ?? e}`)
})

function parseArgs(argv) {
  const opts = {
    timeoutMs: 15000,
    retryMs: 1000,
    protocolVersions: ["1"],
    garbage: false,
    oversizeBytes: 0,
  }
  const positional = []
  const num = (name, v) => {
    const n = Number(v)
    if (v === undefined || !Number.isFinite(n) || n < 0) throw new Usage(`${name} needs a non-negative number`)
    return n
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const [flag, inline] = a.startsWith("--") && a.includes("=") ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)] : [a, undefined]
    const value = () => (inline !== undefined ? inline : argv[++i])
    switch (flag) {
      case "--timeout-ms": opts.timeoutMs = num(flag, value()); break
      case "--retry-ms": opts.retryMs = num(flag, value()); break
      case "--protocol-versions": {
        const v = value()
        if (v === undefined) throw new Usage(`${flag} needs a value`)
        opts.protocolVersions = v === "" ? [] : v.split(",")
        break
      }
      case "--garbage": opts.garbage = true; break
      case "--oversize-bytes": opts.oversizeBytes = num(flag, value()); break
      default:
        if (a.startsWith("--")) throw new Usage(`unknown option ${a}`)
        positional.push(a)
    }
  }
  return { opts, positional }
}

function parseJson(what, text) {
  try {
    return JSON.parse(text)
  } catch (e) {
    throw new Usage(`${what} is not valid JSON: ${e.message}`)
  }
}

function checkWsUrl(u) {
  if (!/^wss?:\/\//.test(u ?? "")) throw new Usage(`expected a ws:// URL, got ${JSON.stringify(u)}`)
  return u
}

function checkDocUrl(u) {
  if (!isValidAutomergeUrl(u)) throw new Usage(`invalid automerge URL ${JSON.stringify(u)}`)
  return u
}

// Automerge values -> plain JSON. Strings (text objects are strings in
// Automerge 3) stay strings; ImmutableString -> string, Counter -> number,
// Date -> ISO string, bytes -> array of numbers, int64 BigInt -> number.
function toPlain(v) {
  if (v === null || v === undefined) return null
  if (typeof v === "string" || typeof v === "boolean") return v
  if (typeof v === "number") return Number.isFinite(v) ? v : null
  if (typeof v === "bigint") return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString()
  if (v instanceof Date) return v.toISOString()
  if (v instanceof Uint8Array) return Array.from(v)
  if (Array.isArray(v)) return v.map(toPlain)
  if (typeof v === "object") {
    if (typeof v.toJSON === "function") return toPlain(v.toJSON()) // ImmutableString, Counter
    const out = {}
    for (const k of Object.keys(v)) out[k] = toPlain(v[k])
    return out
  }
  return String(v)
}

// ----------------------------------------------------------------- waiting

let deadline = 0

// Resolves once check() is truthy. Re-checks on every event in `on`
// ([emitter, eventName] pairs) and every 100 ms; rejects at the deadline.
function waitUntil(what, check, on = []) {
  return new Promise((resolve, reject) => {
    let done = false
    const listeners = []
    const finish = (err, value) => {
      if (done) return
      done = true
      clearTimeout(timer)
      clearInterval(poll)
      for (const [em, ev, fn] of listeners) em.off(ev, fn)
      err ? reject(err) : resolve(value)
    }
    const test = () => {
      if (done) return
      try {
        const v = check()
        if (v) finish(null, v)
      } catch (e) {
        finish(e)
      }
    }
    const remaining = Math.max(0, deadline - Date.now())
    const timer = setTimeout(() => finish(new Error(`timed out after ${opts.timeoutMs} ms waiting for ${what}`)), remaining)
    const poll = setInterval(test, 100)
    for (const [em, ev] of on) {
      em.on(ev, test)
      listeners.push([em, ev, test])
    }
    test()
  })
}

function withDeadline(what, promise) {
  return new Promise((resolve, reject) => {
    const remaining = Math.max(0, deadline - Date.now())
    const timer = setTimeout(() => reject(new Error(`timed out after ${opts.timeoutMs} ms waiting for ${what}`)), remaining)
    promise.then(
      v => { clearTimeout(timer); resolve(v) },
      e => { clearTimeout(timer); reject(e) },
    )
  })
}

// ------------------------------------------------------------- repo helpers

let server = null // { peerId, storageId }
const theirHeadsByDoc = new Map() // documentId -> hex heads, from the synchronizer

async function connect(wsUrl) {
  repo = new Repo({ network: [new WebSocketClientAdapter(wsUrl, opts.retryMs)] })
  repo.synchronizer.on("sync-state", ({ peerId, documentId, syncState }) => {
    if (server && peerId === server.peerId && syncState.theirHeads) {
      theirHeadsByDoc.set(documentId, syncState.theirHeads)
    }
  })
  const peerId = await waitUntil(
    `the server's "peer" message from ${wsUrl} (is the server running?)`,
    () => repo.peers[0],
    [[repo.networkSubsystem, "peer"]],
  )
  const storageId = repo.getStorageIdOfPeer(peerId)
  server = { peerId, storageId }
  log(`connected to ${peerId}`, storageId ? `storageId ${storageId}` : "(no storageId advertised)")
}

const hexHeads = handle => decodeHeads(handle.heads())

// The heads the server last told us it has (hex), and how we learnt them.
function serverHeads(handle) {
  if (server.storageId) {
    const info = handle.getSyncInfo(server.storageId)
    if (info?.lastHeads) return { heads: decodeHeads(info.lastHeads), via: "storageId" }
  }
  const heads = theirHeadsByDoc.get(handle.documentId)
  if (heads) return { heads, via: "sync-state" }
  return null
}

// Waits until the server has every change we have.
async function waitServerHasAll(handle, what) {
  return waitUntil(
    `the server to confirm ${what}`,
    () => {
      const theirs = serverHeads(handle)
      if (!theirs) return null
      const ours = hexHeads(handle)
      return ours.every(h => theirs.heads.includes(h)) ? theirs.via : null
    },
    [
      [handle, "remote-heads"],
      [handle, "heads-changed"],
      [repo.synchronizer, "sync-state"],
    ],
  )
}

async function find(docUrl, allowableStates = ["ready"]) {
  const controller = new AbortController()
  try {
    return await withDeadline(`document ${docUrl}`, repo.find(docUrl, { allowableStates, signal: controller.signal }))
  } finally {
    controller.abort()
  }
}

function describeDoc(handle) {
  return { doc: toPlain(handle.doc()), heads: hexHeads(handle) }
}

// --------------------------------------------------------------- commands

async function cmdCreate([wsUrl, json]) {
  checkWsUrl(wsUrl)
  const initial = parseJson("the initial content", json)
  if (initial === null || typeof initial !== "object" || Array.isArray(initial)) {
    throw new Usage("the initial content must be a JSON object")
  }
  await connect(wsUrl)
  const handle = repo.create(initial)
  log("created", handle.url)
  const via = await waitServerHasAll(handle, `document ${handle.url}`)
  return {
    url: handle.url,
    document_id: handle.documentId,
    heads: hexHeads(handle),
    url_heads: handle.heads(),
    confirmed_via: via,
  }
}

async function cmdRead([wsUrl, docUrl]) {
  checkWsUrl(wsUrl)
  checkDocUrl(docUrl)
  await connect(wsUrl)
  const handle = await find(docUrl)
  // find() resolves on the first sync message that changes the doc; also
  // make sure we have caught up with everything the server told us it has.
  await waitUntil(
    `catching up with the server's copy of ${docUrl}`,
    () => {
      const theirs = serverHeads(handle)
      return theirs && theirs.heads.every(h => hexHeads(handle).includes(h))
    },
    [
      [handle, "remote-heads"],
      [handle, "heads-changed"],
      [repo.synchronizer, "sync-state"],
    ],
  )
  return describeDoc(handle)
}

async function cmdWaitFor([wsUrl, docUrl, key, expectedJson]) {
  checkWsUrl(wsUrl)
  checkDocUrl(docUrl)
  if (key === undefined) throw new Usage("missing <key>")
  const expected = parseJson("the expected value", expectedJson)
  await connect(wsUrl)
  // Accept "unavailable": the document may reach the server later, and the
  // server then pushes it to us.
  const handle = await find(docUrl, ["ready", "unavailable"])
  let last
  await waitUntil(
    `doc[${JSON.stringify(key)}] to equal ${JSON.stringify(expected)} (last seen: ${JSON.stringify(last) ?? "document unavailable"})`,
    () => {
      if (!handle.isReady()) return false
      const doc = handle.doc()
      last = toPlain(doc?.[key])
      return isDeepStrictEqual(last, expected)
    },
    [[handle, "change"]],
  ).catch(e => {
    const seen = handle.isReady() ? `; last seen ${JSON.stringify(last)}` : "; the document never became available"
    throw new Error(`timed out after ${opts.timeoutMs} ms waiting for doc[${JSON.stringify(key)}] to equal ${JSON.stringify(expected)}${seen}`, { cause: e })
  })
  return describeDoc(handle)
}

async function cmdSet([wsUrl, docUrl, key, json]) {
  checkWsUrl(wsUrl)
  checkDocUrl(docUrl)
  if (key === undefined) throw new Usage("missing <key>")
  const value = parseJson("the value", json)
  await connect(wsUrl)
  const handle = await find(docUrl)
  handle.change(d => {
    d[key] = value
  })
  const via = await waitServerHasAll(handle, `the change to ${docUrl}`)
  return { ...describeDoc(handle), confirmed_via: via }
}

// Connects with a raw `ws` socket, does the same handshake as the JS adapter
// (or a deliberately bad one), and reports how the server refuses us.
async function cmdExpectRefused([wsUrl]) {
  checkWsUrl(wsUrl)
  const senderId = "peer-expect-refused-" + Math.random().toString(36).slice(2, 10)
  const report = { error_message: null, closed: false, close_code: null, http_status: null, peer_received: false }
  return new Promise((resolve, reject) => {
    let settled = false
    let graceTimer
    const settle = (err, v) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      clearTimeout(graceTimer)
      uncaughtHook = null
      try { socket.terminate() } catch {}
      err ? reject(err) : resolve(v)
    }
    const refused = () => settle(null, { ...report, closed: true })
    const timer = setTimeout(() => {
      settle(new Error(report.peer_received
        ? `the server accepted the connection (sent "peer") and did not close it within ${opts.timeoutMs} ms`
        : `timed out after ${opts.timeoutMs} ms: the server neither answered nor closed the connection`))
    }, Math.max(0, deadline - Date.now()))
    uncaughtHook = e => {
      report.error_message ??= String(e?.message ?? e)
      refused()
    }

    const socket = new WebSocket(wsUrl)
    socket.binaryType = "nodebuffer"
    socket.on("unexpected-response", (_req, res) => {
      report.http_status = res.statusCode
      report.error_message ??= `Unexpected server response: ${res.statusCode}`
      res.resume()
      refused()
    })
    socket.on("error", e => {
      if (e?.code === "ECONNREFUSED") return settle(new Error(`could not connect to ${wsUrl}: ${e.message}`))
      report.error_message ??= String(e?.message ?? e)
      log("socket error:", e?.message ?? e)
    })
    socket.on("open", () => {
      if (opts.garbage) {
        log("sending a non-CBOR frame instead of join")
        socket.send(Buffer.from([0xff, 0xfe, 0xfd, 0x00, 0x01]))
        return
      }
      const join = {
        type: "join",
        senderId,
        peerMetadata: { storageId: undefined, isEphemeral: true },
        supportedProtocolVersions: opts.protocolVersions,
      }
      log("sending join", JSON.stringify({ ...join, peerMetadata: { isEphemeral: true } }))
      socket.send(cbor.encode(join))
    })
    socket.on("message", (data, isBinary) => {
      let msg
      try {
        msg = cbor.decode(new Uint8Array(data))
      } catch (e) {
        log(`undecodable ${isBinary ? "binary" : "text"} frame (${data.length} bytes)`)
        return
      }
      log("received", msg?.type)
      if (msg?.type === "error") {
        report.error_message = String(msg.message)
        // The server is expected to close next; don't wait for it forever.
        graceTimer = setTimeout(refused, 1000)
      } else if (msg?.type === "peer") {
        report.peer_received = true
        if (opts.oversizeBytes > 0) {
          log(`sending an ephemeral message with ${opts.oversizeBytes} bytes of data`)
          socket.send(cbor.encode({
            type: "ephemeral",
            senderId,
            targetId: msg.senderId,
            documentId: "3a2qLHPfsC2NUC5ywZUPyYPgNM7m",
            count: 1,
            sessionId: "expectrefused",
            data: new Uint8Array(opts.oversizeBytes),
          }))
        } else {
          // Accepted. Give the server a moment in case it refuses late.
          graceTimer = setTimeout(
            () => settle(new Error(`the server accepted the connection (sent "peer" as ${msg.senderId})`)),
            Math.min(1000, Math.max(0, deadline - Date.now())),
          )
        }
      }
    })
    socket.on("close", (code, reason) => {
      report.close_code = code
      if (reason?.length) report.close_reason = reason.toString()
      refused()
    })
  })
}

// -------------------------------------------------------------------- main

const commands = {
  create: [cmdCreate, 2],
  read: [cmdRead, 2],
  "wait-for": [cmdWaitFor, 4],
  set: [cmdSet, 4],
  "expect-refused": [cmdExpectRefused, 1],
}

let opts
try {
  const parsed = parseArgs(process.argv.slice(2))
  opts = parsed.opts
  const [name, ...args] = parsed.positional
  const entry = commands[name]
  if (!entry) throw new Usage(`usage: client.mjs <${Object.keys(commands).join("|")}> ARGS... [--timeout-ms N]`)
  if (args.length !== entry[1]) throw new Usage(`${name} takes ${entry[1]} argument(s), got ${args.length}`)
  deadline = Date.now() + opts.timeoutMs
  // Last-resort watchdog in case something ignores the deadline.
  setTimeout(() => fail(`watchdog: gave up after ${opts.timeoutMs} ms`), opts.timeoutMs + 3000).unref()
  const result = await entry[0](args)
  await succeed(result)
} catch (e) {
  await fail(e?.message ?? e)
}
