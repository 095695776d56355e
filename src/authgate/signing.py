"""The signing keys' lifecycle: first key, rotation, and loading the ring from storage.

Rotation, step by step (every step is a timestamp, so every process agrees without
talking to the others):

1. ``rotate`` stores generation n+1, published at once (``/.well-known/jwks.json``),
   signing from ``now + AUTHGATE_KEY_PUBLISH_SECONDS``: by then every process has
   loaded it and every verifier's cached key set has expired.
2. From that moment the new key signs; the old one only verifies.
3. The old key retires when no server or verifier could still accept a token it signed
   (``tokens.accepted_for_seconds`` after its successor activated: the access-token
   lifetime, the leeway and the clock skew allowed), and leaves the key set.

No live token is ever invalidated and no process restarts. HS256 keeps its one
shared secret from ``AUTHGATE_SIGNING_KEY`` and is never published.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from authgate import keys
from authgate.errors import ConfigurationError
from authgate.keys import SigningKey
from authgate.models import Clock, StoredKey
from authgate.storage import Database

log = logging.getLogger("authgate.keys")


#: The state of a stored key whose algorithm is not ``AUTHGATE_SIGNING_ALGORITHM``: the
#: server neither signs nor verifies with it.
UNUSED = "unused"


@dataclass(frozen=True)
class KeyState:
    """One line of ``authgate keys list``."""

    kid: str
    generation: int
    algorithm: str
    state: str
    #: None for the HS256 secret, which signs whenever it is configured.
    activates_at: int | None
    retires_at: int | None


def hs256_state(secret: bytes) -> KeyState:
    return KeyState(keys.hs256_key(secret).kid, 0, "HS256", "signing", None, None)


def key_states(
    stored: Sequence[StoredKey], *, algorithm: str, retire_after_seconds: int, now: float
) -> list[KeyState]:
    """The stored keys' states, in generation order, read from their rows alone (no private
    key is opened). Keys of ``algorithm`` are in their life's stage (see the module's
    docstring); keys of any other algorithm are ``unused``."""
    retires: dict[str, int | None] = {}
    for name in {row.algorithm for row in stored}:
        rows = sorted((row for row in stored if row.algorithm == name), key=_generation)
        for row, successor in zip(rows, [*rows[1:], None], strict=True):
            retires[row.kid] = (
                None if successor is None else successor.activates_at + retire_after_seconds
            )
    signer = max(
        (
            row.activates_at
            for row in stored
            if row.algorithm == algorithm and row.activates_at <= now
        ),
        default=None,
    )
    return [
        KeyState(
            kid=row.kid,
            generation=row.generation,
            algorithm=row.algorithm,
            state=(
                _state(row.activates_at, retires[row.kid], now, signer)
                if row.algorithm == algorithm
                else UNUSED
            ),
            activates_at=row.activates_at,
            retires_at=retires[row.kid],
        )
        for row in sorted(stored, key=_generation)
    ]


def _generation(row: StoredKey) -> int:
    return row.generation


class SigningKeys:
    def __init__(
        self,
        database: Database,
        *,
        algorithm: str,
        kek: bytes | None,
        hs256_secret: bytes | None,
        retire_after_seconds: int,
        publish_seconds: int,
        clock: Clock,
    ) -> None:
        self._database = database
        self._algorithm = algorithm
        self._kek = kek
        self._hs256_secret = hs256_secret
        self._retire_after = retire_after_seconds
        self._publish = publish_seconds
        self._clock = clock
        self._opened: dict[str, SigningKey] = {}  # unsealing costs; keep what was opened

    @property
    def managed(self) -> bool:
        """Whether keys live in the database (every algorithm but HS256)."""
        return self._algorithm in keys.ASYMMETRIC

    async def load(self) -> list[SigningKey]:
        """Every key that may still sign or verify, creating the first one if there is none."""
        if not self.managed:
            if self._hs256_secret is None:
                raise ConfigurationError("AUTHGATE_SIGNING_KEY is required for HS256.")
            return [keys.hs256_key(self._hs256_secret)]
        stored = await self._stored()
        if not stored:
            # Workers starting together may race here; the loser simply loads the winner's key.
            await self._create(await self._next_generation(), activates_at=int(self._clock()))
            stored = await self._stored()
        now = self._clock()
        return [
            key for key in self._ring_keys(stored) if key.retires_at is None or key.retires_at > now
        ]

    async def rotate(self) -> KeyState:
        """Store the next key; it signs once every process and verifier has seen it."""
        if not self.managed:
            raise ConfigurationError(
                "HS256 has one shared secret: rotate it by changing AUTHGATE_SIGNING_KEY. "
                "Choose EdDSA, ES256 or RS256 (AUTHGATE_SIGNING_ALGORITHM) for rotating keys."
            )
        await self.load()  # there is a current key to succeed
        generation = await self._next_generation()
        stored = await self._create(generation, activates_at=int(self._clock()) + self._publish)
        if stored is None:
            raise ConfigurationError("Another rotation created the same key generation; try again.")
        log.info("signing key created", extra={"event": "keys.rotated"})
        return next(state for state in await self.states() if state.kid == stored.kid)

    async def states(self) -> list[KeyState]:
        """Every stored key (any algorithm), and the HS256 secret when that signs."""
        async with self._database.transaction(read_only=True) as tx:
            stored = await tx.signing_keys.list()
        found = key_states(
            stored,
            algorithm=self._algorithm,
            retire_after_seconds=self._retire_after,
            now=self._clock(),
        )
        if self.managed:
            return found
        if self._hs256_secret is None:
            raise ConfigurationError("AUTHGATE_SIGNING_KEY is required for HS256.")
        return [hs256_state(self._hs256_secret), *found]

    async def _next_generation(self) -> int:
        """Generations count across algorithms, so switching algorithm starts a new one."""
        async with self._database.transaction(read_only=True) as tx:
            return await tx.signing_keys.newest_generation() + 1

    async def _stored(self) -> list[StoredKey]:
        async with self._database.transaction(read_only=True) as tx:
            return await tx.signing_keys.list(self._algorithm)

    def _ring_keys(self, stored: list[StoredKey]) -> list[SigningKey]:
        """Keys in generation order, each retiring once its successor's tokens could not
        be its own any more."""
        found = []
        for index, row in enumerate(stored):
            successor = stored[index + 1] if index + 1 < len(stored) else None
            retires_at = None if successor is None else successor.activates_at + self._retire_after
            found.append(self._open(row, retires_at))
        return found

    def _open(self, row: StoredKey, retires_at: int | None) -> SigningKey:
        opened = self._opened.get(row.kid)
        if opened is None:
            if self._kek is None:
                raise ConfigurationError("AUTHGATE_KEY_ENCRYPTION_KEY is required.")
            private = keys.unseal(row.sealed_private_jwk, self._kek)
            if keys.public_thumbprint(row.public_jwk) != row.kid:
                raise ConfigurationError(f"Signing key {row.kid} does not match its public half.")
            opened = SigningKey(row.kid, row.algorithm, private, row.activates_at)
            self._opened[row.kid] = opened
        return SigningKey(opened.kid, opened.algorithm, opened.key, opened.activates_at, retires_at)

    async def _create(self, generation: int, activates_at: int) -> StoredKey | None:
        """The new key, or None if another process stored this generation first."""
        if self._kek is None:
            raise ConfigurationError("AUTHGATE_KEY_ENCRYPTION_KEY is required.")
        private = keys.generate(self._algorithm)
        kid = keys.thumbprint(private)
        stored = StoredKey(
            kid=kid,
            generation=generation,
            algorithm=self._algorithm,
            public_jwk=keys.public_json(private),
            sealed_private_jwk=keys.seal(private, self._kek),
            created_at=int(self._clock()),
            activates_at=activates_at,
        )
        async with self._database.transaction() as tx:
            created = await tx.signing_keys.insert(stored)
        return stored if created else None


def _state(activates_at: int, retires_at: int | None, now: float, signer: int | None) -> str:
    if retires_at is not None and retires_at <= now:
        return "retired"
    if activates_at > now:
        return "published"
    if activates_at == signer:
        return "signing"
    return "verifying"
