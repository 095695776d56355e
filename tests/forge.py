"""Hand-made JWTs for attacks: built with hmac and base64 only, independent of the JOSE library."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from tests.conftest import TEST_KEY

NOW = 1_800_000_000


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: Any) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return b64(raw)


def claims(**overrides: Any) -> dict[str, Any]:
    """Valid claims for user 1 at the FakeClock's start, with ``overrides`` (None deletes)."""
    base: dict[str, Any] = {
        "iss": "authgate",
        "aud": "authgate",
        "sub": "1",
        "sid": "0" * 32,
        "jti": "forged-jti",
        "iat": NOW,
        "nbf": NOW,
        "exp": NOW + 900,
        "roles": ["user"],
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(
    header: Any, payload: Any, key: bytes | str = TEST_KEY, digest: Any = hashlib.sha256
) -> str:
    signing_input = f"{segment(header)}.{segment(payload)}"
    secret = key.encode() if isinstance(key, str) else key
    signature = hmac.new(secret, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64(signature)}"


def token(**overrides: Any) -> str:
    """A correctly signed access token, as authgate would issue it, with claim overrides."""
    return sign({"alg": "HS256", "typ": "at+jwt"}, claims(**overrides))


#: The order n of P-256: an ES256 signature (r, s) also verifies as (r, n - s).
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def es256_s(token: str) -> int:
    """The ``s`` half of a compact ES256 token's signature."""
    signature = token.rsplit(".", 1)[1]
    return int.from_bytes(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))[32:])


def flip_s(token: str) -> str:
    """The same ES256 token with ``s`` replaced by ``n - s``: mathematically still valid."""
    signing_input, signature = token.rsplit(".", 1)
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    flipped = raw[:32] + (P256_ORDER - int.from_bytes(raw[32:])).to_bytes(32)
    return f"{signing_input}.{b64(flipped)}"
