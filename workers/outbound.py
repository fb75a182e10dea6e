"""Outbound sends: claim an outbox row, hand it to its channel, record the result."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy import select, update

from app.extensions import db
from app.models import Message, utcnow
from app.models.message import DIRECTION_OUT, STATUS_FAILED, STATUS_QUEUED, STATUS_SENDING, STATUS_SENT
from bots.channels import SendError, sender_for
from bots.messages import OutboundMessage

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
STALE_AFTER = timedelta(minutes=2)


def send_message(message_id: str) -> str:
    """Send one outbox message.

    Args:
        message_id: the ``messages.id`` of a queued outbound row.

    Returns:
        The message's status afterwards (``sent``, ``queued`` for a retry, ``failed``, or what another worker
        already made of it).

    Raises:
        SendError: a retryable failure; RQ retries the job with back-off and the row stays ``queued``.
    """
    mid = uuid.UUID(message_id)
    claimed = db.session.execute(
        update(Message)
        .where(Message.id == mid, Message.status == STATUS_QUEUED)
        .values(status=STATUS_SENDING, attempts=Message.attempts + 1, updated_at=utcnow())
    ).rowcount
    db.session.commit()
    message = db.session.get(Message, mid)
    if not claimed or message is None:
        return message.status if message else "missing"

    outbound = OutboundMessage(message.id, message.channel, message.address, message.text or "", message.language)
    db.session.commit()  # never hold a transaction (on SQLite: the write lock) across a provider's network call
    try:
        result = sender_for(message.channel).send(outbound)
    except SendError as exc:
        give_up = not exc.retryable or message.attempts >= MAX_ATTEMPTS
        message.status = STATUS_FAILED if give_up else STATUS_QUEUED
        message.last_error = str(exc)[:500]
        db.session.commit()
        log.warning("send of message %s failed (attempt %d): %s", message.id, message.attempts, exc)
        if give_up:
            return message.status
        raise
    message.status = STATUS_SENT
    message.provider = result.provider
    message.provider_id = result.provider_id
    message.sent_at = utcnow()
    message.last_error = None
    db.session.commit()
    return message.status


def requeue_stale() -> int:
    """Enqueue again every outbox row left ``queued`` for over two minutes (Redis was down, or a process died).

    Returns:
        How many rows were enqueued.
    """
    from bots.outbox import enqueue_send

    stale = db.session.scalars(
        select(Message.id).where(
            Message.direction == DIRECTION_OUT,
            Message.status == STATUS_QUEUED,
            Message.updated_at < utcnow() - STALE_AFTER,
        )
    ).all()
    for message_id in stale:
        enqueue_send(message_id)
    return len(stale)
