"""Signing keys: generated, sealed at rest, published, and held in the ring tokens use.

With ``tokens.py`` this is the home of the JOSE library: here for key material,
there for token formats. The one direct use of ``cryptography`` (under joserfc) is
``Sealer``, where a JWE would cost ten times as much on every refresh.

A key's life, by its timestamps (see ``signing.py`` for rotation):

    published at creation ─► signs from ``activates_at`` ─► superseded by the next key
    ─► verifies until ``retires_at`` (every token it signed has expired) ─► gone
"""

from __future__ import annotations

import json
import os
import warnings
from base64 import urlsafe_b64decode, urlsafe_b64encode
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc import jwe
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, Key, OctKey, OKPKey, RSAKey, import_key

from authgate.errors import ConfigurationError
from authgate.models import Clock

Algorithm = Literal["HS256", "EdDSA", "ES256", "RS256"]
ASYMMETRIC: frozenset[str] = frozenset({"EdDSA", "ES256", "RS256"})

# RFC 9864 prefers the name "Ed25519"; "EdDSA" is what JWT libraries in every language
# verify today, so authgate keeps it, knowingly.
warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)

_SEAL = {"alg": "dir", "enc": "A256GCM", "cty": "jwk+json"}


def generate(algorithm: str) -> Key:
    """A fresh private key for ``algorithm`` (an asymmetric one)."""
    if algorithm == "EdDSA":
        return OKPKey.generate_key("Ed25519")
    if algorithm == "ES256":
        return ECKey.generate_key("P-256")
    if algorithm == "RS256":
        return RSAKey.generate_key(3072)
    raise ConfigurationError(f"authgate does not generate {algorithm} keys.")


def seal(key: Key, kek: bytes) -> str:
    """The private JWK, encrypted with the key-encryption key (compact JWE, dir/A256GCM)."""
    plaintext = json.dumps(key.as_dict(private=True)).encode()
    return jwe.encrypt_compact(_SEAL, plaintext, OctKey.import_key(kek))


def unseal(sealed: str, kek: bytes) -> Key:
    try:
        opened = jwe.decrypt_compact(sealed, OctKey.import_key(kek), algorithms=["dir", "A256GCM"])
    except (JoseError, ValueError) as error:
        raise ConfigurationError(
            "A signing key in the database cannot be opened with AUTHGATE_KEY_ENCRYPTION_KEY "
            "(was the key-encryption key changed?)."
        ) from error
    return import_key(json.loads(opened.plaintext or b"{}"))


def public_json(key: Key) -> str:
    return json.dumps(key.as_dict(private=False))


def public_thumbprint(public_jwk: str) -> str:
    return thumbprint(import_key(json.loads(public_jwk)))


class Sealer:
    """Short secrets sealed under a 32-byte key with AES-256-GCM, written as base64url
    (nonce, ciphertext, tag): the successor a refresh's grace window repeats.

    A few µs a seal (a compact JWE took about 30), paid on every refresh. The nonce is 96
    random bits: a seal is cleared when its token is spent or by the purge, so the seals
    that exist at one time are far too few for two to share a nonce."""

    def __init__(self, secret: bytes) -> None:
        self._aead = AESGCM(secret)

    def seal(self, data: bytes) -> str:
        nonce = os.urandom(12)
        return urlsafe_b64encode(nonce + self._aead.encrypt(nonce, data, None)).decode()

    def open(self, sealed: str) -> bytes | None:
        """The data, or None if ``sealed`` is not ours (another key, altered, not base64)."""
        try:
            raw = urlsafe_b64decode(sealed)
            return self._aead.decrypt(raw[:12], raw[12:], None)
        except (InvalidTag, ValueError):
            return None


def thumbprint(key: Key) -> str:
    """RFC 7638 thumbprint; a key's id. For an HS256 secret it reveals nothing: a hash of
    256 random bits."""
    return key.thumbprint()[:22]


@dataclass(frozen=True)
class SigningKey:
    """One key as the ring holds it: private where this process may sign with it."""

    kid: str
    algorithm: str
    key: Key
    activates_at: int
    #: None while no successor exists; then the moment its last token has expired.
    retires_at: int | None = None

    def public_jwk(self) -> dict[str, str] | None:
        if self.algorithm not in ASYMMETRIC:
            return None  # a shared secret is never published
        public = {k: v for k, v in self.key.as_dict(private=False).items() if isinstance(v, str)}
        return {
            **public,
            "kid": self.kid,
            "alg": self.algorithm,
            "use": "sig",
        }


def hs256_key(secret: bytes) -> SigningKey:
    key = OctKey.import_key(secret)
    return SigningKey(kid=thumbprint(key), algorithm="HS256", key=key, activates_at=0)


class KeyRing:
    """The keys one process signs and verifies with; reloaded whole, never edited in place."""

    def __init__(self, keys: Iterable[SigningKey], *, clock: Clock) -> None:
        self._clock = clock
        self._by_kid: dict[str, SigningKey] = {}
        self._signers: list[SigningKey] = []
        self.replace(keys)

    def replace(self, keys: Iterable[SigningKey]) -> None:
        loaded = list(keys)
        if not loaded:
            raise ConfigurationError("No signing key is available.")
        # One assignment each, so a request never sees half a reload.
        self._by_kid = {key.kid: key for key in loaded}
        self._signers = sorted(loaded, key=lambda k: k.activates_at, reverse=True)

    def signer(self) -> SigningKey:
        """The newest key whose time has come (the oldest one if none has, e.g. at first start)."""
        now = self._clock()
        for key in self._signers:
            if key.activates_at <= now:
                return key
        return self._signers[-1]

    def verifier(self, kid: str) -> SigningKey | None:
        key = self._by_kid.get(kid)
        if key is None or (key.retires_at is not None and key.retires_at <= self._clock()):
            return None
        return key

    def published(self) -> list[dict[str, str]]:
        """Public JWKs of every key that signs, will sign, or still verifies."""
        now = self._clock()
        found = []
        for key in sorted(self._by_kid.values(), key=lambda k: k.activates_at):
            jwk = key.public_jwk()
            if jwk is not None and (key.retires_at is None or key.retires_at > now):
                found.append(jwk)
        return found

    def __iter__(self) -> Any:
        return iter(self._by_kid.values())


def from_key_set(document: object, algorithms: frozenset[str]) -> list[SigningKey]:
    """The usable public keys of a JWK Set; anything odd (no kid, an unexpected alg, private
    material, a key that does not import) is skipped rather than trusted."""
    entries = document.get("keys") if isinstance(document, dict) else None
    found = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        kid, alg = entry.get("kid"), entry.get("alg")
        if not isinstance(kid, str) or alg not in algorithms or alg not in ASYMMETRIC:
            continue
        if any(name in entry for name in ("d", "p", "q", "k")):
            continue  # private or symmetric material has no place in a published set
        try:
            key = import_key(entry)
        except (JoseError, ValueError, TypeError):
            continue
        found.append(SigningKey(kid=kid, algorithm=alg, key=key, activates_at=0))
    return found
