"""Security headers on every answer, no-store on tokens, and CORS that never reflects strangers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from authgate.config import Settings
from authgate.http.app import build_app
from authgate.services import Services
from tests.helpers import legacy, refresh, sign_in, signed_in

pytestmark = pytest.mark.anyio

CLIENT_ORIGIN = "http://localhost:8081"


@pytest.fixture
async def cors_client(services: Services, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(services, settings.replace(cors_origins=(CLIENT_ORIGIN,)))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://authgate.test"
    ) as client:
        yield client


async def test_every_answer_carries_the_security_headers(client: httpx.AsyncClient) -> None:
    for response in (
        await client.get("/api/test/all"),
        await client.get("/api/test/user"),
        await client.get("/missing"),
        await client.post("/api/auth/signin", content=b"{"),
    ):
        headers = response.headers
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["referrer-policy"] == "no-referrer"
        assert "x-powered-by" not in headers
        assert "server" not in headers


async def test_token_answers_are_never_cached(client: httpx.AsyncClient) -> None:
    signed = await signed_in(client)
    answers = [await sign_in(client), await refresh(client, signed["refreshToken"])]
    for response in answers:
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["pragma"] == "no-cache"


async def test_json_answers_declare_a_charset(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/test/user")
    assert response.headers["content-type"] == "application/json; charset=utf-8"


async def test_error_bodies_carry_no_library_text(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/test/user", headers=legacy("a.b.c"))
    assert response.json() == {"message": "Unauthorized!", "code": "invalid_token"}
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_cors_is_off_unless_configured(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/test/all", headers={"Origin": CLIENT_ORIGIN})
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize(
    ("method", "headers"),
    [("POST", "content-type"), ("GET", "x-access-token"), ("GET", "authorization")],
)
async def test_the_tutorials_client_origin_may_preflight(
    cors_client: httpx.AsyncClient, method: str, headers: str
) -> None:
    response = await cors_client.options(
        "/api/auth/signin",
        headers={
            "Origin": CLIENT_ORIGIN,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == CLIENT_ORIGIN
    assert "access-control-allow-credentials" not in response.headers


async def test_a_preflight_is_counted_under_the_route_it_asks_about(
    cors_client: httpx.AsyncClient,
) -> None:
    for path in ("/api/auth/signin", "/api/admin/users/7", "/nowhere"):
        preflight = await cors_client.options(
            path, headers={"Origin": CLIENT_ORIGIN, "Access-Control-Request-Method": "POST"}
        )
        assert preflight.status_code == 200
    text = (await cors_client.get("/metrics")).text
    counted = 'authgate_http_requests_total{method="OPTIONS",route="%s",status="200"} 1.0'
    assert counted % "/api/auth/signin" in text
    assert counted % "/api/admin/users/{user_id}" in text
    assert counted % "unmatched" in text  # a path no route serves stays one label


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "null", "http://localhost:8081.evil.example"]
)
async def test_other_origins_are_never_reflected(
    cors_client: httpx.AsyncClient, origin: str
) -> None:
    preflight = await cors_client.options(
        "/api/auth/signin",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
    )
    simple = await cors_client.get("/api/test/all", headers={"Origin": origin})
    for response in (preflight, simple):
        assert response.headers.get("access-control-allow-origin") not in (origin, "*")


def test_a_wildcard_origin_is_refused_at_start_up(settings: Settings) -> None:
    from authgate.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="CORS"):
        settings.replace(cors_origins=("*",))
