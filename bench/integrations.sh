#!/usr/bin/env bash
# What the integrations cost the decision path: OpenTelemetry off vs on (exporting to
# a local OTLP receiver) vs notification sinks answering 500 forever, alternated over
# rounds (crates/tollgate-bench/src/integrations.rs). Needs an idle machine.
# Usage: bench/integrations.sh [--seconds N] [--connections C] [--rate R] [--rounds K]
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p tollgate -p tollgate-bench
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(uname -sr); load average $(cut -d' ' -f1-3 /proc/loadavg) at $(date -u +%H:%M) UTC"
exec "$target/release/tollgate-bench" integrations --tollgate "$target/release/tollgate" "$@"
