"""Entry point for the ASGI server's workers: settings from the environment, JSON logs."""

from __future__ import annotations

from litestar import Litestar

from api.app import create_app
from api.logs import configure_logging
from chongjun.config import load_settings

__all__ = ("app_factory",)


def app_factory() -> Litestar:
    settings = load_settings()
    configure_logging(settings.log_level)
    return create_app(settings)
