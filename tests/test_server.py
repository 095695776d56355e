"""authgate as an operator runs it: a real ``authgate serve`` process, over real HTTP."""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from authgate import serving
from authgate.config import Settings
from authgate.http.observe import FLUSH_SECONDS
from tests.conftest import PASSWORD
from tests.helpers import HANG_SECONDS
from tests.relay import Relay

START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
EXIT_TIMEOUT_SECONDS = 30.0

# Lifetimes short enough to watch tokens expire. An access token lives ``exp - now`` seconds,
# where ``exp = int(now) + ttl``: with a 1-second ttl that can be a millisecond, so 2 gives
# every fresh token at least one second. The refresh token must outlive the access token's
# expiry plus one refresh; 5 seconds leaves two to spare.
ACCESS_TTL_SECONDS = 2
REFRESH_TTL_SECONDS = 5
SHORT_LIVED = {
    "AUTHGATE_ACCESS_TOKEN_TTL_SECONDS": str(ACCESS_TTL_SECONDS),
    "AUTHGATE_REFRESH_TOKEN_TTL_SECONDS": str(REFRESH_TTL_SECONDS),
}
EXPIRED = {"message": "Unauthorized! Access Token was expired!", "code": "token_expired"}


def authgate_env(workdir: Path, settings: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any ``AUTHGATE_*``, plus cheap argon2 and ``settings``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AUTHGATE_")}
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "AUTHGATE_DATA_DIR": str(workdir / "data"),
            "AUTHGATE_ARGON2_MEMORY_KIB": "64",
            "AUTHGATE_ARGON2_TIME_COST": "1",
        }
    )
    env.update(settings or {})
    return env


def authgate_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "authgate.cli", *args]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen[Any]) -> None:
    """SIGINT (a graceful shutdown), then SIGKILL to the whole group (workers included)."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def launch(workdir: Path, env: Mapping[str, str], *args: str) -> subprocess.Popen[str]:
    """Start ``authgate ARGS`` in its own process group, output piped."""
    return subprocess.Popen(
        authgate_command(*args),
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish(process: subprocess.Popen[str]) -> Finished:
    """Wait for a launched command; a hang fails the test instead of hanging the suite."""
    try:
        stdout, stderr = process.communicate(timeout=EXIT_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        stop_process(process)
        stdout, stderr = process.communicate()
        pytest.fail(f"{process.args!r} did not exit:\n{stdout}{stderr}")
    return Finished(process.returncode, stdout, stderr)


def run_authgate(workdir: Path, env: Mapping[str, str], *args: str) -> Finished:
    return finish(launch(workdir, env, *args))


class Server:
    """One ``authgate serve`` process on a free loopback port, its output kept in files."""

    def __init__(
        self, workdir: Path, env: Mapping[str, str], *args: str, port: int | None = None
    ) -> None:
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._stdout_path = workdir / f"serve-{self.port}.stdout"
        self._stderr_path = workdir / f"serve-{self.port}.stderr"
        with self._stdout_path.open("wb") as stdout, self._stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                authgate_command("serve", "--host", "127.0.0.1", "--port", str(self.port), *args),
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"authgate serve exited with {self.process.returncode}:\n{self.output}")
            try:
                response = httpx.get(f"{self.base_url}/api/test/all", timeout=1, trust_env=False)
            except httpx.TransportError:
                pass
            else:
                if response.status_code == 200:
                    return
            time.sleep(0.05)
        pytest.fail(
            f"authgate serve did not answer within {START_TIMEOUT_SECONDS} s:\n{self.output}"
        )

    def client(self, *, keep_alive: bool = True) -> httpx.Client:
        limits = httpx.Limits() if keep_alive else httpx.Limits(max_keepalive_connections=0)
        return httpx.Client(base_url=self.base_url, timeout=10, trust_env=False, limits=limits)

    def stop(self) -> None:
        stop_process(self.process)

    @property
    def stderr(self) -> str:
        return self._stderr_path.read_text(errors="replace")

    @property
    def output(self) -> str:
        return self._stdout_path.read_text(errors="replace") + self.stderr


class Servers:
    """Starts servers for one test and stops every one of them afterwards."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._started: list[Server] = []

    def start(self, env: Mapping[str, str], *args: str, port: int | None = None) -> Server:
        server = Server(self.workdir, env, *args, port=port)
        self._started.append(server)
        server.wait_until_ready()
        return server

    def stop_all(self) -> None:
        for server in self._started:
            server.stop()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real ``authgate migrate`` per run (it costs seconds); tests get a copy of its file."""
    workdir = tmp_path_factory.mktemp("migrated")
    result = run_authgate(workdir, authgate_env(workdir), "migrate")
    assert result.returncode == 0, result.output
    assert "revision" in result.stdout
    database = workdir / "data" / "authgate.db"
    assert database.is_file()
    return database


@pytest.fixture
def migrated(workdir: Path, migrated_template: Path) -> Path:
    """``workdir`` with a migrated database where ``AUTHGATE_DATA_DIR`` points."""
    (workdir / "data").mkdir()
    shutil.copyfile(migrated_template, workdir / "data" / "authgate.db")
    return workdir


@pytest.fixture
def servers(workdir: Path) -> Iterator[Servers]:
    started = Servers(workdir)
    try:
        yield started
    finally:
        started.stop_all()


def claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified: the test only reads the server's own timestamps."""
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def poll(
    request: Callable[[], httpx.Response],
    done: Callable[[httpx.Response], bool],
    *,
    within_seconds: float,
) -> httpx.Response:
    """Repeat a read-only request until ``done``; fail if that never happens."""
    deadline = time.monotonic() + within_seconds
    while True:
        response = request()
        if done(response):
            return response
        if time.monotonic() > deadline:
            pytest.fail(f"still {response.status_code} {response.text!r} after {within_seconds} s")
        time.sleep(0.05)


def sleep_until(epoch_seconds: float) -> None:
    remaining = epoch_seconds - time.time()
    if remaining > 0:
        time.sleep(remaining)


def sign_up(client: httpx.Client, username: str = "alice") -> httpx.Response:
    body = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
    return client.post("/api/auth/signup", json=body)


def sign_in(client: httpx.Client, username: str = "alice") -> httpx.Response:
    return client.post("/api/auth/signin", json={"username": username, "password": PASSWORD})


def refresh(client: httpx.Client, token: str) -> httpx.Response:
    return client.post("/api/auth/refreshtoken", json={"refreshToken": token})


def user_content(client: httpx.Client, token: str) -> httpx.Response:
    return client.get("/api/test/user", headers={"x-access-token": token})


# -- the tutorial's scenario --------------------------------------------------


def assert_no_secrets_in(server: Server, secrets: list[str]) -> None:
    """After a shutdown: the log was written, and none of ``secrets`` is in it."""
    server.stop()
    output = server.output
    assert "sign_in.succeeded" in output  # the log was captured, so its silence below means it
    for secret in secrets:
        assert secret not in output


def test_the_tutorials_seven_steps_against_a_real_server(migrated: Path, servers: Servers) -> None:
    """Sign in, use, expire, refresh, use again, expired refresh, unknown refresh; no leaks."""
    server = servers.start(authgate_env(migrated, SHORT_LIVED))

    with server.client() as client:
        signed_up = sign_up(client)
        assert signed_up.status_code == 200, signed_up.text
        assert signed_up.json() == {"message": "User registered successfully!"}

        signed_in = sign_in(client)
        assert signed_in.status_code == 200, signed_in.text
        body = signed_in.json()
        assert body["roles"] == ["ROLE_USER"]
        access, refresh_token = body["accessToken"], body["refreshToken"]
        assert refresh_token

        used = user_content(client, access)
        assert used.status_code == 200
        assert used.text == "User Content."

        expired = poll(
            lambda: user_content(client, access),
            lambda response: response.status_code != 200,
            within_seconds=HANG_SECONDS,  # polled: it ends when the token expires
        )
        assert expired.status_code == 401
        assert expired.json() == EXPIRED

        renewed = refresh(client, refresh_token)
        assert renewed.status_code == 200, renewed.text
        assert set(renewed.json()) == {"accessToken", "refreshToken"}
        new_access, new_refresh = renewed.json()["accessToken"], renewed.json()["refreshToken"]
        assert new_access != access

        again = user_content(client, new_access)
        assert again.status_code == 200
        assert again.text == "User Content."

        # The session's refresh expiry is fixed at sign-in (no later than the first access
        # token's iat + ttl) and rotation never extends it. Refreshing to find out would spend
        # the token, so wait for that instant instead of polling.
        sleep_until(claims(access)["iat"] + REFRESH_TTL_SECONDS)
        late = refresh(client, new_refresh)
        assert late.status_code == 403
        assert "expired" not in late.json()["message"].lower()  # no oracle

        unknown = refresh(client, "this-token-was-never-issued")
        assert unknown.status_code == 403
        assert unknown.json() == late.json()

    assert_no_secrets_in(server, [PASSWORD, access, refresh_token, new_access, new_refresh])


def test_uvicorn_serves_sign_in_protected_content_and_refresh(
    migrated: Path, servers: Servers
) -> None:
    server = servers.start(authgate_env(migrated, SHORT_LIVED), "--server", "uvicorn")

    with server.client() as client:
        assert sign_up(client).status_code == 200
        signed_in = sign_in(client)
        assert signed_in.status_code == 200, signed_in.text
        access, refresh_token = signed_in.json()["accessToken"], signed_in.json()["refreshToken"]
        assert user_content(client, access).text == "User Content."

        expired = poll(
            lambda: user_content(client, access),
            lambda response: response.status_code != 200,
            within_seconds=HANG_SECONDS,  # polled: it ends when the token expires
        )
        assert expired.status_code == 401
        assert expired.json() == EXPIRED

        renewed = refresh(client, refresh_token)
        assert renewed.status_code == 200, renewed.text
        new_access, new_refresh = renewed.json()["accessToken"], renewed.json()["refreshToken"]
        again = user_content(client, new_access)
        assert again.status_code == 200
        assert again.text == "User Content."

        assert refresh(client, "this-token-was-never-issued").status_code == 403

    assert_no_secrets_in(server, [PASSWORD, access, refresh_token, new_access, new_refresh])


def test_two_granian_workers_share_the_database_and_the_development_key(
    migrated: Path, servers: Servers
) -> None:
    server = servers.start(authgate_env(migrated), "--workers", "2")

    # A new connection per request lets either worker answer each step.
    with server.client(keep_alive=False) as client:
        assert sign_up(client).status_code == 200
        tokens: list[str] = []
        for _ in range(6):
            signed_in = sign_in(client)
            assert signed_in.status_code == 200, signed_in.text
            tokens.append(signed_in.json()["accessToken"])
        for token in tokens:
            response = user_content(client, token)
            assert response.status_code == 200, response.text


# -- the signing key ----------------------------------------------------------


def test_a_development_key_is_generated_once_with_mode_0600_and_reused_after_a_restart(
    migrated: Path, servers: Servers
) -> None:
    env = authgate_env(migrated)
    key_file = migrated / "data" / "signing.key"
    assert not key_file.exists()

    first = servers.start(env)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert len(key) >= 32
    with first.client() as client:
        assert sign_up(client).status_code == 200
        access = sign_in(client).json()["accessToken"]
    first.stop()
    assert str(key_file) in first.stderr
    assert key not in first.output

    second = servers.start(env)
    with second.client() as client:
        response = user_content(client, access)
        assert response.status_code == 200, response.text
    second.stop()
    assert key_file.read_text().strip() == key
    assert str(key_file) not in second.stderr  # nothing new was generated
    assert key not in second.output


# -- refusing to start ----------------------------------------------------------

PRODUCTION = {"AUTHGATE_ENV": "production"}
#: ``authgate serve`` invocations that must exit at once: name -> (settings, extra arguments).
REFUSALS: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    "production-without-key": (PRODUCTION, ()),
    "production-empty-key": ({**PRODUCTION, "AUTHGATE_SIGNING_KEY": ""}, ()),
    "production-short-key": ({**PRODUCTION, "AUTHGATE_SIGNING_KEY": "too-short-0123456789"}, ()),
    "production-tutorial-key": ({**PRODUCTION, "AUTHGATE_SIGNING_KEY": "bezkoder-secret-key"}, ()),
    "production-repeated-key": ({**PRODUCTION, "AUTHGATE_SIGNING_KEY": "k" * 40}, ()),
    "unmigrated-granian": ({}, ("--server", "granian")),
    "unmigrated-uvicorn": ({}, ("--server", "uvicorn")),
    # No directory can be made under a device file, not even by root.
    "data-dir-uncreatable": ({"AUTHGATE_DATA_DIR": "/dev/null/authgate"}, ()),
    "database-folder-missing": ({"AUTHGATE_DATABASE_URL": "sqlite:///nonexistent/dir/x.db"}, ()),
}


@pytest.fixture(scope="module")
def refusals(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, tuple[Path, Finished]]]:
    """Every refusal in :data:`REFUSALS`, launched at once: each spends seconds on imports."""
    launched: dict[str, tuple[Path, subprocess.Popen[str]]] = {}
    try:
        for name, (settings, args) in REFUSALS.items():
            workdir = tmp_path_factory.mktemp(name)
            env = authgate_env(workdir, settings)
            port = str(free_port())
            launched[name] = (workdir, launch(workdir, env, "serve", "--port", port, *args))
        yield {name: (workdir, finish(process)) for name, (workdir, process) in launched.items()}
    finally:
        for _, process in launched.values():
            stop_process(process)


@pytest.mark.parametrize("case", [name for name in REFUSALS if name.startswith("production")])
def test_production_refuses_to_start_without_a_strong_signing_key(
    refusals: dict[str, tuple[Path, Finished]], case: str
) -> None:
    workdir, result = refusals[case]
    assert result.returncode == 3, result.output  # configuration
    assert "AUTHGATE_SIGNING_KEY" in result.stderr
    key = REFUSALS[case][0].get("AUTHGATE_SIGNING_KEY")
    if key:
        assert key not in result.output
    assert not (workdir / "data" / "signing.key").exists()  # production never makes one up


def test_production_without_a_public_url_warns_and_never_lets_discovery_be_cached(
    migrated: Path, servers: Servers
) -> None:
    env = authgate_env(migrated, {**PRODUCTION, "AUTHGATE_SIGNING_KEY": secrets.token_urlsafe(48)})
    server = servers.start(env)
    with server.client() as client:
        response = client.get("/.well-known/openid-configuration", headers={"Host": "evil.example"})
    assert response.headers["cache-control"] == "no-store"
    assert "AUTHGATE_PUBLIC_URL is not set" in server.stderr


def test_a_leeway_close_to_the_access_lifetime_is_warned_about_at_start_up(
    migrated: Path, servers: Servers
) -> None:
    """With 30 s of leeway a 3-second token works for 33 s: the clients never refresh."""
    leeway = {"AUTHGATE_ACCESS_TOKEN_TTL_SECONDS": "3", "AUTHGATE_CLOCK_LEEWAY_SECONDS": "30"}
    server = servers.start(authgate_env(migrated, leeway))
    server.stop()
    warnings = [
        json.loads(line)
        for line in server.stderr.splitlines()
        if "AUTHGATE_CLOCK_LEEWAY_SECONDS" in line
    ]
    assert len(warnings) == 1, server.stderr
    assert warnings[0]["level"] == "warning"
    assert "AUTHGATE_CLOCK_LEEWAY_SECONDS=30 is not well below" in warnings[0]["message"]
    assert "accepted for 33 s" in warnings[0]["message"]


@pytest.mark.parametrize(
    ("ttl", "leeway", "warned"),
    [
        pytest.param(3, 0, False, id="3s-default-leeway"),
        pytest.param(900, 0, False, id="defaults"),
        pytest.param(900, 30, False, id="900s-30s"),
        pytest.param(3, 1, True, id="3s-1s"),
        pytest.param(20, 4, False, id="20s-4s"),
        pytest.param(20, 5, True, id="20s-5s-a-quarter"),
        pytest.param(3, 30, True, id="3s-30s"),
    ],
)
def test_the_leeway_warning_starts_at_a_quarter_of_the_access_lifetime(
    ttl: int, leeway: int, warned: bool
) -> None:
    settings = Settings.from_mapping(
        {"access_token_ttl_seconds": ttl, "clock_leeway_seconds": leeway}
    )
    assert bool(serving.start_up_warnings(settings)) is warned


@pytest.mark.parametrize("case", [name for name in REFUSALS if name.startswith("unmigrated")])
def test_serve_refuses_a_database_that_was_never_migrated(
    refusals: dict[str, tuple[Path, Finished]], case: str
) -> None:
    _, result = refusals[case]
    assert result.returncode == 3, result.output  # refused before any worker starts
    assert "authgate migrate" in result.output
    assert "Traceback" not in result.output


def test_an_explicit_sqlite_url_is_relative_with_three_slashes_and_needs_its_folder(
    refusals: dict[str, tuple[Path, Finished]], tmp_path: Path
) -> None:
    """The data directory is made when missing; a folder an explicit URL names is not: a
    mistyped ``sqlite:///`` path would otherwise grow folders wherever authgate starts."""
    workdir, result = refusals["database-folder-missing"]
    assert result.returncode == 3, result.output
    assert f"The folder {workdir / 'nonexistent' / 'dir'} of the SQLite database" in result.stderr
    assert "sqlite:////absolute/path" in result.stderr
    assert "Traceback" not in result.output
    assert not (workdir / "nonexistent").exists()

    (tmp_path / "db").mkdir()
    env = authgate_env(tmp_path, {"AUTHGATE_DATABASE_URL": "sqlite:///db/x.db"})
    migrated = run_authgate(tmp_path, env, "migrate")
    assert migrated.returncode == 0, migrated.output
    assert (tmp_path / "db" / "x.db").is_file()  # relative to the working directory


def test_serve_refuses_a_data_dir_that_cannot_be_created_as_a_configuration_error(
    refusals: dict[str, tuple[Path, Finished]],
) -> None:
    _, result = refusals["data-dir-uncreatable"]
    assert result.returncode == 3, result.output
    assert "Traceback" not in result.output


# -- several processes share state ------------------------------------------------

REDIS_URL = os.environ.get("AUTHGATE_TEST_REDIS_URL")


def _clear_rate_limits(redis_url: str) -> None:
    import asyncio

    from authgate.throttle import Throttle

    throttle = Throttle(
        key=b"only-clearing",
        sign_in_per_address="1/minute",
        sign_in_failures_per_account_and_address="1/minute",
        sign_in_failures_per_account="1/minute",
        sign_up_per_address="1/minute",
        refresh_per_address="1/minute",
        known_address_seconds=0,
        redis_url=redis_url,
    )

    async def clear() -> None:
        try:
            await throttle.clear()
        finally:
            await throttle.aclose()

    asyncio.run(clear())


def _alternating_sign_ins(first: Server, second: Server, attempts: int) -> list[int]:
    statuses = []
    with first.client() as one, second.client() as two:
        for attempt in range(attempts):
            client = one if attempt % 2 == 0 else two
            body = {"username": f"user{attempt}", "password": "a wrong password"}
            statuses.append(client.post("/api/auth/signin", json=body).status_code)
    return statuses


@pytest.mark.parametrize("shared", [True, False], ids=["through-redis", "in-memory-control"])
def test_two_servers_share_one_sign_in_budget_through_redis(
    migrated: Path, servers: Servers, shared: bool
) -> None:
    """Four sign-ins a minute per address: through Redis the fifth is refused whichever process
    gets it; with in-memory counters (the control) each process counts only its own."""
    if not REDIS_URL:
        pytest.skip("redis: set AUTHGATE_TEST_REDIS_URL to run against it")
    _clear_rate_limits(REDIS_URL)
    settings = {
        "AUTHGATE_SIGNING_KEY": "shared-key-of-two-processes-0123456789abcdef",
        "AUTHGATE_RATE_LIMIT_SIGN_IN_PER_ADDRESS": "4/minute",
    }
    if shared:
        settings["AUTHGATE_REDIS_URL"] = REDIS_URL
    env = authgate_env(migrated, settings)
    first, second = servers.start(env), servers.start(env)
    statuses = _alternating_sign_ins(first, second, 6)
    if shared:
        assert statuses == [401, 401, 401, 401, 429, 429]
    else:
        assert statuses == [401] * 6
    _clear_rate_limits(REDIS_URL)


def test_a_sign_out_on_one_server_reaches_the_other_servers_tokens(
    migrated: Path, servers: Servers
) -> None:
    """Two processes on one database: the second refuses the signed-out session's access token
    once its revocation poll (every 500 ms by default) has run."""
    env = authgate_env(
        migrated, {"AUTHGATE_SIGNING_KEY": "shared-key-of-two-processes-0123456789abcdef"}
    )
    first, second = servers.start(env), servers.start(env)
    with first.client() as one, second.client() as two:
        assert sign_up(one).status_code == 200
        body = sign_in(one).json()
        assert user_content(two, body["accessToken"]).status_code == 200
        assert (
            one.post("/api/auth/signout", json={"refreshToken": body["refreshToken"]}).status_code
            == 200
        )
        assert (
            user_content(one, body["accessToken"]).status_code == 401
        )  # at once where it happened
        poll(
            lambda: user_content(two, body["accessToken"]),
            lambda response: response.status_code == 401,
            within_seconds=HANG_SECONDS,
        )


# -- site B: another service trusting authgate's published keys -------------------------

ROOT = Path(__file__).resolve().parent.parent


def test_site_b_serves_a_user_signed_in_at_authgate(migrated: Path, servers: Servers) -> None:
    """The example in examples/site_b.py, as two real processes: EdDSA at authgate, and site B
    verifying with nothing but the key set it fetched. As with ``make example``, one
    environment starts both, with authgate on a port other than 8080: site B's settings must
    not trip authgate's check of its own namespace, and site B must follow ``AUTHGATE_PORT``."""
    authgate_port, port = free_port(), free_port()
    env = authgate_env(
        migrated,
        {
            "AUTHGATE_SIGNING_ALGORITHM": "EdDSA",
            "AUTHGATE_KEY_ENCRYPTION_KEY": "a" * 43,
            "AUTHGATE_PORT": str(authgate_port),
            "SITE_B_PORT": str(port),
        },
    )
    authgate = servers.start(env, port=authgate_port)
    site_b = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "site_b.py")],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        with (
            authgate.client() as auth,
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10, trust_env=False) as b,
        ):
            poll(
                lambda: _get_or_503(b, "/"),
                lambda r: r.status_code == 200,
                within_seconds=HANG_SECONDS,
            )
            assert sign_up(auth).status_code == 200
            body = sign_in(auth).json()
            served = b.get("/profile", headers={"Authorization": f"Bearer {body['accessToken']}"})
            assert served.status_code == 200, served.text
            assert served.json() == {"user": body["id"], "roles": ["user"]}
            forged = body["accessToken"][:-6] + "AAAAAA"
            assert b.get("/profile", headers={"x-access-token": forged}).status_code == 401
            assert (
                b.get("/admin", headers={"x-access-token": body["accessToken"]}).status_code == 403
            )
    finally:
        stop_process(site_b)


def _get_or_503(client: httpx.Client, path: str) -> httpx.Response:
    try:
        return client.get(path)
    except httpx.TransportError:
        return httpx.Response(503)


# -- revocation across two servers on PostgreSQL, with and without Redis -----------------


@pytest.fixture(scope="module")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests.databases import provision, release

    if not os.environ.get("AUTHGATE_TEST_POSTGRES_URL"):
        pytest.skip("postgresql: set AUTHGATE_TEST_POSTGRES_URL to run against it")
    provisioned = provision("postgresql", tmp_path_factory.mktemp("pg"))
    yield provisioned.url
    release(provisioned)


def _revocations(
    servers: Servers, workdir: Path, database_url: str, redis_url: str | None
) -> dict[str, float]:
    """Seconds until the second server refuses a token after each kind of revocation on the
    first (measured, reported; the assertion is only that it happens)."""
    settings = {
        "AUTHGATE_DATABASE_URL": database_url,
        "AUTHGATE_SIGNING_KEY": "shared-key-of-two-processes-0123456789abcdef",
    }
    if redis_url:
        # The database poll slowed to a minute: anything faster came through Redis.
        settings["AUTHGATE_REDIS_URL"] = redis_url
        settings["AUTHGATE_REVOCATION_POLL_MILLISECONDS"] = "60000"
    env = authgate_env(workdir, settings)
    first, second = servers.start(env), servers.start(env)
    lags: dict[str, float] = {}
    with first.client() as one, second.client() as two:
        username = f"u{secrets.token_hex(4)}"
        assert sign_up(one, username).status_code == 200

        def measure(name: str, revoke: Callable[[dict[str, Any]], httpx.Response]) -> None:
            body = sign_in(one, username).json()
            assert user_content(two, body["accessToken"]).status_code == 200
            started = time.monotonic()
            assert revoke(body).status_code == 200
            poll(
                lambda: user_content(two, body["accessToken"]),
                lambda response: response.status_code == 401,
                within_seconds=HANG_SECONDS,
            )
            lags[name] = time.monotonic() - started

        def auth(body: dict[str, Any]) -> dict[str, str]:
            return {"x-access-token": body["accessToken"]}

        measure(
            "sign-out",
            lambda b: one.post("/api/auth/signout", json={"refreshToken": b["refreshToken"]}),
        )
        measure(
            "sign-out everywhere",
            lambda b: one.post("/api/auth/signout-all", json={}, headers=auth(b)),
        )
        measure(
            "password change",
            lambda b: one.post(
                "/api/auth/password",
                json={"currentPassword": PASSWORD, "newPassword": PASSWORD},
                headers={"x-access-token": sign_in(one, username).json()["accessToken"]},
            ),
        )
    return lags


@pytest.mark.parametrize("with_redis", [False, True], ids=["database-only", "with-redis"])
def test_revocations_reach_another_server_on_postgresql(
    migrated: Path, servers: Servers, postgres_url: str, with_redis: bool
) -> None:
    if with_redis and not REDIS_URL:
        pytest.skip("redis: set AUTHGATE_TEST_REDIS_URL to run against it")
    migrate = run_authgate(
        migrated, authgate_env(migrated, {"AUTHGATE_DATABASE_URL": postgres_url}), "migrate"
    )
    assert migrate.returncode == 0, migrate.output
    lags = _revocations(servers, migrated, postgres_url, REDIS_URL if with_redis else None)
    print(f"revocation lag across processes: {lags}")
    assert set(lags) == {"sign-out", "sign-out everywhere", "password change"}


# -- operations -----------------------------------------------------------------------------


def test_metrics_add_up_across_two_workers(migrated: Path, servers: Servers) -> None:
    server = servers.start(authgate_env(migrated), "--workers", "2")
    with server.client(keep_alive=False) as client:  # new connections: both workers serve
        for _ in range(40):
            assert client.get("/api/test/all").status_code == 200
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json()["status"] == "ready"
        # 40, and the one with which Servers.start saw the server was ready. Each worker
        # adds its tally to the shared files at least every FLUSH_SECONDS.
        line = 'authgate_http_requests_total{method="GET",route="/api/test/all",status="200"} 41.0'
        deadline = time.monotonic() + HANG_SECONDS  # polled: it ends when the line comes
        while line not in (text := client.get("/metrics").text) and time.monotonic() < deadline:
            time.sleep(FLUSH_SECONDS / 5)
    assert line in text, text[:2000]


@pytest.mark.parametrize(
    ("server_name", "logger", "line"),
    [("granian", "_granian", "Listening at"), ("uvicorn", "uvicorn.error", "Uvicorn running on")],
)
def test_every_log_line_is_json(
    migrated: Path, servers: Servers, server_name: str, logger: str, line: str
) -> None:
    """The server's own lines included, and nothing on stdout; stopped as Ctrl-C stops it
    (SIGINT to the whole process group: supervisor, workers and hash processes)."""
    server = servers.start(authgate_env(migrated), "--server", server_name)
    with server.client() as client:
        assert sign_up(client).status_code == 200
        body = sign_in(client).json()
        answer = client.get("/api/test/user", headers={"x-access-token": body["accessToken"]})
        # TH-02 through the real server: Granian names itself, but never its version.
        assert not any(c.isdigit() for c in answer.headers.get("server", ""))
        assert "x-powered-by" not in answer.headers
    os.killpg(server.process.pid, signal.SIGINT)
    server.process.wait(STOP_TIMEOUT_SECONDS)
    records = [json.loads(line) for line in server.stderr.splitlines()]
    assert server.output == server.stderr  # stdout is empty
    assert all(isinstance(record, dict) for record in records)
    assert any(r.get("route") == "/api/test/user" and r.get("status") == 200 for r in records)
    own = [r["message"] for r in records if r["logger"] == logger]
    assert any(message.startswith(line) for message in own), own
    for secret in (PASSWORD, body["accessToken"], body["refreshToken"]):
        assert secret not in server.output


def test_readyz_follows_the_database_without_a_restart(
    migrated: Path, servers: Servers, postgres_url: str
) -> None:
    with Relay.in_front_of(postgres_url) as relay:
        env = authgate_env(
            migrated, {"AUTHGATE_DATABASE_URL": relay.url, "AUTHGATE_DB_TIMEOUT_SECONDS": "1"}
        )
        assert run_authgate(migrated, env, "migrate").returncode == 0
        server = servers.start(env)
        with server.client() as client:
            assert client.get("/readyz").status_code == 200
            relay.refuse()  # open connections reset, new ones too
            cut_at = time.monotonic()
            down = poll(
                lambda: client.get("/readyz"),
                lambda r: r.status_code == 503,
                within_seconds=HANG_SECONDS,
            )
            unready_after = time.monotonic() - cut_at
            assert down.json() == {"status": "unready", "checks": {"database": "unreachable"}}
            assert client.get("/healthz").status_code == 200  # alive, just not ready
            relay.forward()
            back_at = time.monotonic()
            poll(
                lambda: client.get("/readyz"),
                lambda r: r.status_code == 200,
                within_seconds=HANG_SECONDS,
            )
            ready_after = time.monotonic() - back_at
        server.stop()
    # Measured and reported, not asserted (the suite makes no timing assertions).
    print(f"readyz: unready {unready_after:.3f} s after the cut, ready {ready_after:.3f} s after")


def test_a_key_rotation_under_load_fails_no_request(migrated: Path, servers: Servers) -> None:
    """Two workers sign in and serve protected requests without pause while `authgate keys
    rotate` runs: no request fails, tokens from before keep working, new ones carry the new
    key once its publish delay has passed."""
    env = authgate_env(
        migrated,
        {
            "AUTHGATE_SIGNING_ALGORITHM": "EdDSA",
            "AUTHGATE_KEY_ENCRYPTION_KEY": "b" * 43,
            "AUTHGATE_KEY_PUBLISH_SECONDS": "2",
            "AUTHGATE_REVOCATION_POLL_MILLISECONDS": "200",
            "AUTHGATE_RATE_LIMIT_SIGN_IN_PER_ADDRESS": "100000/minute",
        },
    )
    server = servers.start(env, "--workers", "2")
    with server.client() as client:
        assert sign_up(client).status_code == 200
        before = sign_in(client).json()["accessToken"]
    failures: list[str] = []
    kids: set[str] = set()
    stop = threading.Event()

    def load() -> None:
        with server.client(keep_alive=False) as worker_client:
            while not stop.is_set():
                answer = sign_in(worker_client)
                if answer.status_code != 200:
                    failures.append(f"sign-in {answer.status_code}")
                    continue
                token = answer.json()["accessToken"]
                kids.add(_header(token)["kid"])
                for presented in (token, before):
                    served = user_content(worker_client, presented)
                    if served.status_code != 200:
                        failures.append(f"user {served.status_code} {served.text}")

    thread = threading.Thread(target=load)
    thread.start()
    try:
        time.sleep(0.5)
        rotated = run_authgate(migrated, env, "keys", "rotate")
        assert rotated.returncode == 0, rotated.output
        deadline = time.monotonic() + 15
        while len(kids) < 2 and time.monotonic() < deadline and thread.is_alive():
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(30)
    assert failures == []
    assert len(kids) == 2  # the old key, then the new one


def _header(token: str) -> dict[str, Any]:
    part = token.split(".")[0]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded
