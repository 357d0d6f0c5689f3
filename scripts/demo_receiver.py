#!/usr/bin/env python3
"""A subscriber's receiver for the demo: prints every webhook it gets and checks its signature."""
import hashlib
import hmac
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = sys.argv[2].encode() if len(sys.argv) > 2 else b""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        valid = hmac.compare_digest(expected, self.headers.get("X-Whisperer-Signature", ""))
        lines = [f"  receiver <- {self.command} {self.path}"]
        for name in ("Content-Type", "X-Whisperer-Event", "X-Whisperer-Signature", "webhook-id",
                     "webhook-timestamp", "webhook-signature"):
            lines.append(f"    {name}: {self.headers.get(name)}")
        lines.append(f"    body: {body.decode()}")
        lines.append(f"    X-Whisperer-Signature {'valid' if valid else 'INVALID'}")
        print("\n".join(lines), flush=True)
        self.send_response(200 if valid else 400)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
server.serve_forever()
