"""The `chongjun` command line."""

from __future__ import annotations

import asyncio
import sys

import click

from chongjun.config import load_settings

__all__ = ("main",)


@click.group()
def main() -> None:
    """chongjun: the 崇军魔方 backend."""


async def _migrate(settings) -> list:
    from chongjun.runtime import open_connection
    from migrations import apply_migrations

    conn = await open_connection(settings)
    try:
        return await apply_migrations(conn)
    finally:
        await conn.close()


async def _pending(settings) -> list:
    from chongjun.runtime import open_connection
    from migrations import pending_migrations

    conn = await open_connection(settings)
    try:
        return await pending_migrations(conn)
    finally:
        await conn.close()


@main.command()
def migrate() -> None:
    """Apply pending database migrations."""
    from chongjun.runtime import resolve_settings

    settings, _ = resolve_settings()
    applied = asyncio.run(_migrate(settings))
    for migration in applied:
        click.echo(f"applied {migration.version:04d}_{migration.name}")
    click.echo(f"{len(applied)} migration(s) applied; schema is current")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--seed/--no-seed", default=True, show_default=True, help="dev: seed demo data into an empty database")
def serve(host: str, port: int, workers: int, seed: bool) -> None:
    """Serve the API (embedded PostgreSQL and Redis unless DATABASE_URL and REDIS_URL are set)."""
    from granian import Granian
    from granian.constants import Interfaces

    from chongjun.runtime import resolve_settings

    settings, embedded = resolve_settings()
    # Before anything imports prometheus_client: its multiprocess mode is chosen at import.
    _prepare_metrics_dir(settings, workers)
    if settings.is_production:
        pending = asyncio.run(_pending(settings))
        if pending:
            names = ", ".join(f"{m.version:04d}_{m.name}" for m in pending)
            click.echo(f"refusing to start: pending migrations {names}; run `chongjun migrate` first", err=True)
            sys.exit(2)
    else:
        for migration in asyncio.run(_migrate(settings)):
            click.echo(f"applied {migration.version:04d}_{migration.name}", err=True)
        if seed:
            _seed_demo_if_empty(settings)
    click.echo(f"chongjun: serving on http://{host}:{port} with {workers} worker(s); OpenAPI at /schema", err=True)
    Granian(
        "api.asgi:app_factory",
        factory=True,
        address=host,
        port=port,
        workers=workers,
        interface=Interfaces.ASGI,
        log_access=False,
        backlog=2048,
    ).serve()
    if embedded is not None:
        embedded.stop()


@main.command("seed-demo")
def seed_demo() -> None:
    """Seed the demo catalog, venues, merchants, devices, people and accounts (idempotent)."""
    from chongjun.runtime import resolve_settings

    settings, embedded = resolve_settings()
    try:
        asyncio.run(_migrate(settings))
        click.echo(asyncio.run(_seed_demo(settings)))
    finally:
        if embedded is not None:
            embedded.stop()


async def _seed_demo(settings) -> str:
    from api.lifespan import connect_redis
    from chongjun.demo import seed_demo as seed
    from chongjun.runtime import open_connection

    conn = await open_connection(settings)
    redis = connect_redis(settings)
    try:
        return await seed(conn, redis, settings)
    finally:
        await redis.aclose()
        await conn.close()


def _prepare_metrics_dir(settings, workers: int) -> None:
    """With several workers, Prometheus metrics are pooled in files so /metrics shows them all."""
    import os
    import shutil

    if workers < 2 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    directory = settings.data_dir.resolve() / "metrics"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


def _seed_demo_if_empty(settings) -> None:
    """In dev the demo data is seeded once, on an empty database (when the seed exists)."""
    try:
        from chongjun.demo import seed_demo_if_empty
    except ImportError:
        return
    summary = asyncio.run(seed_demo_if_empty(settings))
    if summary:
        click.echo(summary, err=True)


if __name__ == "__main__":
    main()
