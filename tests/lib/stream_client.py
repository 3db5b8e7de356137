#!/usr/bin/env python3
"""Client side of agent streams for integration tests (stdlib only).

stream_client.py agent-id PRIMARY AGENT_TOKEN                      print the agent's id (manifest)
stream_client.py token PRIMARY SESSION AGENT PORT REGION           print a connect token
stream_client.py status REGION_URL AGENT PORT TOKEN|- [query]      print "<status> <body>" of the upgrade
stream_client.py bulk REGION_URL AGENT PORT TOKEN MIB              MIB MiB each way through an echo, SHA-256
stream_client.py many REGION_URL AGENT PORT TOKEN N                N concurrent streams, each echoes a line
stream_client.py setup REGION_URL AGENT PORT TOKEN N               N sequential streams: set-up p50/p99
stream_client.py survive REGION_URL AGENT PORT TOKEN FLAG          echo, print "ready", wait for file FLAG
                                                                   to exist, echo again on the same stream
"""
import concurrent.futures
import hashlib
import json
import os
import socket
import sys
import threading
import time
import urllib.parse
import urllib.request


def http_json(url, method, headers, body=None):
    req = urllib.request.Request(url, method=method, headers=headers,
                                 data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def open_stream(region, agent, port, token, query=""):
    """Returns (status, body or b"", socket) after the response head."""
    u = urllib.parse.urlparse(region)
    s = socket.create_connection((u.hostname, u.port or 80), timeout=30)
    hdr = f"Coder-Connect-Token: {token}\r\n" if token != "-" else ""
    s.sendall((f"GET /api/v2/workspaceagents/{agent}/tcp?port={port}{query} HTTP/1.1\r\nHost: {u.netloc}\r\n"
               f"{hdr}Connection: Upgrade\r\nUpgrade: outpost-tcp/1\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        k = s.recv(1)
        if not k:
            raise EOFError("closed before a response head")
        head += k
    status = int(head.split(b" ", 2)[1])
    body = b""
    if status != 101:
        s.settimeout(5)
        try:
            while True:
                k = s.recv(65536)
                if not k:
                    break
                body += k
        except OSError:
            pass
    return status, body, s


def echo_line(s, msg):
    s.sendall(msg)
    got = b""
    while len(got) < len(msg):
        k = s.recv(65536)
        if not k:
            raise EOFError("stream closed early")
        got += k
    return got == msg


def main():
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == "agent-id":
        print(http_json(a[0] + "/api/v2/workspaceagents/me/manifest", "GET", {"Coder-Session-Token": a[1]})["agent_id"])
    elif cmd == "token":
        r = http_json(a[0] + f"/api/v2/workspaceagents/{a[2]}/connect-token", "POST",
                      {"Coder-Session-Token": a[1], "Content-Type": "application/json"},
                      {"port": int(a[3]), "region": a[4]})
        print(r["signed_token"])
    elif cmd == "status":
        st, body, s = open_stream(a[0], a[1], a[2], a[3], a[4] if len(a) > 4 else "")
        s.close()
        print(st, body.split(b"\r\n\r\n", 1)[-1].decode(errors="replace") if body else "")
    elif cmd == "bulk":
        n = int(a[4]) << 20
        st, _, s = open_stream(a[0], a[1], a[2], a[3])
        if st != 101:
            sys.exit(f"status {st}")
        s.settimeout(60)
        data = os.urandom(1 << 20)
        sent = hashlib.sha256()
        got = hashlib.sha256()
        total = [0]

        def reader():
            while True:
                k = s.recv(1 << 20)
                if not k:
                    break
                got.update(k)
                total[0] += len(k)

        t0 = time.monotonic()
        th = threading.Thread(target=reader)
        th.start()
        for i in range(n >> 20):
            chunk = data[i % 7:] + data[:i % 7]  # every MiB differs
            sent.update(chunk)
            s.sendall(chunk)
        s.shutdown(socket.SHUT_WR)
        th.join()
        dt = time.monotonic() - t0
        ok = sent.hexdigest() == got.hexdigest() and total[0] == n
        print(f"{'ok' if ok else 'MISMATCH'} {total[0]} bytes sha256 {got.hexdigest()[:16]} "
              f"{n / dt / 1e6:.0f} MB/s each way")
        sys.exit(0 if ok else 1)
    elif cmd == "many":
        n = int(a[4])
        socks = []

        def one(i):
            st, _, s = open_stream(a[0], a[1], a[2], a[3])
            if st != 101:
                return f"status {st}"
            socks.append(s)
            return "ok" if echo_line(s, f"stream {i} says hello\n".encode()) else "bad echo"

        with concurrent.futures.ThreadPoolExecutor(max_workers=n) as ex:
            res = list(ex.map(one, range(n)))
        bad = [r for r in res if r != "ok"]
        # all n are open at the same time now: check each once more
        again = sum(1 for s in socks if echo_line(s, b"again\n"))
        for s in socks:
            s.close()
        print(f"{n - len(bad)}/{n} streams ok, {again} echoed again while all were open", bad[:3])
        sys.exit(0 if not bad and again == n else 1)
    elif cmd == "setup":
        n = int(a[4])
        times = []
        for i in range(n):
            t0 = time.monotonic()
            st, _, s = open_stream(a[0], a[1], a[2], a[3])
            t1 = time.monotonic()
            if st != 101 or not echo_line(s, b"x"):
                sys.exit(f"stream {i}: status {st}")
            s.close()
            times.append((t1 - t0) * 1000)
        times.sort()
        print(f"{n} sequential streams: set-up p50 {times[n // 2]:.2f} ms, p99 {times[int(n * 0.99) - 1]:.2f} ms,"
              f" max {times[-1]:.2f} ms")
    elif cmd == "survive":
        st, _, s = open_stream(a[0], a[1], a[2], a[3])
        if st != 101 or not echo_line(s, b"before\n"):
            sys.exit(f"status {st}")
        print("ready", flush=True)
        for _ in range(300):
            if os.path.exists(a[4]):
                break
            time.sleep(0.05)
        ok = echo_line(s, os.urandom(1 << 20))
        print("ok" if ok else "bad echo after the flag")
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
