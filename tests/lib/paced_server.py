#!/usr/bin/env python3
"""tests/lib/paced_server.py MODE PORT — servers of known speed for testing the benchmark's load generator.

  bulk PORT RATE   speaks bench/loadgen.c's bulk protocol (24-byte header "OPBENCH1" + le64 up + le64
                   down; the client's up bytes are read; down bytes are sent at RATE bytes/s, paced in
                   64 KiB steps; then the 8-byte ack "OPBENCH!")
  http PORT MS     answers every HTTP/1.1 request with a 100-byte body MS milliseconds after it arrived
                   (keep-alive, one thread per connection)
"""
import socket
import struct
import sys
import threading
import time


def bulk(conn, rate):
    hdr = b""
    while len(hdr) < 24:
        d = conn.recv(24 - len(hdr))
        if not d:
            return
        hdr += d
    if hdr[:8] != b"OPBENCH1":
        return
    up, down = struct.unpack("<QQ", hdr[8:24])

    def reader():
        left = up
        while left > 0:
            d = conn.recv(min(left, 1 << 16))
            if not d:
                return
            left -= len(d)

    r = threading.Thread(target=reader, daemon=True)
    r.start()
    t0, sent, step = time.monotonic(), 0, 1 << 16
    chunk = bytes(step)
    while sent < down:
        n = min(step, down - sent)
        conn.sendall(chunk[:n])
        sent += n
        delay = t0 + sent / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    r.join()
    conn.sendall(b"OPBENCH!")


def http(conn, ms):
    buf = b""
    body = b"x" * 100
    while True:
        while b"\r\n\r\n" not in buf:
            d = conn.recv(65536)
            if not d:
                return
            buf += d
        buf = buf[buf.index(b"\r\n\r\n") + 4:]
        time.sleep(ms / 1000.0)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + body)


def main():
    mode, port, arg = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(128)
    fn = bulk if mode == "bulk" else http
    while True:
        c, _ = s.accept()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def run(c=c):
            try:
                fn(c, arg)
            except OSError:
                pass
            finally:
                c.close()

        threading.Thread(target=run, daemon=True).start()


if __name__ == "__main__":
    main()
