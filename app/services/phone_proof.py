"""Proven phone numbers: a phone on an account is trusted only once it is proven.

A number typed at self-registration proves nothing: anyone can type a patient's, a pharmacist's or a staff member's
number. Only a proven phone links a chat by itself (a WhatsApp number, a Telegram shared contact card), gets
password reset codes and opens the staff USSD menu. A phone is proven when the account holder enters a one-time
code sent to it by SMS (:func:`send_code`, :func:`confirm`), or when an admin (or the command line) set it
(:func:`phone_set`). Changing the phone clears the proof.

Codes are 6 digits, valid 10 minutes, stored as an HMAC bound to the account and the number; at most 3 are sent an
hour per account, and a code is spent after 5 wrong tries.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select, update

from app.errors import Conflict, ServiceError, ValidationFailed
from app.extensions import db
from app.i18n import t
from app.messaging.outbox import CODE_MASK, queue_outbound
from app.models import PhoneProofCode, User, utcnow
from app.models.channel import SMS
from app.services import audit

CODE_MINUTES = 10
MAX_SENDS_PER_HOUR = 3  # codes sent per account in any hour
MAX_TRIES = 5  # wrong tries that spend a code


class TooManyCodes(ServiceError):
    """The account asked for too many phone codes this hour."""

    status, code = 429, "too_many_codes"


def proven(user: User | None) -> bool:
    """Whether ``user`` has a phone and it is proven."""
    return user is not None and bool(user.phone) and user.phone_verified_at is not None


def phone_set(actor, user: User) -> None:
    """The account's phone was just set or changed: proven when an admin (or the command line) set it, else not.

    The audit row of the change (``user.create``, ``user.update``) records who; the user row keeps when and by
    whom. Self-registration (an anonymous actor) leaves the phone unproven until a code is entered.
    """
    if user.phone and (actor is None or actor.is_admin):
        user.phone_verified_at = utcnow()
        user.phone_verified_by = actor.user_id if actor is not None else None
    else:
        user.phone_verified_at = None
        user.phone_verified_by = None


def release_unproven(actor, phone: str | None, *, keep=None) -> None:
    """Before an admin (or the command line) gives ``phone`` to an account: another account that only typed the
    number in (never proved it) loses it, so a squatter cannot keep a number from its real owner. A proven holder
    keeps it (the caller then answers 409); anyone but an admin changes nothing here.

    Args:
        actor: who sets the phone.
        phone: the number being set.
        keep: the account being given the number (never released from itself).
    """
    if not phone or not (actor is None or actor.is_admin):
        return
    holder = db.session.scalar(select(User).where(User.phone == phone, User.phone_verified_at.is_(None)))
    if holder is None or holder.id == keep:
        return
    holder.phone = None
    audit.record(actor, "user.phone_released", "user", holder.id)
    db.session.flush()  # the number is free in the database before its new holder takes it


def _digest(user: User, code: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"phone-proof:{user.id}:{user.phone}:{code}".encode(), hashlib.sha256).hexdigest()


def _locked_user(actor) -> User:
    # The row lock serialises one account's requests: two at once cannot both pass the hourly cap.
    return db.session.scalar(select(User).where(User.id == actor.user_id).with_for_update(of=User)
                             .execution_options(populate_existing=True))  # fmt: skip


def send_code(actor) -> dict:
    """Send a 6-digit code by SMS to the caller's own phone (through the outbox); earlier codes are spent.

    Args:
        actor: the signed-in account holder (the code goes to their phone only).

    Returns:
        ``{"expires_at"}``.

    Raises:
        ValidationFailed: the account has no phone. Conflict: the phone is already proven. TooManyCodes: 3 codes
            were sent this hour. SendCapReached, OptedOut: the outbox refused the SMS.
    """
    user = _locked_user(actor)
    if not user.phone:
        raise ValidationFailed("This account has no phone number to prove.", {"json": {"phone": ["Not set."]}},
                               code="no_phone")  # fmt: skip
    if proven(user):
        raise Conflict("This account's phone number is already proven.", code="phone_already_proven")
    now = utcnow()
    sent = db.session.scalar(
        select(func.count())
        .select_from(PhoneProofCode)
        .where(PhoneProofCode.user_id == user.id, PhoneProofCode.created_at > now - timedelta(hours=1))
    )
    if sent >= MAX_SENDS_PER_HOUR:
        raise TooManyCodes(f"No more than {MAX_SENDS_PER_HOUR} codes an hour; use the last one or try later.")
    db.session.execute(
        update(PhoneProofCode)
        .where(PhoneProofCode.user_id == user.id, PhoneProofCode.used_at.is_(None))
        .values(used_at=now)
    )
    code = f"{secrets.randbelow(1_000_000):06d}"
    row = PhoneProofCode(user_id=user.id, phone=user.phone, code_hash=_digest(user, code), created_at=now,
                         expires_at=now + timedelta(minutes=CODE_MINUTES))  # fmt: skip
    queue_outbound(channel=SMS, address=user.phone, language=user.language, user_id=user.id,
                   text=t("phone_proof_code", user.language, code=CODE_MASK, minutes=CODE_MINUTES),
                   secret_text=t("phone_proof_code", user.language, code=code, minutes=CODE_MINUTES),
                   secret_seconds=CODE_MINUTES * 60)  # fmt: skip
    db.session.add(row)
    audit.record(actor, "auth.phone_code_send", "user", user.id)
    db.session.commit()
    return {"expires_at": row.expires_at}


def confirm(actor, code: str) -> User:
    """Prove the caller's phone with the code sent to it.

    Raises:
        ValidationFailed: the code is wrong, expired, spent (used, replaced, or 5 wrong tries) or was sent to
            another number than the account's phone now; one message for all.
    """
    invalid = ValidationFailed("The code is wrong or has expired; ask for a new one.", {"json": {"code": ["Invalid."]}},
                               code="invalid_phone_code")  # fmt: skip
    user = _locked_user(actor)
    now = utcnow()
    row = db.session.scalar(
        select(PhoneProofCode)
        .where(PhoneProofCode.user_id == user.id, PhoneProofCode.used_at.is_(None))
        .order_by(PhoneProofCode.created_at.desc())
        .limit(1)
        .with_for_update()
    )
    if row is None or row.expires_at <= now or row.phone != user.phone:
        raise invalid
    if not hmac.compare_digest(row.code_hash, _digest(user, code)):
        row.attempts += 1
        if row.attempts >= MAX_TRIES:
            row.used_at = now
        db.session.commit()
        raise invalid
    row.used_at = now
    user.phone_verified_at = now
    user.phone_verified_by = user.id
    audit.record(actor, "auth.phone_proven", "user", user.id)
    db.session.commit()
    return user
