"""A real HTTP receiver for the relay's tests: an asyncio HTTP/1.1 server on a free port that
keeps every batch it accepted and can misbehave on purpose (fail, stall, refuse, go down)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import msgspec

__all__ = ("Receiver",)


class Receiver:
    """`behaviour(n)` decides the n-th request (1-based): an HTTP status, or ("sleep", s, status),
    or ("hold", event, status) (kept, answered once the asyncio.Event is set), or "drop" (close
    without answering)."""

    def __init__(self, behaviour: Callable[[int], object] | None = None) -> None:
        self.behaviour = behaviour or (lambda n: 200)
        self.requests = 0
        self.accepted: list[dict] = []  # batches answered 2xx, as received
        self.raw: list[tuple[bytes, dict[str, str]]] = []
        self.server: asyncio.base_events.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ingest"

    async def start(self, port: int = 0) -> Receiver:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", port or self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests += 1
                action = self.behaviour(self.requests)
                status = action
                if action == "drop":
                    writer.close()
                    return
                if isinstance(action, tuple):
                    _, seconds, status = action
                if 200 <= status < 300:  # kept before a slow answer: a relay that times out resends it
                    self.raw.append((body, headers))
                    self.accepted.append(msgspec.json.decode(body))
                if isinstance(action, tuple) and action[0] == "hold":
                    await seconds.wait()
                elif isinstance(action, tuple):
                    await asyncio.sleep(seconds)
                reply = b'{"ok":true}' if status < 300 else b'{"error":"no"}'
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(reply)}\r\n\r\n".encode()
                    + reply
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def events(self) -> list[dict]:
        """Every event in delivery order, duplicates included."""
        return [event for batch in self.accepted for event in batch["events"]]

    def deduped(self) -> dict[str, dict]:
        seen: dict[str, dict] = {}
        for event in self.events():
            seen.setdefault(event["id"], event)
        return seen

    def check_order(self) -> None:
        """After dedupe by id, every stream's events arrive numbered 1, 2, 3 … with no gap."""
        last: dict[str, int] = {}
        for event in self.deduped().values():
            expected = last.get(event["stream"], 0) + 1
            assert event["seq"] == expected, (event["stream"], event["seq"], expected)
            last[event["stream"]] = expected
