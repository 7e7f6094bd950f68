#!/usr/bin/env bash
# The HTTP benchmark: builds release binaries, then drives Tollgate and a bare axum
# handler with the same load generator in the same run (1, 16, 64 connections).
# Usage: bench/run.sh [--seconds N] [--connections 1,16,64]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p tollgate -p tollgate-bench
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(uname -sr)"
exec target/release/tollgate-bench --tollgate target/release/tollgate "$@"
