#!/usr/bin/env python3
"""The picture of a Slack review notification in the README, from a real payload.

Starts `tollgate serve` on a fresh data directory, publishes a policy that sends deploys
to review, adds a Slack sink whose URL is a local recorder, asks for a deploy, and takes
the Block Kit message that Tollgate POSTs. Then renders that message as Slack lays out
Block Kit (header, section, fields, context, button) and screenshots it with Debian's
chromium through Playwright (scripts/console-test-deps.sh installs both).

Usage: scripts/slack-picture.py [--tollgate target/debug/tollgate]
           [--out docs/img/slack-review.png] [--payload docs/img/slack-review.json]
Run it with the Playwright venv's python:
  ~/.cache/tollgate-console-deps/venv/bin/python scripts/slack-picture.py
"""

import argparse
import html
import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

POLICY = """
id: deploys
description: Production deploys by agents need a human.
default_effect: allow
rules:
  - name: deploy-review
    when: 'action.type == "DEPLOY"'
    effect: review
    reason_code: DEPLOY_NEEDS_REVIEW
    explanation: Production deploys need a human.
    review: {min_approvals: 1, expires_in: 30m}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recorder(port, received):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            received.append((self.path, body))
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def capture(tollgate):
    """The Slack message Tollgate sends when a deploy is sent to review."""
    received = []
    hook_port = free_port()
    server = recorder(hook_port, received)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        env = dict(os.environ, TOLLGATE_LISTEN=f"127.0.0.1:{port}", TOLLGATE_DATA_DIR=data,
                   TOLLGATE_NOTIFY_POLL_MS="100", TOLLGATE_LOG="warn",
                   TOLLGATE_PUBLIC_URL="https://tollgate.example.com")
        proc = subprocess.Popen([tollgate, "serve"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            boot = os.path.join(data, "bootstrap-keys.json")
            deadline = time.time() + 30
            while not os.path.exists(boot):
                if time.time() > deadline:
                    sys.exit("tollgate did not start")
                time.sleep(0.05)
            time.sleep(0.3)
            with open(boot) as f:
                admin = json.load(f)["admin_key"]["secret"]
            cli_env = {k: v for k, v in os.environ.items() if k != "TOLLGATE_DATA_DIR"}
            cli_env.update(TOLLGATE_URL=f"http://127.0.0.1:{port}")

            def cli(key, *args, ok=(0,)):
                out = subprocess.run([tollgate, *args, "--json"], env=dict(cli_env, TOLLGATE_API_KEY=key),
                                     capture_output=True, text=True)
                if out.returncode not in ok:
                    sys.exit(f"tollgate {' '.join(args)}: exit {out.returncode}\n{out.stdout}{out.stderr}")
                return json.loads(out.stdout)

            policy = os.path.join(tmp, "deploys.yaml")
            with open(policy, "w") as f:
                f.write(POLICY)
            cli(admin, "policy", "publish", policy, "--activate")
            bot = cli(admin, "keys", "create", "--env", "live", "--scope", "decide")["secret"]
            # The URL's path stands for Slack's secret webhook path.
            cli(admin, "notify", "add", "slack", f"http://127.0.0.1:{hook_port}/services/T000/B000/XXXX")
            verdict = cli(bot, "decide", "--action-type", "DEPLOY", "--actor", "release-agent",
                          "--policy", "deploys", ok=(0, 1))  # `decide` exits 1 when not allowed
            if verdict.get("status") != "REVIEW_REQUIRED":
                sys.exit(f"expected REVIEW_REQUIRED, got {verdict}")
            deadline = time.time() + 20
            while not received:
                if time.time() > deadline:
                    sys.exit("no Slack message arrived")
                time.sleep(0.05)
            return json.loads(received[0][1])
        finally:
            proc.terminate()
            proc.wait()
            server.shutdown()


def text_of(obj):
    return html.escape(obj.get("text", ""))


def render(message):
    """Block Kit as Slack lays it out (the block types Tollgate uses)."""
    parts = []
    for block in message["blocks"]:
        t = block["type"]
        if t == "header":
            parts.append(f'<div class="header">{text_of(block["text"])}</div>')
        elif t == "section" and "fields" in block:
            cells = "".join(f'<div class="field">{text_of(f)}</div>' for f in block["fields"])
            parts.append(f'<div class="fields">{cells}</div>')
        elif t == "section":
            parts.append(f'<div class="section">{text_of(block["text"])}</div>')
        elif t == "context":
            parts.append('<div class="context">' +
                         " ".join(text_of(e) for e in block["elements"]) + "</div>")
        elif t == "actions":
            parts.append('<div class="actions">' + "".join(
                f'<span class="button">{text_of(e["text"])}</span>' for e in block["elements"]) + "</div>")
        else:
            sys.exit(f"block type {t} is not rendered by this script")
    return f"""<!doctype html><html><head><meta charset="utf-8"><style>
body {{ margin: 0; background: #fff; font: 15px/1.46668 "DejaVu Sans", sans-serif; color: #1d1c1d; }}
.msg {{ display: flex; padding: 16px 20px; width: 680px; }}
.avatar {{ width: 36px; height: 36px; border-radius: 6px; background: #1f3a5f; color: #fff;
  font-weight: bold; display: flex; align-items: center; justify-content: center; margin-right: 8px; flex: none; }}
.name {{ font-weight: 900; }} .app {{ font-size: 10px; background: #e8e8e8; color: #616061;
  padding: 1px 3px; border-radius: 2px; margin: 0 4px; font-weight: bold; }}
.time {{ color: #616061; font-size: 12px; }}
.header {{ font-size: 18px; font-weight: 900; margin: 6px 0 4px; }}
.section {{ margin: 4px 0; }}
.fields {{ display: grid; grid-template-columns: 1fr 1fr; gap: 6px 16px; margin: 8px 0; }}
.context {{ color: #616061; font-size: 12px; margin: 8px 0; }}
.button {{ display: inline-block; border: 1px solid #c7c7c7; border-radius: 4px; padding: 3px 12px;
  font-weight: bold; font-size: 13px; margin-top: 4px; }}
</style></head><body><div class="msg"><div class="avatar">T</div><div>
<div><span class="name">Tollgate</span><span class="app">APP</span><span class="time">10:42 AM</span></div>
{''.join(parts)}</div></div></body></html>"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tollgate", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"),
                                                       "debug", "tollgate"))
    ap.add_argument("--out", default="docs/img/slack-review.png")
    ap.add_argument("--payload", default="docs/img/slack-review.json")
    a = ap.parse_args()
    message = capture(a.tollgate)
    with open(a.payload, "w") as f:
        json.dump(message, f, indent=2)
        f.write("\n")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium")
        page = browser.new_page(viewport={"width": 720, "height": 200}, device_scale_factor=2)
        page.set_content(render(message))
        page.locator(".msg").screenshot(path=a.out)
        browser.close()
    print(f"{a.out} and {a.payload} written")


if __name__ == "__main__":
    main()
