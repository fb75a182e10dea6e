"""Access and refresh tokens: issue, rotate, revoke.

Every login starts a *family*: a ``token_families`` row whose id is the ``fam`` claim of every token that descends
from that login by refresh. A token is valid only while its family's row exists; logging out deletes it. A refresh
token may be used once: the family's ``generation`` moves on when one is spent, so using it again finds it moved,
is taken as theft, and deletes the family. All of it is in the database, so a Redis wiped or restarted brings no
token back. Checking a token costs one primary-key lookup, which also loads the account (:func:`live_account`).
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta

from flask import current_app
from flask_jwt_extended import create_access_token, create_refresh_token
from sqlalchemy import delete, select, update

from app.errors import Unauthorized
from app.extensions import db
from app.models import TokenFamily, User, utcnow


def _refresh_lifetime() -> timedelta:
    return timedelta(days=current_app.config["JWT_REFRESH_DAYS"])


def _family_id(payload: dict) -> uuid.UUID | None:
    try:
        return uuid.UUID(payload["fam"])
    except (KeyError, TypeError, ValueError):
        return None


def issue_pair(user: User) -> dict:
    """Sign ``user`` in: a new family (committed) and its first access + refresh token pair.

    The user's families whose refresh tokens have all expired are deleted on the way.
    """
    now = utcnow()
    db.session.execute(delete(TokenFamily).where(TokenFamily.user_id == user.id, TokenFamily.expires_at < now))
    family = TokenFamily(id=uuid.uuid4(), user_id=user.id, generation=0, created_at=now,
                         expires_at=now + _refresh_lifetime())  # fmt: skip
    db.session.add(family)
    db.session.commit()
    return _pair(user, family.id, 0)


def _pair(user: User, family_id: uuid.UUID, generation: int) -> dict:
    # ``iat`` has whole seconds only; ``iat_ms`` lets a password change cut off tokens from the same second.
    claims = {"fam": family_id.hex, "gen": generation, "role": user.role, "iat_ms": int(time.time() * 1000)}
    access_minutes = current_app.config["JWT_ACCESS_MINUTES"]
    return {
        "access_token": create_access_token(
            identity=str(user.id), additional_claims=claims, expires_delta=timedelta(minutes=access_minutes)
        ),
        "refresh_token": create_refresh_token(
            identity=str(user.id), additional_claims=claims, expires_delta=_refresh_lifetime()
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


def live_account(payload: dict) -> User | None:
    """The account of a token whose family is live; None when the family is gone (signed out, refresh token
    reused, expired) or was never issued here: the token is revoked.

    One query by primary key, which loads the account along with the family: the caller hands it on to the JWT
    user loader (``app.security``), so checking a token costs that one query in all.
    """
    family_id = _family_id(payload)
    try:
        user_id = uuid.UUID(payload["sub"])
    except (KeyError, TypeError, ValueError):
        return None
    if family_id is None:
        return None
    return db.session.scalar(
        select(User)
        .join(TokenFamily, TokenFamily.user_id == User.id)
        .where(TokenFamily.id == family_id, TokenFamily.user_id == user_id)
    )


def revoke(payload: dict) -> None:
    """Sign out: revoke this token and every token of its family (committed)."""
    family_id = _family_id(payload)
    if family_id is not None:
        db.session.execute(delete(TokenFamily).where(TokenFamily.id == family_id))
        db.session.commit()


def rotate(refresh_payload: dict, user: User) -> dict:
    """Spend a refresh token and issue the next pair of its family.

    Raises:
        Unauthorized: the token was already spent; its family is revoked as a precaution.
    """
    family_id = _family_id(refresh_payload)
    moved = db.session.execute(
        update(TokenFamily)
        .where(TokenFamily.id == family_id, TokenFamily.user_id == user.id,
               TokenFamily.generation == refresh_payload.get("gen", -1))
        .values(generation=TokenFamily.generation + 1, expires_at=utcnow() + _refresh_lifetime())
        .returning(TokenFamily.generation)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()  # fmt: skip
    if moved is None:
        revoke(refresh_payload)
        raise Unauthorized(
            "This refresh token was already used; every token of this sign-in has been revoked. Sign in again.",
            code="refresh_token_reused",
        )
    db.session.commit()
    return _pair(user, family_id, moved)
