"""Today's visits at a clinic, for the staff USSD menu: how many, and finding one by the phone's last digits."""

from __future__ import annotations

import contextlib
import uuid
from datetime import datetime, time, timedelta

from sqlalchemy import func, select

from app.errors import Conflict, NotFound
from app.extensions import db
from app.i18n import t
from app.messaging.outbox import OptedOut, SendCapReached, queue_outbound
from app.models import Appointment, Clinic, Patient, User, utcnow
from app.models.appointment import ACTIVE_STATUSES, STATUS_ATTENDED, STATUS_CANCELLED
from app.models.channel import SMS
from app.models.message_log import KIND_SYSTEM
from app.services import appointments

MAX_MATCHES = 3  # visits offered for one set of last digits (a USSD screen holds no more)


def _today(clinic: Clinic, now: datetime | None = None) -> tuple[datetime, datetime]:
    local = appointments.local_time(clinic, now or utcnow())
    start = datetime.combine(local.date(), time.min, tzinfo=appointments.zone(clinic))
    return start, start + timedelta(days=1)


def today_counts(clinic: Clinic, now: datetime | None = None) -> tuple[int, int]:
    """``(visits, attended)`` today in clinic time; cancelled visits are not counted."""
    start, end = _today(clinic, now)
    rows = db.session.execute(
        select(Appointment.status, func.count())
        .where(Appointment.clinic_id == clinic.id, Appointment.appointment_datetime >= start,
               Appointment.appointment_datetime < end, Appointment.status != STATUS_CANCELLED)
        .group_by(Appointment.status)
    ).all()  # fmt: skip
    total = sum(n for _, n in rows)
    return total, sum(n for status, n in rows if status == STATUS_ATTENDED)


def today_ending(clinic: Clinic, digits: str, now: datetime | None = None) -> list[Appointment]:
    """Today's visits not yet marked, of patients whose phone ends with ``digits`` (time order)."""
    start, end = _today(clinic, now)
    return list(
        db.session.scalars(
            select(Appointment)
            .join(Patient, Appointment.patient_id == Patient.id)
            .where(Appointment.clinic_id == clinic.id, Appointment.appointment_datetime >= start,
                   Appointment.appointment_datetime < end, Appointment.status.in_(ACTIVE_STATUSES),
                   Patient.phone.endswith(digits, autoescape=True))
            .order_by(Appointment.appointment_datetime, Appointment.id)
            .limit(MAX_MATCHES)
        ).unique()
    )  # fmt: skip


def mark_attended(actor, clinic: Clinic, appointment_id: uuid.UUID, now: datetime | None = None) -> Appointment:
    """Mark one of the clinic's visits attended (in the caller's transaction).

    Args:
        actor: the staff member marking it (audited).
        clinic: their clinic; another clinic's visit is not found.
        appointment_id: the visit, as :func:`today_ending` offered it.
        now: the current time (UTC), as the list was made with; defaults to now.

    Raises:
        NotFound: no such visit at this clinic.
        Conflict: it was cancelled, or its day (clinic time) has not come (:func:`appointments.set_attendance`).
    """
    appointment = db.session.get(Appointment, appointment_id)
    if appointment is None or appointment.clinic_id != clinic.id:
        raise NotFound("No such visit at this clinic.")
    if appointment.status == STATUS_CANCELLED:
        raise Conflict("This visit was cancelled.")
    return appointments.set_attendance(actor, appointment, True, now=now)


def receipt(user: User, appointment: Appointment, label: str) -> None:
    """The SMS receipt of a visit marked attended from the USSD menu, to the staff member, in their language."""
    # The visit is marked; a receipt the consent or caps rules refuse is not worth failing it for.
    with contextlib.suppress(OptedOut, SendCapReached):
        queue_outbound(channel=SMS, address=user.phone, text=t("visit_receipt_attended", user.language, visit=label),
                       language=user.language, kind=KIND_SYSTEM, user_id=user.id, clinic_id=appointment.clinic_id,
                       dedupe_key=f"visit-receipt:{appointment.id}:attended")  # fmt: skip
