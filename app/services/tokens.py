"""Access and refresh tokens: issue, rotate, revoke.

Every login starts a *family* (``fam`` claim) shared by all tokens that descend from it by refresh. A refresh
token may be used once: using it again is taken as theft, and the whole family is revoked. Revocations live in
Redis with the token's remaining lifetime as TTL, so they outlive an app restart and expire by themselves.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta

from flask import current_app
from flask_jwt_extended import create_access_token, create_refresh_token

from app.errors import Unauthorized
from app.extensions import redis_client
from app.models import User

_PREFIX = "thusa:jwt"


def _ttl(payload: dict) -> int:
    return max(int(payload["exp"] - time.time()), 1)


def _family_ttl() -> int:
    return int(timedelta(days=current_app.config["JWT_REFRESH_DAYS"]).total_seconds()) + 60


def issue_pair(user: User, family: str | None = None) -> dict:
    """A new access + refresh token pair for ``user``, in ``family`` (a new one when not given)."""
    # ``iat`` has whole seconds only; ``iat_ms`` lets a password change cut off tokens from the same second.
    claims = {"fam": family or uuid.uuid4().hex, "role": user.role, "iat_ms": int(time.time() * 1000)}
    access_minutes = current_app.config["JWT_ACCESS_MINUTES"]
    return {
        "access_token": create_access_token(
            identity=str(user.id), additional_claims=claims, expires_delta=timedelta(minutes=access_minutes)
        ),
        "refresh_token": create_refresh_token(
            identity=str(user.id),
            additional_claims=claims,
            expires_delta=timedelta(days=current_app.config["JWT_REFRESH_DAYS"]),
        ),
        "token_type": "Bearer",
        "expires_in": access_minutes * 60,
    }


def issued_before(payload: dict, moment: datetime | None) -> bool:
    """True when the token was issued before ``moment`` (e.g. the last password change)."""
    if moment is None:
        return False
    issued_ms = payload.get("iat_ms", payload.get("iat", 0) * 1000)
    return issued_ms < moment.timestamp() * 1000


def is_revoked(payload: dict) -> bool:
    """True when the token itself or its family has been revoked."""
    keys = [f"{_PREFIX}:revoked:{payload['jti']}"]
    if payload.get("fam"):
        keys.append(f"{_PREFIX}:family:{payload['fam']}")
    return redis_client.client.exists(*keys) > 0


def revoke(payload: dict, *, family: bool = True) -> None:
    """Revoke this token (until it would have expired) and, by default, every token of its family."""
    pipe = redis_client.client.pipeline()
    pipe.set(f"{_PREFIX}:revoked:{payload['jti']}", 1, ex=_ttl(payload))
    if family and payload.get("fam"):
        pipe.set(f"{_PREFIX}:family:{payload['fam']}", 1, ex=_family_ttl())
    pipe.execute()


def rotate(refresh_payload: dict, user: User) -> dict:
    """Spend a refresh token and issue the next pair of its family.

    Raises:
        Unauthorized: the token was already spent; its family is revoked as a precaution.
    """
    spent = redis_client.client.set(f"{_PREFIX}:used:{refresh_payload['jti']}", 1, nx=True, ex=_ttl(refresh_payload))
    if not spent:
        revoke(refresh_payload)
        raise Unauthorized(
            "This refresh token was already used; every token of this sign-in has been revoked. Sign in again.",
            code="refresh_token_reused",
        )
    return issue_pair(user, family=refresh_payload.get("fam"))
