#!/usr/bin/env bash
# Soak: MINUTES of mixed load over every endpoint and all three API families against
# a release server; prints the RSS series, answers by endpoint and status (only 2xx,
# the 4xx a request was built to get, and designed 429/503 are allowed), stops the
# server with SIGTERM and verifies the ledger with `tollgate audit verify`.
#   scripts/soak.sh [MINUTES] [RATE_PER_SECOND]   (defaults: 10, 200)
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-10}"
rate="${2:-200}"
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p tollgate -p tollgate-bench
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(uname -sr)"
exec "$target/release/tollgate-bench" soak --tollgate "$target/release/tollgate" \
  --minutes "$minutes" --rate "$rate"
