#!/usr/bin/env python3
"""A web terminal client for integration tests (stdlib only, raw sockets, masked frames).

pty_client.py token PRIMARY SESSION URL AGENT     POST reconnecting-pty-signed-token: prints the token, or
                                                  "<status> <body>" and exits 1
pty_client.py run WS_URL [options] STEP...        opens the WebSocket and runs the steps in order
  options: --origin O, --header "Name: value" (repeatable), --host H (the Host header; default the URL's)
  steps:
    status:N[:REGEX]      the handshake must answer N (101 goes on; anything else ends the run there, its
                          body matching REGEX when given)
    send:TEXT             {"data": TEXT + "\\r"} (keystrokes; \\n in TEXT is a newline)
    resize:COLS:ROWS      {"width": COLS, "height": ROWS}
    expect:REGEX          PTY output (binary messages) since the previous match must match within 15 s;
                          group 1, if any, is printed on its own line
    raw-unmasked          sends a text frame without a mask
    close:CODE[:REGEX]    the server's close frame must come within 15 s with CODE (and a reason matching)
    drop                  closes the TCP connection without a close frame
Exit 0 when every step passed; otherwise a line "FAIL ..." on stderr and exit 1. A wss:// WS_URL and an
https:// PRIMARY are checked against CURL_CA_BUNDLE (or SSL_CERT_FILE) when set, else the system's CAs.
"""
import base64
import hashlib
import json
import os
import re
import socket
import ssl
import struct
import sys
import time
import urllib.parse
import urllib.request

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def fail(msg):
    sys.stderr.write("FAIL " + msg + "\n")
    sys.exit(1)


def tls_context():
    """Certificates are checked against CURL_CA_BUNDLE (or SSL_CERT_FILE) when set, as the CLI does."""
    ca = os.environ.get("CURL_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or None
    return ssl.create_default_context(cafile=ca)


class WS:
    def __init__(self, url, origin=None, headers=(), host=None):
        u = urllib.parse.urlparse(url)
        if u.scheme not in ("ws", "wss"):
            fail("only ws:// and wss:// URLs: " + url)
        self.s = socket.create_connection((u.hostname, u.port or (443 if u.scheme == "wss" else 80)), timeout=15)
        if u.scheme == "wss":
            self.s = tls_context().wrap_socket(self.s, server_hostname=u.hostname)
        key = base64.b64encode(os.urandom(16)).decode()
        target = u.path + ("?" + u.query if u.query else "")
        extra = "".join(h + "\r\n" for h in headers)
        if origin:
            extra += "Origin: " + origin + "\r\n"
        self.s.sendall((f"GET {target} HTTP/1.1\r\nHost: {host or u.netloc}\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                        f"{extra}\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            k = self.s.recv(65536)
            if not k:
                fail("closed before a response head: %r" % self.buf)
            self.buf += k
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ")[1])
        self.headers = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
        self.body = self.buf
        if self.status == 101:
            want = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
            if self.headers.get("sec-websocket-accept") != want:
                fail("Sec-WebSocket-Accept %r, want %r" % (self.headers.get("sec-websocket-accept"), want))
        self.out = b""  # PTY output so far
        self.pos = 0  # where the next expect starts
        self.closed = None  # (code, reason) of the server's close

    def frame(self, opcode, payload, mask=True):
        b0 = 0x80 | opcode
        n = len(payload)
        m = 0x80 if mask else 0
        if n < 126:
            h = struct.pack("!BB", b0, m | n)
        elif n < 65536:
            h = struct.pack("!BBH", b0, m | 126, n)
        else:
            h = struct.pack("!BBQ", b0, m | 127, n)
        if mask:
            k = os.urandom(4)
            payload = bytes(c ^ k[i % 4] for i, c in enumerate(payload))
            h += k
        self.s.sendall(h + payload)

    def send_json(self, obj):
        self.frame(1, json.dumps(obj).encode())

    def read_frame(self, deadline):
        def need(n):
            while len(self.buf) < n:
                self.s.settimeout(max(0.01, deadline - time.time()))
                try:
                    k = self.s.recv(65536)
                except socket.timeout:
                    return False
                if not k:
                    raise EOFError
                self.buf += k
            return True

        if not need(2):
            return None
        b0, b1 = self.buf[0], self.buf[1]
        if b1 & 0x80:
            fail("the server sent a masked frame")
        n, off = b1 & 0x7F, 2
        if n == 126:
            if not need(4):
                return None
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            if not need(10):
                return None
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        if not need(off + n):
            return None
        payload, self.buf = self.buf[off:off + n], self.buf[off + n:]
        return b0 & 0x0F, payload

    def pump(self, until, what):
        deadline = time.time() + 15
        while time.time() < deadline:
            if until():
                return
            try:
                f = self.read_frame(deadline)
            except EOFError:
                fail("%s: the connection closed (output so far: %r)" % (what, self.out[-300:]))
            if f is None:
                continue
            op, p = f
            if op in (0, 2):
                self.out += p
            elif op == 9:
                self.frame(10, p)
            elif op == 8:
                code = struct.unpack("!H", p[:2])[0] if len(p) >= 2 else 1005
                self.closed = (code, p[2:].decode("utf-8", "replace"))
                if not until():
                    fail("%s: closed %d %r (output so far: %r)" % (what, code, self.closed[1], self.out[-300:]))
                return
        if not until():
            fail("%s: timed out (output so far: %r)" % (what, self.out[-300:]))


def run(args):
    origin, host, headers, steps = None, None, [], []
    i = 0
    while i < len(args):
        if args[i] == "--origin":
            origin, i = args[i + 1], i + 2
        elif args[i] == "--host":
            host, i = args[i + 1], i + 2
        elif args[i] == "--header":
            headers.append(args[i + 1])
            i += 2
        else:
            steps.append(args[i])
            i += 1
    url, steps = steps[0], steps[1:]
    ws = WS(url, origin, headers, host)
    for st in steps:
        kind, _, arg = st.partition(":")
        if kind == "status":
            code, _, rx = arg.partition(":")
            if ws.status != int(code):
                fail("handshake answered %d, want %s: %r" % (ws.status, code, ws.body[:300]))
            if rx and ws.status != 101:
                ws.s.settimeout(5)
                try:
                    while not re.search(rx.encode(), ws.body):
                        k = ws.s.recv(65536)
                        if not k:
                            break
                        ws.body += k
                except OSError:
                    pass
                if not re.search(rx.encode(), ws.body):
                    fail("the %d answer does not match %r: %r" % (ws.status, rx, ws.body[:300]))
            if ws.status != 101:
                return
        elif ws.status != 101:
            fail("handshake answered %d: %r" % (ws.status, ws.body[:300]))
        elif kind == "send":
            ws.send_json({"data": arg.replace("\\n", "\n") + "\r"})
        elif kind == "resize":
            c, r = arg.split(":")
            ws.send_json({"width": int(c), "height": int(r)})
        elif kind == "expect":
            rx = re.compile(arg.encode())
            found = []

            def match():
                m = rx.search(ws.out, ws.pos)
                if m:
                    found.append(m)
                return bool(m)

            ws.pump(match, "expect " + arg)
            m = found[0]
            ws.pos = m.end()
            if m.groups():
                print(m.group(1).decode())
        elif kind == "raw-unmasked":
            ws.frame(1, b'{"data":"x"}', mask=False)
        elif kind == "close":
            code, _, rx = arg.partition(":")
            ws.pump(lambda: ws.closed is not None, "close " + arg)
            if ws.closed[0] != int(code) or (rx and not re.search(rx, ws.closed[1])):
                fail("closed %d %r, want %s" % (ws.closed[0], ws.closed[1], arg))
            print(ws.closed[1])
        elif kind == "drop":
            ws.s.close()
            return
        else:
            fail("unknown step " + st)
    try:
        ws.frame(8, struct.pack("!H", 1000))
    except OSError:
        pass
    ws.s.close()


def token(primary, session, url, agent):
    req = urllib.request.Request(primary + "/api/v2/applications/reconnecting-pty-signed-token", method="POST",
                                 headers={"Coder-Session-Token": session, "Content-Type": "application/json"},
                                 data=json.dumps({"url": url, "agentID": agent}).encode())
    try:
        ctx = tls_context() if primary.startswith("https:") else None
        with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
            print(json.load(r)["signed_token"])
    except urllib.error.HTTPError as e:
        print(e.code, e.read().decode(errors="replace"))
        sys.exit(1)


if __name__ == "__main__":
    if len(sys.argv) >= 6 and sys.argv[1] == "token":
        token(*sys.argv[2:6])
    elif len(sys.argv) >= 3 and sys.argv[1] == "run":
        run(sys.argv[2:])
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)
