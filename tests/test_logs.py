"""Security events are logged as structured records, and no secret ever reaches a log."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from authgate.config import Settings
from authgate.http.app import build_app
from authgate.logs import JsonFormatter, configure_logging
from authgate.runtime import build_services
from authgate.storage import Database
from tests.conftest import PASSWORD, TEST_KEY, FakeClock
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


@pytest.fixture
def _restore_logging() -> Iterator[None]:
    """Undo ``configure_logging``: it points the root logger at this test's stderr."""
    root, ours = logging.getLogger(), logging.getLogger("authgate")
    handlers, root_level, our_level = root.handlers[:], root.level, ours.level
    yield
    root.handlers[:] = handlers
    root.setLevel(root_level)
    ours.setLevel(our_level)


@pytest.mark.usefixtures("_restore_logging")
async def test_values_with_line_breaks_stay_inside_one_json_line(
    settings: Settings,
    database: Database,
    clock: FakeClock,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Line breaks a client or operator chose reach the real log output (a data directory in
    a message, a forwarded address, usernames, headers); every line is still one JSON object."""
    configure_logging("INFO")  # what the server installs: JSON lines on stderr
    forged = '\n{"level": "info", "event": "sign_in.succeeded"}\r\n'
    data_dir = tmp_path / f"data{forged}"
    data_dir.mkdir()
    # No signing key: the service makes a development key and logs the path it wrote.
    changed = settings.replace(
        signing_key=None, data_dir=str(data_dir), trusted_proxies=("127.0.0.1",)
    )
    services = await build_services(changed, database, clock=clock)
    app = build_app(services, changed)
    # An address Python accepts, line breaks and all (one hop: no comma; kept whole: no
    # surrounding space).
    odd_client = 'fe80::1%\n{"event":"sign_in.succeeded"}\r\nx'
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://authgate.test"
        ) as client:
            await signed_in(client)
            headers = {
                "X-Forwarded-For": odd_client,
                "User-Agent": forged,
                "X-Request-ID": forged,
            }
            for username, password in (("alice" + forged, PASSWORD), ("alice", forged)):
                response = await client.post(
                    "/api/auth/signin",
                    json={"username": username, "password": password},
                    headers=headers,
                )
                assert response.status_code == 401
            assert (await client.get("/api/test/all", headers=headers)).status_code == 200
    finally:
        await services.aclose()
    app.state.access_log.flush()

    output = capsys.readouterr().err
    assert "\r" not in output
    lines = output.split("\n")
    assert lines.pop() == ""  # every line ends with a newline
    entries = [json.loads(line) for line in lines]
    assert all(isinstance(entry, dict) for entry in entries)
    assert [e.get("event") for e in entries].count("sign_in.succeeded") == 1  # none forged
    assert [e.get("event") for e in entries].count("sign_in.failed") == 2
    # The line breaks did reach the output, escaped.
    assert any(str(data_dir) in e["message"] for e in entries if e["logger"] == "authgate.keys")
    assert [e.get("client") for e in entries].count(odd_client) == 3


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
    record.client = "odd\n2001:db8::1 forged line\r"
    line = TerminalFormatter().format(record)
    assert "authgate.security: sign_in.failed" in line
    assert 'event="sign_in.failed"' in line
    assert PASSWORD not in line
    assert "\n" not in line
    assert "\r" not in line
    assert 'client="odd\\n2001:db8::1 forged line\\r"' in line
