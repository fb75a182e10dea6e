"""``/api/v1/auth``: register, login, refresh, logout, password reset, me."""

from __future__ import annotations

from flask import current_app
from flask_jwt_extended import current_user, get_jwt, jwt_required
from flask_limiter.util import get_remote_address

from app.api.common import BEARER, Blueprint, documents, requires
from app.extensions import limiter
from app.schemas.users import (
    AcceptedSchema,
    LoginSchema,
    PasswordResetConfirmSchema,
    PasswordResetSchema,
    RegisterSchema,
    TokenPairSchema,
    UserSchema,
)
from app.security import current_actor
from app.services import accounts, tokens

blp = Blueprint("auth", __name__, url_prefix="/api/v1/auth", description="Sign in, tokens and password reset.")


def _auth_limit() -> str:
    return current_app.config["RATELIMIT_AUTH"]


def _register_limit() -> str:
    return current_app.config["RATELIMIT_REGISTER"]


def _tells_whether_taken(response) -> bool:
    return response.status_code in (201, 409)


per_address = limiter.limit(_auth_limit, key_func=get_remote_address)
# A 409 says an email or phone has an account (the pharmacist who mistyped must learn it), and a 201 that it had
# none: only those answers count against this tighter limit, so correcting a rejected form costs nothing.
registrations_per_address = limiter.limit(_register_limit, key_func=get_remote_address,
                                          deduct_when=_tells_whether_taken)  # fmt: skip


@blp.post("/register")
@per_address
@registrations_per_address
@blp.arguments(RegisterSchema)
@blp.response(201, UserSchema)
@documents(blp, 409, 429)
def register(data):
    """Register as a pharmacist (every other role is created by an admin). Active at once.

    A 409 names the field already in use. Registrations that succeed or answer 409 are limited per address
    (``RATELIMIT_REGISTER``), which bounds probing for accounts this way.
    """
    return accounts.register_pharmacist(current_actor(), data)


@blp.post("/login")
@per_address
@blp.arguments(LoginSchema)
@blp.response(200, TokenPairSchema)
@documents(blp, 401, 429)
def login(data):
    """Exchange email and password for an access token and a refresh token.

    After repeated failures on one email the account must wait before its next try, even with the right password:
    429 ``login_backoff``, with ``Retry-After`` and ``details.retry_after`` (seconds) and ``details.retry_at``.
    """
    user = accounts.authenticate(current_actor(), data["email"], data["password"])
    return {**tokens.issue_pair(user), "user": user}


@blp.post("/refresh")
@jwt_required(refresh=True)
@blp.response(200, TokenPairSchema)
@blp.doc(security=BEARER, description="Send the refresh token as the bearer token. Each refresh token works once; "
                                      "reusing one revokes its whole chain.")  # fmt: skip
@documents(blp, 401, 429)
def refresh():
    """Trade a refresh token for a new pair (rotation)."""
    return {**tokens.rotate(get_jwt(), current_user), "user": current_user}


@blp.post("/logout")
@requires(blp)
@blp.response(204)
def logout():
    """Revoke the access token in the header and its whole refresh chain."""
    tokens.revoke(get_jwt())


@blp.get("/me")
@requires(blp)
@blp.response(200, UserSchema)
def me():
    """The signed-in account."""
    return current_user


@blp.post("/password-reset")
@per_address
@blp.arguments(PasswordResetSchema)
@blp.response(202, AcceptedSchema)
@documents(blp, 429)
def password_reset(data):
    """Send a 6-digit code by SMS to the account's phone. Always the same 202, whether or not the account exists,
    and also when nothing is sent (at most 3 codes an hour per account; opted out; SMS budgets spent)."""
    accounts.request_password_reset(current_actor(), data["email"])
    return {"message": "If an active account with a phone number has this email, a code is on its way by SMS."}


@blp.post("/password-reset/confirm")
@per_address
@blp.arguments(PasswordResetConfirmSchema)
@blp.response(204)
@documents(blp, 429)
def password_reset_confirm(data):
    """Set a new password with the code (valid 15 minutes, 5 tries). Every earlier token stops working."""
    accounts.confirm_password_reset(current_actor(), data["email"], data["code"], data["password"])
