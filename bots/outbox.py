"""The outbox: an outbound message is a database row first; its send job is enqueued only after commit.

If Redis is down or the process dies between commit and enqueue, the row stays ``queued`` and the periodic
sweeper (``workers.outbound.sweep``) enqueues it again. The send job claims the row atomically, so an enqueue
that happens twice still sends once. Consent and SMS-pumping caps are enforced here, before anything is written.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime

import redis
from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.errors import Conflict, ServiceError
from app.extensions import db, redis_client
from app.i18n.gsm7 import sms_encoding
from app.models import Contact, Message, utcnow
from app.models.message import (
    DIRECTION_OUT,
    KIND_NOTICE,
    KIND_REMINDER,
    KIND_SYSTEM,
    STATUS_QUEUED,
    STATUS_SCHEDULED,
)
from app.transactions import after_commit
from bots.messages import SMS, Button

log = logging.getLogger(__name__)


# What a clinic sends its own patients about their appointments is not counted against the SMS-pumping caps.
UNCAPPED_KINDS = (KIND_REMINDER, KIND_NOTICE)


class OptedOut(Conflict):
    """The recipient has opted out: nothing may be sent until they send START."""

    code = "opted_out"


class SendCapReached(ServiceError):
    """Too many SMS to one number or one number prefix this hour (guard against SMS pumping)."""

    status, code = 429, "send_cap_reached"


def _check_caps(address: str) -> None:
    config = current_app.config
    hour = int(time.time() // 3600)
    keys = (
        (f"thusa:cap:number:{address}:{hour}", config["SMS_CAP_PER_NUMBER_HOUR"], "this number"),
        (
            f"thusa:cap:prefix:{address[:7]}:{hour}",
            config["SMS_CAP_PER_PREFIX_HOUR"],
            "numbers starting " + address[:7],
        ),
    )
    try:
        pipe = redis_client.client.pipeline()
        for key, _, _ in keys:
            pipe.incr(key)
            pipe.expire(key, 3600)
        counts = pipe.execute()[::2]
    except redis.RedisError:
        log.warning("SMS caps not checked: Redis unavailable")  # consent still holds; caps fail open
        return
    for (_, cap, what), count in zip(keys, counts, strict=True):
        if count > cap:
            raise SendCapReached(f"No more than {cap} messages an hour may go to {what}; try again later.")


def queue_outbound(
    *,
    channel: str,
    address: str,
    text: str,
    language: str | None = None,
    kind: str = KIND_SYSTEM,
    user_id: uuid.UUID | None = None,
    clinic_id: uuid.UUID | None = None,
    appointment_id: uuid.UUID | None = None,
    reply_to_id: uuid.UUID | None = None,
    buttons: tuple[Button, ...] = (),
    send_at: datetime | None = None,
    dedupe_key: str | None = None,
    allow_opted_out: bool = False,
) -> Message:
    """Write an outbound message to the outbox in the caller's transaction; its send is enqueued on commit.

    Args:
        channel: ``sms``, ``whatsapp`` or ``telegram``.
        address: E.164 number or chat id.
        text: the body, already translated.
        language: ``en`` or ``tn``, for the record.
        kind: ``reply``, ``reminder``, ``notice``, ``api`` or ``system``; all but reminders and notices count
            against the SMS caps.
        user_id: the account it concerns, if any.
        clinic_id: the clinic it is sent for (scopes it in the API).
        appointment_id: the appointment it is about (reminders and notices; checked again at send time).
        reply_to_id: the inbound message this answers (at most one reply each).
        buttons: quick replies for chat channels.
        send_at: a future time to send at (the row waits as ``scheduled``).
        dedupe_key: one logical message, one row: a second call with the same key returns the first row.
        allow_opted_out: only for the one opt-out confirmation.

    Returns:
        The new (or, for a repeated ``dedupe_key``, the existing) message row.

    Raises:
        OptedOut: the contact has opted out. SendCapReached: an SMS over the hourly caps.
    """
    if dedupe_key is not None:
        existing = db.session.scalar(select(Message).where(Message.dedupe_key == dedupe_key))
        if existing is not None:
            return existing
    contact = db.session.scalar(select(Contact).where(Contact.address == address))
    if contact is not None and contact.opted_out_at is not None and not allow_opted_out:
        raise OptedOut("This number has opted out of messages from Thusa; nothing is sent until they reply START.")
    if channel == SMS and kind not in UNCAPPED_KINDS:
        _check_caps(address)
    encoding, segments = sms_encoding(text) if channel == SMS else (None, None)
    scheduled = send_at is not None and send_at > utcnow()
    message = Message(
        direction=DIRECTION_OUT,
        channel=channel,
        address=address,
        text=text,
        language=language,
        kind=kind,
        user_id=user_id,
        clinic_id=clinic_id,
        appointment_id=appointment_id,
        contact_id=contact.id if contact else None,
        reply_to_id=reply_to_id,
        buttons=[{"id": b.id, "title": b.title} for b in buttons],
        encoding=encoding,
        segments=segments,
        send_at=send_at,
        status=STATUS_SCHEDULED if scheduled else STATUS_QUEUED,
        dedupe_key=dedupe_key,
    )
    try:
        with db.session.begin_nested():
            db.session.add(message)
    except IntegrityError:
        if dedupe_key is None and reply_to_id is None:
            raise
        lookup = Message.dedupe_key == dedupe_key if dedupe_key else Message.reply_to_id == reply_to_id
        return db.session.scalar(select(Message).where(lookup))
    if not scheduled:
        message_id = message.id
        after_commit(db.session(), lambda: enqueue_send(message_id))
    return message


def enqueue_send(message_id: uuid.UUID) -> None:
    """Enqueue the send job of one outbox row (safe to repeat: the job claims the row)."""
    from workers import QUEUE_OUTBOUND, enqueue
    from workers.outbound import send_message

    enqueue(QUEUE_OUTBOUND, send_message, str(message_id), job_id=f"send-{message_id}")
