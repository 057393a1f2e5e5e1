#!/usr/bin/env python3
"""A small MCP Streamable-HTTP upstream that answers with Server-Sent Events, for bench/streams.

Usage: sse_upstream.py PORT TOKEN

Plain asyncio on raw sockets (HTTP/1.1, keep-alive, chunked responses, TCP_NODELAY), so each
event leaves in its own `send` the moment it is written. Every request must carry
`Authorization: Bearer TOKEN` (401 otherwise), so every stream proves the gateway injected the
credential.

- `POST` a JSON-RPC `tools/call` → `200 text/event-stream`: `arguments.events` (default 1)
  `notifications/progress` events, one every `arguments.interval_us` (default 0) µs, then the
  `result` event; the response ends after it. Each event's data carries `"t"`: this process's
  `CLOCK_MONOTONIC` in nanoseconds, read just before the event's bytes are handed to the kernel
  — the client (same machine, same clock) subtracts it from its receive time.
  Any other JSON-RPC request gets an empty `result` as `application/json`.
- `GET` (the server→client stream) → `200 text/event-stream`. The `User-Agent` header (which
  the gateway forwards) chooses what it carries:
  - `sse-bench/ticks N INTERVAL_US`: N stamped `notifications/message` events, then the end;
  - anything else: one comment (`: ready`) so the client knows the stream is open end to end,
    then nothing until the client goes away (the idle streams).
"""

import asyncio
import json
import socket
import sys
import time

PORT = int(sys.argv[1])
TOKEN = sys.argv[2].encode()
open_streams = 0


def chunk(b: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(b), b)


SSE_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")


def event(obj) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


async def pace(n, interval_us, make, writer):
    """Write n events, the i-th at start + i * interval, each stamped just before it leaves."""
    start = time.monotonic_ns()
    for i in range(n):
        due = start + i * interval_us * 1000
        now = time.monotonic_ns()
        if due > now:
            await asyncio.sleep((due - now) / 1e9)
        writer.write(chunk(event(make(i, time.monotonic_ns()))))
        if writer.transport.get_write_buffer_size() > 1 << 20:
            await writer.drain()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
    global open_streams
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, _path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            body = b""
            if "content-length" in headers:
                body = await reader.readexactly(int(headers["content-length"]))
            if headers.get("authorization", "").encode() != b"Bearer " + TOKEN:
                writer.write(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
                continue
            if method == "GET":
                ua = headers.get("user-agent", "")
                writer.write(SSE_HEAD)
                if ua.startswith("sse-bench/ticks "):
                    _, n, interval = ua.split()
                    await pace(int(n), int(interval), lambda i, t: {
                        "jsonrpc": "2.0", "method": "notifications/message",
                        "params": {"level": "info", "data": {"seq": i}, "t": t}}, writer)
                    writer.write(b"0\r\n\r\n")
                    await writer.drain()
                    continue
                writer.write(chunk(b": ready\n\n"))
                open_streams += 1
                try:
                    await reader.read()  # idle until the client (the gateway) hangs up
                finally:
                    open_streams -= 1
                return
            msg = json.loads(body or b"{}")
            if msg.get("method") == "tools/call":
                args = (msg.get("params") or {}).get("arguments") or {}
                n, interval = int(args.get("events", 1)), int(args.get("interval_us", 0))
                writer.write(SSE_HEAD)
                await pace(n, interval, lambda i, t: {
                    "jsonrpc": "2.0", "method": "notifications/progress",
                    "params": {"progressToken": msg.get("id"), "progress": i, "t": t}}, writer)
                writer.write(chunk(event({
                    "jsonrpc": "2.0", "id": msg.get("id"),
                    "result": {"content": [{"type": "text", "text": "done"}], "isError": False,
                               "t": time.monotonic_ns()}})))
                writer.write(b"0\r\n\r\n")
            else:
                out = json.dumps({"jsonrpc": "2.0", "id": msg.get("id"), "result": {}}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(out), out))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", PORT, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
