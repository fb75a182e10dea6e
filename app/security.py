"""Who is calling and what they may do: JWT callbacks, the one role decorator, rate-limit keys, headers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import wraps

from flask import Flask, g, request
from flask_jwt_extended import current_user, get_current_user, verify_jwt_in_request

from app.errors import Forbidden, error_response
from app.extensions import db, jwt
from app.models import User
from app.services import tokens


@dataclass(frozen=True)
class Actor:
    """The caller as services see it: no Flask objects, just ids, role and address (for the audit log)."""

    user_id: uuid.UUID | None
    role: str | None
    clinic_id: uuid.UUID | None
    remote_addr: str | None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def current_actor() -> Actor:
    """The actor of the current request (anonymous when no valid token was verified)."""
    try:
        user = get_current_user()
    except RuntimeError:  # no token was verified for this request
        user = None
    return Actor(
        user_id=user.id if user else None,
        role=user.role if user else None,
        clinic_id=user.clinic_id if user else None,
        remote_addr=request.remote_addr,
    )


def roles_required(*roles: str):
    """Require a valid, unrevoked access token of an active user, with one of ``roles`` (any role if none)."""

    def decorator(fn):
        @wraps(fn)
        def wrapper(*args, **kwargs):
            verify_jwt_in_request()
            if roles and current_user.role not in roles:
                raise Forbidden(f"This needs one of the roles: {', '.join(roles)}.")
            return fn(*args, **kwargs)

        wrapper.roles = roles
        return wrapper

    return decorator


def _unauthorized(message: str, code: str = "unauthorized"):
    return error_response(401, code, message, headers={"WWW-Authenticate": "Bearer"})


def init_app(app: Flask) -> None:
    """JWT callbacks (every token failure is a 401 in the one error shape) and security headers."""

    @jwt.user_lookup_loader
    def _load_user(_header, payload):
        user = g.pop("thusa_token_account", None)  # loaded by _revoked, which runs first
        if user is None:
            try:
                user = db.session.get(User, uuid.UUID(payload["sub"]))
            except (ValueError, KeyError):
                return None
        if user is None or not user.active:
            return None
        if tokens.issued_before(payload, user.password_changed_at):
            return None
        return user

    @jwt.token_in_blocklist_loader
    def _revoked(_header, payload) -> bool:
        account = tokens.live_account(payload)
        g.thusa_token_account = account  # one query answers both "revoked?" and "whose?"
        return account is None

    jwt.user_lookup_error_loader(lambda _h, _p: _unauthorized("The account is inactive or the token is outdated."))
    jwt.expired_token_loader(lambda _h, _p: _unauthorized("The token has expired.", "token_expired"))
    jwt.revoked_token_loader(lambda _h, _p: _unauthorized("The token has been revoked.", "token_revoked"))
    jwt.invalid_token_loader(lambda reason: _unauthorized(f"The token is invalid: {reason}", "token_invalid"))
    jwt.unauthorized_loader(lambda reason: _unauthorized(f"Authentication required: {reason}"))
    jwt.needs_fresh_token_loader(lambda _h, _p: _unauthorized("A fresh token is required."))
    jwt.token_verification_failed_loader(lambda _h, _p: _unauthorized("The token was refused.", "token_invalid"))

    @app.after_request
    def _security_headers(response):
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if request.path.startswith("/api/v1/docs"):
            # Swagger UI, served by the app (app/api/docs.py): scripts from here only; React sets inline styles.
            headers.setdefault(
                "Content-Security-Policy",
                "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:;"
                " connect-src 'self'; form-action 'self'; frame-ancestors 'none'",
            )
        else:
            headers.setdefault("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
        if request.path.startswith("/api/"):
            headers.setdefault("Cache-Control", "no-store")
        if app.config["THUSA_ENV"] == "production":
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response
