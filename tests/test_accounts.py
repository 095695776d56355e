"""A user's own account: sessions, sign-out everywhere, password, email and deletion."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import PASSWORD, FakeClock
from tests.helpers import legacy, refresh, sign_in, sign_up, signed_in

pytestmark = pytest.mark.anyio

NEW_PASSWORD = "a brand new passphrase"


async def user_content(client: httpx.AsyncClient, token: str) -> int:
    return (await client.get("/api/test/user", headers=legacy(token))).status_code


async def test_my_sessions_are_listed_with_their_details(client: httpx.AsyncClient) -> None:
    first = await signed_in(client)
    await client.post(
        "/api/auth/signin",
        json={"username": "alice", "password": PASSWORD},
        headers={"User-Agent": "second-browser/1.0"},
    )
    response = await client.get("/api/auth/sessions", headers=legacy(first["accessToken"]))
    assert response.status_code == 200
    sessions = response.json()["sessions"]
    assert len(sessions) == 2
    assert [s["current"] for s in sessions].count(True) == 1
    assert {s["userAgent"] for s in sessions} >= {"second-browser/1.0"}
    assert all(s["clientAddress"] == "127.0.0.1" for s in sessions)
    assert "refreshToken" not in response.text


async def test_revoking_one_session_ends_only_it(client: httpx.AsyncClient) -> None:
    first = await signed_in(client)
    second = (await sign_in(client)).json()
    listed = (await client.get("/api/auth/sessions", headers=legacy(first["accessToken"]))).json()
    other = next(s["id"] for s in listed["sessions"] if not s["current"])
    response = await client.delete(
        f"/api/auth/sessions/{other}", headers=legacy(first["accessToken"])
    )
    assert response.status_code == 200
    assert await user_content(client, second["accessToken"]) == 401
    assert (await refresh(client, second["refreshToken"])).status_code == 403
    assert await user_content(client, first["accessToken"]) == 200


async def test_someone_elses_session_is_not_found(client: httpx.AsyncClient) -> None:
    alice = await signed_in(client, "alice")
    bob = await signed_in(client, "bob")
    bobs = (await client.get("/api/auth/sessions", headers=legacy(bob["accessToken"]))).json()
    response = await client.delete(
        f"/api/auth/sessions/{bobs['sessions'][0]['id']}", headers=legacy(alice["accessToken"])
    )
    assert response.status_code == 404
    unknown = await client.delete("/api/auth/sessions/nope", headers=legacy(alice["accessToken"]))
    assert unknown.json() == response.json()
    assert await user_content(client, bob["accessToken"]) == 200


async def test_sign_out_with_the_access_token_ends_this_session(client: httpx.AsyncClient) -> None:
    signed = await signed_in(client)
    response = await client.post(
        "/api/auth/signout", json={}, headers=legacy(signed["accessToken"])
    )
    assert response.status_code == 200
    assert await user_content(client, signed["accessToken"]) == 401
    assert (await refresh(client, signed["refreshToken"])).status_code == 403


async def test_sign_out_by_refresh_token_does_not_look_at_the_access_token(
    client: httpx.AsyncClient,
) -> None:
    signed = await signed_in(client)
    response = await client.post(
        "/api/auth/signout",
        json={"refreshToken": signed["refreshToken"]},
        headers=legacy("not-a-token"),
    )
    assert response.status_code == 200
    assert await user_content(client, signed["accessToken"]) == 401  # its session ended


async def test_sign_out_by_a_bad_access_token_is_the_documented_401(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    operation = (await client.get("/openapi.json")).json()["paths"]["/api/auth/signout"]["post"]
    assert "401" in operation["responses"]
    signed = await signed_in(client)
    bad = await client.post("/api/auth/signout", json={}, headers=legacy("not-a-token"))
    assert bad.status_code == 401
    assert bad.json() == {"message": "Unauthorized!", "code": "invalid_token"}
    assert bad.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    # The tutorial's interceptors answer this 401 with a refresh and a retry, which works.
    clock.advance(900 + 30 + 1)  # past the lifetime, even with a 30-second leeway
    expired = await client.post("/api/auth/signout", json={}, headers=legacy(signed["accessToken"]))
    assert expired.status_code == 401
    assert expired.json() == {
        "message": "Unauthorized! Access Token was expired!",
        "code": "token_expired",
    }
    renewed = (await refresh(client, signed["refreshToken"])).json()
    retried = await client.post(
        "/api/auth/signout", json={}, headers=legacy(renewed["accessToken"])
    )
    assert retried.status_code == 200
    assert (await refresh(client, renewed["refreshToken"])).status_code == 403


async def test_sign_out_everywhere_ends_every_session(client: httpx.AsyncClient) -> None:
    first = await signed_in(client)
    second = (await sign_in(client)).json()
    response = await client.post(
        "/api/auth/signout-all", json={}, headers=legacy(first["accessToken"])
    )
    assert response.status_code == 200
    for signed in (first, second):
        assert await user_content(client, signed["accessToken"]) == 401
        assert (await refresh(client, signed["refreshToken"])).status_code == 403


async def test_sensitive_operations_need_a_recent_sign_in_or_the_password(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    signed = await signed_in(client)
    clock.advance(301)  # past the 5-minute window; refresh keeps the original auth_time
    access = (await refresh(client, signed["refreshToken"])).json()["accessToken"]
    stale = await client.post("/api/auth/signout-all", json={}, headers=legacy(access))
    assert stale.status_code == 403
    assert "Re-authentication" in stale.json()["message"]
    wrong = await client.post(
        "/api/auth/signout-all", json={"currentPassword": "not it at all"}, headers=legacy(access)
    )
    assert wrong.status_code == 403
    right = await client.post(
        "/api/auth/signout-all", json={"currentPassword": PASSWORD}, headers=legacy(access)
    )
    assert right.status_code == 200


async def test_a_password_change_ends_every_other_session(client: httpx.AsyncClient) -> None:
    current = await signed_in(client)
    other = (await sign_in(client)).json()
    response = await client.post(
        "/api/auth/password",
        json={"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD},
        headers=legacy(current["accessToken"]),
    )
    assert response.status_code == 200
    assert await user_content(client, other["accessToken"]) == 401
    assert (await refresh(client, other["refreshToken"])).status_code == 403
    assert await user_content(client, current["accessToken"]) == 200
    assert (await sign_in(client, "alice", PASSWORD)).status_code == 401
    assert (await sign_in(client, "alice", NEW_PASSWORD)).status_code == 200


async def test_the_new_password_obeys_the_policy(client: httpx.AsyncClient) -> None:
    signed = await signed_in(client)
    response = await client.post(
        "/api/auth/password",
        json={"newPassword": "password"},
        headers=legacy(signed["accessToken"]),
    )
    assert response.status_code == 400
    assert "common" in response.json()["message"]


async def test_changing_the_email(client: httpx.AsyncClient) -> None:
    signed = await signed_in(client, "alice")
    await signed_in(client, "bob")
    taken = await client.post(
        "/api/auth/email", json={"email": "BOB@example.com"}, headers=legacy(signed["accessToken"])
    )
    assert taken.status_code == 400
    assert taken.json() == {"message": "Failed! Email is already in use!", "code": "email_taken"}
    changed = await client.post(
        "/api/auth/email",
        json={"email": "alice@new.example"},
        headers=legacy(signed["accessToken"]),
    )
    assert changed.status_code == 200
    assert (await sign_in(client)).json()["email"] == "alice@new.example"


async def test_deleting_the_account_frees_the_name_and_ends_everything(
    client: httpx.AsyncClient,
) -> None:
    signed = await signed_in(client)
    response = await client.request(
        "DELETE",
        "/api/auth/account",
        json={"currentPassword": PASSWORD},
        headers=legacy(signed["accessToken"]),
    )
    assert response.status_code == 200
    assert await user_content(client, signed["accessToken"]) == 401
    assert (await refresh(client, signed["refreshToken"])).status_code == 403
    assert (await sign_in(client)).status_code == 401
    assert (await sign_up(client)).status_code == 200  # the name is free again


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/auth/sessions"),
        ("DELETE", "/api/auth/sessions/x"),
        ("POST", "/api/auth/signout-all"),
        ("POST", "/api/auth/password"),
        ("POST", "/api/auth/email"),
        ("DELETE", "/api/auth/account"),
    ],
)
async def test_account_routes_need_a_token(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path, json={})
    assert response.status_code == 401
