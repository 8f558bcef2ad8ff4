"""The faces in a real browser: Debian's Chromium driven by Playwright, one server and one browser
per test module, every host but 127.0.0.1 unreachable.

`Faces` holds what a module shares: the served instance (`chongjun serve`, demo data seeded into
a database of its own), the browser, and helpers that open a page at a viewport with outside
requests blocked and recorded, check a page with axe-core, and save screenshots under
`$CHONGJUN_SCREENSHOTS` (default `/tmp/chongjun-screens`), named `<module>-<name>-<size>.png`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import msgspec
import pytest
import redis.asyncio as aioredis
from playwright.async_api import Browser, Page, async_playwright

from chongjun.demo import seed_demo
from foundation.connections import init_connection
from foundation.settings import Settings
from tests.support import dsn_with_database, live_server, new_test_database_name

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(os.environ.get("CHONGJUN_SCREENSHOTS", "/tmp/chongjun-screens"))
AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text()
PHONE = {"width": 360, "height": 640}
DESKTOP = {"width": 1366, "height": 900}
SIZES = {"phone": PHONE, "desktop": DESKTOP}


@dataclass
class Faces:
    base_url: str
    settings: Settings
    seed_summary: str
    browser: Browser
    module: str
    outside: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)

    @asynccontextmanager
    async def page(self, size: str = "desktop", *, accept_dialogs: bool = True) -> AsyncIterator[Page]:
        """A fresh context (no storage) at `size`; outside requests aborted and recorded."""
        context = await self.browser.new_context(viewport=SIZES[size], locale="zh-CN")

        async def only_loopback(route):
            url = route.request.url
            if urlsplit(url).hostname == "127.0.0.1" or url.startswith(("data:", "blob:")):
                await route.continue_()
            else:
                self.outside.append(url)
                await route.abort()

        await context.route("**/*", only_loopback)
        page = await context.new_page()
        page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))
        page.on(
            "console",
            lambda msg: self.csp_violations.append(msg.text)
            if "Content Security Policy" in msg.text or "Content-Security-Policy" in msg.text else None,
        )

        async def on_dialog(dialog):
            self.dialogs.append(f"{dialog.type}: {dialog.message}")
            if accept_dialogs and dialog.type == "confirm":
                await dialog.accept()
            else:
                await dialog.dismiss()

        page.on("dialog", on_dialog)
        try:
            yield page
        finally:
            await context.close()

    async def shot(self, page: Page, name: str, size: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{self.module}-{name}-{size}.png"
        await page.screenshot(path=str(path), full_page=True)
        return path

    async def axe(self, page: Page) -> list[dict]:
        """axe-core over the page as it is; the serious and critical violations."""
        await page.evaluate(AXE)  # through the DevTools protocol: the page's CSP still holds for the page
        result = await page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        return [
            {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
            for v in result["violations"]
            if v["impact"] in ("serious", "critical")
        ]

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=10)

    def staff_token(self, username: str, password: str, totp: str | None = None) -> str:
        body = {"username": username, "password": password}
        if totp:
            body["totp"] = totp
        with self.api() as client:
            response = client.post("/v1/auth/staff", json=body)
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def assert_clean(self) -> None:
        assert not self.outside, f"pages asked for outside resources: {self.outside}"
        assert not self.page_errors, self.page_errors
        assert not self.csp_violations, self.csp_violations


async def _module_database(base_settings: Settings, template_database: str) -> tuple[Settings, str]:
    name = new_test_database_name()
    admin = await asyncpg.connect(base_settings.database_owner_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    finally:
        await admin.close()
    return msgspec.structs.replace(
        base_settings, database_url=dsn_with_database(base_settings.database_url, name),
        database_owner_url=dsn_with_database(base_settings.database_owner_url, name),
    ), name


@pytest.fixture(scope="module")
async def faces_settings(base_settings: Settings, template_database: str) -> AsyncIterator[tuple[Settings, str]]:
    """A database of the module's own with the demo data seeded (the README's `./dev serve` state)."""
    settings, name = await _module_database(base_settings, template_database)
    client = aioredis.Redis.from_url(settings.redis_url)
    await client.flushdb()
    conn = await asyncpg.connect(settings.database_url)
    await init_connection(conn)
    try:
        summary = await seed_demo(conn, client, settings)
    finally:
        await conn.close()
        await client.aclose()
    yield settings, summary
    admin = await asyncpg.connect(base_settings.database_owner_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def chromium_args(extra: list[str] | None = None) -> list[str]:
    assert os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} is missing: apt-get install chromium"
    return ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--no-sandbox", *(extra or [])]


@asynccontextmanager
async def faces_for(request, faces_settings, *, chromium_extra: list[str] | None = None) -> AsyncIterator[Faces]:
    settings, summary = faces_settings
    with live_server(settings, workers=1) as base_url:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=chromium_args(chromium_extra))
            try:
                yield Faces(base_url, settings, summary, browser, request.module.__name__.rsplit(".", 1)[-1])
            finally:
                await browser.close()
