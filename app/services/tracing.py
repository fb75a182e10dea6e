"""Tracing patients who missed a visit: the clinic's list and the outcomes staff record.

A missed visit is on its clinic's list until it is rebooked, the patient has another visit ahead at the clinic, or
staff record an outcome that closes it (reached and rebooked or declined, transferred out, died); ``unreachable``
keeps it on the list, as one more attempt. After :data:`app.services.recovery.RECOVERY_DAYS` unrebooked it is
``overdue``. Reads and writes are audited; staff and viewers see only their clinic's, admins any.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, func, select
from sqlalchemy.orm import aliased

from app.errors import Conflict, Forbidden, NotFound
from app.extensions import db
from app.models import Appointment, Clinic, Message, Patient, TracingOutcome, utcnow
from app.models.appointment import ACTIVE_STATUSES, STATUS_MISSED, TRACING_CLOSING
from app.services import audit, clinics
from app.services.appointments import more_days_ago
from app.services.clinic_calendar import local_time
from app.services.recovery import RECOVERY_DAYS, RECOVERY_KEY, recovery_key

MAX_MATCHES = 3  # visits offered for one set of last digits on a USSD screen


@dataclass
class TracingEntry:
    """One missed visit on the list, with what was tried."""

    appointment: Appointment
    days_since: int
    overdue: bool
    contact_attempts: int  # the recovery SMS (when written) and every outcome staff recorded
    last_outcome: str | None
    last_outcome_at: datetime | None
    last_note: str | None


def _open(clinic_id: uuid.UUID | None, now: datetime):
    """Missed visits still to trace (of one clinic, or all), oldest first, with their patient."""
    later, rebooking = aliased(Appointment), aliased(Appointment)
    stmt = (
        select(Appointment)
        .join(Patient, Appointment.patient_id == Patient.id)
        .where(
            Appointment.status == STATUS_MISSED,
            Patient.erased_at.is_(None),
            ~exists().where(rebooking.rebooked_from_id == Appointment.id),
            ~exists().where(later.patient_id == Appointment.patient_id, later.clinic_id == Appointment.clinic_id,
                            later.status.in_(ACTIVE_STATUSES), later.appointment_datetime > now),
            ~exists().where(TracingOutcome.appointment_id == Appointment.id,
                            TracingOutcome.outcome.in_(TRACING_CLOSING)),
        )
        .order_by(Appointment.appointment_datetime, Appointment.id)
    )  # fmt: skip
    return stmt.where(Appointment.clinic_id == clinic_id) if clinic_id is not None else stmt


def _entries(rows: list[Appointment], now: datetime) -> list[TracingEntry]:
    ids = [a.id for a in rows]
    outcomes: dict[uuid.UUID, list[TracingOutcome]] = {i: [] for i in ids}
    if ids:
        for outcome in db.session.scalars(select(TracingOutcome).where(TracingOutcome.appointment_id.in_(ids))
                                          .order_by(TracingOutcome.created_at, TracingOutcome.id)):  # fmt: skip
            outcomes[outcome.appointment_id].append(outcome)
    texted = set()
    if ids:
        keys = [recovery_key(i) for i in ids]
        texted = {key.removeprefix(RECOVERY_KEY) for key in db.session.scalars(
            select(Message.dedupe_key).where(Message.dedupe_key.in_(keys)))}  # fmt: skip
    entries = []
    for appointment in rows:
        days = (local_time(appointment.clinic, now).date()
                - local_time(appointment.clinic, appointment.appointment_datetime).date()).days  # fmt: skip
        tried = outcomes[appointment.id]
        last = tried[-1] if tried else None
        entries.append(TracingEntry(
            appointment=appointment, days_since=days, overdue=days > RECOVERY_DAYS,
            contact_attempts=len(tried) + (1 if str(appointment.id) in texted else 0),
            last_outcome=last.outcome if last else None, last_outcome_at=last.created_at if last else None,
            last_note=last.note if last else None,
        ))  # fmt: skip
    return entries


def tracing_list(actor, *, page: int, per_page: int, clinic_id: uuid.UUID | None = None,
                 overdue: bool | None = None, now: datetime | None = None) -> dict:  # fmt: skip
    """A page of missed visits to trace (oldest first), an audited read.

    Raises:
        Forbidden: another clinic's. ValidationFailed: no such clinic.
    """
    now = now or utcnow()
    clinic = clinics.clinic_for(actor, clinic_id, location="query")
    stmt = _open(clinic.id if clinic is not None else None, now)
    if overdue is not None:
        # Overdue as ``days_since`` counts it: more than RECOVERY_DAYS days before its own clinic's today.
        stmt = stmt.join(Clinic, Appointment.clinic_id == Clinic.id)
        older = more_days_ago(RECOVERY_DAYS, now, clinic)
        stmt = stmt.where(older if overdue else ~older)
    result = db.paginate(stmt, page=page, per_page=per_page, error_out=False)
    entries = _entries(list(result.items), now)
    audit.record(actor, "appointment.tracing.read", "appointment", None,
                 {"clinic_id": str(clinic.id) if clinic else None, "count": len(entries)})  # fmt: skip
    db.session.commit()
    return {"items": entries, "page": result.page, "per_page": result.per_page, "total": result.total,
            "pages": result.pages}  # fmt: skip


def record(actor, appointment_id: uuid.UUID, outcome: str, note: str | None = None, *,
           now: datetime | None = None) -> TracingEntry:  # fmt: skip
    """Record what came of one attempt to reach the patient of a missed visit (an audited write; commits).

    Raises:
        NotFound, Forbidden: another clinic's. Conflict: the visit is not missed.
    """
    appointment = db.session.get(Appointment, appointment_id)
    if appointment is None:
        raise NotFound("No appointment with this id.")
    if not actor.is_admin and appointment.clinic_id != actor.clinic_id:
        raise Forbidden("This appointment is not your clinic's.")
    try:
        entry = add_outcome(actor, appointment, outcome, note, now=now)
    except Exception:
        db.session.rollback()
        raise
    db.session.commit()
    return entry


def add_outcome(actor, appointment: Appointment, outcome: str, note: str | None = None, *,
                now: datetime | None = None) -> TracingEntry:  # fmt: skip
    """:func:`record` in the caller's transaction, for a visit already checked to be the actor's clinic's."""
    if appointment.status != STATUS_MISSED:
        raise Conflict(f"This appointment is {appointment.status.replace('_', ' ')}, not missed; nothing to trace.")
    row = TracingOutcome(appointment_id=appointment.id, clinic_id=appointment.clinic_id, outcome=outcome,
                         note=note or None, user_id=getattr(actor, "user_id", None))  # fmt: skip
    db.session.add(row)
    db.session.flush()
    audit.record(actor, "appointment.tracing", "appointment", appointment.id, {"outcome": outcome})
    return _entries([appointment], now or utcnow())[0]


def open_count(clinic_id: uuid.UUID, now: datetime | None = None) -> int:
    """How many of the clinic's missed visits are still to trace."""
    stmt = _open(clinic_id, now or utcnow()).order_by(None).with_only_columns(func.count(Appointment.id))
    return db.session.scalar(stmt) or 0


def open_ending(clinic_id: uuid.UUID, digits: str, now: datetime | None = None) -> list[Appointment]:
    """Missed visits still to trace of patients whose phone ends with ``digits`` (oldest first, at most 3)."""
    stmt = _open(clinic_id, now or utcnow()).where(Patient.phone.endswith(digits, autoescape=True))
    return list(db.session.scalars(stmt.limit(MAX_MATCHES)).unique())
