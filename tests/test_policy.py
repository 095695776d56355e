"""Names and passwords: one normalisation at sign-up and sign-in, length rules, no truncation."""

from __future__ import annotations

import json
import unicodedata

import httpx
import pytest

from authgate.models import NewUser, Role
from authgate.policy import username_key
from authgate.services import Services
from authgate.storage import Database
from tests.conftest import PASSWORD
from tests.helpers import sign_in, sign_up
from tests.invisible import INVISIBLE_NAMES, LONE_SURROGATE, REFUSAL, SEPARATOR_NAMES

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("spelling", ["Alice", "ALICE", " alice ", "alice"])
async def test_usernames_are_one_account_under_case_and_spaces(
    client: httpx.AsyncClient, spelling: str
) -> None:
    assert (await sign_up(client, "alice")).status_code == 200
    assert (await sign_in(client, spelling)).status_code == 200
    assert (await sign_up(client, spelling.strip().upper())).status_code == 400


async def test_nfd_and_nfc_spellings_are_one_username_and_one_password(
    client: httpx.AsyncClient,
) -> None:
    name, secret = "jürgen", "pässwörd-über-alles"
    assert (
        await sign_up(client, unicodedata.normalize("NFC", name), password=secret)
    ).status_code == 200
    nfd_name, nfd_secret = unicodedata.normalize("NFD", name), unicodedata.normalize("NFD", secret)
    assert (await sign_in(client, nfd_name, nfd_secret)).status_code == 200


@pytest.mark.parametrize("username", ["ab", "with space", "tab\tname", "line\nbreak", "x" * 65, ""])
async def test_unusable_usernames_are_refused_with_a_reason(
    client: httpx.AsyncClient, username: str
) -> None:
    response = await sign_up(client, username)
    assert response.status_code == 400
    assert "Username" in response.json()["message"]


async def _sign_up_escaped(client: httpx.AsyncClient, username: str) -> httpx.Response:
    """Sign-up with every non-ASCII character as a JSON escape (a lone surrogate included)."""
    body = {"username": username, "email": "lookalike@example.com", "password": PASSWORD}
    return await client.post(
        "/api/auth/signup",
        content=json.dumps(body),
        headers={"content-type": "application/json"},
    )


@pytest.mark.parametrize("username", INVISIBLE_NAMES)
async def test_invisible_characters_are_refused_in_new_usernames(
    client: httpx.AsyncClient, username: str
) -> None:
    assert (await sign_up(client, "admin")).status_code == 200
    response = await _sign_up_escaped(client, username)
    assert response.status_code == 400
    assert response.json() == {"message": REFUSAL, "code": "invalid_input"}
    assert (await sign_in(client, username)).status_code == 401


async def test_a_lone_surrogate_is_refused_as_invalid_json(client: httpx.AsyncClient) -> None:
    response = await _sign_up_escaped(client, LONE_SURROGATE)
    assert response.status_code == 400
    assert response.json() == {
        "message": "The request body is not valid JSON.",
        "code": "malformed_body",
    }


@pytest.mark.parametrize("username", SEPARATOR_NAMES)
async def test_line_and_paragraph_separators_are_refused_in_usernames(
    client: httpx.AsyncClient, username: str
) -> None:
    response = await _sign_up_escaped(client, username)
    assert response.status_code == 400
    assert response.json()["message"].startswith("Failed! Username must")


@pytest.mark.parametrize("username", ["jürgen", "Ελένη", "漢字名", "ㄱㄴㄷ", "한국어", "🔐lock"])
async def test_visible_letters_of_any_script_stay_usable(
    client: httpx.AsyncClient, username: str
) -> None:
    assert (await sign_up(client, username)).status_code == 200
    assert (await sign_in(client, username)).status_code == 200


async def test_an_account_named_before_the_rule_still_signs_in(
    client: httpx.AsyncClient, services: Services, database: Database
) -> None:
    old_name = "old\u200bname"
    password_hash = await services.hasher.hash(PASSWORD)
    async with database.transaction() as tx:
        await tx.users.insert(
            NewUser(
                username=old_name,
                email="old@example.com",
                password_hash=password_hash,
                roles=frozenset({Role.USER}),
            ),
            username_key=username_key(old_name),
            email_key="old@example.com",
            now=0,
        )
    assert (await sign_in(client, old_name)).status_code == 200


@pytest.mark.parametrize(
    "email", ["not-an-email", "a@b", "two@@example.com", "sp ace@example.com", ""]
)
async def test_unusable_emails_are_refused(client: httpx.AsyncClient, email: str) -> None:
    body = {"username": "alice", "email": email, "password": PASSWORD}
    response = await client.post("/api/auth/signup", json=body)
    assert response.status_code == 400
    assert "Email" in response.json()["message"]


async def test_a_password_below_the_minimum_is_refused_with_the_reason(
    client: httpx.AsyncClient,
) -> None:
    response = await sign_up(client, password="seven77")
    assert response.status_code == 400
    assert response.json() == {
        "message": "Failed! Password must be at least 8 characters.",
        "code": "password_policy",
    }


@pytest.mark.parametrize("length", [8, 64, 128])
async def test_passwords_up_to_the_maximum_are_accepted(
    client: httpx.AsyncClient, length: int
) -> None:
    assert (await sign_up(client, password=("river-lantern-" * 10)[:length])).status_code == 200


async def test_a_password_above_the_maximum_is_refused_never_truncated(
    client: httpx.AsyncClient,
) -> None:
    response = await sign_up(client, password="p" * 129)
    assert response.status_code == 400
    assert response.json() == {
        "message": "Failed! Password must be at most 128 characters.",
        "code": "password_policy",
    }


async def test_one_more_character_is_another_password(client: httpx.AsyncClient) -> None:
    long = "p" * 100
    await sign_up(client, password=long)
    assert (await sign_in(client, "alice", long + "X")).status_code == 401
    assert (await sign_in(client, "alice", long[:-1])).status_code == 401
    assert (await sign_in(client, "alice", long)).status_code == 200


async def test_length_counts_characters_not_bytes(client: httpx.AsyncClient) -> None:
    emoji = "\U0001f510" * 64  # 256 bytes in UTF-8, 64 characters
    assert (await sign_up(client, password=emoji)).status_code == 200
    assert (await sign_in(client, "alice", emoji)).status_code == 200


async def test_any_printable_unicode_is_accepted_without_composition_rules(
    client: httpx.AsyncClient,
) -> None:
    assert (await sign_up(client, password="only lowercase and spaces here")).status_code == 200


@pytest.mark.parametrize(
    "common", ["password", "Password1", "qwertyuiop", "iloveyou", "PASSWORD123"]
)
async def test_common_passwords_are_refused_at_sign_up(
    client: httpx.AsyncClient, common: str
) -> None:
    response = await sign_up(client, password=common)
    assert response.status_code == 400
    assert response.json() == {
        "message": "Failed! This password is too common; choose another.",
        "code": "password_policy",
    }


def test_the_common_list_ships_with_the_package() -> None:
    from authgate.policy import common_passwords

    assert len(common_passwords()) > 10_000
    assert "password" in common_passwords()
