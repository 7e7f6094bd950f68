"""Shared helpers of the conformance suite: where the server is, its keys, and a log
of every decision id the tests produced (checked against the ledger at the end).

The Rust test `crates/tollgate-server/tests/python_sdks.rs` starts Tollgate and sets
the environment variables read here.
"""
from __future__ import annotations

import json
import os
import uuid

import httpx

URL = os.environ["TOLLGATE_URL"]
ADMIN_KEY = os.environ["TOLLGATE_ADMIN_KEY"]
TEST_KEY = os.environ["TOLLGATE_TEST_KEY"]
DECISIONS_LOG = os.environ["TOLLGATE_DECISIONS_LOG"]
TENANT = "default"


def fresh(name: str) -> str:
    """A new action type: the conformance policy keys its throttle bucket by it."""
    return f"{name}-{uuid.uuid4().hex[:10]}"


def record(family: str, decision_id: str) -> None:
    assert decision_id.startswith("dec_"), decision_id
    with open(DECISIONS_LOG, "a", encoding="utf-8") as f:
        f.write(json.dumps({"family": family, "decision_id": decision_id}) + "\n")


def admin(method: str, path: str, body: dict | None = None) -> httpx.Response:
    return httpx.request(
        method,
        f"{URL}{path}",
        json=body,
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=30,
    )


def signing_pem() -> str:
    r = httpx.get(f"{URL}/v1/signing-keys", timeout=30)
    r.raise_for_status()
    return r.json()["pem"]


def live_key() -> str:
    r = admin(
        "POST",
        "/v1/admin/keys",
        {"tenant": TENANT, "environment": "live", "scopes": ["decide", "outcomes"]},
    )
    assert r.status_code == 201, r.text
    return r.json()["secret"]
