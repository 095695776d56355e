"""The error table's middleware: what a route raises becomes its answer, once."""

from __future__ import annotations

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from authgate.errors import InvalidCredentialsError
from authgate.http.problems import Problems

pytestmark = pytest.mark.anyio


async def fails_unexpectedly(_scope: Scope, _receive: Receive, _send: Send) -> None:
    raise RuntimeError("library detail: /srv/secret/path")


async def fails_as_designed(_scope: Scope, _receive: Receive, _send: Send) -> None:
    raise InvalidCredentialsError()


async def fails_after_answering(_scope: Scope, _receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    raise RuntimeError("too late")


def client(app: Problems, *, raise_app_exceptions: bool = False) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    return httpx.AsyncClient(transport=transport, base_url="http://authgate.test")


async def test_an_unexpected_error_is_a_bare_500_and_still_reaches_the_server() -> None:
    async with client(Problems(fails_unexpectedly)) as http:
        response = await http.get("/")
    assert response.status_code == 500
    assert response.json() == {"message": "Internal server error."}
    assert "secret" not in response.text
    async with client(Problems(fails_unexpectedly), raise_app_exceptions=True) as http:
        with pytest.raises(RuntimeError, match="library detail"):  # raised again: logged
            await http.get("/")


async def test_errors_of_the_tree_get_their_answer_from_the_table() -> None:
    async with client(Problems(fails_as_designed), raise_app_exceptions=True) as http:
        response = await http.get("/")
    assert response.status_code == 401
    assert response.json() == {"accessToken": None, "message": "Invalid username or password."}


async def test_an_error_after_the_answer_started_is_never_answered_twice() -> None:
    async with client(Problems(fails_after_answering), raise_app_exceptions=True) as http:
        with pytest.raises(RuntimeError, match="too late"):  # not a second response start
            await http.get("/")
