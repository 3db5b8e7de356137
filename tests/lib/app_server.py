#!/usr/bin/env python3
"""tests/lib/app_server.py PORT NAME BIGFILE [CERT KEY] — the workspace app of tests/integration/apps.sh
(stdlib only).

HTTP/1.1 with keep-alive, one thread per connection, on 127.0.0.1:PORT; with CERT and KEY, HTTPS with
that certificate (an https app):
  GET /echo-headers  the request's headers as JSON [[name, value], ...] plus {"path", "client"}; the
                     answer carries CORS headers and "Vary: Origin, Accept-Encoding" (the proxy must drop
                     the CORS ones) and "X-App: NAME" (kept)
  GET /big           BIGFILE as it is (Content-Length)
  POST /upload       the SHA-256 (hex) of the body (Content-Length or chunked)
  GET /ws            a WebSocket echo: every data frame comes back with its opcode; a close is answered
  GET /chunked       "one two three" in three chunks (Transfer-Encoding: chunked)
  GET /drip          "tick 0".."tick 4" lines, chunked, 300 ms apart (a proxy must not hold them back)
  GET /nobody        204, no body
  HEAD anything      the head GET would have (Content-Length included), no body
  GET anything else  "hello from NAME's app: METHOD PATH" (the path as the app got it, query included)
"""
import base64
import hashlib
import http.server
import json
import socketserver
import ssl
import sys
import time

PORT, NAME, BIG = int(sys.argv[1]), sys.argv[2], sys.argv[3]
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # the head and the body go in two writes

    def log_message(self, fmt, *args):
        pass

    def send_body(self, code, body, ctype="text/plain; charset=utf-8", extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/echo-headers":
            body = json.dumps({"headers": [[k, v] for k, v in self.headers.items()], "path": self.path,
                               "client": self.client_address[0]}).encode()
            self.send_body(200, body, "application/json", [
                ("Access-Control-Allow-Origin", "http://evil.example"),
                ("Access-Control-Allow-Credentials", "true"),
                ("Access-Control-Allow-Methods", "GET, POST, DELETE"),
                ("Access-Control-Allow-Headers", "X-Anything"),
                ("Vary", "Origin, Accept-Encoding"),
                ("X-App", NAME)])
        elif path == "/big":
            with open(BIG, "rb") as f:
                f.seek(0, 2)
                size = f.tell()
                f.seek(0)
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(size))
                self.end_headers()
                while True:
                    chunk = f.read(1 << 20)
                    if not chunk:
                        break
                    self.wfile.write(chunk)
        elif path == "/ws":
            self.websocket()
        elif path in ("/chunked", "/drip"):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            parts = [b"one ", b"two ", b"three"] if path == "/chunked" else [b"tick %d\n" % i for i in range(5)]
            for i, part in enumerate(parts):
                if path == "/drip" and i:
                    time.sleep(0.3)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/nobody":
            self.send_response(204)
            self.end_headers()
        else:
            self.send_body(200, ("hello from %s's app: GET %s" % (NAME, self.path)).encode())

    def do_HEAD(self):
        body = ("hello from %s's app: GET %s" % (NAME, self.path)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()

    def do_POST(self):
        h = hashlib.sha256()
        n = 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                left = size
                while left:
                    b = self.rfile.read(min(left, 1 << 20))
                    if not b:
                        return
                    h.update(b)
                    left -= len(b)
                    n += len(b)
                self.rfile.readline()
        else:
            left = int(self.headers.get("Content-Length", "0"))
            while left:
                b = self.rfile.read(min(left, 1 << 20))
                if not b:
                    return
                h.update(b)
                left -= len(b)
                n += len(b)
        if self.path.split("?", 1)[0] == "/upload":
            self.send_body(200, ("%s %d" % (h.hexdigest(), n)).encode())
        else:
            self.send_body(200, ("hello from %s's app: POST %s" % (NAME, self.path)).encode())

    def read_exact(self, n):
        b = b""
        while len(b) < n:
            c = self.rfile.read(n - len(b))
            if not c:
                raise EOFError
            b += c
        return b

    def websocket(self):
        key = self.headers.get("Sec-WebSocket-Key")
        if self.headers.get("Upgrade", "").lower() != "websocket" or not key:
            self.send_body(400, b"not a websocket upgrade")
            return
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        try:
            while True:
                b0, b1 = self.read_exact(2)
                op, masked, ln = b0 & 0x0F, b1 & 0x80, b1 & 0x7F
                if ln == 126:
                    ln = int.from_bytes(self.read_exact(2), "big")
                elif ln == 127:
                    ln = int.from_bytes(self.read_exact(8), "big")
                mask = self.read_exact(4) if masked else b"\0\0\0\0"
                data = bytearray(self.read_exact(ln))
                for i in range(ln):
                    data[i] ^= mask[i & 3]
                if ln < 126:
                    head = bytes([0x80 | op, ln])
                elif ln < 65536:
                    head = bytes([0x80 | op, 126]) + ln.to_bytes(2, "big")
                else:
                    head = bytes([0x80 | op, 127]) + ln.to_bytes(8, "big")
                self.wfile.write(head + bytes(data))
                self.wfile.flush()
                if op == 8:
                    return
        except (EOFError, ConnectionError):
            return


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


srv = Server(("127.0.0.1", PORT), Handler)
if len(sys.argv) > 5:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[4], sys.argv[5])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
