"""Batch-signed verdicts checked in Python, with the README's own check (the code block
between the `verify-verdict` markers of README.md, run as it is), the `rfc8785`
package for canonical JSON and `cryptography` for Ed25519: nothing of Tollgate's."""
from __future__ import annotations

import concurrent.futures
import copy
import pathlib
import re

import httpx
import pytest

from tollgate_env import TEST_KEY, URL, fresh, record

HEADERS = {"Authorization": f"Bearer {TEST_KEY}"}
README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def readme_check():
    text = README.read_text(encoding="utf-8")
    m = re.search(r"<!-- verify-verdict -->\s*```python\n(.*?)```\s*<!-- /verify-verdict -->", text, re.S)
    assert m, "README.md has no verify-verdict block"
    code = m.group(1)
    assert len(code.strip().splitlines()) <= 25, "the README check should stay short"
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    return scope["verify_verdict"]


def decide(i: int) -> dict:
    body = {
        "actor": {"id": "payments-bot"},
        "action": {"type": fresh("pay_invoice"), "invoice": f"INV-{i}", "amount": 120.5 + i},
        "context": {"workflow": "payables", "note": "naïve ✓ \u2028"},
        "signals": {"volatility": 0.01, "confidence": 0.99},
    }
    r = httpx.post(f"{URL}/v1/decisions", json=body, headers=HEADERS, timeout=30)
    r.raise_for_status()
    d = r.json()
    record("native", d["decision_id"])
    return d


def test_concurrent_verdicts_verify_alone_with_the_readme_check():
    verify_verdict = readme_check()
    jwks = httpx.get(f"{URL}/.well-known/jwks.json", timeout=30).json()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        verdicts = list(pool.map(decide, range(48)))
    for d in verdicts:
        assert d["signature"]["algorithm"] == "Ed25519-Merkle-batch", d["signature"]
        verify_verdict(copy.deepcopy(d), jwks)


def test_a_changed_verdict_or_path_does_not_verify():
    verify_verdict = readme_check()
    jwks = httpx.get(f"{URL}/.well-known/jwks.json", timeout=30).json()
    d = decide(1000)
    verify_verdict(copy.deepcopy(d), jwks)
    changed = copy.deepcopy(d)
    changed["status"] = "BLOCK" if d["status"] == "ALLOW" else "ALLOW"
    with pytest.raises(Exception):
        verify_verdict(changed, jwks)
    longer = copy.deepcopy(d)
    longer["signature"]["batch"]["path"].append("00" * 32)
    with pytest.raises(Exception):
        verify_verdict(longer, jwks)
    moved = copy.deepcopy(d)
    moved["signature"]["batch"]["size"] += 1
    with pytest.raises(Exception):
        verify_verdict(moved, jwks)
