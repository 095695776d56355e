"""Security events are logged as structured records, and no secret ever reaches a log."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from authgate.logs import JsonFormatter
from tests.conftest import PASSWORD, TEST_KEY
from tests.helpers import legacy, refresh, sign_in, signed_in

pytestmark = pytest.mark.anyio


async def test_a_whole_session_logs_events_and_no_secret(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    signed = await signed_in(client)
    await client.get("/api/test/user", headers=legacy(signed["accessToken"]))
    renewed = (await refresh(client, signed["refreshToken"])).json()
    repeated = (await refresh(client, signed["refreshToken"])).json()  # a lost answer's retry
    third = (await refresh(client, renewed["refreshToken"])).json()
    await refresh(client, signed["refreshToken"])  # reuse: the session is revoked
    again = (await sign_in(client)).json()
    await client.post("/api/auth/signout", json={"refreshToken": again["refreshToken"]})
    await sign_in(client, "alice", "a wrong password\nfake log line")

    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    text = "\n".join(lines)
    secrets = [
        PASSWORD,
        TEST_KEY,
        signed["accessToken"],
        signed["refreshToken"],
        renewed["accessToken"],
        renewed["refreshToken"],
        repeated["accessToken"],
        third["accessToken"],
        third["refreshToken"],
        again["accessToken"],
        again["refreshToken"],
        "a wrong password",
    ]
    for secret in secrets:
        assert secret not in text
    events = [json.loads(line).get("event") for line in lines]
    for expected in (
        "user.created",
        "sign_in.succeeded",
        "refresh.repeated",
        "refresh.reuse_detected",
        "session.revoked",
        "sign_in.failed",
    ):
        assert expected in events
    assert all(line.count("\n") == 0 for line in lines)  # one record, one line


def test_records_are_json_objects_with_only_known_fields() -> None:
    record = logging.LogRecord(
        "authgate.security", logging.INFO, __file__, 1, "sign_in.failed", (), None
    )
    record.event = "sign_in.failed"
    record.password = PASSWORD  # an unexpected extra is never copied into the line
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert entry["event"] == "sign_in.failed"
    assert PASSWORD not in line


def test_a_terminal_gets_readable_lines_with_the_same_fields() -> None:
    from authgate.logs import TerminalFormatter

    record = logging.LogRecord(
        "authgate.security", logging.INFO, __file__, 1, "sign_in.failed", (), None
    )
    record.event = "sign_in.failed"
    record.password = PASSWORD
    line = TerminalFormatter().format(record)
    assert "authgate.security: sign_in.failed" in line
    assert 'event="sign_in.failed"' in line
    assert PASSWORD not in line
    assert "\n" not in line
