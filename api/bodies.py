"""The one way a JSON request body is read.

Litestar decodes a body to plain JSON values and then converts them to the route's `data` type
in lax mode, the mode it needs for query strings, where every value arrives as text: a body's
`"benefit_id": "null"` became None and `"companions": "2"` became 2. `BodyRequest.json` instead
decodes the bytes straight into the declared type, strictly (a string is never a number, a bool
or null), and turns every body that is not JSON (bad syntax, not UTF-8, nested too deeply) into
the one 400 `malformed-json`; a body of the wrong shape is the usual 400 `invalid-request` with
the field named. Routes that read raw bytes (`body: RawBody`: the benefit definitions, the
roster) decode them in their package; `api.errors` answers a body in an encoding the route cannot
read with a 400 as well.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException

from foundation.errors import MalformedJson

__all__ = ("BodyRequest", "strict_decoder")


@lru_cache(maxsize=256)
def strict_decoder(target: Any) -> msgspec.json.Decoder:
    """One strict decoder per body type; bounded by the number of body types the routes declare."""
    return msgspec.json.Decoder(target, strict=True)


_UNTYPED = msgspec.json.Decoder()


def _require_json(body: bytes, decoder: msgspec.json.Decoder = _UNTYPED) -> Any:
    try:
        return decoder.decode(body)
    except msgspec.ValidationError:  # a subclass of DecodeError: JSON, of the wrong shape
        raise
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise MalformedJson("The request body is not valid JSON (UTF-8)") from None
    except RecursionError:
        raise MalformedJson("The request body is nested too deeply") from None


def _field_errors(exc: msgspec.ValidationError) -> list[dict[str, str]]:
    """The error list Litestar itself gives a bad body: `{message, key, source: "body"}`."""
    message, _, where = str(exc).partition(" - at `")
    path = where.rstrip("`")
    return [{"message": message, "key": path[2:] if path.startswith("$.") else "data", "source": "body"}]


class BodyRequest(Request):
    """The app's request class (`Litestar(request_class=...)`): only `json()` differs."""

    async def json(self) -> Any:
        """The body decoded as the route's `data` annotation (any JSON value if it has none)."""
        field = self.route_handler.parsed_data_field
        body = await self.body() or b"null"
        try:
            return _require_json(body, strict_decoder(field.annotation if field is not None else Any))
        except msgspec.ValidationError as exc:
            error = exc
        # msgspec may meet a wrong type before bytes that are not JSON: the body must be JSON at
        # all before its shape is the question, so the answer never depends on where the fault is.
        _require_json(body)
        where = self.url.path + (f"?{self.url.query}" if self.url.query else "")
        raise ValidationException(detail=f"Validation failed for {self.method} {where}", extra=_field_errors(error))
