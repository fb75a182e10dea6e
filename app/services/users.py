"""Accounts: creation with the role rules, updates, deactivation (accounts are never deleted)."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from app.errors import Conflict, NotFound, ValidationFailed
from app.extensions import db
from app.models import Clinic, User, utcnow
from app.models.user import CLINIC_ROLES, ROLE_CLINICIAN, ROLE_PHARMACIST, SITE_PHARMACY
from app.services import audit, phone_proof, reviews
from app.services.passwords import hash_password, policy_problems


def _check_password(password: str, email: str) -> None:
    problems = policy_problems(password, email=email)
    if problems:
        raise ValidationFailed("The password is too weak.", {"json": {"password": problems}})


def _check_role_fields(user: User) -> None:
    """The clinic / pharmacy a role needs, and no clinic for roles that have none."""
    errors: dict[str, list[str]] = {}
    if user.role in CLINIC_ROLES:
        if user.clinic_id is None:
            errors["clinic_id"] = [f"A {user.role} must belong to a clinic."]
        elif db.session.get(Clinic, user.clinic_id) is None:
            errors["clinic_id"] = ["No clinic with this id."]
    elif user.clinic_id is not None:
        errors["clinic_id"] = [f"A {user.role} does not belong to a clinic; leave clinic_id empty."]
    if user.role == ROLE_PHARMACIST and not user.pharmacy_name:
        errors["pharmacy_name"] = ["A pharmacist must name their pharmacy."]
    if user.role == ROLE_PHARMACIST and user.site_type is None:
        user.site_type = SITE_PHARMACY  # the pharmacist role's site unless it says otherwise
    elif user.role != ROLE_PHARMACIST and user.site_type is not None:
        errors["site_type"] = ["Only a pharmacist's account has a site type; leave site_type empty."]
    if user.role != ROLE_CLINICIAN and user.all_pharmacies:
        errors["all_pharmacies"] = ["Only a clinician covers pharmacies."]
    if errors:
        raise ValidationFailed("The role and its fields do not fit together.", {"json": errors})


def _check_unique(email: str | None, phone: str | None, *, exclude: uuid.UUID | None = None) -> None:
    for field, value in (("email", email), ("phone", phone)):
        if value is None:
            continue
        stmt = select(User.id).where(getattr(User, field) == value)
        if exclude is not None:
            stmt = stmt.where(User.id != exclude)
        if db.session.scalar(stmt) is not None:
            raise Conflict(f"Another account already uses this {field}.", {"json": {field: ["Already in use."]}})


def create_user(actor, data: dict, *, action: str = "user.create") -> User:
    """Create an account. Its phone is proven when an admin or the command line creates it, not when it registers
    itself (:func:`app.services.phone_proof.phone_set`).

    Args:
        actor: who creates it (``None`` for the command line).
        data: validated fields, with the plain ``password``.
        action: the audit action (``user.register`` for self-registration).

    Raises:
        ValidationFailed: weak password, or role fields that do not fit. Conflict: email or phone taken.
    """
    data = dict(data)
    data["email"] = data["email"].strip().lower()
    password = data.pop("password")
    pharmacist_ids = data.pop("pharmacist_ids", None)
    _check_password(password, data["email"])
    user = User(**data, password_hash=hash_password(password), active=True)
    user.all_pharmacies = bool(user.all_pharmacies)
    _check_role_fields(user)
    reviews.check_pharmacies(user.role, pharmacist_ids)
    _check_unique(user.email, None)
    phone_proof.release_unproven(actor, user.phone)
    _check_unique(None, user.phone)
    phone_proof.phone_set(actor, user)
    db.session.add(user)
    db.session.flush()
    reviews.set_pharmacies(user, pharmacist_ids)  # a clinician's pharmacies
    audit.record(actor, action, "user", user.id, {"role": user.role})
    db.session.commit()
    return user


def list_users(actor, *, page: int, per_page: int, **filters):
    """A page of accounts, filtered by ``role``, ``clinic_id``, ``active`` or exact ``email``."""
    stmt = select(User).order_by(User.created_at, User.id)
    for field, value in filters.items():
        if value is not None:
            stmt = stmt.where(getattr(User, field) == (value.strip().lower() if field == "email" else value))
    return db.paginate(stmt, page=page, per_page=per_page, error_out=False)


def get_user(user_id: uuid.UUID) -> User:
    """One account. Raises NotFound."""
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound("No user with this id.")
    return user


def update_user(actor, user_id: uuid.UUID, data: dict) -> User:
    """Change the given fields; a new password also invalidates every token issued before it.

    A new phone is proven when an admin (or the command line) sets it, and unproven otherwise; an admin takes the
    number from an account that only claimed it (:func:`app.services.phone_proof.release_unproven`).
    """
    user = get_user(user_id)
    data = dict(data)
    reviews.check_pharmacies(data.get("role", user.role), data.get("pharmacist_ids"))
    if "email" in data:
        data["email"] = data["email"].strip().lower()
    _check_unique(data.get("email"), None, exclude=user.id)
    phone_proof.release_unproven(actor, data.get("phone"), keep=user.id)
    _check_unique(None, data.get("phone"), exclude=user.id)
    password = data.pop("password", None)
    pharmacist_ids = data.pop("pharmacist_ids", None)
    old_phone = user.phone
    for field, value in data.items():
        setattr(user, field, value)
    if user.phone != old_phone:
        phone_proof.phone_set(actor, user)
    if "role" in data and data["role"] not in CLINIC_ROLES and "clinic_id" not in data:
        user.clinic_id = None
    if "role" in data and data["role"] != ROLE_PHARMACIST and "site_type" not in data:
        user.site_type = None
    if "role" in data and data["role"] != ROLE_CLINICIAN:
        user.all_pharmacies = False
        reviews.set_pharmacies(user, [])
    if password is not None:
        set_password(user, password)
    _check_role_fields(user)
    reviews.set_pharmacies(user, pharmacist_ids)
    audit.record(
        actor,
        "user.update",
        "user",
        user.id,
        {
            "fields": sorted(
                [
                    *data,
                    *(["password"] if password else []),
                    *(["pharmacist_ids"] if pharmacist_ids is not None else []),
                ]
            )
        },
    )
    db.session.commit()
    return user


def set_password(user: User, password: str) -> None:
    """Check the policy, store the new hash and cut off every token issued before now."""
    _check_password(password, user.email)
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()


def deactivate_user(actor, user_id: uuid.UUID) -> User:
    """Deactivate an account: it can no longer sign in, and its tokens stop working at once."""
    user = get_user(user_id)
    if actor is not None and user.id == actor.user_id:
        raise Conflict("You cannot deactivate your own account.")
    user.active = False
    audit.record(actor, "user.deactivate", "user", user.id)
    db.session.commit()
    return user
