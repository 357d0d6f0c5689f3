#!/usr/bin/env python3
"""The seed page end to end: its subscribe and cancel snippets, run verbatim with `requests`
against a real whisperer-server, with a publish in between whose signed delivery a local
receiver checks.

Usage: seed_page_test.py PATH/TO/whisperer-server
Exit 0 on success, 77 when python3-requests is missing (CTest reports a skip), 1 on failure.
"""

import hashlib
import hmac
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from server_process import start_server, stop_server  # noqa: E402

try:
    import requests
except ImportError:
    print("python3-requests is not installed")
    sys.exit(77)

# The seed page's snippets, exactly as written there. Only the host of your-app.com, the login
# token, the target URL and the webhook id are substituted before they run.
SUBSCRIBE = """
import requests

requests.post(
    url='https://your-app.com/whisperer/hooks/',
    headers={
        'Authorization': 'Token <secret-login-token>',
    },
    json={
        'event_type': 'package-created',
        'secret_key': '<secret>',
        'target_url': 'https://example.com/',
        'retry_countdown_config': {
            'choice': 'linear',
            'kwargs': {
                'base': 1 * 60,
                'limit': 10 * 60
            }
        }
    }
)
"""

CANCEL = """
import requests

requests.delete(
    url='https://your-app.com/whisperer/hooks/<webhook-id>/',
    headers={
        'Authorization': 'Token <secret-login-token>'
    }
)
"""

PACKAGE = {"id": 61, "transfer_id": 49, "order_number": "248398923123"}


def fail(message):
    raise AssertionError(message)


class Receiver:
    """A subscriber on 127.0.0.1: records every POST and answers 200."""

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.requests.append((dict(self.headers.items()), body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def received(self):
        with self.lock:
            return list(self.requests)

    def wait_for(self, count, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(self.received()) >= count:
                return True
            time.sleep(0.05)
        return False


def run_snippet(snippet, substitutions):
    """Runs a seed snippet after the substitutions and returns the response it got."""
    for old, new in substitutions.items():
        if old not in snippet:
            fail("the snippet does not contain %r" % old)
        snippet = snippet.replace(old, new)
    responses = []
    originals = {name: getattr(requests, name) for name in ("post", "delete")}

    def recording(name):
        def call(*args, **kwargs):
            response = originals[name](*args, **kwargs)
            responses.append(response)
            return response
        return call

    for name in originals:
        setattr(requests, name, recording(name))
    try:
        exec(compile(snippet, "<seed page>", "exec"), {})
    finally:
        for name, function in originals.items():
            setattr(requests, name, function)
    if len(responses) != 1:
        fail("the snippet made %d requests" % len(responses))
    return responses[0]


def start(binary, db):
    """Starts whisperer-server on a free port and returns (process, base URL, log lines)."""
    process, base, log = start_server(binary, db, "--event-type", "package-created", "--allow-private", "127.0.0.0/8")
    return process, base.rstrip("/").rsplit("/whisperer", 1)[0], log


def create_token(binary, db, owner, *rights):
    out = subprocess.run([binary, "token", "create", "--db", db, "--owner", owner, *rights],
                         check=True, capture_output=True, text=True)
    token = out.stdout.strip()
    if not token.startswith("wsp_") or len(token) != 44:
        fail("unexpected token output %r" % out.stdout)
    return token


def publish(base, token):
    response = requests.post(base + "/whisperer/events/", headers={"Authorization": "Token " + token},
                             json={"event_type": "package-created", "data": PACKAGE})
    if response.status_code != 202:
        fail("publish answered %d: %s" % (response.status_code, response.text))
    return response.json()


def main():
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "seed.db")
        login_token = create_token(binary, db, "example")
        publisher_token = create_token(binary, db, "your-app", "--publisher")
        receiver = Receiver()
        process, base, log = start(binary, db)
        try:
            print("whisperer-server at", base, "- receiver at", receiver.url)

            created = run_snippet(SUBSCRIBE, {
                "https://your-app.com": base,
                "<secret-login-token>": login_token,
                "'https://example.com/'": repr(receiver.url),
            })
            if created.status_code != 201:
                fail("subscribe answered %d: %s" % (created.status_code, created.text))
            hook = created.json()
            if hook["secret_key"] == "<secret>" or hook["target_url"] != receiver.url:
                fail("unexpected hook %r" % hook)
            print("subscribed: hook", hook["id"])

            published = publish(base, publisher_token)
            if published["hooks"] != 1:
                fail("the event reached %r hooks" % published["hooks"])
            if not receiver.wait_for(1):
                fail("the delivery did not arrive")
            headers, body = receiver.received()[0]
            headers = {k.lower(): v for k, v in headers.items()}
            expected = {"event": {"type": "package-created", "uuid": published["uuid"]}, "data": PACKAGE}
            if json.loads(body) != expected or list(json.loads(body)) != ["event", "data"]:
                fail("unexpected envelope %r" % body)
            if headers.get("content-type") != "application/json":
                fail("unexpected Content-Type %r" % headers.get("content-type"))
            if headers.get("x-whisperer-event") != "package-created":
                fail("unexpected X-Whisperer-Event %r" % headers.get("x-whisperer-event"))
            signature = "sha256=" + hmac.new(b"<secret>", body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(headers.get("x-whisperer-signature", ""), signature):
                fail("bad X-Whisperer-Signature %r" % headers.get("x-whisperer-signature"))
            print("delivered and signed:", body.decode())

            cancelled = run_snippet(CANCEL, {
                "https://your-app.com": base,
                "<secret-login-token>": login_token,
                "<webhook-id>": str(hook["id"]),
            })
            if cancelled.status_code != 204:
                fail("cancel answered %d: %s" % (cancelled.status_code, cancelled.text))
            print("cancelled: hook", hook["id"])

            again = publish(base, publisher_token)
            if again["hooks"] != 0:
                fail("a cancelled hook still receives events: %r" % again)
            time.sleep(1)
            if len(receiver.received()) != 1:
                fail("a delivery arrived after the cancel")
            print("nothing more arrives after the cancel")
        finally:
            code = stop_server(process)
            receiver.server.shutdown()
        if code != 0:
            fail("whisperer-server exited with %r after SIGTERM:\n%s" % (code, "".join(log)))
    print("seed page: OK")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as error:
        print("FAILED:", error)
        sys.exit(1)
