"""base64url without padding (RFC 4648 §5, as JOSE, SD-JWT and signed notes spell it): the one copy.

`unb64url` is lenient by default (any padding-less spelling the standard library decodes), which
is what reading our own output needs. `strict=True` is for input from outside that is signed or
hashed as text: only the one canonical spelling of the bytes decodes (no `+`, `/`, `=`, white
space or unused low bits set), so two spellings of the same bytes never pass as different.
Both raise ValueError for text that is not base64url.
"""

from __future__ import annotations

import base64

__all__ = ("b64url", "unb64url")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str, *, strict: bool = False) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if strict and b64url(data) != text:
        raise ValueError("not canonical base64url")
    return data
