"""Missed visits: the one recovery SMS, and the rebooking that answers it.

When a visit is missed (marked by the hourly job, or by staff through the attendance API or USSD) it owes the patient
one recovery SMS at the next moment inside the clinic's sending hours (``Appointment.recovery_at``). The minute job
(:func:`queue_due_recovery`) writes it to the outbox, in the patient's language, as a ``notice`` with the key
``recovery:<appointment id>`` (so at most one per missed visit, however often the job runs), unless the patient opted
out or was erased, already has a later visit at that clinic, or the visit was rebooked or its attendance corrected
meanwhile. A reply ``2`` offers free slots (the A/B/C flow, :mod:`bots.flows.recovery`); the letter books a new
visit linked to the missed one (``rebooked_from_id``). A missed visit rebooked within :data:`RECOVERY_DAYS` counts
as recovered in the attendance report.
"""

from __future__ import annotations

import logging
import time as clock
import uuid
from datetime import datetime, timedelta

from sqlalchemy import exists, select, update
from sqlalchemy.orm import aliased

from app.extensions import db
from app.messaging.outbox import Outgoing, queue_many
from app.models import Appointment, Clinic, Message, Patient, PatientRecord, utcnow
from app.models.appointment import ACTIVE_STATUSES, STATUS_CONFIRMED, STATUS_MISSED
from app.models.channel import SMS
from app.models.message_log import KIND_NOTICE
from app.services import audit
from app.services.appointment_rules import create, language_of, text_for
from app.services.clinic_calendar import next_send_time

log = logging.getLogger(__name__)

RECOVERY_DAYS = 14  # rebooked within this many days: recovered; unrebooked after it: overdue for tracing
RECOVERY_KEY = "recovery:"  # + appointment id: the outbox dedupe key of a missed visit's one recovery SMS
BATCH_SIZE = 2_000
TIME_BUDGET_SECONDS = 45.0


def recovery_key(appointment_id: uuid.UUID | str) -> str:
    """The outbox dedupe key of a missed visit's recovery SMS."""
    return f"{RECOVERY_KEY}{appointment_id}"


def owe(appointment: Appointment, now: datetime | None = None) -> None:
    """The visit was just marked missed: its recovery SMS is due at the next moment inside the sending hours."""
    appointment.recovery_at = next_send_time(appointment.clinic, now or utcnow())


def _rebooked():
    """A WHERE clause: the (outer) appointment has a rebooking."""
    later = aliased(Appointment)
    return exists().where(later.rebooked_from_id == Appointment.id)


def queue_due_recovery(now: datetime | None = None, *, batch_size: int = BATCH_SIZE,
                       budget_seconds: float | None = TIME_BUDGET_SECONDS) -> dict[str, int]:  # fmt: skip
    """Write the recovery SMS of every missed visit whose ``recovery_at`` has come, in batches (one transaction
    each, rows locked with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so concurrent runs share the work).

    Args:
        now: the current time (UTC); defaults to now.
        batch_size: missed visits per transaction.
        budget_seconds: start no new batch after this many seconds (None: until nothing is due).

    Returns:
        Counts: ``due`` visits seen, ``queued`` SMS written, ``duplicates`` (already written), ``opted_out``,
        ``skipped`` (no longer missed, rebooked, or a later visit at the clinic), ``batches``.
    """
    now = now or utcnow()
    started = clock.monotonic()
    counts = dict.fromkeys(("due", "queued", "duplicates", "opted_out", "skipped", "batches"), 0)
    db.session.scalars(select(Clinic).execution_options(populate_existing=True)).all()  # each row finds its clinic
    while budget_seconds is None or clock.monotonic() - started < budget_seconds:
        ids = db.session.scalars(
            select(Appointment.id)
            .where(Appointment.recovery_at <= now)
            .order_by(Appointment.recovery_at)
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        ).all()
        if not ids:
            break
        rows = db.session.execute(
            select(Appointment, PatientRecord.preferred_channel, _rebooked())
            .outerjoin(
                PatientRecord,
                (PatientRecord.patient_id == Appointment.patient_id)
                & (PatientRecord.clinic_id == Appointment.clinic_id),
            )  # fmt: skip
            .where(Appointment.id.in_(ids))
            .execution_options(populate_existing=True)
        ).all()
        later = _later_visits({a.patient_id for a, _, _ in rows}, now)
        outgoing = []
        for appointment, channel, rebooked in rows:
            patient = appointment.patient
            if (appointment.status != STATUS_MISSED or rebooked
                    or (appointment.patient_id, appointment.clinic_id) in later):  # fmt: skip
                counts["skipped"] += 1
            elif patient.erased_at is not None or patient.opted_out_at is not None:
                counts["opted_out"] += 1
            else:
                send_at = next_send_time(appointment.clinic, now)
                outgoing.append(Outgoing(
                    channel=channel or SMS, address=patient.phone, kind=KIND_NOTICE,
                    text=text_for(appointment, "appointment_recovery"),
                    language=language_of(appointment), clinic_id=appointment.clinic_id,
                    appointment_id=appointment.id, dedupe_key=recovery_key(appointment.id),
                    send_at=send_at if send_at > now else None,
                ))  # fmt: skip
        result = queue_many(outgoing, now=now)
        db.session.execute(update(Appointment).where(Appointment.id.in_(ids)).values(recovery_at=None)
                           .execution_options(synchronize_session=False))  # fmt: skip
        counts["queued"] += len(result.ids)
        counts["duplicates"] += result.duplicates
        counts["opted_out"] += result.opted_out
        counts["due"] += len(ids)
        counts["batches"] += 1
        db.session.commit()
    if counts["due"]:
        log.info("recovery SMS: %s", counts)
    return counts


def _later_visits(patient_ids: set[uuid.UUID], now: datetime) -> set[tuple[uuid.UUID, uuid.UUID]]:
    """(patient, clinic) pairs among these patients that have an active visit ahead."""
    if not patient_ids:
        return set()
    return set(db.session.execute(
        select(Appointment.patient_id, Appointment.clinic_id).distinct().where(
            Appointment.patient_id.in_(patient_ids), Appointment.status.in_(ACTIVE_STATUSES),
            Appointment.appointment_datetime > now)
    ).all())  # fmt: skip


def recoverable(phone: str, now: datetime | None = None) -> Appointment | None:
    """The missed visit a reply from ``phone`` is about: the latest one missed in the last :data:`RECOVERY_DAYS`
    whose recovery SMS was written and that is not rebooked yet (None when there is none)."""
    now = now or utcnow()
    candidates = db.session.scalars(
        select(Appointment)
        .join(Patient, Appointment.patient_id == Patient.id)
        .where(Patient.phone == phone, Appointment.status == STATUS_MISSED,
               Appointment.appointment_datetime > now - timedelta(days=RECOVERY_DAYS), ~_rebooked())
        .order_by(Appointment.appointment_datetime.desc())
        .limit(3)
    ).all()  # fmt: skip
    for appointment in candidates:
        if db.session.scalar(select(Message.id).where(Message.dedupe_key == recovery_key(appointment.id))):
            return appointment
    return None


def rebook(actor, missed: Appointment, at: datetime, *, by_patient: bool = True) -> Appointment:
    """Book a new visit at ``at`` for the patient of ``missed``, linked to it; a patient's own choice confirms it.

    In the caller's transaction. No booking notice: the flow's reply says it.
    """
    appointment = create(actor, missed.clinic, patient_phone=missed.patient.phone, appointment_datetime=at,
                         language=missed.language, notify_booking=False)  # fmt: skip
    appointment.rebooked_from_id = missed.id
    if by_patient:
        appointment.status, appointment.confirmed_at = STATUS_CONFIRMED, utcnow()
    audit.record(actor, "appointment.rebook", "appointment", appointment.id,
                 {"missed_id": str(missed.id), "by": "patient" if by_patient else "clinic"})  # fmt: skip
    return appointment
