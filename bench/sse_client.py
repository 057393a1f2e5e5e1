#!/usr/bin/env python3
"""SSE client for bench/streams: per-event delivery latency, and many idle streams.

Usage:
  sse_client.py latency URL KIND [options]    KIND: first | post | get
  sse_client.py idle URL --n N [options]

latency: opens streams to URL (http://host:port/path) and, for every event carrying `"t"` (the
upstream's CLOCK_MONOTONIC send time in ns, see sse_upstream.py), records receive time − t, the
receive time being read as soon as the bytes are handed to this process (asyncio `Protocol`,
before any parsing). Prints one JSON line: count, errors, p50/p90/p99/p999/max in µs; with
--raw FILE, appends every latency (ns) to FILE.
  first: --requests R `tools/call` POSTs (one event + result each), --concurrency C at a time, a
         new connection each: the first event of a fresh stream (headers then event);
  post:  --streams S concurrent `tools/call` POSTs, each answered by --events N events every
         --interval-us µs (starts staggered over one interval);
  get:   --streams S concurrent GET streams (server→client), N events each, same pacing.

idle: opens --n GET streams, --concurrency at a time, each done when the upstream's `: ready`
comment arrives through it; writes {"open": k, "failed": f, "seconds": s} to --ready-file, holds
them open until --release-file exists (or --hold-timeout seconds), then closes them all.

Auth: --keys FILE --key-header NAME (one key per line, spread over streams), or
--header 'Name: value' (repeatable) for a static header.
"""

import argparse
import asyncio
import json
import os
import re
import sys
import time
from urllib.parse import urlsplit

T_RE = re.compile(rb'"t":(\d+)')


class Stream(asyncio.Protocol):
    """One HTTP/1.1 request whose response is an SSE stream (chunked or until close)."""

    def __init__(self, request: bytes, done: asyncio.Future, on_event=None, ready_marker=None):
        self.request = request
        self.done = done
        self.on_event = on_event
        self.ready_marker = ready_marker
        self.buf = b""
        self.head = True
        self.chunked = False
        self.sse = b""
        self.transport = None
        self.events = 0

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data):
        now = time.monotonic_ns()
        self.buf += data
        if self.head:
            i = self.buf.find(b"\r\n\r\n")
            if i < 0:
                return
            head, self.buf = self.buf[:i].decode("latin-1"), self.buf[i + 4:]
            self.head = False
            status = head.split(" ", 2)[1]
            if status != "200":
                self._finish(RuntimeError(f"HTTP {status}: {head.splitlines()[0]}"))
                return
            self.chunked = "transfer-encoding: chunked" in head.lower()
        if self.chunked:
            while True:
                j = self.buf.find(b"\r\n")
                if j < 0:
                    break
                size = int(self.buf[:j].split(b";")[0], 16)
                if size == 0:
                    self._events(now, b"")
                    self._finish(None)
                    return
                if len(self.buf) < j + 2 + size + 2:
                    break
                self.sse += self.buf[j + 2:j + 2 + size]
                self.buf = self.buf[j + 2 + size + 2:]
        else:
            self.sse += self.buf
            self.buf = b""
        self._events(now, b"")

    def _events(self, now, _):
        while True:
            k = self.sse.find(b"\n\n")
            if k < 0:
                return
            ev, self.sse = self.sse[:k], self.sse[k + 2:]
            self.events += 1
            if self.ready_marker is not None and ev.startswith(self.ready_marker):
                self._finish(None)
                continue
            if self.on_event is not None:
                m = T_RE.search(ev)
                if m:
                    self.on_event(now - int(m.group(1)), self.events)

    def _finish(self, err):
        if not self.done.done():
            if err is None:
                self.done.set_result(self.events)
            else:
                self.done.set_exception(err)

    def connection_lost(self, exc):
        self._finish(exc or ConnectionError("connection closed before the stream ended"))


def build_request(method, url, headers, body=b""):
    u = urlsplit(url)
    lines = [f"{method} {u.path or '/'} HTTP/1.1", f"Host: {u.netloc}",
             "Accept: application/json, text/event-stream"]
    lines += headers
    if method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def call_body(i, events, interval_us):
    return json.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {
        "name": "echo", "arguments": {"events": events, "interval_us": interval_us}}}).encode()


def pct(sorted_vals, p):
    if not sorted_vals:
        return None
    return sorted_vals[min(len(sorted_vals) - 1, int(p / 100 * len(sorted_vals)))]


class Auth:
    def __init__(self, a):
        self.static = list(a.header or [])
        self.keys = []
        if a.keys:
            with open(a.keys) as f:
                self.keys = [k.strip() for k in f if k.strip()]
        self.key_header = a.key_header

    def headers(self, i):
        h = list(self.static)
        if self.keys:
            h.append(f"{self.key_header}: {self.keys[i % len(self.keys)]}")
        return h


async def open_stream(loop, host, port, request, on_event=None, ready_marker=None):
    done = loop.create_future()
    transport, _ = await loop.create_connection(
        lambda: Stream(request, done, on_event, ready_marker), host, port)
    return transport, done


async def latency(a):
    loop = asyncio.get_running_loop()
    u = urlsplit(a.url)
    auth = Auth(a)
    lat = []
    errors = []

    def on_event(ns, index):
        if a.kind != "first" or index == 1:
            lat.append(ns)

    async def one(i, request, delay):
        if delay:
            await asyncio.sleep(delay)
        try:
            tr, done = await open_stream(loop, u.hostname, u.port, request, on_event)
            try:
                await asyncio.wait_for(done, a.timeout)
            finally:
                tr.close()
        except Exception as e:  # noqa: BLE001 — counted and reported
            errors.append(repr(e))

    t0 = time.monotonic()
    if a.kind == "first":
        sem = asyncio.Semaphore(a.concurrency)

        async def limited(i):
            async with sem:
                await one(i, build_request("POST", a.url, auth.headers(i), call_body(i, 1, 0)), 0)
        await asyncio.gather(*(limited(i) for i in range(a.requests)))
    else:
        stagger = a.interval_us / 1e6 / max(1, a.streams)
        reqs = []
        for i in range(a.streams):
            if a.kind == "post":
                r = build_request("POST", a.url, auth.headers(i),
                                  call_body(i, a.events, a.interval_us))
            else:
                r = build_request("GET", a.url, auth.headers(i) + [
                    f"User-Agent: sse-bench/ticks {a.events} {a.interval_us}"])
            reqs.append(one(i, r, i * stagger))
        await asyncio.gather(*reqs)
    secs = time.monotonic() - t0
    if a.raw:
        with open(a.raw, "a") as f:
            f.write("".join(f"{v}\n" for v in lat))
    s = sorted(lat)
    us = lambda v: None if v is None else round(v / 1000, 1)  # noqa: E731
    print(json.dumps({"kind": a.kind, "events": len(lat), "errors": len(errors),
                      "first_error": errors[0] if errors else None, "seconds": round(secs, 2),
                      "p50_us": us(pct(s, 50)), "p90_us": us(pct(s, 90)),
                      "p99_us": us(pct(s, 99)), "p999_us": us(pct(s, 99.9)),
                      "max_us": us(s[-1] if s else None)}))
    return 1 if errors else 0


async def idle(a):
    loop = asyncio.get_running_loop()
    u = urlsplit(a.url)
    auth = Auth(a)
    opened, failed, errs = [], 0, []
    sem = asyncio.Semaphore(a.concurrency)

    async def one(i):
        nonlocal failed
        async with sem:
            req = build_request("GET", a.url, auth.headers(i) + ["User-Agent: sse-bench/idle"])
            try:
                tr, done = await asyncio.wait_for(
                    open_stream(loop, u.hostname, u.port, req, None, b": ready"), a.timeout)
                opened.append(tr)
                await asyncio.wait_for(asyncio.shield(done), a.timeout)
            except Exception as e:  # noqa: BLE001
                failed += 1
                if len(errs) < 3:
                    errs.append(repr(e))

    t0 = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(a.n)))
    secs = time.monotonic() - t0
    alive = sum(1 for t in opened if not t.is_closing())
    with open(a.ready_file + ".tmp", "w") as f:
        json.dump({"open": alive, "failed": failed, "seconds": round(secs, 2), "errors": errs}, f)
    os.rename(a.ready_file + ".tmp", a.ready_file)
    deadline = time.monotonic() + a.hold_timeout
    while not os.path.exists(a.release_file) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    still = sum(1 for t in opened if not t.is_closing())
    for t in opened:
        t.close()
    await asyncio.sleep(0.5)
    print(json.dumps({"open": alive, "failed": failed, "open_seconds": round(secs, 2),
                      "still_open_at_release": still, "errors": errs}))
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["latency", "idle"])
    p.add_argument("url")
    p.add_argument("kind", nargs="?", default="post", choices=["first", "post", "get"])
    p.add_argument("--streams", type=int, default=20)
    p.add_argument("--events", type=int, default=250)
    p.add_argument("--interval-us", type=int, default=4000)
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--timeout", type=float, default=30)
    p.add_argument("--hold-timeout", type=float, default=120)
    p.add_argument("--ready-file")
    p.add_argument("--release-file")
    p.add_argument("--raw")
    p.add_argument("--keys")
    p.add_argument("--key-header", default="X-API-Key")
    p.add_argument("--header", action="append")
    a = p.parse_args()
    sys.exit(asyncio.run(latency(a) if a.mode == "latency" else idle(a)))


if __name__ == "__main__":
    main()
