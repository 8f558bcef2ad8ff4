"""Where sealed batches go: the data center over HTTP (`CHONGJUN_EXCHANGE_URL`), or, for
development, rotating NDJSON files (`CHONGJUN_EXCHANGE_DIR`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Protocol

import httpx
import msgspec

__all__ = ("FileSink", "HttpSink", "Outcome", "Sink")


class Outcome(msgspec.Struct, frozen=True):
    kind: Literal["delivered", "retry", "dead"]
    status: int | None = None
    error: str | None = None


class Sink(Protocol):
    async def send(self, *, seq: int, epoch: int, body: bytes, seal: str) -> Outcome: ...

    async def close(self) -> None: ...


RETRYABLE_4XX = frozenset({408, 429})


class HttpSink:
    """POST the body as it was sealed; the seal and the batch's order in headers.

    2xx → delivered; 408, 429, 5xx, a timeout or no connection → retry; any other status →
    dead letter (the receiver says the batch itself is invalid, so sending it again cannot help).
    """

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    async def send(self, *, seq: int, epoch: int, body: bytes, seal: str) -> Outcome:
        headers = {
            "Content-Type": "application/json",
            "X-Chongjun-Seal": seal,
            "X-Chongjun-Batch-Seq": str(seq),
            "X-Chongjun-Relay-Epoch": str(epoch),
        }
        try:
            response = await self._client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return Outcome("retry", None, type(exc).__name__)
        status = response.status_code
        if 200 <= status < 300:
            return Outcome("delivered", status)
        if status in RETRYABLE_4XX or status >= 500 or status < 400:
            return Outcome("retry", status, f"HTTP {status}")
        return Outcome("dead", status, f"HTTP {status}: {response.text[:200]}")

    async def close(self) -> None:
        await self._client.aclose()


class _FileBatch(msgspec.Struct):
    batch_id: str
    events: list[msgspec.Raw]  # not decoded: written out as they are in the sealed body


_decode_batch = msgspec.json.Decoder(_FileBatch).decode


class FileSink:
    """Append every event of a batch as one NDJSON line to `events-NNNNNN.ndjson`, starting a new
    file past `max_bytes`; `batches.ndjson` gets one line per batch with its seal. Flushed and
    fsynced before the batch counts as delivered."""

    def __init__(self, directory: Path, *, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.directory.mkdir(parents=True, exist_ok=True)

    def _current(self) -> Path:
        files = sorted(self.directory.glob("events-*.ndjson"))
        if files and files[-1].stat().st_size < self.max_bytes:
            return files[-1]
        number = int(files[-1].stem.split("-")[1]) + 1 if files else 1
        return self.directory / f"events-{number:06d}.ndjson"

    async def send(self, *, seq: int, epoch: int, body: bytes, seal: str) -> Outcome:
        try:
            batch = _decode_batch(body)
            lines = b"".join(bytes(event) + b"\n" for event in batch.events)  # each event's bytes as sealed
            for path, data in (
                (self._current(), lines),
                (self.directory / "batches.ndjson",
                 msgspec.json.encode({"batch_id": batch.batch_id, "sequence": seq, "events": len(batch.events),
                                      "seal": seal}) + b"\n"),
            ):
                with open(path, "ab") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
        except OSError as exc:
            return Outcome("retry", None, type(exc).__name__)
        return Outcome("delivered", None)

    async def close(self) -> None:
        return None
