#!/usr/bin/env python3
"""A workspace agent for integration tests, speaking the agent wire protocol (docs/agent-protocol.md):
one control connection per region (HELLO, WELCOME, PING/PONG, SPARES), spare stream connections that wait
for `OPEN host:port`, dial it and answer `OK` or `ERR <code> <reason>`, then relay bytes with half-close.

fake_agent.py --primary URL --token AGENT_TOKEN --region URL [--region URL ...] [--max-spares N]
              [--refuse-port P]   (answer ERR 2 forbidden for port P, to test the region's 502)
              [--no-spares]       (open no spare at all, to test a region's wait bound)
              [--no-pong]         (never answer PING, to test a region's heartbeat; no reconnect)
Prints "control up <region url> <region name> spares=<wanted>" per region when WELCOME arrives. Stdlib only.
"""
import argparse
import json
import socket
import struct
import sys
import threading
import time
import urllib.parse
import urllib.request

HELLO, WELCOME, PING, PONG, SPARES, CREDENTIAL, GOAWAY, STREAM_FAIL = range(1, 9)
lock = threading.Lock()
cred = {"token": ""}


def log(*a):
    with lock:
        print(*a, flush=True)


def fetch_credential(primary, token):
    req = urllib.request.Request(primary + "/api/v2/workspaceagents/me/credential", data=b"{}",
                                 method="POST", headers={"Coder-Session-Token": token,
                                                         "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)["credential"]


def frame(t, payload=b""):
    return struct.pack(">HBB", len(payload), t, 0) + payload


def read_exact(s, n):
    b = b""
    while len(b) < n:
        k = s.recv(n - len(b))
        if not k:
            raise EOFError
        b += k
    return b


def upgrade(url, path, proto):
    u = urllib.parse.urlparse(url)
    s = socket.create_connection((u.hostname, u.port or 80), timeout=10)
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: {u.netloc}\r\nAuthorization: Bearer {cred['token']}\r\n"
               f"Connection: Upgrade\r\nUpgrade: {proto}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        k = s.recv(1)  # byte by byte: nothing after the head may be swallowed
        if not k:
            raise EOFError("closed during the upgrade")
        head += k
    status = int(head.split(b" ", 2)[1])
    if status != 101:
        s.close()
        raise RuntimeError(f"{path}: HTTP {status}: {head.decode(errors='replace')}")
    s.settimeout(None)
    return s


def pipe(a, b):
    try:
        while True:
            d = a.recv(1 << 18)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    try:
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def spare(region, args):
    try:
        s = upgrade(region, "/api/v2/workspaceagents/me/stream", "outpost-stream/1")
    except Exception as e:  # the region refused (limit) or went away: the control connection asks again
        log("spare failed:", e)
        return
    line = b""
    try:
        while not line.endswith(b"\n"):
            k = s.recv(1)
            if not k:
                s.close()
                return
            line += k
    except OSError:
        s.close()
        return
    threading.Thread(target=spare, args=(region, args), daemon=True).start()  # replace the one used
    cmd = line.decode().strip()
    if not cmd.startswith("OPEN "):
        s.close()
        return
    host, _, port = cmd[5:].rpartition(":")
    if int(port) == args.refuse_port:
        s.sendall(b"ERR 2 forbidden by the test agent\n")
        s.close()
        return
    try:
        t = socket.create_connection((host, int(port)), timeout=5)
    except OSError as e:
        s.sendall(f"ERR 1 {e.strerror or 'connection refused'}\n".encode())
        s.close()
        return
    t.settimeout(None)
    s.sendall(b"OK\n")
    th = threading.Thread(target=pipe, args=(t, s), daemon=True)
    th.start()
    pipe(s, t)
    th.join()
    s.close()
    t.close()


def control(region, args):
    while True:
        try:
            s = upgrade(region, "/api/v2/workspaceagents/me/control", "outpost-agent/1")
            s.sendall(frame(HELLO, struct.pack(">HH", 1, args.max_spares) + b"fake-agent"))
            while True:
                n, t, _ = struct.unpack(">HBB", read_exact(s, 4))
                p = read_exact(s, n)
                if t == WELCOME:
                    ver, count, hb = struct.unpack(">HHI", p[:8])
                    log("control up", region, p[8:].decode(), f"spares={count}")
                    for _ in range(0 if args.no_spares else count):
                        threading.Thread(target=spare, args=(region, args), daemon=True).start()
                elif t == PING:
                    if not args.no_pong:
                        s.sendall(frame(PONG, p))
                elif t == SPARES:
                    (count,) = struct.unpack(">H", p)
                    for _ in range(0 if args.no_spares else count):
                        threading.Thread(target=spare, args=(region, args), daemon=True).start()
                elif t == GOAWAY:
                    log("goaway", region, p[2:].decode())
                    break
        except Exception as e:
            log("control", region, "lost:", e)
        if args.no_pong:
            return
        time.sleep(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--primary", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--region", action="append", required=True)
    ap.add_argument("--max-spares", type=int, default=8)
    ap.add_argument("--refuse-port", type=int, default=-1)
    ap.add_argument("--no-spares", action="store_true")
    ap.add_argument("--no-pong", action="store_true")
    args = ap.parse_args()
    cred["token"] = fetch_credential(args.primary, args.token)
    for r in args.region:
        threading.Thread(target=control, args=(r, args), daemon=True).start()
    while True:
        time.sleep(120)  # a credential lives 5 minutes; the tests are shorter, new connections use this one
        try:
            cred["token"] = fetch_credential(args.primary, args.token)
        except Exception as e:
            log("credential refresh failed:", e)


if __name__ == "__main__":
    main()
