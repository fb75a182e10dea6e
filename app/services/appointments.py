"""Appointments: what the REST API calls, and the one name every caller imports.

The rules every entry point shares (booking, moving, cancelling, notices, texts) are in
:mod:`app.services.appointment_rules`, and a clinic's time zone, sending hours, reminder plan and free slots in
:mod:`app.services.clinic_calendar`; both are re-exported here, so ``appointments.cancel`` and
``appointments.free_slots`` work as they always have. This module adds the REST API's entry points: scope, lists,
edits and bulk changes.
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, false, or_, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import contains_eager, selectinload

from app.errors import Conflict, Forbidden, NotFound, ServiceError, ValidationFailed
from app.extensions import db
from app.models import Appointment, Clinic, Patient, utcnow
from app.models.appointment import ACTIVE_STATUSES, STATUS_MISSED
from app.services import audit, clinics, series
from app.services.appointment_rules import (  # noqa: F401 (re-exported: the rules every caller uses)
    cancel,
    channel_of,
    confirm,
    create,
    format_day,
    format_when,
    import_key,
    language_of,
    next_for_phone,
    notify,
    patient_for,
    record_for,
    request_change,
    reschedule,
    set_attendance,
    text_for,
)
from app.services.clinic_calendar import (  # noqa: F401 (re-exported: reminder plans, sending hours, slots)
    SLOT_LEAD,
    SLOT_SEARCH_DAYS,
    due_offset,
    free_slots,
    in_send_window,
    local_time,
    next_reminder,
    next_send_time,
    plan_reminders,
    reminder_key,
    replan_clinic,
    slot_is_free,
    zone,
)
from app.services.phones import to_e164

# --- The REST API: scope, lists, edits, bulk changes ------------------------------------------------------------
# Unlike the rules in appointment_rules, these are entry points: each ends its own transaction (commit, or rollback on error), as
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
    clauses = []
    for timezone in _zones(clinic):
        parts = [] if clinic is not None else [Clinic.timezone == timezone]
        if since is not None:
            parts.append(Appointment.appointment_datetime >= _bound(since, timezone, end=False))
        if until is not None:
            parts.append(Appointment.appointment_datetime < _bound(until, timezone, end=True))
        clauses.append(and_(*parts))
    return or_(false(), *clauses)


def more_days_ago(days: int, now: datetime, clinic: Clinic | None):
    """A WHERE clause: the appointment is on a day more than ``days`` days before ``now``'s, both days in its
    clinic's time. Each clinic has its own today: at 23:00 UTC it is already tomorrow in Gaborone.

    Without a clinic, the statement must join :class:`Clinic` (as for :func:`in_period`).
    """
    clauses = []
    for timezone in _zones(clinic):
        today = now.astimezone(ZoneInfo(timezone)).date()
        before = Appointment.appointment_datetime < _bound(today - timedelta(days=days), timezone, end=False)
        clauses.append(before if clinic is not None else and_(Clinic.timezone == timezone, before))
    return or_(false(), *clauses)


def _zones(clinic: Clinic | None) -> list[str]:
    """The time zone of ``clinic``, or of every clinic (a handful)."""
    return [clinic.timezone] if clinic is not None else list(db.session.scalars(select(Clinic.timezone).distinct()))


def visible(actor):
    """Appointments ``actor`` may see, joined with their clinic and patient: all for admins, else their clinic's."""
    stmt = (
        select(Appointment)
        .join(Clinic, Appointment.clinic_id == Clinic.id)
        .join(Patient, Appointment.patient_id == Patient.id)
        .options(
            contains_eager(Appointment.clinic), contains_eager(Appointment.patient), selectinload(Appointment.record)
        )
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
    appointment = create(
        actor,
        clinic,
        patient_phone=phone_of(data["patient_phone"], clinic, location=location),
        appointment_datetime=clinic_instant(clinic, data["appointment_datetime"]),
        language=data.get("language"),
        patient_name=data.get("patient_name"),
        external_ref=data.get("external_ref"),
        channel=data.get("channel"),
    )
    if data.get("repeat"):
        series.start(appointment, data["repeat"]["every_days"], data["repeat"].get("count"))
    if data.get("rebooks"):
        # A field of the body, not the resource: an unknown id, another clinic's or another patient's visit are all
        # the same 422 (no 404 or 403 telling another clinic's ids apart).
        missed = db.session.get(Appointment, data["rebooks"])
        if (missed is None or missed.status != STATUS_MISSED or missed.clinic_id != clinic.id
                or missed.patient_id != appointment.patient_id):  # fmt: skip
            raise ValidationFailed("rebooks must be a missed visit of the same patient at the same clinic.",
                                   {location: {"rebooks": ["Not a missed visit of this patient at this clinic."]}})  # fmt: skip
        appointment.rebooked_from_id = missed.id
    return appointment


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

    The name is the appointment's clinic's own (its :class:`PatientRecord` of the patient); other clinics' stay.

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
            record_for(appointment.clinic, appointment.patient).name = data["patient_name"]
        if "language" in data:
            appointment.language = data["language"]
        if "appointment_datetime" in data:
            at = clinic_instant(appointment.clinic, data["appointment_datetime"])
            if at != appointment.appointment_datetime:
                reschedule(actor, appointment, at)
        audit.record(actor, "appointment.update", "appointment", appointment.id, {"fields": sorted(data)})
    return appointment


def withdraw(actor, appointment_id: uuid.UUID, *, series_rest: bool = False) -> Appointment:
    """Cancel for the clinic (:func:`cancel`: no more reminders, the patient told in their language).

    A visit of a series: alone (the next one is booked), or with ``series_rest`` the rest of the series too.

    Raises:
        NotFound, Forbidden, Conflict: it is no longer active (already cancelled, attended, missed).
    """
    appointment = _own(actor, appointment_id)
    with _unit_of_work():
        return cancel(actor, appointment, end_series=series_rest)


def record_attendance(actor, appointment_id: uuid.UUID, attended: bool) -> Appointment:
    """Whether the patient came (:func:`set_attendance`).

    Raises:
        NotFound, Forbidden, Conflict: it was cancelled, or it is too early to say (attended before the visit's
            day in clinic time, missed before its time).
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
