"""Refresh policies: rotation off for the tutorial's clients, idle and absolute expiry."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest

from authgate.config import Settings
from authgate.http.app import build_app
from authgate.runtime import build_service
from authgate.storage import Database
from tests.conftest import FakeClock
from tests.helpers import legacy, refresh, signed_in

pytestmark = pytest.mark.anyio

ClientWith = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def client_with(settings: Settings, database: Database, clock: FakeClock) -> ClientWith:
    """A client of an app whose settings differ from the defaults by ``changes``."""

    @asynccontextmanager
    async def open_client(**changes: object) -> AsyncIterator[httpx.AsyncClient]:
        changed = settings.replace(**changes)
        service = await build_service(changed, database, clock=clock)
        transport = httpx.ASGITransport(app=build_app(service, changed))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://authgate.test"
        ) as client:
            yield client
        await service.aclose()

    return open_client


async def test_without_rotation_the_same_refresh_token_keeps_working(
    client_with: ClientWith,
) -> None:
    """The tutorial's React client keeps presenting its first refresh token."""
    async with client_with(refresh_rotation=False) as client:
        first = (await signed_in(client))["refreshToken"]
        for _ in range(3):
            response = await refresh(client, first)
            assert response.status_code == 200
            assert response.json()["refreshToken"] == first
            access = response.json()["accessToken"]
            assert (await client.get("/api/test/user", headers=legacy(access))).status_code == 200


async def test_without_rotation_sign_out_and_expiry_still_apply(
    client_with: ClientWith, clock: FakeClock
) -> None:
    async with client_with(refresh_rotation=False) as client:
        signed = await signed_in(client)
        await client.post("/api/auth/signout", json={"refreshToken": signed["refreshToken"]})
        assert (await refresh(client, signed["refreshToken"])).status_code == 403
        other = (await signed_in(client, "bob"))["refreshToken"]
        clock.advance(7 * 86400)
        assert (await refresh(client, other)).status_code == 403


@pytest.mark.parametrize("rotation", [True, False], ids=["rotating", "reused"])
async def test_an_idle_refresh_token_expires(
    client_with: ClientWith, clock: FakeClock, rotation: bool
) -> None:
    async with client_with(
        refresh_rotation=rotation, refresh_token_idle_ttl_seconds=86400
    ) as client:
        token = (await signed_in(client))["refreshToken"]
        for _ in range(5):  # used every 20 hours: alive for four days and counting
            clock.advance(20 * 3600)
            response = await refresh(client, token)
            assert response.status_code == 200
            token = response.json()["refreshToken"]
        clock.advance(86400 + 1)
        assert (await refresh(client, token)).status_code == 403


@pytest.mark.parametrize("rotation", [True, False], ids=["rotating", "reused"])
async def test_use_never_extends_a_session_past_its_absolute_lifetime(
    client_with: ClientWith, clock: FakeClock, rotation: bool
) -> None:
    async with client_with(
        refresh_rotation=rotation, refresh_token_idle_ttl_seconds=86400
    ) as client:
        token = (await signed_in(client))["refreshToken"]
        for _ in range(8):  # 8 x 20 h = 6 days 16 hours: still inside the 7 days
            clock.advance(20 * 3600)
            response = await refresh(client, token)
            assert response.status_code == 200
            token = response.json()["refreshToken"]
        clock.advance(20 * 3600)  # 7 days 12 hours after sign-in
        assert (await refresh(client, token)).status_code == 403


# -- the optional grace window for lost answers ---------------------------------------------


async def test_within_the_grace_window_the_parent_gets_the_same_successor(
    client_with: ClientWith, clock: FakeClock
) -> None:
    async with client_with(refresh_grace_seconds=5) as client:
        first = (await signed_in(client))["refreshToken"]
        second = (await refresh(client, first)).json()["refreshToken"]
        clock.advance(3)  # the answer was lost; the client retries with the old token
        again = await refresh(client, first)
        assert again.status_code == 200
        assert again.json()["refreshToken"] == second  # the same successor, never a second one
        third = await refresh(client, second)
        assert third.status_code == 200
        # Now `first` is two generations old: that is reuse, and the session ends.
        assert (await refresh(client, first)).status_code == 403
        assert (await refresh(client, third.json()["refreshToken"])).status_code == 403


async def test_after_the_grace_window_the_parent_is_reuse(
    client_with: ClientWith, clock: FakeClock
) -> None:
    async with client_with(refresh_grace_seconds=5) as client:
        first = (await signed_in(client))["refreshToken"]
        second = (await refresh(client, first)).json()["refreshToken"]
        clock.advance(6)
        assert (await refresh(client, first)).status_code == 403
        assert (await refresh(client, second)).status_code == 403


async def test_with_grace_concurrent_refreshes_share_one_successor(client_with: ClientWith) -> None:
    import anyio

    async with client_with(refresh_grace_seconds=5) as client:
        token = (await signed_in(client))["refreshToken"]
        answers: list[httpx.Response] = []

        async def attempt() -> None:
            answers.append(await refresh(client, token))

        async with anyio.create_task_group() as group:
            for _ in range(10):
                group.start_soon(attempt)
        successors = {r.json()["refreshToken"] for r in answers if r.status_code == 200}
        assert len(successors) == 1  # never two valid children
        assert (await refresh(client, successors.pop())).status_code == 200  # and it lives


async def test_grace_keeps_no_refresh_token_in_clear(
    client_with: ClientWith, database: Database, clock: FakeClock
) -> None:
    import sqlalchemy as sa

    async with client_with(refresh_grace_seconds=5) as client:
        first = (await signed_in(client))["refreshToken"]
        second = (await refresh(client, first)).json()["refreshToken"]
        async with database.engine.connect() as connection:
            rows = (
                await connection.execute(
                    sa.text("SELECT token_hash, sealed_token FROM refresh_tokens")
                )
            ).all()
        dump = repr(rows)
        assert first not in dump
        assert second not in dump
        assert any(sealed for _, sealed in rows)  # sealed, for the window only
