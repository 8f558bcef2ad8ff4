"""Build hostile tokens by hand (the attacker does not go through our signing code)."""

from __future__ import annotations

import base64
import json
import time

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def claims(aud: str = "cjmf-api", sub: str = "6f2a1f0e-6c1f-4e7a-9a57-1d2c3b4a5f60", now: float | None = None, **extra):
    issued = int(time.time() if now is None else now)
    body = {"iss": "cjmf", "aud": aud, "sub": sub, "iat": issued, "exp": issued + 300, "jti": b64(b"j" * 16)}
    body.update(extra)
    return body


def unsigned(header: dict, payload: dict, signature: bytes = b"") -> str:
    return ".".join(
        [b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()), b64(signature)]
    )


def signed_with(key, alg: str, header: dict, payload: dict) -> str:
    return jwt.encode(payload, key, algorithm=alg, headers=header)


def attacker_ed25519():
    return Ed25519PrivateKey.generate()


def attacker_es256():
    return ec.generate_private_key(ec.SECP256R1())


def attacker_ed448():
    return Ed448PrivateKey.generate()


def tamper_payload(token: str, **changes) -> str:
    header, payload, signature = token.split(".")
    body = json.loads(unb64(payload))
    body.update(changes)
    return ".".join([header, b64(json.dumps(body).encode()), signature])


def raw_signed(key, header: dict, payload: dict) -> str:
    """Signed by hand, so headers PyJWT would refuse to write (e.g. a numeric kid) can be sent."""
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(payload).encode())
    return signing_input + "." + b64(key.sign(signing_input.encode()))
