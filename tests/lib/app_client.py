#!/usr/bin/env python3
"""tests/lib/app_client.py — clients for tests/integration/apps.sh (stdlib only). Every host is reached on
127.0.0.1 (the Host header keeps the name: *.localhost app hosts need no resolver).

  qparam URL NAME          the decoded value of query parameter NAME of URL (exit 1 when absent)
  urlenc STRING            STRING percent-encoded as a query value (nothing kept but unreserved characters)
  ws URL COOKIE            a WebSocket round trip to URL (ws echo of app_server.py): text, a 70000-byte
                           binary message, a close; prints the upgrade and echo times
  upgrade URL COOKIE       the raw upgrade answer's status line and headers (no frames)
  conn URL COOKIE REQ...    one keep-alive connection to URL's port, the requests "METHOD /path" (Host from URL)
                           or "METHOD http://host:port/path" (that Host, same connection) in turn, each
                           printed as "status body-length body" on a line; last line: connections opened
  pipeline URL COOKIE PATH...  every GET written at once on one connection, the answers read in order and
                           printed as "status body"
  hammer JSON              {"n": N, "conns": C, "users": [{"name", "url", "cookie", "app_path"}, ...]}: for
                           every user at once, C keep-alive connections share N requests to url?n=<i>, each
                           answer must be "hello from <name>'s app: GET <app_path>?n=<i>"; a 307 with a new
                           coder_signed_app_token cookie (the token expired) is followed on the same
                           connection. Prints counts, connections opened, latency and request rate.
                           With "rate": R, every user's requests are paced at R per second in all (request
                           i is sent no earlier than i/R s after the start), so N/R s of steady load.
"""
import base64
import hashlib
import http.client
import json
import os
import socket
import sys
import threading
import time
import urllib.parse

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def split(url):
    u = urllib.parse.urlsplit(url)
    target = (u.path or "/") + ("?" + u.query if u.query else "")
    return u.hostname, u.port or 80, u.netloc, target


def ws_frame(op, data):
    mask = os.urandom(4)
    n = len(data)
    if n < 126:
        head = bytes([0x80 | op, 0x80 | n])
    elif n < 65536:
        head = bytes([0x80 | op, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | op, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[i & 3] for i, b in enumerate(data))


def read_exact(s, buf, n):
    while len(buf) < n:
        c = s.recv(65536)
        if not c:
            raise EOFError("the connection closed")
        buf += c
    return buf[:n], buf[n:]


def ws_read(s, buf):
    h, buf = read_exact(s, buf, 2)
    op, ln = h[0] & 0x0F, h[1] & 0x7F
    if h[1] & 0x80:
        raise ValueError("a masked frame from the server")
    if ln == 126:
        x, buf = read_exact(s, buf, 2)
        ln = int.from_bytes(x, "big")
    elif ln == 127:
        x, buf = read_exact(s, buf, 8)
        ln = int.from_bytes(x, "big")
    data, buf = read_exact(s, buf, ln)
    return op, data, buf


def upgrade(url, cookie):
    host, port, netloc, target = split(url)
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    req = ("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" % (target, netloc, key))
    if cookie:
        req += "Cookie: %s\r\n" % cookie
    t0 = time.monotonic()
    s.sendall((req + "\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        c = s.recv(65536)
        if not c:
            break
        buf += c
    head, _, rest = buf.partition(b"\r\n\r\n")
    return s, key, head.decode("latin-1"), rest, time.monotonic() - t0


def cmd_ws(url, cookie):
    s, key, head, buf, t_up = upgrade(url, cookie)
    lines = head.split("\r\n")
    if not lines[0].startswith("HTTP/1.1 101"):
        print("no upgrade: %r" % head[:300])
        return 1
    want = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
    got = [l.split(":", 1)[1].strip() for l in lines[1:] if l.lower().startswith("sec-websocket-accept:")]
    if got != [want]:
        print("Sec-WebSocket-Accept %r, want %r" % (got, want))
        return 1
    msgs = [(1, b"hello through the app proxy"), (2, os.urandom(70000)), (1, "é" .encode() * 100)]
    t0 = time.monotonic()
    for op, data in msgs:
        s.sendall(ws_frame(op, data))
        rop, rdata, buf = ws_read(s, buf)
        if (rop, rdata) != (op, data):
            print("echo differs: opcode %d len %d, sent opcode %d len %d" % (rop, len(rdata), op, len(data)))
            return 1
    t_echo = time.monotonic() - t0
    s.sendall(ws_frame(8, (1000).to_bytes(2, "big")))
    rop, rdata, buf = ws_read(s, buf)
    if rop != 8 or rdata[:2] != (1000).to_bytes(2, "big"):
        print("no close echoed: opcode %d" % rop)
        return 1
    s.close()
    print("upgrade %.1f ms, 3 messages (27 B text, 70000 B binary, 200 B UTF-8) echoed in %.1f ms, close echoed"
          % (t_up * 1000, t_echo * 1000))
    return 0


def cmd_upgrade(url, cookie):
    s, _, head, _, _ = upgrade(url, cookie)
    s.close()
    print(head)
    return 0


def cmd_conn(url, cookie, reqs):
    host, port, netloc, _ = split(url)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    opened = 0
    for r in reqs:
        method, path = r.split(" ", 1)
        hdr_host = netloc
        if path.startswith("http://"):  # another Host on the same connection
            _, _, hdr_host, path = split(path)
        if c.sock is None:
            opened += 1
        c.request(method, path, headers={"Host": hdr_host, "Cookie": cookie})
        resp = c.getresponse()
        body = resp.read()
        print("%d %s %s" % (resp.status, resp.getheader("Content-Length", "-"), body.decode("utf-8", "replace")))
    print("connections opened: %d" % opened)
    return 0


class _NoClose:
    """The connection's one buffered reader, for several HTTPResponse objects (each closes its file)."""

    def __init__(self, f):
        self.f = f

    def __getattr__(self, name):
        return getattr(self.f, name)

    def close(self):
        pass


class _OneFile:
    def __init__(self, f):
        self.f = _NoClose(f)

    def makefile(self, *a, **k):
        return self.f


def cmd_pipeline(url, cookie, paths):
    host, port, netloc, _ = split(url)
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    s.sendall(b"".join(("GET %s HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\n\r\n" % (p, netloc, cookie)).encode()
                       for p in paths))
    f = s.makefile("rb")
    for _ in paths:
        r = http.client.HTTPResponse(_OneFile(f))
        r.begin()
        print("%d %s" % (r.status, r.read().decode("utf-8", "replace")))
    s.close()
    return 0


def set_signed_cookie(cookie, set_cookie):
    v = set_cookie.split(";", 1)[0].strip()
    parts = [p.strip() for p in cookie.split(";") if p.strip() and not p.strip().startswith("coder_signed_app_token=")]
    return "; ".join(parts + [v])


def cmd_hammer(spec):
    spec = json.loads(spec)
    n, conns = spec["n"], spec["conns"]
    rate = spec.get("rate")
    results, lock = {}, threading.Lock()
    lat = []
    errors = []

    def worker(user, idx):
        host, port, netloc, target = split(user["url"])
        cookie = user["cookie"]
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        opened = renewals = good = 0
        my_lat = []
        for i in range(idx, n, conns):
            sep = "&" if "?" in target else "?"
            path = "%s%sn=%d" % (target, sep, i)
            want = "hello from %s's app: GET %s%sn=%d" % (user["name"], user["app_path"], sep, i)
            if rate:
                wait = start + i / rate - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            for attempt in range(3):
                if c.sock is None:
                    opened += 1
                t0 = time.monotonic()
                try:
                    c.request("GET", path, headers={"Host": netloc, "Cookie": cookie})
                    r = c.getresponse()
                    body = r.read().decode("utf-8", "replace")
                except (OSError, http.client.HTTPException) as e:
                    with lock:
                        errors.append("%s #%d: %s" % (user["name"], i, e))
                    c.close()
                    break
                my_lat.append(time.monotonic() - t0)
                if r.status == 307 and r.getheader("Set-Cookie", "").startswith("coder_signed_app_token="):
                    cookie = set_signed_cookie(cookie, r.getheader("Set-Cookie"))
                    renewals += 1
                    continue
                if r.status != 200 or body != want:
                    with lock:
                        errors.append("%s #%d: %d %r (want %r)" % (user["name"], i, r.status, body[:200], want))
                else:
                    good += 1
                break
        c.close()
        with lock:
            st = results.setdefault(user["name"], [0, 0, 0])
            st[0] += good
            st[1] += opened
            st[2] += renewals
            lat.extend(my_lat)

    threads = [threading.Thread(target=worker, args=(u, k)) for u in spec["users"] for k in range(conns)]
    t0 = start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.monotonic() - t0
    lat.sort()
    parts = ["%s %d/%d right (%d connections opened, %d token renewals)" % (name, st[0], n, st[1], st[2])
             for name, st in sorted(results.items())]
    total = sum(st[0] for st in results.values())
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else 0
    print("%s; %d requests in %.2f s (%.0f/s), latency p50 %.1f ms, p99 %.1f ms"
          % ("; ".join(parts), total, secs, total / secs if secs else 0, pct(0.5), pct(0.99)))
    for e in errors[:10]:
        print("  error: " + e)
    ok = not errors and all(st[0] == n for st in results.values()) and len(results) == len(spec["users"])
    return 0 if ok else 1


def main(argv):
    if argv[0] == "qparam":
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(argv[1]).query, keep_blank_values=True)
        if argv[2] not in q:
            return 1
        print(q[argv[2]][0])
        return 0
    if argv[0] == "urlenc":
        print(urllib.parse.quote(argv[1], safe=""))
        return 0
    if argv[0] == "ws":
        return cmd_ws(argv[1], argv[2])
    if argv[0] == "upgrade":
        return cmd_upgrade(argv[1], argv[2])
    if argv[0] == "conn":
        return cmd_conn(argv[1], argv[2], argv[3:])
    if argv[0] == "pipeline":
        return cmd_pipeline(argv[1], argv[2], argv[3:])
    if argv[0] == "hammer":
        return cmd_hammer(argv[1])
    print("unknown command " + argv[0])
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
