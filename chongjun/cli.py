"""The `chongjun` command line.

Every command that reaches PostgreSQL goes through `_servers()` (the configured servers, or the
embedded ones started for the command and stopped after) and `_Servers.run` (one connection,
opened with `foundation.connections.open_connection`, closed when the work is done).
"""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import socket
import statistics
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TypeVar

import asyncpg
import click
import msgspec
import uvloop
from granian import Granian
from granian.constants import Interfaces
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import exchange
from benefits.redemption import explain_sealed, prune_idempotency_keys
from chongjun import demo
from chongjun.bench.exchange import run_exchange_bench
from chongjun.bench.matching import run_matching_bench
from chongjun.bench.partitions import run_partition_migration_bench
from chongjun.bench.roster import bench_import
from chongjun.bench.scans import prepare_checkout, run_scan_bench
from chongjun.bench.signatures import run_signature_bench
from chongjun.bench.stats import run_stats_bench
import archive
from benefits import redemption, stats
from chongjun.runtime import resolve_settings
from foundation.audit import write_audit
from foundation.connections import connect_postgres, connect_redis, open_connection
from foundation.errors import Conflict
from foundation.settings import Settings, load_settings
from identity import (
    ADMIN_ROLES,
    AccountExists,
    DevCityIssuer,
    DevIssuerRefused,
    InvalidAccount,
    InvalidIdNumber,
    KeyRing,
    NewAccount,
    RosterEncoding,
    RosterRejected,
    SecretStore,
    create_account,
    ensure_signing_keys,
    import_roster,
    list_keys,
    pii_vault,
    profile_algorithm,
    prune_refresh_tokens,
    remove_key,
    rotate_keys,
)
from identity.credentials import check_presentation, present
from identity.people import masked_name_of
from merchants import rotate_seal_key
from migrations import apply_migrations, pending_migrations

__all__ = ("main",)

T = TypeVar("T")


class _Servers:
    """The resolved settings, and a way to run async work on one connection to that PostgreSQL."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def run(self, work: Callable[[asyncpg.Connection], Awaitable[T]], *, owner: bool = False) -> T:
        """`work(conn)` in an event loop of its own; the connection is closed after, even on error.
        As the service's role, or with `owner` as the schema's owner (migrations only)."""

        async def on_connection() -> T:
            conn = await open_connection(self.settings, owner=owner)
            try:
                return await work(conn)
            finally:
                await conn.close()

        return asyncio.run(on_connection())


@contextmanager
def _servers(*, migrate: bool = False) -> Iterator[_Servers]:
    """Settings with both URLs: the configured servers, or embedded ones that stop on exit.

    With `migrate`, pending migrations are applied first (commands that write to the schema).
    """
    settings, embedded = resolve_settings()
    try:
        servers = _Servers(settings)
        if migrate:
            servers.run(apply_migrations, owner=True)
        yield servers
    finally:
        if embedded is not None:
            embedded.stop()


@click.group()
def main() -> None:
    """chongjun: the 崇军魔方 backend."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--seed/--no-seed", default=True, show_default=True, help="dev: seed demo data into an empty database")
def serve(host: str, port: int, workers: int, seed: bool) -> None:
    """Serve the API (embedded PostgreSQL and Redis unless DATABASE_URL and REDIS_URL are set)."""
    taken = _port_taken(host, port)
    if taken:
        # The server binds with SO_REUSEPORT, so a second `serve` on a busy port would start without
        # an error and share (or steal) the other one's connections.
        click.echo(f"refusing to start: {host}:{port} is in use ({taken}); stop the other server or pick --port", err=True)
        sys.exit(2)
    with _servers() as servers:
        settings = servers.settings
        # Before anything imports prometheus_client (the workers import api.asgi): its
        # multiprocess mode is chosen at import. Nothing this module imports loads it.
        _prepare_metrics_dir(settings, workers)
        if settings.is_production:
            if not settings.public_url:
                # Credentials, status lists and setup QRs name it; a Host header must not.
                click.echo("refusing to start: set CHONGJUN_PUBLIC_URL, the address people and verifiers reach us at", err=True)
                sys.exit(2)
            pending = servers.run(pending_migrations, owner=True)
            if pending:
                names = ", ".join(f"{m.version:04d}_{m.name}" for m in pending)
                click.echo(f"refusing to start: pending migrations {names}; run `chongjun migrate` first", err=True)
                sys.exit(2)
        else:
            for migration in servers.run(apply_migrations, owner=True):
                click.echo(f"applied {migration.version:04d}_{migration.name}", err=True)
            if seed:  # dev: the demo data, once, into an empty database
                summary = servers.run(lambda conn: _seed_demo(conn, settings, only_if_empty=True))
                if summary:
                    click.echo(summary, err=True)
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


def _port_taken(host: str, port: int) -> str | None:
    """Why `host:port` cannot be listened on by us alone, or None. A plain bind (no SO_REUSEPORT)
    fails while any other socket listens there, even one that set SO_REUSEPORT itself."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a TIME_WAIT leftover is no conflict
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def _prepare_metrics_dir(settings: Settings, workers: int) -> None:
    """With several workers, Prometheus metrics are pooled in files so /metrics shows them all."""
    if workers < 2 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    directory = settings.data_dir.resolve() / "metrics"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


@main.command()
def migrate() -> None:
    """Apply pending database migrations."""
    with _servers() as servers:
        applied = servers.run(apply_migrations, owner=True)
    for migration in applied:
        click.echo(f"applied {migration.version:04d}_{migration.name}")
    click.echo(f"{len(applied)} migration(s) applied; schema is current")


@main.command("seed-demo")
def seed_demo() -> None:
    """Seed the demo catalog, venues, merchants, devices, people and accounts (idempotent)."""
    with _servers(migrate=True) as servers:
        click.echo(servers.run(lambda conn: _seed_demo(conn, servers.settings, only_if_empty=False)))


async def _seed_demo(conn: asyncpg.Connection, settings: Settings, *, only_if_empty: bool) -> str | None:
    redis = connect_redis(settings)
    try:
        if only_if_empty:
            return await demo.seed_demo_if_empty(conn, redis, settings)
        return await demo.seed_demo(conn, redis, settings)
    finally:
        await redis.aclose()


@main.command()
@click.option("--idempotency-hours", default=48, show_default=True, type=click.IntRange(24, 24 * 365),
              help="keep stored Idempotency-Key answers this long (at least 24 h)")
@click.option("--refresh-days", default=7, show_default=True, type=click.IntRange(1, 3650),
              help="keep refresh tokens this long after they expired")
@click.option("--events-days", default=None, type=click.IntRange(1, 3650),
              help="keep delivered outbox events this long (default CHONGJUN_EXCHANGE_RETENTION_DAYS, 30)")
def prune(idempotency_hours: int, refresh_days: int, events_days: int | None) -> None:
    """Delete what only ever grows and is no longer needed; run it daily (cron or a timer).

    Stored Idempotency-Key answers older than the window, long-expired refresh tokens, and outbox
    events the data center accepted longer ago than the retention (undelivered ones never). The
    ledger, refused scans, consumed codes and the audit log are never pruned.
    """

    async def run(conn: asyncpg.Connection) -> tuple[int, int, tuple[int, int]]:
        keys = await prune_idempotency_keys(conn, older_than=timedelta(hours=idempotency_hours))
        tokens = await prune_refresh_tokens(conn, expired_for=timedelta(days=refresh_days))
        days = events_days or servers.settings.exchange_retention_days
        events = await exchange.prune_events(conn, older_than=timedelta(days=days))
        return keys, tokens, events

    with _servers() as servers:
        keys, tokens, (events, batches) = servers.run(run)
    click.echo(f"pruned {keys} Idempotency-Key answer(s) older than {idempotency_hours} h "
               f"and {tokens} refresh token(s) expired for over {refresh_days} day(s)")
    click.echo(f"pruned {events} delivered outbox event(s) and {batches} delivered batch(es) past the exchange retention")


@main.command()
def relay() -> None:
    """Deliver the outbox to CHONGJUN_EXCHANGE_URL (or CHONGJUN_EXCHANGE_DIR) until stopped.

    Safe to run beside `serve` and on several hosts: one lease decides which relay is active; the
    others wait to take over. SIGTERM or Ctrl-C stops it after the batch in flight."""
    with _servers() as servers:
        settings = servers.settings
        if exchange.make_sink(settings) is None:
            click.echo("error: set CHONGJUN_EXCHANGE_URL (or CHONGJUN_EXCHANGE_DIR for the file sink)", err=True)
            sys.exit(2)
        click.echo("chongjun relay: running (one active relay at a time across processes)", err=True)
        uvloop.run(_relay(settings))


async def _relay(settings: Settings) -> None:
    import signal

    pool = await connect_postgres(settings, min_size=1, max_size=4)
    ring = KeyRing(SecretStore.from_settings(settings))
    async with pool.acquire() as conn:
        await ring.load(conn)
    relay_ = exchange.build_relay(settings, pool, ring)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, relay_.stop)

    async def reload_keys() -> None:
        while True:
            await asyncio.sleep(30)
            try:
                async with pool.acquire() as conn:
                    await ring.load(conn)
            except Exception as exc:  # noqa: BLE001 - keep the ring we have
                click.echo(f"chongjun relay: key reload failed ({type(exc).__name__})", err=True)

    reloader = asyncio.create_task(reload_keys())
    try:
        await relay_.run()
    finally:
        reloader.cancel()
        await pool.close()


@main.group("exchange")
def exchange_group() -> None:
    """The data center's side of things: replay."""


@exchange_group.command("replay")
@click.option("--from", "from_id", required=True, help="an event id: every stored batch from the one holding it is sent again")
def exchange_replay(from_id: str) -> None:
    """Send the stored batches again, byte for byte (same seals, same event ids), from an event on.

    The receiver dedupes by event id; the relay's own state is not touched."""
    import uuid as _uuid

    try:
        event_id = _uuid.UUID(from_id)
    except ValueError:
        click.echo(f"error: {from_id!r} is not an event id (a UUID)", err=True)
        sys.exit(2)
    with _servers() as servers:
        sink = exchange.make_sink(servers.settings)
        if sink is None:
            click.echo("error: set CHONGJUN_EXCHANGE_URL (or CHONGJUN_EXCHANGE_DIR)", err=True)
            sys.exit(2)

        async def run(conn: asyncpg.Connection) -> tuple[int, int]:
            try:
                return await exchange.replay_from(conn, sink, event_id)
            finally:
                await sink.close()

        try:
            batches, events = servers.run(run)
        except exchange.ReplayPruned:
            click.echo(f"error: event {event_id} is not kept (pruned, or never existed)", err=True)
            sys.exit(1)
    click.echo(f"replayed {batches} batch(es), {events} event(s), from event {event_id}")


@main.command("create-admin")
@click.option("--username", required=True)
@click.option("--role", required=True, type=click.Choice(ADMIN_ROLES))
@click.option("--district", default=None, help="GB/T 2260 district code; required for --role district")
@click.option("--totp/--no-totp", default=False, show_default=True, help="require a TOTP code at login")
def create_admin(username: str, role: str, district: str | None, totp: bool) -> None:
    """Create an admin account; the password is read from stdin (one line, never an argument)."""
    password = sys.stdin.readline().rstrip("\r\n")
    try:
        new = msgspec.convert(
            {"kind": "admin", "username": username, "password": password, "role": role, "district": district,
             "with_totp": totp},
            NewAccount,
        )
    except msgspec.ValidationError as exc:
        raise click.UsageError(f"invalid account: {exc}") from None
    with _servers(migrate=True) as servers:
        secrets = SecretStore.from_settings(servers.settings)
        try:
            account, uri = servers.run(lambda conn: create_account(conn, new, secrets=secrets))
        except (InvalidAccount, AccountExists) as exc:
            raise click.ClickException(exc.detail) from None
    click.echo(f"created {account.kind} {account.username} ({account.role}) id={account.id}")
    if uri:
        click.echo(f"TOTP (add to an authenticator app, shown once): {uri}")


@main.group()
def keys() -> None:
    """Our signing keys: list, rotate, remove."""


@keys.command("rotate")
@click.option("--alg", default=None, type=click.Choice(["EdDSA", "ES256", "SM2"]),
              help="the new next key's algorithm [default: the crypto profile's: intl EdDSA, gm SM2]")
def keys_rotate(alg: str | None) -> None:
    """next → active, active → retired, and a new next key. Workers pick it up within 30 s.

    Switching profiles is two rotations: the first publishes a key of the new algorithm as next,
    the second makes it sign. Everything signed before keeps verifying while its key is retired."""
    with _servers(migrate=True) as servers:
        secrets = SecretStore.from_settings(servers.settings)
        alg = alg or profile_algorithm(servers.settings.crypto_profile)
        result = servers.run(lambda conn: rotate_keys(conn, secrets, alg=alg))
    for state in ("active", "next", "retired"):
        if state in result:
            click.echo(f"{state}: {result[state]}")


@keys.command("list")
def keys_list() -> None:
    """Every key with its state and dates."""
    with _servers() as servers:
        rows = servers.run(list_keys)
    for row in rows:
        click.echo(f"{row['kid']}  {row['alg']:<5}  {row['state']:<7}  created {row['created_at']:%Y-%m-%d %H:%M}")


@keys.command("remove")
@click.argument("kid")
def keys_remove(kid: str) -> None:
    """Withdraw a retired key: everything it signed stops verifying within 30 s.

    A kid is base64url and may begin with "-": write `chongjun keys remove -- KID` for those.
    """
    with _servers() as servers:
        removed = servers.run(lambda conn: remove_key(conn, kid))
    if not removed:
        raise click.ClickException(f"{kid} is not a retired key")
    click.echo(f"removed {kid}")


def _read_text(path: str) -> str:
    try:
        return sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc.strerror}") from None


def _read_json(path: str, what: str) -> dict:
    try:
        value = msgspec.json.decode(_read_text(path))
    except msgspec.DecodeError:
        raise click.ClickException(f"{path} is not JSON ({what})") from None
    if not isinstance(value, dict):
        raise click.ClickException(f"{path} is not a JSON object ({what})")
    return value


@main.group()
def credential() -> None:
    """The electronic 优待证 (SD-JWT VC): verify a presentation offline; present one (holder side)."""


@credential.command("verify")
@click.argument("presentation")
@click.option("--jwks", "jwks_path", required=True, help="cached /.well-known/jwks.json of the issuer")
@click.option("--status-list", "status_path", help="cached status list token (GET the credential's status uri)")
@click.option("--audience", help="require this KB-JWT aud (the verifier's own id)")
@click.option("--nonce", help="require this KB-JWT nonce (the one the verifier asked for)")
@click.option("--max-age", default=300, show_default=True, type=int, help="seconds a KB-JWT stays fresh")
@click.option("--at", "at", type=float, help="verify as of this POSIX time (default: now)")
def credential_verify(presentation, jwks_path, status_path, audience, nonce, max_age, at) -> None:
    """Check PRESENTATION (a file, or - for stdin) with cached keys and status list, no network.

    Prints `VALID` and the disclosed claims, or `REFUSED <reason>: <why>` and exits 1.
    """
    import time

    check = check_presentation(
        _read_text(presentation).strip(),
        jwks=_read_json(jwks_path, "a JWK Set"),
        status_list_token=_read_text(status_path) if status_path else None,
        now=at if at is not None else time.time(),
        audience=audience,
        nonce=nonce,
        kb_max_age=max_age,
    )
    if not check.ok:
        click.echo(f"REFUSED {check.reason}: {check.detail}")
        sys.exit(1)
    click.echo(f"VALID (status {check.status})")
    click.echo(msgspec.json.format(msgspec.json.encode(check.claims), indent=2).decode())


@credential.command("present")
@click.argument("credential_file")
@click.option("--key", "key_path", required=True, help="the holder's private key (PEM, Ed25519 or P-256)")
@click.option("--audience", required=True)
@click.option("--nonce", required=True)
@click.option("--disclose", multiple=True, help="a claim to disclose (repeat); default: all")
def credential_present(credential_file, key_path, audience, nonce, disclose) -> None:
    """The holder's side, for tests and for docs/verify.md: add a KB-JWT to a credential."""
    import time

    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(Path(key_path).read_bytes(), password=None)
    alg = "EdDSA" if key.__class__.__name__.startswith("Ed25519") else "ES256"
    raw = _read_text(credential_file).strip()
    if raw.startswith("{"):
        raw = msgspec.json.decode(raw)["credential"]
    click.echo(present(raw, names=set(disclose) or None, holder_key=key, holder_alg=alg, aud=audience, nonce=nonce,
                       iat=int(time.time())))


@main.group("seal")
def seal_group() -> None:
    """The bureau's e-seal on statements (电子印章): verify a sealed document offline; rotate the key."""


@seal_group.command("verify")
@click.argument("file")
@click.option("--jwks", "jwks_path", required=True, help="the issuer's /.well-known/jwks.json, cached")
def seal_verify(file: str, jwks_path: str) -> None:
    """Check the seal of FILE (a sealed statement as downloaded; - for stdin) offline.

    Prints `VALID ...` or `REFUSED <reason>: <why>` and exits 1.
    """
    document = _read_json(file, "a sealed statement")
    check = explain_sealed(document, _read_json(jwks_path, "a JWK Set"))
    if not check.ok:
        click.echo(f"REFUSED {check.reason}: {check.detail}")
        sys.exit(1)
    statement = document["statement"]
    click.echo(f"VALID sealed by {check.kid} ({check.alg}): {statement.get('statement_id')}, "
               f"issued {statement.get('issued_at')}, net {statement.get('net_count')} / {statement.get('net_value_fen')} fen")


@seal_group.command("rotate")
def seal_rotate() -> None:
    """Write the next seal key version (dev; in production provision statement-seal-key.vN on every machine).

    Earlier statements keep their seal and still verify: every version stays published.
    """
    key = rotate_seal_key(load_settings())
    click.echo(f"sealing with version {key.version}: {key.kid}")


@main.group()
def audit() -> None:
    """The audit archive (电子档案): sign a checkpoint, verify, export."""


async def _ring(conn: asyncpg.Connection, settings: Settings) -> KeyRing:
    ring = KeyRing(SecretStore.from_settings(settings))
    # The profile's algorithm, as the server's start does: without it a dev database under gm had
    # its SM2 key retired for a new EdDSA one by any `audit` command (found by test_cli under gm).
    await ensure_signing_keys(
        conn, ring.secrets, create=not settings.is_production, alg=profile_algorithm(settings.crypto_profile)
    )
    await ring.load(conn)
    return ring


@audit.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign a checkpoint of every committed entry now (the service also cuts one regularly)."""
    with _servers(migrate=True) as servers:
        async def cut(conn: asyncpg.Connection) -> archive.Checkpoint:
            ring = await _ring(conn, servers.settings)
            async with conn.transaction():
                return await archive.cut_checkpoint(conn, ring)

        checkpoint = servers.run(cut)
    click.echo(checkpoint.signed_note, nl=False)


def _print_verify(report: archive.VerifyReport) -> None:
    if report.ok:
        click.echo(f"ok: {report.entries} entries, {report.checkpoints} signed checkpoints verify")
        return
    finding = report.finding
    click.echo(f"FAILED ({finding.kind}, first bad entry {finding.seq}): {finding.message}", err=True)
    sys.exit(1)


@audit.command("verify")
@click.option("--from", "source", type=click.Path(exists=True, dir_okay=False), default=None,
              help="an `audit export` file, verified offline (no database)")
@click.option("--jwks", "jwks_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="the keys to trust (a copy of /.well-known/jwks.json); default: the database's, or the file's own")
def audit_verify(source: str | None, jwks_file: str | None) -> None:
    """Recompute every leaf, the tree and each checkpoint; exit 1 naming the first bad entry."""
    jwks = msgspec.json.decode(Path(jwks_file).read_bytes()) if jwks_file else None
    if source is not None:
        with open(source, "rb") as lines:
            try:
                report = archive.verify_export(lines, jwks)
            except (ValueError, msgspec.DecodeError, StopIteration) as exc:
                raise click.ClickException(f"{source} is not an audit export: {exc}") from exc
        _print_verify(report)
        return
    with _servers() as servers:
        async def verify(conn: asyncpg.Connection) -> archive.VerifyReport:
            keys = jwks if jwks is not None else (await _ring(conn, servers.settings)).jwks()
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                report = await archive.verify_database(conn, keys)
            # Verifying is the audit duty's work: archived too (三员分立, every action of each duty).
            await write_audit(
                conn, actor_kind="system", actor_id="cli", action="audit.verify", object_kind="archive",
                object_id="audit_log", detail={"ok": report.ok, "entries": report.entries, "checkpoints": report.checkpoints},
            )
            return report

        report = servers.run(verify)
    _print_verify(report)


@audit.command("prune")
@click.option("--before", required=True, type=click.DateTime(formats=["%Y-%m-%d"]),
              help="remove signed entries older than this day (UTC); refused if younger than six months")
def audit_prune(before) -> None:
    """Remove entries older than --before that a signed checkpoint covers; their leaf hashes stay, so
    verify, checkpoints and proofs still hold. Runs as the schema owner; the prune is archived."""
    cutoff = before.replace(tzinfo=timezone.utc)
    with _servers() as servers:
        try:
            pruned = servers.run(lambda conn: archive.prune_archive(conn, cutoff), owner=True)
        except archive.RetentionRefused as exc:
            raise click.ClickException(exc.detail) from None
    click.echo(f"pruned {pruned} entries older than {cutoff:%Y-%m-%d}")


@audit.command("export")
@click.option("--out", type=click.Path(dir_okay=False, writable=True), required=True, help="the NDJSON file to write")
def audit_export(out: str) -> None:
    """Every entry and signed checkpoint as NDJSON, with the public keys: it verifies on another
    machine with `chongjun audit verify --from FILE [--jwks FILE]`. The export itself is recorded."""
    with _servers() as servers:
        async def export(conn: asyncpg.Connection) -> tuple[int, int]:
            jwks = (await _ring(conn, servers.settings)).jwks()
            with open(out, "wb") as handle:
                async with conn.transaction(isolation="repeatable_read", readonly=True):
                    counts = await archive.export_archive(conn, jwks, handle.write)
            await write_audit(
                conn, actor_kind="system", actor_id="cli", action="audit.export", object_kind="archive",
                object_id="audit_log", detail={"entries": counts[0], "checkpoints": counts[1]},
            )
            return counts

        entries, checkpoints = servers.run(export)
    click.echo(f"wrote {entries} entries and {checkpoints} checkpoints to {out}")


class _Phases:
    """A rich progress bar per import phase (validate, seal, write), fed by the importer's callback."""

    LABELS = {"validate": "validating lines", "seal": "sealing PII", "write": "writing to PostgreSQL"}

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, int] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase not in self.tasks:
            self.tasks[phase] = self.progress.add_task(self.LABELS.get(phase, phase), total=total)
        self.progress.update(self.tasks[phase], completed=done, total=max(total, done))


def _progress_bar() -> Progress:
    """On stderr, so stdout carries only results (a pipe gets no bar characters)."""
    return Progress(
        TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(stderr=True), transient=False,
    )


def _print_report(report, console: Console) -> None:
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
    console = Console(stderr=True, soft_wrap=True)
    data = Path(file).read_bytes()
    with _servers() as servers:
        vault = pii_vault(servers.settings)
        try:
            with _progress_bar() as bar:
                report = servers.run(
                    lambda conn: import_roster(conn, vault, data, valid_only=valid_only, progress=_Phases(bar))
                )
        except RosterRejected as exc:
            _print_report(exc.report, console)
            sys.exit(1)
        except RosterEncoding as exc:
            console.print(f"[red]{exc.detail}[/red]")
            sys.exit(1)
    _print_report(report, console)


@main.group()
def suishen() -> None:
    """The simulated city platform (dev only)."""


@suishen.command("issue")
@click.option("--id-number", "id_number", required=True, help="the citizen's resident ID number (GB 11643)")
@click.option("--count", default=1, show_default=True, type=click.IntRange(1, 1000))
@click.option("--ttl", default=60, show_default=True, type=click.IntRange(1, 3600), help="seconds each code lives")
def suishen_issue(id_number: str, count: int, ttl: int) -> None:
    """Print COUNT fresh 随申码 for a citizen, one a line (refused when CHONGJUN_ENV=production)."""
    if load_settings().is_production:  # refused before any server is started
        click.echo(f"error: {DevIssuerRefused()}", err=True)
        sys.exit(2)
    with _servers() as servers:
        vault = pii_vault(servers.settings)
        try:
            id_hmac = vault.index_of(id_number)
        except InvalidIdNumber as exc:
            click.echo(f"error: {exc.detail}", err=True)  # never echo the number itself
            sys.exit(2)
        name_masked = servers.run(lambda conn: masked_name_of(conn, id_hmac))
        issuer = DevCityIssuer(servers.settings, vault)
    if name_masked is None:
        click.echo("note: this ID number is not in the roster; logging in with these codes answers 403", err=True)
    for _ in range(count):
        click.echo(issuer.issue(id_number, name_masked=name_masked, ttl_seconds=ttl))


@main.group()
def bench() -> None:
    """Benchmarks: `import` and `matching` in scratch databases, `scans` over HTTP against a server."""


def _machine() -> str:
    return (
        f"machine: {os.cpu_count()} CPU(s), Python {platform.python_version()}, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )


@bench.command("import")
@click.option("--rows", default=100_000, show_default=True, type=click.IntRange(1, 5_000_000))
@click.option("--seed", default=2026, show_default=True, type=int)
def bench_import_command(rows: int, seed: int) -> None:
    """Import a synthetic roster of ROWS people into a scratch database; print rows/s."""
    with _servers() as servers, _progress_bar() as bar:
        result = asyncio.run(bench_import(servers.settings, rows=rows, seed=seed, progress=_Phases(bar)))
    click.echo(
        f"roster import: {result.rows} rows in {result.import_seconds:.2f} s = {result.rows_per_second} rows/s "
        f"(inserted {result.inserted}); re-import (idempotent, {result.unchanged_on_reimport} unchanged) "
        f"{result.reimport_seconds:.2f} s; generating the CSV took {result.generate_seconds:.2f} s"
    )
    click.echo(_machine())
    click.echo(f"reproduce: chongjun bench import --rows {rows} --seed {seed}")


@bench.command("matching")
@click.option("--iterations", default=2000, show_default=True, type=click.IntRange(10, 1_000_000))
def bench_matching(iterations: int) -> None:
    """免申即享 matching latency: one person against 50 active benefits (p50/p95/p99)."""
    with _servers() as servers:
        results = asyncio.run(
            run_matching_bench(servers.settings, seed_catalog=demo.seed_demo, iterations=iterations, echo=click.echo)
        )
    click.echo(f"matching, one person x 50 active benefits, {iterations} requests per case (ms):")
    for case, (p50, p95, p99) in results.items():
        click.echo(f"  {case:<9} p50 {p50:6.2f}  p95 {p95:6.2f}  p99 {p99:6.2f}")
    click.echo(_machine())
    click.echo(f"reproduce: ./dev bench matching --iterations {iterations}")


@bench.command("signatures")
@click.option("--count", default=3000, show_default=True, type=click.IntRange(10, 1_000_000))
def bench_signatures(count: int) -> None:
    """Sign and verify throughput on one core: SM2 (OpenSSL), Ed25519, ES256."""
    from foundation.sm2 import openssl_version

    results = run_signature_bench(count)
    click.echo(f"signatures, 300-byte message, {count} operations per case, CPU time of one thread ({openssl_version()}):")
    for case, (sign, verify) in results.items():
        click.echo(
            f"  {case:<22} sign {sign:8.0f}/s ({1000 / sign:.3f} ms)  verify {verify:8.0f}/s ({1000 / verify:.3f} ms)"
        )
    click.echo(_machine())
    click.echo(f"reproduce: ./dev bench signatures --count {count}")


@bench.command("stats")
@click.option("--rows", default=1_000_000, show_default=True, type=click.IntRange(1000, 20_000_000), help="ledger rows")
@click.option("--people", default=200_000, show_default=True, type=click.IntRange(100, 5_000_000))
@click.option("--iterations", default=200, show_default=True, type=click.IntRange(10, 100_000))
def bench_stats(rows: int, people: int, iterations: int) -> None:
    """第二十三条 statistics on a generated year: rollup and reach refresh times, p50/p99 per case."""
    with _servers() as servers:
        results = asyncio.run(
            run_stats_bench(servers.settings, seed_catalog=demo.seed_demo, rows=rows, people=people,
                            iterations=iterations, echo=click.echo)
        )
    click.echo(f"GET /v1/admin/stats service time, {rows:,} ledger rows, {people:,} people, {iterations} requests per case (ms):")
    for case, (p50, p99) in results.items():
        click.echo(f"  {case:<20} p50 {p50:7.1f}  p99 {p99:7.1f}")
    click.echo(_machine())
    click.echo(f"reproduce: ./dev bench stats --rows {rows} --people {people} --iterations {iterations}")


@bench.command("partition-migration")
@click.option("--rows", default=1_000_000, show_default=True, type=click.IntRange(1000, 50_000_000), help="ledger rows")
def bench_partition_migration(rows: int) -> None:
    """How long migration 0050 (the ledger partitioned by month) locks a ledger of --rows redemptions."""
    with _servers() as servers:
        result = asyncio.run(run_partition_migration_bench(servers.settings, rows=rows, echo=click.echo))
    click.echo(
        f"migration 0050 on {result['redemptions']:,} ledger rows, {result['consumed_codes']:,} consumed codes, "
        f"{result['rejected_scans']:,} refused scans, {result['ratings']:,} ratings: {result['seconds']:.1f} s "
        f"in one transaction (the ledger locked throughout), {result['partitions']} partitions of redemptions"
    )
    click.echo(f"then the rollups filled again (0051-0053, the ledger not locked): {result['rollups_seconds']:.1f} s")
    click.echo(_machine())
    click.echo(f"reproduce: ./dev bench partition-migration --rows {rows}")


@main.group("stats")
def stats_group() -> None:
    """第二十三条 operating statistics."""


@stats_group.command("refresh")
@click.option("--reach/--no-reach", default=True, show_default=True, help="also recompute who is eligible now")
def stats_refresh(reach: bool) -> None:
    """Refresh the daily rollups (the workers do every 5 minutes) and the 免申即享 reach."""
    with _servers(migrate=True) as servers:
        async def refresh(conn: asyncpg.Connection) -> stats.RefreshResult:
            async with conn.transaction():
                return await stats.refresh_stats(conn, reach=reach)

        result = servers.run(refresh)
    click.echo(f"rollups {result.rollup_seconds:.2f} s; reach over {result.people} people {result.reach_seconds:.2f} s")


@main.group("partitions")
def partitions_group() -> None:
    """The ledger's month partitions (redemptions, refused scans, consumed codes)."""


def _month(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m").date()
    except ValueError:
        raise click.BadParameter(f"{value!r} is not YYYY-MM") from None


@partitions_group.command("ensure")
@click.option("--months", default=redemption.PARTITIONS_AHEAD, show_default=True, type=click.IntRange(0, 120),
              help="create the month partitions from last month to this many months ahead")
def partitions_ensure(months: int) -> None:
    """Create the coming months' partitions (serve does at start and daily). Runs as the service's
    role: the creation is the owner's SECURITY DEFINER function."""
    with _servers(migrate=True) as servers:
        result = servers.run(lambda conn: redemption.ensure_partitions(conn, months=months))
    for name in result.created:
        click.echo(f"created {name}")
    for name in result.in_default:
        click.echo(f"left in the default partition (it holds rows of that month): {name}")
    click.echo(f"{len(result.created)} partition(s) created, through {months} month(s) ahead")


@partitions_group.command("list")
def partitions_list() -> None:
    """Every partition of the ledger's tables, with PostgreSQL's row estimate."""
    with _servers() as servers:
        rows = servers.run(redemption.list_partitions)
    for row in rows:
        click.echo(f"{row['parent']:<16} {row['partition']:<28} ~{row['estimate']} rows")


def _as_owner(work: Callable[[asyncpg.Connection, Settings], Awaitable[T]]) -> T:
    """Run `work(conn, settings)` on a connection of the schema owner; a refusal (`Conflict`) is
    the command's error message, not a traceback."""
    with _servers() as servers:
        try:
            return servers.run(lambda conn: work(conn, servers.settings), owner=True)
        except Conflict as exc:
            raise click.ClickException(exc.detail) from None


@partitions_group.command("detach")
@click.option("--before", "before", required=True, metavar="YYYY-MM", help="detach every month before this one")
def partitions_detach(before: str) -> None:
    """Take the months before --before out of the ledger for archiving (as the schema owner).
    Refused while a month may still be used: codes, and the offline upload window."""
    month = _month(before)
    detached = _as_owner(lambda conn, settings: redemption.detach_partitions(
        conn, before=month, upload_window=timedelta(seconds=settings.offline_upload_seconds)))
    for name in detached:
        click.echo(f"detached {name}")
    click.echo(f"{len(detached)} partition(s) detached; export them with `chongjun partitions export --month YYYY-MM`")


@partitions_group.command("export")
@click.option("--month", required=True, metavar="YYYY-MM", help="the detached month to write out")
@click.option("--out", required=True, type=click.Path(file_okay=False, writable=True), help="the directory to write to")
def partitions_export(month: str, out: str) -> None:
    """Write a detached month as CSV, one file per table, with SHA-256 digests and a manifest."""
    first = _month(month)
    exported = _as_owner(lambda conn, _settings: redemption.export_partitions(conn, month=first, out_dir=Path(out)))
    for item in exported:
        click.echo(f"{item.file}: {item.rows} rows, sha256 {item.sha256}")
    click.echo(f"check with: (cd {out} && sha256sum -c ledger-{first:%Y-%m}.sha256)")


@bench.command("scans")
@click.option("--url", default=None, help="a running server; without it the bench starts `serve --workers N` itself")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="for the started server")
@click.option("--scans", default=20_000, show_default=True, type=click.IntRange(100, 1_000_000))
@click.option("--warmup", default=2_000, show_default=True, type=click.IntRange(0, 100_000))
@click.option("--concurrency", default=32, show_default=True, type=click.IntRange(1, 1024))
@click.option("--venues", default=4, show_default=True, type=click.IntRange(1, 256))
@click.option("--devices", default=1, show_default=True, type=click.IntRange(1, 64), help="per venue")
@click.option("--people", default=None, type=click.IntRange(1, 1_000_000),
              help="that many people return again and again (no per-person cap); default: one person per scan, 1/day")
@click.option("--capacity", default=1_000_000, show_default=True, type=click.IntRange(0, 100_000_000),
              help="each venue's daily capacity (0: none); the default is far above any run")
@click.option("--against", default=None, metavar="REV|DIR",
              help="also run that commit (or a checkout with its own .venv), interleaved, and print the ratios")
@click.option("--rounds", default=2, show_default=True, type=click.IntRange(1, 20), help="with --against: runs of each")
@click.option("--admin-user", default="demo-admin", show_default=True)
@click.option("--admin-password", default="demo-admin-password", show_default=True)
@click.option("--seed", default=2026, show_default=True, type=int, help="of the synthetic roster")
@click.option("--code", "code", default="suishen", show_default=True, type=click.Choice(["suishen", "cj"]),
              help="what the gates scan: a simulated 随申码, or our 崇军码 (signed with the profile's algorithm)")
@click.option("--profiles", is_flag=True,
              help="run this tree under CHONGJUN_CRYPTO_PROFILE=intl and =gm, interleaved, and print the ratios")
@click.option("--exchange", "exchange_sink", default="none", show_default=True, type=click.Choice(["none", "http"]),
              help="none: events fill the outbox; http: the started server's relay delivers them to a receiver in this process")
def bench_scans(
    url, workers, scans, warmup, concurrency, venues, devices, people, capacity, against, rounds,
    admin_user, admin_password, seed, code, profiles, exchange_sink,
) -> None:
    """Accepted scans/s and p50/p95/p99 of POST /v1/scans over real HTTP, one fresh code per scan."""
    settings = load_settings()  # no servers of its own: it drives a server, started or given by --url
    if settings.is_production:
        click.echo("error: the scan bench mints simulated 随申码 and is refused in production", err=True)
        sys.exit(2)
    if against is not None and url is not None:
        click.echo("error: --against starts both servers itself; it cannot take --url", err=True)
        sys.exit(2)
    if (profiles or code == "cj") and (against is not None or (profiles and url is not None)):
        click.echo("error: --code cj and --profiles run this tree's own server (no --against; --profiles no --url)", err=True)
        sys.exit(2)
    options = dict(
        workers=workers, scans=scans, warmup=warmup, concurrency=concurrency, venues=venues, devices=devices,
        admin=(admin_user, admin_password), seed=seed, people=people, capacity=capacity or None, code=code,
        echo=click.echo, exchange=exchange_sink,
    )
    target = f"--url {url} " if url else f"--workers {workers} "
    shape = (
        f"--scans {scans} --warmup {warmup} --concurrency {concurrency} --venues {venues} --devices {devices} "
        f"{f'--people {people} ' if people else ''}--capacity {capacity} --seed {seed} --code {code} --exchange {exchange_sink}"
    )
    if code == "cj" or profiles:
        # Minting 崇军码 reads the server's key ring and roster: the same PostgreSQL, started here
        # when embedded, its URL exported so the spawned servers share it.
        with _servers() as servers:
            if profiles:
                _bench_profiles(servers.settings, rounds, options, f"./dev bench scans {target}{shape} --profiles --rounds {rounds}")
            else:
                _echo_scan_result(uvloop.run(run_scan_bench(servers.settings, url=url, **options)))
                click.echo(f"crypto profile: {settings.crypto_profile}")
                click.echo(_machine())
                click.echo(f"reproduce: CHONGJUN_CRYPTO_PROFILE={settings.crypto_profile} ./dev bench scans {target}{shape}")
        return
    if against is None:
        result = uvloop.run(run_scan_bench(settings, url=url, **options))
        _echo_scan_result(result)
        click.echo(_machine())
        click.echo(f"reproduce: ./dev bench scans {target}{shape}")
        return
    checkout = prepare_checkout(against, data_dir=settings.data_dir, echo=click.echo)
    theirs = msgspec.structs.replace(settings, data_dir=settings.data_dir / "against-data" / checkout.name)
    runs: dict[str, list] = {"this tree": [], against: []}
    for round_number in range(rounds):
        # Alternate which goes first, so neither always runs on the warmer (or busier) machine.
        order = [("this tree", settings, None), (against, theirs, checkout)]
        for name, side_settings, side_checkout in order if round_number % 2 == 0 else order[::-1]:
            click.echo(f"--- round {round_number + 1}/{rounds}: {name}")
            result = uvloop.run(run_scan_bench(side_settings, url=None, checkout=side_checkout, **options))
            _echo_scan_result(result)
            runs[name].append(result)
    click.echo(f"=== {rounds} interleaved run(s) each; median of each side; ratio = this tree / {against}")
    mine, base = runs["this tree"], runs[against]
    for label, field, better in (
        ("accepted scans/s", "accepted_per_second", "higher"),
        ("p50 ms", "p50_ms", "lower"),
        ("p99 ms", "p99_ms", "lower"),
        ("server CPU ms/scan", "server_cpu_ms_per_scan", "lower"),
        ("PostgreSQL CPU ms/scan", "postgres_cpu_ms_per_scan", "lower"),
        ("both CPU ms/scan", "total_cpu_ms_per_scan", "lower"),
    ):
        ours, theirs_value = _median(mine, field), _median(base, field)
        ratio = f"{ours / theirs_value:.2f}x" if ours is not None and theirs_value else "n/a"
        click.echo(f"  {label:<22} this tree {ours!s:>9}   {against} {theirs_value!s:>9}   ratio {ratio} ({better} is better)")
    click.echo(f"  errors (anything but accepted): this tree {[r.errors for r in mine]}, {against} {[r.errors for r in base]}")
    click.echo(_machine())
    click.echo(f"reproduce: ./dev bench scans {target}{shape} --against {against} --rounds {rounds}")


def _bench_profiles(settings: Settings, rounds: int, options: dict, reproduce: str) -> None:
    """Rounds of one run under intl and one under gm, the order alternating; medians and gm/intl."""
    runs: dict[str, list] = {"intl": [], "gm": []}
    saved = os.environ.get("CHONGJUN_CRYPTO_PROFILE")
    try:
        for round_number in range(rounds):
            order = ["intl", "gm"] if round_number % 2 == 0 else ["gm", "intl"]
            for profile in order:
                click.echo(f"--- round {round_number + 1}/{rounds}: CHONGJUN_CRYPTO_PROFILE={profile}")
                os.environ["CHONGJUN_CRYPTO_PROFILE"] = profile  # the spawned server inherits it
                side = msgspec.structs.replace(settings, crypto_profile=profile)
                result = uvloop.run(run_scan_bench(side, url=None, **options))
                _echo_scan_result(result)
                runs[profile].append(result)
    finally:
        if saved is None:
            os.environ.pop("CHONGJUN_CRYPTO_PROFILE", None)
        else:
            os.environ["CHONGJUN_CRYPTO_PROFILE"] = saved
    click.echo(f"=== {rounds} interleaved run(s) per profile; median of each; ratio = gm / intl")
    for label, field, better in (
        ("accepted scans/s", "accepted_per_second", "higher"),
        ("p50 ms", "p50_ms", "lower"),
        ("p99 ms", "p99_ms", "lower"),
        ("server CPU ms/scan", "server_cpu_ms_per_scan", "lower"),
    ):
        gm, intl = _median(runs["gm"], field), _median(runs["intl"], field)
        ratio = f"{gm / intl:.2f}x" if gm is not None and intl else "n/a"
        click.echo(f"  {label:<20} gm {gm!s:>9}   intl {intl!s:>9}   ratio {ratio} ({better} is better)")
    click.echo(f"  errors (anything but accepted): gm {[r.errors for r in runs['gm']]}, intl {[r.errors for r in runs['intl']]}")
    click.echo(_machine())
    click.echo(f"reproduce: {reproduce}")


def _median(results: list, field: str) -> float | None:
    values = [getattr(r, field) for r in results if getattr(r, field) is not None]
    return round(statistics.median(values), 2) if values else None


def _echo_scan_result(result) -> None:
    click.echo(
        f"scans: {result.accepted} accepted of {result.scans} in {result.seconds:.2f} s = "
        f"{result.accepted_per_second:.0f} accepted scans/s at {result.concurrency} connections, "
        f"{result.venues} venues x {result.devices} device(s)"
        + (f", {result.people} returning people" if result.people else "")
    )
    click.echo(
        f"latency ms: p50 {result.p50_ms:.2f}  p95 {result.p95_ms:.2f}  p99 {result.p99_ms:.2f}  max {result.max_ms:.2f}"
    )
    click.echo(f"errors (anything but accepted): {result.errors}  outcomes: {result.outcomes}")
    if result.tail_windows_at:
        click.echo(
            f"slowest 1%: {result.tail_share_in_3_windows:.0%} of them within three 0.25 s windows "
            f"(at {', '.join(f'{at:.2f}' for at in result.tail_windows_at)} s): near 100% is a stall, low a spread"
        )
    if result.connections_per_worker:
        click.echo("connections per server process (the kernel's draw): " + "/".join(map(str, result.connections_per_worker)))
    if result.worker_peak_rss_mb:
        rss = ", ".join(f"pid {pid}: {mb:.0f} MB" for pid, mb in result.worker_peak_rss_mb.items())
        click.echo(f"peak resident memory of the server's processes: {rss}")
    if result.server_cpu_ms_per_scan is not None:
        click.echo(f"server CPU (its Python processes, not PostgreSQL or Redis): {result.server_cpu_ms_per_scan:.2f} ms per scan")
    if result.postgres_cpu_ms_per_scan is not None:
        click.echo(f"PostgreSQL CPU (the server's embedded cluster): {result.postgres_cpu_ms_per_scan:.2f} ms per scan")
    click.echo(f"setup (not timed): {result.setup_seconds:.1f} s")


@bench.command("exchange")
@click.option("--events", default=100_000, show_default=True, type=click.IntRange(100, 10_000_000))
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 10_000))
def bench_exchange(events: int, batch_size: int) -> None:
    """Drain a backlog of N outbox events to a local HTTP receiver through the real relay."""
    with _servers() as servers:
        result = uvloop.run(run_exchange_bench(servers.settings, events=events, batch_size=batch_size, echo=click.echo))
    click.echo(
        f"exchange: {result.distinct} distinct events of {result.events} ({result.received} received, "
        f"{result.batches} batches of up to {result.batch_size}) in {result.seconds:.2f} s = "
        f"{result.events_per_second:.0f} events/s"
    )
    click.echo(_machine())
    click.echo(f"reproduce: ./dev bench exchange --events {events} --batch-size {batch_size}")


if __name__ == "__main__":
    main()
