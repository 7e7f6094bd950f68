#!/usr/bin/env bash
# Installs what the notification and SIEM tests (crates/tollgate/tests/notify.rs) check our
# deliveries with, pinned, from PyPI:
#   - standardwebhooks: the Standard Webhooks reference library (Webhook(secret).verify),
#   - cloudevents: the CloudEvents Python SDK (its JSON format reader, and v1 from_json).
# Into $TOLLGATE_INTEGRATION_DEPS (default ~/.cache/tollgate-integration-deps); the tests
# read the same variable. Idempotent: an environment whose pins are unchanged is kept.
# Fails loudly.
set -euo pipefail

DIR="${TOLLGATE_INTEGRATION_DEPS:-$HOME/.cache/tollgate-integration-deps}"
PYTHON="${TOLLGATE_PYTHON:-python3}"
PINS=(standardwebhooks==1.1.0 cloudevents==2.2.0)

mkdir -p "$DIR"
want="${PINS[*]}"
marker="$DIR/venv/.pins"
if [[ -x "$DIR/venv/bin/python" && -f "$marker" && "$(cat "$marker")" == "$want" ]]; then
  echo "integration-test-deps: venv up to date ($want)"
else
  echo "integration-test-deps: creating venv ($want)"
  "$PYTHON" -m venv --clear "$DIR/venv"
  "$DIR/venv/bin/python" -m pip install --quiet --disable-pip-version-check "${PINS[@]}"
  echo "$want" > "$marker"
fi

# Check that each library imports as the tests use it.
"$DIR/venv/bin/python" -c "from standardwebhooks.webhooks import Webhook; from cloudevents.core.formats.json import JSONFormat; from cloudevents.v1.http import from_json"
echo "integration-test-deps: ready in $DIR"
