"""Fixtures of the console's browser tests (run by crates/tollgate/tests/console_browser.rs).

The Rust test starts a real `tollgate serve` and passes its URL and keys in the
environment; these scenarios drive Debian's Chromium through Playwright, and the API
over plain HTTP. Every page is watched for dialogs, script errors and CSP violations:
any of them fails the test.
"""

import json
import os
import pathlib
import urllib.error
import urllib.request
import uuid

import pytest
from playwright.sync_api import sync_playwright

URL = os.environ["TOLLGATE_CONSOLE_URL"]
ADMIN = os.environ["TOLLGATE_CONSOLE_ADMIN_KEY"]
DECIDE = os.environ["TOLLGATE_CONSOLE_DECIDE_KEY"]
SHOTS = pathlib.Path(os.environ["TOLLGATE_CONSOLE_SCREENSHOTS"])
CHROMIUM = os.environ.get("TOLLGATE_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def api(method, path, key=None, body=None, accept="application/json", headers=None):
    """One HTTP call to the server: (status, parsed JSON or text, response headers)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(URL + path, data=data, method=method)
    req.add_header("Accept", accept)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", "Bearer " + key)
    for k, v in (headers or {}).items():
        req.add_header(k, v)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **kw):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=30) as r:
            status, raw, hdrs = r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        status, raw, hdrs = e.code, e.read(), e.headers
    text = raw.decode("utf-8", "replace")
    try:
        return status, json.loads(text), hdrs
    except ValueError:
        return status, text, hdrs


def decide(actor, action, context=None, policy=None, key=None, **extra):
    """POST /v1/decisions; returns the verdict body (asserting 200)."""
    body = {"actor": actor, "action": action, "context": context or {}}
    if policy:
        body["policy_refs"] = [policy]
    body.update(extra)
    status, v, _ = api("POST", "/v1/decisions", key or DECIDE, body)
    assert status == 200, (status, v)
    return v


def make_key(scopes, name=None, tenant=None):
    body = {"scopes": scopes, "environment": "test", "name": name or ("console-" + "-".join(scopes))}
    if tenant:
        body["tenant"] = tenant
    status, v, _ = api("POST", "/v1/admin/keys", ADMIN, body)
    assert status == 201, (status, v)
    return v["secret"]


def publish(text, activate=True):
    status, v, _ = api(
        "POST", "/v1/admin/policies", ADMIN, {"text": text, "activate": activate, "environment": "test"}
    )
    assert status in (200, 201), (status, v)
    return v


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def browser():
    if not pathlib.Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: run scripts/console-test-deps.sh")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Watched:
    """A page with its dialogs, script errors and CSP reports collected."""

    def __init__(self, page):
        self.page = page
        self.dialogs = []
        self.errors = []
        self.csp = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", self._console)

    def _dialog(self, d):
        self.dialogs.append(d.message)
        d.dismiss()

    def _console(self, msg):
        if msg.type == "error" and "Content Security Policy" in msg.text:
            self.csp.append(msg.text)

    def assert_clean(self):
        assert self.dialogs == [], f"a dialog opened: {self.dialogs}"
        assert self.errors == [], f"script errors: {self.errors}"
        assert self.csp == [], f"CSP violations: {self.csp}"


@pytest.fixture
def context(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(15000)
    yield ctx
    ctx.close()


@pytest.fixture
def watched(context):
    w = Watched(context.new_page())
    yield w
    w.assert_clean()


def sign_in(page, key):
    page.goto(URL + "/console/login")
    page.fill("#key", key)
    page.click("#sign-in")
    page.wait_for_url(URL + "/console")


def shot(page, name):
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
