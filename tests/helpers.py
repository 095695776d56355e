"""Small steps the tests repeat: sign up, sign in, read the tables."""

from __future__ import annotations

from typing import Any

import anyio
import httpx

from tests.conftest import PASSWORD


async def sign_up(
    client: httpx.AsyncClient, username: str = "alice", *, password: str = PASSWORD, **extra: Any
) -> httpx.Response:
    body = {"username": username, "email": f"{username}@example.com", "password": password, **extra}
    return await client.post("/api/auth/signup", json=body)


async def sign_in(
    client: httpx.AsyncClient, username: str = "alice", password: str = PASSWORD
) -> httpx.Response:
    return await client.post("/api/auth/signin", json={"username": username, "password": password})


async def signed_in(client: httpx.AsyncClient, username: str = "alice") -> dict[str, Any]:
    """Sign up and sign in; the sign-in body."""
    assert (await sign_up(client, username)).status_code == 200
    response = await sign_in(client, username)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def refresh(client: httpx.AsyncClient, token: object) -> httpx.Response:
    return await client.post("/api/auth/refreshtoken", json={"refreshToken": token})


async def refresh_at_once(
    client: httpx.AsyncClient, token: str, times: int
) -> list[httpx.Response]:
    """``times`` refreshes with one token, all in flight together; their answers."""
    answers: list[httpx.Response] = []

    async def attempt() -> None:
        answers.append(await refresh(client, token))

    async with anyio.create_task_group() as group:
        for _ in range(times):
            group.start_soon(attempt)
    return answers


#: Long enough that only a hang reaches it, however busy the machine; never a speed target.
HANG_SECONDS = 60


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def legacy(token: str) -> dict[str, str]:
    return {"x-access-token": token}
