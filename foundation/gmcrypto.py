"""SM3, HMAC-SM3 and SM4-GCM from `cryptography` (OpenSSL underneath); SM2 is `foundation.sm2`.

- `sm3(data)`: GB/T 32905-2016, 32 bytes.
- `hmac_sm3(key, data)`: RFC 2104 HMAC over SM3 (block size 64), 32 bytes.
- `SM4GCM(key)`: SM4 (GB/T 32907-2016, 128-bit key) in GCM (NIST SP 800-38D, as RFC 8998 uses it
  in TLS), with the interface of `cryptography`'s `AESGCM`: `encrypt(nonce, data, aad)` returns
  ciphertext ‖ 16-byte tag, `decrypt` raises `cryptography.exceptions.InvalidTag` on any change.
  Nonces are 12 bytes; a nonce must never repeat under one key.
- `hkdf_sm3(secret, info, length)`: RFC 5869 HKDF with SM3, for deriving gm keys from a secret.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as _chmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ("SM4GCM", "hkdf_sm3", "hmac_sm3", "sm3")

_TAG = 16


def sm3(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize()


def hmac_sm3(key: bytes, data: bytes) -> bytes:
    mac = _chmac.HMAC(key, hashes.SM3())
    mac.update(data)
    return mac.finalize()


def hkdf_sm3(secret: bytes, info: bytes, length: int = 32) -> bytes:
    return HKDF(hashes.SM3(), length, salt=None, info=info).derive(secret)


class SM4GCM:
    """SM4 in Galois/Counter Mode, shaped like `AESGCM` so callers can hold either."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) != 16:
            raise ValueError("SM4 keys are 16 bytes")
        self._key = bytes(key)

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes:
        if len(nonce) != 12:
            raise ValueError("SM4-GCM nonces are 12 bytes here")
        encryptor = Cipher(algorithms.SM4(self._key), modes.GCM(nonce)).encryptor()
        if associated_data:
            encryptor.authenticate_additional_data(associated_data)
        body = encryptor.update(data) + encryptor.finalize()
        return body + encryptor.tag

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes:
        from cryptography.exceptions import InvalidTag

        if len(nonce) != 12 or len(data) < _TAG:
            raise InvalidTag()
        decryptor = Cipher(algorithms.SM4(self._key), modes.GCM(nonce, data[-_TAG:])).decryptor()
        if associated_data:
            decryptor.authenticate_additional_data(associated_data)
        return decryptor.update(data[:-_TAG]) + decryptor.finalize()

