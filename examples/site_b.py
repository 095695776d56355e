"""Site B: a second service that trusts authgate's tokens with nothing but its public keys.

    make example        # authgate (EdDSA) on :8080 and this service on :8082

or, with authgate already serving EdDSA tokens:

    SITE_B_AUTHGATE_URL=http://127.0.0.1:8080 python examples/site_b.py

Site B's own settings are ``SITE_B_*``, outside authgate's namespace (authgate refuses an
unknown ``AUTHGATE_*`` name), so one environment can start both: ``SITE_B_AUTHGATE_URL``
(default ``http://127.0.0.1:$AUTHGATE_PORT``, port 8080 when that is unset) and
``SITE_B_PORT`` (8082). It reads authgate's ``AUTHGATE_ISSUER``, ``AUTHGATE_AUDIENCE`` and
``AUTHGATE_ACCESS_TOKEN_TTL_SECONDS`` so that it checks what authgate issues.

Then sign in at authgate and call ``GET http://127.0.0.1:8082/profile`` with the access
token in ``Authorization: Bearer`` or ``x-access-token``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

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


@dataclass(frozen=True)
class SiteSettings:
    authgate_url: str
    port: int
    issuer: str
    audience: str
    max_lifetime_seconds: int

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> SiteSettings:
        authgate_port = environ.get("AUTHGATE_PORT", "8080")
        return cls(
            authgate_url=environ.get(
                "SITE_B_AUTHGATE_URL", f"http://127.0.0.1:{authgate_port}"
            ).rstrip("/"),
            port=int(environ.get("SITE_B_PORT", "8082")),
            issuer=environ.get("AUTHGATE_ISSUER", "authgate"),
            audience=environ.get("AUTHGATE_AUDIENCE", "authgate"),
            max_lifetime_seconds=int(environ.get("AUTHGATE_ACCESS_TOKEN_TTL_SECONDS", "900")),
        )


def main() -> None:
    settings = SiteSettings.from_environ(os.environ)
    verifier = Verifier(
        f"{settings.authgate_url}/.well-known/jwks.json",
        issuer=settings.issuer,
        audience=settings.audience,
        max_lifetime_seconds=settings.max_lifetime_seconds,
    )
    uvicorn.run(create_app(verifier), host="127.0.0.1", port=settings.port, log_level="warning")


if __name__ == "__main__":
    main()
