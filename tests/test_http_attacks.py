"""Attacks through real HTTP: forged tokens, refresh abuse, enumeration and privilege."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import argon2
import httpx
import pytest

from authgate.admin import OPERATOR
from authgate.policy import username_key
from authgate.service import AuthService
from authgate.services import Services
from authgate.storage import Database
from tests.conftest import PASSWORD
from tests.forge import claims, segment, sign, token
from tests.helpers import bearer, legacy, refresh, sign_in, sign_up, signed_in

pytestmark = pytest.mark.anyio

HEADER_STYLES: list[Callable[[str], dict[str, str]]] = [legacy, bearer]
STYLE_IDS = ["x-access-token", "bearer"]

FORGERIES = {
    "TF-01 alg none": f"{segment({'alg': 'none', 'typ': 'at+jwt'})}.{segment(claims())}.",
    "TF-01 alg nOnE": f"{segment({'alg': 'nOnE', 'typ': 'at+jwt'})}.{segment(claims())}.",
    "TF-02 signature stripped": token().rsplit(".", 1)[0] + ".",
    "TF-02 two segments": token().rsplit(".", 1)[0],
    "TF-03 signature flipped": token()[:-1] + ("A" if token()[-1] != "A" else "B"),
    "TF-04 payload changed": ".".join(
        [token().split(".")[0], segment(claims(roles=["admin"], sub="2")), token().split(".")[2]]
    ),
    "TF-05 HS512 with our key": sign(
        {"alg": "HS512", "typ": "at+jwt"}, claims(), digest=hashlib.sha512
    ),
    "TF-05 RS256 header": sign({"alg": "RS256", "typ": "at+jwt"}, claims()),
    "TF-05 lower-case alg": sign({"alg": "hs256", "typ": "at+jwt"}, claims()),
    "TF-06 common secret": sign({"alg": "HS256", "typ": "at+jwt"}, claims(), key="secret"),
    "TF-06 tutorial secret": sign(
        {"alg": "HS256", "typ": "at+jwt"}, claims(), key="bezkoder-secret-key"
    ),
    "TF-07 empty key": sign({"alg": "HS256", "typ": "at+jwt"}, claims(), key=b""),
    "TF-08 kid path": sign(
        {"alg": "HS256", "typ": "at+jwt", "kid": "../../../../dev/null"}, claims(), key=b""
    ),
    "TF-08 kid sql": sign(
        {"alg": "HS256", "typ": "at+jwt", "kid": "x' UNION SELECT '1';--"}, claims(), key="1"
    ),
    "TF-09 embedded jwk": sign(
        {"alg": "HS256", "typ": "at+jwt", "jwk": {"kty": "oct", "k": "MTIz"}}, claims(), key="123"
    ),
    "TF-10 jku": sign(
        {"alg": "HS256", "typ": "at+jwt", "jku": "http://127.0.0.1:9/jwks.json"}, claims()
    ),
    "TF-10 x5u": sign(
        {"alg": "HS256", "typ": "at+jwt", "x5u": "http://127.0.0.1:9/cert.pem"}, claims()
    ),
    "TF-11 wrong iss": token(iss="evil"),
    "TF-11 missing aud": token(aud=None),
    "TF-13 nbf in the future": token(nbf=1_800_000_000 + 120),
    "TF-14 iat in the future": token(iat=1_800_000_000 + 120),
    "TF-15 no exp, sub or iat": token(exp=None, sub=None, iat=None),
    "TF-16 16 KB": "a" * 16 * 1024,
    "TF-17 header not json": sign(b"not json", claims()),
    "TF-17 payload array": sign({"alg": "HS256", "typ": "at+jwt"}, b"[]"),
    "TF-17 payload null": sign({"alg": "HS256", "typ": "at+jwt"}, b"null"),
    "TF-18 padding on signature": token() + "=",
    "TF-18 plus and slash": token().replace("-", "+").replace("_", "/"),
    "TF-18 five segments": token() + ".e30.e30",
    "TF-19 refresh token as access token": "REFRESH",
    "TF-20 crit": sign(
        {"alg": "HS256", "typ": "at+jwt", "crit": ["x-unknown"], "x-unknown": 1}, claims()
    ),
    "TF-25 exp ten years after iat": token(exp=1_800_000_000 + 10 * 365 * 86400),
    "TF-25 lifetime one second too long": token(exp=1_800_000_000 + 901),
    "TF-26 unknown claim": token(admin=True),
    "TF-26 unknown claim scope": token(scope="admin"),
}


def _generic(response: httpx.Response) -> tuple[int, object, str | None]:
    return response.status_code, response.json(), response.headers.get("www-authenticate")


@pytest.mark.parametrize("style", HEADER_STYLES, ids=STYLE_IDS)
@pytest.mark.parametrize("name", list(FORGERIES))
async def test_forged_tokens_get_the_generic_401(
    client: httpx.AsyncClient, name: str, style: Callable[[str], dict[str, str]]
) -> None:
    signed = await signed_in(client)  # user 1 exists, so a forgery naming sub=1 would matter
    value = signed["refreshToken"] if FORGERIES[name] == "REFRESH" else FORGERIES[name]
    response = await client.get("/api/test/user", headers=style(value))
    baseline = await client.get("/api/test/user", headers=style("a.b.c"))
    assert (
        _generic(response)
        == _generic(baseline)
        == (
            401,
            {"message": "Unauthorized!", "code": "invalid_token"},
            'Bearer error="invalid_token"',
        )
    )


@pytest.mark.parametrize("style", HEADER_STYLES, ids=STYLE_IDS)
async def test_a_genuine_token_passes_in_both_styles(
    client: httpx.AsyncClient, style: Callable[[str], dict[str, str]]
) -> None:
    """The control for the forgery matrix: the same request with the real token is served."""
    signed = await signed_in(client)
    assert (
        await client.get("/api/test/user", headers=style(signed["accessToken"]))
    ).status_code == 200


@pytest.mark.plain_tokens
@pytest.mark.parametrize("style", HEADER_STYLES, ids=STYLE_IDS)
async def test_a_genuine_token_past_its_leeway_is_reported_expired(
    client: httpx.AsyncClient, style: Callable[[str], dict[str, str]]
) -> None:
    """TF-12: the expiry hint is given only because the signature verified first."""
    response = await client.get("/api/test/user", headers=style(token(exp=1_800_000_000 - 31)))
    assert response.status_code == 401
    assert response.json() == {
        "message": "Unauthorized! Access Token was expired!",
        "code": "token_expired",
    }


async def test_a_1_mb_header_never_reaches_a_500(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/test/user", headers=legacy("a" * 1024 * 1024))
    assert response.status_code in (401, 431)


# -- refresh abuse -------------------------------------------------------------


async def test_an_access_token_is_not_a_refresh_token(client: httpx.AsyncClient) -> None:
    signed = await signed_in(client)
    assert (await refresh(client, signed["accessToken"])).status_code == 403


async def test_the_refresh_token_is_never_read_from_the_url(client: httpx.AsyncClient) -> None:
    signed = await signed_in(client)
    response = await client.post(
        "/api/auth/refreshtoken", params={"refreshToken": signed["refreshToken"]}, json={}
    )
    assert response.status_code == 403
    assert response.json() == {
        "message": "Refresh Token is required!",
        "code": "refresh_token_required",
    }


@pytest.mark.plain_tokens
async def test_refresh_issues_tokens_only_for_the_tokens_owner(client: httpx.AsyncClient) -> None:
    await signed_in(client, "alice")
    bob = await signed_in(client, "bob")
    response = await client.post(
        "/api/auth/refreshtoken",
        json={"refreshToken": bob["refreshToken"], "userId": 1, "username": "alice"},
    )
    assert response.status_code == 400  # extra fields are refused, never honoured
    renewed = await refresh(client, bob["refreshToken"])
    access = renewed.json()["accessToken"]
    assert (await client.get("/api/test/user", headers=legacy(access))).status_code == 200
    import base64
    import json

    payload = access.split(".")[1]
    assert json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"] == str(
        bob["id"]
    )


async def test_every_refresh_failure_looks_the_same(
    client: httpx.AsyncClient, service: AuthService
) -> None:
    """RT-08: unknown, expired, revoked and reused tokens share one status and body."""
    unknown = await refresh(client, "never-issued")
    reused_token = (await signed_in(client, "alice"))["refreshToken"]
    successor = (await refresh(client, reused_token)).json()["refreshToken"]
    await refresh(client, successor)  # once its successor is used, the token is reuse
    reused = await refresh(client, reused_token)
    revoked_token = (await sign_in(client, "alice")).json()["refreshToken"]
    await client.post("/api/auth/signout", json={"refreshToken": revoked_token})
    revoked = await refresh(client, revoked_token)
    answers = {(r.status_code, r.text) for r in (unknown, reused, revoked)}
    assert len(answers) == 1
    assert next(iter(answers))[0] == 403


# -- credential attacks ----------------------------------------------------------


async def test_unknown_user_and_wrong_password_are_indistinguishable(
    client: httpx.AsyncClient,
) -> None:
    """CR-01: same status, body, headers (apart from Date) and length."""
    await sign_up(client)
    wrong = await sign_in(client, "alice", "not the password at all")
    unknown = await sign_in(client, "nobody-here", "not the password at all")

    def shape(response: httpx.Response) -> tuple[int, bytes, dict[str, str]]:
        headers = {k: v for k, v in response.headers.items() if k not in ("date", "x-request-id")}
        return response.status_code, response.content, headers

    assert shape(wrong) == shape(unknown)


async def test_unknown_users_cost_as_much_as_wrong_passwords(
    services: Services, client: httpx.AsyncClient, database: Database
) -> None:
    """CR-02: an unknown name runs the same argon2 verification as a wrong password, once,
    against a hash of the same parameters. Counted, not timed: a timed comparison failed on a
    busy machine, and equal work is what makes the timings equal."""
    await sign_up(client)
    verified: list[float] = []
    services.hasher.observe = verified.append  # the public hook the metrics use
    for name in ("alice", "ghost"):
        verified.clear()
        assert (await sign_in(client, name, "not the password at all")).status_code == 401
        assert len(verified) == 1, name
    stored = await database_hash(database, "alice")
    dummy = services.hasher._dummy_hash  # what an unknown name is verified against
    assert argon2.extract_parameters(dummy) == argon2.extract_parameters(stored)


async def database_hash(database: Database, username: str) -> str:
    async with database.transaction(read_only=True) as tx:
        user = await tx.users.get_by_username_key(username_key(username))
    assert user is not None
    return user.password_hash


async def test_a_taken_name_is_revealed_but_not_which_account(client: httpx.AsyncClient) -> None:
    """CR-03, a documented decision: sign-up says a name is taken (the tutorial's clients show it),
    throttled per address; sign-in never reveals whether an account exists."""
    await sign_up(client)
    response = await sign_up(client)
    assert response.status_code == 400
    assert response.json() == {
        "message": "Failed! Username is already in use!",
        "code": "username_taken",
    }


# -- privilege ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "roles",
    [
        "admin",
        ["ADMIN"],
        [" admin"],
        ["admin", "user"],
        [{"name": "admin"}],
        {"$in": ["admin"]},
        [2, 3],
        ["moderator"],
    ],
    ids=lambda r: repr(r),
)
async def test_sign_up_never_elevates(client: httpx.AsyncClient, roles: object) -> None:
    response = await client.post(
        "/api/auth/signup",
        json={"username": "eve", "email": "eve@example.com", "password": PASSWORD, "roles": roles},
    )
    assert 400 <= response.status_code < 500  # refused outright: no account was made
    assert (await sign_in(client, "eve")).status_code == 401


@pytest.mark.parametrize(
    "extra",
    [
        {"id": 99},
        {"isAdmin": True},
        {"password_hash": "x"},
        {"enabled": False},
        {"roles": ["admin"]},
    ],
    ids=lambda e: next(iter(e)),
)
@pytest.mark.parametrize("path", ["/api/auth/signin", "/api/auth/refreshtoken"])
async def test_mass_assignment_is_refused_on_every_route(
    client: httpx.AsyncClient, path: str, extra: dict[str, object]
) -> None:
    signed = await signed_in(client)
    base = (
        {"username": "alice", "password": PASSWORD}
        if path.endswith("signin")
        else {"refreshToken": signed["refreshToken"]}
    )
    response = await client.post(path, json={**base, **extra})
    assert response.status_code == 400


async def test_a_jku_pointing_at_a_loopback_listener_is_never_fetched(
    client: httpx.AsyncClient,
) -> None:
    """TF-10: header values never find or fetch a key, so the listener sees no connection."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        for field in ("jku", "x5u"):
            header = {"alg": "HS256", "typ": "at+jwt", field: f"http://127.0.0.1:{port}/keys"}
            response = await client.get("/api/test/user", headers=legacy(sign(header, claims())))
            assert response.status_code == 401
        with pytest.raises(BlockingIOError):
            listener.accept()


@pytest.mark.plain_tokens
async def test_tokens_and_sign_in_answers_carry_the_minimum(client: httpx.AsyncClient) -> None:
    """DS-05: no password hash or secret in the sign-in answer or the token payload."""
    import base64
    import json

    signed = await signed_in(client)
    assert set(signed) == {"id", "username", "email", "roles", "accessToken", "refreshToken"}
    payload = signed["accessToken"].split(".")[1]
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert set(decoded) == {
        "iss",
        "aud",
        "sub",
        "sid",
        "jti",
        "iat",
        "nbf",
        "exp",
        "roles",
        "auth_time",
    }
    assert decoded["exp"] - decoded["iat"] <= 900


async def test_role_changes_reach_tokens_promptly(
    client: httpx.AsyncClient, services: Services
) -> None:
    """PR-05: a role given arrives with the next refresh; a role taken away ends the user's
    sessions at once, so no live token keeps the old power."""
    signed = await signed_in(client)
    await services.admin.set_roles(OPERATOR, "cli", "alice", ["user", "moderator"])
    assert (
        await client.get("/api/test/mod", headers=legacy(signed["accessToken"]))
    ).status_code == 403
    renewed = (await refresh(client, signed["refreshToken"])).json()
    assert (
        await client.get("/api/test/mod", headers=legacy(renewed["accessToken"]))
    ).status_code == 200
    await services.admin.set_roles(OPERATOR, "cli", "alice", ["user"])
    assert (
        await client.get("/api/test/mod", headers=legacy(renewed["accessToken"]))
    ).status_code == 401
    assert (await refresh(client, renewed["refreshToken"])).status_code == 403
    downgraded = (await sign_in(client)).json()
    assert (
        await client.get("/api/test/mod", headers=legacy(downgraded["accessToken"]))
    ).status_code == 403
