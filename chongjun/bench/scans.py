"""`chongjun bench scans`: accepted scans per second and latency of `POST /v1/scans` over real HTTP.

Setup (not timed) goes through the public admin API of the server under test: a merchant with a
few venues (each with a daily capacity far above the run, so the capacity row is still taken on
every scan), a benefit for veterans with a 1-per-day cap offered at all of them (a fresh one each
run, so every person's quota is fresh), a synthetic roster of one person per scan, and scanner
devices at each venue. Scans are spread over the venues as a city's gates would spread them. Then it mints one simulated 随申码 per person with the dev city key of this
data directory (so it needs the server's `CHONGJUN_DATA_DIR`, like `chongjun suishen issue`).

The timed part drives `/v1/scans` from `concurrency` keep-alive connections, each scan with its
own Idempotency-Key, as a gate would. The client is a minimal HTTP/1.1 writer/reader on uvloop
with every request encoded beforehand: on a 2-core machine the load generator shares the CPU with
the server, so its own cost per request must stay small. Every scan presents a valid fresh code of
an eligible person, so every answer should be `accepted`; anything else is counted and shown.

Without `--url` the benchmark starts `chongjun serve --workers N` itself (with the device rate
limit raised, so the limit's Redis round trip still runs but never refuses) and samples the
resident memory of each worker during the run.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import msgspec
import psutil  # the memory and CPU of the server's processes

from chongjun.bench.exchange import LocalReceiver
from foundation.settings import Settings
from foundation.connections import open_connection
from identity import (
    CODE,
    CODE_PREFIX,
    DevCityIssuer,
    KeyRing,
    SecretStore,
    pii_vault,
    sign,
    synthetic_roster,
    synthetic_roster_csv,
)
from identity.codes import subject_for
from merchants.creditcode import make_credit_code

__all__ = ("ScanBench", "prepare_checkout", "run_scan_bench")

_BENCH_RATE_LIMIT = 10_000_000
"""Scans a minute per device for a spawned server: the limit is checked but never reached."""


class ScanBench(msgspec.Struct, frozen=True):
    scans: int
    people: int | None
    concurrency: int
    venues: int
    devices: int
    seconds: float
    accepted: int
    accepted_per_second: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    outcomes: dict[str, int]
    worker_peak_rss_mb: dict[int, float]
    server_cpu_ms_per_scan: float | None
    setup_seconds: float
    postgres_cpu_ms_per_scan: float | None = None
    """The PostgreSQL server's processes (the embedded cluster the bench's server started): where an
    extra part of a statement costs."""

    connections_per_worker: list[int] = []
    """How many of the bench's connections each server process held (largest first): which
    worker accepts a connection is the kernel's draw, and a lopsided split (say 21/11) puts the
    heavier worker's requests behind more of their own, so it shows in the latencies."""

    tail_share_in_3_windows: float = 0.0
    """Of the slowest 1% of scans, the share answered within the three quarter-seconds holding
    most of them (`_tail_in_windows`): near 1, the p99 is a stall; low, a spread."""
    tail_windows_at: list[float] = []
    """When those three windows were, in seconds from the start of the measured run."""

    @property
    def total_cpu_ms_per_scan(self) -> float | None:
        if self.server_cpu_ms_per_scan is None or self.postgres_cpu_ms_per_scan is None:
            return None
        return round(self.server_cpu_ms_per_scan + self.postgres_cpu_ms_per_scan, 3)


class _Gate(msgspec.Struct):
    venue_id: str
    device_token: str


class _World(msgspec.Struct):
    merchant_id: str
    benefit_id: str
    gates: list[_Gate]
    id_numbers: list[str]


def _percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _chongjun_executable() -> list[str]:
    beside = Path(sys.executable).parent / "chongjun"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("chongjun")
    if found:
        return [found]
    return [sys.executable, "-c", "from chongjun.cli import main; main()"]


class SpawnedServer:
    """`chongjun serve --workers N` on a free port, its output in a log file of the data dir.

    `checkout` runs another checkout's `chongjun` (its own `.venv`, in its directory) with this
    data dir, so its embedded PostgreSQL and Redis are its own (`--against`)."""

    def __init__(
        self, settings: Settings, *, workers: int, checkout: Path | None = None, extra_env: dict[str, str] | None = None
    ) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = settings.data_dir / "bench-serve.log"
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, CHONGJUN_DEVICE_SCAN_RATE=str(_BENCH_RATE_LIMIT), **(extra_env or {}))
        command = _chongjun_executable()
        if checkout is not None:
            command = [str(checkout / ".venv" / "bin" / "chongjun")]
            env["CHONGJUN_DATA_DIR"] = str(settings.data_dir.resolve())
            for variable in ("DATABASE_URL", "REDIS_URL", "VIRTUAL_ENV"):
                env.pop(variable, None)  # its own embedded servers: another schema than ours
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [*command, "serve", "--port", str(self.port), "--workers", str(workers)],
            stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=checkout,
        )

    async def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the server exited early; see {self.log_path}")
                try:
                    if (await client.get("/ready")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.25)
        raise RuntimeError(f"the server did not become ready in {timeout:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


def _server_processes(root_pid: int) -> list:
    try:
        root = psutil.Process(root_pid)
        family = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    ours = []
    for process in family:  # the server's Python processes, not an embedded redis-server it started
        try:
            if "python" in process.name() or "chongjun" in process.name():
                ours.append(process)
        except psutil.Error:
            continue
    return ours


def _cpu_seconds(root_pid: int | None) -> float | None:
    """User plus system CPU time so far of the server's processes (None when unknown)."""
    if root_pid is None:
        return None
    total = 0.0
    for process in _server_processes(root_pid):
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def _postgres_cpu_seconds(data_dir: Path | None) -> float | None:
    """User plus system CPU time so far of the PostgreSQL cluster in `data_dir` (its postmaster and
    every backend it forked), None when not given or not found."""
    if data_dir is None:
        return None
    pid_file = Path(data_dir) / "postmaster.pid"
    try:
        root = psutil.Process(int(pid_file.read_text().split()[0]))
        family = [root, *root.children(recursive=True)]
    except (OSError, ValueError, psutil.Error):
        return None
    total = 0.0
    for process in family:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def _listening_pid(port: int) -> int | None:
    """The server's root process: of the processes listening on `port`, the one whose parent is not."""
    listening = {
        conn.pid for conn in psutil.net_connections(kind="tcp")
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid
    }
    for pid in sorted(listening):
        try:
            if psutil.Process(pid).ppid() not in listening:
                return pid
        except psutil.Error:
            continue
    return None


async def _sample_rss(root_pid: int | None, peaks: dict[int, float], stop: asyncio.Event) -> None:
    """Peak resident memory of every process of the server (its workers and the parent)."""
    if root_pid is None:
        return
    while not stop.is_set():
        for process in _server_processes(root_pid):
            try:
                rss = process.memory_info().rss / 2**20
            except psutil.Error:
                continue
            peaks[process.pid] = max(peaks.get(process.pid, 0.0), rss)
        try:
            await asyncio.wait_for(stop.wait(), 0.2)
        except TimeoutError:
            pass


async def _build_world(
    url: str, *, admin: tuple[str, str], people: int, venues: int, devices: int, seed: int,
    capacity: int | None, returning: bool,
) -> _World:
    run = uuid.uuid4().hex[:6].upper()
    async with httpx.AsyncClient(base_url=url, timeout=300.0) as client:

        async def call(method: str, path: str, expect: int, **kwargs) -> dict:
            answer = await client.request(method, path, **kwargs)
            if answer.status_code != expect:
                raise RuntimeError(f"{method} {path} answered {answer.status_code}: {answer.text[:300]}")
            return answer.json()

        login = await call("POST", "/v1/auth/staff", 200, json={"username": admin[0], "password": admin[1]})
        headers = {"Authorization": "Bearer " + login["access_token"]}
        merchant = await call(
            "POST", "/v1/admin/merchants", 201, headers=headers,
            json={"name": f"压测商户 {run}", "credit_code": make_credit_code("310115", int(run, 16) % 10_000_000),
                  "district": "310115", "contact_name": "压测", "contact_phone": "021-00000000"},
        )
        venue_ids = []
        for number in range(venues):
            venue = await call(
                "POST", "/v1/admin/venues", 201, headers=headers,
                json={"merchant_id": merchant["id"], "name_zh": f"压测场馆 {run}-{number + 1}",
                      "name_en": f"Bench venue {run}-{number + 1}", "district": "310115", "address": "压测路 1 号",
                      "domain": "culture", "daily_capacity": capacity, "opening_hours": []},
            )
            venue_ids.append(venue["id"])
        benefit = await call(
            "POST", "/v1/admin/benefits", 201, headers=headers,
            json={"code": f"BENCH-{run}", "name_zh": f"压测权益 {run}", "name_en": f"Bench benefit {run}",
                  "domain": "culture", "value": {"kind": "free"},
                  "rule": {"op": "has_any_category", "categories": ["VETERAN"]},
                  "companions": {"max": 0}, "status": "active",
                  # Returning people come back all day: no per-person cap, or they would be refused.
                  "caps": [] if returning else [{"period": "day", "max": 1}],
                  "venue_ids": venue_ids},
        )
        # Eligible, active people only: every code the bench presents must be accepted.
        rows = [
            {**row, "categories": "VETERAN", "disability_grade": "", "disability_cause": "", "card_status": "ACTIVE"}
            for row in synthetic_roster(people, seed=seed)
        ]
        csv_text = synthetic_roster_csv(people, rows=rows)
        await call("POST", "/v1/admin/people/import", 200, headers={**headers, "content-type": "text/csv"},
                   content=csv_text.encode())
        gates = []
        for venue_id in venue_ids:
            for number in range(devices):
                device = await call("POST", "/v1/admin/devices", 201, headers=headers,
                                    json={"venue_id": venue_id, "label": f"bench gate {number + 1}"})
                token = await call("POST", "/v1/devices/token", 200,
                                   json={"device_id": device["device_id"], "secret": device["secret"]})
                gates.append(_Gate(venue_id, token["access_token"]))
    return _World(merchant["id"], benefit["benefit_id"], gates, [row["id_number"] for row in rows])


async def _retire_world(url: str, world: _World, *, admin: tuple[str, str], echo) -> None:
    """Take the run's benefit out of the catalog and close its merchant (its devices stop working).

    The ledger rows stay, as all ledger rows do; the synthetic people stay in the roster (the same
    seed gives the same people, so the next run re-imports them unchanged).
    """
    async with httpx.AsyncClient(base_url=url, timeout=60.0) as client:
        try:
            login = await client.post("/v1/auth/staff", json={"username": admin[0], "password": admin[1]})
            headers = {"Authorization": "Bearer " + login.json()["access_token"]}
            retired = await client.post(
                f"/v1/admin/benefits/{world.benefit_id}/status", json={"status": "retired"}, headers=headers
            )
            closed = await client.patch(f"/v1/admin/merchants/{world.merchant_id}", json={"status": "closed"}, headers=headers)
            if retired.status_code != 200 or closed.status_code != 200:
                echo(f"note: clean-up answered {retired.status_code} / {closed.status_code}")
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            echo(f"note: could not retire the bench benefit and merchant ({type(exc).__name__})")


async def _our_code_signer(settings: Settings, id_numbers: list[str]):
    """id number → a fresh 崇军码 of its holder, signed with the server's active key (so with the
    crypto profile's algorithm: SM2 under gm), valid 5 minutes (the longest a 崇军码 may live)."""
    vault = pii_vault(settings)
    ring = KeyRing(SecretStore.from_settings(settings))
    conn = await open_connection(settings)
    try:
        await ring.load(conn)
        rows = await conn.fetch(
            "SELECT id_hmac, id FROM people WHERE id_hmac = ANY($1::bytea[])", [vault.index_of(n) for n in id_numbers]
        )
    finally:
        await conn.close()
    alg = ring.active.alg
    subjects = {bytes(row["id_hmac"]): subject_for(ring, row["id"], alg) for row in rows}

    def code_of(id_number: str) -> str:
        return CODE_PREFIX + sign(ring, CODE, {"sub": subjects[vault.index_of(id_number)]}, ttl_seconds=300)

    return code_of


def _encode_requests(world: _World, settings: Settings, host: str, count: int, code_of=None) -> list[bytes]:
    """`count` ready-to-send HTTP requests, each with a fresh code (a simulated 随申码, or what
    `code_of(id_number)` makes): person `i % people` (so with fewer people than scans they
    return), the scans dealt round-robin to the gates."""
    issuer = DevCityIssuer(settings, pii_vault(settings))
    code_of = code_of or (lambda id_number: issuer.issue(id_number, ttl_seconds=3600))
    encode = msgspec.json.Encoder().encode
    requests = []
    for index in range(count):
        id_number = world.id_numbers[index % len(world.id_numbers)]
        gate = world.gates[index % len(world.gates)]
        body = encode({"code": code_of(id_number), "venue_id": gate.venue_id})
        head = (
            f"POST /v1/scans HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {gate.device_token}\r\n"
            f"Content-Type: application/json\r\nIdempotency-Key: {uuid.uuid4()}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        requests.append(head.encode() + body)
    return requests


class _HttpConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: write a request, read one Content-Length response."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._complete()

    def connection_lost(self, exc) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError("connection closed by the server"))

    def _complete(self) -> None:
        if self._waiter is None or self._waiter.done():
            return
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self._buffer[:end]).lower()
        marker = head.find(b"content-length:")
        if marker < 0:
            self._waiter.set_exception(ConnectionError("response without Content-Length"))
            return
        length = int(head[marker + 15 : head.find(b"\r\n", marker) if head.find(b"\r\n", marker) > 0 else None])
        total = end + 4 + length
        if len(self._buffer) < total:
            return
        status = int(head[9:12])
        body = bytes(self._buffer[end + 4 : total])
        del self._buffer[:total]
        self._waiter.set_result((status, body))

    async def send(self, request: bytes) -> tuple[int, bytes]:
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self._waiter


async def _connect(host: str, port: int, count: int) -> list[_HttpConnection]:
    loop = asyncio.get_running_loop()
    return [(await loop.create_connection(_HttpConnection, host, port))[1] for _ in range(count)]


async def _drive(
    connections: list[_HttpConnection], requests: list[bytes]
) -> tuple[list[float], Counter, float, list[float]]:
    """Send every request over the given keep-alive connections, each connection one at a time.
    Returns the latencies (ms), the outcomes, the seconds, and when each answer came (seconds
    from the start, in the latencies' order)."""
    latencies: list[float] = []
    finished: list[float] = []  # when each answer came, beside its latency: where the tail sits
    outcomes: Counter = Counter()
    cursor = iter(requests)
    decode = msgspec.json.Decoder().decode

    async def worker(connection: _HttpConnection) -> None:
        for request in cursor:
            started = time.perf_counter()
            try:
                status, body = await connection.send(request)
            except ConnectionError:
                outcomes["connection error"] += 1
                return
            now = time.perf_counter()
            latencies.append((now - started) * 1000)
            finished.append(now)
            if status == 200 and b'"decision":"accepted"' in body:
                outcomes["accepted"] += 1
            elif status == 200:
                outcomes[f"rejected:{decode(body).get('reason')}"] += 1
            else:
                outcomes[f"http {status}"] += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(connection) for connection in connections))
    elapsed = time.perf_counter() - started
    return latencies, outcomes, elapsed, [at - started for at in finished]


TAIL_WINDOW_SECONDS = 0.25


def _tail_in_windows(latencies: list[float], finished: list[float]) -> tuple[float, list[float]]:
    """Of the slowest 1% of answers, the share that came within the three quarter-seconds that
    hold most of them, and when those were (seconds into the run). A stall (something else
    taking the CPU or a lock for a moment) puts most of the tail into a few windows; a broad
    spread leaves it everywhere."""
    if len(latencies) < 100:
        return 0.0, []
    threshold = sorted(latencies)[int(0.99 * len(latencies))]
    windows = Counter(int(at / TAIL_WINDOW_SECONDS) for at, ms in zip(finished, latencies) if ms >= threshold)
    worst = windows.most_common(3)
    share = sum(count for _, count in worst) / max(1, sum(windows.values()))
    return round(share, 2), sorted(round(window * TAIL_WINDOW_SECONDS, 2) for window, _ in worst)


def _connections_per_worker(connections: list[_HttpConnection], port: int) -> list[int]:
    """How many of `connections` each server process holds (largest first; empty when unknown)."""
    ours = {c.transport.get_extra_info("sockname")[1] for c in connections if not c.transport.is_closing()}
    try:
        holders = Counter(
            held.pid for held in psutil.net_connections(kind="tcp")
            if held.pid and held.laddr and held.laddr.port == port and held.raddr and held.raddr.port in ours
        )
    except psutil.Error:
        return []
    return sorted(holders.values(), reverse=True)


async def run_scan_bench(
    settings: Settings,
    *,
    url: str | None,
    workers: int,
    scans: int,
    warmup: int,
    concurrency: int,
    venues: int,
    devices: int,
    admin: tuple[str, str],
    seed: int,
    people: int | None = None,
    capacity: int | None = 1_000_000,
    checkout: Path | None = None,
    code: str = "suishen",
    echo=print,
    pg_data_dir: Path | None = None,
    exchange: str = "none",
) -> ScanBench:
    """One run. `people`: that many people come back again and again (a benefit without a
    per-person cap); None: one person per scan under a 1/day cap. `capacity`: each venue's daily
    capacity (None: none). `checkout`: serve from that checkout instead (see SpawnedServer).
    `code`: `suishen` (a simulated 随申码 per scan) or `cj` (our 崇军码, which needs `settings` to
    name the server's PostgreSQL: the key ring and the roster are read from it). `exchange`:
    `none` (the outbox fills, nothing is delivered) or `http` (a receiver in this process is the
    started server's CHONGJUN_EXCHANGE_URL, so its relay delivers while the scans run)."""
    receiver = listener = None
    extra_env: dict[str, str] = {}
    if exchange == "http" and url is None:
        receiver = LocalReceiver()
        listener = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
        extra_env["CHONGJUN_EXCHANGE_URL"] = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}/ingest"
    server = SpawnedServer(settings, workers=workers, checkout=checkout, extra_env=extra_env) if url is None else None
    if pg_data_dir is None and server is not None and not settings.database_url:
        pg_data_dir = settings.data_dir / "pg"  # the embedded cluster that server starts
    try:
        if server is not None:
            echo(f"starting `chongjun serve --workers {workers}` on {server.url} (log: {server.log_path})")
            await server.wait_ready()
            url = server.url
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        root_pid = server.process.pid if server is not None else _listening_pid(port)

        started = time.perf_counter()
        total = scans + warmup
        who = f"{people} returning people, no per-person cap" if people else f"{total} people, a 1/day benefit"
        echo(
            f"setup: a fresh benefit at {venues} venue(s) (capacity {capacity or 'none'}) with {devices} device(s) each, "
            f"{who}, one fresh {'崇军码' if code == 'cj' else '随申码'} per scan ..."
        )
        world = await _build_world(
            url, admin=admin, people=people or total, venues=venues, devices=devices, seed=seed,
            capacity=capacity, returning=people is not None,
        )
        code_of = await _our_code_signer(settings, world.id_numbers) if code == "cj" else None
        requests = _encode_requests(world, settings, f"{host}:{port}", total, code_of)
        setup_seconds = time.perf_counter() - started
        # The load generator's own collector must not pause the clock it measures with.
        gc.collect()
        gc.freeze()

        # The same keep-alive connections for the warm-up and the measurement, as gates keep theirs:
        # what is measured is the steady state, not connection set-up.
        connections = await _connect(host, port, concurrency)
        echo(f"warm-up: {warmup} scans ...")
        await _drive(connections, requests[:warmup])
        if receiver is not None:
            # What earlier runs left in the outbox is delivered before the clock starts: measured
            # is the relay keeping up with the scans, not a backlog.
            async with asyncio.timeout(300):
                while time.monotonic() - receiver.last_at < 2.0:
                    await asyncio.sleep(0.25)
            before_run = receiver.received
        echo(f"measuring: {scans} scans over {concurrency} connections ...")
        peaks: dict[int, float] = {}
        stop = asyncio.Event()
        sampler = asyncio.create_task(_sample_rss(root_pid, peaks, stop))
        cpu_before, pg_before = _cpu_seconds(root_pid), _postgres_cpu_seconds(pg_data_dir)
        latencies, outcomes, elapsed, finished = await _drive(connections, requests[warmup:])
        tail_share, tail_at = _tail_in_windows(latencies, finished)
        split = _connections_per_worker(connections, port)
        for connection in connections:
            connection.transport.close()
        cpu_after, pg_after = _cpu_seconds(root_pid), _postgres_cpu_seconds(pg_data_dir)
        if receiver is not None:
            echo(f"exchange: the relay delivered {receiver.received - before_run} events to the local receiver during the run")
        stop.set()
        await sampler
        await _retire_world(url, world, admin=admin, echo=echo)
    finally:
        if server is not None:
            server.stop()
        if listener is not None:
            listener.close()
    latencies.sort()
    accepted = outcomes.get("accepted", 0)
    return ScanBench(
        scans=scans,
        people=people,
        concurrency=concurrency,
        venues=venues,
        devices=devices,
        seconds=round(elapsed, 2),
        accepted=accepted,
        accepted_per_second=round(accepted / elapsed, 1),
        p50_ms=round(_percentile(latencies, 0.50), 2),
        p95_ms=round(_percentile(latencies, 0.95), 2),
        p99_ms=round(_percentile(latencies, 0.99), 2),
        max_ms=round(latencies[-1], 2) if latencies else 0.0,
        errors=sum(count for outcome, count in outcomes.items() if outcome != "accepted"),
        outcomes=dict(outcomes),
        worker_peak_rss_mb={pid: round(mb, 1) for pid, mb in sorted(peaks.items())},
        server_cpu_ms_per_scan=None if cpu_before is None else round((cpu_after - cpu_before) * 1000 / scans, 3),
        postgres_cpu_ms_per_scan=None if pg_before is None or pg_after is None
        else round((pg_after - pg_before) * 1000 / scans, 3),
        setup_seconds=round(setup_seconds, 1),
        connections_per_worker=split,
        tail_share_in_3_windows=tail_share,
        tail_windows_at=tail_at,
    )


def prepare_checkout(against: str, *, data_dir: Path, echo=print) -> Path:
    """The checkout `--against` names: a directory with its own `.venv` (a worktree that has run
    `./dev` once), or a git revision of this repository, checked out (detached) under the data dir
    and given its `.venv` by its own `./dev --help` the first time (a few minutes)."""
    given = Path(against)
    if (given / ".venv" / "bin" / "chongjun").exists():
        return given.resolve()
    here = Path(__file__).resolve().parents[2]
    sha = subprocess.run(
        ["git", "-C", str(here), "rev-parse", "--verify", f"{against}^{{commit}}"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    tree = (data_dir / "against" / sha[:12]).resolve()
    if not (tree / "dev").exists():
        echo(f"checking out {against} ({sha[:12]}) into {tree} ...")
        tree.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "-C", str(here), "worktree", "add", "--detach", str(tree), sha], check=True)
    if not (tree / ".venv" / "bin" / "chongjun").exists():
        echo(f"building its .venv (./dev --help in {tree}) ...")
        subprocess.run([str(tree / "dev"), "--help"], check=True, cwd=tree, stdout=subprocess.DEVNULL)
    return tree
