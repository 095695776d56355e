"""Everything a running authgate offers, one use case in one place: a plain container.

``runtime.build_services`` fills it; the HTTP routes and the CLI each take from it the one
service they use. No service holds the container, so none reaches another's internals.
"""

from __future__ import annotations

from dataclasses import dataclass

from authgate.accounts import Accounts
from authgate.admin import Admin
from authgate.keys import KeyRing
from authgate.passwords import PasswordHasher
from authgate.refresh import RefreshService
from authgate.service import AuthService
from authgate.signing import SigningKeys
from authgate.throttle import Throttle
from authgate.upkeep import Upkeep


@dataclass(frozen=True)
class Services:
    auth: AuthService  #: sign-up, sign-in; who a token's caller is
    refreshes: RefreshService  #: refresh, and sign-out by refresh token
    accounts: Accounts  #: creating an account; what a signed-in user does to their own
    admin: Admin  #: what admins (API) and operators (CLI) do to others, audited
    upkeep: Upkeep  #: polling, purging, readiness, gauges
    keys: SigningKeys  #: the stored signing keys: rotation and states (CLI)
    key_ring: KeyRing  #: the keys this process holds: the published key set (JWKS)
    hasher: PasswordHasher  #: shared by auth and accounts; the HTTP layer times it (metrics)
    throttle: Throttle  #: shared rate limits; its Redis pool closes with the rest

    async def aclose(self) -> None:
        """Release what the services hold beyond the database: the throttle's Redis pool
        and the hash processes."""
        await self.throttle.aclose()
        await self.hasher.aclose()
