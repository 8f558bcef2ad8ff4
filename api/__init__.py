"""The HTTP layer: the only package that imports Litestar."""

from api.app import create_app

__all__ = ("create_app",)
