"""Entry point for the ASGI server's workers: settings from the environment, JSON logs."""

from __future__ import annotations

from typing import Any

from granian.utils.proxies import wrap_asgi_with_proxy_headers

from api.app import create_app
from api.logs import configure_logging
from foundation.settings import load_settings

__all__ = ("app_factory",)


def app_factory() -> Any:
    """The Litestar app; behind our reverse proxies, wrapped to read the client from their headers."""
    settings = load_settings()
    configure_logging(settings.log_level)
    app = create_app(settings)
    if settings.trusted_proxies:
        # Granian's own wrapper: only a peer in the list is believed, and the client is the
        # right-most X-Forwarded-For entry that is not one of our proxies (clients can prepend).
        return wrap_asgi_with_proxy_headers(app, trusted_hosts=list(settings.trusted_proxies))
    return app
