"""The baseline: the smallest Starlette app on Granian that answers GET /api/test/all.

Every figure of the benchmark is a ratio to this app, served with the same Granian
options and worker count as authgate (``authgate serve --server granian``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def public_content(_request: Request) -> PlainTextResponse:
    return PlainTextResponse("Public Content.")


app = Starlette(routes=[Route("/api/test/all", public_content, methods=["GET"])])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)

    from granian import Granian
    from granian.constants import Interfaces

    Granian(
        "baseline_app:app",
        address=args.host,
        port=args.port,
        interface=Interfaces.ASGI,
        workers=args.workers,
        log_access=False,
        working_dir=Path(__file__).resolve().parent,
    ).serve()


if __name__ == "__main__":
    main()
