#!/usr/bin/env bash
# One report of every performance figure of docs/quality.md: the engine criterion medians,
# the ledger benchmarks and the HTTP table (bench/run.sh), each printed with the goals
# beside it, then one summary table of goals and figures.
# Usage: bench/report.sh [--quick]
#   --quick: criterion's short mode, 1 s ledger rows on a 100,000-entry ledger, 3 s HTTP
#            rows (a smoke run; the README figures come from a full run).
# Expect about 6 minutes (full) on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${TMPDIR:-/tmp}/tollgate-report-$$"
mkdir -p "$out"
quick=0
[[ "${1:-}" == "--quick" ]] && quick=1
load() { echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at $(date -u +%H:%M:%S) UTC"; }

echo "# Tollgate performance report"
echo
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(uname -sr); $(rustc --version)"
echo

echo "## Engine (cargo bench -p tollgate-core --bench engine), $(load)"
echo
crit=()
[[ $quick == 1 ]] && crit=(-- --warm-up-time 1 --measurement-time 2)
cargo bench -q -p tollgate-core --bench engine "${crit[@]}" 2>/dev/null >"$out/engine.txt"
grep '^|' "$out/engine.txt"
echo

echo "## Ledger (cargo bench -p tollgate-store --bench ledger), $(load)"
echo
if [[ $quick == 1 ]]; then
  export TOLLGATE_BENCH_SECS=1 TOLLGATE_BENCH_ENTRIES=100000
fi
cargo bench -q -p tollgate-store --bench ledger 2>/dev/null >"$out/ledger.txt"
grep -E '^(\||##)' "$out/ledger.txt"
echo

echo "## HTTP (bench/run.sh), $(load)"
echo
secs=10
[[ $quick == 1 ]] && secs=3
bench/run.sh --seconds "$secs" >"$out/http.txt"
cat "$out/http.txt"
echo

echo "## Goals (docs/quality.md, performance) and figures of this report"
echo
python3 - "$out" <<'PY'
import re, sys, pathlib
out = pathlib.Path(sys.argv[1])
engine = (out / "engine.txt").read_text()
ledger = (out / "ledger.txt").read_text()
http = (out / "http.txt").read_text()
rows = []
def med(id_):
    m = re.search(r"^\| " + re.escape(id_) + r" \| ([0-9.]+) µs", engine, re.M)
    return float(m.group(1)) if m else None
for id_, bar, ok in [
    ("engine/csc-default", "≤ 1 µs median", lambda v: v <= 1.0),
    ("engine/50-cel-rules", "≤ 5 µs median", lambda v: v <= 5.0),
    ("engine/50-action-type-rules", "≤ agent-governance's median (peer-bench, docs/lab.md)", None),
]:
    v = med(id_)
    rows.append((id_, bar, f"{v:.3f} µs" if v is not None else "?",
                 "–" if ok is None or v is None else ("yes" if ok(v) else "**no**")))
m = re.search(r"^\| 64 \| ([0-9]+) \| ([0-9]+|–) \|", ledger, re.M)
if m:
    best = max(float(m.group(1)), float(m.group(2)) if m.group(2) != "–" else 0)
    rows.append(("ledger append, 64 concurrent, fsync on", "≥ 100,000/s", f"{best:,.0f}/s (best of blocking / async)",
                 "yes" if best >= 100000 else "**no**"))
m = re.search(r"^\| verify from the store[^|]*\| ([0-9]+) \| [0-9.]+ \| ([0-9]+) \|", ledger, re.M)
if m:
    v = float(m.group(2))
    rows.append((f"ledger verify ({int(m.group(1)):,} entries, from the store)", "≥ 200,000 entries/s",
                 f"{v:,.0f}/s", "yes" if v >= 200000 else "**no**"))
goal = http.split("| goal (docs/quality.md) | bar | measured | met |")
if len(goal) == 2:
    for line in goal[1].strip().splitlines()[1:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4:
            rows.append(("HTTP: " + cells[0], cells[1], cells[2], cells[3]))
print("| what | goal | measured | met |")
print("|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
PY
echo
echo "raw outputs: $out"
