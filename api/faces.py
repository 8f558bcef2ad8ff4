"""The two faces served by the app itself: the console (`/console`) and the gate scanner (`/scan`).

Both are static pages (HTML, CSS and small JavaScript modules in `api/static/faces/`, no build
step; third-party code, jsQR, in `api/static/faces/vendor/`, served at the same flat paths) that
talk to the JSON API of this same process with bearer tokens. No cookie carries a
session, so there is nothing a cross-site form could ride on (no CSRF surface); the console keeps
its tokens in memory and `sessionStorage` (gone with the tab), the scanner keeps only the device
credential in `localStorage` (its setup payload: device id, secret, venue). Every page and asset is
sent with a policy that allows scripts and styles from this origin only: no inline script, no
`unsafe-inline`, no outside request.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated
from importlib import resources

from litestar import Controller, Response, get
from litestar.exceptions import NotFoundException
from litestar.params import PathParameter

__all__ = ("FacesController", "PAGE_POLICY")

PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; media-src 'self' blob: mediastream:; font-src 'self'; manifest-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'"
)
"""The Content-Security-Policy of every face page and asset (no `unsafe-inline` anywhere)."""

_HEADERS = {
    "Content-Security-Policy": PAGE_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}

_TYPES = {  # Litestar adds "; charset=utf-8" to every text/* type itself (said twice, it said it twice)
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".txt": "text/plain",
}


@cache
def _asset(name: str) -> tuple[bytes, str]:
    """A file of `api/static/faces/` or its `vendor/` (flat names only), read once per process."""
    if "/" in name or "\\" in name or name.startswith("."):
        raise NotFoundException()
    suffix = name[name.rfind("."):] if "." in name else ""
    media = _TYPES.get(suffix)
    if media is None:
        raise NotFoundException()
    faces = resources.files("api").joinpath("static", "faces")
    for node in (faces.joinpath(name), faces.joinpath("vendor", name)):
        if node.is_file():
            return node.read_bytes(), media
    raise NotFoundException()


def _send(name: str, *, cache_seconds: int) -> Response[bytes]:
    body, media = _asset(name)
    headers = dict(_HEADERS)
    headers["Cache-Control"] = f"public, max-age={cache_seconds}" if cache_seconds else "no-cache"
    return Response(body, media_type=media, headers=headers)


class FacesController(Controller):
    """Pages for people: the bureau and merchant console and the H5 gate scanner."""

    include_in_schema = False
    opt = {"exclude_from_auth": True}

    @get("/scan", sync_to_thread=False)
    def scan_page(self) -> Response[bytes]:
        return _send("scan.html", cache_seconds=0)

    @get("/scan-sw.js", sync_to_thread=False)
    def scan_worker(self) -> Response[bytes]:
        # The scanner's service worker, at the root so that its scope can be /scan: it keeps the
        # page and its assets so that a gate reloaded without the network still opens (offline mode).
        return _send("scan-sw.js", cache_seconds=0)

    @get(["/console", "/console/{page:str}"], sync_to_thread=False)
    def console_page(self) -> Response[bytes]:
        # One page; the script shows the section the path names (/console/benefits, ...).
        return _send("console.html", cache_seconds=0)

    @get("/faces/{name:str}", sync_to_thread=False)
    def asset(
        self, name: Annotated[str, PathParameter(max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    ) -> Response[bytes]:
        # Short cache: the files change with the package and are not fingerprinted.
        return _send(name, cache_seconds=300)
