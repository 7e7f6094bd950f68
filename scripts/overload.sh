#!/usr/bin/env bash
# Overload: drives 4x saturation against a release server and prints the share of
# 503 + Retry-After, peak RSS against the 100 MiB bar, p99 of admitted requests and
# the time throughput takes to recover once the load drops.
#   scripts/overload.sh [--seconds N] [--max-concurrency C] [--client-connections K]
#   (defaults: 10, 32, 8192; with K above the server's 1024 connections the run is
#   also a connection flood, see crates/tollgate-bench/src/overload.rs)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p tollgate -p tollgate-bench
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(uname -sr)"
exec "$target/release/tollgate-bench" overload --tollgate "$target/release/tollgate" "$@"
