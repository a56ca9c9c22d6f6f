"""An HTTP proxy on 127.0.0.1 in front of a real API that misbehaves on cue, for the
client's fault tests: it answers an error after forwarding a request (the server acted,
the answer is lost), refuses one without forwarding it, or cuts a streamed answer after
some events or lines. Everything else passes through unchanged, and it records every
request it saw."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from ponder.localproc import free_port

# hop-by-hop headers, and those aiohttp sets itself
_SKIP_HEADERS = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "host",
    "upgrade",
    "te",
    "trailer",
}


@dataclass
class Fault:
    """What to do to the next ``times`` requests matching ``method`` and ``path`` (a
    regular expression matched against the whole path)."""

    method: str
    path: str
    # "fail_after_forwarding": forward, discard the answer, answer ``status``
    # "refuse": answer ``status`` with ``headers`` without forwarding
    # "cut_after": forward, pass ``count`` messages of the answer on, then cut the
    #              connection (messages: SSE events, or lines for other bodies)
    action: str
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    count: int = 0
    times: int = 1

    def matches(self, method: str, path: str) -> bool:
        if self.times <= 0 or method != self.method:
            return False
        return re.fullmatch(self.path, path) is not None


@dataclass(frozen=True)
class Seen:
    """A request the proxy received, and what it did with it."""

    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    fault: str | None
    upstream_status: int | None
    upstream_headers: dict[str, str]  # names in lower case


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.seen: list[Seen] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def requests(self, method: str, path: str) -> list[Seen]:
        """The requests seen for ``method`` and a path matching ``path``."""
        return [s for s in self.seen if s.method == method and re.fullmatch(path, s.path)]

    def _take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.times -= 1
                    return fault
        return None

    # ---- the server, on its own event loop in a thread

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(
            auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None)
        )
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _SKIP_HEADERS}
        fault = self._take(request.method, request.path)
        action = fault.action if fault is not None else None

        def record(upstream: aiohttp.ClientResponse | None) -> None:
            self.seen.append(
                Seen(
                    method=request.method,
                    path=request.path,
                    headers={k.lower(): v for k, v in request.headers.items()},
                    fault=action,
                    upstream_status=None if upstream is None else upstream.status,
                    upstream_headers={}
                    if upstream is None
                    else {k.lower(): v for k, v in upstream.headers.items()},
                )
            )

        if fault is not None and fault.action == "refuse":
            record(None)
            return web.json_response(
                {"title": "refused by the test proxy", "status": fault.status, "detail": "retry"},
                status=fault.status,
                headers=fault.headers,
            )
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=body,
            allow_redirects=False,
        ) as upstream:
            if fault is not None and fault.action == "fail_after_forwarding":
                await upstream.read()  # the server has acted; its answer is lost
                record(upstream)
                return web.json_response(
                    {"title": "lost by the test proxy", "status": fault.status, "detail": "retry"},
                    status=fault.status,
                    headers=fault.headers,
                )
            record(upstream)
            response = web.StreamResponse(
                status=upstream.status,
                headers={
                    k: v for k, v in upstream.headers.items() if k.lower() not in _SKIP_HEADERS
                },
            )
            await response.prepare(request)
            events = "text/event-stream" in upstream.headers.get("content-type", "")
            passed = 0
            async for line in upstream.content:
                await response.write(line)
                if fault is None or fault.action != "cut_after":
                    continue
                # an SSE event ends with a blank line; other bodies count lines
                if (line in (b"\n", b"\r\n")) if events else bool(line.strip()):
                    passed += 1
                if passed >= fault.count:
                    assert request.transport is not None
                    request.transport.abort()  # the connection breaks mid-answer
                    return response
            await response.write_eof()
            return response


@contextmanager
def fault_proxy(upstream: str) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
