"""authgate.verify: another service verifies tokens with only the published key set."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
from examples.site_b import SiteSettings, create_app
from fastapi import Depends, FastAPI
from joserfc import jwt
from starlette.applications import Starlette

from authgate.admin import OPERATOR
from authgate.config import Settings
from authgate.errors import InvalidTokenError, TokenExpiredError
from authgate.http.app import build_app
from authgate.runtime import build_services
from authgate.services import Services
from authgate.storage import Database
from authgate.verify import AccessClaims, Authenticated, Verifier
from tests.conftest import FakeClock
from tests.forge import NOW, claims, flip_s
from tests.helpers import bearer, legacy, signed_in

pytestmark = [pytest.mark.anyio, pytest.mark.plain_tokens]

JWKS = "http://authgate.test/.well-known/jwks.json"


class CountingTransport(httpx.AsyncBaseTransport):
    """Real requests into authgate's app, counted (the verifier must not fetch too often)."""

    def __init__(self, app: Starlette) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self.requests: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(str(request.url))
        return await self._inner.handle_async_request(request)


@pytest.fixture
async def authgate(
    request: pytest.FixtureRequest, settings: Settings, database: Database, clock: FakeClock
) -> AsyncIterator[tuple[Services, Starlette]]:
    """authgate with a key pair: EdDSA, or the algorithm a test asks for (``indirect``)."""
    changed = settings.replace(
        signing_algorithm=getattr(request, "param", "EdDSA"),
        key_encryption_key=secrets.token_urlsafe(32),
        key_publish_seconds=60,
    )
    services = await build_services(changed, database, clock=clock)
    yield services, build_app(services, changed)
    await services.aclose()


@pytest.fixture
async def authgate_client(
    authgate: tuple[Services, Starlette],
) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=authgate[1])
    async with httpx.AsyncClient(transport=transport, base_url="http://authgate.test") as client:
        yield client


@pytest.fixture
def transport(authgate: tuple[Services, Starlette]) -> CountingTransport:
    return CountingTransport(authgate[1])


@pytest.fixture
async def verifier(transport: CountingTransport, clock: FakeClock) -> AsyncIterator[Verifier]:
    verifier = Verifier(
        JWKS,
        issuer="authgate",
        audience="authgate",
        http=httpx.AsyncClient(transport=transport),
        clock=clock,
        min_refresh_seconds=30,
    )
    yield verifier
    await verifier.aclose()


async def test_a_token_verifies_with_the_published_keys(
    authgate_client: httpx.AsyncClient, verifier: Verifier
) -> None:
    signed = await signed_in(authgate_client)
    claims = await verifier.verify(signed["accessToken"])
    assert claims.user_id == signed["id"]
    assert {role.value for role in claims.roles} == {"user"}


async def test_tampered_and_expired_tokens_are_refused(
    authgate_client: httpx.AsyncClient, verifier: Verifier, clock: FakeClock
) -> None:
    token = (await signed_in(authgate_client))["accessToken"]
    with pytest.raises(InvalidTokenError):
        await verifier.verify(token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"))
    clock.advance(15 * 60 + 31)
    with pytest.raises(TokenExpiredError):
        await verifier.verify(token)


@pytest.mark.parametrize("authgate", ["ES256"], indirect=True)
async def test_the_high_s_spelling_of_an_es256_token_is_refused(
    authgate_client: httpx.AsyncClient, verifier: Verifier
) -> None:
    token = (await signed_in(authgate_client))["accessToken"]
    assert (await verifier.verify(token)).subject
    with pytest.raises(InvalidTokenError):
        await verifier.verify(flip_s(token))


@pytest.mark.parametrize(
    ("overrides", "accepted"),
    [
        pytest.param({}, True, id="control"),
        pytest.param({"exp": NOW + 901}, False, id="lifetime-one-second-too-long"),
        pytest.param({"exp": NOW + 10 * 365 * 86400}, False, id="exp-ten-years-after-iat"),
        pytest.param({"scope": "admin"}, False, id="unknown-claim"),
    ],
)
async def test_tokens_signed_with_the_real_key_are_held_to_the_lifetime_and_claims(
    authgate: tuple[Services, Starlette],
    verifier: Verifier,
    overrides: dict[str, object],
    accepted: bool,
) -> None:
    [key] = await authgate[0].keys.load()
    header = {"alg": key.algorithm, "typ": "at+jwt", "kid": key.kid}
    forged = jwt.encode(header, claims(**overrides), key.key, algorithms=[key.algorithm])
    if accepted:
        assert (await verifier.verify(forged)).subject == "1"
    else:
        with pytest.raises(InvalidTokenError):
            await verifier.verify(forged)


async def test_unknown_kids_refresh_the_key_set_at_a_bounded_rate(
    authgate: tuple[Services, Starlette],
    authgate_client: httpx.AsyncClient,
    verifier: Verifier,
    transport: CountingTransport,
    clock: FakeClock,
) -> None:
    services, _ = authgate
    await verifier.verify((await signed_in(authgate_client))["accessToken"])
    assert len(transport.requests) == 1
    for _ in range(5):  # garbage kids cannot make it fetch again and again
        with pytest.raises(InvalidTokenError):
            await verifier.verify(_with_kid(await _token(authgate_client), "no-such-kid"))
    assert len(transport.requests) == 1  # fetched at start; the refresh interval has not passed

    clock.advance(31)
    await services.keys.rotate()
    await services.upkeep.sync()
    clock.advance(60)  # the new key signs now
    await services.upkeep.sync()
    fresh = await _token(authgate_client)
    assert (await verifier.verify(fresh)).subject  # unknown kid: one fetch, then success
    assert len(transport.requests) == 2
    assert all(url == JWKS for url in transport.requests)  # never a URL from a token


async def _token(client: httpx.AsyncClient) -> str:
    from tests.helpers import sign_in

    token: str = (await sign_in(client)).json()["accessToken"]
    return token


def _with_kid(token: str, kid: str) -> str:
    import base64
    import json

    header_part, payload, signature = token.split(".")
    header = json.loads(base64.urlsafe_b64decode(header_part + "=" * (-len(header_part) % 4)))
    header["kid"] = kid
    encoded = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    return f"{encoded}.{payload}.{signature}"


async def test_site_b_serves_authgate_users(
    authgate_client: httpx.AsyncClient, verifier: Verifier
) -> None:
    site_b = create_app(verifier)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=site_b), base_url="http://site-b.test"
    ) as b:
        signed = await signed_in(authgate_client)
        assert (await b.get("/")).status_code == 200
        response = await b.get("/profile", headers=bearer(signed["accessToken"]))
        assert response.status_code == 200
        assert response.json() == {"user": signed["id"], "roles": ["user"]}
        assert (await b.get("/profile", headers=legacy(signed["accessToken"]))).status_code == 200
        missing = await b.get("/profile")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert (await b.get("/profile", headers=legacy("a.b.c"))).status_code == 401
        assert (await b.get("/admin", headers=legacy(signed["accessToken"]))).status_code == 403
        assert (await b.get("/", headers=legacy("stale.token.here"))).status_code == 200


async def test_a_fastapi_dependency_guards_routes(
    authgate: tuple[Services, Starlette], authgate_client: httpx.AsyncClient, verifier: Verifier
) -> None:
    services, _ = authgate
    api = FastAPI()

    # FastAPI's own idiom; a dependency object per route is what B008 warns about, on purpose.
    me_dependency = Depends(Authenticated(verifier))
    moderator_dependency = Depends(Authenticated(verifier, role="moderator"))

    @api.get("/me")
    async def me(claims: AccessClaims = me_dependency) -> dict[str, int]:
        return {"user": claims.user_id}

    @api.get("/mod")
    async def mod(_: AccessClaims = moderator_dependency) -> dict[str, str]:
        return {"ok": "yes"}

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api), base_url="http://api.test"
    ) as client:
        signed = await signed_in(authgate_client)
        assert (await client.get("/me", headers=bearer(signed["accessToken"]))).json() == {
            "user": signed["id"]
        }
        assert (await client.get("/me")).status_code == 401
        assert (await client.get("/mod", headers=bearer(signed["accessToken"]))).status_code == 403
        await services.admin.set_roles(OPERATOR, "cli", "alice", ["user", "moderator"])
        from tests.helpers import sign_in

        moderator = (await sign_in(authgate_client)).json()["accessToken"]
        assert (await client.get("/mod", headers=bearer(moderator))).status_code == 200


async def test_a_key_set_with_private_or_foreign_keys_trusts_none_of_them() -> None:
    from authgate.keys import from_key_set

    document = {
        "keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "sym", "alg": "HS256"},
            {
                "kty": "OKP",
                "crv": "Ed25519",
                "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
                "d": "x",
                "kid": "p",
                "alg": "EdDSA",
            },
            {
                "kty": "OKP",
                "crv": "Ed25519",
                "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
                "alg": "EdDSA",
            },
            {
                "kty": "OKP",
                "crv": "Ed25519",
                "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
                "kid": "ok",
                "alg": "EdDSA",
            },
            "garbage",
        ]
    }
    assert [key.kid for key in from_key_set(document, frozenset({"EdDSA", "HS256"}))] == ["ok"]
    assert from_key_set("not a key set", frozenset({"EdDSA"})) == []


def test_site_b_reads_its_own_settings_and_follows_authgates_port() -> None:
    """Site B's settings are SITE_B_*: an AUTHGATE_* name of its own would stop authgate."""
    assert SiteSettings.from_environ({}).authgate_url == "http://127.0.0.1:8080"
    assert SiteSettings.from_environ({}).port == 8082
    moved = SiteSettings.from_environ({"AUTHGATE_PORT": "9090", "SITE_B_PORT": "9092"})
    assert (moved.authgate_url, moved.port) == ("http://127.0.0.1:9090", 9092)
    named = SiteSettings.from_environ(
        {"SITE_B_AUTHGATE_URL": "https://auth.example/", "AUTHGATE_PORT": "9090"}
    )
    assert named.authgate_url == "https://auth.example"
    assert SiteSettings.from_environ({"AUTHGATE_URL": "http://elsewhere:1"}).authgate_url == (
        "http://127.0.0.1:8080"
    )
