"""Pure ASGI middleware: request bodies over a size limit get a 413, JSON bodies nested
too deep a 422, and an unexpected error a 500 that keeps the connection open."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import problem_response
from ponder.jsonlimits import MAX_DOCUMENT_DEPTH, nested_too_deep, too_deep_message


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a streamed body passes the limit. It is an
    HTTPException so FastAPI's body reader re-raises it instead of turning it into a 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, _too_large(limit), headers={"Connection": "close"})


def _too_large(limit: int) -> str:
    return (
        f"the request body is larger than the {limit}-byte limit; "
        "send less data (for many problems, submit several jobs or a batch; split a "
        "batch or dataset upload that is too large into several)"
    )


class BodySizeLimitMiddleware:
    """Refuse bodies over ``max_body_bytes`` (``max_upload_bytes`` for a POST to one of
    ``upload_paths``): at once when ``Content-Length`` says so, otherwise (chunked
    uploads) as soon as the bytes received pass the limit, without ever buffering more
    than the limit."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        *,
        max_upload_bytes: int | None = None,
        upload_paths: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes or max_body_bytes
        self.upload_paths = frozenset(p.rstrip("/") for p in upload_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = scope.get("method") == "POST" and scope["path"].rstrip("/") in self.upload_paths
        limit = self.max_upload_bytes if upload else self.max_body_bytes
        declared = _content_length(scope)
        if declared == -1:
            response = problem_response(
                400, "the Content-Length header is not a non-negative integer"
            )
            await response(scope, receive, send)
            return
        if declared is not None and declared > limit:
            response = problem_response(413, _too_large(limit), headers={"Connection": "close"})
            await response(scope, receive, send)
            return

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge as exc:
            # normally the app's exception handlers answer; this covers code that reads
            # the body outside a route (another middleware, a mounted app)
            if started:
                raise
            response = problem_response(413, str(exc.detail), headers={"Connection": "close"})
            await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    """The declared body length, None if absent, -1 if malformed."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else -1
    return None


# bodies up to this size are scanned for nesting on the event loop (microseconds)
_SCAN_IN_LOOP_BYTES = 64 * 1024


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            media_type: str = value.decode("latin-1").split(";", 1)[0].strip().lower()
            return media_type == "application/json" or media_type.endswith("+json")
    return False


class JsonDepthLimitMiddleware:
    """Refuse a JSON request body (``application/json`` or ``*/*+json``) that nests more
    than ``max_depth`` objects and arrays with a 422, before any parser sees it (Python's
    parser would fail with a RecursionError, pydantic's serializer beyond 255 levels).
    Checked on the raw bytes (:func:`ponder.jsonlimits.nested_too_deep`), then the body is
    passed on unchanged. JSON Lines uploads are checked line by line where they are
    parsed (:func:`ponder.jsonl.parse_jsonl`), so one deep line only refuses its item."""

    def __init__(self, app: ASGIApp, max_depth: int = MAX_DOCUMENT_DEPTH) -> None:
        self.app = app
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay(message, receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if len(body) <= _SCAN_IN_LOOP_BYTES:
            too_deep = nested_too_deep(body, self.max_depth)
        else:  # a large batch: scan it off the event loop
            too_deep = await anyio.to_thread.run_sync(nested_too_deep, body, self.max_depth)
        if too_deep:
            response = problem_response(
                422,
                f"request body: {too_deep_message(self.max_depth)}",
                errors=[{"loc": ["body"], "msg": "nested too deep", "type": "too_deep"}],
            )
            await response(scope, receive, send)
            return
        whole: Message = {"type": "http.request", "body": body, "more_body": False}
        await self.app(scope, _replay(whole, receive), send)


def _replay(first: Message, receive: Receive) -> Receive:
    """A ``receive`` that gives ``first`` (the body already read, or a disconnect), then
    whatever ``receive`` gives."""
    pending = [first]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed


UnexpectedHandler = Callable[[Request, Exception], Awaitable[Response]]


class UnexpectedErrorMiddleware:
    """Answer an exception no handler took with ``handler``'s response (a 500 problem
    document) *without* re-raising it. Starlette's own last-resort handler re-raises
    after answering, and uvicorn then closes the connection: a client's keep-alive
    connection would not survive one server error. An error after the response has
    started cannot be answered; it is re-raised (the connection must close)."""

    def __init__(self, app: ASGIApp, handler: UnexpectedHandler) -> None:
        self.app = app
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise
            response = await self.handler(Request(scope), exc)
            await response(scope, receive, send)
