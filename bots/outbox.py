"""The outbox: an outbound message is a database row first; its send job is enqueued only after commit.

If Redis is down or the process dies between commit and enqueue, the row stays ``queued`` and the periodic
sweeper (``workers.outbound.requeue_stale``) enqueues it again. The send job claims the row atomically, so an
enqueue that happens twice still sends once.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import Message
from app.models.message import DIRECTION_OUT, STATUS_QUEUED
from app.transactions import after_commit


def queue_outbound(
    *,
    channel: str,
    address: str,
    text: str,
    language: str | None = None,
    user_id: uuid.UUID | None = None,
    dedupe_key: str | None = None,
) -> Message:
    """Write an outbound message to the outbox in the caller's transaction; its send is enqueued on commit.

    Args:
        channel: ``sms``, ``whatsapp`` or ``telegram``.
        address: E.164 number or chat id.
        text: the body, already translated.
        language: ``en`` or ``tn``, for the record.
        user_id: the account it concerns, if any.
        dedupe_key: one logical message, one row: a second call with the same key returns the first row.

    Returns:
        The new (or, for a repeated ``dedupe_key``, the existing) message row.
    """
    if dedupe_key is not None:
        existing = db.session.scalar(select(Message).where(Message.dedupe_key == dedupe_key))
        if existing is not None:
            return existing
    message = Message(
        direction=DIRECTION_OUT,
        channel=channel,
        address=address,
        text=text,
        language=language,
        user_id=user_id,
        status=STATUS_QUEUED,
        dedupe_key=dedupe_key,
    )
    try:
        with db.session.begin_nested():
            db.session.add(message)
    except IntegrityError:
        if dedupe_key is None:
            raise
        return db.session.scalar(select(Message).where(Message.dedupe_key == dedupe_key))
    message_id = message.id
    after_commit(db.session(), lambda: enqueue_send(message_id))
    return message


def enqueue_send(message_id: uuid.UUID) -> None:
    """Enqueue the send job of one outbox row (safe to repeat: the job claims the row)."""
    from workers import QUEUE_OUTBOUND, enqueue
    from workers.outbound import send_message

    enqueue(QUEUE_OUTBOUND, send_message, str(message_id), job_id=f"send-{message_id}")
