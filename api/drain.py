"""Read what is left of a request body the app refused, so the client gets the answer.

When a handler refuses a body without reading it (413 on `Content-Length`, a 401 before the
body was needed), the ASGI server closes a connection that still has unread bytes, the kernel
answers with a TCP RST, and a client still sending can lose the response: over real HTTP about
one 413 in a hundred arrived as "server disconnected". Draining the rest (bounded in bytes and
time) lets the response reach the client every time.
"""

from __future__ import annotations

import asyncio

from litestar.types import Message, Receive, Scope, Send

from api.wrappers import HttpWrapper

__all__ = ("DrainBodyMiddleware",)

MAX_DRAIN_BYTES = 16 * 1024 * 1024
"""Beyond this a client is sending far too much: let the server close on it."""
DRAIN_SECONDS = 5.0


class DrainBodyMiddleware(HttpWrapper):
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = {"done": False, "read": 0}

        async def tracking_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["read"] += len(message.get("body", b""))
                state["done"] = not message.get("more_body", False)
            elif message["type"] == "http.disconnect":
                state["done"] = True
            return message

        try:
            await self.app(scope, tracking_receive, send)
        finally:
            if not state["done"]:
                await self._drain(scope, tracking_receive, state)

    @staticmethod
    async def _drain(scope: Scope, receive: Receive, state: dict) -> None:
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > MAX_DRAIN_BYTES:
            return
        try:
            async with asyncio.timeout(DRAIN_SECONDS):
                while not state["done"] and state["read"] <= MAX_DRAIN_BYTES:
                    await receive()
        except TimeoutError:
            pass
