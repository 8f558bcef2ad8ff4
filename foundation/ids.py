"""Random ids without a system call each: UUIDv4s and hex tokens cut from a buffer of os.urandom.

`uuid.uuid4()` and `secrets.token_hex()` each read the kernel's CSPRNG (one getrandom call); on
the scan path that was three calls a request. The same kernel randomness, read 4 KiB at a time,
is as unpredictable (os.urandom is what both use); only the number of calls changes. The buffer
is per process (a forked worker starts with none: `os.register_at_fork` empties it, so two
workers never share bytes) and used from one event loop thread.
"""

from __future__ import annotations

import os
import uuid

__all__ = ("random_hex", "random_uuid")

_CHUNK = 4096
_buffer = bytearray()


def _take(n: int) -> bytes:
    global _buffer
    if len(_buffer) < n:
        _buffer = bytearray(os.urandom(_CHUNK))
    out = bytes(_buffer[:n])
    del _buffer[:n]
    return out


def _forget() -> None:
    global _buffer
    _buffer = bytearray()


os.register_at_fork(after_in_child=_forget)


def random_uuid() -> uuid.UUID:
    """A version 4 UUID (122 random bits), as `uuid.uuid4()` makes it."""
    return uuid.UUID(bytes=_take(16), version=4)


def random_hex(nbytes: int) -> str:
    """`secrets.token_hex(nbytes)` from the buffer."""
    return _take(nbytes).hex()
