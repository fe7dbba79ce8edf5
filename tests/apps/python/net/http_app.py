"""An http.server application: prints "PORT <n>" once it listens on
127.0.0.1, serves until GET /quit, then prints "served <n> requests" and
exits 0.

  GET  /hello        a fixed greeting
  POST /sha256       the SHA-256 of the request body
  GET  /threads      the number of live threads (a ThreadingHTTPServer)
  GET  /quit         stop the server
"""
import hashlib
import http.server
import json
import os
import sys
import threading

count = 0
count_lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, fmt, *args):
        pass

    def send_text(self, code, text, ctype="text/plain; charset=utf-8"):
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def count(self):
        global count
        with count_lock:
            count += 1

    def do_GET(self):
        self.count()
        if self.path == "/hello":
            self.send_text(200, "hello from http.server\n")
        elif self.path == "/threads":
            self.send_text(200, json.dumps({"threads": threading.active_count(), "pid_positive": os.getpid() > 0}))
        elif self.path == "/quit":
            self.send_text(200, "bye\n")
            threading.Thread(target=self.server.shutdown).start()
        else:
            self.send_text(404, "no such page\n")

    def do_POST(self):
        self.count()
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        self.send_text(200, f"{len(body)} {hashlib.sha256(body).hexdigest()}\n")


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print("PORT", server.server_address[1], flush=True)
server.serve_forever(poll_interval=0.05)
server.server_close()
print("served", count, "requests", flush=True)
sys.exit(0)
