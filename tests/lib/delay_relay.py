#!/usr/bin/env python3
"""tests/lib/delay_relay.py LISTEN_HOST LISTEN_PORT TARGET_PORT DELAY_FILE — a TCP relay on a loopback address
(LISTEN_HOST, e.g. 127.0.0.2, or several: "127.0.0.1,127.0.0.2") to 127.0.0.1:TARGET_PORT that holds every
chunk for a while in each direction, as a far-away region would: the one-way delay in milliseconds is read
from DELAY_FILE for each chunk (so a test can change it while connections are open; a missing or empty file
means 0). Bytes keep their order. A connection whose target refuses is closed at once; when either side
closes, the other is closed after the data already read has been delivered."""
import asyncio
import sys
import time

HOST, LISTEN, TARGET, DELAY_FILE = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]


def delay_s():
    try:
        with open(DELAY_FILE) as f:
            return max(0.0, float(f.read().strip() or 0) / 1000.0)
    except (OSError, ValueError):
        return 0.0


async def pump(reader, writer):
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def deliver():
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is None:
                break
            writer.write(data)
            await writer.drain()

    sender = asyncio.ensure_future(deliver())
    last_due = 0.0
    try:
        while True:
            data = await reader.read(65536)
            due = max(loop.time() + delay_s(), last_due)
            last_due = due
            await queue.put((due, data or None))
            if not data:
                break
        await sender
    except (ConnectionError, OSError):
        sender.cancel()
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def handle(creader, cwriter):
    try:
        ureader, uwriter = await asyncio.open_connection("127.0.0.1", TARGET)
    except OSError:
        cwriter.close()
        return
    await asyncio.gather(pump(creader, uwriter), pump(ureader, cwriter), return_exceptions=True)


async def main():
    server = await asyncio.start_server(handle, HOST.split(","), LISTEN)
    print(f"relay {HOST}:{LISTEN} -> {TARGET} (delay from {DELAY_FILE}) at {time.time():.0f}", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
