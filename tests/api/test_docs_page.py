"""The docs page renders in Chromium with the network cut off: nothing is fetched from outside.

A bureau runs the service on a network without internet, so `/schema` may not depend on a CDN.
Debian's Chromium (`/usr/bin/chromium`; `./dev test` installs it when missing) loads the page from
`chongjun serve`; every request to a host other than 127.0.0.1 is aborted and recorded, and the
host resolver knows no other name either. The page must show the operations, and ask for nothing
outside.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from playwright.async_api import async_playwright

from tests.support import live_server

CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = Path(os.environ.get("CHONGJUN_DOCS_SCREENSHOT", "/tmp/chongjun-docs-page.png"))


async def test_docs_page_renders_offline(settings):
    assert os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} is missing: apt-get install chromium"
    outside: list[str] = []
    with live_server(settings, workers=1) as base_url:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--no-sandbox"],
            )
            try:
                context = await browser.new_context(viewport={"width": 1400, "height": 1000})

                async def only_loopback(route):
                    url = route.request.url
                    if urlsplit(url).hostname == "127.0.0.1" or url.startswith(("data:", "blob:")):
                        await route.continue_()
                    else:
                        outside.append(url)
                        await route.abort()

                await context.route("**/*", only_loopback)
                page = await context.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                response = await page.goto(base_url + "/schema", wait_until="networkidle")
                assert response is not None and response.status == 200
                # Redoc renders one section per operation, with its summary as the heading.
                heading = page.locator("h2", has_text="Decide a scanned 崇军码 or 随申码")
                await heading.first.wait_for(timeout=30_000)
                operations = await page.locator("[data-section-id*='operation/']").count()
                await heading.first.scroll_into_view_if_needed()
                await page.screenshot(path=str(SCREENSHOT))
            finally:
                await browser.close()
    assert not outside, f"the docs page asked for outside resources: {outside}"
    assert not errors, errors
    assert operations >= 60, f"only {operations} operations rendered"
