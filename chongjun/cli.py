"""The `chongjun` command line."""

from __future__ import annotations

import asyncio
import os
import sys

import click

__all__ = ("main",)


@click.group()
def main() -> None:
    """chongjun: the 崇军魔方 backend."""


async def _migrate(settings) -> list:
    from foundation.connections import open_connection
    from migrations import apply_migrations

    conn = await open_connection(settings)
    try:
        return await apply_migrations(conn)
    finally:
        await conn.close()


async def _pending(settings) -> list:
    from foundation.connections import open_connection
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
    from foundation.connections import connect_redis
    from chongjun.demo import seed_demo as seed
    from foundation.connections import open_connection

    conn = await open_connection(settings)
    redis = connect_redis(settings)
    try:
        return await seed(conn, redis, settings)
    finally:
        await redis.aclose()
        await conn.close()


@main.command()
@click.option("--idempotency-hours", default=48, show_default=True, type=click.IntRange(24, 24 * 365),
              help="keep stored Idempotency-Key answers this long (at least 24 h)")
@click.option("--refresh-days", default=7, show_default=True, type=click.IntRange(1, 3650),
              help="keep refresh tokens this long after they expired")
def prune(idempotency_hours: int, refresh_days: int) -> None:
    """Delete what only ever grows and is no longer needed; run it daily (cron or a timer).

    Stored Idempotency-Key answers older than the window and long-expired refresh tokens. The
    ledger, refused scans, consumed codes and the audit log are never pruned.
    """
    from datetime import timedelta

    from benefits.redemption import prune_idempotency_keys
    from chongjun.runtime import resolve_settings
    from identity import prune_refresh_tokens

    settings, embedded = resolve_settings()

    async def run(conn) -> tuple[int, int]:
        keys = await prune_idempotency_keys(conn, older_than=timedelta(hours=idempotency_hours))
        tokens = await prune_refresh_tokens(conn, expired_for=timedelta(days=refresh_days))
        return keys, tokens

    try:
        keys, tokens = asyncio.run(_with_connection(settings, run))
    finally:
        if embedded is not None:
            embedded.stop()
    click.echo(f"pruned {keys} Idempotency-Key answer(s) older than {idempotency_hours} h "
               f"and {tokens} refresh token(s) expired for over {refresh_days} day(s)")


@main.group()
def bench() -> None:
    """Benchmarks: `import` and `matching` in scratch databases, `scans` over HTTP against a server."""


@bench.command("matching")
@click.option("--iterations", default=2000, show_default=True, type=click.IntRange(10, 1_000_000))
def bench_matching(iterations: int) -> None:
    """免申即享 matching latency: one person against 50 active benefits (p50/p95/p99)."""
    import os

    from chongjun.bench_matching import run_matching_bench
    from chongjun.runtime import resolve_settings

    settings, embedded = resolve_settings()
    try:
        results = asyncio.run(run_matching_bench(settings, iterations=iterations, echo=click.echo))
    finally:
        if embedded is not None:
            embedded.stop()
    click.echo(f"matching, one person x 50 active benefits, {iterations} requests per case (ms):")
    for case, (p50, p95, p99) in results.items():
        click.echo(f"  {case:<9} p50 {p50:6.2f}  p95 {p95:6.2f}  p99 {p99:6.2f}")
    click.echo(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    click.echo(f"reproduce: ./dev bench matching --iterations {iterations}")


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


async def _with_connection(settings, work):
    from foundation.connections import open_connection

    conn = await open_connection(settings)
    try:
        return await work(conn)
    finally:
        await conn.close()


@main.command("create-admin")
@click.option("--username", required=True)
@click.option("--role", required=True, type=click.Choice(["city", "district", "auditor"]))
@click.option("--district", default=None, help="GB/T 2260 district code; required for --role district")
@click.option("--totp/--no-totp", default=False, show_default=True, help="require a TOTP code at login")
def create_admin(username: str, role: str, district: str | None, totp: bool) -> None:
    """Create an admin account; the password is read from stdin (one line, never an argument)."""
    import msgspec

    from chongjun.runtime import resolve_settings
    from identity import AccountExists, InvalidAccount, NewAccount, SecretStore, create_account

    password = sys.stdin.readline().rstrip("\r\n")
    try:
        new = msgspec.convert(
            {"kind": "admin", "username": username, "password": password, "role": role, "district": district,
             "with_totp": totp},
            NewAccount,
        )
    except msgspec.ValidationError as exc:
        raise click.UsageError(f"invalid account: {exc}") from None
    settings, _ = resolve_settings()
    asyncio.run(_migrate(settings))
    secrets = SecretStore.from_settings(settings)
    try:
        account, uri = asyncio.run(_with_connection(settings, lambda conn: create_account(conn, new, secrets=secrets)))
    except (InvalidAccount, AccountExists) as exc:
        raise click.ClickException(exc.detail) from None
    click.echo(f"created {account.kind} {account.username} ({account.role}) id={account.id}")
    if uri:
        click.echo(f"TOTP (add to an authenticator app, shown once): {uri}")


@main.group()
def keys() -> None:
    """Our signing keys: list, rotate, remove."""


@keys.command("rotate")
@click.option("--alg", default="EdDSA", show_default=True, type=click.Choice(["EdDSA", "ES256"]))
def keys_rotate(alg: str) -> None:
    """next → active, active → retired, and a new next key. Workers pick it up within 30 s."""
    from chongjun.runtime import resolve_settings
    from identity import SecretStore, rotate_keys

    settings, _ = resolve_settings()
    asyncio.run(_migrate(settings))
    secrets = SecretStore.from_settings(settings)
    result = asyncio.run(_with_connection(settings, lambda conn: rotate_keys(conn, secrets, alg=alg)))
    for state in ("active", "next", "retired"):
        if state in result:
            click.echo(f"{state}: {result[state]}")


@keys.command("list")
def keys_list() -> None:
    """Every key with its state and dates."""
    from chongjun.runtime import resolve_settings
    from identity import list_keys

    settings, _ = resolve_settings()
    for row in asyncio.run(_with_connection(settings, list_keys)):
        click.echo(f"{row['kid']}  {row['alg']:<5}  {row['state']:<7}  created {row['created_at']:%Y-%m-%d %H:%M}")


@keys.command("remove")
@click.argument("kid")
def keys_remove(kid: str) -> None:
    """Withdraw a retired key: everything it signed stops verifying within 30 s.

    A kid is base64url and may begin with "-": write `chongjun keys remove -- KID` for those.
    """
    from chongjun.runtime import resolve_settings
    from identity import remove_key

    settings, _ = resolve_settings()
    if not asyncio.run(_with_connection(settings, lambda conn: remove_key(conn, kid))):
        raise click.ClickException(f"{kid} is not a retired key")
    click.echo(f"removed {kid}")


class _Phases:
    """A rich progress bar per import phase (validate, seal, write), fed by the importer's callback."""

    LABELS = {"validate": "validating lines", "seal": "sealing PII", "write": "writing to PostgreSQL"}

    def __init__(self, progress) -> None:
        self.progress = progress
        self.tasks: dict[str, int] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase not in self.tasks:
            self.tasks[phase] = self.progress.add_task(self.LABELS.get(phase, phase), total=total)
        self.progress.update(self.tasks[phase], completed=done, total=max(total, done))


def _progress_bar():
    """On stderr, so stdout carries only results (a pipe gets no bar characters)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(stderr=True), transient=False,
    )


def _print_report(report, console) -> None:
    from rich.table import Table

    if report.errors:
        table = Table(title="invalid lines (ID numbers masked)")
        for column in ("line", "field", "ID number", "problem"):
            table.add_column(column)
        for error in report.errors:
            table.add_row(str(error.line), error.field, error.id_masked or "", error.message)
        console.print(table)
        if report.errors_truncated:
            console.print(f"... and more: {report.rejected} invalid line(s) in all")
    console.print(
        f"lines {report.lines}, valid {report.valid}, rejected {report.rejected}; "
        f"inserted {report.inserted}, updated {report.updated}, unchanged {report.unchanged}"
        + (f" in {report.seconds:.2f} s" if report.imported else "; nothing was imported")
    )


@main.command("import-roster")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True))
@click.option("--valid-only", is_flag=True, help="import the valid lines and report the others (default: all or nothing)")
def import_roster_command(file: str, valid_only: bool) -> None:
    """Import the bureau's roster CSV (an idempotent upsert keyed by the blind index of the ID number)."""
    from pathlib import Path

    from rich.console import Console

    from chongjun.runtime import resolve_settings
    from foundation.connections import open_connection
    from identity.people import RosterEncoding, RosterRejected, import_roster, pii_vault

    settings, _ = resolve_settings()
    console = Console(stderr=True, soft_wrap=True)
    data = Path(file).read_bytes()

    async def run():
        vault = pii_vault(settings)
        conn = await open_connection(settings)
        try:
            with _progress_bar() as bar:
                return await import_roster(conn, vault, data, valid_only=valid_only, progress=_Phases(bar))
        finally:
            await conn.close()

    try:
        report = asyncio.run(run())
    except RosterRejected as exc:
        _print_report(exc.report, console)
        sys.exit(1)
    except RosterEncoding as exc:
        console.print(f"[red]{exc.detail}[/red]")
        sys.exit(1)
    _print_report(report, console)


@bench.command("scans")
@click.option("--url", default=None, help="a running server; without it the bench starts `serve --workers N` itself")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="for the started server")
@click.option("--scans", default=20_000, show_default=True, type=click.IntRange(100, 1_000_000))
@click.option("--warmup", default=2_000, show_default=True, type=click.IntRange(0, 100_000))
@click.option("--concurrency", default=32, show_default=True, type=click.IntRange(1, 1024))
@click.option("--venues", default=4, show_default=True, type=click.IntRange(1, 256))
@click.option("--devices", default=1, show_default=True, type=click.IntRange(1, 64), help="per venue")
@click.option("--admin-user", default="demo-admin", show_default=True)
@click.option("--admin-password", default="demo-admin-password", show_default=True)
@click.option("--seed", default=2026, show_default=True, type=int, help="of the synthetic roster")
def bench_scans(url, workers, scans, warmup, concurrency, venues, devices, admin_user, admin_password, seed) -> None:
    """Accepted scans/s and p50/p95/p99 of POST /v1/scans over real HTTP, one fresh 随申码 per scan."""
    import platform

    from chongjun.bench_scans import run_scan_bench
    from foundation.settings import load_settings

    settings = load_settings()
    if settings.is_production:
        click.echo("error: the scan bench mints simulated 随申码 and is refused in production", err=True)
        sys.exit(2)
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is in requirements.lock
        runner = asyncio.run
    result = runner(
        run_scan_bench(
            settings, url=url, workers=workers, scans=scans, warmup=warmup, concurrency=concurrency,
            venues=venues, devices=devices, admin=(admin_user, admin_password), seed=seed, echo=click.echo,
        )
    )
    click.echo(
        f"scans: {result.accepted} accepted of {result.scans} in {result.seconds:.2f} s = "
        f"{result.accepted_per_second:.0f} accepted scans/s at {result.concurrency} connections, "
        f"{result.venues} venues x {result.devices} device(s)"
    )
    click.echo(
        f"latency ms: p50 {result.p50_ms:.2f}  p95 {result.p95_ms:.2f}  p99 {result.p99_ms:.2f}  max {result.max_ms:.2f}"
    )
    click.echo(f"errors (anything but accepted): {result.errors}  outcomes: {result.outcomes}")
    if result.worker_peak_rss_mb:
        rss = ", ".join(f"pid {pid}: {mb:.0f} MB" for pid, mb in result.worker_peak_rss_mb.items())
        click.echo(f"peak resident memory of the server's processes: {rss}")
    if result.server_cpu_ms_per_scan is not None:
        click.echo(f"server CPU (its Python processes, not PostgreSQL or Redis): {result.server_cpu_ms_per_scan:.2f} ms per scan")
    click.echo(f"setup (not timed): {result.setup_seconds:.1f} s")
    click.echo(
        f"machine: {os.cpu_count()} CPU(s), Python {platform.python_version()}, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    target = f"--url {url} " if url else f"--workers {workers} "
    click.echo(
        f"reproduce: ./dev bench scans {target}--scans {scans} --warmup {warmup} "
        f"--concurrency {concurrency} --venues {venues} --devices {devices} --seed {seed}"
    )


@bench.command("import")
@click.option("--rows", default=100_000, show_default=True, type=click.IntRange(1, 5_000_000))
@click.option("--seed", default=2026, show_default=True, type=int)
def bench_import_command(rows: int, seed: int) -> None:
    """Import a synthetic roster of ROWS people into a scratch database; print rows/s."""
    import platform

    from chongjun.bench import bench_import
    from chongjun.runtime import resolve_settings

    settings, _ = resolve_settings()
    with _progress_bar() as bar:
        result = asyncio.run(bench_import(settings, rows=rows, seed=seed, progress=_Phases(bar)))
    click.echo(
        f"roster import: {result.rows} rows in {result.import_seconds:.2f} s = {result.rows_per_second} rows/s "
        f"(inserted {result.inserted}); re-import (idempotent, {result.unchanged_on_reimport} unchanged) "
        f"{result.reimport_seconds:.2f} s; generating the CSV took {result.generate_seconds:.2f} s"
    )
    click.echo(f"machine: {os.cpu_count()} CPU(s), Python {platform.python_version()}")
    click.echo(f"reproduce: chongjun bench import --rows {rows} --seed {seed}")


@main.group()
def suishen() -> None:
    """The simulated city platform (dev only)."""


@suishen.command("issue")
@click.option("--id-number", "id_number", required=True, help="the citizen's resident ID number (GB 11643)")
@click.option("--count", default=1, show_default=True, type=click.IntRange(1, 1000))
@click.option("--ttl", default=60, show_default=True, type=click.IntRange(1, 3600), help="seconds each code lives")
def suishen_issue(id_number: str, count: int, ttl: int) -> None:
    """Print COUNT fresh 随申码 for a citizen, one a line (refused when CHONGJUN_ENV=production)."""
    from foundation.settings import load_settings
    from identity.city import DevCityIssuer, DevIssuerRefused
    from identity.pii import InvalidIdNumber

    if load_settings().is_production:
        click.echo(f"error: {DevIssuerRefused()}", err=True)
        sys.exit(2)
    from chongjun.runtime import resolve_settings
    from foundation.connections import open_connection
    from identity.people import masked_name_of, pii_vault

    settings, _ = resolve_settings()
    vault = pii_vault(settings)
    try:
        id_hmac = vault.index_of(id_number)
    except InvalidIdNumber as exc:
        click.echo(f"error: {exc.detail}", err=True)  # never echo the number itself
        sys.exit(2)

    async def lookup() -> str | None:
        conn = await open_connection(settings)
        try:
            return await masked_name_of(conn, id_hmac)
        finally:
            await conn.close()

    name_masked = asyncio.run(lookup())
    if name_masked is None:
        click.echo("note: this ID number is not in the roster; logging in with these codes answers 403", err=True)
    issuer = DevCityIssuer(settings, vault)
    for _ in range(count):
        click.echo(issuer.issue(id_number, name_masked=name_masked, ttl_seconds=ttl))


if __name__ == "__main__":
    main()
