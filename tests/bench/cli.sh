#!/usr/bin/env bash
# How long `partnerplan` commands take on the imported 000 plan, process
# start included, with hyperfine (Debian: apt-get install hyperfine). See
# BENCHMARKS.md ("Typed edits and reads of the 000 plan, before and after
# the structure work").
#
#   tests/bench/cli.sh [LABEL=PROGRAM ...]    # default: now=target/release/partnerplan
#
# Several programs (e.g. before=/tmp/before/target/release/partnerplan)
# are timed command by command, one after another in the same minutes.
# Each gets its own fresh school with the plan imported. Edits are timed
# after a --prepare that sets the other value, so each timed run changes
# something. BENCH_RUNS (default 30); BENCH_OUT keeps the JSON.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
RUNS=${BENCH_RUNS:-30}
OUT=${BENCH_OUT:-$(mktemp -d /tmp/partnerplan-cli-bench.XXXXXX)}
mkdir -p "$OUT"
[ $# -gt 0 ] || set -- "now=$root/target/release/partnerplan"

names=()
cmds=()
preps=()
add() { names+=("$1"); preps+=("$2"); cmds+=("$3"); }

for spec in "$@"; do
  label=${spec%%=*}
  P=${spec#*=}
  D="$OUT/$label"
  "$P" --data "$D" init --school "Bank Road Infant and Nursery School" >/dev/null
  U=$("$P" --data "$D" --as "Ann Head" import "$root/tests/fixtures/action-plan-000.json" | sed -n 's/^Action plan: //p')
  ROW=$("$P" --data "$D" view "$U" --json | node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const find = (o) => {
        if (Array.isArray(o)) { for (const x of o) { const r = find(x); if (r) return r; } return; }
        if (!o || typeof o !== "object") return;
        if (typeof o.id === "string" && o.id.length === 36 && JSON.stringify(o).includes("\"status\"")
            && !JSON.stringify(o).slice(0, 300).includes("actions")) return o.id;
        for (const x of Object.values(o)) { const r = find(x); if (r) return r; }
      };
      console.log(find(JSON.parse(s)));
    });')
  "$P" --data "$D" plan status "$U" "$ROW" amber >/dev/null
  "$P" --data "$D" put "$U" reviewDate "25 April 2017" --row "$ROW" >/dev/null
  add "$label version" "$P --version" "$P --version"
  add "$label status" "$P --version" "$P --data $D status"
  add "$label view" "$P --version" "$P --data $D view $U"
  add "$label view --json" "$P --version" "$P --data $D view $U --json"
  add "$label plan status" "$P --data $D plan status $U $ROW red" "$P --data $D plan status $U $ROW green"
  add "$label put" "$P --data $D put $U reviewDate '25 April 2017' --row $ROW" "$P --data $D put $U reviewDate '5 December 2017' --row $ROW"
done

# Interleave the programs command by command.
args=()
n=${#names[@]}
per=$((n / $#))
for ((c = 0; c < per; c++)); do
  for ((p = 0; p < $#; p++)); do
    i=$((p * per + c))
    args+=(--prepare "${preps[$i]}")
  done
done
for ((c = 0; c < per; c++)); do
  for ((p = 0; p < $#; p++)); do
    i=$((p * per + c))
    args+=(-n "${names[$i]}" "${cmds[$i]}")
  done
done

echo "machine: $(nproc) cores; $(uptime)" | tee "$OUT/machine.txt"
hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$OUT/cli.json" "${args[@]}" >"$OUT/hyperfine.txt" 2>&1
echo "after: $(uptime)" | tee -a "$OUT/machine.txt"
node -e '
const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
console.log("command".padEnd(24), "median ms".padStart(10), "p95 ms".padStart(8), "min ms".padStart(8), "CPU ms (user+sys, mean)".padStart(24));
for (const r of j.results) {
  const t = [...r.times].sort((a, b) => a - b);
  const q = (p) => (t[Math.round((t.length - 1) * p)] * 1000).toFixed(1);
  console.log(r.command.padEnd(24), q(0.5).padStart(10), q(0.95).padStart(8), q(0).padStart(8), ((r.user + r.system) * 1000).toFixed(1).padStart(24));
}' "$OUT/cli.json" | tee "$OUT/table.txt"
