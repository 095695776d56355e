"""What operators rely on: health, readiness, metrics, request ids, access logs, proxies, HSTS."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from authgate.config import Settings
from authgate.errors import ConfigurationError
from authgate.http.app import build_app
from authgate.http.headers import ResponseHeaders
from authgate.http.observe import Observe, client_address, parse_networks
from authgate.logs import AccessLog
from authgate.metrics import Metrics
from authgate.runtime import build_services
from authgate.services import Services
from authgate.storage import Database
from tests.conftest import PASSWORD, FakeClock
from tests.helpers import legacy, sign_in, signed_in

pytestmark = pytest.mark.anyio


async def test_healthz_and_readyz(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok"}}


async def test_readyz_says_what_is_unreachable(settings: Settings, clock: FakeClock) -> None:
    broken = settings.replace(redis_url="redis://127.0.0.1:1/0")
    database = Database.connect("postgresql://postgres@127.0.0.1:1/none", timeout_seconds=1)
    services = await build_services(broken, database, clock=clock)
    transport = httpx.ASGITransport(app=build_app(services, broken))
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://authgate.test"
        ) as client:
            response = await client.get("/readyz")
    finally:
        await services.aclose()
        await database.close()
    assert response.status_code == 503
    assert response.json() == {
        "status": "unready",
        "checks": {"database": "unreachable", "redis": "unreachable"},
    }
    assert "127.0.0.1" not in response.text  # no internals


async def test_readyz_and_metrics_refusals_keep_their_exact_answers(
    settings: Settings, clock: FakeClock
) -> None:
    """Both refusals come from the error table now; their bytes and headers are those the
    handlers used to build: /readyz's 503 names every check (no Retry-After), /metrics' 403
    is a plain message (no challenge)."""
    broken = settings.replace(redis_url="redis://127.0.0.1:1/0")
    database = Database.connect("postgresql://postgres@127.0.0.1:1/none", timeout_seconds=1)
    services = await build_services(broken, database, clock=clock)
    app = build_app(services, broken)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 5000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://authgate.test") as c:
            unready, forbidden = await c.get("/readyz"), await c.get("/metrics")
    finally:
        await services.aclose()
        await database.close()
    assert unready.status_code == 503
    assert unready.content == (
        b'{"status":"unready","checks":{"database":"unreachable","redis":"unreachable"}}'
    )
    assert forbidden.status_code == 403
    assert forbidden.content == (
        b'{"message":"Metrics need AUTHGATE_METRICS_TOKEN, or a loopback client.",'
        b'"code":"metrics_forbidden"}'
    )
    for answer in (unready, forbidden):
        assert answer.headers["content-type"] == "application/json; charset=utf-8"
        assert answer.headers["cache-control"] == "no-store"
        assert "retry-after" not in answer.headers
        assert "www-authenticate" not in answer.headers


async def test_metrics_count_requests_and_events(client: httpx.AsyncClient) -> None:
    await signed_in(client)
    await sign_in(client, "alice", "wrong password here")
    for _ in range(3):
        await client.get("/api/test/all")
    text = (await client.get("/metrics")).text
    assert (
        'authgate_http_requests_total{method="GET",route="/api/test/all",status="200"} 3.0' in text
    )
    assert (
        'authgate_http_requests_total{method="POST",route="/api/auth/signin",status="401"} 1.0'
        in text
    )
    assert 'authgate_events_total{event="sign_in.succeeded"}' in text
    assert 'authgate_events_total{event="sign_in.failed"} 1.0' in text
    assert "authgate_password_hash_seconds_count" in text
    assert "authgate_active_sessions 1.0" in text
    assert "authgate_http_request_duration_seconds_bucket" in text


@pytest.fixture
async def remote_client(services: Services, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(services, settings), client=("203.0.113.9", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://authgate.test") as client:
        yield client


async def test_metrics_refuse_remote_clients_without_the_token(
    remote_client: httpx.AsyncClient,
) -> None:
    assert (await remote_client.get("/metrics")).status_code == 403


async def test_metrics_refuse_an_outside_client_forwarded_by_a_proxy_on_this_host(
    services: Services, settings: Settings
) -> None:
    proxied = settings.replace(trusted_proxies=("127.0.0.1",))
    transport = httpx.ASGITransport(app=build_app(services, proxied), client=("127.0.0.1", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://authgate.test") as proxy:
        outside = await proxy.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
        assert outside.status_code == 403
        # A spoofed loopback entry in front of what the proxy appended changes nothing.
        spoofed = {"X-Forwarded-For": "127.0.0.1, 203.0.113.9"}
        assert (await proxy.get("/metrics", headers=spoofed)).status_code == 403
        local = await proxy.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"})
        assert local.status_code == 200
        assert (await proxy.get("/metrics")).status_code == 200  # a scraper on this host


async def test_metrics_with_a_token(services: Services, settings: Settings) -> None:
    guarded = settings.replace(metrics_token="scrape-secret-0123456789")
    transport = httpx.ASGITransport(app=build_app(services, guarded), client=("203.0.113.9", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://authgate.test") as client:
        assert (await client.get("/metrics")).status_code == 403
        bad = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 403
        good = await client.get(
            "/metrics", headers={"Authorization": "Bearer scrape-secret-0123456789"}
        )
        assert good.status_code == 200
        assert good.headers["content-type"].startswith("text/plain")


async def test_request_ids_are_kept_or_made(client: httpx.AsyncClient) -> None:
    kept = await client.get("/api/test/all", headers={"X-Request-ID": "abc-123"})
    assert kept.headers["x-request-id"] == "abc-123"
    made = await client.get("/api/test/all", headers={"X-Request-ID": "bad id\nwith newline"})
    assert made.headers["x-request-id"] != "bad id\nwith newline"
    assert len(made.headers["x-request-id"]) == 32


async def test_made_request_ids_are_random_not_a_sequence(client: httpx.AsyncClient) -> None:
    made = [(await client.get("/api/test/all")).headers["x-request-id"] for _ in range(20)]
    assert all(re.fullmatch("[0-9a-f]{32}", made_id) for made_id in made)
    assert len(set(made)) == len(made)
    # No shared prefix and no counter: consecutive ids are unrelated 128-bit numbers.
    assert len({made_id[:8] for made_id in made}) == len(made)
    numbers = [int(made_id, 16) for made_id in made]
    assert all(abs(later - earlier) > 2**64 for earlier, later in itertools.pairwise(numbers))


async def test_one_json_access_record_per_request_without_secrets(
    app: Starlette, client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    signed = await signed_in(client)
    app.state.access_log.flush()
    capsys.readouterr()
    await client.get(
        "/api/test/user", headers={**legacy(signed["accessToken"]), "X-Request-ID": "r-1"}
    )
    app.state.access_log.flush()
    lines = [line for line in capsys.readouterr().err.splitlines() if '"authgate.access"' in line]
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["method"] == "GET"
    assert entry["route"] == "/api/test/user"
    assert entry["status"] == 200
    assert entry["request_id"] == "r-1"
    assert entry["client"] == "127.0.0.1"
    assert entry["latency_ms"] >= 0
    assert signed["accessToken"] not in lines[0]
    assert PASSWORD not in lines[0]


def test_access_lines_are_written_in_batches(capsys: pytest.CaptureFixture[str]) -> None:
    log = AccessLog()
    for n in range(AccessLog.BATCH_LINES - 1):
        log.write("GET", "/api/test/all", 200, 0.1, f"r-{n}", "127.0.0.1")
    assert capsys.readouterr().err == ""  # queued: one write per batch, not per request
    log.write("GET", "/api/test/all", 200, 0.1, "last", '"odd"\nclient')
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == AccessLog.BATCH_LINES
    assert [json.loads(line)["request_id"] for line in lines[:2]] == ["r-0", "r-1"]
    assert json.loads(lines[-1])["client"] == '"odd"\nclient'  # escaped: one line, no forgery
    log.write("GET", "/api/test/all", 200, 0.1, "after", "127.0.0.1")
    log.flush()
    assert json.loads(capsys.readouterr().err)["request_id"] == "after"


async def test_queued_access_lines_are_written_at_shutdown(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def hello(_request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    observed = Observe(
        Starlette(routes=[Route("/", hello)]),
        metrics=Metrics(),
        trusted_proxies=[],
        access_log=AccessLog(),
        routes=[Route("/", hello)],
        headers=ResponseHeaders(),
        flush_seconds=3600,  # only shutdown can write them
    )
    transport = httpx.ASGITransport(app=observed)
    async with httpx.AsyncClient(transport=transport, base_url="http://authgate.test") as client:
        assert (await client.get("/")).status_code == 200
    assert capsys.readouterr().err == ""  # queued
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> dict[str, str]:
        return next(messages)

    async def send(_message: object) -> None:
        pass

    await observed({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    (line,) = capsys.readouterr().err.splitlines()
    assert json.loads(line)["route"] == "/"


def test_forwarded_addresses_are_believed_only_from_trusted_proxies() -> None:
    trusted = parse_networks(["10.0.0.0/8"])
    assert client_address("10.0.0.5", "198.51.100.7", trusted) == "198.51.100.7"
    # A client cannot spoof an address: only entries added by trusted hops count.
    assert client_address("10.0.0.5", "1.2.3.4, 198.51.100.7", trusted) == "198.51.100.7"
    assert client_address("10.0.0.5", "198.51.100.7, 10.0.0.9", trusted) == "198.51.100.7"
    assert client_address("203.0.113.1", "198.51.100.7", trusted) == "203.0.113.1"
    assert client_address("10.0.0.5", "not-an-ip", trusted) == "10.0.0.5"
    assert client_address("10.0.0.5", "198.51.100.7", []) == "10.0.0.5"


async def test_rate_limits_key_on_the_forwarded_client(
    services: Services, settings: Settings, database: Database, clock: FakeClock
) -> None:
    proxied = settings.replace(
        trusted_proxies=("127.0.0.1",), rate_limit_sign_up_per_address="2/hour"
    )
    limited = await build_services(proxied, database, clock=clock)
    transport = httpx.ASGITransport(app=build_app(limited, proxied))
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://authgate.test"
        ) as client:

            async def sign_up_from(address: str, name: str) -> int:
                body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
                headers = {"X-Forwarded-For": address}
                return (
                    await client.post("/api/auth/signup", json=body, headers=headers)
                ).status_code

            assert [await sign_up_from("198.51.100.1", f"first{i}") for i in range(3)] == [
                200,
                200,
                429,
            ]
            assert (
                await sign_up_from("198.51.100.2", "second") == 200
            )  # another client behind the proxy
    finally:
        await limited.aclose()


async def test_hsts_only_when_clients_use_tls(services: Services, settings: Settings) -> None:
    for tls, expected in ((False, None), (True, "max-age=31536000; includeSubDomains")):
        app = build_app(services, settings.replace(behind_tls_proxy=tls))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://a.test"
        ) as c:
            assert (await c.get("/api/test/all")).headers.get(
                "strict-transport-security"
            ) == expected


def test_production_refuses_cookies_without_tls() -> None:
    base = {
        "AUTHGATE_ENV": "production",
        "AUTHGATE_SIGNING_KEY": "q3ZrT8vLm0XbW2yNcA7pHsJ4dK9fUe1G",
        "AUTHGATE_COOKIE_TRANSPORT": "true",
    }
    with pytest.raises(ConfigurationError, match="TLS"):
        Settings.from_env(base, dotenv=None)
    assert Settings.from_env({**base, "AUTHGATE_BEHIND_TLS_PROXY": "true"}, dotenv=None).tls


def test_tls_files_go_together() -> None:
    with pytest.raises(ConfigurationError, match="TLS_KEY_FILE"):
        Settings.from_env({"AUTHGATE_TLS_CERT_FILE": "/x.pem"}, dotenv=None)


def test_tallied_latencies_land_in_the_right_buckets() -> None:
    metrics = Metrics()
    for seconds in (0.0004, 0.0005, 0.3, 7.0):
        metrics.record_request("/api/test/all", "GET", 200, seconds)
    text = metrics.render().decode()  # adds the tally first
    bucket = 'authgate_http_request_duration_seconds_bucket{le="%s",route="/api/test/all"} %s'
    assert bucket % ("0.0005", "2.0") in text  # "le": a value on a bound counts in it
    assert bucket % ("0.25", "2.0") in text
    assert bucket % ("0.5", "3.0") in text
    assert bucket % ("5.0", "3.0") in text
    assert bucket % ("+Inf", "4.0") in text
    assert 'authgate_http_request_duration_seconds_count{route="/api/test/all"} 4.0' in text
    assert (
        'authgate_http_requests_total{method="GET",route="/api/test/all",status="200"} 4.0' in text
    )
    metrics.render()
    assert 'status="200"} 4.0' in metrics.render().decode()  # added once, not at every render
