"""A loopback HTTP endpoint that only reads each request's body and answers statuscode 0.

It is the receiver of the floor: the least work a server can do with a Batch body (read it
off the socket), so a benchmark that posts to it measures the sender. Keep-alive, HTTP/1.1,
Content-Length bodies only. Usage: ``python -m bench.sink PORT``.
"""

from __future__ import annotations

import asyncio
import sys

_ANSWER = b'{"statuscode":0,"errors":[],"responses":[]}'
_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(_ANSWER)).encode() + b"\r\n\r\n" + _ANSWER
)


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            remaining = length
            while remaining:
                data = await reader.read(min(remaining, 1 << 20))
                if not data:
                    return
                remaining -= len(data)
            writer.write(_RESPONSE)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _main(port: int) -> None:
    server = await asyncio.start_server(_handle, "127.0.0.1", port, limit=1 << 16)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(_main(int(sys.argv[1])))
