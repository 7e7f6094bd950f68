"""Runs last: every decision any family made is in the one tenant ledger, and the
ledger verifies."""
from __future__ import annotations

import json

from tollgate_env import DECISIONS_LOG, admin


def test_every_decision_is_in_the_tenant_ledger_and_it_verifies():
    with open(DECISIONS_LOG, encoding="utf-8") as f:
        logged = [json.loads(line) for line in f if line.strip()]
    families = {e["family"] for e in logged}
    assert families == {"decionis", "dealgo", "dealgo-runtime", "dealgo-mcp", "native"}, families
    recorded_families = set()
    for e in logged:
        r = admin("GET", f"/v1/decisions/{e['decision_id']}")
        assert r.status_code == 200, (e, r.text)
        assert r.json()["decision_id"] == e["decision_id"]
        r = admin("GET", f"/v1/dossiers/{e['decision_id']}")
        assert r.status_code == 200, (e, r.text)
        recorded_families.add(r.json()["entry"]["body"]["family"])
    assert recorded_families == families
    verdict = admin("GET", "/v1/audit/verify").json()
    assert verdict["ok"] is True, verdict
    assert verdict["entries"] >= len({e["decision_id"] for e in logged})
