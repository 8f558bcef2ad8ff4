"""Behind our reverse proxies the login throttle counts the real client, and nobody else can pick one.

Over real HTTP against `chongjun serve`: the client address comes from `X-Forwarded-For` only when
the peer is in CHONGJUN_TRUSTED_PROXIES. Without that, every client behind a proxy shared the
proxy's address, and 30 failed logins from anyone throttled every staff member's login.
"""

from __future__ import annotations

import httpx
import pytest

from foundation.settings import load_settings
from identity.throttle import CLIENT_FAILURE_LIMIT, _counter
from tests.support import live_server

THROTTLED_CLIENT = "203.0.113.7"


async def _throttle(redis, client: str) -> None:
    await redis.set(_counter("client", client, CLIENT_FAILURE_LIMIT).key, CLIENT_FAILURE_LIMIT, ex=900)


def _login(http: httpx.Client, forwarded_for: str | None) -> int:
    headers = {} if forwarded_for is None else {"X-Forwarded-For": forwarded_for}
    return http.post("/v1/auth/staff", json={"username": "nobody", "password": "wrong password"}, headers=headers).status_code


async def test_a_trusted_proxy_names_the_client(settings, redis):
    await _throttle(redis, THROTTLED_CLIENT)
    with live_server(settings, workers=1, extra_env={"CHONGJUN_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8"}) as base_url:
        with httpx.Client(base_url=base_url, timeout=15) as http:
            assert _login(http, THROTTLED_CLIENT) == 429
            assert _login(http, "203.0.113.8") == 401  # another client behind the same proxy
            # A chain through a second proxy of ours: the client is the address before it.
            assert _login(http, f"{THROTTLED_CLIENT}, 10.1.2.3") == 429
            # What a client prepends is not believed: the nearest untrusted address counts.
            assert _login(http, f"{THROTTLED_CLIENT}, 198.51.100.1") == 401


async def test_an_untrusted_peer_cannot_choose_its_address(settings, redis):
    await _throttle(redis, "127.0.0.1")
    with live_server(settings, workers=1, extra_env={"CHONGJUN_TRUSTED_PROXIES": "10.255.255.1"}) as base_url:
        with httpx.Client(base_url=base_url, timeout=15) as http:
            assert _login(http, None) == 429
            assert _login(http, "203.0.113.8") == 429  # the header is ignored: the peer is not our proxy


@pytest.mark.parametrize(
    ("peer", "client"),
    [("::ffff:127.0.0.1", "203.0.113.7"), ("::ffff:10.9.8.7", "203.0.113.7"), ("::ffff:11.0.0.1", "::ffff:11.0.0.1")],
)
async def test_a_dual_stack_peer_matches_its_ipv4_entry(peer, client):
    """The wrapper the workers use, fed our list: ::ffff:127.0.0.1 is the proxy 127.0.0.1."""
    from granian.utils.proxies import wrap_asgi_with_proxy_headers

    seen = {}

    async def app(scope, receive, send):
        seen["client"] = scope["client"][0]

    trusted = list(load_settings({"CHONGJUN_TRUSTED_PROXIES": "127.0.0.1,10.0.0.0/8"}).trusted_proxies)
    scope = {"type": "http", "client": (peer, 40000), "headers": [(b"x-forwarded-for", b"203.0.113.7")]}
    await wrap_asgi_with_proxy_headers(app, trusted_hosts=trusted)(scope, None, None)
    assert seen["client"] == client


@pytest.mark.parametrize("value", ["nginx", "10.0.0.0/33", "127.0.0.1;10.0.0.1"])
def test_a_bad_proxy_list_fails_at_start(value):
    with pytest.raises(ValueError, match="CHONGJUN_TRUSTED_PROXIES"):
        load_settings({"CHONGJUN_TRUSTED_PROXIES": value})


def test_proxy_list_is_read_as_networks():
    settings = load_settings({"CHONGJUN_TRUSTED_PROXIES": " 10.0.0.0/8 ,127.0.0.1,,::1"})
    assert settings.trusted_proxies == (
        "10.0.0.0/8", "::ffff:a00:0/104", "127.0.0.1/32", "::ffff:7f00:1/128", "::1/128"
    )
    assert load_settings({}).trusted_proxies == ()
