"""A cap on request bodies, applied before FastAPI parses them: a body over the limit is refused with 413
as soon as it is known to be too large (by its Content-Length, or while it streams in), never held whole."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bbrange.shared.http_errors import error_response


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"").decode("latin-1")
        if declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send, f"request body of {declared} bytes exceeds the limit of {self.limit}")
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(scope, receive, send, f"request body exceeds the limit of {self.limit} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, message: str) -> None:
        response = error_response(413, "body_too_large", message + " (BBRANGE_ATTACK_MAX_REQUEST_BYTES)")
        await response(scope, receive, send)
