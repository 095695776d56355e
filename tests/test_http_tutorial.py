"""The tutorial's API, through real HTTP into the ASGI app, on every configured database."""

from __future__ import annotations

import anyio
import httpx
import pytest

from authgate.config import Settings
from authgate.errors import ConfigurationError
from tests.conftest import PASSWORD, ClientWith, FakeClock
from tests.helpers import (
    bearer,
    legacy,
    refresh,
    refresh_at_once,
    sign_in,
    sign_up,
    signed_in,
)

pytestmark = pytest.mark.anyio


async def test_sign_up_answers_with_the_tutorials_message(client: httpx.AsyncClient) -> None:
    response = await sign_up(client)
    assert response.status_code == 200
    assert response.json() == {"message": "User registered successfully!"}


async def test_sign_in_returns_the_tutorials_fields(client: httpx.AsyncClient) -> None:
    body = await signed_in(client)
    assert set(body) == {"id", "username", "email", "roles", "accessToken", "refreshToken"}
    assert body["username"] == "alice"
    assert body["email"] == "alice@example.com"
    assert body["roles"] == ["ROLE_USER"]
    assert isinstance(body["id"], int)


@pytest.mark.parametrize("field", ["username", "email"])
async def test_a_taken_username_or_email_is_refused_with_the_tutorials_message(
    client: httpx.AsyncClient, field: str
) -> None:
    await sign_up(client, "alice")
    body = {"username": "bob", "email": "bob@example.com", "password": PASSWORD}
    body[field] = "ALICE" if field == "username" else "Alice@Example.com"
    response = await client.post("/api/auth/signup", json=body)
    assert response.status_code == 400
    noun = "Username" if field == "username" else "Email"
    assert response.json() == {
        "message": f"Failed! {noun} is already in use!",
        "code": f"{field}_taken",
    }


async def test_a_username_and_an_email_taken_by_two_users_refuse_the_username_first(
    client: httpx.AsyncClient,
) -> None:
    """The tutorial checks the username before the email; one query answers both here."""
    await sign_up(client, "alice")
    await sign_up(client, "carol")
    body = {"username": "Alice", "email": "carol@example.com", "password": PASSWORD}
    response = await client.post("/api/auth/signup", json=body)
    assert response.status_code == 400
    assert response.json()["code"] == "username_taken"


async def test_ten_concurrent_sign_ups_with_one_username_create_exactly_one_user(
    client: httpx.AsyncClient,
) -> None:
    statuses: list[int] = []

    async def attempt(i: int) -> None:
        body = {"username": "racer", "email": f"racer{i}@example.com", "password": PASSWORD}
        statuses.append((await client.post("/api/auth/signup", json=body)).status_code)

    async with anyio.create_task_group() as group:
        for i in range(10):
            group.start_soon(attempt, i)
    assert sorted(statuses) == [200] + [400] * 9


async def test_unknown_role_is_refused_with_the_tutorials_message(
    client: httpx.AsyncClient,
) -> None:
    response = await sign_up(client, roles=["superuser"])
    assert response.status_code == 400
    assert response.json() == {
        "message": "Failed! Role does not exist = superuser",
        "code": "unknown_role",
    }


@pytest.mark.parametrize("roles", [["admin"], ["moderator"], ["user", "admin"]])
async def test_anonymous_sign_up_cannot_ask_for_more_than_user(
    client: httpx.AsyncClient, roles: list[str]
) -> None:
    response = await sign_up(client, roles=roles)
    assert response.status_code == 403
    assert "admin" in response.json()["message"]
    assert (await sign_in(client)).status_code == 401  # nothing was created


@pytest.mark.parametrize("roles", [None, [], ["user"]])
async def test_plain_sign_up_gets_the_user_role(
    client: httpx.AsyncClient, roles: list[str] | None
) -> None:
    response = await (sign_up(client) if roles is None else sign_up(client, roles=roles))
    assert response.status_code == 200
    assert (await sign_in(client)).json()["roles"] == ["ROLE_USER"]


async def test_an_admin_token_may_grant_roles_at_sign_up(
    client: httpx.AsyncClient, services: object
) -> None:
    from authgate.admin import OPERATOR
    from authgate.services import Services

    assert isinstance(services, Services)
    await services.admin.create_user(
        OPERATOR, "cli", "root", "root@example.com", PASSWORD, ["admin"]
    )
    admin = (await sign_in(client, "root")).json()["accessToken"]
    body = {
        "username": "mod",
        "email": "mod@example.com",
        "password": PASSWORD,
        "roles": ["moderator", "user"],
    }
    response = await client.post("/api/auth/signup", json=body, headers=legacy(admin))
    assert response.status_code == 200
    assert (await sign_in(client, "mod")).json()["roles"] == ["ROLE_MODERATOR", "ROLE_USER"]


@pytest.mark.parametrize(
    ("username", "password"),
    [("alice", "wrong password entirely"), ("nobody", PASSWORD)],
    ids=["wrong", "unknown"],
)
async def test_wrong_password_and_unknown_user_get_one_answer(
    client: httpx.AsyncClient, username: str, password: str
) -> None:
    await sign_up(client)
    response = await sign_in(client, username, password)
    assert response.status_code == 401
    assert response.json() == {
        "accessToken": None,
        "message": "Invalid username or password.",
        "code": "invalid_credentials",
    }


async def test_public_content_is_plain_text(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/test/all")
    assert response.status_code == 200
    assert response.text == "Public Content."
    assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("headers", [legacy, bearer], ids=["x-access-token", "bearer"])
async def test_user_content_needs_a_valid_token_in_either_header(
    client: httpx.AsyncClient, headers: object
) -> None:
    token = (await signed_in(client))["accessToken"]
    assert callable(headers)
    response = await client.get("/api/test/user", headers=headers(token))
    assert response.status_code == 200
    assert response.text == "User Content."
    assert response.headers["content-type"].startswith("text/plain")


async def test_no_token_is_401_with_www_authenticate(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/test/user")
    assert response.status_code == 401
    assert response.json() == {"message": "No token provided!", "code": "missing_token"}
    assert response.headers["www-authenticate"] == "Bearer"


NO_TOKEN = {
    "no-header": {},
    "empty-x-access-token": {"x-access-token": ""},
    "empty-bearer": {"Authorization": "Bearer "},
    "other-scheme": {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
}


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("headers", NO_TOKEN.values(), ids=NO_TOKEN.keys())
async def test_the_missing_token_status_is_the_configured_one(
    client_with: ClientWith, status: int, headers: dict[str, str]
) -> None:
    """403 is the tutorial's answer, on which the Angular client's interceptor gives up;
    401 (the default) is RFC 6750's."""
    async with client_with(missing_token_status=str(status)) as client:
        for route in ("/api/test/user", "/api/test/mod", "/api/auth/sessions"):
            response = await client.get(route, headers=headers)
            assert response.status_code == status, route
            assert response.json() == {"message": "No token provided!", "code": "missing_token"}
            assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("headers", [legacy, bearer], ids=["x-access-token", "bearer"])
async def test_a_bad_or_expired_token_stays_401_whatever_the_missing_token_status(
    client_with: ClientWith, clock: FakeClock, status: int, headers: object
) -> None:
    """The clients' interceptors refresh on exactly this 401."""
    assert callable(headers)
    async with client_with(missing_token_status=str(status)) as client:
        token = (await signed_in(client))["accessToken"]
        bad = await client.get("/api/test/user", headers=headers(token[:-4] + "AAAA"))
        assert bad.status_code == 401
        assert bad.json() == {"message": "Unauthorized!", "code": "invalid_token"}
        clock.advance(15 * 60 + 60)  # past the lifetime, whatever the leeway
        expired = await client.get("/api/test/user", headers=headers(token))
        assert expired.status_code == 401
        assert expired.json() == {
            "message": "Unauthorized! Access Token was expired!",
            "code": "token_expired",
        }


def test_the_missing_token_status_is_401_or_403_only() -> None:
    assert Settings.from_mapping({}).missing_token_status == 401
    with pytest.raises(ConfigurationError, match="AUTHGATE_MISSING_TOKEN_STATUS"):
        Settings.from_mapping({"missing_token_status": "400"})


async def test_a_short_lived_token_is_refused_once_expired_with_the_default_leeway(
    client_with: ClientWith, clock: FakeClock
) -> None:
    """A 3-second token stops working after 3 seconds, so the clients' interceptors refresh
    when their users expect them to (a 30-second leeway kept it for 33)."""
    async with client_with(access_token_ttl_seconds=3) as client:
        signed = await signed_in(client)
        clock.advance(2.9)
        assert (
            await client.get("/api/test/user", headers=legacy(signed["accessToken"]))
        ).status_code == 200
        clock.advance(0.1)
        expired = await client.get("/api/test/user", headers=legacy(signed["accessToken"]))
        assert expired.status_code == 401
        assert expired.json() == {
            "message": "Unauthorized! Access Token was expired!",
            "code": "token_expired",
        }
        renewed = await refresh(client, signed["refreshToken"])
        assert renewed.status_code == 200
        again = await client.get("/api/test/user", headers=legacy(renewed.json()["accessToken"]))
        assert again.status_code == 200


async def test_the_clients_six_character_passwords_need_a_lower_minimum(
    client: httpx.AsyncClient, client_with: ClientWith
) -> None:
    """The clients' forms allow 6 characters; authgate asks 8 unless told otherwise (README)."""
    response = await sign_up(client, "dana", password="kq7!zx")
    assert response.status_code == 400
    assert response.json() == {
        "message": "Failed! Password must be at least 8 characters.",
        "code": "password_policy",
    }
    async with client_with(password_min_length="6") as demo:
        assert (await sign_up(demo, "dana", password="kq7!zx")).status_code == 200


@pytest.mark.plain_tokens
async def test_a_forged_token_is_401_unauthorized(client: httpx.AsyncClient) -> None:
    token = (await signed_in(client))["accessToken"]
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{signature[:-2]}AA"
    response = await client.get("/api/test/user", headers=legacy(forged))
    assert response.status_code == 401
    assert response.json() == {"message": "Unauthorized!", "code": "invalid_token"}
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_the_token_is_never_read_from_the_query_string(client: httpx.AsyncClient) -> None:
    token = (await signed_in(client))["accessToken"]
    response = await client.get("/api/test/user", params={"token": token, "x-access-token": token})
    assert response.status_code == 401


async def test_two_different_tokens_in_the_two_headers_are_refused(
    client: httpx.AsyncClient,
) -> None:
    first = (await signed_in(client, "alice"))["accessToken"]
    second = (await signed_in(client, "bob"))["accessToken"]
    response = await client.get("/api/test/user", headers={**legacy(first), **bearer(second)})
    assert response.status_code == 401
    same = await client.get("/api/test/user", headers={**legacy(first), **bearer(first)})
    assert same.status_code == 200


async def test_stale_tokens_on_public_routes_are_ignored(client: httpx.AsyncClient) -> None:
    headers = legacy("not.a.token")
    assert (await client.get("/api/test/all", headers=headers)).status_code == 200
    assert (
        await client.post(
            "/api/auth/signup",
            json={"username": "carol", "email": "c@example.com", "password": PASSWORD},
            headers=headers,
        )
    ).status_code == 200
    response = await client.post(
        "/api/auth/signin", json={"username": "carol", "password": PASSWORD}, headers=headers
    )
    assert response.status_code == 200
    assert (await refresh(client, response.json()["refreshToken"])).status_code == 200


async def test_the_tutorials_seven_steps(client: httpx.AsyncClient, clock: FakeClock) -> None:
    """Sign in, use, expire, refresh, use again, expired refresh, unknown refresh."""
    await sign_up(client)
    signed = (await sign_in(client)).json()
    assert signed["refreshToken"]

    assert (
        await client.get("/api/test/user", headers=legacy(signed["accessToken"]))
    ).status_code == 200

    clock.advance(15 * 60 + 31)  # past the 15-minute lifetime
    expired = await client.get("/api/test/user", headers=legacy(signed["accessToken"]))
    assert expired.status_code == 401
    assert expired.json() == {
        "message": "Unauthorized! Access Token was expired!",
        "code": "token_expired",
    }

    renewed = await refresh(client, signed["refreshToken"])
    assert renewed.status_code == 200
    assert set(renewed.json()) == {"accessToken", "refreshToken"}

    again = await client.get("/api/test/user", headers=legacy(renewed.json()["accessToken"]))
    assert again.status_code == 200

    clock.advance(7 * 86400)
    late = await refresh(client, renewed.json()["refreshToken"])
    assert late.status_code == 403
    generic = late.json()

    unknown = await refresh(client, "this-token-was-never-issued")
    assert unknown.status_code == 403
    assert unknown.json() == generic


async def test_refresh_without_a_token_uses_the_tutorials_message(
    client: httpx.AsyncClient,
) -> None:
    for body in ({}, {"refreshToken": None}):
        response = await client.post("/api/auth/refreshtoken", json=body)
        assert response.status_code == 403
        assert response.json() == {
            "message": "Refresh Token is required!",
            "code": "refresh_token_required",
        }


async def test_refresh_rotates_and_the_spent_token_fails(
    client: httpx.AsyncClient, settings: Settings, clock: FakeClock
) -> None:
    first = (await signed_in(client))["refreshToken"]
    rotated = await refresh(client, first)
    assert rotated.status_code == 200
    second = rotated.json()["refreshToken"]
    assert second != first
    clock.advance(settings.refresh_grace_seconds + 1)  # past the window for a lost answer
    assert (await refresh(client, first)).status_code == 403


async def test_reusing_a_refresh_token_revokes_the_whole_session(
    client: httpx.AsyncClient, settings: Settings, clock: FakeClock
) -> None:
    first = (await signed_in(client))["refreshToken"]
    second = (await refresh(client, first)).json()["refreshToken"]
    clock.advance(settings.refresh_grace_seconds + 1)
    assert (await refresh(client, first)).status_code == 403  # theft detected
    assert (await refresh(client, second)).status_code == 403  # the legitimate successor died too


async def test_sessions_are_independent(
    client: httpx.AsyncClient, settings: Settings, clock: FakeClock
) -> None:
    first = (await signed_in(client))["refreshToken"]
    other = (await sign_in(client)).json()["refreshToken"]
    second = (await refresh(client, first)).json()["refreshToken"]
    clock.advance(settings.refresh_grace_seconds + 1)
    await refresh(client, first)  # kills the first session only
    assert (await refresh(client, second)).status_code == 403
    assert (await refresh(client, other)).status_code == 200


async def test_ten_concurrent_refreshes_yield_at_most_one_successor(
    client_with: ClientWith,
) -> None:
    """RT-03 without the grace window: one winner at most, and the others' reuse ends the
    session. (With the window, the default, they share one successor:
    ``test_with_grace_concurrent_refreshes_share_one_successor``.)"""
    async with client_with(refresh_grace_seconds=0) as client:
        signed = await signed_in(client)
        answers = await refresh_at_once(client, signed["refreshToken"], 10)
        winners = [r.json()["refreshToken"] for r in answers if r.status_code == 200]
        assert len(winners) <= 1
        assert len(answers) == 10
        assert all(r.status_code in (200, 403) for r in answers)
        # Either way the session is revoked: its first access token is refused, and no
        # successor stays valid alongside a reuse.
        session_token = legacy(signed["accessToken"])
        assert (await client.get("/api/test/user", headers=session_token)).status_code == 401
        for successor in winners:
            assert (await refresh(client, successor)).status_code == 403


async def test_rotation_never_extends_the_session(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    token = (await signed_in(client))["refreshToken"]
    for _ in range(6):
        clock.advance(86400)
        response = await refresh(client, token)
        assert response.status_code == 200
        token = response.json()["refreshToken"]
    clock.advance(86400)
    assert (await refresh(client, token)).status_code == 403


async def test_sign_out_revokes_the_session(client: httpx.AsyncClient) -> None:
    token = (await signed_in(client))["refreshToken"]
    response = await client.post("/api/auth/signout", json={"refreshToken": token})
    assert response.status_code == 200
    assert (await refresh(client, token)).status_code == 403
    # An unknown token gets the same answer, so sign-out reveals nothing.
    unknown = await client.post("/api/auth/signout", json={"refreshToken": "never-issued"})
    assert unknown.status_code == 200
    assert unknown.json() == response.json()


ROUTES = ["/api/test/all", "/api/test/user", "/api/test/mod", "/api/test/admin"]
EXPECTED = {
    #            all  user  mod  admin
    None: (200, 401, 401, 401),
    "user": (200, 200, 403, 403),
    "moderator": (200, 200, 200, 403),
    "admin": (200, 200, 403, 200),  # as in the tutorial: each route asks for its own role
}


@pytest.mark.parametrize("role", list(EXPECTED), ids=lambda r: r or "anonymous")
async def test_role_matrix(client: httpx.AsyncClient, services: object, role: str | None) -> None:
    from authgate.admin import OPERATOR
    from authgate.services import Services

    assert isinstance(services, Services)
    headers: dict[str, str] = {}
    if role is not None:
        await services.admin.create_user(
            OPERATOR, "cli", "member", "member@example.com", PASSWORD, [role]
        )
        headers = legacy((await sign_in(client, "member")).json()["accessToken"])
    statuses = tuple([(await client.get(route, headers=headers)).status_code for route in ROUTES])
    assert statuses == EXPECTED[role]


@pytest.mark.parametrize(
    ("route", "message"),
    [("/api/test/mod", "Require Moderator Role!"), ("/api/test/admin", "Require Admin Role!")],
)
async def test_missing_role_messages(client: httpx.AsyncClient, route: str, message: str) -> None:
    token = (await signed_in(client))["accessToken"]
    response = await client.get(route, headers=legacy(token))
    assert response.status_code == 403
    assert response.json() == {"message": message, "code": "role_required"}
