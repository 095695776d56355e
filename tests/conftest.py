"""Fixtures that compose: clock -> settings -> database -> services -> app -> client."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from authgate.config import Settings
from authgate.http.app import build_app
from authgate.runtime import build_services
from authgate.service import AuthService
from authgate.services import Services
from authgate.storage import Database
from tests.databases import SERVER_URLS, Provisioned, empty, fresh_url, provision, release

TEST_KEY = "test-signing-key-0123456789abcdef-not-a-real-secret"
PASSWORD = "correct horse battery staple"
BACKENDS = ["sqlite", "postgresql", "mysql"]
ENCRYPTED = os.environ.get("AUTHGATE_TEST_ENCRYPT_TOKENS") == "1"


class FakeClock:
    """Time that moves only when a test says so."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Cheap argon2 and a fixed key; everything else at its default."""
    return Settings.from_mapping(
        {
            "signing_key": TEST_KEY,
            "data_dir": str(tmp_path),
            "argon2_memory_kib": 64,
            "argon2_time_cost": 1,
            # Generous limits so only the throttling tests meet them.
            "rate_limit_sign_in_per_address": "10000/minute",
            "rate_limit_sign_in_failures_per_account_and_address": "10000/minute",
            "rate_limit_sign_in_failures_per_account": "10000/minute",
            "rate_limit_sign_up_per_address": "10000/minute",
            "rate_limit_refresh_per_address": "10000/minute",
            # AUTHGATE_TEST_ENCRYPT_TOKENS=1 runs the suite with encrypted access tokens.
            **({"token_encryption_key": "e" * 43} if ENCRYPTED else {}),
        }
    )


@pytest.fixture(scope="session", params=BACKENDS)
def provisioned(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Provisioned]:
    backend: str = request.param
    if backend != "sqlite" and not os.environ.get(SERVER_URLS[backend]):
        pytest.skip(f"{backend}: set {SERVER_URLS[backend]} to run against it")
    provisioned = provision(backend, tmp_path_factory.mktemp(backend))
    yield provisioned
    release(provisioned)


@pytest.fixture
def database_url(provisioned: Provisioned, tmp_path: Path) -> str:
    return fresh_url(provisioned, tmp_path)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    database = Database.connect(database_url)
    await empty(database)
    yield database
    await database.close()


@pytest.fixture
async def services(settings: Settings, database: Database, clock: FakeClock) -> Services:
    return await build_services(settings, database, clock=clock)


@pytest.fixture
def service(services: Services) -> AuthService:
    """The sign-up, sign-in and refresh rules of ``services``."""
    return services.auth


@pytest.fixture
def app(services: Services, settings: Settings) -> Starlette:
    return build_app(services, settings)


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://authgate.test") as client:
        yield client


ClientWith = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def client_with(settings: Settings, database: Database, clock: FakeClock) -> ClientWith:
    """A client of an app whose settings differ from the test defaults by ``changes``."""

    @asynccontextmanager
    async def open_client(**changes: object) -> AsyncIterator[httpx.AsyncClient]:
        changed = settings.replace(**changes)
        services = await build_services(changed, database, clock=clock)
        transport = httpx.ASGITransport(app=build_app(services, changed))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://authgate.test"
        ) as client:
            yield client
        await services.aclose()

    return open_client


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "plain_tokens: reads or forges the signed token itself; skipped when the suite runs "
        "with encrypted access tokens (AUTHGATE_TEST_ENCRYPT_TOKENS=1)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not ENCRYPTED:
        return
    skip = pytest.mark.skip(reason="encrypted tokens: this test reads or forges the signed token")
    for item in items:
        if item.get_closest_marker("plain_tokens"):
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line per skipped database instead of one per test."""
    reasons = {
        str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        for report in terminalreporter.stats.get("skipped", [])
    }
    for reason in sorted(reasons):
        terminalreporter.write_line(f"skipped: {reason.removeprefix('Skipped: ')}")
