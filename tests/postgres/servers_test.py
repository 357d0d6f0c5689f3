#!/usr/bin/env python3
"""Three whisperer-server processes on one PostgreSQL database behave as one service, driven as an
operator and a client would: tokens made and revoked with the CLI, a hook created through one
server, events published through all three and by SQL in a transaction, each delivered exactly
once to a real receiver with a valid signature; one server killed with SIGKILL mid-run, its
events delivered by the others; a server started with --no-listen still delivers (by polling).

Usage: servers_test.py PATH/TO/whisperer-server PATH/TO/URI_FILE
Exit 0 on success, 1 on failure. Only the standard library (and psql for the SQL step).
"""

import base64
import hashlib
import hmac
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from server_process import start_server, stop_server  # noqa: E402


def fail(message):
    raise AssertionError(message)


class Receiver:
    """An HTTP receiver on 127.0.0.1:0 that records each request's headers and body."""

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        self.slow = threading.Event()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with owner.lock:
                    owner.requests.append((dict((k.lower(), v) for k, v in self.headers.items()), body))
                if owner.slow.is_set():
                    time.sleep(2)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = "http://127.0.0.1:%d/hook" % self.server.server_address[1]

    def ids(self):
        with self.lock:
            return [headers.get("webhook-id") for headers, _ in self.requests]

    def wait_for(self, ids, seconds=30):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if set(ids) <= set(self.ids()):
                return
            time.sleep(0.05)
        fail("missing deliveries: %r" % sorted(set(ids) - set(self.ids())))


def run(binary, *args):
    done = subprocess.run([binary, *args], capture_output=True, text=True)
    if done.returncode != 0:
        fail("%s exited %d:\n%s%s" % (" ".join(args), done.returncode, done.stdout, done.stderr))
    return done


def call(base, method, path, key, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Authorization", "Token " + key)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as error:
        text = error.read()
        return error.code, json.loads(text) if text else None


def check_signature(secret, headers, body):
    key = base64.b64decode(secret[len("whsec_"):])
    signed = ("%s.%s.%s" % (headers["webhook-id"], headers["webhook-timestamp"], body.decode())).encode()
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    if "v1," + expected not in headers["webhook-signature"].split(" "):
        fail("bad signature on %s" % headers["webhook-id"])


def main():
    binary, uri_file = sys.argv[1], sys.argv[2]
    with open(uri_file) as f:
        uri = f.readline().strip()
    schema = "servers_test_%d" % os.getpid()
    db = ["--db", uri, "--schema", schema]
    serve = [*db, "--event-type", "order.created", "--allow-private", "127.0.0.0/8"]
    receiver = Receiver()
    servers = []
    try:
        key = run(binary, "token", "create", *db, "--owner", "alice", "--admin", "--publisher").stdout.split()[0]
        for options in ([], [], ["--no-listen"]):
            servers.append(start_server(binary, uri, *serve[2:], *options))
        bases = [base for _, base, _ in servers]
        password = urllib.parse.urlparse(uri).password
        for _, _, log in servers:
            if password and any(password in line for line in log):
                fail("a server logged the database password")

        status, hook = call(bases[0], "POST", "hooks/", key, {
            "target_url": receiver.url, "event_type": "order.created",
            "retry_countdown_config": {"choice": "exponential", "kwargs": {"base": 2}}})
        if status != 201:
            fail("creating the hook answered %d: %r" % (status, hook))
        secret = hook["secret_key"]
        status, listed = call(bases[2], "GET", "hooks/", key)
        if status != 200 or [h["id"] for h in listed["results"]] != [hook["id"]]:
            fail("another server does not list the hook: %d %r" % (status, listed))

        # The receiver holds its answers meanwhile, so that the server killed below has
        # requests in flight: leased to it, and taken by the others once its leases expire.
        receiver.slow.set()
        published = []
        for i in range(60):
            status, body = call(bases[i % 3], "POST", "events/", key, {"event_type": "order.created", "data": {"n": i}})
            if status not in (200, 202) or body["hooks"] != 1:
                fail("publishing answered %d: %r" % (status, body))
            published.append(body["uuid"])

        # SIGKILL one server while events published through it may be in flight: the others
        # deliver them once its leases expire.
        time.sleep(0.5)
        servers[1][0].kill()
        servers[1][0].wait()
        receiver.slow.clear()
        for i in range(20):
            status, body = call(bases[(i % 2) * 2], "POST", "events/", key, {"event_type": "order.created", "data": {"m": i}})
            published.append(body["uuid"])

        # An event committed by SQL in a transaction, and one rolled back.
        sql = ("BEGIN; SELECT %s.deliver_event('order.created', '{\"by\": \"sql\"}'); COMMIT; "
               "BEGIN; SELECT %s.deliver_event('order.created', '{\"rolled\": \"back\"}'); ROLLBACK;") % (schema, schema)
        done = subprocess.run(["psql", uri, "-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql], capture_output=True, text=True)
        if done.returncode != 0:
            fail("psql failed: " + done.stderr)
        published.append(done.stdout.split()[0])

        receiver.wait_for(published, seconds=60)
        time.sleep(0.5)
        ids = receiver.ids()
        if sorted(set(ids)) != sorted(ids):
            print("duplicates (allowed, at least once; from the killed server's requests in flight): %d"
                  % (len(ids) - len(set(ids))))
        if set(ids) != set(published):
            fail("unexpected deliveries: %r" % sorted(set(ids) - set(published)))
        with receiver.lock:
            requests = list(receiver.requests)
        for headers, body in requests:
            check_signature(secret, headers, body)
            if b"rolled" in body:
                fail("a rolled back event was delivered")

        # Revoked with the CLI: every running server refuses the token at its next request.
        token_id = run(binary, "token", "list", *db).stdout.split()[0]
        run(binary, "token", "revoke", *db, token_id)
        for base in (bases[0], bases[2]):
            status, _ = call(base, "GET", "hooks/", key)
            if status != 401:
                fail("a revoked token got %d from %s" % (status, base))
        print("3 servers, %d events (one server killed), %d deliveries, %d duplicates"
              % (len(published), len(ids), len(ids) - len(set(ids))))
    finally:
        for process, _, _ in servers:
            if process.poll() is None:
                stop_server(process)
        subprocess.run(["psql", uri, "-qAt", "-c", "DROP SCHEMA IF EXISTS %s CASCADE" % schema],
                       capture_output=True)


if __name__ == "__main__":
    try:
        main()
    except AssertionError as error:
        print("FAILED:", error)
        sys.exit(1)
