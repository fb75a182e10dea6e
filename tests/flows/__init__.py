"""Helpers shared by the flow tests: clinics with known hours, booked appointments, and reading back what happened.

Appointments are booked through the real service (``app.services.appointments.create``), in the future relative
to now; no test asserts on the wall clock: expected texts and slots are computed from the same services.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select

from app.extensions import db
from app.messaging import inbox
from app.models import Appointment, Clinic, Contact, Conversation, Message
from app.models.message_log import DIRECTION_IN, DIRECTION_OUT
from app.services import appointments
from tests.factories import PHONE, book, make_clinic

__all__ = ["PHONE", "book", "make_clinic"]  # the shared builders, as the flow tests import them

OTHER_PHONE = "+26772345678"
LONGEST_NAME = "Tlokweng Main Clinic Extension"  # 30 characters: Clinic.sms_name's limit
# The longest weekday names: Wednesday (en); Labotlhano (Friday) and Mosupologo (Monday) (tn).
LONGEST_DAYS = {"en": "wed", "tn": "fri"}


def fill(clinic: Clinic, at, *, count: int | None = None) -> None:
    """Book other patients into the slot at ``at`` until it is full."""
    for n in range(count if count is not None else clinic.slot_capacity):
        appointments.create(None, clinic, patient_phone=f"+2677900{n:04d}", appointment_datetime=at)
    db.session.commit()


def set_language(address: str, language: str | None) -> None:
    """The contact's own language choice (as texting SETSWANA or ENGLISH sets it)."""
    inbox.contact_for(address).language = language
    db.session.commit()


def reload(row):
    db.session.expire_all()
    return db.session.get(type(row), row.id)


def contact(address: str = PHONE) -> Contact | None:
    db.session.expire_all()
    return db.session.scalar(select(Contact).where(Contact.address == address))


def conversation(address: str = PHONE, channel: str = "sms") -> Conversation | None:
    db.session.expire_all()
    return db.session.scalar(
        select(Conversation)
        .join(Contact, Contact.id == Conversation.contact_id)
        .where(Contact.address == address, Conversation.channel == channel)
    )


def outbound(address: str = PHONE) -> list[Message]:
    """Every outbound row to ``address``, oldest first."""
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(Message)
            .where(Message.direction == DIRECTION_OUT, Message.address == address)
            .order_by(Message.created_at, Message.id)
        )
    )


def inbound_rows(address: str = PHONE) -> list[Message]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(Message)
            .where(Message.direction == DIRECTION_IN, Message.address == address)
            .order_by(Message.created_at, Message.id)
        )
    )


def reply_to(message_id: uuid.UUID) -> Message | None:
    db.session.expire_all()
    return db.session.scalar(select(Message).where(Message.reply_to_id == message_id))


def when(appointment: Appointment, at=None, language: str | None = None) -> str:
    """How the texts show ``at`` (default: the appointment's time) in the appointment's language."""
    return appointments.format_when(appointment.clinic, at or appointment.appointment_datetime,
                                    language or appointments.language_of(appointment))  # fmt: skip
