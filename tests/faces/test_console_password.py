"""The console's one step for an initial password (等保, issue 17): an account an admin created logs
in, is told to choose a new password, sets it in the same form, and is in; the old one is dead."""

from __future__ import annotations

import asyncpg
import pytest
from playwright.async_api import expect

import identity
from foundation.connections import init_connection
from tests.faces.conftest import Faces, faces_for

INITIAL = "Initial-Passw0rd-9"
CHOSEN = "Chosen-by-holder-2026"


@pytest.fixture(scope="module")
async def faces(request, faces_settings):
    async with faces_for(request, faces_settings) as shared:
        yield shared


async def _initial_account(faces: Faces) -> None:
    """A district admin created by the security administrator: its password is an initial one."""
    conn = await asyncpg.connect(faces.settings.database_url)
    await init_connection(conn)
    try:
        officer, _ = await identity.create_account(
            conn, identity.NewAccount(kind="admin", username="sec.console", password=INITIAL, role="security")
        )
        await identity.create_account(
            conn, identity.NewAccount(kind="admin", username="new.xuhui", password=INITIAL, role="district", district="310104"),
            actor=identity.Principal(kind="admin", subject=officer.id, role="security"),
        )
    finally:
        await conn.close()


async def test_an_initial_password_is_replaced_at_the_first_login(faces: Faces):
    await _initial_account(faces)
    async with faces.page() as page:
        await page.goto(faces.base_url + "/console")
        await page.fill("input[name=username]", "new.xuhui")
        await page.fill("input[name=password]", INITIAL)
        await page.click("form button[type=submit]")
        await expect(page.locator("[role=alert]")).to_contain_text("初始密码须先修改")
        await expect(page.locator("input[name=new_password]")).to_be_focused()
        await expect(page.locator("form button[type=submit]")).to_contain_text("修改密码并登录")
        assert not await faces.axe(page)
        await faces.shot(page, "new-password", "desktop")
        await page.fill("input[name=new_password]", INITIAL)  # the initial one cannot be kept
        await page.click("form button[type=submit]")
        await expect(page.locator("[role=alert]")).to_contain_text("最近用过")
        await faces.shot(page, "password-reused", "desktop")
        await page.fill("input[name=new_password]", CHOSEN)
        await page.click("form button[type=submit]")
        await expect(page.locator("nav")).to_be_visible()
    faces.assert_clean()
