#!/usr/bin/env bash
# Our relay against the Node reference sync server, with the official
# automerge-repo JS clients and our own, in one run (see BENCHMARKS.md):
#
#   tests/bench/relay.sh
#
# Scenarios (partnerplan-relay-bench, tests/src/bin/relay_bench.rs):
#   live    nine JS clients edit one plan every 50 ms, 50 edits each
#   join    1,000 small plans seeded, the server restarted, one JS client
#           opens them all
#   memory  50 connected schools sync 10,000 plans, then stay idle
#   edit    our synthetic schools' edit fan-out (partnerplan-load)
# JS clients reach the server through the link shaper with a clear link,
# which counts the bytes each way, WebSocket framing included.
#
# Environment (defaults in brackets):
#   BENCH_SCENARIOS [live,join,memory,edit]  BENCH_REPEATS [2]
#   BENCH_BASELINE  a git revision whose relay is measured beside ours in
#                   the edit scenario (built in a temporary worktree)
#   BENCH_ARGS      more options for partnerplan-relay-bench (see --help)
#   BENCH_SKIP_BUILD [0]  BENCH_OUT [a new /tmp/partnerplan-relay-bench.*]

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

SCENARIOS=${BENCH_SCENARIOS:-live,join,memory,edit}
REPEATS=${BENCH_REPEATS:-2}
OUT=${BENCH_OUT:-$(mktemp -d /tmp/partnerplan-relay-bench.XXXXXX)}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
mkdir -p "$OUT"

log() { echo "[relay.sh $(date +%H:%M:%S)] $*" >&2; }

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  log "building release binaries"
  cargo build --release -p partnerplan-relay -p partnerplan-tests
fi
if [ ! -f tests/js/node_modules/.package-lock.json ]; then
  log "installing the JS clients and reference server (npm ci)"
  (cd tests/js && npm ci --no-audit --no-fund)
fi

BASELINE_ARGS=()
if [ -n "${BENCH_BASELINE:-}" ]; then
  WORKTREE=$(mktemp -d /tmp/partnerplan-baseline.XXXXXX)
  trap 'git -C "$ROOT" worktree remove --force "$WORKTREE" 2>/dev/null || true' EXIT
  log "building the relay at $BENCH_BASELINE for comparison"
  git -C "$ROOT" worktree add --detach "$WORKTREE" "$BENCH_BASELINE" >/dev/null
  # The same dependencies: only the project's own crates are built again.
  mkdir -p "$WORKTREE/target"
  cp -a "$TARGET/release" "$WORKTREE/target/"
  (cd "$WORKTREE" && cargo build --release -p partnerplan-relay)
  cp "$WORKTREE/target/release/partnerplan-relay" "$OUT/partnerplan-relay-baseline"
  BASELINE_ARGS=(--baseline-relay "$OUT/partnerplan-relay-baseline")
fi

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' (working tree has changes)')"
  echo "baseline: ${BENCH_BASELINE:-none}"
  echo "nproc: $(nproc)"
  echo "cpu: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
  echo "memory: $(free -h | awk '/^Mem:/ {print $2 " total, " $7 " available"}')"
  echo "rustc: $(rustc --version)"
  echo "node: $(node --version)"
  echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/machine.txt" >&2

# shellcheck disable=SC2086
"$TARGET/release/partnerplan-relay-bench" --relay "$TARGET/release/partnerplan-relay" \
  "${BASELINE_ARGS[@]}" --out "$OUT" --scenarios "$SCENARIOS" --repeats "$REPEATS" \
  ${BENCH_ARGS:-} | tee "$OUT/table.md"
echo "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt" >&2
log "results in $OUT"
