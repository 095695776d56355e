"""Asymmetric signing keys: published, looked up by kid, rotated without logging anyone out."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, OKPKey

from authgate.config import Settings
from authgate.errors import ConfigurationError
from authgate.http.app import build_app
from authgate.runtime import build_services
from authgate.services import Services
from authgate.storage import Database
from tests.conftest import FakeClock
from tests.forge import b64, claims, flip_s, segment
from tests.helpers import legacy, signed_in

pytestmark = [pytest.mark.anyio, pytest.mark.plain_tokens]

KEK = secrets.token_urlsafe(32)
PUBLISH_SECONDS = 60
App = tuple[Services, httpx.AsyncClient]
OpenApp = Callable[..., AbstractAsyncContextManager[App]]


@pytest.fixture
def open_app(settings: Settings, database: Database, clock: FakeClock) -> OpenApp:
    """A service and client with ``changes`` to the settings; several share one database."""

    @asynccontextmanager
    async def opened(**changes: object) -> AsyncIterator[App]:
        changed = settings.replace(
            key_encryption_key=KEK, key_publish_seconds=PUBLISH_SECONDS, **changes
        )
        services = await build_services(changed, database, clock=clock)
        transport = httpx.ASGITransport(app=build_app(services, changed))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://authgate.test"
        ) as client:
            yield services, client
        await services.aclose()

    return opened


def header_of(token: str) -> dict[str, Any]:
    part = token.split(".")[0]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


async def key_set(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("algorithm", ["EdDSA", "ES256", "RS256"])
async def test_a_service_with_only_the_key_set_verifies_tokens(
    open_app: OpenApp, algorithm: str
) -> None:
    async with open_app(signing_algorithm=algorithm) as (_, client):
        signed = await signed_in(client)
        token = signed["accessToken"]
        header = header_of(token)
        assert header["alg"] == algorithm
        published = await key_set(client)
        assert [key["kid"] for key in published["keys"]] == [header["kid"]]
        assert all("d" not in key and "p" not in key for key in published["keys"])
        # Another service: a standard library, the key set, nothing else.
        key_set_object = KeySet.import_key_set(published)  # type: ignore[arg-type]
        verified = jwt.decode(token, key_set_object, algorithms=[algorithm])
        assert verified.claims["sub"] == str(signed["id"])
        assert (await client.get("/api/test/user", headers=legacy(token))).status_code == 200


async def test_an_es256_token_has_one_spelling(open_app: OpenApp) -> None:
    """(r, n - s) verifies mathematically; only authgate's low-S spelling is accepted."""
    async with open_app(signing_algorithm="ES256") as (_, client):
        token = (await signed_in(client))["accessToken"]
        assert (await client.get("/api/test/user", headers=legacy(token))).status_code == 200
        response = await client.get("/api/test/user", headers=legacy(flip_s(token)))
        assert response.status_code == 401
        assert response.json() == {"message": "Unauthorized!", "code": "invalid_token"}


async def test_hs256_publishes_nothing(client: httpx.AsyncClient) -> None:
    assert await key_set(client) == {"keys": []}


async def test_the_key_set_is_cacheable_and_discoverable(open_app: OpenApp) -> None:
    async with open_app(signing_algorithm="EdDSA") as (_, client):
        response = await client.get("/.well-known/jwks.json")
        assert response.headers["cache-control"] == "public, max-age=300"
        assert "pragma" not in response.headers
        discovery = (await client.get("/.well-known/openid-configuration")).json()
        assert discovery["issuer"] == "authgate"
        assert discovery["jwks_uri"] == "http://authgate.test/.well-known/jwks.json"


async def test_public_url_decides_the_discovered_key_set_location(open_app: OpenApp) -> None:
    async with open_app(signing_algorithm="EdDSA", public_url="https://auth.example") as (
        _,
        client,
    ):
        response = await client.get(
            "/.well-known/openid-configuration", headers={"Host": "evil.example"}
        )
        assert response.json()["jwks_uri"] == "https://auth.example/.well-known/jwks.json"
        assert response.headers["cache-control"] == "public, max-age=300"


async def test_a_discovery_document_built_from_the_host_header_is_never_stored(
    open_app: OpenApp,
) -> None:
    """Without AUTHGATE_PUBLIC_URL the client's Host names the key set: a shared cache that
    kept that answer would send every client to the attacker's keys."""
    async with open_app(signing_algorithm="EdDSA") as (_, client):
        poisoned = await client.get(
            "/.well-known/openid-configuration", headers={"Host": "evil.example"}
        )
        assert poisoned.json()["jwks_uri"] == "http://evil.example/.well-known/jwks.json"
        assert poisoned.headers["cache-control"] == "no-store"
        assert "public" not in poisoned.headers["cache-control"]
        assert poisoned.headers["vary"] == "Host"


def _forgeries(token: str, published: dict[str, Any]) -> dict[str, str]:
    header = header_of(token)
    payload = claims()
    stranger = OKPKey.generate_key("Ed25519")
    public_x = published["keys"][0]["x"].encode()
    return {
        "another key, same kid": jwt.encode(header, payload, stranger, algorithms=["EdDSA"]),
        "unknown kid": jwt.encode(
            {**header, "kid": "nope"}, payload, stranger, algorithms=["EdDSA"]
        ),
        "no kid": jwt.encode(
            {"alg": "EdDSA", "typ": "at+jwt"}, payload, stranger, algorithms=["EdDSA"]
        ),
        "alg HS256 with the public key": jwt.encode(
            {**header, "alg": "HS256"}, payload, OctKey.import_key(public_x), algorithms=["HS256"]
        ),
        "alg none": f"{segment({**header, 'alg': 'none'})}.{segment(payload)}.",
        "signature of another token": ".".join([*token.split(".")[:2], b64(b"x" * 64)]),
    }


@pytest.mark.parametrize(
    "name",
    [
        "another key, same kid",
        "unknown kid",
        "no kid",
        "alg HS256 with the public key",
        "alg none",
        "signature of another token",
    ],
)
async def test_tokens_from_any_other_key_or_alg_are_refused(open_app: OpenApp, name: str) -> None:
    async with open_app(signing_algorithm="EdDSA") as (_, client):
        token = (await signed_in(client))["accessToken"]
        forged = _forgeries(token, await key_set(client))[name]
        response = await client.get("/api/test/user", headers=legacy(forged))
        assert response.status_code == 401
        assert response.json() == {"message": "Unauthorized!", "code": "invalid_token"}


async def test_rotation_publishes_first_signs_later_and_logs_nobody_out(
    open_app: OpenApp, clock: FakeClock
) -> None:
    async with open_app(signing_algorithm="EdDSA") as (services, client):
        before = (await signed_in(client))["accessToken"]
        old_kid = header_of(before)["kid"]
        rotated = await services.keys.rotate()
        await services.upkeep.sync()
        assert [k["kid"] for k in (await key_set(client))["keys"]] == [old_kid, rotated.kid]
        assert header_of((await signed_in(client, "bob"))["accessToken"])["kid"] == old_kid

        clock.advance(PUBLISH_SECONDS)
        await services.upkeep.sync()
        after = (await signed_in(client, "carol"))["accessToken"]
        assert header_of(after)["kid"] == rotated.kid
        assert (await client.get("/api/test/user", headers=legacy(before))).status_code == 200
        assert (await client.get("/api/test/user", headers=legacy(after))).status_code == 200

        clock.advance(15 * 60 + 30)  # every token of the old key has expired: it retires
        await services.upkeep.sync()
        assert [k["kid"] for k in (await key_set(client))["keys"]] == [rotated.kid]
        states = {s.kid: s.state for s in await services.keys.states()}
        assert states == {old_kid: "retired", rotated.kid: "signing"}


async def test_another_process_picks_up_a_rotation_without_restarting(
    open_app: OpenApp, clock: FakeClock
) -> None:
    async with (
        open_app(signing_algorithm="EdDSA") as (first, _),
        open_app(signing_algorithm="EdDSA") as (second, second_client),
    ):
        rotated = await first.keys.rotate()
        clock.advance(PUBLISH_SECONDS)
        await second.upkeep.sync()  # what its poller does every half second
        signed = await signed_in(second_client)
        assert header_of(signed["accessToken"])["kid"] == rotated.kid
        await first.upkeep.sync()
        assert first.auth.authenticate(signed["accessToken"]).user_id == signed["id"]


async def test_private_keys_are_sealed_at_rest(open_app: OpenApp, database: Database) -> None:
    async with open_app(signing_algorithm="EdDSA") as (services, _):
        await services.keys.rotate()
    async with database.engine.connect() as connection:
        rows = (
            await connection.execute(
                sa.text("SELECT public_jwk, sealed_private_jwk FROM signing_keys")
            )
        ).all()
    assert len(rows) == 2
    for public, sealed in rows:
        assert '"d"' not in public
        assert sealed.count(".") == 4  # compact JWE
        assert '"d"' not in sealed


async def test_a_wrong_key_encryption_key_is_a_clear_start_up_error(
    open_app: OpenApp, settings: Settings, database: Database, clock: FakeClock
) -> None:
    async with open_app(signing_algorithm="EdDSA"):
        pass
    wrong = settings.replace(
        signing_algorithm="EdDSA", key_encryption_key=secrets.token_urlsafe(32)
    )
    with pytest.raises(ConfigurationError, match="AUTHGATE_KEY_ENCRYPTION_KEY"):
        await build_services(wrong, database, clock=clock)


def test_production_needs_a_key_encryption_key_for_asymmetric_keys() -> None:
    with pytest.raises(ConfigurationError, match="AUTHGATE_KEY_ENCRYPTION_KEY"):
        Settings.from_env(
            {"AUTHGATE_ENV": "production", "AUTHGATE_SIGNING_ALGORITHM": "EdDSA"}, dotenv=None
        )
    assert (
        Settings.from_env(
            {
                "AUTHGATE_ENV": "production",
                "AUTHGATE_SIGNING_ALGORITHM": "EdDSA",
                "AUTHGATE_KEY_ENCRYPTION_KEY": KEK,
            },
            dotenv=None,
        ).signing_key
        is None
    )


async def test_hs256_cannot_be_rotated_in_the_database(services: Services) -> None:
    with pytest.raises(ConfigurationError, match="AUTHGATE_SIGNING_KEY"):
        await services.keys.rotate()


# -- encrypted access tokens -------------------------------------------------------------

ENCRYPTION_KEY = secrets.token_urlsafe(32)


@pytest.mark.parametrize("algorithm", ["HS256", "EdDSA"])
async def test_encrypted_tokens_hide_their_claims_and_still_work(
    open_app: OpenApp, algorithm: str
) -> None:
    async with open_app(signing_algorithm=algorithm, token_encryption_key=ENCRYPTION_KEY) as (
        _,
        client,
    ):
        signed = await signed_in(client)
        token = signed["accessToken"]
        assert token.count(".") == 4
        header = header_of(token)
        assert header == {"alg": "dir", "enc": "A256GCM", "cty": "JWT"}
        for part in token.split("."):
            raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
            assert b'"sub"' not in raw
            assert b"roles" not in raw
        assert (await client.get("/api/test/user", headers=legacy(token))).status_code == 200


async def test_an_unencrypted_token_is_refused_when_encryption_is_on(open_app: OpenApp) -> None:
    async with open_app(signing_algorithm="EdDSA") as (_, plain_client):
        plain = (await signed_in(plain_client))["accessToken"]
    async with open_app(signing_algorithm="EdDSA", token_encryption_key=ENCRYPTION_KEY) as (
        _,
        client,
    ):
        response = await client.get("/api/test/user", headers=legacy(plain))
        assert response.status_code == 401
        assert response.json() == {"message": "Unauthorized!", "code": "invalid_token"}
