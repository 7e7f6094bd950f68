"""dealgo-csc (2.1.1 and 2.3.0) against Tollgate, through the SDK's public API only.

Runs once in each SDK version's virtualenv.
"""
from __future__ import annotations

import base64
import json
from datetime import datetime, timezone

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization
from csc_sdk import CSC, BlockedError, DeAlgo, Gate, ThrottledError, ValidationError

from tollgate_env import TEST_KEY, URL, admin, fresh, live_key, record

IN_BAND = {"risk_score": 0.1, "confidence": 0.95}


def portal(key: str = TEST_KEY, **kwargs) -> DeAlgo:
    return DeAlgo(api_key=key, base_url=URL, **kwargs)


def exhaust(client: DeAlgo, action_type: str) -> None:
    """Takes the 4 tokens of the action type's bucket."""
    for _ in range(4):
        d = client.decide(action_type=action_type, **IN_BAND)
        record("dealgo", d.id)
        assert d.permitted and d.gate is Gate.PERMIT, d.raw


def test_decide_permit():
    d = portal().decide(
        action_type=fresh("send_email"),
        intent="reply to customer with quote",
        metadata={"symbol": "BTC", "volatility": 0.05},
        **IN_BAND,
    )
    record("dealgo", d.id)
    assert d.permitted and d.gate is Gate.PERMIT
    assert d.id.startswith("dec_") and d.decision_log_id == d.id
    assert d.environment == "test"
    assert d.idempotency_replayed is False
    assert isinstance(d.latency_ms, int)


def test_decide_policy_gate_for_score_rule_escalation_and_review():
    c = portal()
    score = c.decide(action_type=fresh("trade"), risk_score=0.9, confidence=0.95)
    rule = c.decide(action_type="drop_table", **IN_BAND)
    review = c.decide(action_type="deploy_prod", **IN_BAND)
    for d in (score, rule, review):
        record("dealgo", d.id)
        assert not d.permitted
        assert d.gate is Gate.POLICY, d.raw
        assert d.raw["decision"] == "DENY"
    assert "SURVIVAL_SCORE_LOW" in score.raw["reason_codes"]
    assert review.raw["status"] == "REVIEW_REQUIRED"
    assert review.raw["review"]["approvers"] == ["sre"]
    assert review.raw["review_id"].startswith("rev_")
    assert review.raw["review"]["id"] == review.raw["review_id"]


def test_decide_reality_gate():
    d = portal().decide(action_type=fresh("trade"), metadata={"volatility": 0.5, "symbol": "ETH"}, **IN_BAND)
    record("dealgo", d.id)
    assert not d.permitted and d.gate is Gate.REALITY, d.raw


def test_decide_throttle_gate_is_delay():
    c = portal()
    action = fresh("burst")
    exhaust(c, action)
    d = c.decide(action_type=action, **IN_BAND)
    record("dealgo", d.id)
    assert not d.permitted and d.gate is Gate.THROTTLE
    assert d.raw["decision"] == "DELAY"
    assert d.raw["retry_after_ms"] > 0


def test_decide_override_gate_and_clearing_it():
    action = fresh("killswitch")
    r = admin("POST", "/v1/admin/overrides", {"scope": "action_type", "value": action, "reason": "incident 42"})
    assert r.status_code == 201, r.text
    c = portal()
    d = c.decide(action_type=action, **IN_BAND)
    record("dealgo", d.id)
    assert not d.permitted and d.gate is Gate.OVERRIDE, d.raw
    assert admin("DELETE", f"/v1/admin/overrides/{r.json()['id']}").status_code == 200
    after = c.decide(action_type=action, **IN_BAND)
    record("dealgo", after.id)
    assert after.permitted and after.gate is Gate.PERMIT


def test_check_and_check_or_raise():
    c = CSC(api_key=TEST_KEY, base_url=URL)
    feed = fresh("trading")
    ok = c.check(feed, volatility=0.05, confidence=0.95, risk=0.1, symbol="BTC", source="bot-1", intent="rebalance")
    record("dealgo", ok.id)
    assert ok.permitted and ok.gate is Gate.PERMIT
    with pytest.raises(BlockedError) as reality:
        c.check_or_raise(feed, volatility=0.5, confidence=0.95, symbol="BTC")
    assert not isinstance(reality.value, ThrottledError)
    assert reality.value.decision.gate is Gate.REALITY
    record("dealgo", reality.value.decision.id)
    for _ in range(3):
        record("dealgo", c.check_or_raise(feed, confidence=0.95).id)
    with pytest.raises(ThrottledError) as throttled:
        c.check_or_raise(feed, confidence=0.95)
    assert throttled.value.decision.gate is Gate.THROTTLE
    record("dealgo", throttled.value.decision.id)


class CountingSession(requests.Session):
    def __init__(self):
        super().__init__()
        self.posts = 0

    def post(self, *args, **kwargs):
        self.posts += 1
        return super().post(*args, **kwargs)


def test_check_with_retry_retries_throttle_only():
    session = CountingSession()
    c = portal(session=session)
    feed = fresh("retry")
    exhaust(c, feed)
    session.posts = 0
    d = c.check_with_retry(feed, max_attempts=3, base_backoff=0.01, confidence=0.95)
    assert d.gate is Gate.THROTTLE and session.posts == 3
    record("dealgo", d.id)
    session.posts = 0
    blocked = c.check_with_retry(fresh("retry"), max_attempts=3, base_backoff=0.01, risk=0.9)
    assert blocked.gate is Gate.POLICY and session.posts == 1
    record("dealgo", blocked.id)


def test_decide_or_raise():
    c = portal()
    action = fresh("tool_call")
    record("dealgo", c.decide_or_raise(action_type=action, **IN_BAND).id)
    with pytest.raises(BlockedError) as blocked:
        c.decide_or_raise(action_type=action, risk_score=0.95)
    assert blocked.value.decision.gate is Gate.POLICY and not isinstance(blocked.value, ThrottledError)
    record("dealgo", blocked.value.decision.id)
    for _ in range(3):
        record("dealgo", c.decide_or_raise(action_type=action, **IN_BAND).id)
    with pytest.raises(ThrottledError) as throttled:
        c.decide_or_raise(action_type=action, **IN_BAND)
    record("dealgo", throttled.value.decision.id)


def test_idempotent_replay_takes_no_second_token():
    c = portal()
    action = fresh("idem")
    key = fresh("key")
    first = c.decide(action_type=action, idempotency_key=key, **IN_BAND)
    record("dealgo", first.id)
    assert first.permitted and first.idempotency_replayed is False
    for _ in range(5):
        again = c.decide(action_type=action, idempotency_key=key, **IN_BAND)
        assert again.idempotency_replayed is True and again.id == first.id and again.permitted
    # The bucket holds 4: the first decision took one, the replays none.
    for _ in range(3):
        d = c.decide(action_type=action, **IN_BAND)
        record("dealgo", d.id)
        assert d.permitted, d.raw
    d = c.decide(action_type=action, **IN_BAND)
    record("dealgo", d.id)
    assert d.gate is Gate.THROTTLE


def _signed_outcome(private: Ed25519PrivateKey, fields: dict) -> str:
    # Tollgate's signed bytes: the eight fields, sorted keys, no whitespace.
    message = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    return base64.b64encode(private.sign(message)).decode()


def test_report_outcome_with_a_real_signature():
    private = Ed25519PrivateKey.generate()
    public = base64.b64encode(
        private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    ).decode()
    source = fresh("desk")
    r = admin("POST", "/v1/admin/sources", {"id": source, "public_key": public})
    assert r.status_code == 201, r.text
    c = portal()
    action = fresh("trade")
    d = c.decide(action_type=action, metadata={"source": source, "v2_aware": True}, **IN_BAND)
    record("dealgo", d.id)
    assert d.permitted
    now = datetime.now(timezone.utc)
    observed = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    fields = {
        "stimulus_id": d.id,
        "magnitude": 0.5,
        "confidence": 0.8,
        "source": source,
        "context_type": action,
        "outcome_observed_at": observed,
        "is_final": True,
        "is_correction": False,
    }
    bad = _signed_outcome(private, {**fields, "magnitude": -0.5})
    with pytest.raises(ValidationError) as rejected:
        c.report_outcome(**{**fields, "signature": bad})
    assert "signature" in json.dumps(rejected.value.detail)
    answer = c.report_outcome(**fields, signature=_signed_outcome(private, fields), public_key=public)
    assert answer["accepted"] is True and answer["status"] == "accepted"
    assert answer["environment"] == "test"
    assert answer["outcome_id"]


def test_validation_error_detail():
    c = portal()
    with pytest.raises(ValidationError) as out_of_range:
        c.decide(action_type=fresh("trade"), risk_score=1.5)
    assert "risk_score" in json.dumps(out_of_range.value.detail["detail"])
    with pytest.raises(ValidationError) as empty:
        c.decide(action_type="")
    assert empty.value.detail["detail"][0]["loc"] == ["body", "action_type"]


def test_direct_runtime_mode_without_a_key():
    c = DeAlgo(api_key=None, base_url=URL)
    feed = fresh("lab")
    ok = c.check(feed, volatility=0.05, confidence=0.95, risk=0.1, symbol="ETH", source="lab-harness")
    record("dealgo-runtime", ok.id)
    assert ok.permitted and ok.gate is Gate.PERMIT and ok.raw["execution"] == "permitted"
    wild = c.check(feed, volatility=0.5, confidence=0.95)
    record("dealgo-runtime", wild.id)
    assert wild.gate is Gate.REALITY and "volatility" in wild.reason
    risky = c.decide(action_type=feed, risk_score=0.9)
    record("dealgo-runtime", risky.id)
    assert risky.gate is Gate.POLICY and risky.raw["execution"] == "blocked_policy"
    for _ in range(3):
        record("dealgo-runtime", c.check(feed, confidence=0.95).id)
    throttled = c.check(feed, confidence=0.95)
    record("dealgo-runtime", throttled.id)
    assert throttled.gate is Gate.THROTTLE and throttled.raw["execution"] == "blocked_controlled"
    adaptive = c.check(fresh("lab"), confidence=0.95, source="lab-harness", v2_aware=True)
    record("dealgo-runtime", adaptive.id)
    assert adaptive.permitted and adaptive.v2_bias is not None


def test_test_and_live_environments():
    test = portal().decide(action_type=fresh("env"), **IN_BAND)
    live = portal(key=live_key()).decide(action_type=fresh("env"), **IN_BAND)
    record("dealgo", test.id)
    record("dealgo", live.id)
    assert test.environment == "test" and live.environment == "live"
