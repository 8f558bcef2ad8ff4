"""The base of the ASGI wrappers `api.app` puts around the whole application.

They sit outside Litestar's router (so 404/405 answers get a request id and their body drained
too), which is why they are plain ASGI callables and not Litestar middleware.
"""

from __future__ import annotations

from litestar.types import ASGIApp, Receive, Scope, Send

__all__ = ("HttpWrapper",)


class HttpWrapper:
    """Wraps `app` for HTTP requests; lifespan and websocket scopes pass straight through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError
