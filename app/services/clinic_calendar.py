"""A clinic's calendar: its time zone, its sending hours, the reminder plan of its appointments, and free slots.

Reminders are planned on the appointment itself (``next_reminder_at`` / ``next_reminder_offset``): the minute job
(``workers.reminders``) only reads an index. Each reminder's outbox key is unique per (appointment, offset,
appointment time), so no reminder is sent twice, and a moved appointment gets fresh reminders for its new time.
The clinics service re-plans a clinic's appointments here when its hours or offsets change, and the appointment
rules plan and offer slots here, so this module imports neither of them. Functions work in the caller's
transaction and never commit.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from app.extensions import db
from app.models import Appointment, Clinic, utcnow
from app.models.appointment import ACTIVE_STATUSES
from app.models.clinic import WEEKDAYS

SLOT_LEAD = timedelta(hours=2)  # a slot offered to a patient starts at least this long from now
SLOT_SEARCH_DAYS = 60  # how far ahead free slots are looked for


# --- Time -------------------------------------------------------------------------------------------------------


def zone(clinic: Clinic) -> ZoneInfo:
    """The clinic's time zone."""
    return ZoneInfo(clinic.timezone)


def local_time(clinic: Clinic, at: datetime) -> datetime:
    """A UTC instant as the clinic's wall-clock time."""
    return at.astimezone(zone(clinic))


# --- Sending hours and reminder planning ------------------------------------------------------------------------


def next_send_time(clinic: Clinic, at: datetime) -> datetime:
    """``at`` if it falls inside the clinic's sending hours, else the start of the next window (UTC)."""
    moment = local_time(clinic, at)
    start, end = clinic.send_window_start, clinic.send_window_end
    if start <= moment.time() < end:
        return at
    day = moment.date() if moment.time() < start else moment.date() + timedelta(days=1)
    return datetime.combine(day, start, tzinfo=zone(clinic)).astimezone(UTC)


def in_send_window(clinic: Clinic, at: datetime) -> bool:
    """Whether a message to a patient may go out at ``at``."""
    return next_send_time(clinic, at) == at


def reminder_key(appointment: Appointment, offset: int) -> str:
    """The outbox dedupe key of one reminder: one per appointment, offset and appointment time."""
    return f"reminder:{appointment.id}:{offset}:{int(appointment.appointment_datetime.timestamp())}"


def plan_reminders(appointment: Appointment, now: datetime | None = None, *, after_offset: int | None = None) -> None:
    """Set the appointment's next reminder (:func:`next_reminder`); none for an appointment no longer active."""
    appointment.next_reminder_at, appointment.next_reminder_offset = next_reminder(
        appointment.clinic, appointment.appointment_datetime, appointment.status, now or utcnow(),
        after_offset=after_offset,
    )  # fmt: skip


def next_reminder(clinic: Clinic, at: datetime, status: str, now: datetime, *,
                  after_offset: int | None = None) -> tuple[datetime | None, int | None]:  # fmt: skip
    """When the next reminder of an appointment at ``at`` is due, and for which offset: the earliest offset still
    ahead, moved into the clinic's sending hours. A pure function, so the CSV import can plan 100,000 rows fast.

    Offsets whose time has passed are skipped (a new booking sends nothing by itself); a reminder whose next
    allowed sending time is not before the appointment is dropped.

    Args:
        clinic: its offsets and sending hours apply.
        at: the appointment time (UTC).
        status: the appointment's status; only active appointments get reminders.
        now: the current time.
        after_offset: plan only offsets smaller than this one (it was just sent).

    Returns:
        ``(send_at, offset)``, or ``(None, None)`` when no reminder is left.
    """
    if status not in ACTIVE_STATUSES or at <= now:
        return None, None
    for offset in sorted({int(o) for o in clinic.reminder_offsets_minutes}, reverse=True):
        if after_offset is not None and offset >= after_offset:
            continue
        due = at - timedelta(minutes=offset)
        if due <= now:
            continue
        send_at = next_send_time(clinic, due)
        if send_at < at:
            return send_at, offset
    return None, None


def due_offset(appointment: Appointment, now: datetime) -> int | None:
    """The offset to send now for an appointment whose next reminder is due: the latest one that is due.

    When the job was behind (say the worker was down for a day), an earlier reminder and a later one can both be
    due: only the later one goes out, never two in a row.
    """
    if appointment.next_reminder_offset is None:
        return None
    due = [
        int(o)
        for o in appointment.clinic.reminder_offsets_minutes
        if int(o) <= appointment.next_reminder_offset
        and appointment.appointment_datetime - timedelta(minutes=int(o)) <= now
    ]
    return min(due) if due else appointment.next_reminder_offset


def replan_clinic(clinic: Clinic, now: datetime | None = None) -> int:
    """Plan again the next reminder of every future active appointment of ``clinic`` (its offsets, sending hours
    or time zone changed). In the caller's transaction; one UPDATE per batch, not a query per appointment.

    Returns:
        How many appointments were re-planned.
    """
    now = now or utcnow()
    rows = db.session.execute(
        select(Appointment.id, Appointment.appointment_datetime, Appointment.status).where(
            Appointment.clinic_id == clinic.id,
            Appointment.status.in_(ACTIVE_STATUSES),
            Appointment.appointment_datetime > now,
        )
    ).all()
    changes = []
    for appointment_id, at, status in rows:
        send_at, offset = next_reminder(clinic, at, status, now)
        changes.append({"id": appointment_id, "next_reminder_at": send_at, "next_reminder_offset": offset})
    if changes:
        db.session.execute(update(Appointment), changes)
    return len(changes)


# --- Free slots -------------------------------------------------------------------------------------------------


def _opening_intervals(clinic: Clinic, day: date) -> list[tuple[time, time]]:
    hours = (clinic.opening_hours or {}).get(WEEKDAYS[day.weekday()]) or []
    return [(time.fromisoformat(start), time.fromisoformat(end)) for start, end in hours]


def free_slots(clinic: Clinic, *, count: int = 3, now: datetime | None = None,
               exclude: uuid.UUID | None = None) -> list[datetime]:  # fmt: skip
    """The next ``count`` slot starts (UTC) inside the opening hours with room left (fewer than ``slot_capacity``
    active appointments starting within the slot), from ``SLOT_LEAD`` after now, up to ``SLOT_SEARCH_DAYS`` ahead.
    """
    now = now or utcnow()
    earliest = now + SLOT_LEAD
    step = timedelta(minutes=clinic.slot_minutes)
    tz = zone(clinic)
    found: list[datetime] = []
    first_day = local_time(clinic, earliest).date()
    for days in range(SLOT_SEARCH_DAYS):
        day = first_day + timedelta(days=days)
        intervals = _opening_intervals(clinic, day)
        if not intervals:
            continue
        day_start = datetime.combine(day, time.min, tzinfo=tz).astimezone(UTC)
        taken = _starts_between(clinic.id, day_start, day_start + timedelta(days=1), exclude)
        for opens, closes in intervals:
            slot = datetime.combine(day, opens, tzinfo=tz).astimezone(UTC)
            close = datetime.combine(day, closes, tzinfo=tz).astimezone(UTC)
            while slot + step <= close:
                if slot >= earliest and sum(slot <= at < slot + step for at in taken) < clinic.slot_capacity:
                    found.append(slot)
                    if len(found) == count:
                        return found
                slot += step
    return found


def slot_is_free(appointment: Appointment, at: datetime) -> bool:
    """Whether ``appointment`` can still move to ``at``: far enough ahead, on the slot grid, with room left.

    The clinic's row is locked first (PostgreSQL; SQLite's write lock is already held), so two patients answering
    at the same moment cannot both take the last place in a slot.
    """
    if at < utcnow() + SLOT_LEAD:
        return False
    db.session.execute(select(Clinic.id).where(Clinic.id == appointment.clinic_id).with_for_update())
    # The first free slot from `at` on is `at` itself exactly when that slot still has room.
    return free_slots(appointment.clinic, count=1, now=at - SLOT_LEAD, exclude=appointment.id) == [at]


def _starts_between(clinic_id: uuid.UUID, start: datetime, end: datetime, exclude: uuid.UUID | None) -> list[datetime]:
    stmt = select(Appointment.appointment_datetime).where(
        Appointment.clinic_id == clinic_id,
        Appointment.status.in_(ACTIVE_STATUSES),
        Appointment.appointment_datetime >= start,
        Appointment.appointment_datetime < end,
    )
    if exclude is not None:
        stmt = stmt.where(Appointment.id != exclude)
    return list(db.session.scalars(stmt))
