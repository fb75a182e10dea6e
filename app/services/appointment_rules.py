"""Appointments: the rules every entry point shares (REST API, CSV import, patient replies, USSD, reminder jobs).

Booking, moving, cancelling, confirming and attendance; the patient a booking is for; the texts about an
appointment in the patient's language, and the notices that tell them of a change. Times are stored in UTC and
shown in the clinic's time zone; reminder plans and free slots come from :mod:`app.services.clinic_calendar`.
Functions work in the caller's transaction and never commit.
"""

from __future__ import annotations

import contextlib
import functools
from datetime import UTC, datetime

from sqlalchemy import select

from app.errors import Conflict, ValidationFailed
from app.extensions import db
from app.i18n import t
from app.messaging import inbox as messaging
from app.messaging.outbox import OptedOut, queue_outbound
from app.models import Appointment, Clinic, Patient, PatientRecord, utcnow
from app.models.appointment import (
    ACTIVE_STATUSES,
    STATUS_ATTENDED,
    STATUS_CANCELLED,
    STATUS_CONFIRMED,
    STATUS_MISSED,
    STATUS_RESCHEDULE_REQUESTED,
    STATUS_RESCHEDULED,
    STATUS_SCHEDULED,
)
from app.models.channel import SMS
from app.models.message_log import KIND_NOTICE
from app.services import audit
from app.services.clinic_calendar import free_slots, local_time, next_send_time, plan_reminders

# --- Language ---------------------------------------------------------------------------------------------------


def language_of(appointment: Appointment) -> str:
    """The language to write to the patient about ``appointment``: its own, else the patient's, else the clinic's."""
    return appointment.language or appointment.patient.language or appointment.clinic.default_language


def format_when(clinic: Clinic, at: datetime, language: str) -> str:
    """``at`` in clinic time as SMS texts show it: ``Tuesday 04/03 at 09:00`` / ``Labobedi 04/03 ka 09:00``."""
    moment = local_time(clinic, at)
    weekday = t("weekdays", language).split(",")[moment.weekday()]
    return t("when", language, weekday=weekday, date=moment.strftime("%d/%m"), time=moment.strftime("%H:%M"))


def format_day(clinic: Clinic, at: datetime, language: str) -> str:
    """``at``'s day in clinic time: ``Tuesday 04/03`` / ``Labobedi 04/03``."""
    moment = local_time(clinic, at)
    return f"{t('weekdays', language).split(',')[moment.weekday()]} {moment.strftime('%d/%m')}"


def text_for(appointment: Appointment, key: str, **params) -> str:
    """A catalog text about ``appointment`` in its language, with the clinic's SMS name, the time (``when``) and
    the day (``day``) filled in."""
    language = language_of(appointment)
    at = appointment.appointment_datetime
    when = format_when(appointment.clinic, at, language)
    return t(key, language, clinic=appointment.clinic.sms_name, when=when,
             day=format_day(appointment.clinic, at, language), **params)  # fmt: skip


# --- Patients ---------------------------------------------------------------------------------------------------


def patient_for(phone: str, *, language: str | None = None) -> Patient:
    """The patient with this E.164 number, created (with its contact) on first use.

    A language is kept only when the person has not chosen one themselves (by texting SETSWANA or ENGLISH).
    """
    return _patient_for(phone, language=language)[0]


def _patient_for(phone: str, *, language: str | None = None) -> tuple[Patient, bool]:
    """:func:`patient_for`, and whether the patient was created just now (so no clinic has a record of them)."""
    patient = db.session.scalar(select(Patient).where(Patient.phone == phone))
    created = patient is None
    if created:
        contact = messaging.contact_for(phone)
        patient = Patient(phone=phone, contact_id=contact.id, contact=contact)
        db.session.add(patient)
        db.session.flush()
    if language and patient.contact.language is None:
        patient.contact.language = language
    return patient, created


def record_for(clinic: Clinic, patient: Patient, *, name: str | None = None, channel: str | None = None,
               new_patient: bool = False) -> PatientRecord:  # fmt: skip
    """``clinic``'s own record of ``patient``, created on first use; no other clinic's is read or changed.

    A given name fills an empty one (a booking never renames a patient the clinic already named); a given channel
    is where the clinic's texts to them go from now on. ``new_patient``: the patient was created in this
    transaction, so there is no record to look for.
    """
    record = None if new_patient else db.session.scalar(
        select(PatientRecord).where(PatientRecord.patient_id == patient.id, PatientRecord.clinic_id == clinic.id)
    )  # fmt: skip
    if record is None:
        record = PatientRecord(patient_id=patient.id, clinic_id=clinic.id, name=name or None,
                               preferred_channel=channel or SMS)  # fmt: skip
        db.session.add(record)
        db.session.flush()
    if name and not record.name:
        record.name = name
    if channel:
        record.preferred_channel = channel
    return record


def channel_of(appointment: Appointment) -> str:
    """Where texts about ``appointment`` go: the channel its clinic's record of the patient names (SMS without one)."""
    record = appointment.record
    return record.preferred_channel if record is not None else SMS


def import_key(*, external_ref: str | None, phone: str, at: datetime) -> str:
    """What a re-upload of the same appointment is recognised by: the clinic's reference, else number + time."""
    if external_ref:
        return f"ref:{external_ref}"
    return f"at:{phone}|{_utc_minute(at)}"


@functools.lru_cache(maxsize=4096)  # an upload of 100,000 rows has a few hundred distinct times
def _utc_minute(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


# --- Changes ----------------------------------------------------------------------------------------------------


def create(actor, clinic: Clinic, *, patient_phone: str, appointment_datetime: datetime, language: str | None = None,
           patient_name: str | None = None, external_ref: str | None = None,
           channel: str | None = None, notify_booking: bool = True) -> Appointment:  # fmt: skip
    """Book an appointment (API or import). Sends nothing unless the clinic turned on booking confirmations.

    The name and channel given go to ``clinic``'s own record of the patient (:func:`record_for`).
    ``notify_booking=False``: no booking notice even then (the caller's own reply says it).

    Raises:
        Conflict: the clinic already has this appointment (same reference, or same number and time).
    """
    _require_future(appointment_datetime)
    key = import_key(external_ref=external_ref, phone=patient_phone, at=appointment_datetime)
    if db.session.scalar(
        select(Appointment.id).where(Appointment.clinic_id == clinic.id, Appointment.import_key == key)
    ):
        raise Conflict("This clinic already has this appointment (same external_ref, or same number and time).")
    patient, new_patient = _patient_for(patient_phone, language=language)
    record = record_for(clinic, patient, name=patient_name, channel=channel, new_patient=new_patient)
    appointment = Appointment(clinic_id=clinic.id, clinic=clinic, patient_id=patient.id, patient=patient,
                              appointment_datetime=appointment_datetime, language=language, external_ref=external_ref,
                              import_key=key, channel=record.preferred_channel, status=STATUS_SCHEDULED,
                              created_by=getattr(actor, "user_id", None))  # fmt: skip
    # Planned before the INSERT (the status set here, not left to the column default, is what it reads): the row
    # goes in with its first reminder, instead of an UPDATE after it (a bulk request of 1,000 saves 1,000 of them).
    plan_reminders(appointment)
    db.session.add(appointment)
    db.session.flush()
    if clinic.booking_confirmation and notify_booking:
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


def cancel(actor, appointment: Appointment, *, by_patient: bool = False, end_series: bool = False) -> Appointment:
    """Cancel: no more reminders. Cancelled by the clinic, the patient is told; by the patient, the flow answers.

    A visit of a series is skipped: the next one is booked (:mod:`app.services.series`), unless ``end_series``
    (the clinic cancels the rest of the series).
    """
    _require_active(appointment)
    appointment.status, appointment.cancelled_by = STATUS_CANCELLED, _who(by_patient)
    plan_reminders(appointment)
    if not by_patient:
        notify(appointment, "appointment_cancelled_by_clinic", "cancelled")
    audit.record(actor, "appointment.cancel", "appointment", appointment.id,
                 {"by": _who(by_patient), **({"series": "rest"} if end_series else {})})  # fmt: skip
    _series_next(actor, appointment, end=end_series)
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


def set_attendance(actor, appointment: Appointment, attended: bool, *, now: datetime | None = None) -> Appointment:
    """Record whether the patient came (staff, through the API or the USSD menu).

    Attended is accepted from the visit's day in clinic time on (a patient may come early that day), missed once
    the visit's time has passed: marked missed sooner, the patient would be sent the recovery SMS ("we missed
    you") for a visit still to come. A refused change writes nothing. Marking a missed visit missed again owes no
    second recovery SMS.

    Args:
        actor: who records it (audited).
        appointment: the visit.
        attended: whether the patient came.
        now: the current time (UTC); defaults to now.

    Returns:
        The appointment, ``attended`` or ``missed``.

    Raises:
        Conflict: it was cancelled, or it is too early to say (the message gives the visit's day and from when).
    """
    if appointment.status == STATUS_CANCELLED:
        raise Conflict("This appointment was cancelled; book a new one instead.")
    now = now or utcnow()
    _require_attendance_due(appointment, attended, now)
    was = appointment.status
    appointment.attended = attended
    appointment.status = STATUS_ATTENDED if attended else STATUS_MISSED
    plan_reminders(appointment, now)
    # A visit newly missed owes the patient one recovery SMS (app.services.recovery), at the next allowed time.
    if not attended and was != STATUS_MISSED:
        appointment.recovery_at = next_send_time(appointment.clinic, now)
    elif attended:
        appointment.recovery_at = None
    audit.record(actor, "appointment.attendance", "appointment", appointment.id, {"attended": attended})
    if was in ACTIVE_STATUSES:
        _series_next(actor, appointment)
    return appointment


def _require_attendance_due(appointment: Appointment, attended: bool, now: datetime) -> None:
    clinic, at = appointment.clinic, appointment.appointment_datetime
    day = local_time(clinic, at).date()
    # The clinic's calendar day decides, not UTC's: 00:30 in Gaborone is still the previous day in UTC.
    if attended and local_time(clinic, now).date() < day:
        raise Conflict(f"This visit is on {day.isoformat()}: it can be marked attended from that day on "
                       "(clinic time).")  # fmt: skip
    if not attended and at > now:
        raise Conflict(f"This visit is on {day.isoformat()}: it can be marked missed once its time has passed.")


def _series_next(actor, appointment: Appointment, *, end: bool = False) -> None:
    if appointment.series_id is not None:
        from app.services import series  # late: series books through this module

        series.after_visit(actor, appointment, end=end)


def notify(appointment: Appointment, key: str, event: str) -> None:
    """Tell the patient about a change (booked, moved, cancelled) through the outbox, once per change.

    Nothing is sent to a patient who opted out: the change itself stands.
    """
    at = int(appointment.appointment_datetime.timestamp())
    with contextlib.suppress(OptedOut):
        queue_outbound(
            channel=channel_of(appointment),
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


# --- Finding appointments ---------------------------------------------------------------------------------------


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
