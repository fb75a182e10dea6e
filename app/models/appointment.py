"""Patients and their clinic appointments, as the clinics' own systems know them."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint, and_, text
from sqlalchemy.orm import Mapped, foreign, mapped_column, relationship, remote

from app.models.base import Base, Timestamps, UUIDPrimaryKey, batched_foreign_key
from app.models.channel import PATIENT_CHANNELS, SMS
from app.models.clinic import LANGUAGES, Clinic
from app.models.contact import Contact


class Patient(UUIDPrimaryKey, Timestamps, Base):
    """A person with appointments. One per phone number, across clinics.

    Only what is the person's own stays here, per number: the number itself, and (on the patient's
    :class:`Contact`, the same number's record for every channel) the language they chose and their consent, so a
    ``SETSWANA`` or ``STOP`` sent by SMS is honoured for reminders too: ``language`` and ``opted_out_at`` here read
    and write the contact's. What a clinic records about the person (a name, the channel for its reminders, notes)
    is that clinic's :class:`PatientRecord`, never shown to another clinic.
    """

    __tablename__ = "patients"

    phone: Mapped[str] = mapped_column(String(64), unique=True)  # E.164; "erased:<id>" after erasure
    contact_id: Mapped[uuid.UUID] = mapped_column(batched_foreign_key("contacts.id", ondelete="RESTRICT"), unique=True)
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


class PatientRecord(UUIDPrimaryKey, Timestamps, Base):
    """What one clinic records about one patient: its name for them, where its reminders go, its notes.

    One per (patient, clinic), made when the clinic first books the number. Another clinic booking the same number
    gets a record of its own and never reads or changes this one.
    """

    __tablename__ = "patient_records"
    __table_args__ = (
        CheckConstraint(f"preferred_channel IN {PATIENT_CHANNELS}", name="preferred_channel"),
        # Patient first: the same index finds one clinic's record and all of a patient's (admins, erasure).
        UniqueConstraint("patient_id", "clinic_id", name="uq_patient_records_patient_id_clinic_id"),
    )

    patient_id: Mapped[uuid.UUID] = mapped_column(batched_foreign_key("patients.id", ondelete="RESTRICT"))
    clinic_id: Mapped[uuid.UUID] = mapped_column(batched_foreign_key("clinics.id", ondelete="RESTRICT"))
    name: Mapped[str | None] = mapped_column(String(200))
    preferred_channel: Mapped[str] = mapped_column(String(16), default=SMS.value)  # where this clinic's texts go
    notes: Mapped[str | None] = mapped_column(String(2000))


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
        # Only rows that have a value are indexed: an upload's new rows have none, so PostgreSQL does no index work
        # for them (every look-up names a value, which the planner knows is not NULL).
        *(
            Index(
                f"ix_appointments_{column}",
                column,
                postgresql_where=text(f"{column} IS NOT NULL"),
                sqlite_where=text(f"{column} IS NOT NULL"),
            )  # fmt: skip
            for column in ("recovery_at", "rebooked_from_id", "series_id")
        ),
    )

    clinic_id: Mapped[uuid.UUID] = mapped_column(batched_foreign_key("clinics.id", ondelete="RESTRICT"))
    patient_id: Mapped[uuid.UUID] = mapped_column(batched_foreign_key("patients.id", ondelete="RESTRICT"), index=True)
    appointment_datetime: Mapped[datetime] = mapped_column(index=True)
    language: Mapped[str | None] = mapped_column(String(2))  # None: the patient's, else the clinic's
    # No index of its own: every query names the clinic, a time or the next reminder too (indexed), and a status index
    # cost every upload's rows B-tree work for nothing.
    status: Mapped[str] = mapped_column(String(24), default=STATUS_SCHEDULED)
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
    created_by: Mapped[uuid.UUID | None] = mapped_column(batched_foreign_key("users.id", ondelete="SET NULL"))
    # A missed visit's recovery SMS: when it is due (inside the clinic's sending hours); None once written or when
    # none is owed. The minute job reads only this index.
    recovery_at: Mapped[datetime | None] = mapped_column()
    # The missed visit this one rebooks (the patient answered the recovery SMS, or staff recorded it). No foreign
    # key: SQLite could add one only by rebuilding appointments, which its children point at.
    rebooked_from_id: Mapped[uuid.UUID | None] = mapped_column()
    # A recurring visit: its series (AppointmentSeries, no foreign key for the same reason) and its number in it.
    series_id: Mapped[uuid.UUID | None] = mapped_column()
    series_number: Mapped[int | None] = mapped_column(Integer)

    patient: Mapped[Patient] = relationship(lazy="joined")
    clinic: Mapped[Clinic] = relationship(lazy="joined")
    # The booking clinic's record of the patient (every booking makes one): its name and channel for them.
    record: Mapped[PatientRecord | None] = relationship(
        primaryjoin=lambda: and_(
            foreign(Appointment.patient_id) == remote(PatientRecord.patient_id),
            foreign(Appointment.clinic_id) == remote(PatientRecord.clinic_id),
        ),
        viewonly=True,
    )
    series: Mapped[AppointmentSeries | None] = relationship(
        primaryjoin=lambda: foreign(Appointment.series_id) == remote(AppointmentSeries.id), viewonly=True
    )


class AppointmentSeries(UUIDPrimaryKey, Timestamps, Base):
    """Recurring visits (ART refills, antenatal care): when one is attended, missed or cancelled alone, the next is
    booked about ``every_days`` later at the same clinic-local time, until ``count`` visits were booked (None: open)
    or the series is ended."""

    __tablename__ = "appointment_series"
    __table_args__ = (CheckConstraint("every_days >= 1", name="every_days"),)

    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinics.id", ondelete="RESTRICT"), index=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id", ondelete="RESTRICT"), index=True)
    every_days: Mapped[int] = mapped_column(Integer)
    count: Mapped[int | None] = mapped_column(Integer)  # visits in all; None: open-ended
    booked: Mapped[int] = mapped_column(Integer, default=1)  # visits booked so far
    ended_at: Mapped[datetime | None] = mapped_column()  # the clinic cancelled the rest


TRACING_OUTCOMES = ("reached_rebooked", "reached_declined", "unreachable", "transferred_out", "died")
# Outcomes that close a missed visit's tracing: it leaves the list.
TRACING_CLOSING = ("reached_rebooked", "reached_declined", "transferred_out", "died")


class TracingOutcome(UUIDPrimaryKey, Timestamps, Base):
    """One attempt by clinic staff to reach a patient who missed a visit, and what came of it."""

    __tablename__ = "tracing_outcomes"
    __table_args__ = (CheckConstraint(f"outcome IN {TRACING_OUTCOMES}", name="outcome"),)

    appointment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("appointments.id", ondelete="RESTRICT"), index=True)
    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinics.id", ondelete="RESTRICT"), index=True)
    outcome: Mapped[str] = mapped_column(String(24))
    note: Mapped[str | None] = mapped_column(String(500))  # health data: erased with the patient
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
