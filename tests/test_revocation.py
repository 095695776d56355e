"""Revocation reaches access tokens: sign-out, reuse, disabled users, other processes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from authgate.admin import OPERATOR
from authgate.config import Settings
from authgate.http.app import build_app
from authgate.revocations import RevokedSessions
from authgate.runtime import build_services
from authgate.services import Services
from authgate.storage import Database
from authgate.tokens import CLOCK_SKEW_SECONDS
from tests.conftest import FakeClock
from tests.helpers import legacy, refresh, sign_in, signed_in

pytestmark = pytest.mark.anyio


async def user_content(client: httpx.AsyncClient, token: str) -> int:
    return (await client.get("/api/test/user", headers=legacy(token))).status_code


async def test_sign_out_stops_the_sessions_access_tokens(client: httpx.AsyncClient) -> None:
    """TF-22: the same token, and the same token with '=' appended, are refused after sign-out."""
    signed = await signed_in(client)
    access = signed["accessToken"]
    assert await user_content(client, access) == 200
    await client.post("/api/auth/signout", json={"refreshToken": signed["refreshToken"]})
    assert await user_content(client, access) == 401
    assert await user_content(client, access + "=") == 401


async def test_sign_out_leaves_the_users_other_sessions_alone(client: httpx.AsyncClient) -> None:
    first = await signed_in(client)
    second = (await sign_in(client)).json()
    await client.post("/api/auth/signout", json={"refreshToken": first["refreshToken"]})
    assert await user_content(client, first["accessToken"]) == 401  # the sign-out happened
    assert await user_content(client, second["accessToken"]) == 200


async def test_refresh_token_reuse_stops_every_access_token_of_the_session(
    client: httpx.AsyncClient, settings: Settings, clock: FakeClock
) -> None:
    signed = await signed_in(client)
    renewed = (await refresh(client, signed["refreshToken"])).json()
    assert await user_content(client, renewed["accessToken"]) == 200
    clock.advance(settings.refresh_grace_seconds + 1)  # past the window for a lost answer
    await refresh(client, signed["refreshToken"])  # the stolen token comes back
    assert await user_content(client, signed["accessToken"]) == 401
    assert await user_content(client, renewed["accessToken"]) == 401


async def test_disabling_a_user_stops_their_tokens_and_sign_ins(
    client: httpx.AsyncClient, services: Services
) -> None:
    """TF-23: a disabled user's live token gets 401, not 500; re-enabling allows a new sign-in."""
    signed = await signed_in(client)
    await services.admin.set_enabled(OPERATOR, "cli", "alice", False)
    assert await user_content(client, signed["accessToken"]) == 401
    assert (await refresh(client, signed["refreshToken"])).status_code == 403
    assert (await sign_in(client)).status_code == 401
    await services.admin.set_enabled(OPERATOR, "cli", "alice", True)
    fresh = await sign_in(client)
    assert fresh.status_code == 200
    assert await user_content(client, fresh.json()["accessToken"]) == 200
    assert await user_content(client, signed["accessToken"]) == 401  # the old session stays dead


@pytest.fixture
async def other_process(
    settings: Settings, database_url: str, clock: FakeClock
) -> AsyncIterator[tuple[Services, httpx.AsyncClient]]:
    """Second services on the same database, as another authgate process would have."""
    database = Database.connect(database_url)
    services = await build_services(settings, database, clock=clock)
    transport = httpx.ASGITransport(app=build_app(services, settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://other.test") as client:
        yield services, client
    await services.aclose()
    await database.close()


async def test_another_process_learns_a_revocation_from_the_database(
    client: httpx.AsyncClient, other_process: tuple[Services, httpx.AsyncClient]
) -> None:
    other, other_client = other_process
    signed = await signed_in(client)
    assert await user_content(other_client, signed["accessToken"]) == 200
    await client.post("/api/auth/signout", json={"refreshToken": signed["refreshToken"]})
    assert await user_content(other_client, signed["accessToken"]) == 200  # not yet polled
    await other.upkeep.sync_revocations()
    assert await user_content(other_client, signed["accessToken"]) == 401


async def test_servers_whose_clocks_differ_by_seconds_agree_on_tokens_and_revocations(
    client: httpx.AsyncClient,
    services: Services,
    settings: Settings,
    database: Database,
    clock: FakeClock,
) -> None:
    """Two servers, clocks CLOCK_SKEW_SECONDS apart, no leeway (the default): a token from the
    one that runs ahead works at once on the other, and once its session is signed out it
    stays refused there until it has expired, even though it expires later than this
    server's own tokens would."""
    assert settings.clock_leeway_seconds == 0

    def ahead() -> float:
        return clock() + CLOCK_SKEW_SECONDS

    other = await build_services(settings, database, clock=ahead)
    transport = httpx.ASGITransport(app=build_app(other, settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://ahead.test") as early:
        signed = await signed_in(early)
    await other.aclose()
    access = signed["accessToken"]
    assert await user_content(client, access) == 200  # "issued in the future" by 5 s: fine

    await client.post("/api/auth/signout", json={"refreshToken": signed["refreshToken"]})
    clock.advance(settings.access_token_ttl_seconds + CLOCK_SKEW_SECONDS - 1)
    await services.upkeep.sync()  # what the poller does: it also forgets expired revocations
    assert await user_content(client, access) == 401
    clock.advance(1)
    response = await client.get("/api/test/user", headers=legacy(access))
    assert response.json() == {
        "message": "Unauthorized! Access Token was expired!",
        "code": "token_expired",
    }


def test_revoked_sessions_are_forgotten_once_their_tokens_have_expired(clock: FakeClock) -> None:
    revoked = RevokedSessions(retention_seconds=930, clock=clock)
    revoked.add("old", int(clock()))
    clock.advance(500)
    revoked.add_all([("new", int(clock()))])
    assert "old" in revoked
    assert "new" in revoked
    clock.advance(431)
    revoked.prune()
    assert "old" not in revoked
    assert "new" in revoked
    assert len(revoked) == 1


def test_polling_restarts_a_little_before_the_newest_revocation(clock: FakeClock) -> None:
    revoked = RevokedSessions(retention_seconds=930, clock=clock)
    assert revoked.since() <= int(clock()) - 930
    revoked.add("s", int(clock()))
    assert int(clock()) - 10 < revoked.since() < int(clock())


async def test_purge_removes_expired_and_long_revoked_sessions_only(
    client: httpx.AsyncClient, services: Services, database: Database, clock: FakeClock
) -> None:
    import sqlalchemy as sa

    async def counts() -> tuple[int, int]:
        async with database.engine.connect() as connection:
            sessions = (
                await connection.execute(sa.text("SELECT COUNT(*) FROM sessions"))
            ).scalar_one()
            tokens = (
                await connection.execute(sa.text("SELECT COUNT(*) FROM refresh_tokens"))
            ).scalar_one()
        return int(sessions), int(tokens)

    live = await signed_in(client, "alice")
    gone = await signed_in(client, "bob")
    await client.post("/api/auth/signout", json={"refreshToken": gone["refreshToken"]})
    await refresh(client, live["refreshToken"])
    assert await counts() == (2, 3)
    assert await services.upkeep.purge() == 0  # a fresh revocation is kept for the pollers
    clock.advance(86400 + 1)
    assert await services.upkeep.purge() == 1  # bob's revoked session and its token
    assert await counts() == (1, 2)
    clock.advance(7 * 86400)
    assert await services.upkeep.purge() == 1  # alice's session expired
    assert await counts() == (0, 0)
