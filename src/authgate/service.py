"""The rules: sign_up, sign_in, refresh, sign_out and role checks. No HTTP, no SQL."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING

from authgate.accounts import (
    Accounts,
    apply_roles,
    keep_an_admin,
    revoke_sessions,
)
from authgate.admin import Admin
from authgate.errors import (
    EmailTakenError,
    InvalidCredentialsError,
    InvalidInputError,
    InvalidTokenError,
    MissingTokenError,
    RoleGrantDeniedError,
    RoleRequiredError,
    UsernameTakenError,
    UserNotFoundError,
)
from authgate.models import (
    AccessClaims,
    Clock,
    NewUser,
    Role,
    SignedIn,
    TokenPair,
    User,
)
from authgate.passwords import PasswordHasher
from authgate.policy import (
    check_password,
    email_key,
    new_username,
    normalize_email,
    normalize_password,
    normalize_username,
    parse_roles,
    username_key,
)
from authgate.refresh import RefreshService, digest
from authgate.revocations import RevokedSessions
from authgate.signing import SigningKeys
from authgate.storage import Database, Transaction
from authgate.throttle import Throttle
from authgate.tokens import TokenCodec

if TYPE_CHECKING:
    from authgate.bus import RevocationBus

security_log = logging.getLogger("authgate.security")


def require_role(claims: AccessClaims, role: Role) -> None:
    """The one role check, shared by routes and the service: each route asks for its own role."""
    if role not in claims.roles:
        raise RoleRequiredError(role)


class AuthService:
    """Sign-up, sign-in, refresh and sign-out, each one short transaction."""

    def __init__(
        self,
        database: Database,
        hasher: PasswordHasher,
        tokens: TokenCodec,
        keys: SigningKeys,
        throttle: Throttle,
        revoked: RevokedSessions,
        *,
        accounts: Accounts,
        admin: Admin,
        refreshes: RefreshService,
        password_min_length: int,
        password_max_length: int,
        clock: Clock,
    ) -> None:
        self.database = database
        self.hasher = hasher  # public: the HTTP layer wires its timing into the metrics
        self._tokens = tokens
        self.keys = keys
        self._throttle = throttle
        self.revoked = revoked  # the set every request checks; runtime wires the Redis bus to it
        self.bus: RevocationBus | None = None  # that bus, when a server runs one (readiness)
        self.accounts = accounts
        self.admin = admin
        self.refreshes = refreshes
        self._password_min = password_min_length
        self._password_max = password_max_length
        self._clock = clock

    async def aclose(self) -> None:
        """Release what the service holds beyond the database: the throttle's Redis pool and
        the hash processes."""
        await self._throttle.aclose()
        await self.hasher.aclose()

    # -- access tokens -------------------------------------------------------

    def authenticate(self, token: str | None) -> AccessClaims:
        """Verified claims of a live session's access token; no database round trip."""
        if not token:
            raise MissingTokenError()
        claims = self._tokens.verify(token)
        if claims.session_id in self.revoked:
            raise InvalidTokenError()
        return claims

    # -- sign-up -------------------------------------------------------------

    async def sign_up(
        self,
        username: str,
        email: str,
        password: str,
        roles: Iterable[str] | None = None,
        *,
        actor: AccessClaims | None = None,
        client: str = "",
    ) -> int:
        """Create a user; roles beyond ``user`` need an admin's verified token as ``actor``."""
        await self._throttle.sign_up_attempt(client)
        wanted = parse_roles(roles)
        if wanted - {Role.USER} and (actor is None or Role.ADMIN not in actor.roles):
            raise RoleGrantDeniedError()
        return await self._create_user(username, email, password, wanted)

    async def _create_user(
        self, username: str, email: str, password: str, wanted: frozenset[Role]
    ) -> int:
        name = new_username(username)
        address = normalize_email(email)
        secret = normalize_password(password)
        check_password(secret, min_length=self._password_min, max_length=self._password_max)
        name_key, address_key = username_key(name), email_key(address)
        # Cheap checks first, so a duplicate costs no hash; the unique indexes decide races.
        async with self.database.transaction(read_only=True) as tx:
            if await tx.users.username_key_exists(name_key):
                raise UsernameTakenError()
            if await tx.users.email_key_exists(address_key):
                raise EmailTakenError()
        password_hash = await self.hasher.hash(secret)
        async with self.database.transaction() as tx:
            user_id = await tx.users.insert(
                NewUser(username=name, email=address, password_hash=password_hash, roles=wanted),
                username_key=name_key,
                email_key=address_key,
                now=int(self._clock()),
            )
        security_log.info("user.created", extra={"event": "user.created", "user_id": user_id})
        return user_id

    # -- sign-in -------------------------------------------------------------

    async def sign_in(
        self, username: str, password: str, *, client: str = "", user_agent: str = ""
    ) -> SignedIn:
        """Tokens for valid credentials; one error, one cost, for every kind of failure.

        Unknown and existing accounts are throttled alike, so a 429 reveals nothing.
        """
        user: User | None = None
        try:
            key: str | None = username_key(normalize_username(username))
        except InvalidInputError:
            key = None
        account = key or username.strip().casefold()[:128]
        await self._throttle.sign_in_attempt(client, account)
        if key is not None:
            async with self.database.transaction(read_only=True) as tx:
                user = await tx.users.get_by_username_key(key)
        if user is not None and not user.enabled:
            user = None
        secret = normalize_password(password)
        if not await self.hasher.verify(user.password_hash if user else None, secret):
            security_log.warning("sign_in.failed", extra={"event": "sign_in.failed"})
            await self._throttle.sign_in_failed(client, account)
            raise InvalidCredentialsError()
        if user is None:  # pragma: no cover - verify() is False without a hash
            raise InvalidCredentialsError()
        await self._throttle.sign_in_succeeded(client, account)
        upgraded = (
            await self.hasher.hash(secret) if self.hasher.needs_rehash(user.password_hash) else None
        )

        now = int(self._clock())
        session_id = secrets.token_hex(16)
        refresh_token = self.refreshes.new_token()
        policy = self.refreshes.policy
        session_expires_at = policy.session_expires_at(now)
        async with self.database.transaction() as tx:
            if upgraded is not None:
                await tx.users.set_password_hash(user.id, upgraded)
            await tx.sessions.create(
                session_id,
                user.id,
                now=now,
                expires_at=session_expires_at,
                client_address=client,
                user_agent=user_agent,
            )
            await tx.refresh_tokens.insert(
                digest(refresh_token),
                session_id,
                parent_id=None,
                now=now,
                expires_at=policy.expires_at(now, session_expires_at),
            )
        security_log.info(
            "sign_in.succeeded", extra={"event": "sign_in.succeeded", "user_id": user.id}
        )
        access_token = self._tokens.issue(user.id, user.roles, session_id, auth_time=now)
        return SignedIn(user=user, tokens=TokenPair(access_token, refresh_token))

    # -- refresh and sign-out (refresh.py) -------------------------------------

    async def refresh(self, refresh_token: str, *, client: str = "") -> TokenPair:
        """Spend ``refresh_token`` for a new pair; a spent token revokes its whole session."""
        return await self.refreshes.refresh(refresh_token, client=client)

    async def sign_out(self, refresh_token: str) -> None:
        """Revoke the session the token belongs to; unknown tokens are silently accepted."""
        await self.refreshes.sign_out(refresh_token)

    # -- revocation ----------------------------------------------------------

    async def sync_revocations(self) -> None:
        """Learn the revocations other processes committed (called periodically)."""
        async with self.database.transaction(read_only=True) as tx:
            revoked = await tx.sessions.revoked_since(self.revoked.since())
        self.revoked.add_all(revoked)

    async def sync(self) -> None:
        """What every server process polls for: revocations and signing keys."""
        await self.sync_revocations()
        if self.keys.managed:
            self._tokens.ring.replace(await self.keys.load())

    async def live_sessions(self) -> int:
        """How many sessions are neither expired nor revoked (a metrics gauge)."""
        async with self.database.transaction(read_only=True) as tx:
            return await tx.sessions.count_live(now=int(self._clock()))

    async def ready_redis(self) -> None:
        """Raise StorageUnavailableError unless Redis answers (readiness)."""
        await self._throttle.ping()

    async def purge(self) -> int:
        """Delete expired sessions, and revoked ones a day after their revocation (long after
        every process has learnt of it); their refresh tokens go with them."""
        now = int(self._clock())
        async with self.database.transaction() as tx:
            removed = await tx.sessions.purge(now=now, keep_revoked_seconds=86400)
            await tx.refresh_tokens.clear_sealed(
                created_before=now - self.refreshes.policy.grace_seconds
            )
        if removed:
            logging.getLogger("authgate.runtime").info(
                "purged %d sessions", removed, extra={"event": "sessions.purged"}
            )
        return removed

    def published_keys(self) -> list[dict[str, str]]:
        """The public JWKs other services verify with (none for HS256)."""
        return self._tokens.ring.published()

    # -- operators -----------------------------------------------------------

    async def create_user(
        self, username: str, email: str, password: str, roles: Iterable[str]
    ) -> int:
        """Operator path (CLI): any roles, same password and name rules as sign-up."""
        return await self._create_user(username, email, password, parse_roles(roles))

    async def list_users(self) -> list[User]:
        async with self.database.transaction(read_only=True) as tx:
            return await tx.users.list_all()

    async def set_enabled(self, username: str, enabled: bool) -> User:
        """Disable (every session revoked at once) or re-enable an account."""
        now = int(self._clock())
        async with self.database.transaction() as tx:
            user = await self._operator_target(tx, username)
            await keep_an_admin(tx, user, stays_admin=enabled)
            await tx.users.set_enabled(user.id, enabled)
            if not enabled:
                await revoke_sessions(tx, self.revoked, user.id, now)
        event = "user.enabled" if enabled else "user.disabled"
        security_log.info(event, extra={"event": event, "user_id": user.id})
        return user

    async def _operator_target(self, tx: Transaction, username: str) -> User:
        user = await tx.users.get_by_username_key(username_key(normalize_username(username)))
        if user is None:
            raise UserNotFoundError()
        return user

    async def set_roles(self, username: str, roles: Iterable[str]) -> User:
        wanted = parse_roles(roles)
        async with self.database.transaction() as tx:
            user = await self._operator_target(tx, username)
            await apply_roles(tx, self.revoked, user, wanted, int(self._clock()))
            updated = await tx.users.get(user.id)
        if updated is None:  # pragma: no cover - deleted within our own transaction
            raise UserNotFoundError()
        security_log.info(
            "user.roles_changed", extra={"event": "user.roles_changed", "user_id": user.id}
        )
        return updated
