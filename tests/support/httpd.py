#!/usr/bin/env python3
"""A small HTTP(S) server for the tests, on 127.0.0.1 only. Prints
"PORT <n>" once it listens, then serves until killed.
  /echo          reflects method, path, headers and body as JSON
  /status/<n>    answers with status n
  /slow?ms=<n>   waits n milliseconds, then answers
  /bytes?n=<n>   n bytes of 'x'
  /redirect?to=<url>&code=<n>  answers n (default 302) with Location: url
  /loop          redirects to itself, for ever
  /gzip?n=<n>    n zero bytes, sent gzip-compressed (Content-Encoding: gzip)
  /barrier?n=<n>&tag=<t>  answers "all" once n requests with tag t have
                 arrived (each waits for the others), "alone" after 10 s
usage: httpd.py [--tls CERT KEY]"""
import gzip, json, ssl, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, parse_qs

barrier_lock = threading.Condition()
barrier_seen = {}

def barrier(tag, n):
    with barrier_lock:
        barrier_seen[tag] = barrier_seen.get(tag, 0) + 1
        barrier_lock.notify_all()
        return barrier_lock.wait_for(lambda: barrier_seen[tag] >= n, timeout=10)

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, ctype="application/json"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Test", "a")
        self.send_header("X-Test", "b")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def handle_any(self):
        u = urlparse(self.path)
        q = parse_qs(u.query)
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode("utf-8", "replace") if n else ""
        if u.path == "/echo":
            self.reply(200, json.dumps({"method": self.command, "path": self.path,
                                        "headers": {k.lower(): v for k, v in self.headers.items()},
                                        "body": body}))
        elif u.path.startswith("/status/"):
            self.reply(int(u.path.split("/")[2]), "status body\n", "text/plain")
        elif u.path == "/slow":
            time.sleep(int(q.get("ms", ["1000"])[0]) / 1000)
            self.reply(200, "slow\n", "text/plain")
        elif u.path == "/redirect":
            self.send_response(int(q.get("code", ["302"])[0]))
            self.send_header("Location", q["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif u.path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif u.path == "/gzip":
            data = gzip.compress(b"\0" * int(q.get("n", ["0"])[0]), compresslevel=9)
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif u.path == "/barrier":
            ok = barrier(q.get("tag", [""])[0], int(q.get("n", ["1"])[0]))
            self.reply(200, "all\n" if ok else "alone\n", "text/plain")
        elif u.path == "/headers":      # n headers of 20 bytes, or one header of n bytes (one=1)
            n = int(q.get("n", ["0"])[0])
            self.send_response(200)
            if q.get("one"):
                self.send_header("X-Big", "x" * n)
            else:
                for i in range(n):
                    self.send_header("X-H%d" % i, "v")
            self.send_header("Content-Length", "3")
            self.end_headers()
            self.wfile.write(b"ok\n")
        elif u.path == "/bytes":
            self.reply(200, "x" * int(q.get("n", ["0"])[0]), "text/plain")
        else:
            self.reply(404, "not found\n", "text/plain")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = handle_any

def main():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    if len(sys.argv) == 4 and sys.argv[1] == "--tls":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[2], sys.argv[3])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("PORT", srv.server_address[1], flush=True)
    srv.serve_forever()

main()
