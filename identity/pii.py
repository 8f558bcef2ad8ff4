"""Personal data of the roster: ID numbers (GB 11643), the blind index, AES-GCM sealing, masking.

- An ID number is normalised and checked (GB 11643-1999: region, birth date, ISO 7064 MOD 11-2
  check character) before anything else touches it.
- Lookup goes through a *blind index*: HMAC-SHA256 (HMAC-SM3 under the `gm` crypto profile)
  under a pepper that lives outside the database (`SecretStore`, secret `pii-index`). An ID
  number has only ~10^11 candidates, so an unkeyed hash would be reversed by brute force; the
  pepper is what makes the column useless without the key.
- Across a profile switch the index stays findable: the vault computes the profile's index and,
  as `other_index`, the other profile's; lookups ask for either (`CityIdentity.id_hmac_alt`), and
  the roster import rewrites each row it sees to the profile's index, so once a full roster was
  imported under the new profile every row carries the new index.
- Values the law needs back (the ID number, the full name) are sealed with AES-256-GCM (SM4-GCM
  under the `gm` crypto profile) under a versioned key (`pii-seal.vN`, a different secret from
  the pepper). The additional data binds the blob to its table, column and row, so a blob copied
  into another row does not open.
- Masked forms (`310***********1234`, `张*`, `欧阳**`) are what people and screens get.
"""

from __future__ import annotations

import hmac
import os
import struct
import unicodedata
from datetime import date
from typing import Literal, Protocol
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from foundation.errors import Invalid
from foundation.gmcrypto import SM4GCM, hkdf_sm3, hmac_sm3

__all__ = (
    "INDEX_SECRET",
    "SEAL_SECRET",
    "InvalidIdNumber",
    "PiiVault",
    "SealBroken",
    "birth_date_of",
    "id_checksum_char",
    "is_valid_id_number",
    "mask_id_number",
    "mask_name",
    "normalise_id_number",
)


class InvalidIdNumber(Invalid):
    """Not a resident ID number (GB 11643): wrong length, region, birth date or check character."""

    type = "invalid-id-number"
    title = "Not a valid resident ID number"


class SealBroken(Exception):
    """A sealed PII value did not open: altered, moved to another row, or its key is gone.

    A server-side integrity failure (500 and an alert), never a client error.
    """


INDEX_SECRET = "pii-index"
SEAL_SECRET = "pii-seal"

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"
# GB/T 2260 province-level prefixes (first two digits of a resident ID number).
_PROVINCES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 65 71 81 82".split()
)
_EARLIEST_BIRTH = date(1890, 1, 1)


def id_checksum_char(first17: str) -> str:
    """The GB 11643 check character (ISO 7064 MOD 11-2) of the first 17 digits."""
    total = sum(int(digit) * weight for digit, weight in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def _birth_date(digits8: str) -> date | None:
    try:
        return date(int(digits8[:4]), int(digits8[4:6]), int(digits8[6:8]))
    except ValueError:
        return None


def normalise_id_number(raw: str, *, today: date | None = None) -> str:
    """The canonical 18-character form of a resident ID number, or InvalidIdNumber.

    Full-width digits and spaces are folded (NFKC), `x` becomes `X`, and a 15-digit number of the
    1985 series is upgraded to 18 characters (century `19` inserted, check character computed),
    so both spellings of one person give one blind index. The exception never carries the value.
    """
    if not isinstance(raw, str) or len(raw) > 64:
        raise InvalidIdNumber("not an ID number")
    value = unicodedata.normalize("NFKC", raw).replace(" ", "").replace("-", "").strip().upper()
    if len(value) == 15 and value.isascii() and value.isdigit():
        first17 = value[:6] + "19" + value[6:]
        value = first17 + id_checksum_char(first17)
    if len(value) != 18 or not value.isascii() or not value[:17].isdigit() or value[17] not in "0123456789X":
        raise InvalidIdNumber("an ID number has 17 digits and a check character")
    if value[:2] not in _PROVINCES:
        raise InvalidIdNumber("unknown region code")
    born = _birth_date(value[6:14])
    if born is None or born < _EARLIEST_BIRTH or born > (today or date.today()):
        raise InvalidIdNumber("the birth date in the ID number is not a real date")
    if id_checksum_char(value[:17]) != value[17]:
        raise InvalidIdNumber("the check character does not match")
    return value


def is_valid_id_number(raw: str) -> bool:
    try:
        normalise_id_number(raw)
    except InvalidIdNumber:
        return False
    return True


def birth_date_of(id_number: str) -> date:
    """The birth date written in a *normalised* ID number."""
    born = _birth_date(id_number[6:14])
    if born is None:
        raise InvalidIdNumber("the birth date in the ID number is not a real date")
    return born


def mask_id_number(value: str) -> str:
    """`310***********1234`: the first 3 and last 4 characters, never more.

    Shorter or malformed values (as found in a bad roster line) keep nothing but their length
    class, so an error report never shows more than 7 characters of whatever was typed.
    """
    value = value.strip()
    if len(value) >= 14:
        return value[:3] + "*" * (len(value) - 7) + value[-4:]
    return "*" * max(len(value), 1)


# 复姓 (two-character surnames) common enough to matter; the rest are one character.
_COMPOUND_SURNAMES = frozenset(
    "欧阳 司马 上官 诸葛 东方 皇甫 尉迟 公孙 慕容 令狐 长孙 宇文 夏侯 轩辕 司徒 独孤 南宫 西门 百里 呼延 "
    "端木 申屠 太史 公羊 澹台 濮阳 淳于 单于 钟离 万俟 闻人 赫连 拓跋 东郭 司空 即墨 第五".split()
)


def mask_name(name: str) -> str:
    """`张*`, `张**`, `欧阳**`: the surname and one `*` per other character.

    A compound surname is kept whole only when a given name follows it; a one-character name is
    masked entirely; the middle dot of minority names (`·`) is masked like any character.
    """
    name = unicodedata.normalize("NFC", name.strip())
    if len(name) <= 1:
        return "*"
    keep = 2 if name[:2] in _COMPOUND_SURNAMES and len(name) > 2 else 1
    return name[:keep] + "*" * (len(name) - keep)


class SecretSource(Protocol):
    """What the vault needs from `identity.SecretStore`."""

    def get(self, name: str, *, size: int = ...) -> bytes: ...

    def versioned(self, name: str, *, size: int = ...): ...


_VERSION = struct.Struct(">H")
_SM4_FLAG = 0x8000
_NONCE_BYTES = 12


class PiiVault:
    """Blind index and AES-256-GCM or SM4-GCM sealing with a versioned key; thread-safe, stateless.

    A sealed blob is `word (2 bytes, big-endian) || nonce (12 random bytes) || ciphertext||tag`.
    The word's low 15 bits are the key version; its top bit names the cipher: 0 AES-256-GCM under
    the version's key, 1 SM4-GCM (the `gm` crypto profile) under a 16-byte key derived from it
    (HKDF-SM3, info `chongjun pii-seal sm4`). `cipher` picks what `seal` writes; `open` reads
    both, so a blob sealed under either profile opens under the other.
    Nonces are random: under one key version keep well below 2^32 seals (NIST SP 800-38D); a
    re-import reuses an unchanged blob instead of sealing again, and `pii-seal` is rotated by
    adding a version.
    """

    def __init__(
        self,
        *,
        index_key: bytes,
        seal_keys: dict[int, bytes],
        current_version: int | None = None,
        cipher: Literal["aes-256-gcm", "sm4-gcm"] = "aes-256-gcm",
    ) -> None:
        if len(index_key) < 32:
            raise ValueError("the blind-index pepper needs at least 32 bytes")
        if not seal_keys or any(len(key) != 32 for key in seal_keys.values()):
            raise ValueError("AES-256-GCM needs 32-byte keys")
        if any(not 0 < version < _SM4_FLAG for version in seal_keys):
            raise ValueError("seal key versions are 1..32767")
        if cipher not in ("aes-256-gcm", "sm4-gcm"):
            raise ValueError(f"unknown cipher {cipher!r}")
        self._index_key = index_key
        self.cipher = cipher
        self.index_alg: Literal["hmac-sha256", "hmac-sm3"] = "hmac-sm3" if cipher == "sm4-gcm" else "hmac-sha256"
        self._aead: dict[int, AESGCM | SM4GCM] = {version: AESGCM(key) for version, key in seal_keys.items()}
        self._aead.update(
            {version | _SM4_FLAG: SM4GCM(hkdf_sm3(key, b"chongjun pii-seal sm4", 16)) for version, key in seal_keys.items()}
        )
        self.current_version = current_version if current_version is not None else max(seal_keys)
        if self.current_version not in self._aead:
            raise ValueError("the current seal key version is not among the keys")

    @classmethod
    def from_secrets(cls, store: SecretSource, *, profile: str = "intl") -> PiiVault:
        seal = store.versioned(SEAL_SECRET, size=32)
        return cls(
            index_key=store.get(INDEX_SECRET, size=32),
            seal_keys={version: value[:32] for version, value in seal.versions.items()},
            current_version=seal.current_version,
            cipher="sm4-gcm" if profile == "gm" else "aes-256-gcm",
        )

    def _index(self, alg: str, normalised_id_number: str) -> bytes:
        data = normalised_id_number.encode("ascii")
        return hmac_sm3(self._index_key, data) if alg == "hmac-sm3" else hmac.digest(self._index_key, data, "sha256")

    def blind_index(self, normalised_id_number: str) -> bytes:
        """The profile's index of a normalised ID number (32 bytes): HMAC-SHA256, or HMAC-SM3 under
        gm, under the `pii-index` pepper; equal numbers give equal indexes."""
        return self._index(self.index_alg, normalised_id_number)

    def other_index(self, normalised_id_number: str) -> bytes:
        """The other profile's index: what a row enrolled before a profile switch still carries."""
        return self._index("hmac-sha256" if self.index_alg == "hmac-sm3" else "hmac-sm3", normalised_id_number)

    def index_of(self, raw_id_number: str) -> bytes:
        """Normalise, check and index in one step (InvalidIdNumber on a bad number)."""
        return self.blind_index(normalise_id_number(raw_id_number))

    def indexes_of(self, raw_id_number: str) -> tuple[bytes, bytes]:
        """The profile's and the other profile's index (InvalidIdNumber on a bad number)."""
        normalised = normalise_id_number(raw_id_number)
        return self.blind_index(normalised), self.other_index(normalised)

    @staticmethod
    def _aad(table: str, column: str, row: UUID | str, word: int) -> bytes:
        # AES blobs keep the AAD they always had; SM4 ones name their cipher too.
        suffix = "/sm4" if word & _SM4_FLAG else ""
        return f"chongjun/{table}/{column}/{row}/v{word & ~_SM4_FLAG}{suffix}".encode()

    def is_current(self, blob: bytes) -> bool:
        """Sealed under the current key version with the current cipher (else: re-seal it)."""
        return len(blob) >= _VERSION.size and _VERSION.unpack_from(blob)[0] == self._word

    @property
    def _word(self) -> int:
        return self.current_version | (_SM4_FLAG if self.cipher == "sm4-gcm" else 0)

    def seal(self, plaintext: str, *, table: str, column: str, row: UUID | str) -> bytes:
        version = self._word
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead[version].encrypt(nonce, plaintext.encode("utf-8"), self._aad(table, column, row, version))
        return _VERSION.pack(version) + nonce + sealed

    def open(self, blob: bytes, *, table: str, column: str, row: UUID | str) -> str:
        """The plaintext, or SealBroken when the blob was altered, moved or its key is unknown."""
        if len(blob) < _VERSION.size + _NONCE_BYTES + 16:
            raise SealBroken("sealed value is truncated")
        (version,) = _VERSION.unpack_from(blob)
        aead = self._aead.get(version)
        if aead is None:
            raise SealBroken(f"no seal key of version {version & ~_SM4_FLAG}")
        nonce = blob[_VERSION.size : _VERSION.size + _NONCE_BYTES]
        try:
            plain = aead.decrypt(nonce, blob[_VERSION.size + _NONCE_BYTES :], self._aad(table, column, row, version))
        except InvalidTag:
            raise SealBroken("sealed value does not open here (altered, or moved from another row)") from None
        return plain.decode("utf-8")

    @staticmethod
    def version_of(blob: bytes) -> int:
        """The key version a blob was sealed under (whichever cipher)."""
        return _VERSION.unpack_from(blob)[0] & ~_SM4_FLAG
