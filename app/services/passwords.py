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
