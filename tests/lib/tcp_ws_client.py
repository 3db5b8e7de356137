#!/usr/bin/env python3
"""A client of the tcp endpoint's WebSocket variant for integration tests (stdlib only, masked frames).

tcp_ws_client.py token PRIMARY SESSION AGENT PORT REGION
                               POST .../connect-token: prints the signed token, or "<status> <body>", exit 1
tcp_ws_client.py status WS_URL [--origin O]
                               prints the handshake's status and body ("101" for an upgrade, then closes)
tcp_ws_client.py echo WS_URL [--origin O]
                               sends "hello" in one binary message and two fragments, expects it back
tcp_ws_client.py bulk WS_URL FILE
                               sends FILE in binary messages of up to 60 KiB while reading, then a close
                               frame (the half-close); reads until the server's close frame; prints
                               "<bytes received> <sha256 of them> <close code>"
wss:// and https:// URLs use TLS, trusting the CA file in $CURL_CA_BUNDLE when set (else the system's).
Failures: a line "FAIL ..." on stderr and exit 1.
"""
import base64
import hashlib
import json
import os
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse
import urllib.request

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def fail(msg):
    sys.stderr.write("FAIL " + msg + "\n")
    sys.exit(1)


def tls_context():
    ca = os.environ.get("CURL_CA_BUNDLE")
    return ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()


def connect(url, origin=None):
    u = urllib.parse.urlparse(url)
    tls = u.scheme in ("wss", "https")
    s = socket.create_connection((u.hostname, u.port or (443 if tls else 80)), timeout=30)
    if tls:
        s = tls_context().wrap_socket(s, server_hostname=u.hostname)
    key = base64.b64encode(os.urandom(16)).decode()
    target = u.path + ("?" + u.query if u.query else "")
    extra = "Origin: %s\r\n" % origin if origin else ""
    s.sendall((f"GET {target} HTTP/1.1\r\nHost: {u.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        k = s.recv(65536)
        if not k:
            fail("closed before a response head: %r" % buf)
        buf += k
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    hdrs = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
    if status == 101:
        want = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        if hdrs.get("sec-websocket-accept") != want:
            fail("Sec-WebSocket-Accept %r, want %r" % (hdrs.get("sec-websocket-accept"), want))
    else:
        n = int(hdrs.get("content-length", "0"))
        while len(buf) < n:
            k = s.recv(65536)
            if not k:
                break
            buf += k
    return s, status, buf


def frame(opcode, payload, fin=True):
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    if n < 126:
        h = struct.pack("!BB", b0, 0x80 | n)
    elif n < 65536:
        h = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        h = struct.pack("!BBQ", b0, 0x80 | 127, n)
    k = os.urandom(4)
    m = int.from_bytes(k * (n // 4 + 1), "big") >> (8 * (4 - n % 4) if n % 4 else 0)
    masked = (int.from_bytes(payload, "big") ^ (m & ((1 << (8 * n)) - 1))).to_bytes(n, "big") if n else b""
    return h + k + masked


class Reader:
    """Server frames: unmasked; pings answered by the caller's send lock."""

    def __init__(self, s, buf, send):
        self.s, self.buf, self.send = s, buf, send

    def need(self, n):
        while len(self.buf) < n:
            k = self.s.recv(262144)
            if not k:
                raise EOFError
            self.buf += k

    def frame(self):
        self.need(2)
        b0, b1 = self.buf[0], self.buf[1]
        if b1 & 0x80:
            fail("the server sent a masked frame")
        n, off = b1 & 0x7F, 2
        if n == 126:
            self.need(4)
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self.need(10)
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        self.need(off + n)
        p, self.buf = self.buf[off:off + n], self.buf[off + n:]
        return b0 & 0x0F, p

    def data_until(self, stop):
        """Yields data payloads; answers pings; returns the close code at the server's close."""
        while True:
            op, p = self.frame()
            if op in (0, 1, 2):
                if stop(p):
                    return None
            elif op == 9:
                self.send(frame(10, p))
            elif op == 8:
                return struct.unpack("!H", p[:2])[0] if len(p) >= 2 else 1005


def token(primary, session, agent, port, region):
    req = urllib.request.Request(primary + "/api/v2/workspaceagents/%s/connect-token" % agent, method="POST",
                                 headers={"Coder-Session-Token": session, "Content-Type": "application/json"},
                                 data=json.dumps({"port": int(port), "region": region}).encode())
    try:
        with urllib.request.urlopen(req, timeout=10, context=tls_context()) as r:
            print(json.load(r)["signed_token"])
    except urllib.error.HTTPError as e:
        print(e.code, e.read().decode(errors="replace"))
        sys.exit(1)


def main(argv):
    if len(argv) >= 6 and argv[0] == "token":
        return token(*argv[1:6])
    if len(argv) < 2:
        fail("usage")
    cmd, url = argv[0], argv[1]
    origin = argv[argv.index("--origin") + 1] if "--origin" in argv else None
    s, status, buf = connect(url, origin)
    lock = threading.Lock()

    def send(b):
        with lock:
            s.sendall(b)

    if cmd == "status":
        print(status, buf.decode("utf-8", "replace"))
        s.close()
        return
    if status != 101:
        fail("handshake answered %d: %r" % (status, buf[:300]))
    rd = Reader(s, buf, send)
    if cmd == "echo":
        send(frame(2, b"hel", fin=False) + frame(0, b"lo", fin=True) + frame(9, b"p1") + frame(2, b" world"))
        got = b""

        def enough(p):
            nonlocal got
            got += p
            return len(got) >= 11

        code = rd.data_until(enough)
        if got != b"hello world":
            fail("echo: got %r (close %r)" % (got, code))
        send(frame(8, struct.pack("!H", 1000)))
        code = rd.data_until(lambda p: False)
        print("echo ok, close %d" % code)
        return
    if cmd == "bulk":
        data = open(argv[2], "rb").read()

        def writer():
            for i in range(0, len(data), 60 * 1024):
                send(frame(2, data[i:i + 60 * 1024]))
            send(frame(8, struct.pack("!H", 1000)))  # nothing more from us: the port's FIN

        t = threading.Thread(target=writer)
        t.start()
        h, n = hashlib.sha256(), 0

        def take(p):
            nonlocal n
            h.update(p)
            n += len(p)
            return False

        code = rd.data_until(take)
        t.join()
        print(n, h.hexdigest(), code)
        return
    fail("unknown command " + cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
