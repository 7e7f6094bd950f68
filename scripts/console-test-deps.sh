#!/usr/bin/env bash
# Installs what the console's browser tests (crates/tollgate/tests/console_browser.rs,
# scenarios in crates/tollgate/tests/console/) need, pinned:
#   - Debian's `chromium` (apt-get), used at /usr/bin/chromium; Playwright never
#     downloads a browser of its own (no `playwright install`),
#   - Playwright for Python and pytest (PyPI) in a venv.
# Into $TOLLGATE_CONSOLE_DEPS (default ~/.cache/tollgate-console-deps); the test reads
# the same variable. Idempotent: an environment whose pins are unchanged is kept.
# Fails loudly.
set -euo pipefail

DIR="${TOLLGATE_CONSOLE_DEPS:-$HOME/.cache/tollgate-console-deps}"
PYTHON="${TOLLGATE_PYTHON:-python3}"
PINS=(playwright==1.65.2 pytest==8.4.2)

if [[ ! -x /usr/bin/chromium ]]; then
  echo "console-test-deps: installing Debian chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core
fi
/usr/bin/chromium --version

mkdir -p "$DIR"
want="${PINS[*]}"
marker="$DIR/venv/.pins"
if [[ -x "$DIR/venv/bin/python" && -f "$marker" && "$(cat "$marker")" == "$want" ]]; then
  echo "console-test-deps: venv up to date ($want)"
else
  echo "console-test-deps: creating venv ($want)"
  "$PYTHON" -m venv --clear "$DIR/venv"
  "$DIR/venv/bin/python" -m pip install --quiet --disable-pip-version-check "${PINS[@]}"
  echo "$want" > "$marker"
fi

# Check that Playwright drives the system Chromium as the tests launch it.
"$DIR/venv/bin/python" - <<'PY'
from playwright.sync_api import sync_playwright
with sync_playwright() as p:
    b = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"])
    page = b.new_page()
    page.set_content("<p id=x>ok</p>")
    assert page.inner_text("#x") == "ok"
    b.close()
PY
echo "console-test-deps: ready in $DIR"
