"""Bad input gets a clear JSON 4xx: never a 500, a hang, a stack trace or an echoed password."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import httpx
import pytest

from authgate.config import Settings
from authgate.http.app import build_app
from authgate.runtime import build_services
from authgate.storage import Database
from tests.conftest import PASSWORD, FakeClock
from tests.forge import token
from tests.helpers import HANG_SECONDS, legacy, sign_in, sign_up

pytestmark = pytest.mark.anyio

SECRET = "hunter2-but-much-longer-and-secret"

BAD_BODIES = [
    pytest.param(b"{", id="truncated"),
    pytest.param(b"not json", id="not-json"),
    pytest.param(b"", id="empty"),
    pytest.param(b"[]", id="array"),
    pytest.param(b"null", id="null"),
    pytest.param(b"[" * 100_000, id="deep-nesting"),
    pytest.param(
        b'{"username": 123, "password": "' + SECRET.encode() + b'"}', id="number-username"
    ),
    pytest.param(b'{"username": null, "password": "' + SECRET.encode() + b'"}', id="null-username"),
    pytest.param(b'{"username": true, "password": "' + SECRET.encode() + b'"}', id="bool-username"),
    pytest.param(b'{"username": [], "password": "' + SECRET.encode() + b'"}', id="list-username"),
    pytest.param(
        b'{"username": {"$ne": null}, "password": {"$ne": null}}', id="operator-injection"
    ),
    pytest.param(b'{"username": "alice", "password": {"$gt": ""}}', id="operator-password"),
    pytest.param(b'{"username": "alice"}', id="missing-password"),
    pytest.param(
        b'{"username": "alice", "password": "' + SECRET.encode() + b'", "isAdmin": true}',
        id="extra",
    ),
    pytest.param(
        b'{"username": "' + b"a" * 10_000 + b'", "password": "x"}', id="overlong-username"
    ),
]


@pytest.mark.parametrize("body", BAD_BODIES)
@pytest.mark.parametrize("path", ["/api/auth/signin", "/api/auth/signup", "/api/auth/refreshtoken"])
async def test_malformed_bodies_get_a_clear_4xx(
    client: httpx.AsyncClient, path: str, body: bytes
) -> None:
    response = await client.post(path, content=body, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    payload = response.json()
    assert isinstance(payload["message"], str)
    assert payload["message"]
    assert SECRET not in response.text
    assert "Traceback" not in response.text


async def test_a_wrong_type_names_the_field(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/auth/signup", json={"username": 5, "email": "a@b.co", "password": SECRET}
    )
    assert response.status_code == 400
    assert "username" in response.json()["message"]


async def test_unknown_fields_are_refused_and_never_stored(client: httpx.AsyncClient) -> None:
    response = await sign_up(client, isAdmin=True)
    assert response.status_code == 400
    assert "isAdmin" in response.json()["message"]
    assert (await sign_in(client)).status_code == 401


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data", None]
)
async def test_bodies_that_are_not_json_get_415(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    response = await client.post(
        "/api/auth/signin", content=b'{"username":"a","password":"b"}', headers=headers
    )
    assert response.status_code == 415
    assert response.json() == {
        "message": "Send the request body as application/json.",
        "code": "unsupported_media_type",
    }


async def test_json_with_a_charset_is_accepted(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    response = await client.post(
        "/api/auth/signin",
        content=f'{{"username":"alice","password":"{PASSWORD}"}}'.encode(),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200


async def test_an_oversized_body_gets_413_before_parsing(client: httpx.AsyncClient) -> None:
    body = b'{"username": "' + b"a" * (20 * 1024 * 1024) + b'"}'
    response = await client.post(
        "/api/auth/signup", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json() == {
        "message": "The request body is too large.",
        "code": "payload_too_large",
    }


async def test_an_oversized_streamed_body_without_length_gets_413(
    client: httpx.AsyncClient,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(200):
            yield b"a" * 1024

    response = await client.post(
        "/api/auth/signup", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


async def test_nul_bytes_never_sign_in_as_someone_else(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    response = await sign_in(client, "alice\u0000")
    assert response.status_code == 401
    response = await sign_up(client, "bob\u0000")
    assert response.status_code == 400


async def test_a_password_containing_nul_is_handled_literally(client: httpx.AsyncClient) -> None:
    assert (await sign_up(client, password=PASSWORD + "\u0000x")).status_code == 200
    assert (await sign_in(client, "alice", PASSWORD)).status_code == 401
    assert (await sign_in(client, "alice", PASSWORD + "\u0000x")).status_code == 200


@pytest.mark.parametrize(
    "value",
    ["' OR '1'='1", "admin'--", "1; DROP TABLE users;--", '" OR ""="'],
    ids=["or", "comment", "drop", "dq"],
)
async def test_sql_strings_are_just_strings(client: httpx.AsyncClient, value: str) -> None:
    await sign_up(client)
    assert (await sign_in(client, value, value)).status_code == 401
    assert (
        await client.post("/api/auth/refreshtoken", json={"refreshToken": value})
    ).status_code == 403
    assert (await sign_in(client)).status_code == 200  # the users table is intact


async def test_duplicate_keys_resolve_to_the_last_value(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    body = f'{{"username": "mallory", "username": "alice", "password": "{PASSWORD}"}}'.encode()
    response = await client.post(
        "/api/auth/signin", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200
    assert response.json()["username"] == "alice"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/auth/signin"),
        ("PUT", "/api/auth/signup"),
        ("POST", "/api/test/all"),
        ("DELETE", "/api/test/user"),
    ],
)
async def test_wrong_methods_get_405(client: httpx.AsyncClient, method: str, path: str) -> None:
    response = await client.request(method, path)
    assert response.status_code == 405
    assert response.json() == {"message": "Method Not Allowed", "code": "method_not_allowed"}


async def test_unknown_paths_get_a_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"message": "Not Found", "code": "not_found"}


@pytest.mark.parametrize("value", [123, [], {}, {"$ne": None}, "", "x" * 10_000, True])
async def test_garbage_refresh_tokens_get_the_generic_403(
    client: httpx.AsyncClient, value: object
) -> None:
    generic = await client.post("/api/auth/refreshtoken", json={"refreshToken": "never-issued"})
    response = await client.post("/api/auth/refreshtoken", json={"refreshToken": value})
    assert response.status_code == 403
    assert response.json() == generic.json()


async def test_huge_token_headers_are_refused_quickly(client: httpx.AsyncClient) -> None:
    for size in (16 * 1024, 1024 * 1024):
        response = await client.get("/api/test/user", headers=legacy("a" * size))
        assert response.status_code == 401


@pytest.mark.plain_tokens
async def test_an_unreachable_database_gives_503_and_token_routes_keep_working(
    settings: Settings, clock: FakeClock
) -> None:
    database = Database.connect("postgresql://postgres@127.0.0.1:1/none", timeout_seconds=1)
    app = build_app(await build_services(settings, database, clock=clock), settings)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://authgate.test"
        ) as client:
            with anyio.fail_after(HANG_SECONDS):  # a hang fails here; the answer is the test
                response = await sign_in(client)
            assert response.status_code == 503
            assert response.headers["retry-after"] == "1"
            assert "message" in response.json()
            assert (await client.get("/api/test/user", headers=legacy(token()))).status_code == 200
    finally:
        await database.close()
