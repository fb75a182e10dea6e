"""Send-time checks of reminders and notices: may this claimed message go out now, and counting a sent reminder.

These are appointment and clinic rules, so they live with the services; :mod:`bots.sending` acts on the verdict
(fail the row, or give it back to wait for the sending hours) in the transaction that claimed it.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, update

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


def count_reminders(sent: Mapping[tuple[uuid.UUID, str], int]) -> None:
    """Reminders really went out: count them on their appointments, each with the channel really used (WhatsApp
    may have fallen back to SMS), in one statement. Call it in the transaction that records the sends, so the
    counts are of real sends only.

    Args:
        sent: how many reminders went out per (appointment id, channel).
    """
    if not sent:
        return
    added: Counter = Counter()
    channel: dict[uuid.UUID, str] = {}
    for (appointment_id, used), count in sent.items():
        added[appointment_id] += count
        channel[appointment_id] = used
    table = Appointment.__table__
    db.session.execute(
        update(table)
        .where(table.c.id.in_(added))
        .values(
            reminders_sent=table.c.reminders_sent + case(added, value=table.c.id),
            channel=case(channel, value=table.c.id),
            updated_at=utcnow(),
        )
    )
