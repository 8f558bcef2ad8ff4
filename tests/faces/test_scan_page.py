"""The H5 gate scanner (/scan) in Chromium, as venue staff use it.

One served instance with the demo data and one browser for the module. The browser's fake camera
plays a Y4M made from a real 崇军码 PNG (issued by the server to the demo's grade-2 disabled
serviceman), so the camera test reads it through getUserMedia and the vendored decoder (Debian's
headless Chromium has no BarcodeDetector). The demo devices are set up through the setup links the
seed prints, exactly as a newcomer would open them.
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image
from playwright.async_api import async_playwright, expect

import identity
from chongjun.demo import NAMED_PEOPLE
from tests.faces.conftest import CHROMIUM, Faces, chromium_args
from tests.support import live_server

DISABLED = dict(NAMED_PEOPLE)["grade-2 disabled serviceman (因战)"]["id_number"]
PLAIN = dict(NAMED_PEOPLE)["plain veteran"]["id_number"]
MUSEUM = "上海博物馆"  # the demo device at 上海博物馆（人民广场馆）: C3, no weekday window


def _setup_link(summary: str, venue_prefix: str, base_url: str) -> str:
    """The seed's `scanner:` link of the demo device at that venue, re-aimed at the test server."""
    lines = summary.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(f"device at {venue_prefix}"):
            link = lines[i + 1].split("scanner: ", 1)[1]
            return base_url + link[link.index("/scan#setup="):]
    raise AssertionError(f"no demo device at {venue_prefix} in the seed summary")


def _suishen(settings, id_number: str) -> str:
    return identity.DevCityIssuer(settings, identity.pii_vault(settings)).issue(id_number)


def _write_y4m(png: bytes, path: Path, *, width: int = 640, height: int = 480, frames: int = 5) -> None:
    """A still video of the QR (grey only: U and V at 128), as Chromium's fake camera reads it."""
    qr = Image.open(io.BytesIO(png)).convert("L")
    side = min(width, height) - 80
    qr = qr.resize((side, side), Image.NEAREST)
    canvas = Image.new("L", (width, height), 255)
    canvas.paste(qr, ((width - side) // 2, (height - side) // 2))
    luma = canvas.tobytes()
    chroma = bytes([128]) * (width // 2 * height // 2)
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n" + luma + chroma + chroma)


@pytest.fixture(scope="module")
async def faces(request, faces_settings, tmp_path_factory):
    settings, summary = faces_settings
    with live_server(settings, workers=1) as base_url:
        # A real 崇军码 of the demo's disabled serviceman: login with a 随申码, ask for a code, take its PNG.
        import httpx

        with httpx.Client(base_url=base_url, timeout=10) as client:
            login = client.post("/v1/auth/suishen", json={"code": _suishen(settings, DISABLED)})
            assert login.status_code == 200, login.text
            bearer = {"Authorization": "Bearer " + login.json()["access_token"]}
            code = client.post("/v1/me/codes", json={}, headers=bearer)
            assert code.status_code in (200, 201), code.text
            png = client.get(code.json()["png_url"], headers=bearer)
            assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        video = tmp_path_factory.mktemp("camera") / "chongjun-code.y4m"
        _write_y4m(png.content, video)
        extra = ["--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={video}",
                 "--use-fake-ui-for-media-stream", "--autoplay-policy=no-user-gesture-required"]
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=chromium_args(extra))
            try:
                yield Faces(base_url, settings, summary, browser, "scan")
            finally:
                await browser.close()


async def _set_up(page, faces: Faces, venue_prefix: str = MUSEUM) -> None:
    await page.goto(_setup_link(faces.seed_summary, venue_prefix, faces.base_url))
    await expect(page.locator("#ready")).to_be_visible()
    await expect(page.locator("#venue-name")).to_contain_text(venue_prefix)
    assert "#setup=" not in page.url, "the setup link (with the secret) must leave the address bar"


# Runs first: the 崇军码 in the fake camera is valid for 60 s (+30 s leeway) from the module's start.
async def test_camera_reads_a_chongjun_code_then_the_same_code_is_replayed(faces: Faces):
    async with faces.page("phone") as page:
        await _set_up(page, faces)
        await page.click("#mode-camera")
        await expect(page.locator("#camera-state")).to_contain_text("jsQR")
        decision = page.locator("#decision")
        await expect(decision).to_be_visible(timeout=20_000)
        await expect(decision).to_have_class(re.compile(r"\bok\b"))
        await expect(page.locator("#d-name")).to_have_text("张**")
        await expect(page.locator("#d-priority")).to_be_visible()  # grade-2 disabled: 绿色通道
        await expect(page.locator("#d-benefit")).to_contain_text("C3")
        await faces.shot(page, "camera-accepted", "phone")
        # Next: the same code is still in front of the lens, so it is read again, and refused.
        await page.click("#d-next")
        await expect(decision).to_be_visible(timeout=20_000)
        await expect(decision).to_have_attribute("data-reason", "replayed")
        await expect(decision).to_have_class(re.compile(r"\bno\b"))
        await expect(page.locator("#d-reason")).to_have_text("该码已使用，请让持码人刷新")
        await faces.shot(page, "camera-replayed", "phone")
        await page.click("#d-next")
        await page.click("#mode-wedge")
    faces.assert_clean()


@pytest.mark.parametrize("size", ["phone", "desktop"])
async def test_keyboard_wedge_accepts_a_suishen_code_then_refuses_it_replayed(faces: Faces, size: str):
    async with faces.page(size) as page:
        await _set_up(page, faces)
        await faces.shot(page, "ready", size)
        violations = await faces.axe(page)
        assert not violations, violations
        code = _suishen(faces.settings, PLAIN)
        # A hardware scanner types the code and Enter into the focused field.
        await expect(page.locator("#code-input")).to_be_focused()
        await page.fill("#companions", "1")
        await page.keyboard.type(code)
        await page.keyboard.press("Enter")
        decision = page.locator("#decision")
        await expect(decision).to_be_visible()
        await expect(decision).to_have_attribute("data-reason", "accepted")
        await expect(page.locator("#d-verdict")).to_contain_text("通过")
        await expect(page.locator("#d-name")).to_have_text("李*")
        await expect(page.locator("#d-category")).not_to_be_empty()
        await expect(page.locator("#d-companions")).to_have_text("1 / 1")
        await expect(page.locator("#d-priority")).to_be_hidden()
        await faces.shot(page, "accepted", size)
        violations = await faces.axe(page)
        assert not violations, violations
        await page.keyboard.press("Enter")  # Enter on the decision screen: next person
        await expect(page.locator("#ready")).to_be_visible()
        await expect(page.locator("#code-input")).to_be_focused()
        await page.keyboard.type(code)
        await page.keyboard.press("Enter")
        await expect(decision).to_have_attribute("data-reason", "replayed")
        await expect(page.locator("#d-verdict")).to_contain_text("拒绝")
        await faces.shot(page, "replayed", size)
        violations = await faces.axe(page)
        assert not violations, violations
    faces.assert_clean()


async def test_undo_reverses_the_accepted_scan_once(faces: Faces):
    async with faces.page("phone") as page:
        await _set_up(page, faces)
        await page.fill("#code-input", _suishen(faces.settings, PLAIN))
        await page.keyboard.press("Enter")
        await expect(page.locator("#decision")).to_have_attribute("data-reason", "accepted")
        await page.click("#d-undo")
        await expect(page.locator("#ready")).to_be_visible()
        await expect(page.locator("#recent li").first).to_contain_text("已撤销")
        await expect(page.locator("#recent li").first.locator("button")).to_have_count(0)
        await faces.shot(page, "after-undo", "phone")
    assert any("撤销" in d for d in faces.dialogs)
    faces.assert_clean()


async def test_a_revoked_device_sees_a_clear_message(faces: Faces):
    admin = faces.staff_token("demo-admin", "demo-admin-password")
    venues = faces.api().get("/v1/venues").json()
    venue = next(v for v in venues if v["name_zh"].startswith(MUSEUM))
    with faces.api() as client:
        made = client.post("/v1/admin/devices", json={"venue_id": venue["id"], "label": "测试闸机"},
                           headers={"Authorization": f"Bearer {admin}"})
        assert made.status_code == 201, made.text
        device = made.json()
    payload = {"kind": "chongjun-device-setup", "v": 1, "api": faces.base_url, "device_id": device["device_id"],
               "secret": device["secret"], "venue_id": venue["id"], "venue": venue["name_zh"]}
    link = base64.urlsafe_b64encode(json.dumps(payload, ensure_ascii=False).encode()).rstrip(b"=").decode()
    async with faces.page("phone") as page:
        await page.goto(f"{faces.base_url}/scan#setup={link}")
        await expect(page.locator("#ready")).to_be_visible()
        with faces.api() as client:
            revoked = client.post(f"/v1/admin/devices/{device['device_id']}/revoke",
                                  headers={"Authorization": f"Bearer {admin}"})
            assert revoked.status_code == 200, revoked.text
        await page.wait_for_timeout(1200)  # the device gate's in-process answer lives ≤ 1 s
        await page.fill("#code-input", _suishen(faces.settings, PLAIN))
        await page.keyboard.press("Enter")
        await expect(page.locator("#blocked")).to_be_visible()
        await expect(page.locator("#blocked-detail")).to_contain_text("此设备已停用")
        await faces.shot(page, "revoked", "phone")
        violations = await faces.axe(page)
        assert not violations, violations
        # A reload keeps refusing (the stored credential no longer works), it never shows the scanner.
        await page.reload()
        await expect(page.locator("#blocked")).to_be_visible()
    faces.assert_clean()


async def test_setup_needs_a_real_setup_code(faces: Faces):
    async with faces.page("phone") as page:
        await page.goto(faces.base_url + "/scan")
        await expect(page.locator("#setup")).to_be_visible()
        await faces.shot(page, "setup", "phone")
        violations = await faces.axe(page)
        assert not violations, violations
        await page.fill("#setup-text", '{"kind": "something-else"}')
        await page.click("#setup-form button[type=submit]")
        await expect(page.locator("#setup-error")).to_contain_text("不是设备设置码")
    # A link whose secret is wrong: refused by the server, shown as a blocked device.
    payload = {"kind": "chongjun-device-setup", "v": 1, "api": faces.base_url,
               "device_id": "00000000-0000-4000-8000-000000000001", "secret": "wrong",
               "venue_id": "00000000-0000-4000-8000-000000000002", "venue": "x"}
    link = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    async with faces.page("phone") as page:
        await page.goto(f"{faces.base_url}/scan#setup={link}")
        await expect(page.locator("#blocked")).to_be_visible()
        assert await page.evaluate("localStorage.length") == 0, "a refused credential is not kept"
    faces.assert_clean()


async def test_pages_carry_a_strict_policy(faces: Faces):
    with faces.api() as client:
        for path in ("/scan", "/console", "/console/benefits", "/faces/scan.js", "/faces/offline.js", "/scan-sw.js",
                     "/faces/console.js", "/faces/faces.css"):
            response = client.get(path)
            assert response.status_code == 200, path
            policy = response.headers["content-security-policy"]
            assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
            assert "script-src 'self'" in policy and "default-src 'none'" in policy
            assert response.headers["x-content-type-options"] == "nosniff"
            # nosniff makes the type binding: one type, one charset, said once.
            kind = {"/faces/faces.css": "text/css"}.get(path, "text/javascript" if path.endswith(".js") else "text/html")
            assert response.headers["content-type"] == f"{kind}; charset=utf-8", path
        assert client.get("/faces/../app.py").status_code == 404
        assert client.get("/faces/nothing.js").status_code == 404


def _accepted_rows(faces: Faces) -> int:
    token = faces.staff_token("demo-staff", "demo-staff-password")
    with faces.api() as client:
        page = client.get("/v1/merchant/redemptions?limit=100&result=accepted", headers={"Authorization": f"Bearer {token}"})
    assert page.status_code == 200, page.text
    return len(page.json()["items"])


async def test_a_lost_answer_is_retried_with_the_same_idempotency_key_and_counts_once(faces: Faces):
    keys: list[str] = []
    dropped = []

    async def lose_first_answer(route):
        keys.append(route.request.headers["idempotency-key"])
        if not dropped:
            await route.fetch()  # the server decides and commits...
            dropped.append(True)
            await route.abort("connectionreset")  # ...and the answer is lost on the way back
        else:
            await route.continue_()

    before = _accepted_rows(faces)
    async with faces.page("phone") as page:
        await _set_up(page, faces)
        await page.route("**/v1/scans", lose_first_answer)
        await page.fill("#code-input", _suishen(faces.settings, PLAIN))
        await page.keyboard.press("Enter")
        await expect(page.locator("#decision")).to_have_attribute("data-reason", "accepted")
    assert len(keys) == 2 and keys[0] == keys[1], keys
    # The retried scan is one ledger row (the stored first answer came back), not two.
    assert _accepted_rows(faces) == before + 1
    faces.assert_clean()


async def test_the_device_token_is_refreshed_before_it_expires(faces: Faces):
    async with faces.page("phone") as page:
        await page.clock.install()
        token_calls: list[str] = []
        page.on("request", lambda r: token_calls.append(r.url) if r.url.endswith("/v1/devices/token") else None)
        await _set_up(page, faces)
        assert len(token_calls) == 1
        await page.clock.run_for(9 * 60 * 1000 + 5_000)  # the token lives 10 minutes: renewed one before
        for _ in range(50):  # the renewal request is real network: give it up to 5 s
            if len(token_calls) >= 2:
                break
            await page.wait_for_timeout(100)
        assert len(token_calls) == 2, token_calls
        await expect(page.locator("#ready")).to_be_visible()
    faces.assert_clean()
