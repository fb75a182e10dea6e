"""Reports: what happened to a clinic's appointments (attendance), counted by the database, never row by row."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import and_, case, exists, func, literal_column, select
from sqlalchemy.orm import aliased

from app.extensions import db
from app.models import Appointment, Clinic, Contact, Patient, TracingOutcome
from app.models.appointment import PATIENT_CHANNELS, STATUS_ATTENDED, STATUS_CANCELLED, STATUS_MISSED, TRACING_OUTCOMES
from app.models.clinic import LANGUAGES
from app.services import audit
from app.services.appointments import in_period
from app.services.clinics import clinic_for
from app.services.recovery import RECOVERY_DAYS

REMINDER_BUCKETS = ("0", "1", "2", "3+")
COUNTS = ("appointments", "reminded", "confirmed", "attended", "missed", "cancelled", "recovered")


def _counted(flag) -> object:
    return func.coalesce(func.sum(case((flag, 1), else_=0)), 0)


def _metrics() -> list:
    return [
        func.count(Appointment.id).label("appointments"),
        _counted(Appointment.reminders_sent > 0).label("reminded"),
        _counted(Appointment.confirmed_at.is_not(None)).label("confirmed"),
        _counted(Appointment.status == STATUS_ATTENDED).label("attended"),
        _counted(Appointment.status == STATUS_MISSED).label("missed"),
        _counted(Appointment.status == STATUS_CANCELLED).label("cancelled"),
        _counted(and_(Appointment.status == STATUS_MISSED, _recovered())).label("recovered"),
    ]


def _recovered():
    """A missed visit rebooked within RECOVERY_DAYS of it (the rebooking made by then)."""
    rebooking = aliased(Appointment)
    if db.session.get_bind().dialect.name == "sqlite":  # no interval arithmetic: days as Julian day numbers
        within = (
            func.julianday(rebooking.created_at) - func.julianday(Appointment.appointment_datetime) <= RECOVERY_DAYS
        )
    else:
        within = rebooking.created_at <= Appointment.appointment_datetime + literal_column(
            f"interval '{RECOVERY_DAYS} days'"
        )
    return exists().where(rebooking.rebooked_from_id == Appointment.id, within)


def _with_rate(counts: dict) -> dict:
    known = counts["attended"] + counts["missed"]
    return {**counts, "no_show_rate": round(counts["missed"] / known, 4) if known else None,
            "recovery_rate": round(counts["recovered"] / counts["missed"], 4) if counts["missed"] else None}  # fmt: skip


def _empty() -> dict:
    return dict.fromkeys(COUNTS, 0)


def attendance(actor, *, clinic_id: uuid.UUID | None = None, since: date | None = None,
               until: date | None = None) -> dict:  # fmt: skip
    """Appointments in a period (whole days in clinic time, ``until`` included) and what became of them.

    ``attended`` / ``missed`` / ``cancelled`` count statuses; ``reminded`` those sent at least one reminder;
    ``confirmed`` those the patient confirmed (even if later moved); ``no_show_rate`` is missed / (attended +
    missed), ``None`` when neither; ``recovered`` the missed ones rebooked within 14 days (``recovery_rate``:
    recovered / missed). ``tracing``: the outcomes staff recorded for the period's missed visits, by outcome. Overall, and by language (the appointment's, else the patient's, else the
    clinic's), by channel and by reminders sent (0, 1, 2, 3+). Staff and viewers: their clinic; admins: the one
    they name, or all.

    Raises:
        Forbidden: another clinic's. ValidationFailed: no such clinic.
    """
    clinic = clinic_for(actor, clinic_id, location="query")
    language = func.coalesce(Appointment.language, Contact.language, Clinic.default_language)
    reminders = case(
        (Appointment.reminders_sent <= 0, literal_column("'0'")),
        (Appointment.reminders_sent == 1, literal_column("'1'")),
        (Appointment.reminders_sent == 2, literal_column("'2'")),
        else_=literal_column("'3+'"),
    )
    base = (
        select(*_metrics())
        .select_from(Appointment)
        .join(Clinic, Appointment.clinic_id == Clinic.id)
        .join(Patient, Appointment.patient_id == Patient.id)
        .join(Contact, Patient.contact_id == Contact.id)
        .where(in_period(since, until, clinic))
    )
    if clinic is not None:
        base = base.where(Appointment.clinic_id == clinic.id)

    def grouped(dimension, keys) -> dict:
        out = {key: _empty() for key in keys}
        for row in db.session.execute(base.add_columns(dimension.label("dim")).group_by(literal_column("dim"))):
            out[str(row.dim)] = {name: int(getattr(row, name)) for name in COUNTS}
        return {key: _with_rate(counts) for key, counts in out.items()}

    overall = db.session.execute(base).one()
    report = {
        "clinic_id": clinic.id if clinic is not None else None,
        "from": since,
        "to": until,
        "overall": _with_rate({name: int(getattr(overall, name)) for name in COUNTS}),
        "by_language": grouped(language, LANGUAGES),
        "by_channel": grouped(Appointment.channel, PATIENT_CHANNELS),
        "by_reminders": grouped(reminders, REMINDER_BUCKETS),
        "tracing": _tracing(base_filter=in_period(since, until, clinic), clinic=clinic),
    }
    audit.record(actor, "report.read", "report", None,
                 {"report": "attendance", "clinic_id": str(clinic.id) if clinic else None,
                  "appointments": report["overall"]["appointments"]})  # fmt: skip
    db.session.commit()
    return report


def _tracing(*, base_filter, clinic) -> dict[str, int]:
    """Tracing outcomes recorded for the period's visits, counted by outcome (every attempt counts)."""
    stmt = (
        select(TracingOutcome.outcome, func.count())
        .join(Appointment, TracingOutcome.appointment_id == Appointment.id)
        .join(Clinic, Appointment.clinic_id == Clinic.id)
        .where(base_filter)
        .group_by(TracingOutcome.outcome)
    )
    if clinic is not None:
        stmt = stmt.where(Appointment.clinic_id == clinic.id)
    counts = dict.fromkeys(TRACING_OUTCOMES, 0)
    counts.update({outcome: int(n) for outcome, n in db.session.execute(stmt)})
    return counts
