"""The 随申码 branch of `identity.resolve_scan_code`: enrolled → the person; otherwise refused."""

from __future__ import annotations

import os
import time

import pytest

import identity
from identity import CityProviders, DevCityIssuer, ExpiredCode, InvalidCode, NotEnrolled, PiiVault
from identity.people import ROSTER_COLUMNS, import_roster

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
    issuer = DevCityIssuer(settings, vault)
    providers = CityProviders(dev=issuer, platform=None)
    identity.install_city_providers(providers)
    yield issuer
    identity.uninstall_city_providers(providers)


async def test_enrolled_holder_resolves(issuer, conn):
    code = issuer.issue(ENROLLED)
    holder = await identity.resolve_scan_code(code, conn=conn)
    person_id = await conn.fetchval("SELECT id FROM people WHERE name_masked = '张**'")
    assert holder.person_id == person_id and holder.source == "suishen" and holder.benefit_id is None
    assert holder.jti.startswith("ssm:") and holder.expires_at.timestamp() > time.time()
    # Single use is the ledger's job, so resolving twice gives the same jti both times.
    again = await identity.resolve_scan_code(code, conn=conn)
    assert again.jti == holder.jti


async def test_suspended_card_resolves_for_the_engine_to_refuse(issuer, conn):
    holder = await identity.resolve_scan_code(issuer.issue(SUSPENDED), conn=conn)
    person = await identity.get_person(conn, holder.person_id)
    assert person.card_status == "SUSPENDED" and person.categories == frozenset({"MARTYR_FAMILY"})


async def test_refusals(issuer, conn):
    with pytest.raises(NotEnrolled):
        await identity.resolve_scan_code(issuer.issue(STRANGER), conn=conn)
    with pytest.raises(ExpiredCode):
        await identity.resolve_scan_code(issuer.issue(ENROLLED, now=time.time() - 200), conn=conn)
    for bad in ("SSM1:abc", "SSM1:" + "x" * 3000, "QRCODE-123", "", "SSM1:" + "a" * 5000):
        with pytest.raises(InvalidCode) as caught:
            await identity.resolve_scan_code(bad, conn=conn)
        assert type(caught.value) is InvalidCode
    with pytest.raises(TypeError):
        await identity.resolve_scan_code(issuer.issue(ENROLLED))


async def test_without_the_simulator_a_dev_code_is_invalid(issuer, conn):
    production = CityProviders(dev=None, platform=None)
    identity.install_city_providers(production)
    try:
        with pytest.raises(InvalidCode):
            await identity.resolve_scan_code(issuer.issue(ENROLLED), conn=conn)
    finally:
        identity.uninstall_city_providers(production)
