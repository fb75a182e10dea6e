"""Password policy and hashing (argon2id)."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app

MIN_LENGTH = 10
MAX_LENGTH = 256


@cache
def _common_passwords() -> frozenset[str]:
    # zxcvbn ships the 30,000 most common passwords from leaked sets; loaded once, on first use.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def policy_problems(password: str, *, email: str | None = None) -> list[str]:
    """What is wrong with ``password`` (empty when it is acceptable)."""
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(f"Use at least {MIN_LENGTH} characters.")
    if len(password) > MAX_LENGTH:
        problems.append(f"Use at most {MAX_LENGTH} characters.")
    lowered = password.lower()
    if lowered in _common_passwords():
        problems.append("This password is too common; choose one that is hard to guess.")
    if email and lowered == email.lower():
        problems.append("The password must not be the email address.")
    return problems


def _hasher() -> PasswordHasher:
    # Tests use argon2's cheapest profile so the suite stays fast; every other mode uses the RFC 9106 default.
    if current_app.config["THUSA_ENV"] == "test":
        return PasswordHasher.from_parameters(profiles.CHEAPEST)
    return PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``."""
    return _hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; a missing hash still costs one verification (no timing oracle)."""
    hasher = _hasher()
    try:
        return hasher.verify(password_hash or _dummy_hash(hasher), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with older parameters than the current ones."""
    return _hasher().check_needs_rehash(password_hash)


def _dummy_hash(hasher: PasswordHasher) -> str:
    key = f"_dummy_hash_{hasher.time_cost}_{hasher.memory_cost}"
    cached = current_app.extensions.get(key)
    if cached is None:
        cached = current_app.extensions[key] = hasher.hash("not a real password, only for timing")
    return cached


# --- Staff USSD PINs --------------------------------------------------------------------------------------------
# A 4-digit PIN has 10,000 values: no hash cost makes a stolen hash safe (at 300 ms a try, all of them take under an
# hour of one core). What protects it is the lock after 5 wrong tries online, and offline a pepper: the PIN is
# HMAC'd with the app's SECRET_KEY before argon2id, so the database alone gives nothing away. So PINs use a light
# argon2id profile (1 pass over 8 MiB: ~5 ms) that keeps a USSD hop inside its 30 ms budget. Changing SECRET_KEY
# invalidates every PIN (staff set them again through PUT /api/v1/users/{id}/pin).
PIN_PROFILE = {"time_cost": 1, "memory_cost": 8192, "parallelism": 1}


def _pin_hasher() -> PasswordHasher:
    if current_app.config["THUSA_ENV"] == "test":
        return PasswordHasher.from_parameters(profiles.CHEAPEST)
    return PasswordHasher(**PIN_PROFILE)


def pepper_pin(pin: str, secret: str) -> str:
    """The PIN as argon2id sees it: HMAC-SHA256 keyed by the app's secret."""
    import hashlib
    import hmac

    return hmac.new(secret.encode(), pin.encode(), hashlib.sha256).hexdigest()


def hash_pin(pin: str, *, secret: str | None = None) -> str:
    """An argon2id hash of the peppered PIN (``secret``: the app's SECRET_KEY unless given)."""
    return _pin_hasher().hash(pepper_pin(pin, secret or current_app.config["SECRET_KEY"]))


def verify_pin(pin_hash: str | None, pin: str) -> bool:
    """Whether ``pin`` matches ``pin_hash``; a missing hash still costs one verification."""
    hasher = _pin_hasher()
    peppered = pepper_pin(pin, current_app.config["SECRET_KEY"])
    try:
        return hasher.verify(pin_hash or _dummy_hash(hasher), peppered) and pin_hash is not None
    except (VerificationError, InvalidHashError):
        return False
