#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time and prints a table of
# executions and coverage per target.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 s, all targets)
#
# Needs cargo-fuzz (installed pinned if missing). The toolchain may be stable:
# cargo-fuzz passes nightly-only flags (-Zsanitizer), which RUSTC_BOOTSTRAP=1 allows.
# The corpus grows in fuzz/corpus/TARGET (not committed) from the committed seeds in
# fuzz/seeds/TARGET; a crash leaves its input in fuzz/artifacts/TARGET and makes the
# script exit 1 after the table. Reproduce with `cargo fuzz run TARGET FILE`.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-60}"
shift || true
# FUZZ_SANITIZER=none builds faster and runs about twice as many executions; the
# default, address, also catches memory errors in dependencies' unsafe code.
san="${FUZZ_SANITIZER:-address}"
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz --version 0.13.2
fi
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

echo "== building ${#targets[@]} targets (release, sanitizer: $san)"
cargo fuzz build -O -s "$san"

logs="$(mktemp -d)"
rows=()
failed=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "seeds/$t"
  echo "== $t: ${secs}s"
  status=ok
  if ! cargo fuzz run -O -s "$san" "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 >"$logs/$t.log" 2>&1; then
    status=CRASH
    failed=1
    grep -E "^(==[0-9]+==ERROR|thread .* panicked|SUMMARY|artifact_prefix|Test unit written)" \
      "$logs/$t.log" | head -n 8 || true
  fi
  runs=$(grep -oE "stat::number_of_executed_units: *[0-9]+" "$logs/$t.log" | grep -oE "[0-9]+$" | tail -n1)
  last=$(grep -E "^#[0-9]+.*cov: " "$logs/$t.log" | tail -n1)
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
  corp=$(sed -nE 's/.* corp: ([0-9]+).*/\1/p' <<<"$last")
  rate=$(( ${runs:-0} / (secs > 0 ? secs : 1) ))
  rows+=("$(printf '%-18s %10s %8s %8s %8s %8s %6s' "$t" "${runs:-?}" "$rate" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$status")")
done

echo
echo "fuzz table: ${secs}s per target, sanitizer $san ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores)"
printf '%-18s %10s %8s %8s %8s %8s %6s\n' target execs execs/s cov features corpus result
for r in "${rows[@]}"; do echo "$r"; done
echo "(cov: coverage edges reached, features: libFuzzer features, corpus: inputs kept)"
echo "logs: $logs"
exit "$failed"
