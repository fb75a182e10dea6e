"""SMS through the API, and the message log: what staff send, what is pending, what came and went."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select

from app.errors import Forbidden, NotFound, ServiceError, ValidationFailed
from app.extensions import db
from app.messaging.outbox import queue_outbound
from app.models import Clinic, Message, MessageEvent, utcnow
from app.models.channel import SMS, USSD
from app.models.message_log import (
    DIRECTION_IN,
    DIRECTION_OUT,
    KIND_API,
    STATUS_FAILED,
    STATUS_QUEUED,
    STATUS_SCHEDULED,
    STATUS_SENDING,
    STATUS_UNKNOWN,
)
from app.services import audit
from app.services.clinics import clinic_for
from app.services.phones import to_e164


class InvalidPhoneNumber(ServiceError):
    status, code = 400, "invalid_phone_number"


def recipient(to: str, clinic: Clinic | None) -> str:
    """``to`` in E.164; a national number is read in the clinic's country.

    Raises:
        InvalidPhoneNumber: not a valid number (400, naming the field).
    """
    try:
        return to_e164(to, clinic.country if clinic is not None else None)
    except ValueError as exc:
        raise InvalidPhoneNumber("The recipient is not a valid phone number.", {"json": {"to": [str(exc)]}}) from exc


def send(actor, *, to: str, text: str, clinic_id: uuid.UUID | None = None, send_at: datetime | None = None) -> Message:
    """Queue (or schedule) an SMS; it is committed before its send is enqueued.

    Raises:
        InvalidPhoneNumber, OptedOut (409), SendCapReached (429), ValidationFailed (a past ``send_at``).
    """
    if send_at is not None and send_at <= utcnow():
        raise ValidationFailed("send_at must be in the future.", {"json": {"send_at": ["Must be in the future."]}})
    clinic = clinic_for(actor, clinic_id)
    address = recipient(to, clinic)
    message = queue_outbound(channel=SMS, address=address, text=text, kind=KIND_API, user_id=actor.user_id,
                             clinic_id=clinic.id if clinic else None, send_at=send_at)  # fmt: skip
    audit.record(actor, "sms.schedule" if send_at else "sms.send", "message", message.id,
                 {"segments": message.segments, "encoding": message.encoding})  # fmt: skip
    db.session.commit()
    return message


def _visible(actor):
    stmt = select(Message)
    if not actor.is_admin:
        stmt = stmt.where(Message.clinic_id == actor.clinic_id)
    return stmt


def get(actor, message_id: uuid.UUID) -> tuple[Message, list[MessageEvent]]:
    """One message with its delivery history (an audited read: messages are patient data)."""
    message = db.session.get(Message, message_id)
    if message is None:
        raise NotFound("No message with this id.")
    if not actor.is_admin and message.clinic_id != actor.clinic_id:
        raise Forbidden("This message is not your clinic's.")
    events = db.session.scalars(
        select(MessageEvent).where(MessageEvent.message_id == message.id).order_by(MessageEvent.at, MessageEvent.id)
    ).all()
    audit.record(actor, "message.read", "message", message.id)
    db.session.commit()
    return message, list(events)


def pending(actor, *, page: int, per_page: int):
    """Messages waiting to go out: scheduled, queued or being sent, soonest first."""
    stmt = (
        _visible(actor)
        .where(Message.status.in_((STATUS_SCHEDULED, STATUS_QUEUED, STATUS_SENDING)))
        .order_by(Message.send_at.is_(None).desc(), Message.send_at, Message.created_at, Message.id)
    )
    result = db.paginate(stmt, page=page, per_page=per_page, error_out=False)
    audit.record(actor, "message.list", "message", None, {"view": "queue", "count": len(result.items)})
    db.session.commit()
    return result


def log(actor, *, page: int, per_page: int, phone: str | None = None, direction: str | None = None,
        channel: str | None = None, status: str | None = None, since: datetime | None = None,
        until: datetime | None = None, clinic_id: uuid.UUID | None = None):  # fmt: skip
    """The message log, newest first, filtered. Every read is audited (filters named, never their values)."""
    stmt = _visible(actor).order_by(Message.created_at.desc(), Message.id)
    for column, value in ((Message.address, phone), (Message.direction, direction), (Message.channel, channel),
                          (Message.status, status), (Message.clinic_id, clinic_id)):  # fmt: skip
        if value is not None:
            stmt = stmt.where(column == value)
    if since is not None:
        stmt = stmt.where(Message.created_at >= since)
    if until is not None:
        stmt = stmt.where(Message.created_at < until)
    result = db.paginate(stmt, page=page, per_page=per_page, error_out=False)
    filters = sorted(k for k, v in {"phone": phone, "direction": direction, "channel": channel, "status": status,
                                    "from": since, "to": until, "clinic_id": clinic_id}.items() if v is not None)  # fmt: skip
    audit.record(actor, "message.list", "message", None, {"filters": filters, "count": len(result.items)})
    db.session.commit()
    return result


def needs_attention() -> dict[str, int]:
    """What a person must check, for ``/readyz``: outbound messages that may have gone out (``unknown``: never
    resent automatically), and inbound messages whose handling failed on every try (given up: a STOP among them is
    not honoured until someone acts)."""
    counts = db.session.execute(
        select(
            func.count().filter(Message.direction == DIRECTION_OUT, Message.status == STATUS_UNKNOWN),
            func.count().filter(
                Message.direction == DIRECTION_IN,
                Message.channel != USSD,
                Message.status == STATUS_FAILED,
                Message.retry_at.is_(None),
            ),
        ).where(Message.status.in_((STATUS_UNKNOWN, STATUS_FAILED)))
    ).one()
    return {"outbound_unknown": counts[0], "inbound_given_up": counts[1]}
