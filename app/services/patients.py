"""Patients through the API: search, one patient with their appointments and messages, and erasure.

Staff and viewers see the patients who have an appointment at their clinic, and of those only their clinic's
appointments and messages; admins see everyone. Every read is audited. Erasure (admin) is the right to erasure
under Botswana's and Ghana's data-protection acts: the person's name, number and message texts go; anonymous
counts (which clinic, when, what happened) stay for the reports.
"""

from __future__ import annotations

import uuid

from sqlalchemy import and_, or_, select, update

from app.errors import Forbidden, NotFound
from app.extensions import db
from app.models import Appointment, Clinic, Contact, Conversation, Message, Patient, utcnow
from app.models.message_log import DIRECTION_OUT, STATUS_FAILED, STATUS_QUEUED, STATUS_SCHEDULED
from app.services import audit
from app.services.appointments import phone_filter

MESSAGES_SHOWN = 200  # the newest messages in a patient's record; the message log has them all


def _visible(actor):
    stmt = select(Patient)
    if not actor.is_admin:
        stmt = stmt.where(
            Patient.id.in_(select(Appointment.patient_id).where(Appointment.clinic_id == actor.clinic_id))
        )
    return stmt


def _own(actor, patient_id: uuid.UUID) -> Patient:
    patient = db.session.get(Patient, patient_id)
    if patient is None:
        raise NotFound("No patient with this id.")
    if not actor.is_admin and not db.session.scalar(
        select(Appointment.id).where(Appointment.patient_id == patient.id, Appointment.clinic_id == actor.clinic_id)
        .limit(1)
    ):  # fmt: skip
        raise Forbidden("This patient has no appointment at your clinic.")
    return patient


def search(actor, *, page: int, per_page: int, phone: str | None = None):
    """A page of patients, newest first; ``phone`` matches exactly (E.164, or national in the staff member's
    clinic's country). An audited read."""
    stmt = _visible(actor).order_by(Patient.created_at.desc(), Patient.id)
    if phone is not None:
        clinic = db.session.get(Clinic, actor.clinic_id) if actor.clinic_id else None
        stmt = stmt.where(Patient.phone == phone_filter(phone, clinic))
    result = db.paginate(stmt, page=page, per_page=per_page, error_out=False)
    audit.record(actor, "patient.read", "patient", None,
                 {"view": "search", "filters": ["phone"] if phone is not None else [], "count": len(result.items)})  # fmt: skip
    db.session.commit()
    return result


def detail(actor, patient_id: uuid.UUID) -> tuple[Patient, list[Appointment], list[Message]]:
    """One patient with their appointments (newest first) and their newest messages: those about their
    appointments and those to or from their number. Staff and viewers get only their clinic's. An audited read.

    Raises:
        NotFound, Forbidden: no appointment at the caller's clinic.
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
    audit.record(actor, "patient.read", "patient", patient.id,
                 {"view": "one", "appointments": len(appointment_rows), "messages": len(messages)})  # fmt: skip
    db.session.commit()
    return patient, appointment_rows, messages


def erase(actor, patient_id: uuid.UUID) -> None:
    """Erase a patient's personal data (admin): idempotent, a second call changes nothing.

    The name goes and the number becomes ``erased:<patient id>``, on the patient and their contact; the contact's
    conversations forget their state; every message of the contact, its number or the patient's appointments
    loses its text, buttons and media and gets the erased address; messages still waiting to go out fail instead.
    Appointments keep clinic, time, status and counts for the reports, lose ``external_ref``, get
    ``import_key = erased:<appointment id>`` (a re-upload of the old file books anew) and no more reminders.

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
                  "next_reminder_offset": None} for a in appointment_ids],
            )  # fmt: skip
        contact.address, contact.name = erased, None
        patient.phone, patient.name, patient.erased_at = erased, None, utcnow()
        audit.record(actor, "patient.erase", "patient", patient.id,
                     {"appointments": len(appointment_ids), "messages": messages, "unsent": waiting})  # fmt: skip
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
