"""The refresh rule, written once: when a refresh token is live, and how long it lives on.

No SQL and no I/O. The detailed path evaluates ``LIVENESS`` in Python (``classify``);
storage turns the same conditions into the WHERE of its fast statements, and ``capped``
into their expiry (``storage/refresh_tokens.py``). Changing the rule is an edit here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from authgate.config import Settings

T = TypeVar("T")


class Verdict(StrEnum):
    """What a presented refresh token turns out to be."""

    LIVE = "live"
    UNKNOWN = "unknown"
    REVOKED = "revoked"  # its session was revoked
    SPENT = "spent"  # used before: a repeat within the grace window, or reuse
    EXPIRED = "expired"  # idle too long, or its session reached its absolute age
    OWNER_GONE = "owner gone"  # its owner is disabled, deleted or anonymised
    # What a spent token is, once the grace window has been consulted:
    REPEATED = "repeated"
    REUSED = "reused"


class Check(Enum):
    """What a condition asks of its field; storage has one SQL form for each."""

    UNSET = "is null"
    AFTER_NOW = "> now"
    TRUE = "is true"


@dataclass(frozen=True)
class Condition:
    """``field`` (a ``RefreshRecord`` attribute, or a column storage maps it to) passes
    ``check``; when it does not, the token is ``otherwise``."""

    field: str
    check: Check
    otherwise: Verdict

    def holds(self, value: object, now: int) -> bool:
        if self.check is Check.UNSET:
            return value is None
        if self.check is Check.AFTER_NOW:
            return isinstance(value, int) and value > now
        return bool(value)


#: A token is live when every condition holds; the first that fails, in this order, is the
#: verdict. A revoked session outranks everything (no grace, no clean-up); a spent token is
#: looked at before its expiry (a retry within the grace window may follow the token's own
#: idle expiry); the owner is checked last.
LIVENESS: tuple[Condition, ...] = (
    Condition("session_revoked_at", Check.UNSET, Verdict.REVOKED),
    Condition("used_at", Check.UNSET, Verdict.SPENT),
    Condition("expires_at", Check.AFTER_NOW, Verdict.EXPIRED),  # idleness
    Condition("session_expires_at", Check.AFTER_NOW, Verdict.EXPIRED),  # absolute age
    Condition("owner_enabled", Check.TRUE, Verdict.OWNER_GONE),
)
_IDLE = LIVENESS[2]


def classify(record: object | None, now: int) -> Verdict:
    """The verdict on a stored token (any object with the fields ``LIVENESS`` names)."""
    if record is None:
        return Verdict.UNKNOWN
    for condition in LIVENESS:
        if not condition.holds(getattr(record, condition.field), now):
            return condition.otherwise
    return Verdict.LIVE


def spent_verdict(record: object, now: int, *, successor_repeatable: bool) -> Verdict:
    """A spent token presented again: a repeat when the grace window still holds its
    successor (even past the token's own idle expiry), expired once idle, else reuse."""
    if successor_repeatable:
        return Verdict.REPEATED
    if not _IDLE.holds(getattr(record, _IDLE.field), now):
        return Verdict.EXPIRED
    return Verdict.REUSED


def capped(idle_until: T, session_expires_at: T, earlier: Callable[[T, T], T]) -> T:
    """A token's expiry: one more idle period, never past its session's absolute expiry.

    Generic, so that storage computes it in SQL with the same definition (``earlier`` is
    ``min`` here, a CASE there).
    """
    return earlier(idle_until, session_expires_at)


def earlier(a: int, b: int) -> int:
    """``capped``'s Python form."""
    return min(a, b)


#: How finely a refresh records when it happened. A session's last use is stamped, and a
#: reusable token's idle expiry moved (rotation off), only once they would move by at least
#: this much: a token re-sent by many clients at once then costs a read, not two writes per
#: request. So a session's last use is at most this old, and a reusable token's idle expiry
#: at most this much earlier than one more idle period from now (never later).
RESOLUTION_SECONDS = 60


# The two tests below take ints or SQL expressions alike (``Any``): storage builds its WHERE
# from the very same expressions (``storage/refresh_tokens.py``).


def last_use_due(last_used_at: Any, now: Any) -> Any:
    """Whether a session last stamped at ``last_used_at`` is stamped again at ``now`` (one
    never stamped always is: callers test for that, None has no SQL comparison)."""
    return last_used_at <= now - RESOLUTION_SECONDS


def expiry_moves(stored: Any, renewed: Any) -> Any:
    """Whether a reusable token's expiry is rewritten from ``stored`` to ``renewed``: always
    when that would shorten it, else once it would move by ``RESOLUTION_SECONDS``."""
    return (renewed < stored) | (renewed >= stored + RESOLUTION_SECONDS)


@dataclass(frozen=True)
class RefreshPolicy:
    """Lifetimes and rotation, from settings; the idle period never exceeds the absolute one."""

    ttl_seconds: int
    idle_seconds: int
    rotation: bool = True
    grace_seconds: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "idle_seconds", min(self.idle_seconds, self.ttl_seconds))

    @classmethod
    def from_settings(cls, settings: Settings) -> RefreshPolicy:
        return cls(
            ttl_seconds=settings.refresh_token_ttl_seconds,
            idle_seconds=settings.refresh_token_idle_ttl_seconds,
            rotation=settings.refresh_rotation,
            grace_seconds=settings.refresh_grace_seconds,
        )

    @property
    def grace_window(self) -> bool:
        """Whether a retry may get the successor already issued (only with rotation: without
        it, a retry presents a token that still works)."""
        return self.rotation and self.grace_seconds > 0

    def session_expires_at(self, now: int) -> int:
        """A new session's absolute expiry."""
        return now + self.ttl_seconds

    def idle_until(self, now: int) -> int:
        return now + self.idle_seconds

    def expires_at(self, now: int, session_expires_at: int) -> int:
        """The expiry of a token issued or extended at ``now`` (the first one included)."""
        return capped(self.idle_until(now), session_expires_at, earlier)
