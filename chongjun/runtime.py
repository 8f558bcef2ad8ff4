"""Resolve where PostgreSQL and Redis are: configured URLs, or the embedded servers."""

from __future__ import annotations

import os

import msgspec

from chongjun.embedded import EmbeddedServices, start_embedded
from foundation.connections import SERVICE_ROLE, dsn_with_user
from foundation.settings import Settings, load_settings

__all__ = ("resolve_settings",)


def resolve_settings(settings: Settings | None = None) -> tuple[Settings, EmbeddedServices | None]:
    """Fill missing URLs by starting the embedded servers; export them so workers inherit them.

    The embedded PostgreSQL gets both roles: its superuser owns the schema (migrations) and the
    service connects as `chongjun_app` (migration 0004 creates it). Configured URLs are taken as
    given: DATABASE_URL for the service, DATABASE_OWNER_URL (default: the same) for migrations.
    """
    settings = settings or load_settings()
    if settings.database_url and settings.redis_url:
        return settings, None
    embedded = start_embedded(
        settings.data_dir, need_postgres=not settings.database_url, need_redis=not settings.redis_url
    )
    if settings.database_url:
        settings = msgspec.structs.replace(settings, redis_url=embedded.redis_url)
    else:
        settings = msgspec.structs.replace(
            settings,
            database_url=dsn_with_user(embedded.database_url, SERVICE_ROLE),
            database_owner_url=embedded.database_url,
            redis_url=settings.redis_url or embedded.redis_url,
        )
        os.environ["DATABASE_OWNER_URL"] = settings.database_owner_url
    os.environ["DATABASE_URL"] = settings.database_url
    os.environ["REDIS_URL"] = settings.redis_url
    return settings, embedded
