#!/usr/bin/env bash
# The school's app on the 000 plan: an edit saved and the page's update
# fetched, the plan page served, the page's size, and a partner's change
# on screen in a headless Chromium. See BENCHMARKS.md ("The school's app,
# on the 000 plan").
#
#   tests/bench/app.sh            # from the repository root
#
# Environment:
#   BENCH_EDITS        edits of each kind (status, text)      default 200
#   BENCH_PAGES        plan page loads                         default 100
#   BENCH_PARTNER      partner changes watched in Chromium     default 30
#   BENCH_BROWSER_EDITS status changes made in the page itself  default 30
#   BENCH_SKIP_BUILD   1: use the release binaries as they are
#   BENCH_SKIP_PARTNER 1: only the one-school part
#   BENCH_SKIP_SINGLE  1: only the partner part
#   BENCH_OUT          where logs and JSON go (default: a new /tmp/partnerplan-app-bench.*)
#   BENCH_STRACE_RELAY a file: strace the relay's reads and writes into it (partner part)
#   BENCH_PROFILE_PAGE 1: then profile B's page (V8) over 10 more partner changes
#   PARTNERPLAN_CHROMIUM  the browser (default /usr/bin/chromium)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release -p partnerplan -p partnerplan-relay >&2
fi
if [ ! -d tests/browser/node_modules ]; then
  (cd tests/browser && npm ci --no-audit --no-fund >&2)
fi
PP="$root/target/release/partnerplan"
RELAY="$root/target/release/partnerplan-relay"
OUT=${BENCH_OUT:-$(mktemp -d /tmp/partnerplan-app-bench.XXXXXX)}
mkdir -p "$OUT"
FIXTURE="$root/tests/fixtures/action-plan-000.json"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

# Starts `partnerplan app` for a data directory (in this shell, so the
# trap stops it); `app_url NAME` then prints its address.
start_app() {
  local data=$1 name=$2
  "$PP" --data "$data" app --listen 127.0.0.1:0 --no-browser \
    >"$OUT/$name.out" 2>"$OUT/$name.err" </dev/null &
  pids+=($!)
}
app_url() {
  local name=$1
  for _ in $(seq 1 200); do
    if grep -q 'running for this school at' "$OUT/$name.out" 2>/dev/null; then
      grep -o 'http://[^ ]*/' "$OUT/$name.out" | head -1
      return
    fi
    sleep 0.05
  done
  echo "the app $name did not say where it listens" >&2
  cat "$OUT/$name.out" "$OUT/$name.err" >&2
  exit 1
}

plan_id() { grep '^Action plan:' | sed 's/.*automerge://'; }

echo "machine: $(nproc) cores; $(uptime)" | tee "$OUT/machine.txt"

# 1. One school, no relay.
if [ "${BENCH_SKIP_SINGLE:-0}" != 1 ]; then
"$PP" --data "$OUT/solo" init --school "Bank Road Infant and Nursery School" >/dev/null
DOC=$("$PP" --data "$OUT/solo" --as "Ann Head" import "$FIXTURE" | plan_id)
start_app "$OUT/solo" solo-app
APP=$(app_url solo-app)
echo "one school: $APP doc/$DOC" >&2
node tests/bench/app_bench.mjs single "$APP" "$DOC" | tee "$OUT/single.json"
echo "after the one-school part: $(uptime)" | tee -a "$OUT/machine.txt"
fi

if [ "${BENCH_SKIP_PARTNER:-0}" = 1 ]; then exit 0; fi

# 2. Two schools and a relay.
"$RELAY" serve --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data "$OUT/relay" >"$OUT/relay.out" 2>"$OUT/relay.err" </dev/null &
RELAY_PID=$!
pids+=($RELAY_PID)
for _ in $(seq 1 200); do
  grep -q '://' "$OUT/relay.out" 2>/dev/null && break
  sleep 0.05
done
RELAY_URL=$(grep -o 'ws://[^ ]*' "$OUT/relay.out" | head -1)
RELAY_URL=${RELAY_URL%/}
"$RELAY" --data "$OUT/relay" partnership create "Bench Cluster" >/dev/null
invite() {
  "$RELAY" --data "$OUT/relay" school add --partnership "Bench Cluster" "$1" --url "$RELAY_URL" --json |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).invite))'
}
INV_A=$(invite "Bank Road Infant and Nursery School")
INV_B=$(invite "William Lilley Infant and Nursery School")
"$PP" --data "$OUT/a" join "$INV_A" --school "Bank Road Infant and Nursery School" >/dev/null
"$PP" --data "$OUT/b" join "$INV_B" --school "William Lilley Infant and Nursery School" >/dev/null
DOC=$("$PP" --data "$OUT/a" --as "Ann Head" import "$FIXTURE" | plan_id)
"$PP" --data "$OUT/a" sync --timeout 60 >/dev/null
"$PP" --data "$OUT/b" --as "Bea Chair" open "automerge:$DOC" >/dev/null
start_app "$OUT/a" app-a
start_app "$OUT/b" app-b
APP_A=$(app_url app-a)
APP_B=$(app_url app-b)
echo "two schools: $APP_A and $APP_B, doc/$DOC, relay $RELAY_URL" >&2
if [ -n "${BENCH_STRACE_RELAY:-}" ]; then
  # The relay's socket reads and writes with their times, to split the
  # partner's change into A to relay, the relay, and relay to B.
  strace -f -ttt -e trace=read,write,recvfrom,sendto,writev -p "$RELAY_PID" -o "$BENCH_STRACE_RELAY" 2>/dev/null &
  pids+=($!)
  sleep 0.5
fi
node tests/bench/app_bench.mjs partner "$APP_A" "$APP_B" "$DOC" | tee "$OUT/partner.json"
echo "after the partner part: $(uptime)" | tee -a "$OUT/machine.txt"
if [ -n "${BENCH_STRACE_RELAY:-}" ]; then
  node tests/bench/partner_legs.mjs "$OUT/partner.json" "$BENCH_STRACE_RELAY" | tee "$OUT/legs.json"
fi
if [ "${BENCH_PROFILE_PAGE:-0}" = 1 ]; then
  node tests/bench/page_profile.mjs "$APP_A" "$APP_B" "$DOC" 10 | tee "$OUT/page-profile.json"
fi
echo "logs and figures in $OUT" >&2
