#!/usr/bin/env bash
# Installs what the MCP gateway's tests (crates/tollgate-mcp/tests) need, pinned:
#   - the agent: the Python `mcp` client package (1.x; dealgo-mcp 0.2.0 needs mcp<2),
#   - upstream tool servers: mcp-server-time and mcp-server-git (PyPI, own venv:
#     they want mcp 2.x) and @modelcontextprotocol/server-filesystem (npm).
# Into $TOLLGATE_MCP_DEPS (default ~/.cache/tollgate-mcp-deps); the tests read the same
# variable. Idempotent: an environment whose pins are unchanged is kept. Fails loudly.
set -euo pipefail

DIR="${TOLLGATE_MCP_DEPS:-$HOME/.cache/tollgate-mcp-deps}"
PYTHON="${TOLLGATE_PYTHON:-python3}"
CLIENT_PINS=(mcp==1.30.0)
SERVER_PINS=(mcp-server-time==2026.10.19 mcp-server-git==2026.10.19)
NPM_PINS=(@modelcontextprotocol/server-filesystem@2026.8.31)

mkdir -p "$DIR"

venv() { # venv NAME PINS...
  local name=$1; shift
  local want="$*"
  local marker="$DIR/$name/.pins"
  if [[ -x "$DIR/$name/bin/python" && -f "$marker" && "$(cat "$marker")" == "$want" ]]; then
    echo "mcp-test-deps: $name venv up to date ($want)"
    return
  fi
  echo "mcp-test-deps: creating $name venv ($want)"
  "$PYTHON" -m venv --clear "$DIR/$name"
  "$DIR/$name/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
  echo "$want" > "$marker"
}

venv client "${CLIENT_PINS[@]}"
venv servers "${SERVER_PINS[@]}"

command -v node >/dev/null || { echo "mcp-test-deps: node is not installed (apt-get install nodejs npm)" >&2; exit 1; }
command -v npm >/dev/null || { echo "mcp-test-deps: npm is not installed (apt-get install npm)" >&2; exit 1; }
marker="$DIR/npm/.pins"
if [[ -f "$marker" && "$(cat "$marker")" == "${NPM_PINS[*]}" ]]; then
  echo "mcp-test-deps: npm packages up to date (${NPM_PINS[*]})"
else
  echo "mcp-test-deps: npm install ${NPM_PINS[*]}"
  npm install --silent --no-audit --no-fund --prefix "$DIR/npm" "${NPM_PINS[@]}"
  echo "${NPM_PINS[*]}" > "$marker"
fi

# Check that each tool starts as the tests start it.
"$DIR/client/bin/python" -c "import mcp.client.streamable_http, mcp.client.stdio"
"$DIR/servers/bin/python" -c "import mcp_server_time, mcp_server_git"
test -f "$DIR/npm/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js"
echo "mcp-test-deps: ready in $DIR"
