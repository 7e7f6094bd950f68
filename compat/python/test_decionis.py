"""decionis 0.1.0 against Tollgate, through the SDK's public API only."""
from __future__ import annotations

import asyncio
import copy

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from decionis import (
    DecionisAuthenticationError,
    DecionisBlockedException,
    DecionisClient,
    DecisionStatus,
    decionis_gate,
)
from decionis.middleware.fastapi import FastAPIDecionisMiddleware
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tollgate_env import TEST_KEY, TENANT, URL, fresh, record, signing_pem

ACTOR = {"id": "agent-7", "type": "AI_AGENT"}


def client(**kwargs) -> DecionisClient:
    return DecionisClient(api_key=TEST_KEY, base_url=URL, tenant_id=TENANT, max_retries=0, **kwargs)


def allowed_request() -> dict:
    return {
        "actor": ACTOR,
        "action": {"type": fresh("read_report"), "report": "q3"},
        "context": {"risk_score": 0.1, "confidence": 0.95, "volatility": 1e-05},
    }


def test_evaluate_allow_with_the_sdk_fields_and_extras():
    d = client().evaluate(allowed_request())
    record("decionis", d.decision_id)
    assert d.status is DecisionStatus.ALLOW and d.allowed
    assert d.dossier_url == f"{URL}/v1/dossiers/{d.decision_id}"
    assert d.signature is not None and d.signature.algorithm == "Ed25519"
    assert isinstance(d.latency_ms, int)
    extra = d.model_extra
    assert extra["gate"] == "permit"
    assert extra["environment"] == "test"
    assert extra["signals"] == {"risk_score": 0.1, "confidence": 0.95, "volatility": 1e-05}
    assert extra["ledger"]["seq"] >= 0


def test_enforce_returns_the_decision_on_allow():
    d = client().enforce(allowed_request())
    record("decionis", d.decision_id)
    assert d.allowed


@pytest.mark.parametrize(
    "action,status,code",
    [
        ({"type": "drop_table", "table": "users"}, DecisionStatus.BLOCK, "DESTRUCTIVE_ACTION"),
        ({"type": "wire_transfer", "amount": 25000}, DecisionStatus.ESCALATE, "AMOUNT_OVER_LIMIT"),
        ({"type": "deploy_prod", "service": "api"}, DecisionStatus.REVIEW_REQUIRED, "DEPLOY_NEEDS_REVIEW"),
    ],
)
def test_enforce_raises_with_id_reasons_explanation_and_dossier(action, status, code):
    c = client()
    with pytest.raises(DecionisBlockedException) as caught:
        c.enforce(actor=ACTOR, action=action, context={"risk_score": 0.1})
    e = caught.value
    record("decionis", e.decision_id)
    assert e.status is status
    assert code in e.reason_codes
    assert e.explanation and str(e) == e.explanation
    assert e.dossier_url == f"{URL}/v1/dossiers/{e.decision_id}"
    dossier = c.create_dossier(e.decision_id)
    assert dossier["decision_id"] == e.decision_id
    assert dossier["verdict"]["status"] == status.value
    if status is not DecisionStatus.BLOCK:
        review_id = e.response.model_extra["review_id"]
        assert review_id.startswith("rev_")
        # The exception's dossier shows the pending review.
        reviews = httpx.get(e.dossier_url, headers={"Authorization": f"Bearer {TEST_KEY}"}, timeout=30).json()["reviews"]
        assert [r["review_id"] for r in reviews] == [review_id]
        assert reviews[0]["status"] == "pending"


def test_unknown_policy_ref_blocks_fail_closed():
    with pytest.raises(DecionisBlockedException) as caught:
        client(policy_refs=["no-such-policy"]).enforce(allowed_request())
    record("decionis", caught.value.decision_id)
    assert caught.value.status is DecisionStatus.BLOCK
    assert "POLICY_NOT_FOUND" in caught.value.reason_codes


def test_score_and_reality_blocks():
    c = client()
    risky = c.evaluate(actor=ACTOR, action={"type": fresh("trade")}, context={"risk_score": 0.9})
    wild = c.evaluate(actor=ACTOR, action={"type": fresh("trade")}, context={"volatility": 0.5})
    for d in (risky, wild):
        record("decionis", d.decision_id)
        assert d.status is DecisionStatus.BLOCK
    assert "SURVIVAL_SCORE_LOW" in risky.reason_codes
    assert risky.model_extra["gate"] == "policy"
    assert wild.model_extra["gate"] == "reality"


@pytest.mark.parametrize("kwargs", [{"shadow_mode": True}, {"enforcement_mode": "shadow"}, {"enforcement_mode": "dry_run"}])
def test_shadow_requests_do_not_raise_and_report_the_would_be_status(kwargs):
    c = client(**kwargs)
    d = c.enforce(actor=ACTOR, action={"type": "drop_table", "table": "users"})
    record("decionis", d.decision_id)
    assert d.status is DecisionStatus.BLOCK
    assert "DESTRUCTIVE_ACTION" in d.reason_codes
    assert d.model_extra["shadow"]["would_be"] == "BLOCK"
    assert c.verify_signature(d, public_key=signing_pem())


def test_decorator_and_client_gate_on_sync_and_async_functions():
    c = client()
    action = fresh("send_email")

    @decionis_gate(client=c, action=action, actor=ACTOR, context={"confidence": 0.97})
    def send(n: int) -> int:
        return n * 2

    @c.gate(action=action, actor=ACTOR)
    async def send_async(n: int) -> int:
        return n + 1

    @decionis_gate(client=c, action=action, actor=ACTOR)
    async def send_via_decorator_async(n: int) -> int:
        return n - 1

    @c.gate(action=action, actor=ACTOR)
    def send_via_client_sync(n: int) -> int:
        return n * 3

    assert send(21) == 42
    assert asyncio.run(send_async(1)) == 2
    assert asyncio.run(send_via_decorator_async(1)) == 0
    assert send_via_client_sync(2) == 6

    ran = []

    @decionis_gate(client=c, action="drop_table", actor=ACTOR)
    def drop() -> None:
        ran.append("sync")

    @c.gate(action="deploy_prod", actor=ACTOR)
    async def deploy() -> None:
        ran.append("async")

    with pytest.raises(DecionisBlockedException) as sync_block:
        drop()
    with pytest.raises(DecionisBlockedException) as async_block:
        asyncio.run(deploy())
    assert ran == []
    assert sync_block.value.status is DecisionStatus.BLOCK
    assert async_block.value.status is DecisionStatus.REVIEW_REQUIRED
    record("decionis", sync_block.value.decision_id)
    record("decionis", async_block.value.decision_id)


def test_fastapi_middleware_in_a_real_app():
    c = client()
    ok_action = fresh("list_invoices")

    def build_request(scope):
        if scope["path"] == "/open":
            return None
        if scope["path"] == "/wire":
            return {"actor": ACTOR, "action": {"type": "wire_transfer", "amount": 25000}}
        return {"actor": ACTOR, "action": {"type": ok_action}}

    app = FastAPI()

    @app.get("/invoices")
    def invoices():
        return {"invoices": []}

    @app.post("/wire")
    def wire():
        return {"sent": True}

    @app.get("/open")
    def open_route():
        return {"open": True}

    app.add_middleware(FastAPIDecionisMiddleware, client=c, build_request=build_request)
    web = TestClient(app)
    assert web.get("/invoices").json() == {"invoices": []}
    assert web.get("/open").status_code == 200
    blocked = web.post("/wire")
    assert blocked.status_code == 403
    body = blocked.json()
    assert body["error"] == "decionis_blocked"
    assert body["status"] == "ESCALATE"
    assert body["reason_codes"] == ["AMOUNT_OVER_LIMIT"]
    assert "€" in body["explanation"]
    assert body["dossier_url"] == f"{URL}/v1/dossiers/{body['decision_id']}"
    record("decionis", body["decision_id"])


def _tampered(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, list):
        return value + ["x"]
    if isinstance(value, dict):
        return {**value, "tampered": 1}
    return "x"


def test_signatures_verify_and_any_change_breaks_them():
    pem = signing_pem()
    c = client()
    blocked = c.evaluate(
        actor=ACTOR,
        action={"type": "drop_table", "table": "users", "note": "naïve café ☕ 𝄞"},
        context={"risk_score": 0.1, "confidence": 0.95, "volatility": 1e-05, "nested": {"a": [1, 2.5, {"b": "ü"}]}},
    )
    allowed = c.evaluate(allowed_request())
    for d in (blocked, allowed):
        record("decionis", d.decision_id)
        assert c.verify_signature(d, public_key=pem) is True
        raw = d.model_dump(by_alias=True, mode="json")
        assert c.verify_signature(raw, public_key=pem) is True
        for key in raw:
            if key == "signature" or raw[key] is None:
                continue
            changed = copy.deepcopy(raw)
            changed[key] = (
                ("BLOCK" if changed[key] == "ALLOW" else "ALLOW") if key == "status" else _tampered(changed[key])
            )
            assert c.verify_signature(changed, public_key=pem) is False, key
    # Non-ASCII (including outside the BMP) explanations, floats, nested extras.
    assert any(ord(ch) > 0xFFFF for ch in blocked.explanation)
    assert "ö" in blocked.explanation
    raw = blocked.model_dump(by_alias=True, mode="json")
    assert raw["signals"]["volatility"] == 1e-05
    for path in (("signals", "confidence"), ("ledger", "seq"), ("policy", "id"), ("shadow",)):
        changed = copy.deepcopy(raw)
        target = changed
        for p in path[:-1]:
            target = target[p]
        target[path[-1]] = _tampered(target.get(path[-1]))
        assert c.verify_signature(changed, public_key=pem) is False, path
    other = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert c.verify_signature(blocked, public_key=other) is False
    # The client-level key works too.
    assert client(public_key=pem).verify_signature(allowed) is True


def test_idempotency_key_replays_the_signed_decision():
    c = client()
    req = allowed_request()
    key = fresh("idem")
    first = c.evaluate(req, idempotency_key=key, correlation_id="corr-42")
    again = c.evaluate(req, idempotency_key=key, correlation_id="corr-42")
    record("decionis", first.decision_id)
    assert again.decision_id == first.decision_id
    assert first.model_extra["idempotency_replayed"] is False
    assert again.model_extra["idempotency_replayed"] is True
    assert c.verify_signature(again, public_key=signing_pem())


def test_policies_validate():
    c = client()
    good = {
        "id": "transfers",
        "version": 1,
        "default_effect": "allow",
        "rules": [
            {"name": "big", "when": "action.amount > 100", "effect": "review", "reason_code": "BIG"},
        ],
    }
    assert c.policies.validate(good)["valid"] is True
    bad = copy.deepcopy(good)
    bad["rules"][0]["when"] = "acton.amount > 100"
    answer = c.policies.validate(bad)
    assert answer["valid"] is False
    assert answer["errors"] and answer["errors"][0]["path"].startswith("rules[0]")
    assert answer["errors"][0]["message"]


def test_health_and_auth_errors():
    assert client().health()["status"] == "ok"
    bad = DecionisClient(api_key="tg_test_" + "0" * 48, base_url=URL, tenant_id=TENANT, max_retries=0)
    with pytest.raises(DecionisAuthenticationError) as caught:
        bad.evaluate(allowed_request())
    assert caught.value.status_code == 401
    assert caught.value.request_id
