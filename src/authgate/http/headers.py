"""Security headers on every response, as a plain ASGI middleware (no per-request objects)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        # Only where clients reach us over TLS; over plain HTTP it would be meaningless.
        self._always = _SECURITY_HEADERS + ([_HSTS] if hsts else [])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", ()) if k.lower() not in _REPLACED
                ]
                cached = any(k.lower() == b"cache-control" for k, _ in headers)
                message["headers"] = headers + self._always + ([] if cached else _NO_STORE)
            await send(message)

        await self.app(scope, receive, send_with_headers)
