"""Appointment upkeep that the periodic jobs run: due reminders into the outbox (every minute), missed appointments
(hourly). The jobs (``workers.reminders``) only call these; the simulator calls them too. Retention (nightly)
is :mod:`app.services.retention`.

Reminders are planned on the appointment itself (``next_reminder_at``, indexed), so the minute job reads only the
rows that are due. Each batch is one transaction: the appointments are re-planned and their reminder rows written
together, so a process killed mid-run leaves every appointment either untouched (taken again next minute) or
re-planned with its reminder row committed (sent by its job, or re-enqueued by the sweeper if the job was lost).
A reminder's dedupe key is unique per (appointment, offset, appointment time): running the job twice, or two jobs
at once, writes it once. Send-time checks (cancelled, moved, attended, sending hours) live in
``bots.sending``.
"""

from __future__ import annotations

import logging
import time as clock
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import select, text, update
from sqlalchemy.orm import lazyload
from sqlalchemy.orm.attributes import set_committed_value

from app.extensions import db
from app.messaging.outbox import Outgoing, queue_many
from app.models import Appointment, Clinic, PatientRecord, utcnow
from app.models.appointment import ACTIVE_STATUSES, STATUS_MISSED
from app.models.channel import SMS
from app.models.message_log import KIND_REMINDER
from app.services import appointments, audit, series
from app.services.clinic_calendar import next_send_time

log = logging.getLogger(__name__)

BATCH_SIZE = 2_000  # appointments per transaction
TIME_BUDGET_SECONDS = 45.0  # no new batch after this (the job runs every minute with a 55 s timeout): next run goes on


def queue_due_reminders(now: datetime | None = None, *, batch_size: int = BATCH_SIZE,
                        budget_seconds: float | None = TIME_BUDGET_SECONDS) -> dict[str, int]:  # fmt: skip
    """Write every due appointment reminder to the outbox, in batches, and plan each appointment's next one.

    For each appointment whose ``next_reminder_at`` has come: the latest offset that is due
    (:func:`app.services.appointments.due_offset`; a job that was behind sends one reminder, not two in a row) in
    the appointment's language, to the patient's preferred channel. Inside the clinic's sending hours it is queued
    at once; outside them it waits (``scheduled``) for the next allowed time, or is dropped when that is not before
    the appointment. Opted-out and erased patients get nothing, but their reminders are still planned on.

    On PostgreSQL each batch locks its rows with ``FOR UPDATE SKIP LOCKED``, so concurrent jobs share the work
    instead of waiting; on SQLite the writes are serialised anyway. Either way the unique dedupe key writes a
    reminder once.

    Args:
        now: the current time (UTC); defaults to now.
        batch_size: appointments per transaction.
        budget_seconds: start no new batch after this many seconds (None: run until nothing is due).

    Returns:
        Counts: ``due`` appointments seen, reminders ``queued`` (to send now) and ``scheduled`` (for the next
        allowed time), ``duplicates`` (already written), ``opted_out``, ``dropped`` (no allowed time left before the
        appointment, or the appointment no longer active), ``batches``.
    """
    now = now or utcnow()
    started = clock.monotonic()
    counts = dict.fromkeys(("due", "queued", "scheduled", "duplicates", "opted_out", "dropped", "batches"), 0)
    # Read once and held here: each appointment then finds its clinic in the session instead of in a join per row.
    clinics = db.session.scalars(select(Clinic).execution_options(populate_existing=True)).all()
    while budget_seconds is None or clock.monotonic() - started < budget_seconds:
        ids = db.session.scalars(
            select(Appointment.id)
            .where(Appointment.next_reminder_at <= now)
            .order_by(Appointment.next_reminder_at)
            .limit(batch_size)
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises
        ).all()
        if not ids:
            break
        rows = db.session.execute(
            select(Appointment, PatientRecord.preferred_channel)
            .outerjoin(PatientRecord, (PatientRecord.patient_id == Appointment.patient_id)
                       & (PatientRecord.clinic_id == Appointment.clinic_id))  # each clinic's own channel
            .where(Appointment.id.in_(ids))
            .options(lazyload(Appointment.clinic))
            .execution_options(populate_existing=True)
        ).all()  # fmt: skip
        batch = [appointment for appointment, _ in rows]
        channels = {appointment.id: channel or SMS for appointment, channel in rows}
        outgoing, plans = _plan_batch(batch, channels, now, counts)
        result = queue_many(outgoing, now=now)
        _save_plans(batch, plans)
        counts["queued"] += len(result.ids) - result.scheduled
        counts["scheduled"] += result.scheduled
        counts["duplicates"] += result.duplicates
        counts["opted_out"] += result.opted_out
        db.session.commit()  # the batch's reminder rows and re-planned appointments together; sends enqueued now
        counts["due"] += len(batch)
        counts["batches"] += 1
    if counts["due"]:
        log.info("reminders: %s (%d clinics)", counts, len(clinics))
    return counts


Plan = tuple[datetime | None, int | None]  # an appointment's next reminder: (next_reminder_at, next_reminder_offset)


def _plan_batch(batch: list[Appointment], channels: dict, now: datetime,
                counts: dict[str, int]) -> tuple[list[Outgoing], list[Plan]]:  # fmt: skip
    """The reminders to write for one batch, and each appointment's next reminder after the offset now due.

    ``channels``: where each appointment's reminders go, the channel its clinic's own record of the patient names.

    The plans are :func:`app.services.appointments.plan_reminders`' (its pure core, ``next_reminder``), saved by
    :func:`_save_plans` in one statement instead of one UPDATE per appointment.
    """
    outgoing, plans = [], []
    for appointment in batch:
        offset = appointments.due_offset(appointment, now)
        active = appointment.status in ACTIVE_STATUSES and appointment.appointment_datetime > now
        if offset is None or not active:
            counts["dropped"] += 1
            offset = None
        else:
            patient = appointment.patient
            send_at = appointments.next_send_time(appointment.clinic, now)
            if patient.erased_at is not None or patient.opted_out_at is not None:
                counts["opted_out"] += 1
            elif send_at >= appointment.appointment_datetime:
                counts["dropped"] += 1
            else:
                outgoing.append(
                    Outgoing(
                        channel=channels[appointment.id],
                        address=patient.phone,
                        text=appointments.text_for(appointment, "appointment_reminder"),
                        language=appointments.language_of(appointment),
                        kind=KIND_REMINDER,
                        clinic_id=appointment.clinic_id,
                        appointment_id=appointment.id,
                        dedupe_key=appointments.reminder_key(appointment, offset),
                        send_at=send_at if send_at > now else None,
                    )
                )
        at, next_offset = appointments.next_reminder(appointment.clinic, appointment.appointment_datetime,
                                                     appointment.status, now, after_offset=offset)  # fmt: skip
        # Never due again at this same instant: the job's loop must end.
        plans.append((at, next_offset) if at is None or at > now else (None, None))
    return outgoing, plans


_SAVE_PLANS = text(
    "UPDATE appointments SET next_reminder_at = plan.at, next_reminder_offset = plan.minutes, updated_at = :stamp"
    " FROM unnest(CAST(:id AS uuid[]), CAST(:at AS timestamptz[]), CAST(:minutes AS integer[]))"
    " AS plan(id, at, minutes) WHERE appointments.id = plan.id"
)


def _save_plans(batch: list[Appointment], plans: list[Plan]) -> None:
    """Store each appointment's next reminder: one UPDATE for the batch on PostgreSQL, executemany on SQLite."""
    stamp = utcnow()
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(_SAVE_PLANS, {"id": [a.id for a in batch], "at": [p[0] for p in plans],
                                         "minutes": [p[1] for p in plans], "stamp": stamp})  # fmt: skip
    else:
        db.session.execute(update(Appointment), [
            {"id": a.id, "next_reminder_at": at, "next_reminder_offset": minutes, "updated_at": stamp}
            for a, (at, minutes) in zip(batch, plans, strict=True)
        ])  # fmt: skip
    for appointment, (at, minutes) in zip(batch, plans, strict=True):  # what this session shows is what was saved
        set_committed_value(appointment, "next_reminder_at", at)
        set_committed_value(appointment, "next_reminder_offset", minutes)


def mark_missed(now: datetime | None = None) -> int:
    """Mark missed every appointment still open whose day (in the clinic's time zone) is over.

    An appointment is missed once the clinic's local date is past the appointment's local date, so a 16:00 visit
    in Gaborone (UTC+2) becomes missed at 00:00 Gaborone time, 22:00 UTC. Idempotent: hourly runs only touch
    appointments that are still open. One audit row per run that changed anything, with the count. Each visit
    marked owes one recovery SMS at the clinic's next sending time; a visit of a series gets the next one booked.

    Args:
        now: the current time (UTC); defaults to now.

    Returns:
        How many appointments were marked missed.
    """
    now = now or utcnow()
    total, by_clinic, in_series = 0, {}, []
    for clinic in db.session.scalars(select(Clinic)).all():
        zone = ZoneInfo(clinic.timezone)
        today_starts = datetime.combine(now.astimezone(zone).date(), time.min, tzinfo=zone).astimezone(UTC)
        marked = db.session.execute(
            update(Appointment)
            .where(
                Appointment.clinic_id == clinic.id,
                Appointment.status.in_(ACTIVE_STATUSES),
                Appointment.appointment_datetime < today_starts,
            )
            .values(
                status=STATUS_MISSED,
                attended=False,
                next_reminder_at=None,
                next_reminder_offset=None,
                # Each owes one recovery SMS, at the clinic's next allowed sending time (app.services.recovery).
                recovery_at=next_send_time(clinic, now),
                updated_at=utcnow(),
            )  # fmt: skip
            .returning(Appointment.id, Appointment.series_id)
            .execution_options(synchronize_session=False)
        ).all()
        if marked:
            total += len(marked)
            by_clinic[str(clinic.id)] = len(marked)
            in_series += [appointment_id for appointment_id, series_id in marked if series_id is not None]
    if total:
        audit.record(None, "appointment.missed", "appointment", None, {"count": total, "clinics": by_clinic})
    for appointment_id in in_series:  # recurring visits: the next one is booked
        series.after_visit(None, db.session.get(Appointment, appointment_id, populate_existing=True))
    db.session.commit()
    return total
