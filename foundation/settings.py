"""Settings read once from the environment."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Literal

import msgspec

__all__ = ("Settings", "load_settings")


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the process needs to know about where it runs.

    Frozen so that no request can change configuration under another one.
    """

    env: Literal["dev", "production"] = "dev"
    """`production` refuses dev-only parts (the simulated city platform, pending migrations)."""
    database_url: str | None = None
    """PostgreSQL DSN the service connects with; None means start the embedded server in `data_dir`."""
    database_owner_url: str | None = None
    """PostgreSQL DSN of the role that owns the schema, for migrations; None: `database_url`."""
    database_replica_url: str | None = None
    """A streaming replica (hot standby) of `database_url`'s cluster, as the service role: stats,
    reports, ledger lists, a person's history and matching read there while it is at most
    `replica_max_lag_seconds` behind, else from the primary (docs/architecture.md, "Reads on a
    replica"). None: every read goes to the primary."""
    replica_max_lag_seconds: float = 5.0
    """The staleness bound of replica reads: a replica further behind (or down) is not used."""
    replica_check_seconds: float = 1.0
    """How often each worker measures the replica's lag (two one-row queries, one on each server)."""
    audit_checkpoint_seconds: int = 300
    """How often a worker signs a checkpoint of the audit archive when entries were added; 0: never."""
    rating_case_due_hours: int = 120
    """How long a 差评 case may stay open before it is overdue and escalated to the city (default 5 days)."""
    redis_url: str | None = None
    """Redis URL; None means start the embedded server in `data_dir`."""
    redis_cluster: bool = False
    """`CHONGJUN_REDIS_CLUSTER=1`: `redis_url` names any node of a Redis Cluster and the app talks to
    the cluster (`foundation.connections.connect_redis`). Every key one command or script touches
    together shares one hash tag (docs/architecture.md, "Redis keys"), so nothing spans slots."""
    data_dir: Path = Path(".chongjun")
    """Embedded servers' data and, in dev, our signing keys."""
    device_scan_rate: int = 120
    """Scans per minute per device; 0 turns the limit off (load tests)."""
    reversal_window_seconds: int = 30 * 60
    """How long after an accepted scan the venue may reverse it."""
    offline_accepts_per_hour: int = 60
    """Offline budget (issue 15): accepts a gate may decide offline per clock hour; more are conflicts on upload."""
    offline_accepts_per_person_day: int = 1
    """Offline budget: accepts of one holder per gate and Shanghai day while offline."""
    offline_bundle_seconds: int = 12 * 3600
    """How long a downloaded offline bundle lets a gate decide offline (its `exp`)."""
    offline_upload_seconds: int = 72 * 3600
    """How old an offline decision may be when it is uploaded; older ones are rejected."""
    pool_min_size: int = 2
    pool_max_size: int = 20
    max_body_bytes: int = 1024 * 1024
    log_level: str = "INFO"
    secrets_dir: Path | None = None
    """In production: a directory of secret files (keys, peppers); in dev, `data_dir/secrets`."""
    public_url: str | None = None
    """The address people, gates and verifiers reach us at (`https://chongjun.example.gov.cn`): the
    issuer of credentials, the status list's and trust list's URLs, the API address in a device's
    setup QR. Required in production, because these outlive the request that made them and must not
    follow whatever `Host` header a caller sent; in dev, None takes it from the request."""
    city_platform_url: str | None = None
    """The city platform's online 验码 endpoint; None in dev uses the built-in simulator."""
    crypto_profile: Literal["intl", "gm"] = "intl"
    """`intl`: Ed25519 signatures, AES-256-GCM, HMAC-SHA256. `gm` (国密, GB/T 39786): SM2 with SM3
    signatures, SM4-GCM sealing, HMAC-SM3 for the ID-number index. What was made under one
    profile keeps verifying and opening under the other (docs/compliance.md)."""
    admin_totp: Literal["auto", "required", "optional"] = "auto"
    """Whether an admin must log in with a TOTP code (等保 level 3, two factors): `required` refuses an
    admin login without an enrolled TOTP secret and an admin account created without one;
    `optional` does not; `auto` is `required` in production and `optional` in dev."""
    trusted_proxies: tuple[str, ...] = ()
    """Addresses or networks of our reverse proxies. A request from one of them has its client taken
    from `X-Forwarded-For` (the nearest address that is not a proxy of ours); from anyone else the
    header is ignored, so it cannot be used to dodge the per-client login throttle."""

    exchange_url: str | None = None
    """The data center's endpoint (issue 13): the relay POSTs sealed batches of events there."""
    exchange_dir: Path | None = None
    """Without a URL, a directory for the development file sink (rotating NDJSON)."""
    exchange_relay: Literal["serve", "off"] = "serve"
    """`serve`: every worker of `chongjun serve` runs a relay and one of them holds the lease;
    `off`: only a separate `chongjun relay` process delivers."""
    exchange_batch_size: int = 500
    exchange_timeout_seconds: float = 10.0
    exchange_backoff_max_seconds: float = 30.0
    """The cap of the relay's exponential backoff (with full jitter) between failed attempts."""
    exchange_retention_days: int = 30
    """`chongjun prune` removes delivered events older than this; undelivered ones never."""
    exchange_lag_warning_seconds: int = 300
    """Outbox lag above this raises the data-quality warning `exchange.lag`."""
    quality_interval_seconds: int = 60
    """How often `serve` runs the data-quality checks (one worker at a time); 0: only after imports."""

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def admin_totp_required(self) -> bool:
        return self.admin_totp == "required" or (self.admin_totp == "auto" and self.is_production)

    @property
    def migration_url(self) -> str | None:
        """The DSN migrations run with: the owner's, else the service's."""
        return self.database_owner_url or self.database_url

    @property
    def resolved_secrets_dir(self) -> Path:
        return self.secrets_dir or (self.data_dir / "secrets")


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Read `CHONGJUN_*`, `DATABASE_URL` and `REDIS_URL`; unknown values fail loudly at start."""
    env = os.environ if environ is None else environ
    raw: dict[str, object] = {}
    mapping = {
        "CHONGJUN_ENV": "env",
        "DATABASE_URL": "database_url",
        "DATABASE_OWNER_URL": "database_owner_url",
        "DATABASE_REPLICA_URL": "database_replica_url",
        "CHONGJUN_REPLICA_MAX_LAG_SECONDS": "replica_max_lag_seconds",
        "CHONGJUN_REPLICA_CHECK_SECONDS": "replica_check_seconds",
        "CHONGJUN_AUDIT_CHECKPOINT_SECONDS": "audit_checkpoint_seconds",
        "CHONGJUN_RATING_CASE_DUE_HOURS": "rating_case_due_hours",
        "REDIS_URL": "redis_url",
        "CHONGJUN_REDIS_CLUSTER": "redis_cluster",
        "CHONGJUN_DATA_DIR": "data_dir",
        "CHONGJUN_DEVICE_SCAN_RATE": "device_scan_rate",
        "CHONGJUN_REVERSAL_WINDOW_SECONDS": "reversal_window_seconds",
        "CHONGJUN_OFFLINE_ACCEPTS_PER_HOUR": "offline_accepts_per_hour",
        "CHONGJUN_OFFLINE_ACCEPTS_PER_PERSON_DAY": "offline_accepts_per_person_day",
        "CHONGJUN_OFFLINE_BUNDLE_SECONDS": "offline_bundle_seconds",
        "CHONGJUN_OFFLINE_UPLOAD_SECONDS": "offline_upload_seconds",
        "CHONGJUN_POOL_MIN_SIZE": "pool_min_size",
        "CHONGJUN_POOL_MAX_SIZE": "pool_max_size",
        "CHONGJUN_LOG_LEVEL": "log_level",
        "CHONGJUN_SECRETS_DIR": "secrets_dir",
        "CHONGJUN_PUBLIC_URL": "public_url",
        "CHONGJUN_CITY_PLATFORM_URL": "city_platform_url",
        "CHONGJUN_CRYPTO_PROFILE": "crypto_profile",
        "CHONGJUN_ADMIN_TOTP": "admin_totp",
        "CHONGJUN_EXCHANGE_URL": "exchange_url",
        "CHONGJUN_EXCHANGE_DIR": "exchange_dir",
        "CHONGJUN_EXCHANGE_RELAY": "exchange_relay",
        "CHONGJUN_EXCHANGE_BATCH_SIZE": "exchange_batch_size",
        "CHONGJUN_EXCHANGE_TIMEOUT_SECONDS": "exchange_timeout_seconds",
        "CHONGJUN_EXCHANGE_BACKOFF_MAX_SECONDS": "exchange_backoff_max_seconds",
        "CHONGJUN_EXCHANGE_RETENTION_DAYS": "exchange_retention_days",
        "CHONGJUN_EXCHANGE_LAG_WARNING_SECONDS": "exchange_lag_warning_seconds",
        "CHONGJUN_QUALITY_INTERVAL_SECONDS": "quality_interval_seconds",
    }
    for variable, field in mapping.items():
        value = env.get(variable)
        if value not in (None, ""):
            raw[field] = value
    proxies = env.get("CHONGJUN_TRUSTED_PROXIES", "")
    raw["trusted_proxies"] = tuple(
        network for item in proxies.split(",") if item.strip() for network in _networks(item.strip())
    )
    settings = msgspec.convert(raw, Settings, strict=False, dec_hook=_decode_path)
    if settings.redis_cluster and not settings.redis_url:
        # The embedded default is one server; a cluster is always the operator's own.
        raise ValueError("CHONGJUN_REDIS_CLUSTER=1 needs REDIS_URL naming a node of the cluster")
    return settings


def _networks(value: str) -> list[str]:
    """One entry of CHONGJUN_TRUSTED_PROXIES, checked at start: an IP address or a CIDR network.

    An IPv4 entry also yields its IPv4-mapped IPv6 form: on a dual-stack listener the proxy's
    peer address arrives as ::ffff:a.b.c.d, and without it the header would be silently ignored.
    """
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"CHONGJUN_TRUSTED_PROXIES: {value!r} is not an IP address or network") from None
    if isinstance(network, ipaddress.IPv4Network):
        mapped = ipaddress.ip_network(f"::ffff:{network.network_address}/{96 + network.prefixlen}")
        return [str(network), str(mapped)]
    return [str(network)]


def _decode_path(kind: type, value: object) -> object:
    if kind is Path and isinstance(value, str):
        return Path(value)
    raise NotImplementedError(f"cannot read {kind} from the environment")
