"""What dealgo-csc 2.3.0 adds: `agent_id`."""
from __future__ import annotations

import pytest
from csc_sdk import DeAlgo, Gate, ValidationError

from tollgate_env import TEST_KEY, URL, admin, fresh, record


def test_agent_id_is_the_actor():
    c = DeAlgo(api_key=TEST_KEY, base_url=URL)
    d = c.decide(action_type=fresh("send_email"), risk_score=0.1, confidence=0.95, agent_id="support-bot-7")
    record("dealgo", d.id)
    assert d.permitted and d.gate is Gate.PERMIT
    stored = admin("GET", f"/v1/decisions/{d.id}").json()
    assert stored["request"]["actor"]["id"] == "support-bot-7"


def test_legacy_metadata_agent_id_is_promoted():
    c = DeAlgo(api_key=TEST_KEY, base_url=URL)
    d = c.decide(action_type=fresh("send_email"), metadata={"agent_id": "legacy_bot"})
    record("dealgo", d.id)
    assert admin("GET", f"/v1/decisions/{d.id}").json()["request"]["actor"]["id"] == "legacy_bot"


def test_bad_agent_id_is_a_validation_error():
    c = DeAlgo(api_key=TEST_KEY, base_url=URL)
    with pytest.raises(ValidationError) as caught:
        c.decide(action_type=fresh("send_email"), agent_id="not a valid id!")
    assert caught.value.detail["detail"][0]["loc"] == ["body", "agent_id"]
