"""SM2 signatures (GB/T 32918) from the system's OpenSSL (libcrypto 3.x), through ctypes.

Why this module exists: `cryptography` has SM3 and SM4 but no SM2 keys (50.0.2, the newest
release), the one Tongsuo binding on PyPI (`tongsuopy` 1.0.1) was last released in 2023 and
measured here at ~750 verifies/s, and the pure-Python `gmssl` takes ~25 ms a verify and draws its
signing nonce from `random`. OpenSSL's EVP interface does SM2 at a few thousand operations a
second per core, and every Debian machine has it: this is the smallest layer that reaches it.

What it does, and nothing more:
- `SM2PrivateKey.generate()`, `.sign(message)`; `SM2PublicKey.verify(signature, message)`.
  Signing is SM2 with the SM3 digest over Z_A ‖ M (GB/T 32918.2 §6.1), Z_A computed by OpenSSL
  with the distinguishing identifier `1234567812345678` (GM/T 0009's default) unless another is
  given. The nonce is OpenSSL's (its DRBG), never Python's.
- Signatures are DER (`SEQUENCE {r, s}`, GM/T 0009 and what `openssl pkeyutl` writes) or raw
  `r ‖ s`, 32 bytes each (the JWS form, as ES256 in RFC 7518 §3.4): `der_to_raw`, `raw_to_der`.
- Keys in and out as PKCS#8 / SubjectPublicKeyInfo, DER or PEM, as the raw scalar (32 bytes),
  or as the uncompressed point (`04 ‖ x ‖ y`).

Every OpenSSL object is freed when its Python owner goes; every failing call raises `SM2Error`
(verification answers False instead). The library handles are set up once, at import.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import weakref
from typing import Self

__all__ = (
    "CURVE_OID",
    "DEFAULT_ID",
    "N",
    "SM2Error",
    "SM2PrivateKey",
    "SM2PublicKey",
    "der_to_raw",
    "openssl_version",
    "raw_to_der",
)

DEFAULT_ID = b"1234567812345678"
"""The default distinguishing identifier of GM/T 0009-2012 (hex 31323334353637383132333435363738)."""
CURVE_OID = "1.2.156.10197.1.301"
N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
"""The order of the recommended curve's base point (GB/T 32918.5)."""

# DER prefixes of the two key containers for the recommended curve: id-ecPublicKey with the
# named curve sm2p256v1 (1.2.156.10197.1.301). Fixed lengths, so a prefix is all it takes.
_ALGORITHM = bytes.fromhex("3013" "06072a8648ce3d0201" "06082a811ccf5501822d")
_SPKI_PREFIX = bytes.fromhex("3059") + _ALGORITHM + bytes.fromhex("034200")
_PKCS8_PREFIX = bytes.fromhex("3041" "020100") + _ALGORITHM + bytes.fromhex("0427" "3025" "020101" "0420")


class SM2Error(Exception):
    """OpenSSL refused an SM2 operation (bad key bytes, no SM2 in this libcrypto, ...)."""


def _load() -> ctypes.CDLL:
    name = os.environ.get("CHONGJUN_LIBCRYPTO") or ctypes.util.find_library("crypto") or "libcrypto.so.3"
    lib = ctypes.CDLL(name)
    P, I, S = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t
    PP = ctypes.POINTER(ctypes.c_void_p)
    signatures = {
        "OpenSSL_version_num": ([], ctypes.c_ulong),
        "OpenSSL_version": ([I], ctypes.c_char_p),
        "ERR_clear_error": ([], None),
        "EVP_PKEY_free": ([P], None),
        "EVP_PKEY_is_a": ([P, ctypes.c_char_p], I),
        "EVP_PKEY_CTX_new_from_name": ([P, ctypes.c_char_p, P], P),
        "EVP_PKEY_CTX_new_from_pkey": ([P, P, P], P),
        "EVP_PKEY_CTX_free": ([P], None),
        "EVP_PKEY_keygen_init": ([P], I),
        "EVP_PKEY_generate": ([P, PP], I),
        "EVP_PKEY_CTX_set1_id": ([P, ctypes.c_char_p, I], I),
        "EVP_PKEY_get_octet_string_param": ([P, ctypes.c_char_p, ctypes.c_char_p, S, ctypes.POINTER(S)], I),
        "EVP_PKEY_get_bn_param": ([P, ctypes.c_char_p, PP], I),
        "BN_bn2binpad": ([P, ctypes.c_char_p, I], I),
        "BN_clear_free": ([P], None),
        "d2i_PUBKEY": ([PP, ctypes.POINTER(ctypes.c_char_p), ctypes.c_long], P),
        "d2i_AutoPrivateKey": ([PP, ctypes.POINTER(ctypes.c_char_p), ctypes.c_long], P),
        "i2d_PUBKEY": ([P, ctypes.POINTER(ctypes.c_char_p)], I),
        "EVP_MD_CTX_new": ([], P),
        "EVP_MD_CTX_free": ([P], None),
        "EVP_MD_CTX_set_pkey_ctx": ([P, P], None),
        "EVP_sm3": ([], P),
        "EVP_DigestSignInit": ([P, P, P, P, P], I),
        "EVP_DigestSign": ([P, ctypes.c_char_p, ctypes.POINTER(S), ctypes.c_char_p, S], I),
        "EVP_DigestVerifyInit": ([P, P, P, P, P], I),
        "EVP_DigestVerify": ([P, ctypes.c_char_p, S, ctypes.c_char_p, S], I),
    }
    for symbol, (argtypes, restype) in signatures.items():
        function = getattr(lib, symbol)
        function.argtypes, function.restype = argtypes, restype
    if lib.OpenSSL_version_num() < 0x30000000:
        raise SM2Error("SM2 needs OpenSSL 3.0 or later")
    return lib


_lib = _load()
_SM3 = _lib.EVP_sm3()


def openssl_version() -> str:
    """The libcrypto this process signs with, e.g. `OpenSSL 3.0.19 27 Jan 2026`."""
    return _lib.OpenSSL_version(0).decode()


def _fail(what: str) -> SM2Error:
    _lib.ERR_clear_error()
    return SM2Error(what)


def _owned(owner: object, pkey: int | None) -> int:
    if not pkey:
        raise _fail("OpenSSL returned no key")
    if _lib.EVP_PKEY_is_a(pkey, b"SM2") != 1:
        _lib.EVP_PKEY_free(pkey)
        raise _fail("not an SM2 key")
    weakref.finalize(owner, _lib.EVP_PKEY_free, pkey)
    return pkey


def _d2i(function, der: bytes) -> int | None:
    if not isinstance(der, bytes | bytearray | memoryview):
        raise TypeError("key bytes expected")
    data = bytes(der)
    cursor = ctypes.c_char_p(data)
    return function(None, ctypes.byref(cursor), len(data))


def _pem_body(pem: bytes | str, label: str) -> bytes:
    import base64

    text = pem.decode("ascii") if isinstance(pem, bytes | bytearray) else pem
    begin, end = f"-----BEGIN {label}-----", f"-----END {label}-----"
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        raise SM2Error(f"no {label} block")
    try:
        return base64.b64decode("".join(text[start + len(begin) : stop].split()), validate=True)
    except ValueError:
        raise SM2Error(f"bad base64 in the {label} block") from None


def _pem(der: bytes, label: str) -> bytes:
    import base64

    body = base64.b64encode(der).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return ("\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"]) + "\n").encode()


def _check_id(distid: bytes) -> bytes:
    # ENTL is two bytes of bit length (GB/T 32918.2 §5.5), so an ID has at most 8191 bytes.
    if not isinstance(distid, bytes) or len(distid) >= 8192:
        raise SM2Error("a distinguishing identifier is at most 8191 bytes")
    return distid


class _SM2Key:
    """An OpenSSL EVP_PKEY known to be SM2, freed with its owner; read from DER or PEM by the
    subclass's `_READER` (the d2i function's name) and `_LABEL` (the PEM block's)."""

    __slots__ = ("_pkey", "__weakref__")
    _READER: str
    _LABEL: str

    def __init__(self, _pkey: int) -> None:
        self._pkey = _owned(self, _pkey)

    @classmethod
    def from_der(cls, der: bytes) -> Self:
        return cls(_d2i(getattr(_lib, cls._READER), der))

    @classmethod
    def from_pem(cls, pem: bytes | str) -> Self:
        return cls.from_der(_pem_body(pem, cls._LABEL))

    def der(self) -> bytes:
        raise NotImplementedError

    def _point(self) -> bytes:
        """The public point `04 ‖ x ‖ y` (a private key has one too)."""
        buffer = ctypes.create_string_buffer(65)
        size = ctypes.c_size_t(0)
        if _lib.EVP_PKEY_get_octet_string_param(self._pkey, b"encoded-pub-key", buffer, 65, ctypes.byref(size)) != 1:
            raise _fail("no public point")
        return buffer.raw[: size.value]

    def pem(self) -> bytes:
        return _pem(self.der(), self._LABEL)


class SM2PublicKey(_SM2Key):
    """An SM2 public key on the recommended curve; `verify` is the only operation. `from_der`
    reads a SubjectPublicKeyInfo (id-ecPublicKey, curve sm2p256v1), `from_pem` its PUBLIC KEY block."""

    __slots__ = ()
    _READER, _LABEL = "d2i_PUBKEY", "PUBLIC KEY"

    @classmethod
    def from_point(cls, point: bytes) -> SM2PublicKey:
        """From the uncompressed point `04 ‖ x ‖ y` (65 bytes); OpenSSL checks it is on the curve."""
        if len(point) != 65 or point[0] != 4:
            raise SM2Error("an SM2 public point is 04 ‖ x ‖ y, 65 bytes")
        return cls.from_der(_SPKI_PREFIX + bytes(point))

    @classmethod
    def from_xy(cls, x: bytes, y: bytes) -> SM2PublicKey:
        if len(x) != 32 or len(y) != 32:
            raise SM2Error("SM2 coordinates are 32 bytes each")
        return cls.from_point(b"\x04" + x + y)

    def der(self) -> bytes:
        out = ctypes.c_char_p(None)
        length = _lib.i2d_PUBKEY(self._pkey, None)
        if length <= 0:
            raise _fail("i2d_PUBKEY")
        buffer = ctypes.create_string_buffer(length)
        out = ctypes.cast(buffer, ctypes.c_char_p)
        if _lib.i2d_PUBKEY(self._pkey, ctypes.byref(out)) != length:
            raise _fail("i2d_PUBKEY")
        return buffer.raw

    def point(self) -> bytes:
        """`04 ‖ x ‖ y`, 65 bytes."""
        return self._point()

    def verify(self, signature: bytes, message: bytes, *, distid: bytes = DEFAULT_ID) -> bool:
        """True when `signature` (DER) is this key's SM2-with-SM3 signature of `message`."""
        if not isinstance(signature, bytes) or not 8 <= len(signature) <= 80:
            return False
        return _digest_op(self._pkey, _check_id(distid), message, signature) == 1

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SM2PublicKey) and self.point() == other.point()

    def __hash__(self) -> int:
        return hash(self.point())


class SM2PrivateKey(_SM2Key):
    """An SM2 key pair. The scalar stays inside OpenSSL except when exported on purpose.
    `from_der` reads PKCS#8 (or a bare SEC1 ECPrivateKey naming the curve), `from_pem` an
    unencrypted `PRIVATE KEY` block, as `openssl genpkey` writes it."""

    __slots__ = ()
    _READER, _LABEL = "d2i_AutoPrivateKey", "PRIVATE KEY"

    @classmethod
    def generate(cls) -> SM2PrivateKey:
        ctx = _lib.EVP_PKEY_CTX_new_from_name(None, b"SM2", None)
        if not ctx:
            raise _fail("this libcrypto has no SM2")
        try:
            pkey = ctypes.c_void_p(None)
            if _lib.EVP_PKEY_keygen_init(ctx) != 1 or _lib.EVP_PKEY_generate(ctx, ctypes.byref(pkey)) != 1:
                raise _fail("SM2 key generation failed")
            return cls(pkey.value)
        finally:
            _lib.EVP_PKEY_CTX_free(ctx)

    @classmethod
    def from_scalar(cls, d: int | bytes) -> SM2PrivateKey:
        """From the private scalar d, 1 ≤ d ≤ n − 2 (GB/T 32918.1 §6.1); OpenSSL derives the point."""
        value = int.from_bytes(d, "big") if isinstance(d, bytes | bytearray) else d
        if not 1 <= value <= N - 2:
            raise SM2Error("an SM2 private scalar is in [1, n-2]")
        return cls.from_der(_PKCS8_PREFIX + value.to_bytes(32, "big"))

    def public_key(self) -> SM2PublicKey:
        return SM2PublicKey.from_point(self._point())

    def scalar(self) -> bytes:
        """The private scalar, 32 bytes big-endian (for sealing the key; handle with care)."""
        bn = ctypes.c_void_p(None)
        if _lib.EVP_PKEY_get_bn_param(self._pkey, b"priv", ctypes.byref(bn)) != 1:
            raise _fail("no private scalar")
        try:
            buffer = ctypes.create_string_buffer(32)
            if _lib.BN_bn2binpad(bn, buffer, 32) != 32:
                raise _fail("BN_bn2binpad")
            return buffer.raw
        finally:
            _lib.BN_clear_free(bn)

    def der(self) -> bytes:
        """PKCS#8 DER (unencrypted), the same bytes `openssl pkey -outform DER` reads."""
        return _PKCS8_PREFIX + self.scalar()

    def sign(self, message: bytes, *, distid: bytes = DEFAULT_ID) -> bytes:
        """The DER SM2-with-SM3 signature of `message` (nonce from OpenSSL's DRBG)."""
        out = ctypes.create_string_buffer(80)
        size = ctypes.c_size_t(80)
        if _digest_op(self._pkey, _check_id(distid), message, None, out, size) != 1:
            raise _fail("SM2 signing failed")
        return out.raw[: size.value]


def _digest_op(pkey: int, distid: bytes, message: bytes, signature: bytes | None, out=None, size=None) -> int:
    """One EVP_DigestSign or EVP_DigestVerify with SM3 and `distid`; returns OpenSSL's answer."""
    if not isinstance(message, bytes):
        message = bytes(message)
    mctx = _lib.EVP_MD_CTX_new()
    pctx = _lib.EVP_PKEY_CTX_new_from_pkey(None, pkey, None)
    try:
        if not mctx or not pctx or _lib.EVP_PKEY_CTX_set1_id(pctx, distid, len(distid)) != 1:
            raise _fail("could not set up an SM2 context")
        # A key context handed over with set_pkey_ctx stays the caller's to free (the finally).
        _lib.EVP_MD_CTX_set_pkey_ctx(mctx, pctx)
        if signature is None:
            if _lib.EVP_DigestSignInit(mctx, None, _SM3, None, pkey) != 1:
                raise _fail("EVP_DigestSignInit")
            return _lib.EVP_DigestSign(mctx, out, ctypes.byref(size), message, len(message))
        if _lib.EVP_DigestVerifyInit(mctx, None, _SM3, None, pkey) != 1:
            raise _fail("EVP_DigestVerifyInit")
        answer = _lib.EVP_DigestVerify(mctx, signature, len(signature), message, len(message))
        if answer != 1:
            _lib.ERR_clear_error()
        return answer
    finally:
        _lib.EVP_MD_CTX_free(mctx)
        _lib.EVP_PKEY_CTX_free(pctx)


def der_to_raw(signature: bytes) -> bytes:
    """DER `SEQUENCE {r, s}` → `r ‖ s` (32 bytes each); SM2Error for anything else."""
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    try:
        r, s = decode_dss_signature(signature)
    except ValueError:
        raise SM2Error("not a DER signature") from None
    if not (0 < r < N and 0 < s < N):
        raise SM2Error("r or s out of range")
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def raw_to_der(signature: bytes) -> bytes:
    """`r ‖ s` (64 bytes) → DER; SM2Error when the length or a value is out of range."""
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    if len(signature) != 64:
        raise SM2Error("a raw SM2 signature is 64 bytes")
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    if not (0 < r < N and 0 < s < N):
        raise SM2Error("r or s out of range")
    return encode_dss_signature(r, s)
