#!/usr/bin/env bash
# Load benchmark: our relay against the Node reference sync server, and a
# check that our relay stays flat from 1,000 to 10,000 stored documents.
#
#   tests/bench/compare.sh
#
# 1. Builds release binaries and makes sure tests/js has its node_modules.
# 2. Runs the same load (partnerplan-load: seed, fetch, edit fan-out)
#    against our relay and against tests/js/reference-server.mjs, each on a
#    random 127.0.0.1 port with a fresh data directory, REPEATS times,
#    alternating (ours, node, ours, node...), and prints a side-by-side
#    table of medians with ratios.
# 3. Flat check: seeds FLAT_SMALL documents into a relay's data directory,
#    copies it, and seeds the copy up to FLAT_LARGE documents. Then it runs
#    the same edit workload against each, alternating small and large, each
#    run on its own FLAT_SUBSET documents taken from the first FLAT_SMALL
#    (so every run edits documents of the same kind that were never edited
#    before), and the relay restarted before each run: every run starts
#    cold, with only what is on disk.
#
# Every server is stopped at the end (trap). Results (JSON per run, logs,
# the table) are kept in $BENCH_OUT (default: a new /tmp directory).
#
# Scale it with environment variables (defaults in brackets):
#   BENCH_CLIENTS [50]  BENCH_DOCS [1000]  BENCH_EDITS [60]
#   BENCH_SUBSCRIBERS [3]  BENCH_IN_FLIGHT [1]  BENCH_ROWS [30]  BENCH_REPEATS [2]
#   BENCH_FLAT_SMALL [1000]  BENCH_FLAT_LARGE [10000]  BENCH_FLAT_SUBSET [100]
#   BENCH_FLAT_REPEATS [5]  BENCH_SKIP_FLAT [0]  BENCH_SKIP_NODE [0]
#   BENCH_TIMEOUT [120] (seconds per phase; seeding gets 3x)
#   BENCH_SKIP_BUILD [0]  BENCH_OUT [mktemp -d]  BENCH_KEEP_DATA [0]

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

CLIENTS=${BENCH_CLIENTS:-50}
DOCS=${BENCH_DOCS:-1000}
EDITS=${BENCH_EDITS:-60}
SUBSCRIBERS=${BENCH_SUBSCRIBERS:-3}
IN_FLIGHT=${BENCH_IN_FLIGHT:-1}
ROWS=${BENCH_ROWS:-30}
REPEATS=${BENCH_REPEATS:-2}
FLAT_SMALL=${BENCH_FLAT_SMALL:-1000}
FLAT_LARGE=${BENCH_FLAT_LARGE:-10000}
FLAT_SUBSET=${BENCH_FLAT_SUBSET:-100}
FLAT_REPEATS=${BENCH_FLAT_REPEATS:-5}
SKIP_FLAT=${BENCH_SKIP_FLAT:-0}
SKIP_NODE=${BENCH_SKIP_NODE:-0}
TIMEOUT=${BENCH_TIMEOUT:-120}
SEED_TIMEOUT=$((TIMEOUT * 3))
SKIP_BUILD=${BENCH_SKIP_BUILD:-0}
KEEP_DATA=${BENCH_KEEP_DATA:-0}
OUT=${BENCH_OUT:-$(mktemp -d /tmp/partnerplan-bench.XXXXXX)}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/partnerplan-bench-data.XXXXXX)

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
RELAY=$TARGET/release/partnerplan-relay
LOAD=$TARGET/release/partnerplan-load

if [ "$SKIP_FLAT" != 1 ] && [ $((FLAT_SUBSET * FLAT_REPEATS * 2)) -gt "$FLAT_SMALL" ]; then
  echo "compare.sh: BENCH_FLAT_SMALL ($FLAT_SMALL) must hold 2 x BENCH_FLAT_REPEATS x BENCH_FLAT_SUBSET documents" >&2
  exit 2
fi
if [ "$SKIP_FLAT" != 1 ] && [ "$FLAT_LARGE" -le "$FLAT_SMALL" ]; then
  echo "compare.sh: BENCH_FLAT_LARGE must be larger than BENCH_FLAT_SMALL" >&2
  exit 2
fi

log() { echo "[compare $(date +%H:%M:%S)] $*" >&2; }

# --- servers ----------------------------------------------------------------

PIDS=()
SERVER_PID=
SERVER_URL=
SERVER_DIR=

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [ "$KEEP_DATA" = 1 ]; then
    log "data directories kept in $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for_line FILE PATTERN PID SECONDS
wait_for_line() {
  local file=$1 pattern=$2 pid=$3 limit=$4 i
  for i in $(seq 1 $((limit * 10))); do
    if grep -q "$pattern" "$file" 2>/dev/null; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "compare.sh: the server (pid $pid) exited before it was ready:" >&2
      tail -20 "${file%.out}.err" >&2 || true
      return 1
    fi
    sleep 0.1
  done
  echo "compare.sh: the server (pid $pid) was not ready after ${limit}s" >&2
  return 1
}

# register DATA_DIR: a relay that admits only schools with a token gets
# one partnership with a member school per client; their tokens go to
# DATA_DIR.tokens, and each client connects with its own.
register() {
  local dir=$1 i
  "$RELAY" --help 2>/dev/null | grep -q "partnership" || return 0
  mkdir -p "$dir"
  "$RELAY" --data "$dir" partnership create Benchmark --json >/dev/null
  : >"$dir.tokens"
  for i in $(seq 1 "$CLIENTS"); do
    "$RELAY" --data "$dir" school add --partnership Benchmark "School $i" \
      --url ws://127.0.0.1:7171 --json |
      sed -n 's/.*"token":"\([^"]*\)".*/\1/p' >>"$dir.tokens"
  done
  [ "$(wc -l <"$dir.tokens")" -eq "$CLIENTS" ] || {
    echo "compare.sh: could not register $CLIENTS schools in $dir" >&2
    return 1
  }
}

# start_relay DATA_DIR NAME: sets SERVER_PID, SERVER_URL, SERVER_START_SECS
start_relay() {
  local dir=$1 name=$2 started
  SERVER_DIR=$dir
  started=$(date +%s%N)
  "$RELAY" serve --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data "$dir" >"$OUT/$name.server.out" 2>"$OUT/$name.server.err" &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  wait_for_line "$OUT/$name.server.out" "partnerplan relay listening on" "$SERVER_PID" 60
  SERVER_START_SECS=$(awk -v a="$started" -v b="$(date +%s%N)" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
  SERVER_URL=$(awk 'NR==1 {print $5}' "$OUT/$name.server.out")
  case $SERVER_URL in ws://127.0.0.1:*) ;; *)
    echo "compare.sh: unexpected first line from the relay: $(head -1 "$OUT/$name.server.out")" >&2
    return 1 ;;
  esac
}

# start_node DATA_DIR NAME: sets SERVER_PID, SERVER_URL
start_node() {
  local dir=$1 name=$2 port started
  SERVER_DIR=
  started=$(date +%s%N)
  node tests/js/reference-server.mjs 0 "$dir" >"$OUT/$name.server.out" 2>"$OUT/$name.server.err" &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  wait_for_line "$OUT/$name.server.out" "^listening " "$SERVER_PID" 60
  SERVER_START_SECS=$(awk -v a="$started" -v b="$(date +%s%N)" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
  port=$(awk '/^listening / {print $2; exit}' "$OUT/$name.server.out")
  SERVER_URL=ws://127.0.0.1:$port
}

stop_server() {
  local pid=$SERVER_PID
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "server $pid did not stop within 15s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  SERVER_PID=
}

# run_load NAME ARGS...: runs partnerplan-load against the current server,
# keeping its JSON report in $OUT/NAME.json. A failed run is reported, and
# the benchmark goes on.
run_load() {
  local name=$1 auth=()
  shift
  if [ -n "$SERVER_DIR" ] && [ -f "$SERVER_DIR.tokens" ]; then
    auth=(--tokens "$SERVER_DIR.tokens")
  fi
  log "load $name: $*"
  if ! "$LOAD" --url "$SERVER_URL" --pid "$SERVER_PID" --json --label "$name" "${auth[@]}" "$@" \
    >"$OUT/$name.json" 2>"$OUT/$name.log"; then
    log "load $name FAILED (see $OUT/$name.log):"
    tail -5 "$OUT/$name.log" >&2 || true
  fi
  if ! [ -s "$OUT/$name.json" ]; then
    echo '{"ok":false,"errors":["no report"]}' >"$OUT/$name.json"
  fi
}

# --- build ------------------------------------------------------------------

if [ "$SKIP_BUILD" != 1 ]; then
  log "building release binaries"
  cargo build --release -p partnerplan-relay -p partnerplan-tests
fi
for bin in "$RELAY" "$LOAD"; do
  [ -x "$bin" ] || { echo "compare.sh: $bin is missing; build it first" >&2; exit 1; }
done
if [ "$SKIP_NODE" != 1 ]; then
  if [ ! -f tests/js/node_modules/.package-lock.json ] ||
    [ tests/js/package-lock.json -nt tests/js/node_modules/.package-lock.json ]; then
    log "installing the JS reference server (npm ci)"
    (cd tests/js && npm ci --no-audit --no-fund)
  fi
fi

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (working tree has changes)')"
  echo "nproc: $(nproc)"
  echo "cpu: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
  echo "memory: $(free -h | awk '/^Mem:/ {print $2 " total, " $7 " available"}')"
  echo "rustc: $(rustc --version)"
  echo "node: $(node --version 2>/dev/null || echo none)"
  echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

COMMON=(--clients "$CLIENTS" --subscribers "$SUBSCRIBERS" --edits "$EDITS"
  --in-flight "$IN_FLIGHT" --rows "$ROWS")

# --- ours vs node -----------------------------------------------------------

log "ours vs node: $CLIENTS clients, $DOCS documents, $EDITS edits per client, $REPEATS runs each"
for r in $(seq 1 "$REPEATS"); do
  register "$WORK/ours-$r"
  start_relay "$WORK/ours-$r" "ours-$r"
  run_load "ours-$r" "${COMMON[@]}" --documents "$DOCS" --timeout-secs "$SEED_TIMEOUT"
  stop_server
  rm -rf "$WORK/ours-$r"

  if [ "$SKIP_NODE" != 1 ]; then
    mkdir -p "$WORK/node-$r"
    start_node "$WORK/node-$r" "node-$r"
    run_load "node-$r" "${COMMON[@]}" --documents "$DOCS" --timeout-secs "$SEED_TIMEOUT"
    stop_server
    rm -rf "$WORK/node-$r"
  fi
done

# --- flat from FLAT_SMALL to FLAT_LARGE stored documents --------------------

# flat_edit SIZE RUN SUBSET_INDEX: one edit run on a cold relay over the
# SUBSET_INDEX-th FLAT_SUBSET documents of the first FLAT_SMALL.
flat_edit() {
  local size=$1 r=$2 subset=$3 name=flat-$1-edit-$2
  sed -n "$((subset * FLAT_SUBSET + 1)),$(((subset + 1) * FLAT_SUBSET))p" \
    "$OUT/flat-ids-small.txt" >"$OUT/$name.ids"
  start_relay "$WORK/flat-$size" "$name"
  echo "$SERVER_START_SECS" >"$OUT/$name.startup"
  run_load "$name" "${COMMON[@]}" --skip-seed --ids-file "$OUT/$name.ids" \
    --documents "$FLAT_SUBSET" --timeout-secs "$TIMEOUT"
  stop_server
}

if [ "$SKIP_FLAT" != 1 ]; then
  log "flat check: $FLAT_SMALL vs $FLAT_LARGE stored documents, edits on $FLAT_SUBSET-document subsets"
  register "$WORK/flat-small"
  start_relay "$WORK/flat-small" flat-seed-small
  run_load flat-seed-small --clients "$CLIENTS" --rows "$ROWS" --documents "$FLAT_SMALL" \
    --seed-only --ids-out "$OUT/flat-ids-small.txt" --timeout-secs "$SEED_TIMEOUT"
  stop_server
  cp -a "$WORK/flat-small" "$WORK/flat-large"
  [ -f "$WORK/flat-small.tokens" ] && cp "$WORK/flat-small.tokens" "$WORK/flat-large.tokens"
  start_relay "$WORK/flat-large" flat-seed-large
  run_load flat-seed-large --clients "$CLIENTS" --rows "$ROWS" \
    --documents $((FLAT_LARGE - FLAT_SMALL)) --seed-only --ids-out "$OUT/flat-ids-more.txt" \
    --timeout-secs "$SEED_TIMEOUT"
  stop_server
  du -sb "$WORK/flat-small" | cut -f1 >"$OUT/flat-small.bytes"
  du -sb "$WORK/flat-large" | cut -f1 >"$OUT/flat-large.bytes"
  if [ -s "$OUT/flat-ids-small.txt" ] && [ -s "$OUT/flat-ids-more.txt" ]; then
    for r in $(seq 1 "$FLAT_REPEATS"); do
      flat_edit small "$r" $((2 * (r - 1)))
      flat_edit large "$r" $((2 * (r - 1) + 1))
    done
  else
    log "flat check: seeding failed, so there are no edit runs (see $OUT/flat-seed-*.log)"
  fi
fi

echo "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"

# --- the table --------------------------------------------------------------

node - "$OUT" "$FLAT_SMALL" "$FLAT_LARGE" "$FLAT_REPEATS" "$SKIP_FLAT" "$SKIP_NODE" "$REPEATS" \
  >"$OUT/table.txt" <<'EOF'
const fs = require("fs")
const [out, small, large, repeats, skipFlat, skipNode, mainRepeats] = process.argv.slice(2)
const read = name => {
  try { return JSON.parse(fs.readFileSync(`${out}/${name}.json`, "utf8")) } catch { return null }
}
const get = (r, path) => path.split(".").reduce((v, k) => (v == null ? undefined : v[k]), r)
const fmt = (v, d = 1) => (typeof v === "number" && isFinite(v) ? v.toFixed(d) : "n/a")
const ratio = (a, b) => (typeof a === "number" && typeof b === "number" && b > 0 ? (a / b).toFixed(2) + "x" : "n/a")
const pad = (s, n) => String(s).padEnd(n)
const median = xs => {
  const v = xs.filter(x => typeof x === "number" && isFinite(x)).sort((a, b) => a - b)
  if (!v.length) return undefined
  const m = Math.floor(v.length / 2)
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2
}
const runsOf = (prefix, n) => Array.from({ length: Number(n) }, (_, i) => read(`${prefix}-${i + 1}`)).filter(Boolean)
const lpad = (s, n) => String(s).padStart(n)
const lines = []
lines.push(fs.readFileSync(`${out}/machine.txt`, "utf8").trim().split("\n").map(l => "  " + l).join("\n"))
lines.push("")

const oursRuns = runsOf("ours", mainRepeats), nodeRuns = skipNode === "1" ? [] : runsOf("node", mainRepeats)
const ours = oursRuns[0]
const mb = kb => (typeof kb === "number" ? kb / 1024 : undefined)
if (ours) {
  lines.push(`Ours vs Node reference server: ${ours.clients} clients, ${ours.documents} documents ` +
    `(~${ours.doc_bytes_avg} bytes saved each), ${ours.subscribers} subscribers per document, ` +
    `${ours.edits_per_client} edits per client, ${ours.in_flight} in flight per client; ` +
    `median of ${oursRuns.length} runs each, alternating`)
  const rows = [
    ["seed (documents/s)", "seed.docs_per_sec", x => x, 0, "higher"],
    ["fetch (documents/s)", "fetch.fetches_per_sec", x => x, 0, "higher"],
    ["edit throughput (edits/s)", "edit.edits_per_sec", x => x, 0, "higher"],
    ["edit latency p50 (ms)", "edit.latency_ms.p50", x => x, 1, "lower"],
    ["edit latency p95 (ms)", "edit.latency_ms.p95", x => x, 1, "lower"],
    ["edit latency p99 (ms)", "edit.latency_ms.p99", x => x, 1, "lower"],
    ["edit latency max (ms)", "edit.latency_ms.max", x => x, 1, "lower"],
    ["server peak RSS, VmHWM (MiB)", "server_memory.vm_hwm_kb", mb, 1, "lower"],
    ["server RSS at end (MiB)", "server_memory.vm_rss_kb", mb, 1, "lower"],
  ]
  lines.push(`  ${pad("metric", 30)}${lpad("ours", 10)}${lpad("node", 10)}${lpad("ours/node", 11)}  better`)
  for (const [label, path, conv, d, better] of rows) {
    const a = median(oursRuns.map(r => conv(get(r, path))))
    const b = median(nodeRuns.map(r => conv(get(r, path))))
    lines.push(`  ${pad(label, 30)}${lpad(fmt(a, d), 10)}${lpad(fmt(b, d), 10)}${lpad(ratio(a, b), 11)}  ${better}`)
  }
  const each = (runs, path, d) => runs.map(r => fmt(get(r, path), d)).join(", ")
  lines.push(`  per-run edits/s  ours: ${each(oursRuns, "edit.edits_per_sec", 0)}   node: ${each(nodeRuns, "edit.edits_per_sec", 0)}`)
  lines.push(`  per-run p50 ms   ours: ${each(oursRuns, "edit.latency_ms.p50", 1)}   node: ${each(nodeRuns, "edit.latency_ms.p50", 1)}`)
  for (const r of [...oursRuns, ...nodeRuns]) {
    if (r.ok !== true) lines.push(`  WARNING: run ${r.label ?? "?"} did not complete: ${JSON.stringify(r.errors ?? [])}`)
  }
  lines.push("")
}

if (skipFlat !== "1") {
  const runs = size => runsOf(`flat-${size}-edit`, repeats)
  const startup = size => Array.from({ length: Number(repeats) }, (_, i) => {
    try { return Number(fs.readFileSync(`${out}/flat-${size}-edit-${i + 1}.startup`, "utf8")) } catch { return undefined }
  })
  const bytes = size => { try { return Number(fs.readFileSync(`${out}/flat-${size}.bytes`, "utf8")) } catch { return undefined } }
  const s = runs("small"), l = runs("large")
  const sub = s[0]?.documents ?? "?"
  const seedSmall = read("flat-seed-small"), seedLarge = read("flat-seed-large")
  lines.push(`Flat check, our relay: ${small} vs ${large} stored documents; the same edit workload ` +
    `(${s[0]?.clients ?? "?"} clients, ${sub} documents, ${s[0]?.edits_per_client ?? "?"} edits per client) ` +
    `on a fresh subset each run, relay restarted before each run; median of ${repeats} runs each, alternating`)
  const metrics = [
    ["edit throughput (edits/s)", r => get(r, "edit.edits_per_sec"), 0],
    ["edit latency p50 (ms)", r => get(r, "edit.latency_ms.p50"), 1],
    ["edit latency p95 (ms)", r => get(r, "edit.latency_ms.p95"), 1],
    ["edit latency max (ms)", r => get(r, "edit.latency_ms.max"), 1],
    ["fetch (documents/s)", r => get(r, "fetch.fetches_per_sec"), 0],
    ["relay RSS after the run (MiB)", r => mb(get(r, "server_memory.vm_rss_kb")), 1],
  ]
  lines.push(`  ${pad("metric", 32)}${lpad(small + " docs", 12)}${lpad(large + " docs", 12)}${lpad("large/small", 13)}`)
  for (const [label, f, d] of metrics) {
    const a = median(s.map(f)), b = median(l.map(f))
    lines.push(`  ${pad(label, 32)}${lpad(fmt(a, d), 12)}${lpad(fmt(b, d), 12)}${lpad(ratio(b, a), 13)}`)
  }
  const su = median(startup("small")), lu = median(startup("large"))
  lines.push(`  ${pad("relay startup to listening (s)", 32)}${lpad(fmt(su, 2), 12)}${lpad(fmt(lu, 2), 12)}${lpad(ratio(lu, su), 13)}`)
  const bs = bytes("small"), bl = bytes("large")
  lines.push(`  ${pad("data directory (MiB)", 32)}${lpad(fmt(bs / 1048576, 1), 12)}${lpad(fmt(bl / 1048576, 1), 12)}${lpad(ratio(bl, bs), 13)}`)
  lines.push(`  per-run edits/s  ${small}: ${s.map(r => fmt(get(r, "edit.edits_per_sec"), 0)).join(", ")}` +
    `   ${large}: ${l.map(r => fmt(get(r, "edit.edits_per_sec"), 0)).join(", ")}`)
  lines.push(`  per-run p50 ms   ${small}: ${s.map(r => fmt(get(r, "edit.latency_ms.p50"), 1)).join(", ")}` +
    `   ${large}: ${l.map(r => fmt(get(r, "edit.latency_ms.p50"), 1)).join(", ")}`)
  for (const [label, r] of [[`seeding ${small}`, seedSmall], [`seeding ${large - small} more`, seedLarge]]) {
    if (r) lines.push(`  ${label}: ${fmt(get(r, "seed.docs_per_sec"), 0)} documents/s, relay peak RSS ` +
      `${fmt(mb(get(r, "server_memory.vm_hwm_kb")), 1)} MiB`)
  }
  for (const r of [seedSmall, seedLarge, ...s, ...l]) {
    if (r && r.ok !== true) lines.push(`  WARNING: run ${r.label ?? "?"} did not complete: ${JSON.stringify(r.errors ?? [])}`)
  }
}
console.log(lines.join("\n"))
EOF

echo
cat "$OUT/table.txt"
echo
echo "(reports, logs and this table are in $OUT)"
