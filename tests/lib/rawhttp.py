#!/usr/bin/env python3
"""rawhttp.py PORT [--tls CAFILE]: send stdin verbatim, print everything received until the peer closes
or 3 s of silence. Used to send request shapes that curl refuses to produce."""
import socket
import ssl
import sys

port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port), timeout=5)
if len(sys.argv) > 3 and sys.argv[2] == "--tls":
    ctx = ssl.create_default_context(cafile=sys.argv[3])
    s = ctx.wrap_socket(s, server_hostname="localhost")
data = sys.stdin.buffer.read()
s.sendall(data)
s.settimeout(3)
out = b""
try:
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
except (socket.timeout, ConnectionResetError):
    pass
sys.stdout.buffer.write(out)
