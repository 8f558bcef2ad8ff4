"""CSV downloads, as the venues and the bureau open them: in Excel."""

from __future__ import annotations

import csv
import io
from typing import Any

import msgspec

__all__ = ("CSV", "csv_document")

CSV = "text/csv"  # Litestar adds "; charset=utf-8" to every text/* type itself


def _cell(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        value = msgspec.json.encode(value).decode()
    # Spreadsheet formula injection: a cell starting with = + - @ is text, not a formula.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def csv_document(rows: list[dict[str, Any]], columns: list[str]) -> bytes:
    """`rows` as CSV with a header of `columns` (other keys left out), every cell safe from formula
    injection, with a BOM so that Excel opens UTF-8 Chinese text correctly."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return ("\ufeff" + buffer.getvalue()).encode()
