"""The two struct bases every data shape inherits, so the options are chosen once.

- `Input` is what a caller sends (a request body, a CLI argument set). `forbid_unknown_fields`
  turns a misspelt or smuggled field into a 400/422 instead of silently dropping it (mass
  assignment); `frozen` because a decoded input is a fact about the request, not a scratch pad.
- `Record` is what the process hands around and answers. `frozen` so a value shared between
  coroutines (a cached venue, a verified principal) cannot be edited in place by one of them.

Neither sets `kw_only`: in msgspec that option covers only the fields declared in the class that
sets it, never a subclass's, so on a base it would promise what it does not do. A shape that wants
keyword-only construction says so itself (`class Foo(Record, kw_only=True)`).
"""

from __future__ import annotations

import msgspec

__all__ = ("Input", "Record")


class Input(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A request body or command: unknown fields refused, frozen once decoded."""


class Record(msgspec.Struct, frozen=True):
    """A value handed around or answered: frozen, so nothing edits a shared one."""
