"""Signing in and recovering an account: self-registration, login, password reset by SMS code."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import select, update

from app.errors import Unauthorized, ValidationFailed
from app.extensions import db
from app.i18n import t
from app.messaging.outbox import queue_outbound
from app.models import PasswordResetCode, User, utcnow
from app.models.channel import SMS
from app.models.user import ROLE_PHARMACIST
from app.services import audit, phone_proof
from app.services.passwords import hash_password, needs_rehash, verify_password
from app.services.users import create_user, set_password

log = logging.getLogger(__name__)


def register_pharmacist(actor, data: dict) -> User:
    """Self-registration: always a pharmacist, active at once, never another role."""
    return create_user(actor, {**data, "role": ROLE_PHARMACIST}, action="user.register")


def _find_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == email.strip().lower()))


def authenticate(actor, email: str, password: str) -> User:
    """The active account with this email and password.

    Raises:
        Unauthorized: wrong email, wrong password or inactive account, all with one message (no account oracle).
    """
    user = _find_by_email(email)
    ok = verify_password(user.password_hash if user else None, password)
    if not (ok and user and user.active):
        raise Unauthorized("The email or password is wrong, or the account is inactive.", code="invalid_credentials")
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()
    audit.record(actor, "auth.login", "user", user.id)
    db.session.commit()
    return user


def _code_digest(code: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, code.encode(), hashlib.sha256).hexdigest()


def request_password_reset(actor, email: str) -> None:
    """Send a 6-digit reset code by SMS to the account's phone, if there is such an active account with a phone.

    The caller answers the same either way, so this cannot be used to find out who has an account.
    """
    user = _find_by_email(email)
    if user is None or not user.active or not phone_proof.proven(user):  # an unproven phone may be anyone's
        log.info("password reset asked for an unknown, inactive or phoneless account")
        return
    now = utcnow()
    minutes = current_app.config["PASSWORD_RESET_MINUTES"]
    db.session.execute(
        update(PasswordResetCode)
        .where(PasswordResetCode.user_id == user.id, PasswordResetCode.used_at.is_(None))
        .values(used_at=now)
    )
    code = f"{secrets.randbelow(1_000_000):06d}"
    db.session.add(
        PasswordResetCode(
            user_id=user.id, code_hash=_code_digest(code), created_at=now, expires_at=now + timedelta(minutes=minutes)
        )  # fmt: skip
    )
    queue_outbound(
        channel=SMS,
        address=user.phone,
        text=t("password_reset_code", user.language, code=code, minutes=minutes),
        language=user.language,
        user_id=user.id,
    )
    audit.record(actor, "auth.password_reset_request", "user", user.id)
    db.session.commit()


def confirm_password_reset(actor, email: str, code: str, new_password: str) -> User:
    """Set a new password with a valid reset code.

    Raises:
        ValidationFailed: the code is wrong, expired, already used or spent by too many wrong tries (one message
            for all, so the answer does not reveal which), or the new password is too weak.
    """
    invalid = ValidationFailed("The code is wrong or has expired; ask for a new one.", {"json": {"code": ["Invalid."]}},
                               code="invalid_reset_code")  # fmt: skip
    user = _find_by_email(email)
    if user is None or not user.active:
        raise invalid
    now = utcnow()
    reset = db.session.scalar(
        select(PasswordResetCode)
        .where(PasswordResetCode.user_id == user.id, PasswordResetCode.used_at.is_(None))
        .order_by(PasswordResetCode.created_at.desc())
        .with_for_update()
    )
    if reset is None or reset.expires_at <= now:
        raise invalid
    if not hmac.compare_digest(reset.code_hash, _code_digest(code)):
        reset.attempts += 1
        if reset.attempts >= current_app.config["PASSWORD_RESET_MAX_ATTEMPTS"]:
            reset.used_at = now
        db.session.commit()
        raise invalid
    set_password(user, new_password)
    reset.used_at = now
    audit.record(actor, "auth.password_reset", "user", user.id)
    db.session.commit()
    return user
