"""Named secret byte strings (KEKs, peppers, AES keys) read from the secrets directory.

A secret `name` lives in the file `<secrets_dir>/<name>`, or, when it is versioned (so it can
be rotated), in `<name>.v1`, `<name>.v2`, ...; the highest version is the current one and the
older ones still decrypt what they sealed. A file holds the secret in base64 (standard or
url-safe, surrounding whitespace ignored), so operators can mount Kubernetes/Docker secrets as
they are. `CHONGJUN_SECRET_<NAME>` (upper case, `-` → `_`) overrides the unversioned file.

In dev a missing secret is generated once with `os.urandom` and written with mode 0600 (an
exclusive create, so two workers starting together agree on one value). In production a missing
secret is a startup error: generating one there would silently fork the keys between machines.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import threading
from pathlib import Path

from foundation.settings import Settings

__all__ = ("MissingSecret", "SecretStore", "VersionedSecret")

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_VERSIONED = re.compile(r"^(?P<name>[a-z0-9][a-z0-9_-]{0,62})\.v(?P<version>[1-9][0-9]{0,5})$")
MIN_BYTES = 32


class MissingSecret(RuntimeError):
    """A secret the process needs is absent (production) or unreadable."""


class VersionedSecret:
    """All versions of one secret; `current` seals, any known version opens."""

    __slots__ = ("name", "versions")

    def __init__(self, name: str, versions: dict[int, bytes]) -> None:
        self.name = name
        self.versions = dict(versions)

    @property
    def current_version(self) -> int:
        return max(self.versions)

    @property
    def current(self) -> bytes:
        return self.versions[self.current_version]

    def get(self, version: int) -> bytes:
        try:
            return self.versions[version]
        except KeyError:
            raise MissingSecret(f"secret {self.name!r} has no version {version}") from None


class SecretStore:
    """Reads (and in dev creates) secrets; values are cached for the life of the process."""

    def __init__(self, directory: Path, *, production: bool, environ: dict[str, str] | None = None) -> None:
        self.directory = Path(directory)
        self.production = production
        self._environ = os.environ if environ is None else environ
        self._cache: dict[str, bytes] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretStore:
        return cls(settings.resolved_secrets_dir, production=settings.is_production)

    def get(self, name: str, *, size: int = MIN_BYTES) -> bytes:
        """The unversioned secret `name` (at least `size` bytes)."""
        _check_name(name)
        with self._lock:
            if name not in self._cache:
                override = self._environ.get("CHONGJUN_SECRET_" + name.upper().replace("-", "_"))
                if override:
                    value = _decode(override, name)
                else:
                    value = self._read_or_create(self.directory / name, size)
                if len(value) < size:
                    raise MissingSecret(f"secret {name!r} is shorter than {size} bytes")
                self._cache[name] = value
            return self._cache[name]

    def versioned(self, name: str, *, size: int = MIN_BYTES) -> VersionedSecret:
        """Every version of `name`; in dev a first version is created if there is none."""
        _check_name(name)
        with self._lock:
            versions = self._read_versions(name)
            if not versions:
                versions = {1: self._read_or_create(self.directory / f"{name}.v1", size)}
            short = [v for v, value in versions.items() if len(value) < size]
            if short:
                raise MissingSecret(f"secret {name!r} version {short[0]} is shorter than {size} bytes")
            return VersionedSecret(name, versions)

    def rotate(self, name: str, *, size: int = MIN_BYTES) -> int:
        """Write a new random version of `name` and return its number (dev and operator tooling)."""
        current = self.versioned(name, size=size)
        version = current.current_version + 1
        self._write_new(self.directory / f"{name}.v{version}", os.urandom(size))
        return version

    def _read_versions(self, name: str) -> dict[int, bytes]:
        versions: dict[int, bytes] = {}
        if not self.directory.is_dir():
            return versions
        for path in self.directory.iterdir():
            match = _VERSIONED.match(path.name)
            if match and match["name"] == name:
                versions[int(match["version"])] = _decode(path.read_text(encoding="ascii"), path.name)
        return versions

    def _read_or_create(self, path: Path, size: int) -> bytes:
        if path.exists():
            return _decode(path.read_text(encoding="ascii"), path.name)
        if self.production:
            raise MissingSecret(
                f"secret file {path} is missing; production never generates secrets (see README, Configuration)"
            )
        value = os.urandom(size)
        if not self._write_new(path, value):
            # Another process created it first: theirs wins, so every worker shares one value.
            return _decode(path.read_text(encoding="ascii"), path.name)
        return value

    def _write_new(self, path: Path, value: bytes) -> bool:
        """Create `path` atomically: written to a private temp file, then hard-linked into place.

        `link` fails if the name exists, so a reader never sees a half-written file and two
        workers racing for the same secret end up with one value.
        """
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(base64.urlsafe_b64encode(value).decode() + "\n")
            try:
                os.link(temp, path)
            except FileExistsError:
                return False
            return True
        finally:
            temp.unlink(missing_ok=True)


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ValueError(f"bad secret name {name!r}")


def _decode(text: str, label: str) -> bytes:
    cleaned = "".join(text.split())
    try:
        if "-" in cleaned or "_" in cleaned:
            return base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise MissingSecret(f"secret {label!r} is not base64") from None
