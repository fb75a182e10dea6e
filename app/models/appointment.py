"""Patients and their clinic appointments, as the clinics' own systems know them."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, Timestamps, UUIDPrimaryKey
from app.models.channel import PATIENT_CHANNELS, SMS
from app.models.clinic import LANGUAGES, Clinic
from app.models.contact import Contact


class Patient(UUIDPrimaryKey, Timestamps, Base):
    """A person with appointments. One per phone number, across clinics.

    Language and consent live on the patient's :class:`Contact` (the same number's record for every channel), so
    a ``SETSWANA`` or ``STOP`` sent by SMS is honoured for reminders too: ``language`` and ``opted_out_at`` here
    read and write the contact's.
    """

    __tablename__ = "patients"
    __table_args__ = (CheckConstraint(f"preferred_channel IN {PATIENT_CHANNELS}", name="preferred_channel"),)

    phone: Mapped[str] = mapped_column(String(64), unique=True)  # E.164; "erased:<id>" after erasure
    contact_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contacts.id", ondelete="RESTRICT"), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    preferred_channel: Mapped[str] = mapped_column(String(16), default=SMS.value)
    erased_at: Mapped[datetime | None] = mapped_column()  # the right to erasure was exercised

    contact: Mapped[Contact] = relationship(lazy="joined")

    @property
    def language(self) -> str | None:
        return self.contact.language

    @language.setter
    def language(self, value: str | None) -> None:
        self.contact.language = value

    @property
    def opted_out_at(self) -> datetime | None:
        return self.contact.opted_out_at


STATUS_SCHEDULED = "scheduled"  # booked; reminders planned
STATUS_CONFIRMED = "confirmed"  # the patient said they will come
STATUS_RESCHEDULE_REQUESTED = "reschedule_requested"  # the patient asked for another time and has not chosen yet
STATUS_RESCHEDULED = "rescheduled"  # moved to another time (by the patient's choice or by the clinic)
STATUS_CANCELLED = "cancelled"  # the patient cannot come, or the clinic cancelled (see cancelled_by)
STATUS_ATTENDED = "attended"  # the patient came
STATUS_MISSED = "missed"  # the day passed and the patient did not come
STATUSES = (
    STATUS_SCHEDULED,
    STATUS_CONFIRMED,
    STATUS_RESCHEDULE_REQUESTED,
    STATUS_RESCHEDULED,
    STATUS_CANCELLED,
    STATUS_ATTENDED,
    STATUS_MISSED,
)
# Still coming up: reminders go out, the patient can answer, the slot is taken.
ACTIVE_STATUSES = (STATUS_SCHEDULED, STATUS_CONFIRMED, STATUS_RESCHEDULE_REQUESTED, STATUS_RESCHEDULED)
CANCELLED_BY = ("patient", "clinic")


class Appointment(UUIDPrimaryKey, Timestamps, Base):
    """One visit of one patient to one clinic, at a UTC instant shown in the clinic's time zone."""

    __tablename__ = "appointments"
    __table_args__ = (
        CheckConstraint(f"status IN {STATUSES}", name="status"),
        CheckConstraint(f"language IS NULL OR language IN {LANGUAGES}", name="language"),
        CheckConstraint(f"cancelled_by IS NULL OR cancelled_by IN {CANCELLED_BY}", name="cancelled_by"),
        # An upload of the same file twice creates nothing new: each row's key is unique within its clinic.
        UniqueConstraint("clinic_id", "import_key", name="uq_appointments_clinic_id_import_key"),
        Index("ix_appointments_clinic_id_appointment_datetime", "clinic_id", "appointment_datetime"),
    )

    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinics.id", ondelete="RESTRICT"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id", ondelete="RESTRICT"), index=True)
    appointment_datetime: Mapped[datetime] = mapped_column(index=True)
    language: Mapped[str | None] = mapped_column(String(2))  # None: the patient's, else the clinic's
    status: Mapped[str] = mapped_column(String(24), default=STATUS_SCHEDULED, index=True)
    cancelled_by: Mapped[str | None] = mapped_column(String(16))
    reminders_sent: Mapped[int] = mapped_column(Integer, default=0)  # sends the provider accepted
    attended: Mapped[bool | None] = mapped_column(Boolean)  # None until known
    confirmed_at: Mapped[datetime | None] = mapped_column()  # the patient confirmed (kept when later moved)
    external_ref: Mapped[str | None] = mapped_column(String(100))  # the clinic system's own id
    # "ref:<external_ref>", else "at:<phone>|<UTC time>" as first booked: what a re-upload is matched on.
    import_key: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(16), default=SMS.value)  # where its reminders went
    # The next reminder: when it is due (already inside the clinic's sending hours) and which offset it is.
    next_reminder_at: Mapped[datetime | None] = mapped_column(index=True)
    next_reminder_offset: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    patient: Mapped[Patient] = relationship(lazy="joined")
    clinic: Mapped[Clinic] = relationship(lazy="joined")
