"""The headers every answer carries, built once; ``Observe`` applies them as it sends."""

from __future__ import annotations

from collections.abc import Iterable

Headers = list[tuple[bytes, bytes]]

_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"referrer-policy", b"no-referrer"),
]
# Answers may carry tokens or user data: never cached, unless a route says otherwise
# (the public key set does).
_NO_STORE = [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]
_HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
_REPLACED = {name for name, _ in _SECURITY_HEADERS} | {b"server", b"x-powered-by"}


class ResponseHeaders:
    def __init__(self, *, hsts: bool = False) -> None:
        # Only where clients reach us over TLS; over plain HTTP it would be meaningless.
        self._always = _SECURITY_HEADERS + ([_HSTS] if hsts else [])

    def apply(self, headers: Iterable[tuple[bytes, bytes]], request_id: bytes) -> Headers:
        """A route's headers, less any it may not set, plus ours and the request id."""
        kept: Headers = []
        cached = False
        for name, value in headers:
            lowered = name.lower()
            if lowered in _REPLACED:
                continue
            cached = cached or lowered == b"cache-control"
            kept.append((lowered, value))
        kept += self._always
        if not cached:
            kept += _NO_STORE
        kept.append((b"x-request-id", request_id))
        return kept
