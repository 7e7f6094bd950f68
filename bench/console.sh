#!/usr/bin/env bash
# Page weight and speed of the console's decision stream with 10,000 decisions in the
# ledger: starts `tollgate serve` (release build unless TOLLGATE_BIN names a binary)
# on a free loopback port with a fresh data directory, records 10,000 decisions over
# the API, signs in and times GET /console/decisions (and a filtered page that matches
# nothing, the overview and a decision page) from loopback, reporting the bytes of
# the page and of a first visit (page + every asset). Method: docs/console.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${TOLLGATE_BIN:-}"
if [[ -z "$BIN" ]]; then
  cargo build --release -p tollgate
  BIN="${CARGO_TARGET_DIR:-target}/release/tollgate"
fi
DIR="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
TOLLGATE_LISTEN="127.0.0.1:$PORT" TOLLGATE_DATA_DIR="$DIR/data" \
  TOLLGATE_KEY_RATE_PER_SECOND=100000 TOLLGATE_KEY_RATE_BURST=100000 \
  "$BIN" serve >"$DIR/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 1 100); do
  [[ -f "$DIR/data/bootstrap-keys.json" ]] && break
  sleep 0.1
done
python3 bench/console_weight.py "http://127.0.0.1:$PORT" "$DIR/data/bootstrap-keys.json" \
  "${DECISIONS:-10000}" "$("$BIN" --version 2>/dev/null | head -n1) ($BIN)"
