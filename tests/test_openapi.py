"""The generated OpenAPI document, and schemathesis fuzzing every operation in-process."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import positive_data_acceptance
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authgate.config import Settings
from authgate.http.app import ROUTES, create_app
from authgate.http.openapi import ApiRoute, document
from tests.conftest import TEST_KEY
from tests.databases import migrate


def _fuzzed_app() -> Starlette:
    """A whole app with its own lifespan, as `authgate serve` builds it, on a fresh SQLite file.

    Built at import because schemathesis parametrizes from a loaded schema (its lazy
    fixture loader does not work with pytest 9).
    """
    data = Path(_WORKDIR.name)
    settings = Settings.from_mapping(
        {
            "signing_key": TEST_KEY,
            "data_dir": str(data),
            "argon2_memory_kib": 64,
            "argon2_time_cost": 1,
            "rate_limit_sign_in_per_address": "100000/minute",
            "rate_limit_sign_in_failures_per_account_and_address": "100000/minute",
            "rate_limit_sign_in_failures_per_account": "100000/minute",
            "rate_limit_sign_up_per_address": "100000/minute",
            "rate_limit_refresh_per_address": "100000/minute",
        }
    )
    asyncio.run(migrate(settings.resolved_database_url))
    return create_app(settings)


_WORKDIR = tempfile.TemporaryDirectory(prefix="authgate-fuzz-")
fuzzed = schemathesis.openapi.from_asgi("/openapi.json", _fuzzed_app())


@fuzzed.parametrize()
@hypothesis_settings(
    max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)
def test_every_operation_survives_fuzzing(case: Any) -> None:
    """No server error, no undocumented status, bodies match their schemas, auth is enforced.

    ``positive_data_acceptance`` is left out on purpose: the tutorial's contract answers a
    schema-valid sign-up with 400 when the name is taken, the password is common or the
    role unknown, rules JSON Schema cannot express.
    """
    case.call_and_validate(excluded_checks=[positive_data_acceptance])


@pytest.mark.anyio
async def test_the_document_covers_every_route(client: httpx.AsyncClient, app: Starlette) -> None:
    document = (await client.get("/openapi.json")).json()
    routes = [route for route in app.routes if isinstance(route, Route)]
    assert [route.path for route in routes if not isinstance(route, ApiRoute)] == []
    served = {
        (method.lower(), route.path_format)
        for route in routes
        for method in route.methods or ()
        if method != "HEAD"
    }
    unpublished = {
        (method.lower(), route.path)
        for route in routes
        if isinstance(route, ApiRoute)
        for method, doc in route.docs.items()
        if not doc.published
    }
    described = {(method, path) for path, item in document["paths"].items() for method in item}
    assert unpublished == {("get", "/openapi.json")}
    assert served - unpublished == described


async def _no_content(_request: Request) -> Response:
    return Response()


def test_a_route_without_its_doc_stops_the_document() -> None:
    with pytest.raises(TypeError, match="/undocumented"):
        document([*ROUTES, Route("/undocumented", _no_content, methods=["GET"])])


def _statuses(document: dict[str, Any], method: str, path: str) -> set[int]:
    return {int(status) for status in document["paths"][path][method]["responses"]}


def test_error_statuses_come_from_the_error_table() -> None:
    """The common errors (a JSON body, the database, a token) and each route's own classes,
    through the one table: where the hand-written list was wrong, the table is not."""
    generated = document(ROUTES)
    # No throttle on sign-out (the hand list said 429).
    assert _statuses(generated, "post", "/api/auth/signout") == {
        200,
        400,
        401,
        403,
        408,
        413,
        415,
        503,
    }
    # An admin read takes no body and no query: no 400 (the hand list said 400).
    assert _statuses(generated, "get", "/api/admin/users/{user_id}") == {200, 401, 403, 404, 503}
    # Listing finds no single user: no 404 (the hand list said 404); a bad limit is a 400.
    assert _statuses(generated, "get", "/api/admin/users") == {200, 400, 401, 403, 503}
    # Re-authentication answers 404 for an account gone or disabled meanwhile (missing).
    for path in ("/api/auth/signout-all", "/api/auth/password", "/api/auth/email"):
        assert 404 in _statuses(generated, "post", path), path
    # Sign-in's 401 is the tutorial's body, with `accessToken: null`, and names its code.
    unauthorized = generated["paths"]["/api/auth/signin"]["post"]["responses"]["401"]
    assert unauthorized["content"]["application/json"]["schema"] == {
        "allOf": [
            {"$ref": "#/components/schemas/CredentialsOut"},
            {"properties": {"code": {"enum": ["invalid_credentials"]}}},
        ]
    }
    # Without a token, 401 or 403 as configured: both are documented.
    forbidden = generated["paths"]["/api/test/mod"]["get"]["responses"]["403"]
    assert forbidden["content"]["application/json"]["schema"]["allOf"][1] == {
        "properties": {"code": {"enum": ["missing_token", "role_required"]}}
    }


@pytest.mark.anyio
async def test_both_token_headers_are_declared(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["accessToken"] == {"type": "apiKey", "in": "header", "name": "x-access-token"}
    assert schemes["bearer"]["scheme"] == "bearer"
    assert document["paths"]["/api/test/user"]["get"]["security"] == [
        {"accessToken": []},
        {"bearer": []},
        {"accessCookie": []},
    ]
    assert schemes["accessCookie"]["in"] == "cookie"


@pytest.mark.anyio
async def test_the_admin_lockout_refusals_are_documented(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path, method in (
        ("/api/admin/users/{user_id}/disable", "post"),
        ("/api/admin/users/{user_id}/roles", "put"),
        ("/api/admin/users/{user_id}", "delete"),
        ("/api/auth/account", "delete"),
    ):
        assert "409" in paths[path][method]["responses"], (method, path)


@pytest.mark.anyio
async def test_secured_operations_document_both_missing_token_statuses(
    client: httpx.AsyncClient,
) -> None:
    """Whichever AUTHGATE_MISSING_TOKEN_STATUS says, the answer to a request without a token
    is documented, and the 401 the clients' interceptors refresh on is described."""
    document = (await client.get("/openapi.json")).json()
    secured = [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if operation.get("security")
    ]
    assert ("/api/test/user", "get") in {(path, method) for path, method, _ in secured}
    for path, method, operation in secured:
        responses = operation["responses"]
        assert "AUTHGATE_MISSING_TOKEN_STATUS=401" in responses["401"]["description"], path
        assert "Access Token was expired!" in responses["401"]["description"], path
        assert "AUTHGATE_MISSING_TOKEN_STATUS=403" in responses["403"]["description"], (
            path,
            method,
        )
