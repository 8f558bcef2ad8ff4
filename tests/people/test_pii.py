"""ID numbers, the blind index, AES-GCM sealing and masking (pure: no database)."""

from __future__ import annotations

import os
import re
import unicodedata
import uuid
from datetime import date

import pytest
from hypothesis import given, settings, strategies as st

from identity.pii import (
    InvalidIdNumber,
    PiiVault,
    SealBroken,
    birth_date_of,
    id_checksum_char,
    is_valid_id_number,
    mask_id_number,
    mask_name,
    normalise_id_number,
)


def vault(version: int = 1, **keys: bytes) -> PiiVault:
    return PiiVault(index_key=keys.get("index", b"i" * 32), seal_keys={version: keys.get("seal", b"s" * 32)})


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("11010519491231002X", "11010519491231002X"),  # the example of GB 11643-1999
        ("11010519491231002x", "11010519491231002X"),  # lower-case check character
        (" 3101 0119 9001 0112 34 ", "310101199001011234"),  # spaces as people type them
        ("３１０１０１１９９００１０１１２３４", "310101199001011234"),  # full-width digits
        ("110105491231002", "11010519491231002X"),  # 15-digit 1985 series, upgraded
    ],
)
def test_valid_id_numbers_normalise(raw, normal):
    assert normalise_id_number(raw) == normal
    assert is_valid_id_number(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "110105194912310021",  # wrong check character
        "310101199001011235",
        "31010119900101123",  # 17 characters
        "3101011990010112345",  # 19
        "000101199001011234",  # no such province
        "310101199002301234",  # 30 February
        "310101203001011234",  # born in the future
        "310101188001011234",  # implausibly old
        "31010119900101123Y",
        "",
        "abcdefghijklmnopqr",
        "٣١٠١٠١١٩٩٠٠١٠١١٢٣٤",  # Arabic-Indic digits are not ID digits
    ],
)
def test_invalid_id_numbers_are_refused_without_echo(raw):
    with pytest.raises(InvalidIdNumber) as caught:
        normalise_id_number(raw)
    if raw:
        assert raw not in str(caught.value) and raw not in caught.value.detail
    assert not is_valid_id_number(raw)


def test_checksum_and_birth_date():
    assert id_checksum_char("11010519491231002") == "X"
    assert birth_date_of("11010519491231002X") == date(1949, 12, 31)


@given(st.text(alphabet="0123456789", min_size=17, max_size=17))
def test_exactly_one_check_character_is_accepted(first17):
    accepted = [c for c in "0123456789X" if is_valid_id_number(first17 + c)]
    assert len(accepted) <= 1
    if accepted:
        assert accepted == [id_checksum_char(first17)]


def test_blind_index_is_keyed_and_stable():
    one = vault(index=b"a" * 32)
    other = vault(index=b"b" * 32)
    number = "310101199001011234"
    assert one.blind_index(number) == one.blind_index(number)
    assert len(one.blind_index(number)) == 32
    assert one.blind_index(number) != other.blind_index(number)
    assert one.index_of(" 3101 0119 9001 0112 34") == one.blind_index(number)
    assert one.blind_index(number) != one.blind_index("11010519491231002X")


def test_seal_round_trip_and_fresh_nonces():
    v = vault()
    row = uuid.uuid4()
    first = v.seal("310101199001011234", table="people", column="id_number", row=row)
    second = v.seal("310101199001011234", table="people", column="id_number", row=row)
    assert first != second  # random nonce
    assert b"310101199001011234" not in first
    assert PiiVault.version_of(first) == 1
    assert v.open(first, table="people", column="id_number", row=row) == "310101199001011234"
    assert v.open(v.seal("欧阳娜娜", table="people", column="name", row=row), table="people", column="name", row=row) == "欧阳娜娜"


def test_sealed_value_moved_to_another_row_or_column_does_not_open():
    v = vault()
    row, other = uuid.uuid4(), uuid.uuid4()
    blob = v.seal("310101199001011234", table="people", column="id_number", row=row)
    with pytest.raises(SealBroken):
        v.open(blob, table="people", column="id_number", row=other)
    with pytest.raises(SealBroken):
        v.open(blob, table="people", column="name", row=row)
    tampered = bytearray(blob)
    tampered[-1] ^= 1
    with pytest.raises(SealBroken):
        v.open(bytes(tampered), table="people", column="id_number", row=row)
    with pytest.raises(SealBroken):
        v.open(blob[:20], table="people", column="id_number", row=row)


def test_key_versions_rotate_and_old_blobs_still_open():
    old_key, new_key = os.urandom(32), os.urandom(32)
    before = PiiVault(index_key=b"i" * 32, seal_keys={1: old_key})
    row = uuid.uuid4()
    blob = before.seal("张三", table="people", column="name", row=row)
    after = PiiVault(index_key=b"i" * 32, seal_keys={1: old_key, 2: new_key})
    assert after.current_version == 2
    assert after.open(blob, table="people", column="name", row=row) == "张三"
    assert PiiVault.version_of(after.seal("张三", table="people", column="name", row=row)) == 2
    retired = PiiVault(index_key=b"i" * 32, seal_keys={2: new_key})
    with pytest.raises(SealBroken):
        retired.open(blob, table="people", column="name", row=row)


def test_version_in_the_blob_is_authenticated():
    # Relabelling a v1 blob as v2 (same key material under both) must not open: the version is in the AAD.
    key = os.urandom(32)
    v = PiiVault(index_key=b"i" * 32, seal_keys={1: key, 2: key}, current_version=1)
    row = uuid.uuid4()
    blob = v.seal("张三", table="people", column="name", row=row)
    relabelled = (2).to_bytes(2, "big") + blob[2:]
    with pytest.raises(SealBroken):
        v.open(relabelled, table="people", column="name", row=row)


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("310101199001011234", "310***********1234"),
        ("11010519491231002X", "110***********002X"),
        ("12345", "*****"),
        ("", "*"),
    ],
)
def test_id_masking_golden(value, masked):
    assert mask_id_number(value) == masked


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("张三", "张*"),
        ("张三丰", "张**"),
        ("欧阳修", "欧阳*"),
        ("欧阳娜娜", "欧阳**"),
        ("司马相如", "司马**"),
        ("欧阳", "欧*"),
        ("王", "*"),
        ("买买提·艾力", "买*****"),
        (" 李四 ", "李*"),
    ],
)
def test_name_masking_golden(name, masked):
    assert mask_name(name) == masked


def _longest_common_digit_run(masked: str, original: str) -> int:
    best = 0
    for match in re.finditer(r"[0-9]+", masked):
        run = match.group()
        for length in range(len(run), best, -1):
            if any(run[i : i + length] in original for i in range(len(run) - length + 1)):
                best = length
                break
    return best


@settings(max_examples=300)
@given(st.text(alphabet="0123456789X ", max_size=40))
def test_masked_id_never_shows_more_than_7_consecutive_digits(value):
    masked = mask_id_number(value)
    assert _longest_common_digit_run(masked, value) <= 7
    assert len(masked) == max(len(value.strip()), 1)
    assert len(masked.replace("*", "")) <= 7


@settings(max_examples=200)
@given(st.text(min_size=1, max_size=20).filter(lambda s: s.strip()))
def test_masked_name_keeps_at_most_the_surname(name):
    masked = mask_name(name)
    kept = masked.rstrip("*")
    assert len(kept) <= 2 and "*" in masked
    # Names are NFC-normalised first: a compatibility ideograph (e.g. U+F9E9) becomes its unified form.
    assert unicodedata.normalize("NFC", name.strip()).startswith(kept)


# --- the gm crypto profile: SM4-GCM sealing ------------------------------------------------------


def test_the_gm_vault_indexes_with_hmac_sm3_and_knows_the_other_index():
    import hmac as std_hmac

    from foundation.gmcrypto import hmac_sm3

    pepper, number = b"i" * 32, "310101199001011234"
    intl = PiiVault(index_key=pepper, seal_keys={1: os.urandom(32)})
    gm = PiiVault(index_key=pepper, seal_keys={1: os.urandom(32)}, cipher="sm4-gcm")
    assert (intl.index_alg, gm.index_alg) == ("hmac-sha256", "hmac-sm3")
    assert gm.blind_index(number) == hmac_sm3(pepper, number.encode())  # HMAC-SM3 (GB/T 32905), checked on its own
    assert intl.blind_index(number) == std_hmac.digest(pepper, number.encode(), "sha256")
    assert gm.other_index(number) == intl.blind_index(number) and intl.other_index(number) == gm.blind_index(number)
    assert gm.indexes_of(" 3101 0119 9001 0112 34") == (gm.blind_index(number), intl.blind_index(number))
    assert len(gm.blind_index(number)) == 32 and gm.blind_index(number) != intl.blind_index(number)


def test_gm_vault_seals_with_sm4_gcm_and_either_vault_opens_both():
    key, row = os.urandom(32), uuid.uuid4()
    intl = PiiVault(index_key=b"i" * 32, seal_keys={1: key})
    gm = PiiVault(index_key=b"i" * 32, seal_keys={1: key}, cipher="sm4-gcm")
    aes_blob = intl.seal("310101199001011234", table="people", column="id_number", row=row)
    sm4_blob = gm.seal("310101199001011234", table="people", column="id_number", row=row)
    assert sm4_blob[:2] == (0x8001).to_bytes(2, "big") and aes_blob[:2] == (1).to_bytes(2, "big")
    assert PiiVault.version_of(sm4_blob) == PiiVault.version_of(aes_blob) == 1
    # The SM4 blob is exactly SM4-GCM under HKDF-SM3 of the version's key (checked independently).
    from foundation.gmcrypto import SM4GCM, hkdf_sm3

    opened = SM4GCM(hkdf_sm3(key, b"chongjun pii-seal sm4", 16)).decrypt(
        sm4_blob[2:14], sm4_blob[14:], f"chongjun/people/id_number/{row}/v1/sm4".encode()
    )
    assert opened == b"310101199001011234"
    for vault_ in (intl, gm):  # switching profiles keeps every sealed value readable
        assert vault_.open(aes_blob, table="people", column="id_number", row=row) == "310101199001011234"
        assert vault_.open(sm4_blob, table="people", column="id_number", row=row) == "310101199001011234"
    assert gm.is_current(sm4_blob) and not gm.is_current(aes_blob) and intl.is_current(aes_blob)
    # The cipher bit is authenticated: an SM4 blob relabelled as AES (or back) does not open.
    for relabelled in ((1).to_bytes(2, "big") + sm4_blob[2:], (0x8001).to_bytes(2, "big") + aes_blob[2:]):
        with pytest.raises(SealBroken):
            gm.open(relabelled, table="people", column="id_number", row=row)
    with pytest.raises(SealBroken):
        gm.open(sm4_blob, table="people", column="id_number", row=uuid.uuid4())
    with pytest.raises(ValueError):
        PiiVault(index_key=b"i" * 32, seal_keys={1: key}, cipher="des")
