"""Recurring visits (ART refills every 28 days, antenatal care): a series books its visits one at a time.

A series starts with its first visit (``POST /api/v1/appointments`` with ``repeat``, or a CSV row with
``repeat_every_days``). When a visit of it is attended, missed, or cancelled alone, the next is booked at the same
clinic-local time on the first day, from ``every_days`` after that visit on, whose slot still has room (booking notice
as the clinic sends them), until ``count`` visits were booked (an open series never ends by itself). The clinic can
cancel the rest: the series ends. Functions work in the caller's transaction and never commit.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from app.errors import Conflict, ValidationFailed
from app.extensions import db
from app.models import Appointment, AppointmentSeries, utcnow
from app.models.appointment import ACTIVE_STATUSES
from app.services.appointment_rules import cancel, create
from app.services.clinic_calendar import SLOT_LEAD, local_time, zone

MAX_EVERY_DAYS = 366
MAX_COUNT = 52
SEARCH_DAYS = 14  # days after the due one tried for a slot with room; none: the due day anyway (staff can move it)


def start(appointment: Appointment, every_days: int, count: int | None) -> AppointmentSeries:
    """Make ``appointment`` the first visit of a new series of ``count`` visits (None: open) ``every_days`` apart.

    Raises:
        ValidationFailed: ``every_days`` or ``count`` out of range.
    """
    if not 1 <= every_days <= MAX_EVERY_DAYS:
        raise ValidationFailed("repeat.every_days is out of range.",
                               {"json": {"repeat": {"every_days": [f"Must be 1 to {MAX_EVERY_DAYS}."]}}})  # fmt: skip
    if count is not None and not 2 <= count <= MAX_COUNT:
        raise ValidationFailed("repeat.count is out of range.",
                               {"json": {"repeat": {"count": [f"Must be 2 to {MAX_COUNT}, or absent."]}}})  # fmt: skip
    series = AppointmentSeries(clinic_id=appointment.clinic_id, patient_id=appointment.patient_id,
                               every_days=every_days, count=count, booked=1)  # fmt: skip
    db.session.add(series)
    db.session.flush()
    appointment.series_id, appointment.series_number = series.id, 1
    return series


def next_time(appointment: Appointment, every_days: int, now: datetime | None = None) -> datetime:
    """When the next visit goes: the same clinic-local time, on the first day from ``every_days`` after
    ``appointment`` whose slot has room (and at least the slot lead ahead); the due day when none has."""
    clinic = appointment.clinic
    now = now or utcnow()
    local = local_time(clinic, appointment.appointment_datetime)
    first = None
    for extra in range(SEARCH_DAYS + 1):
        day = local.date() + timedelta(days=every_days + extra)
        at = datetime.combine(day, local.time(), tzinfo=zone(clinic)).astimezone(UTC)
        if at < now + SLOT_LEAD:
            continue
        first = first or at
        taken = db.session.scalar(
            select(func.count()).select_from(Appointment).where(
                Appointment.clinic_id == clinic.id, Appointment.status.in_(ACTIVE_STATUSES),
                Appointment.appointment_datetime >= at,
                Appointment.appointment_datetime < at + timedelta(minutes=clinic.slot_minutes))
        )  # fmt: skip
        if taken < clinic.slot_capacity:
            return at
    return first or now + SLOT_LEAD + timedelta(days=every_days)


def after_visit(actor, appointment: Appointment, *, end: bool = False) -> Appointment | None:
    """A visit of a series was attended, missed or cancelled: book the next one (or, with ``end``, end the series).

    Returns:
        The visit booked, or None (series over, ended, or the next one already booked).
    """
    series = db.session.get(AppointmentSeries, appointment.series_id) if appointment.series_id else None
    if series is None or series.ended_at is not None:
        return None
    if end:
        series.ended_at = utcnow()
        return None
    if series.count is not None and series.booked >= series.count:
        return None
    ahead = db.session.scalar(select(Appointment.id).where(
        Appointment.series_id == series.id, Appointment.status.in_(ACTIVE_STATUSES),
        Appointment.id != appointment.id).limit(1))  # fmt: skip
    if ahead is not None:
        return None
    at = next_time(appointment, series.every_days)
    try:
        with db.session.begin_nested():
            booked = create(actor, appointment.clinic, patient_phone=appointment.patient.phone,
                            appointment_datetime=at, language=appointment.language)  # fmt: skip
    except Conflict:  # the patient already has a visit booked at exactly that time
        return None
    booked.series_id, booked.series_number = series.id, (appointment.series_number or series.booked) + 1
    series.booked += 1
    return booked


def cancel_rest(actor, appointment: Appointment) -> Appointment:
    """Cancel this visit and end its series: nothing more is booked."""
    return cancel(actor, appointment, end_series=True)
