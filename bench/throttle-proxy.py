"""A TCP proxy on 127.0.0.1:LISTEN to 127.0.0.1:UPSTREAM passing client->server bytes at RATE bytes/s in total (one
token bucket for all connections, like an uplink); server->client bytes pass freely. For bench/push-pipeline.sh.

    python3 bench/throttle-proxy.py LISTEN UPSTREAM RATE
"""

import asyncio
import sys
import time

LISTEN, UPSTREAM, RATE = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])


class Bucket:
    def __init__(self):
        self.free_at = time.monotonic()
        self.lock = asyncio.Lock()

    async def take(self, n):
        async with self.lock:
            now = time.monotonic()
            self.free_at = max(self.free_at, now) + n / RATE
            wait = self.free_at - now
        if wait > 0:
            await asyncio.sleep(wait)


BUCKET = Bucket()


async def pipe(reader, writer, throttle):
    try:
        while data := await reader.read(256 * 1024):
            if throttle:
                await BUCKET.take(len(data))
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def handle(client_reader, client_writer):
    try:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", UPSTREAM)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(
        pipe(client_reader, upstream_writer, True), pipe(upstream_reader, client_writer, False)
    )


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", LISTEN)
    async with server:
        await server.serve_forever()


asyncio.run(main())
