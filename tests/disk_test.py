#!/usr/bin/env python3
"""whisperer-server on a real filesystem that fills up or turns read-only under it.

Usage: disk_test.py full|read_only PATH/TO/whisperer-server

full: the database lives on a small tmpfs. Events are published (through the HTTP API, with a
receiver that is down) until the disk is full: every answer must be 202 or a clear 503 naming
the store, and the server must stay up. Then the tmpfs is grown (mount -o remount,size=...), the
receiver comes up, and every event that was answered 202 must arrive, and new ones be accepted.

read_only: the database lives on a small tmpfs, and mid-run the tmpfs is remounted read-only
(mount -o remount,ro), publishing goes on (clear 503s, nothing acknowledged that was not kept),
the remount is undone and every acknowledged event must arrive. Linux refuses to remount a
filesystem read-only while a process has a file on it open for writing (EBUSY), which a running
server always has (its database): where the kernel refuses, the test says so and is skipped.

Needs root, to mount. Exit 0 on success, 77 (CTest reports a skip) with the reason printed when
it cannot mount or remount here, or when python3-requests is missing; 1 on failure.
"""

import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

try:
    import requests
except ImportError:
    print("SKIPPED: python3-requests is not installed")
    sys.exit(77)

EVENT_TYPE = "disk.filled"
PADDING = "x" * 4000  # Each event's data: a few kilobytes, so that a small disk fills quickly.


class Skip(Exception):
    pass


def fail(message):
    raise AssertionError(message)


class Receiver:
    """A subscriber on 127.0.0.1: answers 503 while down, else records the webhook-id and 200."""

    def __init__(self):
        self.down = True
        self.ids = set()
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = 503 if receiver.down else 200
                if status == 200:
                    with receiver.lock:
                        receiver.ids.add(self.headers.get("webhook-id"))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def missing(self, uuids):
        with self.lock:
            return [u for u in uuids if u not in self.ids]


def run(*command):
    """Runs a command; returns (exit code, its combined output)."""
    done = subprocess.run(command, capture_output=True, text=True)
    return done.returncode, (done.stdout + done.stderr).strip()


def mount_tmpfs(directory, size):
    if os.geteuid() != 0:
        raise Skip("not root: mounting a tmpfs needs root")
    code, output = run("mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", directory)
    if code != 0:
        raise Skip("cannot mount a tmpfs here: " + output)


def remount(directory, options):
    """Remounts `directory` with `options`; returns (exit code, output)."""
    return run("mount", "-o", "remount," + options, directory)


class Server:
    """whisperer-server on the database at `db`, with a hook to the receiver."""

    def __init__(self, binary, db, receiver_url):
        self.binary = binary
        self.log = []
        admin = self.token(db, "alice")
        self.publisher = self.token(db, "app", "--publisher")
        self.process = subprocess.Popen(
            [binary, "--db", db, "--listen", "127.0.0.1:0", "--event-type", EVENT_TYPE,
             "--allow-private", "127.0.0.0/8"],
            stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 15
        self.base = None
        while time.time() < deadline and self.base is None:
            line = self.process.stderr.readline()
            if not line:
                break
            self.log.append(line)
            if "listening on http://" in line:
                self.base = line.split("listening on ")[1].split()[0].rstrip("/").rsplit("/whisperer", 1)[0]
        if self.base is None:
            self.process.kill()
            fail("whisperer-server did not start:\n" + "".join(self.log))
        threading.Thread(target=lambda: [self.log.append(l) for l in self.process.stderr], daemon=True).start()
        created = requests.post(self.base + "/whisperer/hooks/", headers={"Authorization": "Token " + admin},
                                json={"event_type": EVENT_TYPE, "secret_key": "disk-secret",
                                      "target_url": receiver_url,
                                      "retry_countdown_config": {"choice": "fixed", "kwargs": {"seconds": 1}}})
        if created.status_code != 201:
            fail("creating the hook answered %d: %s" % (created.status_code, created.text))

    def token(self, db, owner, *rights):
        out = subprocess.run([self.binary, "token", "create", "--db", db, "--owner", owner, *rights],
                             check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def publish(self, n):
        """Publishes one event; returns (status, uuid or None, body)."""
        try:
            response = requests.post(self.base + "/whisperer/events/", timeout=30,
                                     headers={"Authorization": "Token " + self.publisher},
                                     json={"event_type": EVENT_TYPE, "data": {"n": n, "padding": PADDING}})
        except requests.RequestException as error:
            self.check_alive()
            fail("publishing failed without an answer: %s" % error)
        uuid = response.json().get("uuid") if response.status_code == 202 else None
        return response.status_code, uuid, response.text

    def check_alive(self):
        if self.process.poll() is not None:
            fail("whisperer-server died (exit %r):\n%s" % (self.process.returncode, "".join(self.log[-30:])))

    def stop(self):
        self.process.terminate()
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return "killed"


def check_refusal(status, body):
    """A publish that was not acknowledged must say why: 503 with the store's error code."""
    if status != 503:
        fail("a publish the server could not keep answered %d: %s" % (status, body))
    try:
        code = json.loads(body).get("code")
    except ValueError:
        fail("a refused publish answered something that is not JSON: %r" % body)
    if code != "whisperer_store":
        fail("a refused publish names %r instead of the store: %s" % (code, body))


def publish_until_refused(server, first, limit, before_each=None):
    """Publishes until 20 publishes in a row are refused (or `limit`); returns (acked, refused)."""
    acked, refused, in_a_row = [], 0, 0
    for n in range(first, first + limit):
        if before_each:
            before_each(n)
        status, uuid, body = server.publish(n)
        server.check_alive()
        if status == 202:
            acked.append(uuid)
            in_a_row = 0
        else:
            check_refusal(status, body)
            refused += 1
            in_a_row += 1
            if in_a_row >= 20:
                break
    return acked, refused


def wait_delivered(receiver, server, uuids, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        server.check_alive()
        if not receiver.missing(uuids):
            return
        time.sleep(0.2)
    missing = receiver.missing(uuids)
    fail("%d of %d acknowledged events never arrived, e.g. %s; the server's last lines:\n%s"
         % (len(missing), len(uuids), missing[:3], "".join(server.log[-30:])))


def accepts_new_events(receiver, server, first):
    fresh = []
    for n in range(first, first + 10):
        status, uuid, body = server.publish(n)
        if status != 202:
            fail("after space returned, a new event answered %d: %s" % (status, body))
        fresh.append(uuid)
    wait_delivered(receiver, server, fresh)


def on_tmpfs(binary, directory, size, scenario):
    """Runs `scenario(receiver, server, directory)` against a server on a fresh tmpfs of `size`."""
    mount_tmpfs(directory, size)
    receiver = Receiver()
    server = Server(binary, os.path.join(directory, "whisperer.db"), receiver.url)
    try:
        scenario(receiver, server, directory)
        server.check_alive()
    finally:
        code = server.stop()
        receiver.server.shutdown()
    if code != 0:
        fail("whisperer-server exited with %r after SIGTERM:\n%s" % (code, "".join(server.log[-30:])))


def fill_and_recover(receiver, server, directory):
    acked, refused = publish_until_refused(server, 0, 5000)
    print("disk full: %d events acknowledged, then %d refused with 503 whisperer_store" % (len(acked), refused))
    if not acked or refused < 20:
        fail("the disk never filled up: %d acknowledged, %d refused" % (len(acked), refused))
    code, output = remount(directory, "size=64m")
    if code != 0:
        fail("cannot grow the tmpfs: " + output)
    receiver.down = False
    wait_delivered(receiver, server, acked)
    print("space returned: all %d acknowledged events delivered" % len(acked))
    accepts_new_events(receiver, server, 100000)
    print("new events accepted and delivered")


def remount_read_only(receiver, server, directory):
    acked, _ = publish_until_refused(server, 0, 50)
    code, output = remount(directory, "ro")
    if code != 0:
        raise Skip("the kernel refuses to remount the tmpfs read-only under the running server "
                   "(it holds its database open for writing): " + output)
    try:
        more, refused = publish_until_refused(server, 1000, 200)
    finally:
        code, output = remount(directory, "rw")
    if code != 0:
        fail("cannot undo the read-only remount: " + output)
    acked += more
    print("read-only: %d acknowledged, %d refused with 503 whisperer_store" % (len(more), refused))
    receiver.down = False
    wait_delivered(receiver, server, acked)
    accepts_new_events(receiver, server, 100000)


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("full", "read_only"):
        print(__doc__)
        return 2
    case, binary = sys.argv[1], sys.argv[2]
    directory = tempfile.mkdtemp(prefix="whisperer-disk-")
    try:
        if case == "full":
            on_tmpfs(binary, directory, "3m", fill_and_recover)
        else:
            on_tmpfs(binary, directory, "64m", remount_read_only)
    except Skip as reason:
        print("SKIPPED:", reason)
        return 77
    except AssertionError as error:
        print("FAILED:", error)
        return 1
    finally:
        run("umount", directory)
        os.rmdir(directory)
    print("disk %s: OK" % case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
