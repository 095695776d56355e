"""What the HTTP layer was configured with: built once from Settings, frozen, handed to the app.

Settings travel one way: read once by the entry points, passed to constructors. The HTTP
layer's share is this object, made by :meth:`HttpOptions.from_settings` when the app is
built; handlers and the cookie transport find it with :func:`options_of`, as they find
the service, and never read Settings themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from authgate.config import Settings


@dataclass(frozen=True)
class CookieOptions:
    """The browser transport (``cookies.py``): whether it is offered, and how its cookies
    are set. The access cookie lives exactly as long as the access token."""

    enabled: bool
    secure: bool
    samesite: Literal["strict", "lax", "none"]
    access_max_age_seconds: int
    refresh_max_age_seconds: int


@dataclass(frozen=True)
class BodyLimits:
    """How much of a request body is read (413 past it), and for how long (408)."""

    max_bytes: int
    timeout_seconds: float


@dataclass(frozen=True)
class Publishing:
    """What the published key set and the discovery document say, and how long they are
    cached (no longer than a new key waits before it signs)."""

    issuer: str
    signing_algorithm: str
    public_url: str | None
    max_age_seconds: int


@dataclass(frozen=True)
class Probes:
    """``/metrics``: the bearer token scrapers present (else loopback clients only). What
    ``/readyz`` checks, and how long it waits, is ``Upkeep``'s (``runtime.build_services``)."""

    metrics_token: str | None


@dataclass(frozen=True)
class HttpOptions:
    cookies: CookieOptions
    bodies: BodyLimits
    publishing: Publishing
    probes: Probes

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpOptions:
        return cls(
            cookies=CookieOptions(
                enabled=settings.cookie_transport,
                secure=settings.cookie_secure,
                samesite=settings.cookie_samesite,
                # The token codec's lifetime (runtime.build_services), from the same setting.
                access_max_age_seconds=settings.access_token_ttl_seconds,
                refresh_max_age_seconds=settings.refresh_token_ttl_seconds,
            ),
            bodies=BodyLimits(settings.max_body_bytes, settings.body_timeout_seconds),
            publishing=Publishing(
                issuer=settings.issuer,
                signing_algorithm=settings.signing_algorithm,
                public_url=settings.public_url,
                max_age_seconds=settings.jwks_max_age_seconds,
            ),
            probes=Probes(metrics_token=settings.metrics_token),
        )


def options_of(connection: Mapping[str, Any]) -> HttpOptions:
    """The options of the app serving ``connection``: an ASGI scope, or a ``Request``
    (a mapping over its scope)."""
    options: HttpOptions = connection["app"].options
    return options
