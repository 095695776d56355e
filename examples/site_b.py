"""Site B: a second service that trusts authgate's tokens with nothing but its public keys.

    make example        # authgate (EdDSA) on :8080 and this service on :8082

or, with authgate already serving EdDSA tokens:

    AUTHGATE_URL=http://127.0.0.1:8080 python examples/site_b.py

Then sign in at authgate and call ``GET http://127.0.0.1:8082/profile`` with the access
token in ``Authorization: Bearer`` or ``x-access-token``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from authgate.verify import AuthgateMiddleware, Verifier, authenticate


def create_app(verifier: Verifier) -> Starlette:
    async def home(_request: Request) -> Response:
        return PlainTextResponse("Site B: public content.")

    async def profile(request: Request) -> Response:
        claims = await authenticate(request, verifier)
        return JSONResponse({"user": claims.user_id, "roles": sorted(claims.roles)})

    async def admin(request: Request) -> Response:
        await authenticate(request, verifier, role="admin")
        return PlainTextResponse("Site B: admin content.")

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await verifier.aclose()

    return Starlette(
        routes=[Route("/", home), Route("/profile", profile), Route("/admin", admin)],
        middleware=[Middleware(AuthgateMiddleware, verifier=verifier)],
        lifespan=lifespan,
    )


def main() -> None:
    authgate = os.environ.get("AUTHGATE_URL", "http://127.0.0.1:8080").rstrip("/")
    verifier = Verifier(
        f"{authgate}/.well-known/jwks.json",
        issuer=os.environ.get("AUTHGATE_ISSUER", "authgate"),
        audience=os.environ.get("AUTHGATE_AUDIENCE", "authgate"),
        max_lifetime_seconds=int(os.environ.get("AUTHGATE_ACCESS_TOKEN_TTL_SECONDS", "900")),
    )
    port = int(os.environ.get("SITE_B_PORT", "8082"))
    uvicorn.run(create_app(verifier), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
