"""Execution grants checked by an independent JOSE implementation (PyJWT), offline
from the server's JWKS, and spent once through the API."""
from __future__ import annotations

import base64
import json

import httpx
import jwt
import pytest
from jwt import PyJWK

from tollgate_env import TEST_KEY, URL, fresh, record

HEADERS = {"Authorization": f"Bearer {TEST_KEY}"}


def allowed_decision():
    body = {
        "actor": {"id": "payments-bot"},
        "action": {"type": fresh("pay_invoice"), "invoice": "INV-7", "amount": 120.5},
        "context": {"workflow": "payables"},
        "signals": {"volatility": 0.01, "confidence": 0.99},
        # Grants only where they are used: the caller asks for one.
        "grant": True,
    }
    r = httpx.post(f"{URL}/v1/decisions", json=body, headers=HEADERS, timeout=30)
    r.raise_for_status()
    d = r.json()
    record("native", d["decision_id"])
    assert d["status"] == "ALLOW", d
    return body, d


def key_for(token: str) -> PyJWK:
    kid = jwt.get_unverified_header(token)["kid"]
    jwks = httpx.get(f"{URL}/.well-known/jwks.json", timeout=30).json()
    return PyJWK(next(k for k in jwks["keys"] if k["kid"] == kid), algorithm="EdDSA")


def test_a_grant_verifies_offline_with_pyjwt_and_binds_the_decision():
    body, d = allowed_decision()
    token = d["grant"]
    claims = jwt.decode(token, key=key_for(token), algorithms=["EdDSA"], issuer="tollgate")
    assert claims["decision_id"] == d["decision_id"]
    assert claims["sub"] == "default"
    assert claims["exp"] - claims["iat"] == 60
    assert claims["jti"].startswith("grt_")


def test_a_changed_grant_does_not_verify():
    _, d = allowed_decision()
    token = d["grant"]
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["action_digest"] = "0" * 64
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(f"{header}.{forged}.{signature}", key=key_for(token), algorithms=["EdDSA"])


def test_a_grant_is_spent_once_and_only_for_its_action():
    body, d = allowed_decision()
    token = d["grant"]
    other = dict(body["action"], amount=9999)
    r = httpx.post(f"{URL}/v1/grants/consume", json={"grant": token, "actor": body["actor"], "action": other, "context": body["context"]}, headers=HEADERS, timeout=30)
    assert r.status_code == 422 and r.json()["error"] == "invalid_grant"
    spend = {"grant": token, "actor": body["actor"], "action": body["action"], "context": body["context"]}
    r = httpx.post(f"{URL}/v1/grants/consume", json=spend, headers=HEADERS, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["decision_id"] == d["decision_id"]
    r = httpx.post(f"{URL}/v1/grants/consume", json=spend, headers=HEADERS, timeout=30)
    assert r.status_code == 409


def test_an_allow_carries_no_grant_unless_asked():
    body = {
        "actor": {"id": "payments-bot"},
        "action": {"type": fresh("pay_invoice"), "invoice": "INV-8", "amount": 12},
        "context": {"workflow": "payables"},
        "signals": {"volatility": 0.01, "confidence": 0.99},
    }
    r = httpx.post(f"{URL}/v1/decisions", json=body, headers=HEADERS, timeout=30)
    r.raise_for_status()
    d = r.json()
    record("native", d["decision_id"])
    assert d["status"] == "ALLOW", d
    assert "grant" not in d, d
