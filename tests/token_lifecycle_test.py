#!/usr/bin/env python3
"""API tokens end to end, as an operator drives them: `whisperer-server token create|list|revoke`
and the admin routes, against two whisperer-server processes serving one database file.

A token revoked by another process (the CLI, or the other server's admin route) or whose expiry
is moved into the past by a third connection is refused by both servers from their next request,
without a restart. The list never shows a key. Keys issued before the `wsp_` prefix still work.

Usage: token_lifecycle_test.py PATH/TO/whisperer-server
Exit 0 on success, 1 on failure. Only the standard library is used.
"""

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from server_process import start_server, stop_server  # noqa: E402


def fail(message):
    raise AssertionError(message)


def run(binary, *args, expect=0):
    done = subprocess.run([binary, *args], capture_output=True, text=True)
    if done.returncode != expect:
        fail("%s exited %d (expected %d):\n%s%s" % (" ".join(args), done.returncode, expect, done.stdout,
                                                    done.stderr))
    return done


def call(base, method, path, key, body=None):
    """(status, parsed JSON body or None)."""
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


def expect_status(base, key, status, what):
    got, body = call(base, "GET", "hooks/", key)
    if got != status:
        fail("%s: GET hooks/ on %s answered %d, expected %d: %r" % (what, base, got, status, body))


def main():
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "tokens.db")

        alice = run(binary, "token", "create", "--db", db, "--owner", "alice").stdout.strip()
        if not alice.startswith("wsp_") or len(alice) != 44:
            fail("unexpected key %r" % alice)
        root = run(binary, "token", "create", "--db", db, "--owner", "root", "--admin").stdout.strip()
        made = run(binary, "token", "create", "--db", db, "--owner", "bob", "--publisher", "--expires-in", "12h")
        bob = made.stdout.strip()
        if "expires" not in made.stderr:
            fail("token create does not say when the token expires: %r" % made.stderr)
        bad = run(binary, "token", "create", "--db", db, "--owner", "carol", "--expires-in", "30x", expect=2)
        if "--expires-in" not in bad.stderr or "30x" not in bad.stderr:
            fail("an invalid --expires-in is not explained: %r" % bad.stderr)
        run(binary, "token", "revoke", "--db", db, "banana", expect=2)
        print("created alice, root (admin) and bob (publisher, 12h); --expires-in 30x refused")

        # A key made before keys had a prefix: 40 hex digits, stored as its hash.
        legacy = "0123456789abcdef0123456789abcdef01234567"
        with sqlite3.connect(db) as connection:
            connection.execute("INSERT INTO tokens (key_sha256, owner, admin, publisher, created) "
                               "VALUES (?, 'dave', 0, 0, 0)", (hashlib.sha256(legacy.encode()).hexdigest(),))
        connection.close()

        listed = run(binary, "token", "list", "--db", db).stdout
        lines = listed.splitlines()
        if len(lines) != 4:
            fail("token list printed %d lines:\n%s" % (len(lines), listed))
        for key in (alice, root, bob, legacy):
            if key in listed or key[4:] in listed or hashlib.sha256(key.encode()).hexdigest() in listed:
                fail("token list shows a key or its hash:\n" + listed)
        rows = {line.split("\t")[1]: line.split("\t") for line in lines}
        if set(rows) != {"alice", "root", "bob", "dave"} or any(len(row) != 6 for row in rows.values()):
            fail("unexpected token list:\n" + listed)
        if rows["root"][2] != "admin" or rows["bob"][2] != "publisher" or rows["alice"][2] != "-":
            fail("unexpected rights:\n" + listed)
        if rows["alice"][4] != "never" or rows["bob"][4] == "never" or rows["alice"][5] != "never":
            fail("unexpected expiry or last use:\n" + listed)
        ids = {owner: row[0] for owner, row in rows.items()}
        print("token list:\n" + listed.rstrip())

        first, base_a, log_a = start_server(binary, db)
        second, base_b, log_b = start_server(binary, db)
        try:
            for base in (base_a, base_b):
                for key, what in ((alice, "alice"), (bob, "bob"), (legacy, "a key without prefix")):
                    expect_status(base, key, 200, what)
            print("both servers accept alice, bob and the legacy key")

            # The CLI revokes while both servers run.
            revoked = run(binary, "token", "revoke", "--db", db, ids["alice"])
            if "revoked" not in revoked.stderr:
                fail("token revoke says %r" % revoked.stderr)
            for base in (base_a, base_b):
                expect_status(base, alice, 401, "alice after token revoke")
            run(binary, "token", "revoke", "--db", db, ids["alice"], expect=1)
            print("token revoke %s: both running servers answer 401 to alice's next request" % ids["alice"])

            # A third connection moves bob's expiry into the past.
            with sqlite3.connect(db) as connection:
                connection.execute("UPDATE tokens SET expires = 1000000 WHERE id = ?", (int(ids["bob"]),))
            connection.close()
            for base in (base_a, base_b):
                expect_status(base, bob, 401, "bob after his expiry")
            print("bob's expiry moved into the past: both servers answer 401")

            # The admin routes: created on one server, used and revoked on the other.
            status, created = call(base_a, "POST", "tokens/", root, {"owner": "erin", "expires_in": "30d"})
            if status != 201 or not created["key"].startswith("wsp_"):
                fail("POST tokens/ answered %d: %r" % (status, created))
            erin = created["key"]
            expect_status(base_b, erin, 200, "erin on the other server")
            status, page = call(base_b, "GET", "tokens/", root)
            if status != 200 or erin in json.dumps(page) or any("key" in t for t in page["results"]):
                fail("GET tokens/ answered %d: %r" % (status, page))
            if [t["owner"] for t in page["results"]] != ["root", "bob", "dave", "erin"]:
                fail("GET tokens/ lists %r" % page["results"])
            status, _ = call(base_b, "DELETE", "tokens/%d/" % created["id"], root)
            if status != 204:
                fail("DELETE tokens/%d/ answered %d" % (created["id"], status))
            expect_status(base_a, erin, 401, "erin after DELETE on the other server")
            for method, path in (("GET", "tokens/"), ("POST", "tokens/"), ("DELETE", "tokens/%s/" % ids["root"])):
                status, _ = call(base_a, method, path, legacy, {} if method == "POST" else None)
                if status != 404:
                    fail("a non-admin's %s %s answered %d" % (method, path, status))
            print("admin routes: created on one server, used and revoked on the other; non-admins get 404")

            last_used = {row.split("\t")[1]: row.split("\t")[5]
                         for row in run(binary, "token", "list", "--db", db).stdout.splitlines()}
            if last_used["dave"] == "never" or last_used["root"] == "never":
                fail("last use not recorded: %r" % last_used)
        finally:
            codes = [stop_server(process) for process in (first, second)]
        if codes != [0, 0]:
            fail("whisperer-server exited with %r:\n%s\n%s" % (codes, "".join(log_a), "".join(log_b)))
        for line in log_a + log_b:
            for key in (alice, root, bob, legacy, erin):
                if key in line:
                    fail("a key appears in the log: " + line)
    print("token lifecycle: OK")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as error:
        print("FAILED:", error)
        sys.exit(1)
