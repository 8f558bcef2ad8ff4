"""/metrics is Litestar's Prometheus controller over api.httpmetrics' series; with several workers one scrape sees them all."""

from __future__ import annotations

import re
import time

import httpx

from tests.support import live_server


def _sample(text: str, metric: str, **labels: str) -> float:
    """The sum of `metric`'s samples whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{metric}(?:\{{(.*)\}})? (\S+)$", line)
        if match and all(f'{k}="{v}"' in (match[1] or "") for k, v in labels.items()):
            total += float(match[2])
    return total


async def test_metrics_has_requests_by_route_template_latency_and_pool(client):
    """The in-process registry outlives one app, so the test counts what its own requests add."""
    template = "/v1/benefits/{benefit_id}"
    before = (await client.get("/metrics")).text
    await client.get("/health")
    await client.get("/v1/benefits/7b0d9a35-3c2a-4bd6-9a3c-8f3f5d3f0a11")
    text = (await client.get("/metrics")).text
    counted = lambda page, **labels: _sample(page, "chongjun_requests_total", **labels)  # noqa: E731
    assert counted(text, path="/health", status_code="200") - counted(before, path="/health", status_code="200") == 1
    # By template, not by the path requested: an id never becomes a label.
    assert counted(text, path=template, status_code="404") - counted(before, path=template, status_code="404") == 1
    assert "7b0d9a35" not in text
    assert _sample(text, "chongjun_request_duration_seconds_count", path="/health") >= 1
    # api.httpmetrics keeps Litestar's series: in progress (back to 0 once answered), errors.
    assert "chongjun_requests_in_progress" in text and _sample(text, "chongjun_requests_in_progress", path="/health") == 0
    assert "# HELP chongjun_requests_error_total" in text
    assert _sample(text, "chongjun_pg_pool_max") > 0


def test_one_scrape_counts_every_workers_requests(settings):
    """Over real HTTP with 2 workers: each request on its own connection, so both workers serve
    some; the scrape (answered by one of them) must count them all, and both pools."""
    with live_server(settings, workers=2) as base_url:
        before = _sample(httpx.get(base_url + "/metrics").text, "chongjun_requests_total", path="/ready")
        for _ in range(30):
            assert httpx.get(base_url + "/ready", timeout=10).status_code == 200
        deadline = time.monotonic() + 10
        while True:
            text = httpx.get(base_url + "/metrics", timeout=10).text
            if _sample(text, "chongjun_pg_pool_max") == 2 * settings.pool_max_size or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert _sample(text, "chongjun_requests_total", path="/ready") - before == 30
        assert _sample(text, "chongjun_pg_pool_max") == 2 * settings.pool_max_size
