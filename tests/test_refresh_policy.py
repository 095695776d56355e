"""Refresh policies: rotation off for the tutorial's clients, idle and absolute expiry."""

from __future__ import annotations

import httpx
import pytest

from authgate.config import Settings
from authgate.storage import Database
from tests.conftest import ClientWith, FakeClock
from tests.helpers import legacy, refresh, refresh_at_once, signed_in

pytestmark = pytest.mark.anyio


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


# -- the grace window for a lost answer (on by default) -------------------------------------


async def test_a_retry_after_a_lost_answer_gets_the_same_successor_and_keeps_the_session(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    """With the default settings: the server rotated the token, but its answer never reached
    the client (discarded here), so the client retries with the token it still holds."""
    first = (await signed_in(client))["refreshToken"]
    lost = await refresh(client, first)
    assert lost.status_code == 200
    clock.advance(5)
    retried = await refresh(client, first)
    assert retried.status_code == 200
    assert retried.json()["refreshToken"] == lost.json()["refreshToken"]  # never a second one
    access = retried.json()["accessToken"]
    assert (await client.get("/api/test/user", headers=legacy(access))).status_code == 200
    clock.advance(600)
    onwards = await refresh(client, retried.json()["refreshToken"])
    assert onwards.status_code == 200  # the session lives on
    assert (await refresh(client, onwards.json()["refreshToken"])).status_code == 200


async def test_a_retry_after_the_window_is_reuse_and_ends_the_session(
    client: httpx.AsyncClient, settings: Settings, clock: FakeClock
) -> None:
    first = (await signed_in(client))["refreshToken"]
    second = (await refresh(client, first)).json()["refreshToken"]
    clock.advance(settings.refresh_grace_seconds + 1)
    assert (await refresh(client, first)).status_code == 403
    assert (await refresh(client, second)).status_code == 403


async def test_the_parent_of_a_used_successor_is_reuse_at_once(
    client: httpx.AsyncClient,
) -> None:
    """Within the window too: once the successor has been used, the family has diverged."""
    first = (await signed_in(client))["refreshToken"]
    second = (await refresh(client, first)).json()["refreshToken"]
    third = (await refresh(client, second)).json()["refreshToken"]
    assert (await refresh(client, first)).status_code == 403
    assert (await refresh(client, third)).status_code == 403  # the whole session ended


async def test_a_thief_inside_the_window_gets_the_same_successor_and_is_caught_after_it(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    """The thief presents the stolen parent seconds after the owner's refresh: it gets what
    the owner got, no second successor, and the owner's next refresh ends the session."""
    first = (await signed_in(client))["refreshToken"]
    owners = (await refresh(client, first)).json()
    clock.advance(3)
    thiefs = (await refresh(client, first)).json()
    assert thiefs["refreshToken"] == owners["refreshToken"]
    clock.advance(600)  # the owner refreshes when its access token runs out
    third = (await refresh(client, owners["refreshToken"])).json()["refreshToken"]
    clock.advance(60)
    assert (await refresh(client, thiefs["refreshToken"])).status_code == 403  # reuse
    assert (await refresh(client, third)).status_code == 403
    for access in (owners["accessToken"], thiefs["accessToken"]):
        assert (await client.get("/api/test/user", headers=legacy(access))).status_code == 401


async def test_a_thief_who_refreshes_first_is_caught_by_the_owners_next_refresh(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    first = (await signed_in(client))["refreshToken"]
    owners = (await refresh(client, first)).json()
    clock.advance(3)
    shared = (await refresh(client, first)).json()["refreshToken"]
    stolen = (await refresh(client, shared)).json()  # the thief moves on at once
    clock.advance(600)
    assert (await refresh(client, owners["refreshToken"])).status_code == 403  # reuse
    assert (await refresh(client, stolen["refreshToken"])).status_code == 403
    assert (
        await client.get("/api/test/user", headers=legacy(stolen["accessToken"]))
    ).status_code == 401


async def test_without_the_window_a_retry_is_reuse(client_with: ClientWith) -> None:
    async with client_with(refresh_grace_seconds=0) as client:
        first = (await signed_in(client))["refreshToken"]
        second = (await refresh(client, first)).json()["refreshToken"]
        assert (await refresh(client, first)).status_code == 403
        assert (await refresh(client, second)).status_code == 403


async def test_a_retry_gets_its_successor_after_the_tokens_own_idle_expiry(
    client_with: ClientWith, clock: FakeClock
) -> None:
    """The refresh came in the last seconds of the token's idle period; the retry after it."""
    async with client_with(refresh_token_idle_ttl_seconds=3600) as client:
        first = (await signed_in(client))["refreshToken"]
        clock.advance(3600 - 2)
        second = (await refresh(client, first)).json()["refreshToken"]
        clock.advance(5)
        retried = await refresh(client, first)
        assert retried.status_code == 200
        assert retried.json()["refreshToken"] == second
        assert (await refresh(client, second)).status_code == 200


async def test_a_retry_counts_against_the_refresh_budget(client_with: ClientWith) -> None:
    """The window is no way around the throttle: a retry is an attempt like any other."""
    async with client_with(rate_limit_refresh_per_address="2/minute") as client:
        first = (await signed_in(client))["refreshToken"]
        second = (await refresh(client, first)).json()["refreshToken"]
        assert (await refresh(client, first)).status_code == 200
        assert (await refresh(client, second)).status_code == 429


async def test_with_grace_concurrent_refreshes_share_one_successor(
    client: httpx.AsyncClient,
) -> None:
    answers = await refresh_at_once(client, (await signed_in(client))["refreshToken"], 10)
    assert all(r.status_code == 200 for r in answers)  # every retry within the window
    successors = {r.json()["refreshToken"] for r in answers}
    assert len(successors) == 1  # never two valid children
    assert (await refresh(client, successors.pop())).status_code == 200  # and it lives


async def test_grace_keeps_no_refresh_token_in_clear(
    client: httpx.AsyncClient, database: Database
) -> None:
    import sqlalchemy as sa

    first = (await signed_in(client))["refreshToken"]
    second = (await refresh(client, first)).json()["refreshToken"]
    async with database.engine.connect() as connection:
        rows = (
            await connection.execute(sa.text("SELECT token_hash, sealed_token FROM refresh_tokens"))
        ).all()
    dump = repr(rows)
    assert first not in dump
    assert second not in dump
    assert any(sealed for _, sealed in rows)  # sealed, for the window only


async def test_without_rotation_nothing_is_sealed(
    client_with: ClientWith, database: Database
) -> None:
    import sqlalchemy as sa

    async with client_with(refresh_rotation=False) as client:
        first = (await signed_in(client))["refreshToken"]
        assert (await refresh(client, first)).status_code == 200
        assert (await refresh(client, first)).status_code == 200  # a retry simply works
    async with database.engine.connect() as connection:
        sealed = (
            await connection.execute(sa.text("SELECT sealed_token FROM refresh_tokens"))
        ).scalars()
        assert set(sealed) == {None}
