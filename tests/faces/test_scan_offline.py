"""The gate scanner's offline mode in Chromium (issue 15 §4): the network is cut with Playwright's
`context.set_offline(True)`, the scanner checks 崇军码 itself (WebCrypto, the signed offline
bundle), keeps its decisions in IndexedDB and uploads them when the network is back.

Two gates of one venue, both offline, let the same 崇军码 in; back online, the ledger has one row
and the merchant sees one conflict. Codes come in through the keyboard wedge (a hardware scanner
types the code and Enter), as at a real gate.
"""

from __future__ import annotations

import base64
import json
import re

import pytest
from playwright.async_api import expect

import identity
from chongjun.demo import NAMED_PEOPLE
from tests.faces.conftest import Faces, faces_for

PLAIN = dict(NAMED_PEOPLE)["plain veteran"]["id_number"]
DISABLED = dict(NAMED_PEOPLE)["grade-2 disabled serviceman (因战)"]["id_number"]
MARTYR_FAMILY = dict(NAMED_PEOPLE)["martyr's family (烈士遗属)"]["id_number"]
MUSEUM = "上海博物馆"  # C3 at 上海博物馆（人民广场馆）: one benefit, no per-person cap


@pytest.fixture(scope="module")
async def faces(request, faces_settings):
    async with faces_for(request, faces_settings) as faces:
        yield faces


def _chongjun_code(faces: Faces, id_number: str) -> str:
    """A fresh 崇军码 of a demo holder, as their phone shows it (login with a 随申码, then a code)."""
    suishen = identity.DevCityIssuer(faces.settings, identity.pii_vault(faces.settings)).issue(id_number)
    with faces.api() as client:
        login = client.post("/v1/auth/suishen", json={"code": suishen})
        assert login.status_code == 200, login.text
        code = client.post("/v1/me/codes", json={}, headers={"Authorization": "Bearer " + login.json()["access_token"]})
        assert code.status_code in (200, 201), code.text
    return code.json()["code"]


def _new_device_link(faces: Faces, admin: str) -> str:
    """A second gate at the museum, provisioned like the console does it, as its setup link."""
    with faces.api() as client:
        venue = next(v for v in client.get("/v1/venues").json() if v["name_zh"].startswith(MUSEUM))
        made = client.post("/v1/admin/devices", json={"venue_id": venue["id"], "label": "东门闸机"},
                           headers={"Authorization": f"Bearer {admin}"})
        assert made.status_code == 201, made.text
    device = made.json()
    payload = {"kind": "chongjun-device-setup", "v": 1, "api": faces.base_url, "device_id": device["device_id"],
               "secret": device["secret"], "venue_id": venue["id"], "venue": venue["name_zh"]}
    return f"{faces.base_url}/scan#setup=" + base64.urlsafe_b64encode(json.dumps(payload, ensure_ascii=False).encode()).rstrip(b"=").decode()


def _demo_link(faces: Faces) -> str:
    lines = faces.seed_summary.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(f"device at {MUSEUM}"):
            link = lines[i + 1].split("scanner: ", 1)[1]
            return faces.base_url + link[link.index("/scan#setup="):]
    raise AssertionError("no demo device at the museum")


def _merchant_entries(faces: Faces, result: str) -> list[dict]:
    token = faces.staff_token("demo-staff", "demo-staff-password")
    with faces.api() as client:
        page = client.get(f"/v1/merchant/redemptions?limit=100&result={result}", headers={"Authorization": f"Bearer {token}"})
    assert page.status_code == 200, page.text
    return page.json()["items"]


async def _ready_offline(page, link: str) -> None:
    await page.goto(link)
    await expect(page.locator("#ready")).to_be_visible()
    await expect(page.locator("#bundle-state")).to_have_attribute("data-ready", "true")  # the bundle is in IndexedDB
    await page.context.set_offline(True)
    await expect(page.locator("#offline-banner")).to_be_visible()
    await expect(page.locator("#device-state")).to_have_text("离线 · offline")


async def _wedge(page, code: str) -> None:
    await expect(page.locator("#code-input")).to_be_focused()
    await page.keyboard.type(code)
    await page.keyboard.press("Enter")


async def test_two_gates_offline_accept_the_same_code_one_row_and_one_conflict_on_upload(faces: Faces):
    admin = faces.staff_token("demo-admin", "demo-admin-password")
    second_link = _new_device_link(faces, admin)
    accepted_before = len(_merchant_entries(faces, "accepted"))
    code = _chongjun_code(faces, PLAIN)
    async with faces.page("phone") as gate_a, faces.page("desktop") as gate_b:
        await _ready_offline(gate_a, _demo_link(faces))
        await _ready_offline(gate_b, second_link)
        await faces.shot(gate_a, "offline-ready", "phone")
        violations = await faces.axe(gate_a)
        assert not violations, violations
        for gate, size in ((gate_a, "phone"), (gate_b, "desktop")):
            await _wedge(gate, code)
            decision = gate.locator("#decision")
            await expect(decision).to_be_visible()
            await expect(decision).to_have_attribute("data-reason", "accepted_offline")
            await expect(decision).to_have_class(re.compile(r"\boffline\b"))
            await expect(gate.locator("#d-verdict")).to_have_text("✓ 离线通过 Accepted offline")
            await expect(gate.locator("#d-benefit")).to_contain_text("C3")
            await expect(gate.locator("#d-name")).to_be_hidden()  # offline, the holder's name is not known
            await faces.shot(gate, "offline-accepted", size)
            violations = await faces.axe(gate)
            assert not violations, violations
            await gate.keyboard.press("Enter")
            await expect(gate.locator("#pending-count")).to_have_text("1")
        # The same code again at gate A: refused on the spot, from the decisions it keeps.
        await _wedge(gate_a, code)
        await expect(gate_a.locator("#decision")).to_have_attribute("data-reason", "replayed")
        await expect(gate_a.locator("#d-offline")).to_be_visible()  # a refusal decided offline says so too
        await faces.shot(gate_a, "offline-replayed", "phone")
        await gate_a.keyboard.press("Enter")
        # The decisions are in IndexedDB, not only in memory.
        kept = await gate_a.evaluate("""() => new Promise((ok, fail) => {
            const open = indexedDB.open("chongjun-scanner");
            open.onsuccess = () => { const r = open.result.transaction("decisions").objectStore("decisions").getAll();
                                     r.onsuccess = () => ok(r.result); r.onerror = () => fail(r.error); };
            open.onerror = () => fail(open.error); })""")
        assert [(d["benefit_id"] is not None, d["outcome"]) for d in kept] == [(True, None)]
        assert set(kept[0]) == {  # no personal data kept on the gate: the code, its jti and pseudonym
            "local_id", "code", "venue_id", "benefit_id", "companions", "decided_at", "jti", "sub", "hour", "day",
            "outcome", "reason"}
        # Back online: gate A uploads first, then gate B; one is recorded, the other a conflict.
        await gate_a.context.set_offline(False)
        await expect(gate_a.locator("#sync-state")).to_contain_text("记录 recorded 1")
        await expect(gate_a.locator("#offline-banner")).to_be_hidden()
        await expect(gate_a.locator("#recent li").first).to_have_attribute("data-outcome", "recorded")
        await expect(gate_a.locator("#pending-count")).to_have_text("0")
        await gate_b.context.set_offline(False)
        await expect(gate_b.locator("#sync-state")).to_contain_text("冲突 conflict 1")
        await expect(gate_b.locator("#recent li").first).to_have_attribute("data-outcome", "conflict")
        await expect(gate_b.locator("#recent li").first).to_contain_text("冲突·未计入 conflict: 该码已在别处使用")
        await faces.shot(gate_a, "online-uploaded", "phone")
        await faces.shot(gate_b, "online-conflict", "desktop")
        violations = await faces.axe(gate_b)
        assert not violations, violations
    # One ledger row for the code, with its offline decision time, and one conflict for the merchant.
    accepted = _merchant_entries(faces, "accepted")
    assert len(accepted) == accepted_before + 1 and accepted[0]["decided_at"] is not None
    conflicts = _merchant_entries(faces, "conflict")
    assert [(c["result"], c["reason"]) for c in conflicts] == [("conflict", "replayed")]
    faces.assert_clean()


async def test_offline_budget_and_undo_before_upload(faces: Faces):
    async with faces.page("phone") as gate:
        await _ready_offline(gate, _demo_link(faces))
        first, second = _chongjun_code(faces, DISABLED), _chongjun_code(faces, DISABLED)
        await _wedge(gate, first)
        await expect(gate.locator("#decision")).to_have_attribute("data-reason", "accepted_offline")
        await gate.keyboard.press("Enter")
        # The same holder again the same day: past the per-holder offline budget (1), refused here.
        await _wedge(gate, second)
        await expect(gate.locator("#decision")).to_have_attribute("data-reason", "offline_budget_exceeded")
        await expect(gate.locator("#d-reason")).to_have_text("已达离线核验额度，请联网后核验")
        await faces.shot(gate, "offline-budget", "phone")
        await gate.keyboard.press("Enter")
        # A forged code is refused offline too.
        await _wedge(gate, "CJ1:eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl")
        await expect(gate.locator("#decision")).to_have_attribute("data-reason", "invalid_code")
        await gate.keyboard.press("Enter")
        # Undo the offline accept before the upload: nothing is uploaded, nothing reaches the ledger.
        before = len(_merchant_entries(faces, "accepted"))
        await gate.locator("#recent li").first.locator("button").click()
        await expect(gate.locator("#recent li").first).to_contain_text("已撤销")
        await expect(gate.locator("#pending-count")).to_have_text("0")
        await gate.context.set_offline(False)
        await expect(gate.locator("#offline-banner")).to_be_hidden()
        await expect(gate.locator("#device-state")).to_contain_text("在线")
        # Online again, the second code is decided by the server as usual.
        await _wedge(gate, second)
        await expect(gate.locator("#decision")).to_have_attribute("data-reason", "accepted")
        await expect(gate.locator("#d-name")).to_have_text("张**")
    assert len(_merchant_entries(faces, "accepted")) == before + 1
    faces.assert_clean()


async def test_a_gate_reloaded_without_the_network_opens_in_offline_mode_and_uploads_later(faces: Faces):
    async with faces.page("phone") as gate:
        await gate.goto(_demo_link(faces))
        await expect(gate.locator("#bundle-state")).to_have_attribute("data-ready", "true")
        # The service worker has kept the page and its assets.
        await gate.wait_for_function("navigator.serviceWorker.controller !== null", timeout=10_000)
        await gate.wait_for_function("caches.match('/faces/offline.js').then((r) => !!r)", timeout=10_000)
        await gate.context.set_offline(True)
        await gate.reload()
        await expect(gate.locator("#ready")).to_be_visible()
        await expect(gate.locator("#offline-banner")).to_be_visible()
        await expect(gate.locator("#bundle-state")).to_have_attribute("data-ready", "true")  # from IndexedDB
        await faces.shot(gate, "reloaded-offline", "phone")
        await _wedge(gate, _chongjun_code(faces, MARTYR_FAMILY))  # a holder this gate has not let in offline today
        await expect(gate.locator("#decision")).to_have_attribute("data-reason", "accepted_offline")
        await gate.keyboard.press("Enter")
        await expect(gate.locator("#pending-count")).to_have_text("1")
        await gate.context.set_offline(False)
        await expect(gate.locator("#sync-state")).to_contain_text("记录 recorded 1")
        await expect(gate.locator("#pending-count")).to_have_text("0")
    faces.assert_clean()
