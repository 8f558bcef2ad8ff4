"""The 随申码 branch of `identity.resolve_scan_code`: enrolled → the person; otherwise refused."""

from __future__ import annotations

import os
import time

import pytest

import identity
from identity import CityProviders, DevCityIssuer, ExpiredCode, InvalidCode, NotEnrolled, PiiVault
from identity.people import ROSTER_COLUMNS, import_roster
from tests.tokens import keyring_for

ENROLLED = "310101199001011234"
SUSPENDED = "11010519491231002X"
STRANGER = "310104198503077772"
ROSTER = "\n".join(
    (
        ",".join(ROSTER_COLUMNS),
        f"{ENROLLED},张三丰,VETERAN,,,VETERAN_CARD,ACTIVE,310000,310115,",
        f"{SUSPENDED},欧阳娜娜,MARTYR_FAMILY,,,SURVIVOR_CARD,SUSPENDED,310000,310104,",
    )
)


@pytest.fixture
async def issuer(settings, conn):
    vault = PiiVault(index_key=os.urandom(32), seal_keys={1: os.urandom(32)})
    await import_roster(conn, vault, ROSTER)
    return DevCityIssuer(settings, vault)


@pytest.fixture
async def resolve(settings, issuer):
    """`identity.resolve_scan_code` with what the app passes it: its key ring and city providers."""
    ring = await keyring_for(settings)
    providers = CityProviders(dev=issuer, platform=None)

    async def resolve(raw, **kwargs):
        return await identity.resolve_scan_code(raw, keyring=ring, providers=providers, **kwargs)

    return resolve


async def test_enrolled_holder_resolves(issuer, resolve, conn):
    code = issuer.issue(ENROLLED)
    holder = await resolve(code, conn=conn)
    person_id = await conn.fetchval("SELECT id FROM people WHERE name_masked = '张**'")
    assert holder.person_id == person_id and holder.source == "suishen" and holder.benefit_id is None
    assert holder.jti.startswith("ssm:") and holder.expires_at.timestamp() > time.time()
    # Single use is the ledger's job, so resolving twice gives the same jti both times.
    again = await resolve(code, conn=conn)
    assert again.jti == holder.jti


async def test_suspended_card_resolves_for_the_engine_to_refuse(issuer, resolve, conn):
    holder = await resolve(issuer.issue(SUSPENDED), conn=conn)
    person = await identity.get_person(conn, holder.person_id)
    assert person.card_status == "SUSPENDED" and person.categories == frozenset({"MARTYR_FAMILY"})


async def test_refusals(issuer, resolve, conn):
    with pytest.raises(NotEnrolled):
        await resolve(issuer.issue(STRANGER), conn=conn)
    with pytest.raises(ExpiredCode):
        await resolve(issuer.issue(ENROLLED, now=time.time() - 200), conn=conn)
    for bad in ("SSM1:abc", "SSM1:" + "x" * 3000, "QRCODE-123", "", "SSM1:" + "a" * 5000):
        with pytest.raises(InvalidCode) as caught:
            await resolve(bad, conn=conn)
        assert type(caught.value) is InvalidCode
    with pytest.raises(TypeError):
        await resolve(issuer.issue(ENROLLED))


async def test_without_the_simulator_a_dev_code_is_invalid(issuer, settings, conn):
    production = CityProviders(dev=None, platform=None)
    with pytest.raises(InvalidCode):
        await identity.resolve_scan_code(
            issuer.issue(ENROLLED), keyring=await keyring_for(settings), providers=production, conn=conn
        )
