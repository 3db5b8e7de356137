#!/usr/bin/env python3
"""tests/lib/fake_region.py — a minimal region for testing `outpost agent` on its own (the wire of
docs/agent-protocol.md): it accepts the agent's control connection (101 outpost-agent/1, WELCOME, PING
every heartbeat, PONG), parks its spare stream connections (101 outpost-stream/1) and, for every client
of its client port that sends one line "HOST:PORT\\n", takes a parked spare, writes "OPEN HOST:PORT\\n",
passes the agent's answer line back to the client and then relays bytes both ways with half-close.
Everything it sees is logged on stdout, one line per event (HELLO, WELCOME, CREDENTIAL, GOAWAY, SPARE,
OPEN, ANSWER), flushed at once, so a test can grep it.

usage: fake_region.py PORT CLIENT_PORT [--spares N] [--heartbeat-ms MS] [--name NAME]
"""
import select
import socket
import struct
import sys
import threading
import time

args = sys.argv[1:]
PORT, CLIENT_PORT = int(args[0]), int(args[1])
opts = {"--spares": "2", "--heartbeat-ms": "1000", "--name": "fake"}
for i in range(2, len(args), 2):
    opts[args[i]] = args[i + 1]
SPARES, HB, NAME = int(opts["--spares"]), int(opts["--heartbeat-ms"]), opts["--name"]

lock = threading.Lock()
parked = []
parked_cv = threading.Condition(lock)


log_lock = threading.Lock()


def log(*a):
    with log_lock:  # one whole line per event, whichever thread logs it
        print(" ".join(str(x) for x in a), flush=True)


def frame(t, payload=b""):
    return struct.pack(">HBB", len(payload), t, 0) + payload


def read_head(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        if not d:
            return None, b""
        buf += d
        if len(buf) > 16384:
            return None, b""
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head.decode("latin-1"), rest


def control(s, rest):
    s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: outpost-agent/1\r\n\r\n")
    buf = rest
    alive = [True]

    def pinger():
        n = 0
        while alive[0]:
            time.sleep(HB / 1000)
            n += 1
            try:
                s.sendall(frame(3, struct.pack(">Q", n)))
            except OSError:
                return

    threading.Thread(target=pinger, daemon=True).start()
    try:
        while True:
            while len(buf) >= 4:
                ln, t, fl = struct.unpack(">HBB", buf[:4])
                if len(buf) < 4 + ln:
                    break
                p, buf = buf[4:4 + ln], buf[4 + ln:]
                if t == 1:
                    ver, mx = struct.unpack(">HH", p[:4])
                    log("HELLO", ver, mx, p[4:].decode())
                    s.sendall(frame(2, struct.pack(">HHI", 1, SPARES, HB) + NAME.encode()))
                    log("WELCOME", SPARES, HB)
                elif t == 3:
                    s.sendall(frame(4, p))
                elif t == 4:
                    pass
                elif t == 6:
                    log("CREDENTIAL", len(p))
                elif t == 7:
                    code = struct.unpack(">H", p[:2])[0]
                    log("GOAWAY", code, p[2:].decode())
                elif t == 8:
                    port, code = struct.unpack(">HH", p[:4])
                    log("STREAM_FAIL", port, code, p[4:].decode())
                else:
                    log("FRAME", t)
            d = s.recv(65536)
            if not d:
                log("CONTROL closed")
                return
            buf += d
    except OSError as e:
        log("CONTROL error", e)
    finally:
        alive[0] = False


def agent_conn(s):
    head, rest = read_head(s)
    if head is None:
        s.close()
        return
    line = head.split("\r\n")[0]
    auth = [h for h in head.split("\r\n")[1:] if h.lower().startswith("authorization: bearer ")]
    if not auth or len(auth[0]) < 30:
        s.sendall(b'HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: 26\r\n\r\n'
                  b'{"message":"no bearer ok"}')
        s.close()
        return
    if line.startswith("GET /api/v2/workspaceagents/me/control "):
        control(s, rest)
        s.close()
    elif line.startswith("GET /api/v2/workspaceagents/me/stream "):
        s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: outpost-stream/1\r\n\r\n")
        with parked_cv:
            parked.append(s)
            log("SPARE", len(parked))
            parked_cv.notify_all()
    else:
        s.sendall(b'HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 25\r\n\r\n'
                  b'{"message":"not a route"}')
        s.close()


def relay(a, b):
    """Both directions in one thread with non-blocking sockets, bounded buffers, half-close passed on."""
    a.setblocking(False)
    b.setblocking(False)
    other = {a: b, b: a}
    out = {a: b"", b: b""}  # bytes waiting to be written to the key
    chunk = {a: b"", b: b""}  # the piece being written (retried as is)
    eof = {a: False, b: False}
    shut = {a: False, b: False}
    while not (eof[a] and eof[b] and not out[a] and not out[b] and not chunk[a] and not chunk[b]):
        rl = [x for x in (a, b) if not eof[x] and len(out[other[x]]) < (1 << 20)]
        wl = [x for x in (a, b) if out[x] or chunk[x]]
        r, w, _ = select.select(rl, wl, [], 1.0)
        for x in r:
            try:
                d = x.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                d = b""
            if d:
                out[other[x]] += d
            else:
                eof[x] = True
        for x in w:
            if not chunk[x]:
                chunk[x], out[x] = out[x][:16384], out[x][16384:]
            try:
                n = x.send(chunk[x])
                chunk[x] = chunk[x][n:]
            except BlockingIOError:
                pass
            except OSError:
                return
        for x in (a, b):
            if eof[other[x]] and not out[x] and not chunk[x] and not shut[x]:
                shut[x] = True
                try:
                    x.shutdown(socket.SHUT_WR)
                except OSError:
                    pass


def client_conn(c):
    line = b""
    while not line.endswith(b"\n"):
        d = c.recv(1)
        if not d:
            c.close()
            return
        line += d
    target = line.decode().strip()
    with parked_cv:
        deadline = time.time() + 5
        while not parked and time.time() < deadline:
            parked_cv.wait(0.1)
        spare = parked.pop() if parked else None
    if spare is None:
        c.sendall(b"NOSPARE\n")
        c.close()
        return
    log("OPEN", target)
    spare.sendall(("OPEN %s\n" % target).encode())
    ans = b""
    while not ans.endswith(b"\n"):
        d = spare.recv(1)
        if not d:
            break
        ans += d
    log("ANSWER", ans.decode().strip())
    c.sendall(ans if ans else b"EOF\n")
    if not ans.startswith(b"OK"):
        c.close()
        spare.close()
        return
    relay(spare, c)
    c.close()
    spare.close()


def serve(port, handler):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(512)
    while True:
        s, _ = ls.accept()
        threading.Thread(target=handler, args=(s,), daemon=True).start()


threading.Thread(target=serve, args=(CLIENT_PORT, client_conn), daemon=True).start()
log("LISTENING", PORT, CLIENT_PORT)
serve(PORT, agent_conn)
