"""Every intentional failure in authgate, as one tree of exceptions.

No HTTP and no third-party imports live here; the HTTP status of each class is
decided once, in ``authgate.http.problems``. Each class's ``code`` goes on the wire beside its
message (docs/errors.md): stable, and one per public meaning. A subclass that exists for the
service's logic or the security log keeps its parent's code and message, so callers cannot
tell it apart (``InvalidRefreshTokenError``'s subclasses, ``DatabaseRefusedError``).

    AuthError
    ├── InvalidInputError                 malformed or invalid request data
    │   ├── UnknownRoleError
    │   ├── PasswordPolicyError
    │   ├── MalformedBodyError
    │   ├── PayloadTooLargeError
    │   ├── UnsupportedMediaTypeError
    │   └── BodyTimeoutError              the body did not arrive in time
    ├── ConflictError
    │   ├── UsernameTakenError
    │   ├── EmailTakenError
    │   └── AdminLockoutError             a change that would lock admins out
    │       ├── SelfLockoutError          an admin disabling or deleting themselves
    │       └── LastAdminError            no enabled admin would be left
    ├── InvalidCredentialsError           unknown user and wrong password alike
    ├── TokenError                        access-token problems
    │   ├── MissingTokenError
    │   ├── InvalidTokenError
    │   └── TokenExpiredError             only after the signature verified
    ├── PermissionDeniedError
    │   ├── RoleRequiredError
    │   ├── RoleGrantDeniedError          asking for roles without an admin token
    │   ├── CsrfError                     cookie-authenticated write without its CSRF token
    │   ├── ReauthenticationRequiredError sensitive operation without a fresh password
    │   └── MetricsForbiddenError         /metrics without its token, from a remote client
    ├── RefreshTokenError
    │   ├── RefreshTokenMissingError
    │   └── InvalidRefreshTokenError      one public answer for every failure below
    │       ├── RefreshTokenExpiredError
    │       ├── RefreshTokenRevokedError
    │       └── RefreshTokenReusedError   a spent token came back: session revoked
    ├── UserNotFoundError
    ├── SessionNotFoundError
    ├── TooManyRequestsError              throttled; carries Retry-After
    ├── ConfigurationError
    ├── StorageUnavailableError           the database (or Redis) did not answer
    │   └── DatabaseRefusedError          the database refused authgate's URL (configuration)
    └── NotReadyError                     a readiness check failed; carries every check
"""

from __future__ import annotations


class AuthError(Exception):
    """Base of every failure authgate raises on purpose."""

    code = "auth_error"
    message = "Request failed."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)
        if message is not None:
            self.message = message


class InvalidInputError(AuthError):
    code = "invalid_input"
    message = "Invalid request."


class UnknownRoleError(InvalidInputError):
    code = "unknown_role"

    def __init__(self, role: str) -> None:
        super().__init__(f"Failed! Role does not exist = {role}")


class PasswordPolicyError(InvalidInputError):
    code = "password_policy"
    message = "Password does not meet the policy."


class ConflictError(AuthError):
    code = "conflict"


class UsernameTakenError(ConflictError):
    code = "username_taken"
    message = "Failed! Username is already in use!"


class EmailTakenError(ConflictError):
    code = "email_taken"
    message = "Failed! Email is already in use!"


class AdminLockoutError(ConflictError):
    """A change the account's current state forbids, because nobody could run the admin API
    after it (the CLI can still make an admin)."""

    code = "admin_lockout"
    message = "This change would lock the admins out."


class SelfLockoutError(AdminLockoutError):
    code = "self_lockout"
    message = (
        "Admins cannot disable or delete their own account through the admin API "
        "(delete your own account with DELETE /api/auth/account)."
    )


class LastAdminError(AdminLockoutError):
    code = "last_admin"
    message = (
        "The last enabled admin cannot be disabled, deleted or lose the admin role; "
        "make another admin first."
    )


class InvalidCredentialsError(AuthError):
    code = "invalid_credentials"
    message = "Invalid username or password."


class TokenError(AuthError):
    code = "invalid_token"
    message = "Unauthorized!"


class MissingTokenError(TokenError):
    code = "missing_token"
    message = "No token provided!"


class InvalidTokenError(TokenError):
    code = "invalid_token"
    message = "Unauthorized!"


class TokenExpiredError(TokenError):
    code = "token_expired"
    message = "Unauthorized! Access Token was expired!"


class PermissionDeniedError(AuthError):
    code = "permission_denied"
    message = "Permission denied."


class RoleRequiredError(PermissionDeniedError):
    code = "role_required"

    def __init__(self, role: str) -> None:
        super().__init__(f"Require {role.capitalize()} Role!")


class RoleGrantDeniedError(PermissionDeniedError):
    code = "role_grant_denied"
    message = "Only an admin may assign roles other than user. Sign up without roles."


class RefreshTokenError(AuthError):
    code = "invalid_refresh_token"
    message = "Refresh token is not valid. Please make a new signin request."


class RefreshTokenMissingError(RefreshTokenError):
    code = "refresh_token_required"
    message = "Refresh Token is required!"


class InvalidRefreshTokenError(RefreshTokenError):
    """Unknown, expired, revoked or reused: callers see one answer for all, code included."""


class RefreshTokenExpiredError(InvalidRefreshTokenError):
    pass


class RefreshTokenRevokedError(InvalidRefreshTokenError):
    pass


class RefreshTokenReusedError(InvalidRefreshTokenError):
    pass


class UserNotFoundError(AuthError):
    code = "user_not_found"
    message = "No such user."


class ConfigurationError(AuthError):
    code = "configuration"
    message = "Invalid configuration."


class StorageUnavailableError(AuthError):
    """``detail`` says where and why, for operators (the CLI, logs); clients see ``message``."""

    code = "storage_unavailable"
    message = "The service is temporarily unavailable. Try again shortly."

    def __init__(self, detail: str | None = None) -> None:
        super().__init__()
        self.detail = detail


class DatabaseRefusedError(StorageUnavailableError):
    """No retry helps: no such database or role, a wrong password, an unknown host name."""


class MalformedBodyError(InvalidInputError):
    code = "malformed_body"
    message = "The request body is not valid JSON."


class PayloadTooLargeError(InvalidInputError):
    code = "payload_too_large"
    message = "The request body is too large."


class UnsupportedMediaTypeError(InvalidInputError):
    code = "unsupported_media_type"
    message = "Send the request body as application/json."


class BodyTimeoutError(InvalidInputError):
    code = "body_timeout"
    message = "The request body did not arrive in time."


class TooManyRequestsError(AuthError):
    code = "too_many_requests"
    message = "Too many attempts. Try again later."

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__()
        self.retry_after_seconds = retry_after_seconds


class CsrfError(PermissionDeniedError):
    code = "csrf"
    message = "Missing or wrong X-CSRF-Token header for a cookie-authenticated request."


class ReauthenticationRequiredError(PermissionDeniedError):
    code = "reauthentication_required"
    message = "Re-authentication required: send currentPassword, or sign in again and retry."


class SessionNotFoundError(AuthError):
    code = "session_not_found"
    message = "No such session."


class MetricsForbiddenError(PermissionDeniedError):
    code = "metrics_forbidden"
    message = "Metrics need AUTHGATE_METRICS_TOKEN, or a loopback client."


class NotReadyError(AuthError):
    """Not ready to serve (``/readyz``): ``checks`` names each dependency and its state, so
    the answer says which one failed (and nothing of why: no addresses, no library text)."""

    code = "not_ready"
    message = "Not ready."

    def __init__(self, checks: dict[str, str]) -> None:
        super().__init__()
        self.checks = checks
