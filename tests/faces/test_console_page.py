"""The bureau and merchant console (/console) in Chromium, as its users work with it.

One served instance with the demo data (the README's `./dev serve` state) and one browser for the
module. Stored text with `<script>` and `<img onerror>` payloads (a 差评 comment, a venue name, a
benefit name) must show as text: no dialog opens, no request leaves, the page policy holds.
"""

from __future__ import annotations

import base64
import re
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest
from playwright.async_api import expect

import identity
from identity.totp import totp_at
from chongjun.demo import NAMED_PEOPLE
from foundation.connections import init_connection
from tests.faces.conftest import Faces, faces_for

PLAIN = dict(NAMED_PEOPLE)["plain veteran"]["id_number"]
SCRIPT = "<script>alert('x')</script>"
IMG = "<img src=x onerror=alert(1)>"
CITY = ("demo-admin", "demo-admin-password")
DISTRICT = ("demo-xuhui-admin", "demo-xuhui-password")
AUDITOR = ("demo-auditor", "demo-auditor-password")
STAFF = ("demo-staff", "demo-staff-password")


@pytest.fixture(scope="module")
async def faces(request, faces_settings):
    async with faces_for(request, faces_settings) as shared:
        yield shared


_SESSIONS: dict[tuple[str, str], str] = {}


async def _login(page, faces: Faces, who: tuple[str, str], *, path: str = "/console") -> None:
    """Logged in as `who`: through the form the first time in the module, then by handing the page
    that session (one login per account, so the login throttle never enters the picture)."""
    if who not in _SESSIONS:
        await page.goto(faces.base_url + path)
        await page.fill("input[name=username]", who[0])
        await page.fill("input[name=password]", who[1])
        await page.click("form button[type=submit]")
        await expect(page.locator("nav")).to_be_visible()
        _SESSIONS[who] = await page.evaluate("sessionStorage.getItem('chongjun.console')")
        return
    await page.goto(faces.base_url + "/faces/icon.svg")
    await page.evaluate("s => sessionStorage.setItem('chongjun.console', s)", _SESSIONS[who])
    await page.goto(faces.base_url + path)
    await expect(page.locator("nav")).to_be_visible()


async def _ready(page, name: str) -> None:
    await expect(page.locator(f"main[data-ready={name}]")).to_be_attached(timeout=10_000)


def _totp_admin(faces: Faces) -> bytes:
    """A city admin with TOTP, created as `chongjun create-admin` would; its TOTP secret."""

    async def make():
        conn = await asyncpg.connect(faces.settings.database_url)
        await init_connection(conn)
        try:
            _, uri = await identity.create_account(
                conn,
                identity.NewAccount(kind="admin", username="totp-admin", password="totp admin password", role="city", with_totp=True),
                secrets=identity.SecretStore.from_settings(faces.settings),
            )
        finally:
            await conn.close()
        secret = parse_qs(urlsplit(uri).query)["secret"][0]
        return base64.b32decode(secret + "=" * (-len(secret) % 8))

    return make()


async def test_login_needs_the_totp_code_and_each_role_sees_its_menu(faces: Faces):
    secret = await _totp_admin(faces)
    for size in ("phone", "desktop"):
        async with faces.page(size) as page:
            await page.goto(faces.base_url + "/console")
            await expect(page.locator("input[name=username]")).to_be_focused()
            await faces.shot(page, "login", size)
            assert not await faces.axe(page)
    async with faces.page() as page:
        await page.goto(faces.base_url + "/console")
        await page.fill("input[name=username]", "totp-admin")
        await page.fill("input[name=password]", "totp admin password")
        await page.click("form button[type=submit]")
        await expect(page.locator("[role=alert]")).to_contain_text("动态验证码")
        await page.fill("input[name=totp]", totp_at(secret, int(time.time()) // 30))
        await page.click("form button[type=submit]")
        await _ready(page, "dashboard")
        await expect(page.locator("#who")).to_contain_text("市局管理员")
        await faces.shot(page, "dashboard", "desktop")
        assert not await faces.axe(page)
        assert await page.evaluate("Object.keys(localStorage).length") == 0, "the console keeps nothing in localStorage"
        await page.click("#logout")
        await expect(page.locator("input[name=username]")).to_be_visible()
        assert await page.evaluate("sessionStorage.length") == 0
    menus = {
        CITY: ["概览", "优待项目", "商户", "场馆", "设备", "工作人员", "名册导入", "差评处理"],
        DISTRICT: ["概览", "优待项目", "商户", "场馆", "设备", "工作人员", "差评处理"],
        AUDITOR: ["概览", "优待项目", "商户", "场馆", "设备", "工作人员", "差评处理"],
        STAFF: ["核验记录", "日报", "月结单", "设备"],
    }
    for who, expected in menus.items():
        async with faces.page() as page:
            await _login(page, faces, who)
            items = [t.split()[0] for t in await page.locator("nav a").all_inner_texts()]
            assert items == expected, (who[0], items)
            if who == AUDITOR:  # reads only: no editor, no reply forms
                await page.goto(faces.base_url + "/console/benefits")
                await _ready(page, "benefits")
                await expect(page.locator("#be")).to_have_count(0)
            if who == STAFF:  # an admin page by URL is not theirs: the first of their own is shown
                await page.goto(faces.base_url + "/console/roster")
                await _ready(page, "ledger")
    faces.assert_clean()


async def test_benefit_editor_names_the_bad_node_previews_and_creates(faces: Faces):
    async with faces.page() as page:
        await _login(page, faces, CITY, path="/console/benefits")
        await _ready(page, "benefits")
        await page.fill("input[name=code]", "X7")
        await page.fill("input[name=name_zh]", f"测试优待{SCRIPT}{IMG}")
        await page.fill("input[name=name_en]", "Test benefit")
        broken = '{"op": "all", "all": [{"op": "has_category", "category": "VETERAN"}, {"op": "disability_grade", "min": 7, "max": 2}]}'
        await page.fill("textarea[name=rule]", broken)
        preview = page.locator("#rule-preview")
        await expect(preview).to_contain_text("$.rule.all[1]")
        await faces.shot(page, "benefit-bad-rule", "desktop")
        await page.fill("textarea[name=rule]", '{"op": "all", "all": [{"op": "has_category", "category": "DISABLED_SERVICEMAN"}, {"op": "disability_grade", "min": 1, "max": 4}]}')
        await expect(preview).to_contain_text("样例人员符合")
        await expect(preview).to_contain_text("eligible")
        await page.fill("input[name=sample_grade]", "6")
        await expect(preview).to_contain_text("样例人员不符合")
        await faces.shot(page, "benefit-preview", "desktop")
        await page.click("form[aria-labelledby=be] button[type=submit]")
        await _ready(page, "benefits")
        row = page.locator("tr", has_text="X7")
        await expect(row).to_contain_text(f"测试优待{SCRIPT}{IMG}")  # the payload is shown as text
        assert not await faces.axe(page)
    async with faces.page("phone") as page:
        await _login(page, faces, CITY, path="/console/benefits")
        await _ready(page, "benefits")
        await faces.shot(page, "benefits", "phone")
        assert not await faces.axe(page)
    assert not faces.dialogs, faces.dialogs
    faces.assert_clean()


async def test_roster_import_with_one_bad_line_shows_the_line_numbered_report(faces: Faces):
    header = "id_number,name,categories,disability_grade,disability_cause,card_kind,card_status,card_province,district,birth_date"
    good = dict(NAMED_PEOPLE)["plain veteran"]
    line = ",".join(good[c] for c in header.split(","))
    csv = f"{header}\n{line}\n11010519491231002X,坏行,NOT_A_CATEGORY,,,VETERAN_CARD,ACTIVE,310000,310101,1949-12-31\n"
    async with faces.page() as page:
        await _login(page, faces, CITY, path="/console/roster")
        await _ready(page, "roster")
        await page.fill("textarea", csv)
        await page.click("form button[type=submit]")
        report = page.locator("#roster-report")
        await expect(report).to_contain_text("未导入任何数据")
        await expect(report.locator("tbody tr")).to_have_count(1)
        await expect(report.locator("tbody tr td").first).to_have_text("3")
        await faces.shot(page, "roster-report", "desktop")
        assert not await faces.axe(page)
    faces.assert_clean()


def _bad_rating(faces: Faces) -> None:
    """A redemption at a demo device and a 1-star rating whose comment holds the payloads."""
    summary = faces.seed_summary.splitlines()
    device = next(li for li in summary if li.startswith("device at 上海博物馆"))
    device_id = re.search(r"device_id=(\S+)", device).group(1)
    secret = re.search(r"secret=(\S+)", device).group(1)
    venue_id = re.search(r"\(venue (\S+)\)", device).group(1)
    issuer = identity.DevCityIssuer(faces.settings, identity.pii_vault(faces.settings))
    with faces.api() as client:
        token = client.post("/v1/devices/token", json={"device_id": device_id, "secret": secret}).json()["access_token"]
        scan = client.post("/v1/scans", json={"code": issuer.issue(PLAIN), "venue_id": venue_id},
                           headers={"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())}).json()
        assert scan["decision"] == "accepted", scan
        login = client.post("/v1/auth/suishen", json={"code": issuer.issue(PLAIN)}).json()
        rated = client.post(f"/v1/me/redemptions/{scan['redemption_id']}/rating",
                            json={"stars": 1, "comment": f"排队太久 {SCRIPT}{IMG}"},
                            headers={"Authorization": f"Bearer {login['access_token']}"})
        assert rated.status_code in (200, 201), rated.text


async def test_a_chaping_case_is_answered_and_its_comment_is_inert(faces: Faces):
    _bad_rating(faces)
    async with faces.page() as page:
        await _login(page, faces, CITY, path="/console/ratings")
        await _ready(page, "ratings")
        case = page.locator("article.case").first
        await expect(case.locator(".comment")).to_have_text(f"排队太久 {SCRIPT}{IMG}")
        assert await page.locator("article.case img").count() == 0
        await faces.shot(page, "ratings-open", "desktop")
        assert not await faces.axe(page)
        await case.locator("textarea").fill("已联系场馆增加窗口，感谢反馈。")
        await case.locator("button[type=submit]").click()
        await _ready(page, "ratings")
        await expect(page.locator("article.case")).to_have_count(0)
        await page.goto(faces.base_url + "/console/ratings?status=closed")
        await _ready(page, "ratings")
        await expect(page.locator("article.case").first).to_contain_text("已联系场馆增加窗口")
    assert not faces.dialogs, faces.dialogs
    faces.assert_clean()


async def test_a_new_device_shows_its_setup_code_once_and_the_link_sets_up_the_scanner(faces: Faces):
    async with faces.page() as page:
        await _login(page, faces, CITY, path="/console/venues")
        await _ready(page, "venues")
        form = page.locator("form").first
        await form.locator("input").nth(0).fill(f"测试场馆{IMG}")
        await form.locator("input").nth(1).fill("上海市黄浦区测试路1号")
        await form.locator("button[type=submit]").click()
        await _ready(page, "venues")
        await expect(page.locator("td", has_text=f"测试场馆{IMG}")).to_have_count(1)
        await faces.shot(page, "venues", "desktop")
        assert not await faces.axe(page)
        await page.goto(faces.base_url + "/console/devices")
        await _ready(page, "devices")
        await page.select_option("form select", label=f"测试场馆{IMG}")
        await page.click("form button[type=submit]")
        once = page.locator("#setup-once")
        await expect(once.locator("img.qr")).to_be_visible()
        assert await once.locator("img.qr").evaluate("img => img.naturalWidth") > 0
        await faces.shot(page, "device-setup", "desktop")
        assert not await faces.axe(page)
        link = await page.locator("#setup-link").get_attribute("href")
        # Shown once: the QR is gone from the server after this fetch.
        with faces.api() as client:
            token = faces.staff_token(*CITY)
            devices = client.get("/v1/admin/devices/?limit=100", headers={"Authorization": f"Bearer {token}"}).json()["items"]
            newest = max(devices, key=lambda d: d["created_at"])
            again = client.get(f"/v1/admin/devices/{newest['id']}/setup-qr.png", headers={"Authorization": f"Bearer {token}"})
            assert again.status_code == 404
    async with faces.page("phone") as scanner:
        await scanner.goto(link)
        await expect(scanner.locator("#ready")).to_be_visible()
        await expect(scanner.locator("#venue-name")).to_have_text(f"测试场馆{IMG}")
    assert not faces.dialogs, faces.dialogs
    faces.assert_clean()


async def test_merchant_staff_see_ledger_daily_report_and_sealed_statement(faces: Faces):
    _bad_rating(faces)  # at least one ledger row today
    for size in ("desktop", "phone"):
        async with faces.page(size) as page:
            await _login(page, faces, STAFF)
            await _ready(page, "ledger")
            await expect(page.locator("tbody tr").first).to_contain_text("C3")
            await faces.shot(page, "ledger", size)
            assert not await faces.axe(page)
            await page.click("nav a[href='/console/daily']")
            await _ready(page, "daily")
            await expect(page.locator("main")).to_contain_text("C3")
            await faces.shot(page, "daily", size)
            assert not await faces.axe(page)
            await page.click("nav a[href='/console/statements']")
            await _ready(page, "statements")
            await expect(page.locator("#seal-status")).to_contain_text("已加盖电子印章")
            await faces.shot(page, "statements", size)
            assert not await faces.axe(page)
            async with page.expect_download() as info:
                await page.click("main button.secondary")
            download = await info.value
            path = await download.path()
            text = open(path, encoding="utf-8-sig").read()
            assert "C3" in text
            await page.click("nav a[href='/console/devices']")
            await _ready(page, "devices")
            assert not await faces.axe(page)
    faces.assert_clean()


async def test_every_admin_page_at_both_sizes_passes_axe(faces: Faces):
    pages = ["dashboard", "benefits", "merchants", "venues", "devices", "staff", "roster", "ratings"]
    for size in ("desktop", "phone"):
        async with faces.page(size) as page:
            await _login(page, faces, CITY)
            for name in pages:
                await page.click(f"nav a[href='/console/{name}']")
                await _ready(page, name)
                await faces.shot(page, name, size)
                violations = await faces.axe(page)
                assert not violations, (name, size, violations)
    assert not faces.dialogs, faces.dialogs
    faces.assert_clean()


async def test_an_idle_session_ends_and_shows_the_login_form(faces: Faces):
    async with faces.page() as page:
        await page.clock.install()
        await _login(page, faces, AUDITOR)
        await _ready(page, "dashboard")
        await page.clock.run_for(16 * 60 * 1000)
        await expect(page.locator("input[name=username]")).to_be_visible()
        assert await page.evaluate("sessionStorage.length") == 0
    faces.assert_clean()
