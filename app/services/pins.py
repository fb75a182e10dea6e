"""Staff USSD PINs: set through the API, hashed (peppered argon2id, app/services/passwords.py), checked with a lock.

A PIN is never logged, never stored in clear and never put in an audit row. Five wrong tries in a row lock the
USSD login for 30 minutes; the counter lives on the user row, so it holds across sessions and processes.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from app.errors import Forbidden, NotFound, ValidationFailed
from app.extensions import db
from app.models import User, utcnow
from app.models.user import ROLE_STAFF
from app.services import audit
from app.services.passwords import hash_pin, verify_pin

MAX_TRIES = 5
LOCK_FOR = timedelta(minutes=30)
_PIN = re.compile(r"^[0-9]{4}$")
# Trivial PINs anyone would try first: one digit four times, and runs up or down the keypad's digits.
_RUNS = "0123456789012"


def pin_problems(pin: str) -> list[str]:
    """What is wrong with ``pin`` (empty when it is acceptable)."""
    if not _PIN.match(pin):
        return ["A PIN is exactly 4 digits."]
    if len(set(pin)) == 1 or pin in _RUNS or pin in _RUNS[::-1]:
        return ["This PIN is too easy to guess (one digit repeated, or a run like 1234)."]
    return []


def set_pin(actor, user_id: uuid.UUID, pin: str) -> None:
    """Set a staff member's USSD PIN (admins for anyone, a staff member for themself); unlocks the login.

    Raises:
        Forbidden: someone else's PIN, not being an admin. NotFound: no such user. ValidationFailed: not a staff
            account, or a PIN that is not 4 digits or too easy.
    """
    if not actor.is_admin and actor.user_id != user_id:
        raise Forbidden("You can only set your own PIN.")
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound("No user with this id.")
    if user.role != ROLE_STAFF:
        raise ValidationFailed("Only staff accounts use the USSD menu.",
                               {"path": {"user_id": ["Not a staff account."]}})  # fmt: skip
    problems = pin_problems(pin)
    if problems:
        raise ValidationFailed("The PIN is not acceptable.", {"json": {"pin": problems}})
    user.pin_hash = hash_pin(pin)
    user.pin_failed_attempts = 0
    user.pin_locked_until = None
    audit.record(actor, "user.pin_set", "user", user.id)
    db.session.commit()


@dataclass(frozen=True)
class PinCheck:
    """The outcome of a PIN try: ``ok``, ``wrong`` (with ``tries_left``), ``locked`` (until) or ``unset``."""

    outcome: str
    tries_left: int = 0
    locked_until: datetime | None = None


def locked_until(user: User, now: datetime | None = None) -> datetime | None:
    """When the user's USSD login unlocks, if it is locked now."""
    until = user.pin_locked_until
    return until if until is not None and until > (now or utcnow()) else None


def check_pin(user: User | uuid.UUID, pin: str, now: datetime | None = None) -> PinCheck:
    """Try ``pin`` for the user, counting a wrong try (in the caller's transaction, under the user's row lock).

    Args:
        user: the user's row, read and locked (``FOR UPDATE``) by the caller in this transaction, or their id (the
            row is then read and locked here).
        pin: what was typed.
        now: the time to check the lock against.
    """
    now = now or utcnow()
    if not isinstance(user, User):
        user = db.session.scalar(select(User).where(User.id == user).with_for_update(of=User)
                                 .execution_options(populate_existing=True))  # fmt: skip
    if user is None or user.pin_hash is None:
        return PinCheck("unset")
    until = locked_until(user, now)
    if until is not None:
        return PinCheck("locked", locked_until=until)
    if _PIN.match(pin) and verify_pin(user.pin_hash, pin):
        user.pin_failed_attempts = 0
        user.pin_locked_until = None
        return PinCheck("ok")
    user.pin_failed_attempts += 1
    if user.pin_failed_attempts >= MAX_TRIES:
        user.pin_failed_attempts = 0
        user.pin_locked_until = now + LOCK_FOR
        audit.record(None, "user.pin_locked", "user", user.id, {"minutes": int(LOCK_FOR.total_seconds() // 60)})
        return PinCheck("locked", locked_until=user.pin_locked_until)
    return PinCheck("wrong", tries_left=MAX_TRIES - user.pin_failed_attempts)
