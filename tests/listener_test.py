#!/usr/bin/env python3
"""whisperer-server's listener as a user and as an attacker see it, black-box: HTTPS with a
self-signed certificate, refused key files, a chunk extension that never ends and a storm of
idle connections under a low descriptor limit, with the server's memory (VmRSS) and CPU time
(utime + stime) read from /proc.

Usage: listener_test.py PATH/TO/whisperer-server SCENARIO
SCENARIO: tls | chunk_flood | connection_storm | descriptor_storm
Exit 0 on success, 77 when a tool it needs is missing (CTest reports a skip), 1 on failure.
"""

import os
import resource
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

MiB = 1024 * 1024
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def fail(message):
    raise AssertionError(message)


class Server:
    """A whisperer-server process on a free port of 127.0.0.1, its log collected."""

    def __init__(self, binary, db, *args, files_limit=None):
        def limit_files():
            if files_limit:
                resource.setrlimit(resource.RLIMIT_NOFILE, (files_limit, files_limit))

        self.process = subprocess.Popen(
            [binary, "--db", db, "--listen", "127.0.0.1:0", *args],
            stderr=subprocess.PIPE, text=True, preexec_fn=limit_files)
        self.log = []
        self.lock = threading.Lock()
        deadline = time.time() + 15
        while time.time() < deadline:
            line = self.process.stderr.readline()
            if not line:
                break
            self.log.append(line)
            if "listening on " in line:
                url = line.split("listening on ")[1].split()[0]
                self.port = int(url.rsplit(":", 1)[1].split("/")[0])
                threading.Thread(target=self._collect, daemon=True).start()
                return
        self.process.kill()
        fail("whisperer-server did not start:\n" + "".join(self.log))

    def _collect(self):
        for line in self.process.stderr:
            with self.lock:
                self.log.append(line)

    def lines(self):
        with self.lock:
            return list(self.log)

    def check_running(self):
        """Fails with the server's exit status and last log lines if it has exited."""
        if self.process.poll() is not None:
            time.sleep(0.2)  # lets the collector read the last lines
            fail("whisperer-server exited with status %d:\n%s"
                 % (self.process.returncode, "".join(self.lines()[-10:])))

    def rss_bytes(self):
        self.check_running()
        with open("/proc/%d/status" % self.process.pid) as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        fail("no VmRSS for the server")

    def cpu_seconds(self):
        self.check_running()
        with open("/proc/%d/stat" % self.process.pid) as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        # Fields 14 and 15 of proc(5) (utime, stime); the split starts at field 3.
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def status_of(port, source="127.0.0.1", timeout=10, wrap=None):
    """GET /whisperer/hooks/ without a token: the status the server answers, or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                      source_address=(source, 0)) as raw:
            conn = wrap(raw) if wrap else raw
            conn.sendall(b"GET /whisperer/hooks/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            reply = b""
            while b"\r\n" not in reply:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                reply += chunk
            if not reply.startswith(b"HTTP/1.1 "):
                return None
            return int(reply[9:12])
    except OSError:
        return None


def eventually_answered(port, source="127.0.0.1", seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        status = status_of(port, source, timeout=3)
        if status is not None:
            return status
        time.sleep(0.2)
    return None


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def self_signed(directory, name):
    """A self-signed certificate for localhost and 127.0.0.1 and its key (mode 0600)."""
    cert = os.path.join(directory, name + ".crt")
    key = os.path.join(directory, name + ".key")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1")
    os.chmod(key, 0o600)
    return cert, key


def refused_start(binary, args, db):
    """Runs whisperer-server expecting it to refuse to start: (exit code, stderr)."""
    try:
        done = subprocess.run([binary, "--db", db, "--listen", "127.0.0.1:0", *args],
                              capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        fail("whisperer-server started with %r" % (args,))
    return done.returncode, done.stderr


def scenario_tls(binary, tmp):
    if shutil.which("openssl") is None:
        print("the openssl command is not installed")
        sys.exit(77)
    cert, key = self_signed(tmp, "server")
    db = os.path.join(tmp, "tls.db")
    token = subprocess.run([binary, "token", "create", "--db", db, "--owner", "alice"],
                           check=True, capture_output=True, text=True).stdout.strip()
    server = Server(binary, db, "--tls-cert", cert, "--tls-key", key)
    try:
        if "listening on https://" not in "".join(server.lines()):
            fail("the server does not say it serves HTTPS:\n" + "".join(server.lines()))
        client = ssl.create_default_context(cafile=cert)
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
            with client.wrap_socket(raw, server_hostname="localhost") as conn:
                version = conn.version()
                if version not in ("TLSv1.2", "TLSv1.3"):
                    fail("negotiated %s" % version)
                request = ("GET /whisperer/hooks/?token=query-secret HTTP/1.1\r\nHost: localhost\r\n"
                           "Authorization: Token %s\r\nConnection: close\r\n\r\n" % token)
                conn.sendall(request.encode())
                reply = b""
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    reply += chunk
        if not reply.startswith(b"HTTP/1.1 200 ") or b'"results":[]' not in reply:
            fail("the HTTPS request got %r" % reply[:300])
        print("HTTPS request with a self-signed certificate: 200 over", version)

        plain = status_of(server.port)
        if plain is not None:
            fail("a plain-HTTP request on the HTTPS port was answered %d" % plain)
        print("plain HTTP on the HTTPS port: no HTTP answer")
        again = status_of(server.port, wrap=lambda raw: client.wrap_socket(raw, server_hostname="localhost"))
        if again != 401:
            fail("after the plain request, an HTTPS request without a token got %r" % again)
        time.sleep(0.5)
        logged = "".join(server.lines())
        if "query-secret" in logged or '"GET /whisperer/hooks/" 200' not in logged:
            fail("the request log shows the query string or not the request:\n" + logged)
    finally:
        server.stop()

    os.chmod(key, 0o644)
    refused_db = os.path.join(tmp, "refused.db")
    code, err = refused_start(binary, ["--tls-cert", cert, "--tls-key", key], refused_db)
    if code != 1 or key not in err or "group or others" not in err or "chmod 600" not in err:
        fail("a world-readable key: exit %d, %r" % (code, err))
    if os.path.exists(refused_db):
        fail("a refused start created the database")
    print("world-readable key refused: exit 1:", err.strip())
    os.chmod(key, 0o640)
    code, err = refused_start(binary, ["--tls-cert", cert, "--tls-key", key], refused_db)
    if code != 1 or "group or others" not in err:
        fail("a group-readable key: exit %d, %r" % (code, err))
    os.chmod(key, 0o600)

    missing = os.path.join(tmp, "missing.crt")
    code, err = refused_start(binary, ["--tls-cert", missing, "--tls-key", key], refused_db)
    if code != 1 or missing not in err or "No such file" not in err:
        fail("a missing certificate: exit %d, %r" % (code, err))
    print("missing certificate refused:", err.strip())

    garbage = os.path.join(tmp, "garbage.crt")
    with open(garbage, "w") as out:
        out.write("not a certificate\n")
    code, err = refused_start(binary, ["--tls-cert", garbage, "--tls-key", key], refused_db)
    if code != 1 or garbage not in err:
        fail("an invalid certificate: exit %d, %r" % (code, err))

    other_cert, _ = self_signed(tmp, "other")
    code, err = refused_start(binary, ["--tls-cert", other_cert, "--tls-key", key], refused_db)
    if code != 1 or key not in err:
        fail("a key of another certificate: exit %d, %r" % (code, err))
    print("invalid certificate and mismatched key refused")

    code, err = refused_start(binary, ["--tls-cert", cert], refused_db)
    if code != 2 or "--tls-key" not in err:
        fail("--tls-cert alone: exit %d, %r" % (code, err))


class PeakRss:
    """Samples a server's VmRSS every 5 ms and keeps the highest."""

    def __init__(self, server):
        self.server = server
        self.peak = server.rss_bytes()
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            self.peak = max(self.peak, self.server.rss_bytes())
            time.sleep(0.005)

    def stop(self):
        self.running = False
        self.thread.join()
        return self.peak


def flood(port, head, filler, total):
    """Sends `head`, then `filler` bytes up to `total`: (bytes sent, what the server answered)."""
    sent = 0
    reply = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        try:
            conn.sendall(head)
            block = filler * (MiB // len(filler))
            while sent < total:
                conn.sendall(block)
                sent += len(block)
        except OSError:
            pass
        try:
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                reply += chunk
        except OSError:
            pass
    return sent, reply


def scenario_chunk_flood(binary, tmp):
    server = Server(binary, os.path.join(tmp, "flood.db"))
    try:
        for _ in range(20):
            if status_of(server.port) != 401:
                fail("the server does not answer 401 without a token")
        cases = [
            ("a chunk extension that never ends",
             b"POST /whisperer/events/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;", b"a", b"HTTP/1.1 400 "),
            ("a chunk size that never ends",
             b"POST /whisperer/events/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1", b"0", b"HTTP/1.1 400 "),
            ("a header line that never ends",
             b"GET /whisperer/hooks/ HTTP/1.1\r\nHost: x\r\nX-Long: ", b"a", b"HTTP/1.1 431 "),
        ]
        total = 128 * MiB
        for name, head, filler, expected in cases:
            before = server.rss_bytes()
            sampler = PeakRss(server)
            sent, reply = flood(server.port, head, filler, total)
            peak = sampler.stop()
            growth = peak - before
            print("%s: sent %.1f MiB of %d; RSS %.1f -> peak %.1f MiB (+%.1f); answer %r" % (
                name, sent / MiB, total // MiB, before / MiB, peak / MiB, growth / MiB, reply[:40]))
            if growth > 32 * MiB:
                fail("%s grew the server by %.1f MiB" % (name, growth / MiB))
            if sent >= total:
                fail("%s: the server took all %d MiB without closing the connection" % (name, total // MiB))
            if not reply.startswith(expected):
                fail("%s was answered %r, not %r" % (name, reply[:60], expected))
        if status_of(server.port) != 401:
            fail("the server no longer answers after the floods")
    finally:
        server.stop()


def open_idle(port, count, source):
    """`count` connections from `source` that send nothing."""
    conns = []
    for _ in range(count):
        conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        conn.bind((source, 0))
        conn.settimeout(10)
        conn.connect(("127.0.0.1", port))
        conns.append(conn)
    return conns


def cpu_share(server, seconds=2.0):
    start_cpu, start = server.cpu_seconds(), time.time()
    time.sleep(seconds)
    return (server.cpu_seconds() - start_cpu) / (time.time() - start)


def storm(binary, tmp, extra_args, answered_during_storm):
    files_limit = 256
    idle_count = 600
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < idle_count + 64:
        print("this process may open only %d files" % hard)
        sys.exit(77)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, idle_count + 64), hard))
    server = Server(binary, os.path.join(tmp, "storm.db"), *extra_args, files_limit=files_limit)
    idle = []
    try:
        if status_of(server.port) != 401:
            fail("the server does not answer 401 without a token")
        lines_before = len(server.lines())
        idle = open_idle(server.port, idle_count, "127.0.0.2")
        time.sleep(1.0)
        share = cpu_share(server)
        log_lines = len(server.lines()) - lines_before
        print("%d idle connections, descriptor limit %d: server CPU %.1f %% of a core over 2 s, %d log lines, "
              "RSS %.1f MiB" % (idle_count, files_limit, share * 100, log_lines, server.rss_bytes() / MiB))
        if share > 0.20:
            fail("the server used %.0f %% of a core while the connections stayed idle" % (share * 100))
        if log_lines > 40:
            fail("the server logged %d lines in 3 s:\n%s" % (log_lines, "".join(server.lines()[-5:])))
        if answered_during_storm:
            status = status_of(server.port, "127.0.0.1", timeout=10)
            if status != 401:
                fail("another client address was not served during the storm: %r" % status)
            print("another client address is served during the storm: 401")
        for conn in idle:
            conn.close()
        idle = []
        status = eventually_answered(server.port, "127.0.0.2")
        if status != 401:
            fail("the server did not answer once the idle connections closed: %r\n%s"
                 % (status, "".join(server.lines()[-5:])))
        print("answered again once the idle connections closed: 401")
        server.check_running()
    finally:
        for conn in idle:
            conn.close()
        server.stop()


def scenario_connection_storm(binary, tmp):
    """With the default limits (derived from the descriptor limit), idle connections past them
    are closed at once, and one address cannot take another's place."""
    storm(binary, tmp, [], answered_during_storm=True)


def scenario_descriptor_storm(binary, tmp):
    """With limits above the descriptor limit, the server runs out of descriptors: it must wait
    before accepting again, not spin, and recover when connections close."""
    storm(binary, tmp, ["--max-connections", "100000", "--max-connections-per-client", "100000"],
          answered_during_storm=False)


SCENARIOS = {
    "tls": scenario_tls,
    "chunk_flood": scenario_chunk_flood,
    "connection_storm": scenario_connection_storm,
    "descriptor_storm": scenario_descriptor_storm,
}


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in SCENARIOS:
        print(__doc__)
        sys.exit(2)
    with tempfile.TemporaryDirectory() as tmp:
        SCENARIOS[sys.argv[2]](sys.argv[1], tmp)
    print(sys.argv[2] + ": OK")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as error:
        print("FAILED:", error)
        sys.exit(1)
