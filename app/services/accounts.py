"""Signing in and recovering an account: self-registration, login (with a per-account back-off), password reset by
SMS code."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import timedelta

import redis
from flask import current_app
from sqlalchemy import func, select, update

from app.errors import ServiceError, Unauthorized, ValidationFailed
from app.extensions import db, redis_client
from app.i18n import t
from app.messaging.outbox import CODE_MASK, OptedOut, SendCapReached, queue_outbound
from app.models import PasswordResetCode, User, utcnow
from app.models.channel import SMS
from app.models.user import ROLE_PHARMACIST
from app.services import audit, phone_proof
from app.services.passwords import hash_password, needs_rehash, verify_password
from app.services.users import create_user, set_password

log = logging.getLogger(__name__)
KNOWN_ADDRESS_SECONDS = 30 * 86400  # an address an account signed in from is spared its back-off this long


class LoginBackoff(ServiceError):
    """Too many failed logins in a row on this email: the next try must wait (even with the right password)."""

    status, code = 429, "login_backoff"

    def __init__(self, seconds: int) -> None:
        retry_at = (utcnow() + timedelta(seconds=seconds)).isoformat(timespec="seconds")
        super().__init__(f"Too many failed sign-ins for this account; try again in {seconds} seconds.",
                         {"retry_after": seconds, "retry_at": retry_at})  # fmt: skip
        self.headers = {"Retry-After": str(seconds)}


def register_pharmacist(actor, data: dict) -> User:
    """Self-registration: always a pharmacist, active at once, never another role."""
    return create_user(actor, {**data, "role": ROLE_PHARMACIST}, action="user.register")


def _find_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == email.strip().lower()))


def _digest(*parts: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, "\x00".join(parts).encode(), hashlib.sha256).hexdigest()[:32]


def _backoff_keys(email: str) -> tuple[str, str]:
    # Keyed by the email asked for, whether or not an account has it: a back-off only real accounts got would
    # tell which exist. Hashed, so Redis holds no email addresses.
    account = _digest("login", email)
    return f"thusa:login:failures:{account}", f"thusa:login:wait:{account}"


def _known_address_key(email: str, address: str | None) -> str:
    return f"thusa:login:known:{_digest('login-address', email, address or '')}"


def _check_backoff(email: str, address: str | None) -> None:
    """Refuse a login while the email's back-off runs, unless it comes from an address the account signed in from
    lately: so strangers elsewhere can make the account wait, but not lock its owner out."""
    _, wait = _backoff_keys(email)
    try:
        with redis_client.client.pipeline() as pipe:
            seconds, known = pipe.ttl(wait).exists(_known_address_key(email, address)).execute()
    except redis.RedisError:
        log.warning("login back-off not checked: Redis unavailable")  # the per-address limit still holds
        return
    if seconds > 0 and not known:
        raise LoginBackoff(seconds)


def _note_failure(email: str) -> None:
    """Count a failed login; from the ``LOGIN_BACKOFF_AFTER``-th in a row on, the email waits 2 s, 4 s, 8 s ... up
    to ``LOGIN_BACKOFF_MAX_SECONDS`` before its next try."""
    config = current_app.config
    after, longest = config["LOGIN_BACKOFF_AFTER"], config["LOGIN_BACKOFF_MAX_SECONDS"]
    failures, wait = _backoff_keys(email)
    try:
        with redis_client.client.pipeline() as pipe:
            count, _ = pipe.incr(failures).expire(failures, max(3600, 2 * longest)).execute()
            if count >= after:
                seconds = min(2 ** min(count - after + 1, 30), longest)
                redis_client.client.set(wait, 1, ex=seconds)
    except redis.RedisError:
        log.warning("failed login not counted: Redis unavailable")


def _clear_backoff(email: str, address: str | None = None) -> None:
    """Forget the email's failures (a login or a password reset succeeded); remember ``address`` as known."""
    try:
        with redis_client.client.pipeline() as pipe:
            pipe.delete(*_backoff_keys(email))
            if address:
                pipe.set(_known_address_key(email, address), 1, ex=KNOWN_ADDRESS_SECONDS)
            pipe.execute()
    except redis.RedisError:
        log.warning("login back-off not cleared: Redis unavailable")


def authenticate(actor, email: str, password: str) -> User:
    """The active account with this email and password.

    After ``LOGIN_BACKOFF_AFTER`` failures in a row on one email, from any addresses, each next try must wait
    twice as long as the last (up to ``LOGIN_BACKOFF_MAX_SECONDS``), even with the right password; a try made
    while it waits is refused unchecked and not counted. Addresses the account signed in from in the last 30 days
    are spared the wait (they still have the per-address rate limit).

    Raises:
        Unauthorized: wrong email, wrong password or inactive account, all with one message (no account oracle).
        LoginBackoff: the email must wait (429, saying how long), whether or not it has an account.
    """
    email = email.strip().lower()
    address = actor.remote_addr if actor is not None else None
    _check_backoff(email, address)
    user = _find_by_email(email)
    ok = verify_password(user.password_hash if user else None, password)
    if not (ok and user and user.active):
        _note_failure(email)
        raise Unauthorized("The email or password is wrong, or the account is inactive.", code="invalid_credentials")
    _clear_backoff(email, address)
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()
    audit.record(actor, "auth.login", "user", user.id)
    db.session.commit()
    return user


def _code_digest(code: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, code.encode(), hashlib.sha256).hexdigest()


def _codes_this_hour(user: User) -> int:
    # The account's row is locked first, so concurrent requests count one after another.
    db.session.execute(select(User.id).where(User.id == user.id).with_for_update())
    since = utcnow() - timedelta(hours=1)
    return db.session.scalar(
        select(func.count()).where(PasswordResetCode.user_id == user.id, PasswordResetCode.created_at > since)
    )


def request_password_reset(actor, email: str) -> None:
    """Send a 6-digit reset code by SMS to the account's phone, if there is such an active account with a phone,
    it has had fewer than ``PASSWORD_RESET_CODES_PER_HOUR`` codes in the last hour, and the SMS rules let it go
    (consent, the caps and the unauthenticated SMS budgets: anyone may ask).

    Never raises for any of these: the caller answers the same either way, so this cannot be used to find out
    who has an account, nor to learn that a cap was reached.
    """
    user = _find_by_email(email)
    if user is None or not user.active or not phone_proof.proven(user):  # an unproven phone may be anyone's
        log.info("password reset asked for an unknown, inactive or phoneless account")
        return
    if _codes_this_hour(user) >= current_app.config["PASSWORD_RESET_CODES_PER_HOUR"]:
        log.info("password reset for user %s not sent: enough codes this hour", user.id)
        db.session.rollback()
        return
    try:
        _send_reset_code(actor, user)
    except (OptedOut, SendCapReached) as exc:
        log.info("password reset for user %s not sent: %s", user.id, exc.code)
        db.session.rollback()
        return
    db.session.commit()


def _send_reset_code(actor, user: User) -> None:
    """Void the account's open codes, make a new one and queue its SMS (in the caller's transaction).

    The stored SMS shows the code masked; the provider gets the real one, kept only in Redis for the code's life.
    """
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
        text=t("password_reset_code", user.language, code=CODE_MASK, minutes=minutes),
        secret_text=t("password_reset_code", user.language, code=code, minutes=minutes),
        secret_seconds=minutes * 60,
        unauthenticated=True,
        language=user.language,
        user_id=user.id,
    )
    audit.record(actor, "auth.password_reset_request", "user", user.id)


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
    _clear_backoff(user.email)  # the owner proved their phone: strangers' failures no longer make them wait
    return user
