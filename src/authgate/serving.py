"""``authgate serve``: a supervising process and the worker processes that answer.

The supervisor (Granian's or uvicorn's) replaces a worker that dies; a worker stops when its
supervisor dies; a listening address that something else holds is refused before anything
starts; the command line's overrides reach every worker through the environment.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import errno
import multiprocessing
import os
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from authgate.config import PREFIX, Settings
from authgate.errors import ConfigurationError

if TYPE_CHECKING:
    from starlette.applications import Starlette

Server = Literal["granian", "uvicorn"]

#: What each worker process calls for its app (both servers import it by name).
WORKER_FACTORY = "authgate.serving:worker_app"
#: How long uvicorn's supervisor waits for a worker's answer before replacing it.
WORKER_PING_TIMEOUT_SECONDS = 15
#: Linux's prctl(2) option: the signal a process gets when the thread that started it exits.
_PR_SET_PDEATHSIG = 1


def export(overrides: Mapping[str, str | int]) -> None:
    """Put command-line overrides where the workers read their settings: each worker
    builds its own ``Settings.from_env()``, and a flag would otherwise stay in this process."""
    for name, value in overrides.items():
        os.environ[PREFIX + name.upper()] = str(value)


def check(settings: Settings) -> None:
    """What would stop every worker, found before any starts: a busy address, and TLS
    files that do not load (uvicorn's workers would fail on them and be replaced forever)."""
    check_address(settings.host, settings.port)
    if settings.tls_cert_file and settings.tls_key_file:
        try:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
        except (OSError, ssl.SSLError) as error:
            raise ConfigurationError(
                f"{PREFIX}TLS_CERT_FILE and {PREFIX}TLS_KEY_FILE do not load: "
                f"{error.strerror or error}."
            ) from None


def start_up_warnings(settings: Settings) -> list[str]:
    """Settings that work, but not as their users would expect; ``serve`` logs each."""
    found = []
    ttl, leeway = settings.access_token_ttl_seconds, settings.clock_leeway_seconds
    # A leeway near the lifetime keeps expired tokens working, and clients refresh only
    # when a token is refused: with a 3-second lifetime and 30 of leeway, none ever is.
    if leeway and leeway * 4 >= ttl:
        found.append(
            f"{PREFIX}CLOCK_LEEWAY_SECONDS={leeway} is not well below "
            f"{PREFIX}ACCESS_TOKEN_TTL_SECONDS={ttl}: access tokens are accepted for "
            f"{ttl + leeway} s, and clients refresh only once one is refused. Keep the leeway "
            "under a quarter of the lifetime (0, the default, suits authgate's own checks)."
        )
    return found


def check_address(host: str, port: int) -> None:
    """Refuse an address that something already listens on.

    Granian's workers bind with SO_REUSEPORT, so a second server on a busy port would start
    and quietly take part of the traffic. A probe bound without SO_REUSEPORT fails while
    anything listens there, with that option or without it; SO_REUSEADDR lets it ignore the
    closed connections a stopped server leaves in TIME_WAIT.
    """
    if port == 0:
        return  # the system picks a free port
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise ConfigurationError(f"Cannot listen on {host}: {error.strerror}.") from None
    family, kind, protocol, _, address = found[0]
    with socket.socket(family, kind, protocol) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            if error.errno == errno.EADDRINUSE:
                raise ConfigurationError(
                    f"{where} is already in use; stop what listens there or choose another port."
                ) from None
            raise ConfigurationError(f"Cannot listen on {where}: {error.strerror}.") from None


def serve(settings: Settings, server: Server) -> None:
    """Run until stopped: Granian (the default) or uvicorn, each supervising its workers."""
    if server == "uvicorn":
        _serve_uvicorn(settings)
    else:
        _serve_granian(settings)


def _serve_granian(settings: Settings) -> None:
    from granian import Granian
    from granian.constants import Interfaces
    from granian.log import LogLevels

    from authgate.logs import GRANIAN_LOGGING

    Granian(
        WORKER_FACTORY,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        workers=settings.workers,
        factory=True,
        log_access=False,
        log_level=LogLevels(settings.log_level.lower()),
        log_dictconfig=copy.deepcopy(GRANIAN_LOGGING),
        # A worker that dies (killed, out of memory) is replaced; only one that dies again
        # within seconds of its replacement (a crash loop) stops the server.
        respawn_failed_workers=True,
        ssl_cert=Path(settings.tls_cert_file) if settings.tls_cert_file else None,
        ssl_key=Path(settings.tls_key_file) if settings.tls_key_file else None,
    ).serve()


def _serve_uvicorn(settings: Settings) -> None:
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(
        WORKER_FACTORY,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        factory=True,
        server_header=False,
        access_log=False,
        log_config=None,
        ssl_certfile=settings.tls_cert_file,
        ssl_keyfile=settings.tls_key_file,
        # The supervisor replaces a worker that does not answer its ping within this. A new
        # worker answers once it has imported its parent's main module (authgate.cli, kept
        # light for this); on a busy machine that passed uvicorn's default of 5 s, and every
        # worker was replaced before it could start. A killed worker is seen at once.
        timeout_worker_healthcheck=WORKER_PING_TIMEOUT_SECONDS,
    )
    # uvicorn.run serves one worker in its own process; its supervisor, which replaces a
    # dead worker, runs only for several. Always supervise, as Granian does.
    supervisor = Multiprocess(config, sockets=[config.bind_socket()])
    supervisor.run()
    if any(worker.exitcode == STARTUP_FAILURE for worker in supervisor.processes):
        raise SystemExit(1)  # a worker could not start: fail, as Granian does


def worker_app() -> Starlette:
    """A worker's app: settings from the environment, and the worker tied to its parent."""
    from authgate.http.app import app_from_env

    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid is not None:
        _follow(parent.pid)
    return app_from_env()


def _follow(parent_pid: int) -> None:
    """Stop (SIGTERM, a graceful shutdown) when the supervisor dies, however it dies:
    a worker left behind would go on answering on the port with nobody replacing it.

    On Linux the kernel sends the signal the moment the parent dies. Everywhere, a thread
    watches too, and ends the process outright ``ORPHAN_GRACE_SECONDS`` after the parent is
    gone, should the graceful shutdown not finish: once, under load, a Granian worker
    signalled this way was still running minutes later."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    if os.getppid() != parent_pid:  # it died before the line above
        os.kill(os.getpid(), signal.SIGTERM)


#: How long an orphaned worker may take over its graceful shutdown before it is ended.
ORPHAN_GRACE_SECONDS = 10


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(1)
    if sys.platform != "linux":  # on Linux the kernel has sent it already
        with contextlib.suppress(ProcessLookupError):
            os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(ORPHAN_GRACE_SECONDS)
    os._exit(1)  # its hash processes end with their stdin
