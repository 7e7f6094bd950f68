#!/usr/bin/env bash
# Tiled ledger: dossier fetch (the store path of GET /v1/dossiers/{id}) median and p99 at
# 10^4, 10^6 and 10^7 entries, and the ledger append rate with tile growth on vs off,
# alternated over rounds (crates/tollgate-bench/src/tlog.rs). Needs an idle machine and
# a directory on disk (not tmpfs) with room for the largest ledger (the table prints
# each ledger's size on disk; run --sizes 10000,1000000 first to see build time and size).
# Usage: bench/tlog.sh --dir /var/tmp/tlog [--sizes 10000,1000000,10000000]
#        [--fetches N] [--append N] [--rounds K] [--keep]
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p tollgate-bench
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(uname -sr); load average $(cut -d' ' -f1-3 /proc/loadavg) at $(date -u +%H:%M) UTC"
exec "$target/release/tollgate-bench" tlog "$@"
