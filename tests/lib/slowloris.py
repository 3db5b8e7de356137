#!/usr/bin/env python3
"""tests/lib/slowloris.py HOST:PORT CONNS SECONDS PROBE_PATH APP_PATH — slow clients against a server, and a
probe that measures what everybody else sees meanwhile (stdlib only).

Opens CONNS connections, each sending the start of a request head ("GET / HTTP/1.1\\r\\nHost: x\\r\\n") and then
one more header line per connection every second, never the blank line that ends the head. Meanwhile a
probe sends GET PROBE_PATH (a new connection each time) and GET APP_PATH (one keep-alive connection, the
signed token cookie followed) 10 times a second each, and times every answer. After SECONDS (or once
every slow connection is closed) prints one JSON object: slow connections opened / closed by the server /
answered 408 / still open, the seconds after which they were closed (min, median, max), and the probe's
count, failures, p50, p99 and max latency in ms.
"""
import http.client
import json
import select
import socket
import sys
import threading
import time


def probe(host, port, path, app_path, stop, out):
    lat, fails = [], 0
    app = http.client.HTTPConnection(host, port, timeout=5)
    cookie = ""
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            c = http.client.HTTPConnection(host, port, timeout=5)
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            c.close()
            if r.status != 200:
                fails += 1
            else:
                lat.append(time.monotonic() - t0)
        except (OSError, http.client.HTTPException):
            fails += 1
        if app_path:
            t0 = time.monotonic()
            try:
                for _ in range(3):
                    app.request("GET", app_path, headers={"Cookie": cookie})
                    r = app.getresponse()
                    r.read()
                    sc = r.getheader("Set-Cookie", "")
                    if r.status == 307 and sc.startswith("coder_signed_app_token="):
                        cookie = sc.split(";", 1)[0]
                        continue
                    break
                if r.status != 200:
                    fails += 1
                else:
                    lat.append(time.monotonic() - t0)
            except (OSError, http.client.HTTPException):
                fails += 1
                app.close()
        time.sleep(0.1)
    out["probe"] = (lat, fails)


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    port, conns, secs = int(port), int(sys.argv[2]), float(sys.argv[3])
    path, app_path = sys.argv[4], sys.argv[5] if len(sys.argv) > 5 else ""
    stop, out = threading.Event(), {}
    th = threading.Thread(target=probe, args=(host, port, path, app_path, stop, out))
    socks, t_open = {}, {}
    for i in range(conns):
        s = socket.create_connection((host, port), timeout=5)
        s.setblocking(False)
        s.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
        socks[s.fileno()] = s
        t_open[s.fileno()] = time.monotonic()
    th.start()
    closed_after, got408, failed_open = [], 0, 0
    t_start = time.monotonic()
    next_tick = t_start + 1.0
    n = 0
    while socks and time.monotonic() - t_start < secs:
        r, _, _ = select.select(list(socks), [], [], 0.2) if len(socks) < 1000 else (poll_ready(socks), [], [])
        for fd in r:
            s = socks[fd]
            try:
                data = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data.startswith(b"HTTP/1.1 408"):
                got408 += 1
            # Whatever the server does (an answer, a FIN, a reset), a slow connection ends with it.
            closed_after.append(time.monotonic() - t_open[fd])
            s.close()
            del socks[fd]
        if time.monotonic() >= next_tick:
            n += 1
            for fd, s in list(socks.items()):
                try:
                    s.send(b"X-Slow-%d: y\r\n" % n)
                except OSError:
                    pass
            next_tick += 1.0
    stop.set()
    th.join()
    for s in socks.values():
        s.close()
    lat, fails = out.get("probe", ([], 0))
    lat.sort()
    closed_after.sort()
    pct = lambda a, q: round(a[min(len(a) - 1, int(q * len(a)))] * 1000, 1) if a else None
    print(json.dumps({
        "slow_opened": conns, "slow_closed_by_server": len(closed_after), "slow_408": got408,
        "slow_still_open": len(socks),
        "closed_after_s": [round(closed_after[0], 2), round(closed_after[len(closed_after) // 2], 2),
                           round(closed_after[-1], 2)] if closed_after else None,
        "probe_requests": len(lat) + fails, "probe_failures": fails, "probe_p50_ms": pct(lat, 0.5),
        "probe_p99_ms": pct(lat, 0.99), "probe_max_ms": pct(lat, 1.0)}))


def poll_ready(socks):
    p = select.poll()
    for fd in socks:
        p.register(fd, select.POLLIN)
    return [fd for fd, _ in p.poll(200)]


if __name__ == "__main__":
    main()
