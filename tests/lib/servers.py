#!/usr/bin/env python3
"""Upstream servers and clients for integration tests (stdlib only; bounded; loopback only).

servers.py echo PORT                  TCP echo (asyncio, many connections)
servers.py halfclose PORT             reads until EOF, then replies "got N bytes" and closes
servers.py http PORT                  HTTP/1.1 keep-alive upstream: answers with a JSON echo of the request
                                      (method, path, headers, body sha256); /bytes/N returns N bytes;
                                      /die returns a head promising 100000 bytes, sends 100, closes;
                                      /slow/MS waits MS before answering; /ws upgrades (WebSocket echo)
servers.py healthreport PORT [ERR [WARN]]  a workspace proxy's /healthz-report: every GET answers 200
                                      {"errors": [ERR], "warnings": [WARN]} (empty lists when not given)
servers.py many PORT N                client: N concurrent connections through PORT, each echoes a unique line
servers.py ws PORT                    client: WebSocket handshake + masked frames, expects the echo
"""
import asyncio
import base64
import hashlib
import json
import os
import socket
import struct
import sys


async def echo(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        writer.write_eof()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def halfclose(reader, writer):
    n = 0
    while True:
        data = await reader.read(65536)
        if not data:
            break
        n += len(data)
    writer.write(b"got %d bytes\n" % n)
    await writer.drain()
    writer.close()


WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


async def read_head(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, version = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        if line:
            k, v = line.split(":", 1)
            headers.append((k.strip(), v.strip()))
    return method, path, version, headers


def hget(headers, name):
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


async def read_body(reader, headers):
    te = hget(headers, "transfer-encoding")
    if te and te.lower().endswith("chunked"):
        body = b""
        while True:
            line = await reader.readuntil(b"\r\n")
            size = int(line.split(b";")[0], 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return body
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    cl = hget(headers, "content-length")
    return await reader.readexactly(int(cl)) if cl else b""


async def http(reader, writer):
    try:
        while True:
            try:
                method, path, version, headers = await read_head(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            body = await read_body(reader, headers)
            if path == "/die":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100)
                await writer.drain()
                writer.transport.abort()
                return
            if path.startswith("/slow/"):
                await asyncio.sleep(int(path[6:]) / 1000)
            if path == "/ws":
                key = hget(headers, "sec-websocket-key").encode()
                acc = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
                writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             b"Sec-WebSocket-Accept: " + acc + b"\r\n\r\n")
                await writer.drain()
                while True:  # echo frames back unmasked
                    hdr = await reader.readexactly(2)
                    op, ln = hdr[0] & 0x0F, hdr[1] & 0x7F
                    if ln == 126:
                        ln = struct.unpack(">H", await reader.readexactly(2))[0]
                    elif ln == 127:
                        ln = struct.unpack(">Q", await reader.readexactly(8))[0]
                    mask = await reader.readexactly(4)
                    data = bytearray(await reader.readexactly(ln))
                    for i in range(ln):
                        data[i] ^= mask[i % 4]
                    if op == 8:
                        writer.write(b"\x88\x00")
                        await writer.drain()
                        writer.close()
                        return
                    out = bytes([0x80 | op]) + (bytes([ln]) if ln < 126 else
                                                 b"\x7e" + struct.pack(">H", ln) if ln < 65536 else
                                                 b"\x7f" + struct.pack(">Q", ln)) + bytes(data)
                    writer.write(out)
                    await writer.drain()
            if path.startswith("/bytes/"):
                n = int(path[7:])
                payload = (b"0123456789abcdef" * (n // 16 + 1))[:n]
                ctype = b"application/octet-stream"
            else:
                payload = json.dumps({"method": method, "path": path, "version": version,
                                      "headers": headers, "body_len": len(body),
                                      "body_sha256": hashlib.sha256(body).hexdigest()}).encode()
                ctype = b"application/json"
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: " + ctype + b"\r\nContent-Length: %d\r\n\r\n"
                         % len(payload))
            if method != "HEAD":
                writer.write(payload)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def serve(handler, port):
    srv = await asyncio.start_server(handler, "127.0.0.1", port, backlog=4096, limit=1 << 20)
    async with srv:
        await srv.serve_forever()


async def many(port, n):
    async def one(i):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        return r, w
    conns = await asyncio.wait_for(asyncio.gather(*[one(i) for i in range(n)]), 60)
    # all n are open at the same time; now each sends a unique line and expects it back
    for i, (r, w) in enumerate(conns):
        w.write(b"line %d\n" % i)
    async def check(i, r, w):
        got = await asyncio.wait_for(r.readline(), 60)
        assert got == b"line %d\n" % i, (i, got)
        w.close()
    await asyncio.gather(*[check(i, r, w) for i, (r, w) in enumerate(conns)])
    print("%d concurrent connections echoed" % n)


def ws_client(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16))
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        assert chunk, "closed during handshake"
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    want = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
    assert b"Sec-WebSocket-Accept: " + want in head, head
    for size in (5, 125, 126, 1000, 70000):
        msg = os.urandom(size)
        mask = os.urandom(4)
        hdr = bytes([0x82]) + (bytes([0x80 | size]) if size < 126 else
                               bytes([0x80 | 126]) + struct.pack(">H", size) if size < 65536 else
                               bytes([0x80 | 127]) + struct.pack(">Q", size))
        s.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(msg)))
        need = 2 + (0 if size < 126 else 2 if size < 65536 else 8) + size
        while len(rest) < need:
            chunk = s.recv(65536)
            assert chunk, "closed mid-frame"
            rest += chunk
        assert rest[need - size:need] == msg, "echo mismatch at size %d" % size
        rest = rest[need:]
    s.sendall(b"\x88\x80" + os.urandom(4))
    print("websocket echo ok")


def healthreport(port, errors, warnings):
    import http.server

    body = json.dumps({"errors": errors, "warnings": warnings}).encode()

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()


def main():
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "healthreport":
        healthreport(port, sys.argv[3:4], sys.argv[4:5])
    elif kind == "many":
        asyncio.run(many(port, int(sys.argv[3])))
    elif kind == "ws":
        ws_client(port)
    else:
        asyncio.run(serve({"echo": echo, "halfclose": halfclose, "http": http}[kind], port))


if __name__ == "__main__":
    main()
