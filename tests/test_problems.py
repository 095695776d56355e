"""The error table's middleware: what a route raises becomes its answer, once."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import msgspec
import pytest
from starlette.types import Receive, Scope, Send

from authgate.errors import AuthError, InvalidCredentialsError, InvalidRefreshTokenError
from authgate.http.app import ROUTES
from authgate.http.openapi import errors_of, operations
from authgate.http.problems import (
    HTTP_CODE,
    HTTP_CODES,
    INTERNAL_CODE,
    Problems,
    body_type,
    error_response,
    status_of,
)


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


@pytest.mark.anyio
async def test_an_unexpected_error_is_a_bare_500_and_still_reaches_the_server() -> None:
    async with client(Problems(fails_unexpectedly)) as http:
        response = await http.get("/")
    assert response.status_code == 500
    assert response.json() == {"message": "Internal server error.", "code": "internal_error"}
    assert "secret" not in response.text
    async with client(Problems(fails_unexpectedly), raise_app_exceptions=True) as http:
        with pytest.raises(RuntimeError, match="library detail"):  # raised again: logged
            await http.get("/")


@pytest.mark.anyio
async def test_errors_of_the_tree_get_their_answer_from_the_table() -> None:
    async with client(Problems(fails_as_designed), raise_app_exceptions=True) as http:
        response = await http.get("/")
    assert response.status_code == 401
    assert response.json() == {
        "accessToken": None,
        "message": "Invalid username or password.",
        "code": "invalid_credentials",
    }


@pytest.mark.anyio
async def test_an_error_after_the_answer_started_is_never_answered_twice() -> None:
    async with client(Problems(fails_after_answering), raise_app_exceptions=True) as http:
        with pytest.raises(RuntimeError, match="too late"):  # not a second response start
            await http.get("/")


def _error_classes(root: type[AuthError] = AuthError) -> list[type[AuthError]]:
    found = [root]
    for sub in root.__subclasses__():
        found.extend(_error_classes(sub))
    return found


def test_classes_that_share_a_code_share_their_public_answer() -> None:
    """A code names one meaning: a class may share its parent's code (a reused refresh
    token, a database that refused authgate) only if the wire cannot tell them apart."""
    by_code: dict[str, set[tuple[int, str, str]]] = {}
    for kind in _error_classes():
        answer = (status_of(kind), body_type(kind).__name__, kind.message)
        by_code.setdefault(kind.code, set()).add(answer)
    assert {code: answers for code, answers in by_code.items() if len(answers) > 1} == {}
    assert not {*HTTP_CODES.values(), HTTP_CODE, INTERNAL_CODE} & by_code.keys()


def test_every_code_on_the_wire_is_documented() -> None:
    """docs/errors.md lists exactly the codes a route may answer with."""
    on_the_wire = {
        kind.code
        for _, method, doc in operations(ROUTES)
        for kind in errors_of(doc, method)
        if "code" in body_type(kind).__struct_fields__  # not /readyz's report
    }
    on_the_wire |= {*HTTP_CODES.values(), INTERNAL_CODE}
    table = (Path(__file__).parent.parent / "docs" / "errors.md").read_text()
    documented = set(re.findall(r"^\| `(\w+)` \|", table, flags=re.MULTILINE))
    assert documented == on_the_wire


def test_every_invalid_refresh_token_gets_one_answer() -> None:
    """Unknown, expired, revoked and reused tokens: status, body (code included) and headers
    alike, so the answer is no oracle."""
    answers = set()
    family = _error_classes(InvalidRefreshTokenError)
    for kind in family:
        response = error_response(kind())
        answers.add((response.status_code, bytes(response.body), tuple(response.headers.items())))
    assert len(family) == 4  # unknown, expired, revoked, reused
    assert len(answers) == 1
    ((status, body, _),) = answers
    assert (status, msgspec.json.decode(body)) == (
        403,
        {
            "message": "Refresh token is not valid. Please make a new signin request.",
            "code": "invalid_refresh_token",
        },
    )
