"""The console's scenarios (docs/console.md, "What the browser tests show"), one test per
bullet of the spec, in a real Chromium against a real `tollgate serve`."""

import base64
import json
import re

from conftest import (
    ADMIN,
    DECIDE,
    URL,
    api,
    decide,
    make_key,
    publish,
    shot,
    sign_in,
    unique,
)

REVIEW_POLICY = """
id: console-review
default_effect: allow
rules:
  - name: wire-needs-review
    when: 'action.type == "WIRE_MONEY" || "needs_review" in context'
    effect: review
    reason_code: WIRE_REVIEW
    explanation: Wires need a person.
    review: {expires_in: 30m}
"""

BIDI = "\u202e"


def test_sign_in_and_sign_out(watched, context):
    page = watched.page
    page.goto(URL + "/console/decisions")
    assert page.url == URL + "/console/login", "an anonymous visit is sent to sign-in"
    shot(page, "login")
    page.fill("#key", "tg_test_" + "0" * 48)
    page.click("#sign-in")
    assert "not valid" in page.inner_text("#login-error")
    # A decide-only key cannot use the console.
    page.fill("#key", DECIDE)
    page.click("#sign-in")
    assert "admin, review or read" in page.inner_text("#login-error")

    response = page.goto(URL + "/console/login")
    headers = response.headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"

    sign_in(page, ADMIN)
    assert page.locator("#open-reviews").is_visible()
    cookies = {c["name"]: c for c in context.cookies()}
    session = cookies["tg_session"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    assert session["path"] == "/console"
    assert len(session["value"]) == 64
    # The key itself is nowhere in the browser.
    stored = page.evaluate(
        "() => JSON.stringify([document.cookie, Object.entries(localStorage), Object.entries(sessionStorage)])"
    )
    assert ADMIN not in stored and ADMIN not in json.dumps(context.cookies())
    assert ADMIN not in page.content()

    page.click("#sign-out")
    page.wait_for_url(re.compile(r".*/console/login\?bye=1$"))
    assert page.locator("#signed-out").is_visible()
    page.goto(URL + "/console")
    assert page.url == URL + "/console/login"
    # The old session id is dead on the server, not just forgotten by the browser.
    context.add_cookies([{"name": "tg_session", "value": session["value"], "url": URL + "/console"}])
    page.goto(URL + "/console/reviews")
    assert page.url == URL + "/console/login"


def test_a_decision_made_over_the_api_appears_in_the_live_stream(watched):
    page = watched.page
    sign_in(page, ADMIN)
    page.goto(URL + "/console/decisions")
    page.wait_for_selector("#live")
    page.evaluate("() => { window.__same_document = true; }")
    actor = unique("live-agent")
    assert page.locator("td.actor", has_text=actor).count() == 0
    v = decide({"id": actor}, {"type": "TOOL_CALL", "tool": "fs.read"})
    row = page.locator("#rows tr", has_text=actor)
    row.wait_for(timeout=15000)
    assert page.evaluate("() => window.__same_document === true"), "the page was not reloaded"
    assert v["decision_id"] in row.inner_text()
    assert page.locator("#rows tr").first.inner_text().find(actor) >= 0, "newest on top"
    shot(page, "decisions")
    # The row links to the decision's page.
    row.locator("a.open").click()
    page.wait_for_url(URL + "/console/decisions/" + v["decision_id"])


def test_the_decision_page_shows_every_gate_and_a_verified_proof(watched):
    page = watched.page
    publish(REVIEW_POLICY)
    for i in range(3):  # a ledger of several entries: the proof has hashes in it
        decide({"id": "filler"}, {"type": "NOOP", "n": i})
    actor = unique("gates-agent")
    v = decide(
        {"id": actor, "type": "AI_AGENT"},
        {"type": "TOOL_CALL", "tool": "fs.read", "amount": 12},
        {"ticket": "T-1"},
        policy="console-review",
        signals={"risk_score": 0.25},
    )
    status, dossier, _ = api("GET", "/v1/dossiers/" + v["decision_id"], ADMIN)
    assert status == 200
    sign_in(page, ADMIN)
    page.goto(URL + "/console/decisions/" + v["decision_id"])
    gates = page.locator("#gates li.gate")
    assert gates.count() == len(dossier["trace"]) > 0
    assert [gates.nth(i).get_attribute("data-gate") for i in range(gates.count())] == [
        g["gate"] for g in dossier["trace"]
    ]
    assert page.inner_text("#status") == v["status"]
    assert "console-review@" in page.content()
    assert page.locator("#entry-hash").inner_text() == dossier["entry"]["entry_hash"]
    status = page.locator("#proof-status")
    page.wait_for_function("() => !document.getElementById('proof-status').classList.contains('pending')")
    assert status.inner_text() == "verified", page.inner_text("#proof-checks")
    assert page.locator("#proof-checks li.ok").count() == 4
    shot(page, "decision")
    page.set_viewport_size({"width": 390, "height": 844})
    shot(page, "decision-phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    # dossier_url opened by a browser is the decision page; API clients keep JSON.
    page.goto(v["dossier_url"])
    assert page.url == URL + "/console/decisions/" + v["decision_id"]
    status, body, headers = api("GET", "/v1/dossiers/" + v["decision_id"], DECIDE)
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert body["decision_id"] == v["decision_id"]
    status, body, _ = api("GET", "/v1/decisions/" + v["decision_id"], DECIDE)
    assert status == 200 and body["decision_id"] == v["decision_id"]


def _tampered(page, decision_id, change):
    def handle(route):
        response = route.fetch()
        body = response.json()
        change(body)
        route.fulfill(response=response, body=json.dumps(body))

    page.route("**/proof.json", handle)
    page.goto(URL + "/console/decisions/" + decision_id)
    page.wait_for_function("() => !document.getElementById('proof-status').classList.contains('pending')")
    text = page.inner_text("#proof-status")
    page.unroute("**/proof.json")
    return text


def _flip_hex(h):
    return ("1" if h[0] == "0" else "0") + h[1:]


def test_a_tampered_proof_is_not_verified(watched):
    page = watched.page
    for i in range(4):
        v = decide({"id": "tamper"}, {"type": "NOOP", "n": i})
    sign_in(page, ADMIN)

    def proof_hash(b):
        assert b["inclusion_proof"], "the proof has hashes"
        b["inclusion_proof"][0] = _flip_hex(b["inclusion_proof"][0])

    def entry_bytes(b):
        raw = base64.b64decode(b["canonical"]).replace(b'"tamper"', b'"tamp3r"')
        b["canonical"] = base64.b64encode(raw).decode()

    def entry_hash(b):
        b["entry_hash"] = _flip_hex(b["entry_hash"])

    def signature(b):
        head, sig = b["checkpoint"].rsplit(" ", 1)
        raw = bytearray(base64.b64decode(sig))
        raw[10] ^= 1
        b["checkpoint"] = head + " " + base64.b64encode(bytes(raw)).decode() + "\n"

    def root(b):
        lines = b["checkpoint"].split("\n")
        raw = bytearray(base64.b64decode(lines[2]))
        raw[0] ^= 1
        lines[2] = base64.b64encode(bytes(raw)).decode()
        b["checkpoint"] = "\n".join(lines)

    for change in (proof_hash, entry_bytes, entry_hash, signature, root):
        text = _tampered(page, v["decision_id"], change)
        assert text.startswith("NOT verified"), (change.__name__, text)
    shot(page, "decision-tampered")
    # And untouched, the same page verifies.
    page.goto(URL + "/console/decisions/" + v["decision_id"])
    page.wait_for_function("() => !document.getElementById('proof-status').classList.contains('pending')")
    assert page.inner_text("#proof-status") == "verified"


def test_a_review_approved_in_the_browser_lets_the_request_through(watched):
    page = watched.page
    publish(REVIEW_POLICY)
    actor = unique("wire-agent")
    action = {"type": "WIRE_MONEY", "amount": 250, "to": "ACME"}
    first = decide({"id": actor}, action, policy="console-review")
    assert first["status"] == "REVIEW_REQUIRED", first
    reviewer = make_key(["review"], name="reviewer-ana")
    sign_in(page, reviewer)
    page.goto(URL + "/console/reviews")
    card = page.locator("article.review", has_text=first["decision_id"])
    assert actor in card.inner_text() and "WIRE_MONEY" in card.inner_text()
    shot(page, "reviews")
    card.locator("input[name=comment]").fill("checked with finance")
    card.locator("button.approve").click()
    page.wait_for_url(re.compile(r".*/console/reviews\?done=approved$"))
    assert page.locator("#notice").inner_text() == "Approval recorded."
    again = decide({"id": actor}, action, policy="console-review")
    assert again["status"] == "ALLOW", again
    # The decision page shows the review and its comment.
    page.goto(URL + "/console/decisions/" + first["decision_id"])
    assert "checked with finance" in page.content()
    # Approved, then taken by the request it covered.
    assert page.inner_text(".review-status") == "consumed"


def test_a_reviewer_cannot_approve_their_own_request(watched):
    page = watched.page
    publish(REVIEW_POLICY)
    both = make_key(["decide", "review"], name="self-reviewer")
    actor = unique("self-agent")
    v = decide({"id": actor}, {"type": "WIRE_MONEY", "amount": 5}, policy="console-review", key=both)
    assert v["status"] == "REVIEW_REQUIRED"
    sign_in(page, both)
    page.goto(URL + "/console/reviews")
    card = page.locator("article.review", has_text=v["decision_id"])
    with page.expect_response(lambda r: "/approve" in r.url) as resp:
        card.locator("button.approve").click()
    assert resp.value.status == 422
    assert "cannot review it" in page.inner_text("#error-message")
    status, review, _ = api("GET", "/v1/reviews", ADMIN)
    mine = [r for r in review["reviews"] if r["decision_id"] == v["decision_id"]] if isinstance(review, dict) else [
        r for r in review if r["decision_id"] == v["decision_id"]
    ]
    assert mine and mine[0]["status"] == "pending" and mine[0]["approvals"] in ([], None)


def test_a_policy_rolled_back_in_the_browser_changes_the_next_verdict(watched):
    page = watched.page
    pid = unique("rollback")
    publish(f"id: {pid}\ndefault_effect: allow\nrules: []\n")
    publish(
        f"id: {pid}\ndefault_effect: allow\nrules:\n"
        "  - name: no-deploys\n    when: 'action.type == \"DEPLOY\"'\n    effect: block\n"
        "    reason_code: NO_DEPLOYS\n    explanation: Deploys are frozen.\n"
    )
    actor = unique("deployer")
    assert decide({"id": actor}, {"type": "DEPLOY"}, policy=pid)["status"] == "BLOCK"
    sign_in(page, ADMIN)
    page.goto(URL + "/console/policies")
    shot(page, "policies")
    page.click(f"text={pid}")
    page.wait_for_selector("#versions")
    assert page.inner_text("#active-version") == "2"
    page.goto(URL + f"/console/policies/{pid}?env=test&from=1&to=2")
    assert "no-deploys" in page.inner_text("#diff")
    shot(page, "policy")
    page.click("#activate-1")
    page.wait_for_selector("#confirm")
    shot(page, "policy-confirm")
    # Nothing changed before the confirmation.
    assert decide({"id": actor}, {"type": "DEPLOY"}, policy=pid)["status"] == "BLOCK"
    page.click("#confirm")
    page.wait_for_selector("#notice")
    assert page.inner_text("#active-version") == "1"
    after = decide({"id": actor}, {"type": "DEPLOY"}, policy=pid)
    assert after["status"] == "ALLOW", after


def test_a_kill_switch_set_in_the_browser_blocks_the_next_request(watched):
    page = watched.page
    actor = unique("runaway")
    assert decide({"id": actor}, {"type": "TOOL_CALL"})["status"] == "ALLOW"
    sign_in(page, ADMIN)
    page.goto(URL + "/console/overrides")
    page.select_option("select[name=scope]", "actor")
    page.fill("input[name=value]", actor)
    page.fill("input[name=reason]", "runaway loop <b>stop</b>")
    page.click("#engage")
    page.wait_for_selector("#notice")
    assert "runaway loop <b>stop</b>" in page.inner_text("#overrides")
    shot(page, "overrides")
    blocked = decide({"id": actor}, {"type": "TOOL_CALL"})
    assert blocked["status"] == "BLOCK" and blocked["gate"] == "override", blocked
    row = page.locator("#overrides tr", has_text=actor)
    row.locator("button.clear").click()
    page.wait_for_selector("#notice")
    assert decide({"id": actor}, {"type": "TOOL_CALL"})["status"] == "ALLOW"


XSS_ACTOR = "<script>alert('actor')</script>"
XSS_ACTION = '"><img src=x onerror=alert("action")>'
XSS_CONTEXT = {
    "link": "javascript:alert('context')",
    "name": "invoice" + BIDI + "fdp.exe",
    "html": "<svg onload=alert(1)>",
    "needs_review": True,
}


def _assert_shown_literally(page):
    assert page.locator("img").count() == 0
    assert page.locator("main svg").count() == 0
    hrefs = page.eval_on_selector_all("a", "els => els.map(e => e.getAttribute('href'))")
    assert not [h for h in hrefs if h and h.strip().lower().startswith("javascript:")], hrefs
    assert BIDI not in page.inner_text("body"), "bidi controls are made visible"


def test_xss_payloads_run_nothing(watched):
    page = watched.page
    publish(REVIEW_POLICY)
    sign_in(page, ADMIN)
    page.goto(URL + "/console/decisions")
    page.wait_for_selector("#live")
    v = decide({"id": XSS_ACTOR}, {"type": XSS_ACTION, "note": XSS_ACTOR}, XSS_CONTEXT,
               policy="console-review", intent=XSS_ACTION + BIDI)
    # Arriving live over SSE: shown as text.
    row = page.locator("#rows tr", has_text=v["decision_id"])
    row.wait_for(timeout=15000)
    assert row.locator("td.actor").inner_text() == XSS_ACTOR
    assert row.locator("td.action").inner_text() == XSS_ACTION
    _assert_shown_literally(page)
    # After a reload, from the page template.
    page.goto(URL + "/console/decisions")
    row = page.locator("#rows tr", has_text=v["decision_id"])
    assert row.locator("td.actor").inner_text() == XSS_ACTOR
    _assert_shown_literally(page)
    shot(page, "xss-decisions")
    page.goto(URL + "/console/decisions/" + v["decision_id"])
    assert XSS_ACTOR in page.inner_text("#actor")
    assert json.dumps(XSS_ACTION)[1:-1] in page.inner_text("#action")  # as JSON text
    context = page.inner_text("#context")
    assert "javascript:alert('context')" in context and "<svg onload=alert(1)>" in context
    assert "invoice\u27e8U+202E\u27e9fdp.exe" in context
    assert "\u27e8U+202E\u27e9" in page.inner_text("#intent")
    _assert_shown_literally(page)
    shot(page, "xss-decision")
    page.goto(URL + "/console/reviews")
    card = page.locator("article.review", has_text=v["decision_id"])
    assert XSS_ACTOR in card.inner_text() and XSS_ACTION in card.inner_text()
    _assert_shown_literally(page)
    # Filters echo user input back into attributes: escaped too.
    page.goto(URL + "/console/decisions?actor=" + __import__("urllib.parse").parse.quote(XSS_ACTION))
    assert page.locator("input[name=actor]").input_value() == XSS_ACTION
    _assert_shown_literally(page)
    page.wait_for_timeout(500)  # give any stray handler the chance to fire


STATE_CHANGING = "button.approve, button.reject, button.activate, #engage, button.clear, #create, button.revoke"


def test_a_read_key_sees_no_state_changing_control(watched, context):
    page = watched.page
    publish(REVIEW_POLICY)
    pending = decide({"id": unique("read-agent")}, {"type": "WIRE_MONEY"}, policy="console-review")
    assert pending["status"] == "REVIEW_REQUIRED"
    override_actor = unique("read-ovr")
    assert api("POST", "/v1/admin/overrides", ADMIN, {"scope": "actor", "value": override_actor, "reason": "x"})[0] == 201
    pages = ["/console", "/console/decisions", "/console/decisions/" + pending["decision_id"],
             "/console/reviews", "/console/policies", "/console/policies/console-review",
             "/console/overrides", "/console/keys", "/console/ledger"]
    # An admin sees the controls on these pages ...
    sign_in(page, ADMIN)
    seen = sum(page.goto(URL + p) and page.locator(STATE_CHANGING).count() for p in pages)
    assert seen > 0
    page.click("#sign-out")
    # ... a read key sees every page and none of them.
    reader = make_key(["read"], name="auditor")
    sign_in(page, reader)
    for p in pages:
        response = page.goto(URL + p)
        assert response.status == 200, p
        assert page.locator(STATE_CHANGING).count() == 0, p
        forms = page.eval_on_selector_all("form[method=post]", "fs => fs.map(f => f.getAttribute('action'))")
        assert set(forms) <= {"/console/logout", "/console/ledger/verify"}, (p, forms)
    shot(page, "read-only-reviews")
    # The server checks the scope again: a POST with a valid CSRF token is still refused.
    page.goto(URL + "/console/reviews")
    csrf = page.locator("input[name=csrf]").first.input_value()
    r = page.request.post(URL + f"/console/reviews/{pending['review_id']}/approve",
                          form={"csrf": csrf, "comment": "sneaky"}, max_redirects=0)
    assert r.status == 403, r.status
    r = page.request.post(URL + "/console/policies/console-review/activate",
                          form={"csrf": csrf, "version": "1", "env": "test", "confirm": "yes"}, max_redirects=0)
    assert r.status == 403, r.status
    r = page.request.post(URL + "/console/overrides",
                          form={"csrf": csrf, "scope": "tenant", "reason": "read key"}, max_redirects=0)
    assert r.status == 403, r.status
    status, review, _ = api("GET", "/v1/reviews/" + pending["review_id"], ADMIN)
    assert status == 200 and review["status"] == "pending"
    status, ovr, _ = api("GET", "/v1/admin/overrides", reader)
    assert status == 200, "read keys may use the API's GET endpoints"
    assert all(o["reason"] != "read key" for o in ovr["overrides"])


def test_a_forged_post_without_the_csrf_token_is_refused(watched):
    page = watched.page
    sign_in(page, ADMIN)
    page.goto(URL + "/console/overrides")
    before = api("GET", "/v1/admin/overrides", ADMIN)[1]["overrides"]
    csrf = page.locator("input[name=csrf]").first.input_value()
    forged = {"scope": "tenant", "reason": "forged"}
    for form, headers in (
        (forged, {}),  # no token
        (dict(forged, csrf="0" * 64), {}),  # a wrong token
        (dict(forged, csrf=csrf), {"Origin": "http://evil.example"}),  # another site
    ):
        r = page.request.post(URL + "/console/overrides", form=form, headers=headers, max_redirects=0)
        assert r.status == 403, (form, headers, r.status)
        assert "Nothing was changed" in r.text()
    r = page.request.post(URL + "/console/logout", form={}, max_redirects=0)
    assert r.status == 403
    after = api("GET", "/v1/admin/overrides", ADMIN)[1]["overrides"]
    assert after == before
    # The session is still good (the forged sign-out did nothing), and GET changed nothing.
    page.goto(URL + "/console/overrides")
    assert page.url == URL + "/console/overrides"


def test_another_tenants_decision_is_a_404_page(watched):
    page = watched.page
    v = decide({"id": "tenant-a"}, {"type": "NOOP"})
    status, _, _ = api("POST", "/v1/admin/tenants", ADMIN, {"id": "other-tenant"})
    assert status in (200, 201)
    other = make_key(["read"], name="other-reader", tenant="other-tenant")
    sign_in(page, other)
    response = page.goto(URL + "/console/decisions/" + v["decision_id"])
    assert response.status == 404
    assert page.inner_text("h1") == "Not found"
    assert "tenant-a" not in page.content()
    assert page.goto(URL + "/console/decisions/" + v["decision_id"] + "/proof.json").status == 404
    shot(page, "not-found")
    response = page.goto(URL + "/console/decisions/dec_doesnotexist")
    assert response.status == 404


def test_keys_ledger_and_overview_pages(watched):
    page = watched.page
    sign_in(page, ADMIN)
    for i in range(3):
        decide({"id": "chart"}, {"type": "NOOP", "n": i})
    page.goto(URL + "/console")
    assert page.locator("#chart rect").count() > 0
    shot(page, "overview")
    page.goto(URL + "/console/keys")
    page.fill("input[name=name]", "made-in-browser")
    page.check("input[name=scope][value=read]")
    page.click("#create")
    secret = page.locator("#new-secret pre").inner_text().strip()
    assert secret.startswith("tg_test_")
    shot(page, "keys")
    status, _, _ = api("GET", "/v1/admin/overrides", secret)
    assert status == 200
    page.goto(URL + "/console/keys")
    assert page.locator("#new-secret").count() == 0, "the secret is shown once"
    row = page.locator("#keys tr", has_text="made-in-browser")
    row.locator("button.revoke").click()
    page.wait_for_selector("#notice")
    assert api("GET", "/v1/admin/overrides", secret)[0] == 401
    page.goto(URL + "/console/ledger")
    page.click("#verify-now")
    assert page.inner_text("#verify-result").startswith("Verified")
    shot(page, "ledger")


def test_assets_are_hashed_and_immutable():
    status, page, _ = api("GET", "/console/login", accept="text/html")
    assert status == 200
    for path in re.findall(r'(?:src|href)="(/console/assets/[^"]+)"', page):
        status, _, headers = api("GET", path, accept="*/*")
        assert status == 200, path
        assert headers["cache-control"] == "public, max-age=31536000, immutable"
        wrong = re.sub(r"\.([0-9a-f]{16})\.", ".0000000000000000.", path)
        assert api("GET", wrong, accept="*/*")[0] == 404
