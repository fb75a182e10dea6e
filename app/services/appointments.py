"""Appointments: the rules every entry point shares (REST API, CSV import, patient replies, USSD, reminder jobs).

Times are stored in UTC and shown in the clinic's time zone. Reminders are planned on the appointment itself
(``next_reminder_at`` / ``next_reminder_offset``): the minute job (``app.services.upkeep``) only reads an index.
Each reminder's outbox key is unique per (appointment, offset, appointment time), so no reminder is sent twice,
and a moved appointment gets fresh reminders for its new time. Functions work in the caller's transaction and
never commit.
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, false, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import contains_eager

from app.errors import Conflict, Forbidden, NotFound, ServiceError, ValidationFailed
from app.extensions import db
from app.i18n import t
from app.messaging import inbox as messaging
from app.messaging.outbox import OptedOut, queue_outbound
from app.models import Appointment, Clinic, Patient, utcnow
from app.models.appointment import (
    ACTIVE_STATUSES,
    STATUS_ATTENDED,
    STATUS_CANCELLED,
    STATUS_CONFIRMED,
    STATUS_MISSED,
    STATUS_RESCHEDULE_REQUESTED,
    STATUS_RESCHEDULED,
)
from app.models.clinic import WEEKDAYS
from app.models.message_log import KIND_NOTICE
from app.services import audit, clinics
from app.services.phones import to_e164

SLOT_LEAD = timedelta(hours=2)  # a slot offered to a patient starts at least this long from now
SLOT_SEARCH_DAYS = 60  # how far ahead free slots are looked for


# --- Time and language ------------------------------------------------------------------------------------------


def zone(clinic: Clinic) -> ZoneInfo:
    """The clinic's time zone."""
    return ZoneInfo(clinic.timezone)


def local_time(clinic: Clinic, at: datetime) -> datetime:
    """A UTC instant as the clinic's wall-clock time."""
    return at.astimezone(zone(clinic))


def language_of(appointment: Appointment) -> str:
    """The language to write to the patient about ``appointment``: its own, else the patient's, else the clinic's."""
    return appointment.language or appointment.patient.language or appointment.clinic.default_language


def format_when(clinic: Clinic, at: datetime, language: str) -> str:
    """``at`` in clinic time as SMS texts show it: ``Tuesday 04/03 at 09:00`` / ``Labobedi 04/03 ka 09:00``."""
    moment = local_time(clinic, at)
    weekday = t("weekdays", language).split(",")[moment.weekday()]
    return t("when", language, weekday=weekday, date=moment.strftime("%d/%m"), time=moment.strftime("%H:%M"))


def text_for(appointment: Appointment, key: str, **params) -> str:
    """A catalog text about ``appointment`` in its language, with the clinic's SMS name and the time filled in."""
    language = language_of(appointment)
    when = format_when(appointment.clinic, appointment.appointment_datetime, language)
    return t(key, language, clinic=appointment.clinic.sms_name, when=when, **params)


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


# --- Patients ---------------------------------------------------------------------------------------------------


def patient_for(phone: str, *, name: str | None = None, language: str | None = None,
                channel: str | None = None) -> Patient:  # fmt: skip
    """The patient with this E.164 number, created (with its contact) on first use.

    A given name fills an empty one; a language is kept only when the person has not chosen one themselves (by
    texting SETSWANA or ENGLISH).
    """
    patient = db.session.scalar(select(Patient).where(Patient.phone == phone))
    if patient is None:
        contact = messaging.contact_for(phone)
        patient = Patient(phone=phone, contact_id=contact.id, contact=contact, name=name or None,
                          preferred_channel=channel or "sms")  # fmt: skip
        db.session.add(patient)
        db.session.flush()
    if name and not patient.name:
        patient.name = name
    if channel:
        patient.preferred_channel = channel
    if language and patient.contact.language is None:
        patient.contact.language = language
    return patient


def import_key(*, external_ref: str | None, phone: str, at: datetime) -> str:
    """What a re-upload of the same appointment is recognised by: the clinic's reference, else number + time."""
    if external_ref:
        return f"ref:{external_ref}"
    return f"at:{phone}|{at.astimezone(UTC).strftime('%Y-%m-%dT%H:%MZ')}"


# --- Changes ----------------------------------------------------------------------------------------------------


def create(actor, clinic: Clinic, *, patient_phone: str, appointment_datetime: datetime, language: str | None = None,
           patient_name: str | None = None, external_ref: str | None = None,
           channel: str | None = None) -> Appointment:  # fmt: skip
    """Book an appointment (API or import). Sends nothing unless the clinic turned on booking confirmations.

    Raises:
        Conflict: the clinic already has this appointment (same reference, or same number and time).
    """
    _require_future(appointment_datetime)
    key = import_key(external_ref=external_ref, phone=patient_phone, at=appointment_datetime)
    if db.session.scalar(
        select(Appointment.id).where(Appointment.clinic_id == clinic.id, Appointment.import_key == key)
    ):
        raise Conflict("This clinic already has this appointment (same external_ref, or same number and time).")
    patient = patient_for(patient_phone, name=patient_name, language=language, channel=channel)
    appointment = Appointment(clinic_id=clinic.id, clinic=clinic, patient_id=patient.id, patient=patient,
                              appointment_datetime=appointment_datetime, language=language, external_ref=external_ref,
                              import_key=key, channel=patient.preferred_channel,
                              created_by=getattr(actor, "user_id", None))  # fmt: skip
    db.session.add(appointment)
    db.session.flush()
    plan_reminders(appointment)
    if clinic.booking_confirmation:
        notify(appointment, "appointment_booked", "booked")
    audit.record(actor, "appointment.create", "appointment", appointment.id, {"clinic_id": str(clinic.id)})
    return appointment


def reschedule(actor, appointment: Appointment, at: datetime, *, by_patient: bool = False) -> Appointment:
    """Move an appointment. The patient's own choice confirms it; a move by the clinic tells the patient.

    Pending reminders for the old time are not sent (checked at send time); new ones are planned for the new time.
    """
    _require_active(appointment)
    _require_future(at)
    appointment.appointment_datetime = at
    if by_patient:
        appointment.status, appointment.confirmed_at = STATUS_CONFIRMED, utcnow()
    else:
        appointment.status = STATUS_RESCHEDULED
    plan_reminders(appointment)
    if not by_patient:
        notify(appointment, "appointment_moved", "moved")
    audit.record(actor, "appointment.reschedule", "appointment", appointment.id, {"by": _who(by_patient)})
    return appointment


def cancel(actor, appointment: Appointment, *, by_patient: bool = False) -> Appointment:
    """Cancel: no more reminders. Cancelled by the clinic, the patient is told; by the patient, the flow answers."""
    _require_active(appointment)
    appointment.status, appointment.cancelled_by = STATUS_CANCELLED, _who(by_patient)
    plan_reminders(appointment)
    if not by_patient:
        notify(appointment, "appointment_cancelled_by_clinic", "cancelled")
    audit.record(actor, "appointment.cancel", "appointment", appointment.id, {"by": _who(by_patient)})
    return appointment


def confirm(actor, appointment: Appointment) -> Appointment:
    """The patient says they will come."""
    _require_active(appointment)
    appointment.status, appointment.confirmed_at = STATUS_CONFIRMED, utcnow()
    audit.record(actor, "appointment.confirm", "appointment", appointment.id, {"by": "patient"})
    return appointment


def request_change(actor, appointment: Appointment) -> list[datetime]:
    """The patient wants another time: mark it and return the free slots to offer (at most 3)."""
    _require_active(appointment)
    appointment.status = STATUS_RESCHEDULE_REQUESTED
    audit.record(actor, "appointment.request_change", "appointment", appointment.id, {"by": "patient"})
    return free_slots(appointment.clinic, exclude=appointment.id)


def set_attendance(actor, appointment: Appointment, attended: bool) -> Appointment:
    """Record whether the patient came (staff, or the nightly job for ``missed``)."""
    if appointment.status == STATUS_CANCELLED:
        raise Conflict("This appointment was cancelled; book a new one instead.")
    appointment.attended = attended
    appointment.status = STATUS_ATTENDED if attended else STATUS_MISSED
    plan_reminders(appointment)
    audit.record(actor, "appointment.attendance", "appointment", appointment.id, {"attended": attended})
    return appointment


def notify(appointment: Appointment, key: str, event: str) -> None:
    """Tell the patient about a change (booked, moved, cancelled) through the outbox, once per change.

    Nothing is sent to a patient who opted out: the change itself stands.
    """
    at = int(appointment.appointment_datetime.timestamp())
    with contextlib.suppress(OptedOut):
        queue_outbound(
            channel=appointment.patient.preferred_channel,
            address=appointment.patient.phone,
            text=text_for(appointment, key),
            language=language_of(appointment),
            kind=KIND_NOTICE,
            clinic_id=appointment.clinic_id,
            appointment_id=appointment.id,
            dedupe_key=f"{event}:{appointment.id}:{at}",
        )


def _who(by_patient: bool) -> str:
    return "patient" if by_patient else "clinic"


def _require_active(appointment: Appointment) -> None:
    if appointment.status not in ACTIVE_STATUSES:
        raise Conflict(f"This appointment is {appointment.status.replace('_', ' ')}; it can no longer be changed.")


def _require_future(at: datetime) -> None:
    if at <= utcnow():
        raise ValidationFailed(
            "The appointment time has passed.", {"json": {"appointment_datetime": ["Must be in the future."]}}
        )


# --- Finding appointments and slots -----------------------------------------------------------------------------


def next_for_phone(phone: str, now: datetime | None = None) -> Appointment | None:
    """The patient's nearest upcoming active appointment (at any clinic): what a reply is about."""
    now = now or utcnow()
    return db.session.scalar(
        select(Appointment)
        .join(Patient, Appointment.patient_id == Patient.id)
        .where(Patient.phone == phone, Appointment.status.in_(ACTIVE_STATUSES), Appointment.appointment_datetime > now)
        .order_by(Appointment.appointment_datetime)
        .limit(1)
    )


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


# --- The REST API: scope, lists, edits, bulk changes, re-planning -----------------------------------------------
# Unlike the rules above, these are entry points: each ends its own transaction (commit, or rollback on error), as
# the other services the API calls do. Reads of patient data are audited.

BULK_CREATE, BULK_CANCEL, BULK_RESCHEDULE = "create", "cancel", "reschedule"
UPCOMING_DAYS = 7


@contextlib.contextmanager
def _unit_of_work():
    """Commit what the block did, or roll all of it back: an error never leaves a half-made change behind."""
    try:
        yield
    except Exception:
        db.session.rollback()
        raise
    db.session.commit()


def phone_of(value: str, clinic: Clinic | None, *, field: str = "patient_phone", location: str = "json") -> str:
    """A patient's number in E.164; a national number is read in the clinic's country.

    Raises:
        ValidationFailed: not a valid number (422 naming ``field``).
    """
    try:
        return to_e164(value, clinic.country if clinic is not None else None)
    except ValueError as exc:
        raise ValidationFailed("The patient's phone number is not valid.", {location: {field: [str(exc)]}}) from exc


def phone_filter(value: str, clinic: Clinic | None) -> str:
    """What a ``phone`` filter matches exactly: the number in E.164 when it reads as one, else the text as given
    (so ``erased:<id>`` and numbers of another country still match, and a filter is never an error)."""
    try:
        return to_e164(value, clinic.country if clinic is not None else None)
    except ValueError:
        return value.strip()


def clinic_instant(clinic: Clinic, moment: datetime) -> datetime:
    """``moment`` as a UTC instant; without an offset it is the clinic's wall-clock time."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone(clinic))
    return moment.astimezone(UTC)


def _bound(value: date | datetime, timezone: str, *, end: bool) -> datetime:
    """A period's bound as a UTC instant: a date is its day's start (``end``: the next day's start) in
    ``timezone``; a date-time without offset is read in ``timezone``."""
    tz = ZoneInfo(timezone)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=tz)).astimezone(UTC)
    day = value + timedelta(days=1) if end else value
    return datetime.combine(day, time.min, tzinfo=tz).astimezone(UTC)


def in_period(since: date | datetime | None, until: date | datetime | None, clinic: Clinic | None):
    """A WHERE clause: the appointment falls in [since, until) in its clinic's time.

    Without a clinic, the bounds are worked out once per time zone in use (a handful), so one query covers clinics
    in Botswana and Ghana alike; the statement must join :class:`Clinic`.
    """
    if since is None and until is None:
        return true()
    zones = [clinic.timezone] if clinic is not None else db.session.scalars(select(Clinic.timezone).distinct()).all()
    clauses = []
    for timezone in zones:
        parts = [] if clinic is not None else [Clinic.timezone == timezone]
        if since is not None:
            parts.append(Appointment.appointment_datetime >= _bound(since, timezone, end=False))
        if until is not None:
            parts.append(Appointment.appointment_datetime < _bound(until, timezone, end=True))
        clauses.append(and_(*parts))
    return or_(false(), *clauses)


def visible(actor):
    """Appointments ``actor`` may see, joined with their clinic and patient: all for admins, else their clinic's."""
    stmt = (
        select(Appointment)
        .join(Clinic, Appointment.clinic_id == Clinic.id)
        .join(Patient, Appointment.patient_id == Patient.id)
        .options(contains_eager(Appointment.clinic), contains_eager(Appointment.patient))
    )
    if not actor.is_admin:
        stmt = stmt.where(Appointment.clinic_id == actor.clinic_id)
    return stmt


def _own(actor, appointment_id: uuid.UUID) -> Appointment:
    appointment = db.session.get(Appointment, appointment_id)
    if appointment is None:
        raise NotFound("No appointment with this id.")
    if not actor.is_admin and appointment.clinic_id != actor.clinic_id:
        raise Forbidden("This appointment is not your clinic's.")
    return appointment


def read(actor, appointment_id: uuid.UUID) -> Appointment:
    """One appointment (an audited read).

    Raises:
        NotFound, Forbidden: another clinic's.
    """
    appointment = _own(actor, appointment_id)
    audit.record(actor, "appointment.read", "appointment", appointment.id, {"view": "one"})
    db.session.commit()
    return appointment


def list_appointments(actor, *, page: int, per_page: int, since: date | datetime | None = None,
                      until: date | datetime | None = None, status: str | None = None, phone: str | None = None,
                      clinic_id: uuid.UUID | None = None):  # fmt: skip
    """A page of appointments in time order, filtered; an audited read (filter names, never their values).

    Dates are whole days in each clinic's time; ``until`` is exclusive for a date-time, inclusive for a date.
    """
    clinic = clinics.clinic_for(actor, clinic_id, location="query")
    stmt = visible(actor).where(in_period(since, until, clinic))
    if clinic is not None:
        stmt = stmt.where(Appointment.clinic_id == clinic.id)
    if status is not None:
        stmt = stmt.where(Appointment.status == status)
    if phone is not None:
        stmt = stmt.where(Patient.phone == phone_filter(phone, clinic))
    stmt = stmt.order_by(Appointment.appointment_datetime, Appointment.id)
    result = db.paginate(stmt, page=page, per_page=per_page, error_out=False)
    filters = sorted(k for k, v in {"from": since, "to": until, "status": status, "phone": phone,
                                    "clinic_id": clinic_id}.items() if v is not None)  # fmt: skip
    audit.record(actor, "appointment.read", "appointment", None,
                 {"view": "list", "filters": filters, "count": len(result.items)})  # fmt: skip
    db.session.commit()
    return result


def upcoming(actor, *, page: int, per_page: int, clinic_id: uuid.UUID | None = None, now: datetime | None = None):
    """Active appointments from now to the end of the 7th day (today included) in each clinic's time, soonest
    first; an audited read."""
    now = now or utcnow()
    clinic = clinics.clinic_for(actor, clinic_id, location="query")
    zones = [clinic.timezone] if clinic is not None else db.session.scalars(select(Clinic.timezone).distinct()).all()
    ends = []
    for timezone in zones:
        today = now.astimezone(ZoneInfo(timezone)).date()
        end = _bound(today + timedelta(days=UPCOMING_DAYS - 1), timezone, end=True)
        ends.append(
            and_(Appointment.appointment_datetime < end, *([Clinic.timezone == timezone] if clinic is None else []))
        )
    stmt = visible(actor).where(
        Appointment.status.in_(ACTIVE_STATUSES), Appointment.appointment_datetime > now, or_(false(), *ends)
    )
    if clinic is not None:
        stmt = stmt.where(Appointment.clinic_id == clinic.id)
    stmt = stmt.order_by(Appointment.appointment_datetime, Appointment.id)
    result = db.paginate(stmt, page=page, per_page=per_page, error_out=False)
    audit.record(actor, "appointment.read", "appointment", None, {"view": "upcoming", "count": len(result.items)})
    db.session.commit()
    return result


def _create(actor, data: dict, *, location: str = "json") -> Appointment:
    clinic = clinics.clinic_for(actor, data.get("clinic_id"), location=location, required=True)
    return create(
        actor,
        clinic,
        patient_phone=phone_of(data["patient_phone"], clinic, location=location),
        appointment_datetime=clinic_instant(clinic, data["appointment_datetime"]),
        language=data.get("language"),
        patient_name=data.get("patient_name"),
        external_ref=data.get("external_ref"),
        channel=data.get("channel"),
    )


def book(actor, data: dict) -> Appointment:
    """Book an appointment from the API's fields (the CSV columns): the number is read in the clinic's country,
    a time without offset in the clinic's time.

    Raises:
        ValidationFailed (a bad number or clinic, a past time), Forbidden (another clinic), Conflict (a duplicate).
    """
    with _unit_of_work():
        return _create(actor, data)


def edit(actor, appointment_id: uuid.UUID, data: dict) -> Appointment:
    """Change an appointment's time, language, patient name or external reference; only the fields given.

    A new time is a reschedule by the clinic (:func:`reschedule`: reminders re-planned, the patient told).

    Raises:
        NotFound, Forbidden, Conflict (the appointment is over, or the reference is another appointment's),
        ValidationFailed (a past time).
    """
    appointment = _own(actor, appointment_id)
    with _unit_of_work():
        if "external_ref" in data and data["external_ref"] != appointment.external_ref:
            key = import_key(external_ref=data["external_ref"], phone=appointment.patient.phone,
                             at=appointment.appointment_datetime)  # fmt: skip
            taken = db.session.scalar(
                select(Appointment.id).where(Appointment.clinic_id == appointment.clinic_id,
                                             Appointment.import_key == key, Appointment.id != appointment.id)
            )  # fmt: skip
            if taken:
                raise Conflict("Another appointment of this clinic has this external_ref (or number and time).")
            appointment.external_ref, appointment.import_key = data["external_ref"], key
        if "patient_name" in data:
            if appointment.patient.erased_at is not None:
                raise Conflict("This patient's personal data was erased; book a new appointment instead.")
            appointment.patient.name = data["patient_name"]
        if "language" in data:
            appointment.language = data["language"]
        if "appointment_datetime" in data:
            at = clinic_instant(appointment.clinic, data["appointment_datetime"])
            if at != appointment.appointment_datetime:
                reschedule(actor, appointment, at)
        audit.record(actor, "appointment.update", "appointment", appointment.id, {"fields": sorted(data)})
    return appointment


def withdraw(actor, appointment_id: uuid.UUID) -> Appointment:
    """Cancel for the clinic (:func:`cancel`: no more reminders, the patient told in their language).

    Raises:
        NotFound, Forbidden, Conflict: it is no longer active (already cancelled, attended, missed).
    """
    appointment = _own(actor, appointment_id)
    with _unit_of_work():
        return cancel(actor, appointment)


def record_attendance(actor, appointment_id: uuid.UUID, attended: bool) -> Appointment:
    """Whether the patient came (:func:`set_attendance`).

    Raises:
        NotFound, Forbidden, Conflict: it was cancelled.
    """
    appointment = _own(actor, appointment_id)
    with _unit_of_work():
        return set_attendance(actor, appointment, attended)


def _bulk_one(actor, item: dict) -> tuple[int, Appointment]:
    action = item["action"]
    if action == BULK_CREATE:
        return 201, _create(actor, item, location="item")
    appointment = _own(actor, item["id"])
    if action == BULK_CANCEL:
        return 200, cancel(actor, appointment)
    return 200, reschedule(actor, appointment, clinic_instant(appointment.clinic, item["appointment_datetime"]))


def bulk(actor, items: list[dict | ServiceError]) -> list[dict]:
    """Create, cancel and reschedule many appointments, each item on its own: one that fails (in its own SAVEPOINT)
    undoes nothing of the others. Items the API could not read arrive as the error to report.

    Args:
        actor: who acts; staff only for their clinic.
        items: ``{"action": "create", <book fields>}``, ``{"action": "cancel", "id"}`` or
            ``{"action": "reschedule", "id", "appointment_datetime"}``; or a :class:`ServiceError`.

    Returns:
        One result per item, in order: ``{"index", "status", "id"}`` or ``{"index", "status", "error"}``, where
        ``status`` is the HTTP status the item alone would have got.
    """
    results = []
    try:
        for index, item in enumerate(items):
            if isinstance(item, ServiceError):
                results.append(_bulk_error(index, item.status, item.code, item.message, item.details))
                continue
            try:
                with db.session.begin_nested():
                    status, appointment = _bulk_one(actor, item)
                    db.session.flush()
                results.append({"index": index, "status": status, "id": appointment.id})
            except ServiceError as exc:
                results.append(_bulk_error(index, exc.status, exc.code, exc.message, exc.details))
            except IntegrityError:
                results.append(_bulk_error(index, 409, "conflict", "This conflicts with data that already exists."))
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return results


def _bulk_error(index: int, status: int, code: str, message: str, details: dict | None = None) -> dict:
    return {"index": index, "status": status, "error": {"code": code, "message": message, "details": details or {}}}


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
