#!/usr/bin/env python3
"""Reference HTTP server for harness tests: serves files from a directory and records
every POST (path, headers, body) as one JSON line in a log file. Stdlib only.

Usage: ref_http.py --root DIR --bind ADDR --port N --log FILE [--ready FILE]
"""
import argparse
import http.server
import json
import os
import socketserver
import sys

MAX_BODY = 64 * 1024  # a phase POST is tiny; refuse anything larger


class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY:
            self.send_error(413)
            return
        body = self.rfile.read(length)
        record = {
            "path": self.path,
            "peer": self.client_address[0],
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("utf-8", "replace"),
        }
        with open(self.server.post_log, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        reply = b'{"ok":true}\n'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, fmt, *args):
        sys.stderr.write("ref_http: %s %s\n" % (self.client_address[0], fmt % args))


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--root", required=True)
    p.add_argument("--bind", default="0.0.0.0")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--log", required=True)
    p.add_argument("--ready", help="file created once the socket listens")
    a = p.parse_args()
    post_log = os.path.abspath(a.log)
    ready = os.path.abspath(a.ready) if a.ready else None
    os.chdir(a.root)
    srv = Server((a.bind, a.port), Handler)
    srv.post_log = post_log
    if ready:
        open(ready, "w").close()
    srv.serve_forever()


if __name__ == "__main__":
    main()
