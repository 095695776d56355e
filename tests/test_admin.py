"""The admin API: admins only (checked against the database), every action audited."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from authgate.admin import OPERATOR
from authgate.errors import UserNotFoundError
from authgate.services import Services
from authgate.storage import Database
from tests.conftest import PASSWORD
from tests.helpers import legacy, refresh, sign_in, signed_in

pytestmark = pytest.mark.anyio


@pytest.fixture
async def admin(client: httpx.AsyncClient, services: Services) -> dict[str, str]:
    await services.admin.create_user(
        OPERATOR, "cli", "root", "root@example.com", PASSWORD, ["admin", "user"]
    )
    token = (await sign_in(client, "root")).json()["accessToken"]
    return legacy(token)


async def user_id(client: httpx.AsyncClient, admin: dict[str, str], name: str) -> int:
    users = (await client.get("/api/admin/users", params={"q": name}, headers=admin)).json()[
        "users"
    ]
    found: int = next(u["id"] for u in users if u["username"] == name)
    return found


ADMIN_CALLS = [
    ("GET", "/api/admin/users", None),
    ("GET", "/api/admin/users/{id}", None),
    ("PUT", "/api/admin/users/{id}/roles", {"roles": ["admin"]}),
    ("POST", "/api/admin/users/{id}/disable", None),
    ("POST", "/api/admin/users/{id}/enable", None),
    ("GET", "/api/admin/users/{id}/sessions", None),
    ("DELETE", "/api/admin/users/{id}/sessions/x", None),
    ("DELETE", "/api/admin/users/{id}", None),
    ("GET", "/api/admin/audit", None),
]


@pytest.mark.parametrize(
    ("method", "path", "body"), ADMIN_CALLS, ids=lambda v: v if isinstance(v, str) else ""
)
async def test_every_admin_endpoint_refuses_non_admins(
    client: httpx.AsyncClient, method: str, path: str, body: Any
) -> None:
    alice = await signed_in(client)
    target = path.replace("{id}", str(alice["id"]))
    anonymous = await client.request(method, target, json=body)
    assert anonymous.status_code == 401
    user = await client.request(method, target, json=body, headers=legacy(alice["accessToken"]))
    assert user.status_code == 403
    assert user.json() == {"message": "Require Admin Role!", "code": "role_required"}


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"not json", "application/json"),
        (b'{"roles": "admin"}', "application/json"),
        (b'{"roles": ["admin"], "extra": 1}', "application/json"),
        (b"roles=admin", "application/x-www-form-urlencoded"),
    ],
    ids=["not-json", "wrong-type", "unknown-field", "not-json-media-type"],
)
async def test_a_user_token_is_refused_for_its_role_before_its_body_is_read(
    client: httpx.AsyncClient, content: bytes, content_type: str
) -> None:
    alice = await signed_in(client)
    response = await client.put(
        f"/api/admin/users/{alice['id']}/roles",
        content=content,
        headers={**legacy(alice["accessToken"]), "Content-Type": content_type},
    )
    assert response.status_code == 403
    assert response.json() == {"message": "Require Admin Role!", "code": "role_required"}


async def test_listing_searching_and_reading_users(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await signed_in(client, "alice")
    await signed_in(client, "bob")
    everyone = (await client.get("/api/admin/users", headers=admin)).json()["users"]
    assert {u["username"] for u in everyone} == {"root", "alice", "bob"}
    found = (await client.get("/api/admin/users", params={"q": "ALI"}, headers=admin)).json()[
        "users"
    ]
    assert [u["username"] for u in found] == ["alice"]
    one = await client.get(f"/api/admin/users/{found[0]['id']}", headers=admin)
    assert one.json() == {
        "id": found[0]["id"],
        "username": "alice",
        "email": "alice@example.com",
        "roles": ["ROLE_USER"],
        "enabled": True,
    }
    assert "password" not in one.text
    assert (await client.get("/api/admin/users/999999", headers=admin)).status_code == 404
    assert (
        await client.get("/api/admin/users", params={"limit": "x"}, headers=admin)
    ).status_code == 400


async def test_taking_a_role_away_ends_the_users_sessions_at_once(
    client: httpx.AsyncClient, admin: dict[str, str], services: Services
) -> None:
    await services.admin.create_user(
        OPERATOR, "cli", "mod", "mod@example.com", PASSWORD, ["moderator", "user"]
    )
    moderator = (await sign_in(client, "mod")).json()
    assert (
        await client.get("/api/test/mod", headers=legacy(moderator["accessToken"]))
    ).status_code == 200
    target = await user_id(client, admin, "mod")
    response = await client.put(
        f"/api/admin/users/{target}/roles", json={"roles": ["user"]}, headers=admin
    )
    assert response.json()["roles"] == ["ROLE_USER"]
    assert (
        await client.get("/api/test/mod", headers=legacy(moderator["accessToken"]))
    ).status_code == 401
    again = (await sign_in(client, "mod")).json()
    assert again["roles"] == ["ROLE_USER"]


async def test_disabling_deleting_and_sessions(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    alice = await signed_in(client)
    target = alice["id"]
    sessions = (await client.get(f"/api/admin/users/{target}/sessions", headers=admin)).json()[
        "sessions"
    ]
    assert len(sessions) == 1
    revoked = await client.delete(
        f"/api/admin/users/{target}/sessions/{sessions[0]['id']}", headers=admin
    )
    assert revoked.status_code == 200
    assert (await refresh(client, alice["refreshToken"])).status_code == 403

    fresh = (await sign_in(client)).json()
    disabled = await client.post(f"/api/admin/users/{target}/disable", headers=admin)
    assert disabled.json()["enabled"] is False
    assert (
        await client.get("/api/test/user", headers=legacy(fresh["accessToken"]))
    ).status_code == 401
    assert (await sign_in(client)).status_code == 401
    assert (await client.post(f"/api/admin/users/{target}/enable", headers=admin)).json()[
        "enabled"
    ] is True
    assert (await sign_in(client)).status_code == 200

    assert (await client.delete(f"/api/admin/users/{target}", headers=admin)).status_code == 200
    assert (await sign_in(client)).status_code == 401


async def test_every_admin_action_is_audited(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    alice = await signed_in(client)
    await client.get("/api/admin/users", headers=admin)
    await client.post(f"/api/admin/users/{alice['id']}/disable", headers=admin)
    await client.put(
        f"/api/admin/users/{alice['id']}/roles", json={"roles": ["moderator"]}, headers=admin
    )
    entries = (await client.get("/api/admin/audit", headers=admin)).json()["entries"]
    actions = [e["action"] for e in entries]
    assert actions[:4] == ["audit.read", "users.set_roles", "users.disable", "users.search"]
    disable = entries[2]
    assert disable["targetUserId"] == alice["id"]
    assert disable["clientAddress"] == "127.0.0.1"
    assert disable["actorId"] is not None
    assert entries[1]["detail"] == "moderator"


async def test_a_demoted_admin_loses_the_admin_api_at_once(
    client: httpx.AsyncClient, admin: dict[str, str], services: Services
) -> None:
    await services.admin.create_user(
        OPERATOR, "cli", "boss", "boss@example.com", PASSWORD, ["admin"]
    )
    await services.admin.set_roles(
        OPERATOR, "cli", "root", ["user"]
    )  # the token in `admin` still says admin
    response = await client.get("/api/admin/users", headers=admin)
    assert response.status_code in (401, 403)


async def test_an_admin_cannot_disable_or_delete_their_own_account(
    client: httpx.AsyncClient, admin: dict[str, str], services: Services
) -> None:
    await services.admin.create_user(
        OPERATOR, "cli", "boss", "boss@example.com", PASSWORD, ["admin"]
    )  # not the last
    root = await user_id(client, admin, "root")
    for method, path in (
        ("POST", f"/api/admin/users/{root}/disable"),
        ("DELETE", f"/api/admin/users/{root}"),
    ):
        response = await client.request(method, path, headers=admin)
        assert response.status_code == 409
        assert "cannot disable or delete their own account" in response.json()["message"]
    itself = await client.get(f"/api/admin/users/{root}", headers=admin)
    assert itself.json()["enabled"] is True
    assert itself.json()["username"] == "root"


async def test_the_last_enabled_admin_cannot_lose_the_admin_role_or_be_disabled(
    client: httpx.AsyncClient, admin: dict[str, str], services: Services
) -> None:
    root = await user_id(client, admin, "root")
    demote = await client.put(
        f"/api/admin/users/{root}/roles", json={"roles": ["user"]}, headers=admin
    )
    assert demote.status_code == 409
    assert demote.json() == {
        "message": "The last enabled admin cannot be disabled, deleted or lose the admin role; "
        "make another admin first.",
        "code": "last_admin",
    }
    # A disabled admin is no admin: it does not make root's demotion safe.
    await services.admin.create_user(
        OPERATOR, "cli", "dormant", "dormant@example.com", PASSWORD, ["admin"]
    )
    await services.admin.set_enabled(OPERATOR, "cli", "dormant", False)
    again = await client.put(
        f"/api/admin/users/{root}/roles", json={"roles": ["user"]}, headers=admin
    )
    assert again.status_code == 409
    assert (await client.get("/api/test/admin", headers=admin)).status_code == 200  # unchanged
    # With another enabled admin, root may step down; the other admin then cannot be removed.
    await services.admin.set_enabled(OPERATOR, "cli", "dormant", True)
    stepped_down = await client.put(
        f"/api/admin/users/{root}/roles", json={"roles": ["user"]}, headers=admin
    )
    assert stepped_down.status_code == 200
    dormant = (await sign_in(client, "dormant")).json()
    other = legacy(dormant["accessToken"])
    assert (
        await client.post(f"/api/admin/users/{dormant['id']}/disable", headers=other)
    ).status_code == 409
    last = await client.put(
        f"/api/admin/users/{dormant['id']}/roles", json={"roles": ["moderator"]}, headers=other
    )
    assert last.status_code == 409


async def test_the_last_admin_cannot_delete_their_own_account(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    response = await client.request(
        "DELETE", "/api/auth/account", json={"currentPassword": PASSWORD}, headers=admin
    )
    assert response.status_code == 409
    assert (await client.get("/api/test/admin", headers=admin)).status_code == 200


async def test_two_admins_disabling_each_other_at_once_leave_one_admin(
    client: httpx.AsyncClient, admin: dict[str, str], services: Services
) -> None:
    await services.admin.create_user(
        OPERATOR, "cli", "boss", "boss@example.com", PASSWORD, ["admin"]
    )
    boss = (await sign_in(client, "boss")).json()
    root = await user_id(client, admin, "root")
    answers = await asyncio.gather(
        client.post(f"/api/admin/users/{boss['id']}/disable", headers=admin),
        client.post(f"/api/admin/users/{root}/disable", headers=legacy(boss["accessToken"])),
    )
    statuses = sorted(answer.status_code for answer in answers)
    # The loser is refused (403, 409), or, when the winner's commit and revocation landed
    # before the loser's request was even authenticated, its token is no longer valid (401).
    assert statuses in ([200, 401], [200, 403], [200, 409]), statuses
    remaining = [user for user in await services.admin.every_user(OPERATOR) if user.enabled]
    assert len(remaining) == 1


# -- the operator (the CLI's actor): the same rules, the same record -----------------


async def audit_rows(database: Database) -> list[sa.Row[Any]]:
    """The audit log as stored, oldest first."""
    query = "SELECT actor_id, action, target_user_id, detail, client_address FROM audit_log"
    async with database.engine.connect() as connection:
        return list((await connection.execute(sa.text(query + " ORDER BY id"))).all())


async def test_the_operators_changes_are_audited_with_no_actor(
    services: Services, database: Database
) -> None:
    admin = services.admin
    alice = await admin.create_user(
        OPERATOR, "cli", "alice", "alice@example.com", PASSWORD, ["user"]
    )
    await admin.set_roles(OPERATOR, "cli", "alice", ["moderator", "user"])
    await admin.set_enabled(OPERATOR, "cli", "ALICE", False)
    await admin.set_enabled(OPERATOR, "cli", "alice", True)
    with pytest.raises(UserNotFoundError):
        await admin.set_enabled(OPERATOR, "cli", "ghost", False)  # refused: no record
    assert [tuple(row) for row in await audit_rows(database)] == [
        (None, "users.create", alice, "user", "cli"),
        (None, "users.set_roles", alice, "moderator,user", "cli"),
        (None, "users.disable", alice, "", "cli"),
        (None, "users.enable", alice, "", "cli"),
    ]


async def test_disabling_from_the_cli_or_the_admin_api_ends_sessions_alike(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    services: Services,
    database: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Alice is disabled as the CLI does it, bob through the admin API: what each of them
    then meets is the same, and so is what the log and the audit say, but for who acted."""
    caplog.set_level(logging.INFO, logger="authgate.security")
    root = await user_id(client, admin, "root")
    sessions: dict[str, list[dict[str, Any]]] = {}
    for name in ("alice", "bob"):
        sessions[name] = [await signed_in(client, name), (await sign_in(client, name)).json()]
    alice, bob = sessions["alice"][0]["id"], sessions["bob"][0]["id"]
    await services.admin.set_enabled(OPERATOR, "cli", "alice", False)
    disabled = await client.post(f"/api/admin/users/{bob}/disable", headers=admin)
    assert disabled.status_code == 200

    async def outcome(name: str) -> list[object]:
        found: list[object] = []
        for body in sessions[name]:
            access = await client.get("/api/test/user", headers=legacy(body["accessToken"]))
            found += [access.status_code, (await refresh(client, body["refreshToken"])).status_code]
        found.append((await sign_in(client, name)).status_code)
        listed = await client.get(
            f"/api/admin/users/{sessions[name][0]['id']}/sessions", headers=admin
        )
        return [*found, listed.json()]

    ended = [401, 403, 401, 403, 401, {"sessions": []}]
    assert await outcome("alice") == await outcome("bob") == ended
    live = "SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL AND user_id <> :root"
    async with database.engine.connect() as connection:
        assert (await connection.execute(sa.text(live), {"root": root})).scalar_one() == 0
    events = [
        (getattr(record, "event", ""), getattr(record, "user_id", None))
        for record in caplog.records
        if getattr(record, "event", "") in ("user.disabled", "admin.users.disable")
    ]
    assert events == [
        ("admin.users.disable", None),
        ("user.disabled", alice),
        ("admin.users.disable", root),
        ("user.disabled", bob),
    ]
    disables = [row for row in await audit_rows(database) if row.action == "users.disable"]
    assert [(row.actor_id, row.target_user_id, row.client_address) for row in disables] == [
        (None, alice, "cli"),
        (root, bob, "127.0.0.1"),
    ]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/admin/users/{huge}"),
        ("DELETE", "/api/admin/users/{huge}"),
        ("POST", "/api/admin/users/{huge}/disable"),
        ("POST", "/api/admin/users/{huge}/enable"),
        ("GET", "/api/admin/users/{huge}/sessions"),
        ("DELETE", "/api/admin/users/{huge}/sessions/x"),
        ("DELETE", "/api/admin/users/{root}/sessions/{long}"),
    ],
)
async def test_ids_no_column_can_hold_are_not_found(
    client: httpx.AsyncClient, admin: dict[str, str], method: str, path: str
) -> None:
    """A user id past the 64-bit columns, or a session id longer than any we issue, names
    nothing: 404, never a 500 from the database refusing the audit record or the lookup."""
    root = await user_id(client, admin, "root")
    url = path.format(huge="9" * 30, root=root, long="s" * 5000)
    answer = await client.request(method, url, headers=admin)
    assert answer.status_code == 404, answer.text
    assert answer.json()["code"] in ("not_found", "session_not_found", "user_not_found")
