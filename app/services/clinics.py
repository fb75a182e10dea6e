"""Clinics: admins manage them; staff and viewers read their own."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from app.errors import Conflict, Forbidden, NotFound, ValidationFailed
from app.extensions import db
from app.models import Clinic, User
from app.services import audit, clinic_calendar

# What the reminder plan of every future appointment depends on.
REPLANNING_FIELDS = frozenset({"reminder_offsets_minutes", "send_window_start", "send_window_end", "timezone"})


def _visible(actor) -> select:
    stmt = select(Clinic).order_by(Clinic.name, Clinic.id)
    if not actor.is_admin:
        stmt = stmt.where(Clinic.id == actor.clinic_id)
    return stmt


def list_clinics(actor, *, page: int, per_page: int, country: str | None = None):
    """A page of the clinics ``actor`` may see (admins: all; staff and viewers: their own)."""
    stmt = _visible(actor)
    if country:
        stmt = stmt.where(Clinic.country == country)
    return db.paginate(stmt, page=page, per_page=per_page, error_out=False)


def get_clinic(actor, clinic_id: uuid.UUID) -> Clinic:
    """One clinic.

    Raises:
        NotFound: no such clinic. Forbidden: a clinic of someone else's.
    """
    clinic = db.session.get(Clinic, clinic_id)
    if clinic is None:
        raise NotFound("No clinic with this id.")
    if not actor.is_admin and clinic.id != actor.clinic_id:
        raise Forbidden("You can only see your own clinic.")
    return clinic


def create_clinic(actor, data: dict) -> Clinic:
    """Create a clinic (admin)."""
    data = _with_recipients(data)
    clinic = Clinic(**data)
    db.session.add(clinic)
    db.session.flush()
    audit.record(actor, "clinic.create", "clinic", clinic.id, {"fields": sorted(data)})
    db.session.commit()
    return clinic


def update_clinic(actor, clinic_id: uuid.UUID, data: dict) -> Clinic:
    """Change the given fields of a clinic (admin)."""
    clinic = get_clinic(actor, clinic_id)
    data = _with_recipients(data)
    for field, value in data.items():
        setattr(clinic, field, value)
    if REPLANNING_FIELDS & data.keys():
        clinic_calendar.replan_clinic(clinic)
    audit.record(actor, "clinic.update", "clinic", clinic.id, {"fields": sorted(data)})
    db.session.commit()
    return clinic


def _with_recipients(data: dict) -> dict:
    """Low-stock alerts: ``alert_recipient_ids`` must name active accounts with a phone; stored as text."""
    ids = data.get("alert_recipient_ids")
    if ids is None:
        return data
    unique = list(dict.fromkeys(ids))
    found = set(db.session.scalars(select(User.id).where(User.id.in_(unique), User.active.is_(True),
                                                         User.phone.is_not(None))))  # fmt: skip
    missing = [str(value) for value in unique if value not in found]
    if missing:
        raise ValidationFailed("Every alert recipient must be an active account with a phone.",
                               {"json": {"alert_recipient_ids": [f"Not an active account with a phone: {m}"
                                                                 for m in missing]}})  # fmt: skip
    return {**data, "alert_recipient_ids": [str(value) for value in unique]}


def delete_clinic(actor, clinic_id: uuid.UUID) -> None:
    """Delete a clinic that nothing refers to any more (admin).

    Raises:
        Conflict: accounts still belong to it; move or deactivate them first.
    """
    clinic = get_clinic(actor, clinic_id)
    users = db.session.scalar(select(func.count()).select_from(User).where(User.clinic_id == clinic.id))
    if users:
        raise Conflict(f"{users} account(s) still belong to this clinic; move them to another clinic first.")
    db.session.delete(clinic)
    audit.record(actor, "clinic.delete", "clinic", clinic.id, {"name": clinic.name})
    db.session.commit()


def clinic_for(actor, clinic_id: uuid.UUID | None, *, location: str = "json", required: bool = False) -> Clinic | None:
    """The clinic a request acts for: staff and viewers always their own; admins the one they name.

    Raises:
        Forbidden: a non-admin named another clinic. ValidationFailed: no such clinic, or an admin named none
            where one is ``required`` (the error names ``clinic_id`` in ``location``).
    """
    if not actor.is_admin:
        if clinic_id is not None and clinic_id != actor.clinic_id:
            raise Forbidden("You can only act for your own clinic.")
        clinic_id = actor.clinic_id
    if clinic_id is None:
        if required:
            raise ValidationFailed("Say which clinic: clinic_id is required for admins.",
                                   {location: {"clinic_id": ["Required for admins."]}})  # fmt: skip
        return None
    clinic = db.session.get(Clinic, clinic_id)
    if clinic is None:
        raise ValidationFailed("No clinic with this id.", {location: {"clinic_id": ["No clinic with this id."]}})
    return clinic
