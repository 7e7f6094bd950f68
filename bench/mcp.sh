#!/usr/bin/env bash
# The MCP gateway benchmark: the latency a tools/call gains through `tollgate gateway`
# over calling a trivial upstream (tollgate-mcp-echo, stdio) directly, median and p99,
# embedded and remote modes, and calls/s at 1 and 16 concurrent sessions. One table.
#   bench/mcp.sh [--calls N] [--seconds S]
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p tollgate -p tollgate-mcp --bins
echo "machine: $(nproc) cores, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
"$TARGET/release/tollgate-mcp-bench" \
  --tollgate "$TARGET/release/tollgate" \
  --echo "$TARGET/release/tollgate-mcp-echo" "$@"
