"""The browser transport: HttpOnly cookies, a refresh cookie scoped to /api/auth, and CSRF."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from authgate.config import Settings
from authgate.http.app import build_app
from authgate.runtime import build_services
from authgate.services import Services
from authgate.storage import Database
from tests.conftest import PASSWORD, FakeClock
from tests.helpers import sign_up

pytestmark = pytest.mark.anyio

COOKIE_MODE = {"X-Token-Transport": "cookie"}
#: The names of Secure cookies (the default), with the prefixes browsers enforce.
ACCESS, REFRESH, CSRF = (
    "__Host-authgate_access",
    "__Secure-authgate_refresh",
    "__Host-authgate_csrf",
)


@pytest.fixture
async def browser(services: Services, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client that keeps cookies, over https (the cookies are Secure)."""
    app = build_app(services, settings.replace(cookie_transport=True))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://authgate.test") as client:
        yield client


async def cookie_sign_in(client: httpx.AsyncClient) -> httpx.Response:
    await sign_up(client)
    body = {"username": "alice", "password": PASSWORD}
    return await client.post("/api/auth/signin", json=body, headers=COOKIE_MODE)


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """Set-Cookie headers by cookie name."""
    found = {}
    for header in response.headers.get_list("set-cookie"):
        name = header.split("=", 1)[0]
        found[name] = header
    return found


async def test_cookie_sign_in_keeps_tokens_out_of_the_body(browser: httpx.AsyncClient) -> None:
    response = await cookie_sign_in(browser)
    assert response.status_code == 200
    assert set(response.json()) == {"id", "username", "email", "roles"}
    cookies = set_cookies(response)
    assert set(cookies) == {ACCESS, REFRESH, CSRF}
    access, refresh, csrf = cookies[ACCESS], cookies[REFRESH], cookies[CSRF]
    for header in (access, refresh):
        assert "HttpOnly" in header
        assert "Secure" in header
    assert "Path=/;" in access or access.endswith("Path=/")
    assert "SameSite=lax" in access
    assert "Path=/api/auth" in refresh
    assert "SameSite=strict" in refresh
    assert "HttpOnly" not in csrf  # the page reads it to echo it


async def test_the_access_cookie_opens_protected_routes(browser: httpx.AsyncClient) -> None:
    await cookie_sign_in(browser)
    response = await browser.get("/api/test/user")
    assert response.status_code == 200
    assert response.text == "User Content."


async def test_refresh_by_cookie_needs_the_csrf_header(browser: httpx.AsyncClient) -> None:
    await cookie_sign_in(browser)
    without = await browser.post("/api/auth/refreshtoken", json={})
    assert without.status_code == 403
    assert "CSRF" in without.json()["message"]
    wrong = await browser.post("/api/auth/refreshtoken", json={}, headers={"X-CSRF-Token": "guess"})
    assert wrong.status_code == 403
    csrf = browser.cookies[CSRF]
    old_refresh = browser.cookies[REFRESH]
    right = await browser.post("/api/auth/refreshtoken", json={}, headers={"X-CSRF-Token": csrf})
    assert right.status_code == 200
    assert right.json() == {"message": "Tokens refreshed."}
    assert browser.cookies[REFRESH] != old_refresh  # rotated, like the body transport


async def test_sign_out_by_cookie_clears_the_cookies_and_the_session(
    browser: httpx.AsyncClient,
) -> None:
    await cookie_sign_in(browser)
    csrf = browser.cookies[CSRF]
    refresh_token = browser.cookies[REFRESH]
    response = await browser.post("/api/auth/signout", json={}, headers={"X-CSRF-Token": csrf})
    assert response.status_code == 200
    cleared = set_cookies(response)
    assert all("Max-Age=0" in cleared[name] for name in (ACCESS, REFRESH, CSRF))
    again = await browser.post("/api/auth/refreshtoken", json={"refreshToken": refresh_token})
    assert again.status_code == 403


async def test_the_body_token_still_works_in_cookie_mode(browser: httpx.AsyncClient) -> None:
    await cookie_sign_in(browser)
    token = browser.cookies[REFRESH]
    browser.cookies.clear()
    response = await browser.post("/api/auth/refreshtoken", json={"refreshToken": token})
    assert response.status_code == 200
    assert set(response.json()) == {"accessToken", "refreshToken"}


async def test_cookies_are_ignored_unless_the_transport_is_on(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    response = await client.post(
        "/api/auth/signin", json={"username": "alice", "password": PASSWORD}, headers=COOKIE_MODE
    )
    assert set(response.json()) >= {"accessToken", "refreshToken"}
    assert "set-cookie" not in response.headers
    token = response.json()["accessToken"]
    client.cookies.set("authgate_access", token)
    assert (await client.get("/api/test/user")).status_code == 401


def test_samesite_none_needs_secure_cookies(settings: Settings) -> None:
    from authgate.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="AUTHGATE_COOKIE_SECURE"):
        settings.replace(cookie_samesite="none", cookie_secure=False)


async def test_secure_cookies_carry_the_prefixes_that_stop_planting(
    browser: httpx.AsyncClient,
) -> None:
    """``__Host-``: Secure, Path=/ and no Domain, so no sibling subdomain or plain-HTTP page
    can set one; the refresh cookie's path allows only ``__Secure-``."""
    cookies = set_cookies(await cookie_sign_in(browser))
    for name in (ACCESS, CSRF):
        assert "Secure" in cookies[name]
        assert "Path=/;" in cookies[name] or cookies[name].endswith("Path=/")
    assert "Secure" in cookies[REFRESH]
    assert all("domain=" not in header.lower() for header in cookies.values())
    signed_out = await browser.post(
        "/api/auth/signout", json={}, headers={"X-CSRF-Token": browser.cookies[CSRF]}
    )
    cleared = set_cookies(signed_out)
    # A browser ignores the deletion of a prefixed cookie unless it is Secure too.
    assert all("Secure" in cleared[name] and "Max-Age=0" in cleared[name] for name in cleared)
    assert set(cleared) == {ACCESS, REFRESH, CSRF}


async def test_unprefixed_cookies_are_not_read_when_cookies_are_secure(
    browser: httpx.AsyncClient,
) -> None:
    await cookie_sign_in(browser)
    token = browser.cookies[ACCESS]
    browser.cookies.clear()
    browser.cookies.set("authgate_access", token)  # as a subdomain could plant it
    assert (await browser.get("/api/test/user")).status_code == 401


async def test_sign_in_and_refresh_never_keep_a_planted_csrf_value(
    browser: httpx.AsyncClient,
) -> None:
    browser.cookies.set(CSRF, "planted-by-someone-else", domain="authgate.test")
    await cookie_sign_in(browser)
    issued = browser.cookies[CSRF]
    assert issued != "planted-by-someone-else"
    planted = {"X-CSRF-Token": "planted-by-someone-else"}
    assert (
        await browser.post("/api/auth/refreshtoken", json={}, headers=planted)
    ).status_code == 403
    refreshed = await browser.post(
        "/api/auth/refreshtoken", json={}, headers={"X-CSRF-Token": issued}
    )
    assert refreshed.status_code == 200
    assert browser.cookies[CSRF] not in (issued, "planted-by-someone-else")  # new at refresh too


async def test_plain_http_development_uses_the_plain_names_and_a_fresh_csrf_value(
    services: Services, settings: Settings
) -> None:
    """Browsers refuse prefixed cookies that are not Secure: over plain HTTP
    (AUTHGATE_COOKIE_SECURE=false) the plain names are used, and the CSRF rule is the same."""
    plain = settings.replace(cookie_transport=True, cookie_secure=False)
    transport = httpx.ASGITransport(app=build_app(services, plain))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as client:
        client.cookies.set("authgate_csrf", "planted-by-someone-else", domain="127.0.0.1")
        response = await cookie_sign_in(client)
        cookies = set_cookies(response)
        assert set(cookies) == {"authgate_access", "authgate_refresh", "authgate_csrf"}
        assert all("Secure" not in header for header in cookies.values())
        csrf = client.cookies["authgate_csrf"]
        assert csrf != "planted-by-someone-else"
        user = await client.get("/api/test/user")
        assert user.status_code == 200
        refreshed = await client.post(
            "/api/auth/refreshtoken", json={}, headers={"X-CSRF-Token": csrf}
        )
        assert refreshed.status_code == 200


@pytest.mark.plain_tokens
async def test_the_cookies_live_as_long_as_their_tokens(
    settings: Settings, database: Database, clock: FakeClock
) -> None:
    """The access cookie's Max-Age is the access token's lifetime (exp - iat), the refresh
    and CSRF cookies' the refresh token's."""
    changed = settings.replace(
        cookie_transport=True, access_token_ttl_seconds=123, refresh_token_ttl_seconds=4567
    )
    services = await build_services(changed, database, clock=clock)
    transport = httpx.ASGITransport(app=build_app(services, changed))
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="https://authgate.test"
        ) as client:
            cookies = set_cookies(await cookie_sign_in(client))
            payload = client.cookies[ACCESS].split(".")[1]
    finally:
        await services.aclose()
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["exp"] - claims["iat"] == 123
    assert "Max-Age=123;" in cookies[ACCESS]
    assert "Max-Age=4567;" in cookies[REFRESH]
    assert "Max-Age=4567;" in cookies[CSRF]
