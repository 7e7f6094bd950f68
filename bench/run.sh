#!/usr/bin/env bash
# The HTTP benchmark: builds release binaries, then drives Tollgate and a bare axum
# handler with the same load generator in the same run (1, 16, 64 connections), then
# Tollgate alone at half of its saturation with an open-loop generator.
# Usage: bench/run.sh [--seconds N] [--connections 1,16,64] [--half-connections N]
#   (default: the connection count of the row with the most requests/s)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p tollgate -p tollgate-bench
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(uname -sr); load average $(cut -d' ' -f1-3 /proc/loadavg) at $(date -u +%H:%M) UTC"
exec "$target/release/tollgate-bench" --tollgate "$target/release/tollgate" "$@"
