"""Settings: every knob, read once from ``AUTHGATE_*`` variables (and ``.env``), frozen."""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import math
import os
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin, get_type_hints

import msgspec
from dotenv import dotenv_values

from authgate.errors import ConfigurationError

PREFIX = "AUTHGATE_"
#: The test suite's own variables (database URLs for CI); never settings.
TEST_PREFIX = "AUTHGATE_TEST_"

#: Signing keys that appear in tutorials and templates; never acceptable.
KNOWN_WEAK_KEYS = frozenset(
    {"bezkoder-secret-key", "secret", "changeme", "change-me", "your-256-bit-secret", "jwt-secret"}
)
MIN_SIGNING_KEY_BYTES = 32
#: A secret's characters must be at least this varied (Shannon's estimate over the key's own
#: characters, in bits per character): as varied as eight equally used characters. Keys of
#: `secrets.token_urlsafe(32)`, `openssl rand -base64 32` and `openssl rand -hex 32` measure
#: 3.3 to 5.2; "k" * 40 measures 0 and "abcd" * 10 measures 2.
MIN_SECRET_BITS_PER_CHARACTER = 3.0
#: Trusted-proxy networks must be at least this narrow, so no entry trusts everyone:
#: IPv4 /8 (10.0.0.0/8 is fine), IPv6 /7 (fc00::/7 is fine), and IPv4-mapped IPv6 /104.
MIN_PROXY_PREFIX = {4: 8, 6: 7}
_IPV4_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
#: An origin as browsers send it: scheme, host, optional port; no path, no ``null``.
_ORIGIN = re.compile(r"^https?://[^/?#@\s]+$")

Seconds = Annotated[int, msgspec.Meta(ge=1, le=10 * 365 * 86400)]
Positive = Annotated[int, msgspec.Meta(ge=1)]


@dataclass(frozen=True)
class Settings:
    """Every configurable value; build with :meth:`from_env`, then pass it down."""

    env: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8080
    workers: Annotated[int, msgspec.Meta(ge=1, le=64)] = 1
    data_dir: str = "data"
    database_url: str = ""
    signing_key: str | None = field(default=None, repr=False)
    signing_algorithm: Literal["HS256", "EdDSA", "ES256", "RS256"] = "HS256"
    key_encryption_key: str | None = field(default=None, repr=False)
    token_encryption_key: str | None = field(default=None, repr=False)
    jwks_max_age_seconds: Annotated[int, msgspec.Meta(ge=0, le=86400)] = 300
    key_publish_seconds: Annotated[int, msgspec.Meta(ge=0, le=7 * 86400)] = 600
    public_url: str | None = None
    reauthentication_window_seconds: Annotated[int, msgspec.Meta(ge=0, le=86400)] = 300
    purge_interval_seconds: Annotated[int, msgspec.Meta(ge=0, le=7 * 86400)] = 3600
    cookie_transport: bool = False
    cookie_secure: bool = True
    cookie_samesite: Literal["strict", "lax", "none"] = "lax"
    issuer: str = "authgate"
    audience: str = "authgate"
    access_token_ttl_seconds: Annotated[int, msgspec.Meta(ge=1, le=86400)] = 900
    refresh_token_ttl_seconds: Seconds = 7 * 86400
    #: A refresh token unused this long expires; capped by the absolute lifetime above.
    refresh_token_idle_ttl_seconds: Seconds = 7 * 86400
    refresh_rotation: bool = True
    #: Within this many seconds of a refresh, presenting the same (parent) token again returns
    #: the same successor instead of revoking the session, while that successor is unused: a
    #: client whose answer was lost keeps its session. 0 turns it off (docs/sessions.md).
    refresh_grace_seconds: Annotated[int, msgspec.Meta(ge=0, le=60)] = 30
    #: Seconds an access token is still accepted after its ``exp``. authgate checks tokens it
    #: issued itself, so none by default: a token stops working when its client expects.
    clock_leeway_seconds: Annotated[int, msgspec.Meta(ge=0, le=300)] = 0
    #: The answer to a protected request that carries no token at all: 401 (RFC 6750), or
    #: 403 as the tutorial (its Angular client waits forever on a 401 it cannot refresh).
    missing_token_status: Literal[401, 403] = 401
    cors_origins: tuple[str, ...] = ()
    password_min_length: Annotated[int, msgspec.Meta(ge=1, le=128)] = 8
    password_max_length: Annotated[int, msgspec.Meta(ge=64, le=1024)] = 128
    argon2_memory_kib: Annotated[int, msgspec.Meta(ge=8)] = 19456
    argon2_time_cost: Positive = 2
    argon2_parallelism: Positive = 1
    hash_concurrency: Annotated[int, msgspec.Meta(ge=0)] = 0
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 64 * 1024
    #: A request body must arrive whole within this many seconds once its reading starts.
    body_timeout_seconds: Annotated[int, msgspec.Meta(ge=1, le=300)] = 10
    max_token_bytes: Annotated[int, msgspec.Meta(ge=256, le=65536)] = 4096
    token_cache_size: Annotated[int, msgspec.Meta(ge=0)] = 10_000
    db_pool_size: Positive = 10
    db_timeout_seconds: Positive = 3
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: One JSON line per request (method, route, status, latency, request id, client).
    access_log: bool = True
    #: Proxies whose X-Forwarded-For is believed (addresses or networks, comma-separated).
    trusted_proxies: tuple[str, ...] = ()
    #: Bearer token for /metrics; without one, /metrics answers loopback clients only.
    metrics_token: str | None = field(default=None, repr=False)
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    #: TLS ends at a proxy in front of authgate: send HSTS, allow production cookies.
    behind_tls_proxy: bool = False
    redis_url: str | None = None
    revocation_poll_milliseconds: Annotated[int, msgspec.Meta(ge=50, le=60_000)] = 500
    rate_limit_sign_in_per_address: str = "30/minute"
    #: Wrong passwords from one address for one account: this address's lock-out only.
    rate_limit_sign_in_failures_per_account_and_address: str = "10/15 minutes"
    #: Wrong passwords for one account from all addresses together (NIST SP 800-63B and
    #: ASVS allow at most 100); not applied to an address that signed in to it before.
    rate_limit_sign_in_failures_per_account: str = "100/hour"
    #: How long an address that signed in successfully stays exempt from that ceiling.
    rate_limit_known_address_seconds: Annotated[int, msgspec.Meta(ge=0, le=365 * 86400)] = (
        30 * 86400
    )
    rate_limit_sign_up_per_address: str = "20/hour"
    rate_limit_refresh_per_address: str = "120/minute"

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, dotenv: str | Path | None = ".env"
    ) -> Settings:
        """Read ``AUTHGATE_*`` from ``dotenv`` (if it exists), then the environment, which wins."""
        raw: dict[str, str] = {}
        if dotenv is not None and Path(dotenv).is_file():
            raw.update({k: v for k, v in dotenv_values(dotenv).items() if v is not None})
        raw.update(os.environ if environ is None else environ)
        return cls.from_mapping(
            {
                k[len(PREFIX) :].lower(): v
                for k, v in raw.items()
                if k.startswith(PREFIX) and not k.startswith(TEST_PREFIX)
            }
        )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Settings:
        """Validate already-named values (``{"access_token_ttl_seconds": "60"}``)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigurationError(
                "Unknown setting " + ", ".join(_unknown(name, known) for name in unknown) + "."
            )
        data = dict(values)
        if isinstance(data.get("log_level"), str):
            data["log_level"] = data["log_level"].upper()  # "warning" is as clear as "WARNING"
        for name in ("cors_origins", "trusted_proxies"):
            listed = data.get(name)
            if isinstance(listed, str):
                data[name] = tuple(o.strip() for o in listed.split(",") if o.strip())
        for name in (
            "signing_key",
            "database_url",
            "redis_url",
            "key_encryption_key",
            "token_encryption_key",
            "public_url",
            "metrics_token",
            "tls_cert_file",
            "tls_key_file",
        ):
            if data.get(name) == "":
                data.pop(name)
        try:
            settings = msgspec.convert(data, cls, strict=False)
        except msgspec.ValidationError as error:
            raise ConfigurationError(_explain(error, values)) from None
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse combinations that are individually valid but unsafe together."""
        if self.signing_key is not None:
            if self.signing_key.lower() in KNOWN_WEAK_KEYS:
                raise ConfigurationError(
                    f"{PREFIX}SIGNING_KEY is a well-known default; generate a random one."
                )
            if len(self.signing_key.encode()) < MIN_SIGNING_KEY_BYTES:
                raise ConfigurationError(
                    f"{PREFIX}SIGNING_KEY must be at least {MIN_SIGNING_KEY_BYTES} random bytes."
                )
            if not looks_random(self.signing_key):
                raise ConfigurationError(
                    f"{PREFIX}SIGNING_KEY repeats too few characters to be random; generate "
                    "one (e.g. `openssl rand -base64 48`)."
                )
        elif self.env == "production" and self.signing_algorithm == "HS256":
            raise ConfigurationError(
                f"{PREFIX}SIGNING_KEY is required when {PREFIX}ENV=production "
                f"(at least {MIN_SIGNING_KEY_BYTES} random bytes, e.g. `openssl rand -base64 48`)."
            )
        if (
            self.env == "production"
            and self.signing_algorithm != "HS256"
            and self.key_encryption_key is None
        ):
            raise ConfigurationError(
                f"{PREFIX}KEY_ENCRYPTION_KEY is required when {PREFIX}ENV=production: it seals "
                "the private signing keys in the database."
            )
        if self.cookie_samesite == "none" and not self.cookie_secure:
            raise ConfigurationError(
                f"{PREFIX}COOKIE_SAMESITE=none needs {PREFIX}COOKIE_SECURE=true "
                "(browsers refuse it otherwise)."
            )
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ConfigurationError(f"{PREFIX}TLS_CERT_FILE and {PREFIX}TLS_KEY_FILE go together.")
        if self.env == "production" and self.cookie_transport and not self.tls:
            raise ConfigurationError(
                f"{PREFIX}COOKIE_TRANSPORT in production needs TLS: set {PREFIX}TLS_CERT_FILE "
                f"and {PREFIX}TLS_KEY_FILE, or {PREFIX}BEHIND_TLS_PROXY=true."
            )
        for proxy in self.trusted_proxies:
            _check_proxy(proxy)
        if "*" in self.cors_origins:
            raise ConfigurationError(
                f"{PREFIX}CORS_ORIGINS must list exact origins; '*' is refused."
            )
        for origin in self.cors_origins:
            if origin.lower() == "null":
                raise ConfigurationError(
                    f"{PREFIX}CORS_ORIGINS: 'null' is refused: it is the origin of sandboxed "
                    "frames and local files, which anyone can create."
                )
            if not _ORIGIN.fullmatch(origin):
                raise ConfigurationError(
                    f"{PREFIX}CORS_ORIGINS: {origin!r} is not an origin; list each as "
                    "scheme://host[:port] (e.g. https://app.example), without a path."
                )
        if self.password_min_length > self.password_max_length:
            raise ConfigurationError(
                f"{PREFIX}PASSWORD_MIN_LENGTH exceeds {PREFIX}PASSWORD_MAX_LENGTH."
            )

    @property
    def tls(self) -> bool:
        """Whether clients reach authgate over TLS (its own, or a proxy's)."""
        return self.tls_cert_file is not None or self.behind_tls_proxy

    @property
    def resolved_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file in the data directory."""
        return self.database_url or f"sqlite:///{Path(self.data_dir) / 'authgate.db'}"

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied and validated like the environment's values."""
        return Settings.from_mapping({**dataclasses.asdict(self), **changes})


def looks_random(secret: str) -> bool:
    """Whether a secret's characters are varied enough (``MIN_SECRET_BITS_PER_CHARACTER``).

    A screen for placeholders and repeated characters, not a measure of real entropy: no
    test over one string can tell a random key from a clever pattern.
    """
    if not secret:
        return False
    counts = Counter(secret).values()
    bits = -sum(n / len(secret) * math.log2(n / len(secret)) for n in counts)
    return bits >= MIN_SECRET_BITS_PER_CHARACTER


def _check_proxy(proxy: str) -> None:
    """An address or a network narrow enough not to trust everyone."""
    try:
        network = ipaddress.ip_network(proxy, strict=False)
    except ValueError:
        raise ConfigurationError(
            f"{PREFIX}TRUSTED_PROXIES: {proxy!r} is not an address or network."
        ) from None
    shortest = MIN_PROXY_PREFIX[network.version]
    if network.version == 6 and network.overlaps(_IPV4_MAPPED):
        shortest = 96 + MIN_PROXY_PREFIX[4]
    if network.prefixlen < shortest:
        raise ConfigurationError(
            f"{PREFIX}TRUSTED_PROXIES: {proxy!r} is too wide (shorter than /{shortest}): "
            "it would believe X-Forwarded-For from almost anyone. List your proxies' own "
            "addresses or networks."
        )


def _unknown(name: str, known: set[str]) -> str:
    """``AUTHGATE_NAME``, with the closest valid name when one is close enough."""
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {PREFIX}{close[0].upper()}?)" if close else ""
    return f"{PREFIX}{name.upper()}{hint}"


def _explain(error: msgspec.ValidationError, given: Mapping[str, Any]) -> str:
    """Turn msgspec's ``... - at `$.port``` into a message naming the variable and, for a
    switch or a choice, what it accepts."""
    text = str(error)
    message, _, where = text.rpartition(" - at `$.")
    if not where:
        return f"Invalid configuration: {text}"
    name = where.rstrip("`").split("[")[0].split(".")[0]
    accepted = _accepted(name, message)
    if accepted is not None:
        return f"{PREFIX}{name.upper()}: expected {accepted}; got {given.get(name)!r}."
    return f"{PREFIX}{name.upper()}: {message}"


def _accepted(name: str, message: str) -> str | None:
    """What a setting accepts, in words, when msgspec's ``message`` names only a type: a
    switch, a choice, a number. None when msgspec's own words are clear (``>= 1``)."""
    kind = _FIELD_TYPES.get(name)
    if kind is bool:
        return "`true` or `false`"
    if get_origin(kind) is Literal:
        choices = "one of " + ", ".join(f"`{choice}`" for choice in get_args(kind))
        return choices + " (in any case)" if name == "log_level" else choices
    if kind is int and message.startswith("Expected `int`, got"):
        return "a whole number"
    return None


_FIELD_TYPES: dict[str, Any] = {
    name: get_args(hint)[0] if get_origin(hint) is Annotated else hint
    for name, hint in get_type_hints(Settings, include_extras=True).items()
}
