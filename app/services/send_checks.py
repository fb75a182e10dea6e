"""Send-time checks of reminders and notices: may this claimed message go out now, and counting a sent reminder.

These are appointment and clinic rules, so they live with the services; :mod:`bots.sending` acts on the verdict
(fail the row, or give it back to wait for the sending hours) in the transaction that claimed it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update

from app.extensions import db
from app.models import Appointment, Clinic, Message, utcnow
from app.models.appointment import ACTIVE_STATUSES
from app.models.message_log import KIND_REMINDER
from app.services.clinic_calendar import in_send_window, next_send_time


@dataclass(frozen=True)
class Hold:
    """Why a claimed message must not be sent now.

    Attributes:
        code: ``appointment_changed`` or ``outside_sending_hours`` when the message must fail; None when it waits.
        error: the failure's words for the message log (None when it waits).
        send_at: when a waiting message may go out (None when it fails).
    """

    code: str | None = None
    error: str | None = None
    send_at: datetime | None = None


def reminder_epoch(dedupe_key: str | None) -> int | None:
    """The appointment time (Unix seconds) a reminder was written for: the last part of its dedupe key
    (``reminder:{appointment id}:{offset}:{epoch}``, see :func:`app.services.clinic_calendar.reminder_key`)."""
    prefix, _, epoch = (dedupe_key or "").rpartition(":")
    if not prefix.startswith("reminder:"):
        return None
    try:
        return int(epoch)
    except ValueError:
        return None


def hold(message: Message, appointment: Appointment | None, now: datetime | None = None) -> Hold | None:
    """Whether a reminder or notice (claimed, no provider called yet) must not be sent now.

    A reminder about an appointment goes out only while the appointment is still active, ahead, and at the time the
    reminder was written for; otherwise it fails with ``appointment_changed``. Reminders and notices of a clinic go
    out only inside its sending hours: outside them the message waits for the next allowed time if that is still
    before the appointment; otherwise it fails with ``outside_sending_hours``.

    Returns:
        None to send it now; else a :class:`Hold` saying whether it fails or waits.
    """
    now = now or utcnow()
    if message.kind == KIND_REMINDER and message.appointment_id is not None:
        epoch = reminder_epoch(message.dedupe_key)
        if (
            appointment is None
            or appointment.status not in ACTIVE_STATUSES
            or appointment.appointment_datetime <= now
            or (epoch is not None and epoch != int(appointment.appointment_datetime.timestamp()))
        ):
            return Hold(code="appointment_changed", error="the appointment was cancelled, moved, attended or is past")
    if appointment is not None:
        clinic = appointment.clinic
    else:
        clinic = db.session.get(Clinic, message.clinic_id) if message.clinic_id else None
    if clinic is None or in_send_window(clinic, now):
        return None
    send_at = next_send_time(clinic, now)
    # A message about a visit still ahead is useless after it; one about a visit already past (a missed visit's
    # recovery SMS) just waits for the sending hours.
    if appointment is not None and now < appointment.appointment_datetime <= send_at:
        return Hold(code="outside_sending_hours", error="no allowed sending time is left before the appointment")
    return Hold(send_at=send_at)


def count_reminder(appointment_id: uuid.UUID, channel: str) -> None:
    """A reminder really went out: count it on its appointment, with the channel really used (WhatsApp may have
    fallen back to SMS). Call it in the transaction that records the send, so the count is of real sends only."""
    table = Appointment.__table__
    db.session.execute(
        update(table)
        .where(table.c.id == appointment_id)
        .values(reminders_sent=table.c.reminders_sent + 1, channel=channel, updated_at=utcnow())
    )
