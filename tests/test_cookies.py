"""The browser transport: HttpOnly cookies, a refresh cookie scoped to /api/auth, and CSRF."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from authgate.config import Settings
from authgate.http.app import build_app
from authgate.service import AuthService
from tests.conftest import PASSWORD
from tests.helpers import sign_up

pytestmark = pytest.mark.anyio

COOKIE_MODE = {"X-Token-Transport": "cookie"}


@pytest.fixture
async def browser(service: AuthService, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client that keeps cookies, over https (the cookies are Secure)."""
    app = build_app(service, settings.replace(cookie_transport=True))
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
    access, refresh, csrf = (
        cookies["authgate_access"],
        cookies["authgate_refresh"],
        cookies["authgate_csrf"],
    )
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
    csrf = browser.cookies["authgate_csrf"]
    old_refresh = browser.cookies["authgate_refresh"]
    right = await browser.post("/api/auth/refreshtoken", json={}, headers={"X-CSRF-Token": csrf})
    assert right.status_code == 200
    assert right.json() == {"message": "Tokens refreshed."}
    assert browser.cookies["authgate_refresh"] != old_refresh  # rotated, like the body transport


async def test_sign_out_by_cookie_clears_the_cookies_and_the_session(
    browser: httpx.AsyncClient,
) -> None:
    await cookie_sign_in(browser)
    csrf = browser.cookies["authgate_csrf"]
    refresh_token = browser.cookies["authgate_refresh"]
    response = await browser.post("/api/auth/signout", json={}, headers={"X-CSRF-Token": csrf})
    assert response.status_code == 200
    cleared = set_cookies(response)
    assert all(
        "Max-Age=0" in cleared[name]
        for name in ("authgate_access", "authgate_refresh", "authgate_csrf")
    )
    again = await browser.post("/api/auth/refreshtoken", json={"refreshToken": refresh_token})
    assert again.status_code == 403


async def test_the_body_token_still_works_in_cookie_mode(browser: httpx.AsyncClient) -> None:
    await cookie_sign_in(browser)
    token = browser.cookies["authgate_refresh"]
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
