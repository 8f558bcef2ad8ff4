"""国密 primitives: the standards' example vectors, and SM2 cross-checked with the `openssl` CLI.

Vectors: GB/T 32918.2 (SM2 signature, example curve), GB/T 32918.5 (SM2 on the recommended
curve), GB/T 32905 (SM3), GB/T 32907 Annex A (SM4), RFC 8998 Appendix A (SM4-GCM). HMAC-SM3 and
SM2 are also checked against the `openssl` command line both ways.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from foundation.gmcrypto import SM4GCM, hkdf_sm3, hmac_sm3, sm3
from foundation.sm2 import DEFAULT_ID, N, SM2Error, SM2PrivateKey, SM2PublicKey, der_to_raw, raw_to_der
from tests.foundation.sm2_reference import EXAMPLE, RECOMMENDED

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"  # part of the machine image; a missing one fails


def h(text: str) -> int:
    return int(text.replace(" ", ""), 16)


# --- GB/T 32905 SM3 ------------------------------------------------------------------------------


def test_sm3_vectors_of_gb_t_32905() -> None:
    assert sm3(b"abc").hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    assert sm3(b"abcd" * 16).hex() == "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"


# --- GB/T 32907 SM4 and RFC 8998 SM4-GCM ------------------------------------------------------------


def test_sm4_vectors_of_gb_t_32907_annex_a() -> None:
    key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    encryptor = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    block = encryptor.update(key)
    assert block.hex() == "681edf34d206965e86b3e94f536e4246"
    for _ in range(999_999):
        block = encryptor.update(block)
    assert block.hex() == "595298c7c6fd271f0402f804c33d3f66"


def test_sm4_gcm_vector_of_rfc_8998() -> None:
    key = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    nonce = bytes.fromhex("00001234567800000000ABCD")
    aad = bytes.fromhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2")
    plain = bytes.fromhex("AA" * 8 + "BB" * 8 + "CC" * 8 + "DD" * 8 + "EE" * 8 + "FF" * 8 + "EE" * 8 + "AA" * 8)
    sealed = SM4GCM(key).encrypt(nonce, plain, aad)
    assert sealed[:-16].hex().upper() == (
        "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735"
        "D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D"
    )
    assert sealed[-16:].hex().upper() == "83DE3541E4C2B58177E065A9BF7B62EC"
    assert SM4GCM(key).decrypt(nonce, sealed, aad) == plain


def test_sm4_gcm_refuses_any_change() -> None:
    key, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    sealed = SM4GCM(key).encrypt(nonce, b"310101199001011234", b"row-1")
    flipped = bytes([sealed[0] ^ 1]) + sealed[1:]
    for bad in (
        lambda: SM4GCM(key).decrypt(nonce, flipped, b"row-1"),
        lambda: SM4GCM(key).decrypt(nonce, sealed, b"row-2"),
        lambda: SM4GCM(secrets.token_bytes(16)).decrypt(nonce, sealed, b"row-1"),
        lambda: SM4GCM(key).decrypt(nonce, sealed[:10], b"row-1"),
    ):
        with pytest.raises(InvalidTag):
            bad()
    with pytest.raises(ValueError):
        SM4GCM(b"short")


# --- HMAC-SM3 ------------------------------------------------------------------------------------


def test_hmac_sm3_matches_the_openssl_command_line() -> None:
    key, data = bytes(range(32)), "崇军码 HMAC-SM3".encode()
    out = subprocess.run(
        [OPENSSL, "mac", "-digest", "SM3", "-macopt", f"hexkey:{key.hex()}", "HMAC"],
        input=data, capture_output=True, check=True,
    ).stdout.decode().strip()
    assert hmac_sm3(key, data).hex() == out.lower()
    assert len(hkdf_sm3(key, b"info", 16)) == 16 and hkdf_sm3(key, b"a") != hkdf_sm3(key, b"b")


# --- GB/T 32918 SM2 --------------------------------------------------------------------------------

# GB/T 32918.2 worked example (example curve, ID ALICE123@YAHOO.COM).
EX_ID = b"ALICE123@YAHOO.COM"
EX_D = h("128B2FA8BD433C6C068C8D803DFF79792A519A55171B1B650C23661D15897263")
EX_K = h("6CB28D99385C175C94F94E934817663FC176D925DD72B727260DBAAE1FB2F96F")

# GB/T 32918.5 example on the recommended curve (ID 1234567812345678, M = "message digest").
REC_D = h("3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8")
REC_K = h("59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21")
REC_X = "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"
REC_Y = "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"
REC_R = "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3"
REC_S = "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA"
MESSAGE = b"message digest"


def test_the_gb_t_32918_2_worked_example_on_its_example_curve() -> None:
    """OpenSSL knows only the recommended curve, so the formulas run here in plain Python; the
    next tests tie those formulas to OpenSSL on the recommended curve."""
    public = EXAMPLE.mul(EX_D, EXAMPLE.G)
    assert EXAMPLE.z(EX_ID, public).hex().upper() == "F4A38489E32B45B6F876E3AC2168CA392362DC8F23459C1D1146FC3DBFB7BC9A"
    assert EXAMPLE.e(EX_ID, public, MESSAGE) == h("B524F552CD82B8B028476E005C377FB19A87E6FC682D48BB5D42E3D9B9EFFE76")
    r, s = EXAMPLE.sign(EX_D, MESSAGE, EX_K, EX_ID)
    assert r == h("40F1EC59F793D9F49E09DCEF49130D4194F79FB1EED2CAA55BACDB49C4E755D1")
    assert s == h("6FC6DAC32C5D5CF10C77DFB20F7C2EB667A457872FB09EC56327A67EC7DEEBE7")
    assert EXAMPLE.verify(public, MESSAGE, r, s, EX_ID)
    assert not EXAMPLE.verify(public, MESSAGE + b"!", r, s, EX_ID)


def test_the_gb_t_32918_5_example_on_the_recommended_curve_in_openssl() -> None:
    key = SM2PrivateKey.from_scalar(REC_D)
    assert key.public_key().point().hex().upper() == "04" + REC_X + REC_Y
    # The reference formulas with the standard's nonce give the standard's (r, s) ...
    assert RECOMMENDED.sign(REC_D, MESSAGE, REC_K, DEFAULT_ID) == (h(REC_R), h(REC_S))
    # ... and OpenSSL verifies exactly that signature, under the default ID only.
    signature = raw_to_der(bytes.fromhex(REC_R + REC_S))
    public = SM2PublicKey.from_xy(bytes.fromhex(REC_X), bytes.fromhex(REC_Y))
    assert public.verify(signature, MESSAGE)
    assert not public.verify(signature, MESSAGE, distid=b"")
    assert not public.verify(signature, b"message digesT")


def test_openssl_signatures_verify_under_the_reference_formulas_and_back() -> None:
    key = SM2PrivateKey.generate()
    public_point = key.public_key().point()
    xy = (int.from_bytes(public_point[1:33], "big"), int.from_bytes(public_point[33:], "big"))
    d = int.from_bytes(key.scalar(), "big")
    assert RECOMMENDED.mul(d, RECOMMENDED.G) == xy
    for message in (b"", b"x", "崇军码".encode() * 50):
        raw = der_to_raw(key.sign(message))
        r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
        assert RECOMMENDED.verify(xy, message, r, s, DEFAULT_ID)
        r2, s2 = RECOMMENDED.sign(d, message, secrets.randbelow(N - 1) + 1, DEFAULT_ID)
        assert key.public_key().verify(raw_to_der(r2.to_bytes(32, "big") + s2.to_bytes(32, "big")), message)


def test_signatures_are_randomised_and_bound_to_key_message_and_id() -> None:
    key, other = SM2PrivateKey.generate(), SM2PrivateKey.generate()
    one, two = key.sign(MESSAGE), key.sign(MESSAGE)
    assert one != two  # a fresh nonce each time (OpenSSL's DRBG)
    public = key.public_key()
    assert public.verify(one, MESSAGE) and public.verify(two, MESSAGE)
    assert not other.public_key().verify(one, MESSAGE)
    assert not public.verify(one, MESSAGE + b" ")
    assert not public.verify(one, MESSAGE, distid=b"TLSv1.3+GM+Cipher+Suite")
    assert key.public_key().verify(key.sign(MESSAGE, distid=b"other id"), MESSAGE, distid=b"other id")
    for garbage in (b"", b"\x30\x00", one[:-1], one + b"\x00", bytes(72), "text"):
        assert not public.verify(garbage, MESSAGE)  # type: ignore[arg-type]


def test_keys_round_trip_through_pem_der_scalar_and_point() -> None:
    key = SM2PrivateKey.generate()
    public = key.public_key()
    assert SM2PrivateKey.from_pem(key.pem()).scalar() == key.scalar()
    assert SM2PrivateKey.from_der(key.der()).public_key() == public
    assert SM2PrivateKey.from_scalar(key.scalar()).public_key() == public
    assert SM2PublicKey.from_pem(public.pem()) == public
    assert SM2PublicKey.from_der(public.der()) == public
    assert SM2PublicKey.from_point(public.point()) == public
    assert len(public.der()) == 91 and public.pem().startswith(b"-----BEGIN PUBLIC KEY-----\n")


def test_bad_key_material_is_refused() -> None:
    point = SM2PrivateKey.generate().public_key().point()
    off_curve = point[:-1] + bytes([point[-1] ^ 1])
    for bad in (
        lambda: SM2PublicKey.from_point(off_curve),
        lambda: SM2PublicKey.from_point(point[:64]),
        lambda: SM2PublicKey.from_der(b"\x30\x03\x02\x01\x01"),
        lambda: SM2PublicKey.from_pem("no pem here"),
        lambda: SM2PrivateKey.from_scalar(0),
        lambda: SM2PrivateKey.from_scalar(N - 1),
        lambda: SM2PrivateKey.from_der(b"garbage"),
        lambda: raw_to_der(bytes(64)),
        lambda: raw_to_der(bytes(63)),
        lambda: der_to_raw(b"\x01\x02"),
    ):
        with pytest.raises(SM2Error):
            bad()


def test_an_ed25519_or_p256_key_is_not_an_sm2_key() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    for key in (Ed25519PrivateKey.generate(), ec.generate_private_key(ec.SECP256R1())):
        der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        with pytest.raises(SM2Error):
            SM2PublicKey.from_der(der)


def test_a_signature_of_the_openssl_command_line_verifies_here_and_ours_there(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([OPENSSL, *args], capture_output=True, cwd=tmp_path)

    message = tmp_path / "msg"
    message.write_bytes("崇军码 cross-check".encode())
    assert run("genpkey", "-algorithm", "SM2", "-out", "cli.pem").returncode == 0
    assert run("pkey", "-in", "cli.pem", "-pubout", "-out", "cli.pub").returncode == 0
    distid = f"distid:{DEFAULT_ID.decode()}"
    assert run("pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-pkeyopt", distid,
               "-inkey", "cli.pem", "-in", "msg", "-out", "cli.sig").returncode == 0
    cli_public = SM2PublicKey.from_pem((tmp_path / "cli.pub").read_bytes())
    assert SM2PrivateKey.from_pem((tmp_path / "cli.pem").read_bytes()).public_key() == cli_public
    assert cli_public.verify((tmp_path / "cli.sig").read_bytes(), message.read_bytes())

    # Pitfall: OpenSSL 3.0's command line signs with an EMPTY ID when no distid is given.
    assert run("pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-inkey", "cli.pem",
               "-in", "msg", "-out", "empty.sig").returncode == 0
    empty = (tmp_path / "empty.sig").read_bytes()
    assert not cli_public.verify(empty, message.read_bytes())
    assert cli_public.verify(empty, message.read_bytes(), distid=b"")

    ours = SM2PrivateKey.generate()
    (tmp_path / "ours.pem").write_bytes(ours.pem())
    (tmp_path / "ours.pub").write_bytes(ours.public_key().pem())
    (tmp_path / "ours.der").write_bytes(ours.der())
    (tmp_path / "ours.sig").write_bytes(ours.sign(message.read_bytes()))
    verified = run("pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pkeyopt", distid, "-pubin",
                   "-inkey", "ours.pub", "-in", "msg", "-sigfile", "ours.sig")
    assert verified.returncode == 0 and b"Signature Verified Successfully" in verified.stdout
    tampered = tmp_path / "tampered"
    tampered.write_bytes(message.read_bytes() + b"!")
    refused = run("pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pkeyopt", distid, "-pubin",
                  "-inkey", "ours.pub", "-in", "tampered", "-sigfile", "ours.sig")
    assert refused.returncode != 0
    # Our private key exports are what the CLI reads (PEM and DER), and name the same public key.
    for args in (("-in", "ours.pem"), ("-inform", "DER", "-in", "ours.der")):
        shown = run("pkey", *args, "-pubout")
        assert shown.returncode == 0 and shown.stdout == ours.public_key().pem()
