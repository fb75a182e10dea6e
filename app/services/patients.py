"""Patients through the API: search, one patient with their appointments and messages, their clinic's record,
and erasure.

What a clinic records about a person (a name, the channel for its texts, notes) is that clinic's
:class:`PatientRecord`; the number and the person's own choices (language, opt-out) are the patient's, shared. Staff
and viewers see a patient only while their clinic has a current relationship with them: an appointment of the
clinic that is not cancelled (whatever its time or outcome; cancelled by the clinic or the patient alike). Booking a
number and cancelling, the usual way to reach a stranger's number, thus gives no lasting access; a message the clinic
sent does not count either, since staff may text any number. Of such a patient they see only their clinic's record,
appointments and messages; another clinic's is never shown, whether or not it has one. Admins see every patient with
every clinic's record. Every read is audited.

Erasure (admin) is the right to erasure under Botswana's and Ghana's data-protection acts: the person's number,
every clinic's name and notes for them, and message texts go; anonymous counts (which clinic, when, what happened)
stay for the reports.
"""

from __future__ import annotations

import uuid

from sqlalchemy import and_, or_, select, update

from app.errors import Conflict, Forbidden, NotFound
from app.extensions import db
from app.models import (
    Appointment,
    Clinic,
    Contact,
    Conversation,
    Message,
    Patient,
    PatientRecord,
    TracingOutcome,
    utcnow,
)
from app.models.appointment import STATUS_CANCELLED
from app.models.message_log import DIRECTION_OUT, STATUS_FAILED, STATUS_QUEUED, STATUS_SCHEDULED
from app.services import audit, clinics
from app.services.appointments import phone_filter, record_for

MESSAGES_SHOWN = 200  # the newest messages in a patient's record; the message log has them all
RECORD_FIELDS = ("name", "preferred_channel", "notes")  # what a clinic records about a person


def _related(clinic_id: uuid.UUID):
    """The ids of the patients ``clinic_id`` has a current relationship with: a non-cancelled appointment."""
    return select(Appointment.patient_id).where(Appointment.clinic_id == clinic_id,
                                                Appointment.status != STATUS_CANCELLED)  # fmt: skip


def _visible(actor):
    stmt = select(Patient)
    if not actor.is_admin:
        stmt = stmt.where(Patient.id.in_(_related(actor.clinic_id)))
    return stmt


def _own(actor, patient_id: uuid.UUID) -> Patient:
    patient = db.session.get(Patient, patient_id)
    if patient is None:
        raise NotFound("No patient with this id.")
    if not actor.is_admin and not db.session.scalar(_related(actor.clinic_id).where(
        Appointment.patient_id == patient.id).limit(1)
    ):  # fmt: skip
        raise Forbidden("This patient has no current appointment at your clinic.")
    return patient


def _records(actor, patient_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[PatientRecord]]:
    """The clinic records ``actor`` may read of each patient: their clinic's, or every clinic's for admins."""
    stmt = select(PatientRecord).where(PatientRecord.patient_id.in_(patient_ids))
    if not actor.is_admin:
        stmt = stmt.where(PatientRecord.clinic_id == actor.clinic_id)
    found: dict[uuid.UUID, list[PatientRecord]] = {patient_id: [] for patient_id in patient_ids}
    for record in db.session.scalars(stmt.order_by(PatientRecord.created_at, PatientRecord.clinic_id)):
        found[record.patient_id].append(record)
    return found


def _shown(actor, patient: Patient, records: list[PatientRecord]) -> dict:
    """A patient as ``actor`` may see them: the number's own facts, their clinic's record at the top level (none
    for admins, who read ``records``: every clinic's)."""
    own = None if actor.is_admin else next((r for r in records if r.clinic_id == actor.clinic_id), None)
    return {
        "id": patient.id, "phone": patient.phone, "language": patient.language, "opted_out_at": patient.opted_out_at,
        "erased_at": patient.erased_at, "created_at": patient.created_at,
        **{field: getattr(own, field) if own is not None else None for field in RECORD_FIELDS},
        "records": records,
    }  # fmt: skip


def search(actor, *, page: int, per_page: int, phone: str | None = None):
    """A page of patients (as :func:`_shown` puts them), newest first; ``phone`` matches exactly (E.164, or
    national in the staff member's clinic's country). Staff and viewers: only patients of a current appointment at
    their clinic. An audited read."""
    stmt = _visible(actor).order_by(Patient.created_at.desc(), Patient.id)
    if phone is not None:
        clinic = db.session.get(Clinic, actor.clinic_id) if actor.clinic_id else None
        stmt = stmt.where(Patient.phone == phone_filter(phone, clinic))
    result = db.paginate(stmt, page=page, per_page=per_page, error_out=False)
    records = _records(actor, [patient.id for patient in result.items])
    result.items = [_shown(actor, patient, records[patient.id]) for patient in result.items]
    audit.record(actor, "patient.read", "patient", None,
                 {"view": "search", "filters": ["phone"] if phone is not None else [], "count": len(result.items)})  # fmt: skip
    db.session.commit()
    return result


def detail(actor, patient_id: uuid.UUID) -> dict:
    """One patient (as :func:`_shown` puts them) with their appointments (newest first, under ``appointments``) and
    their newest messages (``messages``): those about their appointments and those to or from their number. Staff
    and viewers get only their clinic's record, appointments and messages. An audited read.

    Raises:
        NotFound, Forbidden: no current (non-cancelled) appointment at the caller's clinic.
    """
    patient = _own(actor, patient_id)
    appointments = select(Appointment).where(Appointment.patient_id == patient.id)
    about = select(Appointment.id).where(Appointment.patient_id == patient.id)
    theirs = Message.contact_id == patient.contact_id
    if not actor.is_admin:
        appointments = appointments.where(Appointment.clinic_id == actor.clinic_id)
        about = about.where(Appointment.clinic_id == actor.clinic_id)
        theirs = and_(theirs, Message.clinic_id == actor.clinic_id)
    appointment_rows = list(
        db.session.scalars(appointments.order_by(Appointment.appointment_datetime.desc(), Appointment.id))
    )
    messages = list(
        db.session.scalars(
            select(Message)
            .where(or_(Message.appointment_id.in_(about), theirs))
            .order_by(Message.created_at.desc(), Message.id)
            .limit(MESSAGES_SHOWN)
        )
    )
    shown = _shown(actor, patient, _records(actor, [patient.id])[patient.id])
    audit.record(actor, "patient.read", "patient", patient.id,
                 {"view": "one", "appointments": len(appointment_rows), "messages": len(messages)})  # fmt: skip
    db.session.commit()
    return {**shown, "appointments": appointment_rows, "messages": messages}


def update_record(actor, patient_id: uuid.UUID, data: dict) -> dict:
    """Change a clinic's own record of a patient: ``name``, ``preferred_channel``, ``notes``; only the fields given.

    Staff change their clinic's record, while the clinic has a current appointment with the patient (the record is
    made if missing); admins the record of the clinic they name in ``clinic_id``, which must have one. No other
    clinic's record changes. Returns the patient as :func:`_shown` puts them.

    Raises:
        NotFound: no such patient, or (admins) the clinic has no record of them. Forbidden: no current appointment
        at the caller's clinic, or another clinic named. ValidationFailed: an admin named no clinic, or an unknown
        one. Conflict: the patient's personal data was erased.
    """
    patient = _own(actor, patient_id)
    clinic = clinics.clinic_for(actor, data.get("clinic_id"), required=True)
    fields = {field: data[field] for field in RECORD_FIELDS if field in data}
    try:
        if patient.erased_at is not None and (fields.get("name") or fields.get("notes")):
            raise Conflict("This patient's personal data was erased; book a new appointment instead.")
        if actor.is_admin:
            record = db.session.scalar(select(PatientRecord).where(PatientRecord.patient_id == patient.id,
                                                                   PatientRecord.clinic_id == clinic.id))  # fmt: skip
            if record is None:
                raise NotFound("This clinic has no record of this patient.")
        else:
            record = record_for(clinic, patient)
        for field, value in fields.items():
            setattr(record, field, value)
        audit.record(actor, "patient.update", "patient", patient.id,
                     {"clinic_id": str(clinic.id), "fields": sorted(fields)})  # fmt: skip
        db.session.flush()
        shown = _shown(actor, patient, _records(actor, [patient.id])[patient.id])
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return shown


def erase(actor, patient_id: uuid.UUID) -> None:
    """Erase a patient's personal data (admin): idempotent, a second call changes nothing.

    The number becomes ``erased:<patient id>`` on the patient and their contact, whose name goes, and every clinic's
    record of them loses its name and notes (it keeps the channel, no personal data); the contact's
    conversations forget their state; every message of the contact, its number or the patient's appointments
    loses its text, buttons and media and gets the erased address; messages still waiting to go out fail instead.
    Appointments keep clinic, time, status and counts for the reports, lose ``external_ref``, get
    ``import_key = erased:<appointment id>`` (a re-upload of the old file books anew), no more reminders or
    recovery SMS, and their tracing outcomes lose their notes.

    Raises:
        NotFound: no such patient.
    """
    patient = db.session.get(Patient, patient_id)
    if patient is None:
        raise NotFound("No patient with this id.")
    if patient.erased_at is not None:
        audit.record(actor, "patient.erase", "patient", patient.id, {"already_erased": True})
        db.session.commit()
        return
    erased = f"erased:{patient.id}"
    contact = db.session.get(Contact, patient.contact_id)
    appointment_ids = list(db.session.scalars(select(Appointment.id).where(Appointment.patient_id == patient.id)))
    theirs = or_(
        Message.contact_id == contact.id,
        Message.address == patient.phone,
        Message.address == contact.address,
        Message.appointment_id.in_(appointment_ids),
    )
    try:
        waiting = db.session.execute(
            update(Message)
            .where(theirs, Message.direction == DIRECTION_OUT, Message.status.in_((STATUS_SCHEDULED, STATUS_QUEUED)))
            .values(status=STATUS_FAILED, error_code="erased", last_error="The recipient's data was erased.")
            .execution_options(synchronize_session=False)
        ).rowcount
        messages = db.session.execute(
            update(Message)
            .where(theirs)
            .values(text=None, address=erased, buttons=[], media=[], extra=None)  # extra: chat facts
            .execution_options(synchronize_session=False)
        ).rowcount
        db.session.execute(
            update(Conversation)
            .where(Conversation.contact_id == contact.id)
            .values(state={}, flow=None, session_id=None)
            .execution_options(synchronize_session=False)
        )
        if appointment_ids:
            db.session.execute(
                update(Appointment),
                [{"id": a, "external_ref": None, "import_key": f"erased:{a}", "next_reminder_at": None,
                  "next_reminder_offset": None, "recovery_at": None} for a in appointment_ids],
            )  # fmt: skip
            db.session.execute(  # tracing notes are health data about the person
                update(TracingOutcome).where(TracingOutcome.appointment_id.in_(appointment_ids)).values(note=None)
                .execution_options(synchronize_session=False)
            )  # fmt: skip
        db.session.execute(
            update(PatientRecord)
            .where(PatientRecord.patient_id == patient.id)
            .values(name=None, notes=None, updated_at=utcnow())
        )
        contact.address, contact.name = erased, None
        patient.phone, patient.erased_at = erased, utcnow()
        audit.record(actor, "patient.erase", "patient", patient.id,
                     {"appointments": len(appointment_ids), "messages": messages, "unsent": waiting})  # fmt: skip
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
