"""dealgo-mcp 0.2.0's `gated_tool` against Tollgate's `/api/csc/check`."""
from __future__ import annotations

import pytest
from dealgo_mcp.gate import GateBlocked, gated_tool

from tollgate_env import TEST_KEY, URL, fresh, record


def test_gated_tool_runs_an_allowed_call():
    stimuli = []

    @gated_tool(action_type="send_email", risk=0.2, api_key=TEST_KEY, api_url=URL, feed=fresh("agent_tool"), source="mcp-suite")
    def send_email(to: str) -> str:
        stimuli.append(to)
        return f"sent to {to}"

    assert send_email("ops@example.com") == "sent to ops@example.com"
    assert stimuli == ["ops@example.com"]


def test_gated_tool_raises_on_a_blocked_call():
    ran = []

    @gated_tool(action_type="drop_table", risk=0.95, api_key=TEST_KEY, api_url=URL, feed=fresh("agent_tool"))
    def drop_table(name: str) -> None:
        ran.append(name)

    with pytest.raises(GateBlocked) as caught:
        drop_table("users")
    assert ran == []
    assert caught.value.decision == "DENY"
    assert "policy" in caught.value.reason
    record("dealgo-mcp", caught.value.stimulus_id)


def test_gated_tool_fails_closed_on_a_bad_key():
    @gated_tool(action_type="noop", risk=0.1, api_key="tg_test_" + "0" * 48, api_url=URL)
    def noop() -> None:
        raise AssertionError("must not run")

    with pytest.raises(GateBlocked) as caught:
        noop()
    assert caught.value.decision == "DENY"
