"""Pure ASGI middleware that refuses request bodies larger than a limit with a 413."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import problem_response


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
