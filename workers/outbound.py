"""Outbound sends: claim an outbox row, hand it to its providers in order, record the result; and the sweeper.

Guarantees (issue 3): no message is lost and none is sent twice, even if a worker is killed mid-send or Redis
loses its data. A row is claimed (``queued`` → ``sending``) before any provider is called; a row found still
``sending`` long after its claim may have gone out, so the sweeper marks it ``unknown`` for a person to check and
never sends it again. A ``queued`` row whose job is gone is enqueued again.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta

from flask import current_app
from rq.exceptions import NoSuchJobError
from rq.job import Job
from sqlalchemy import select, update

from app.extensions import db, redis_client
from app.i18n.gsm7 import sms_encoding
from app.models import Contact, Message, utcnow
from app.models.message import (
    DIRECTION_IN,
    DIRECTION_OUT,
    STATUS_FAILED,
    STATUS_QUEUED,
    STATUS_RECEIVED,
    STATUS_SCHEDULED,
    STATUS_SENDING,
    STATUS_SENT,
    STATUS_UNKNOWN,
)
from app.services import messaging
from bots.channels import SendError, senders_for
from bots.messages import SMS, WHATSAPP, Button, OutboundMessage

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5  # job runs per message (each run tries every provider)
STALE_AFTER = timedelta(minutes=1)  # a queued row or received message this old with no job is re-enqueued
STUCK_AFTER = timedelta(minutes=6)  # longer than a send job may run (300 s timeout): the worker died mid-send
WHATSAPP_WINDOW = timedelta(hours=24)
_PENDING_JOB_STATES = {"queued", "scheduled", "started", "deferred"}


class AllProvidersFailed(Exception):
    """Every provider failed with a retryable error; RQ retries the job later."""


# Each WhatsApp provider's approved template for messages outside the 24-hour window.
TEMPLATE_SETTINGS = {"twilio": "TWILIO_WHATSAPP_CONTENT_SID", "whatsapp": "WHATSAPP_TEMPLATE_REMINDER"}


def _plan(message: Message, contact: Contact | None) -> tuple[str, dict | None, list]:
    """Which channel, template and providers to use.

    WhatsApp inside the 24-hour window: free text. Outside it: the providers that have an approved template send
    that template (the text as its variable); with none, the message falls back to SMS.
    """
    config = current_app.config
    if message.channel != WHATSAPP:
        return message.channel, None, senders_for(message.channel, config)
    providers = senders_for(WHATSAPP, config)
    last = contact.last_whatsapp_inbound_at if contact else None
    if last is not None and utcnow() - last < WHATSAPP_WINDOW:
        return WHATSAPP, None, providers
    with_template = [p for p in providers if config.get(TEMPLATE_SETTINGS.get(p.name, ""))]
    if with_template:
        template = {"language": message.language or "en", "variables": {"1": message.text or ""}}
        return WHATSAPP, template, with_template
    return SMS, None, senders_for(SMS, config)


def _try_providers(outbound: OutboundMessage, providers: list) -> tuple[str, str | None]:
    """Send through each provider in order: a few tries each on retryable errors, within a time budget.

    Returns:
        (provider, provider id) of the provider that accepted it.

    Raises:
        SendError: a permanent refusal (or opt-out): give up at once.
        AllProvidersFailed: every provider failed with retryable errors.
    """
    config = current_app.config
    tries, budget = config["SEND_ATTEMPTS_PER_PROVIDER"], config["SEND_PROVIDER_SECONDS"]
    backoff = float(config.get("SEND_RETRY_BACKOFF_SECONDS", 1))
    errors = []
    for provider in providers:
        deadline = time.monotonic() + budget
        for attempt in range(1, tries + 1):
            try:
                result = provider.send(outbound)
            except SendError as exc:
                _note_attempt(outbound.id, provider.name, f"attempt {attempt}: {exc}", exc.code)
                if not exc.retryable:
                    raise
                errors.append(f"{provider.name}: {exc}")
                pause = backoff * attempt
                if attempt == tries or time.monotonic() + pause >= deadline:
                    break
                time.sleep(pause)
                continue
            _note_attempt(outbound.id, provider.name, f"attempt {attempt}: accepted", None, STATUS_SENT)
            return result.provider, result.provider_id
    raise AllProvidersFailed("; ".join(errors)[:500])


def _note_attempt(message_id: uuid.UUID, provider: str, detail: str, code: str | None, status: str | None = None):
    messaging.record_event(message_id, "attempt", provider=provider, detail=detail, error_code=code, status=status)
    db.session.commit()


def send_message(message_id: str) -> str:
    """Send one outbox message.

    Args:
        message_id: the ``messages.id`` of a queued outbound row.

    Returns:
        The message's status afterwards (``sent``, ``failed``, or what another worker already made of it).

    Raises:
        AllProvidersFailed: every provider failed with retryable errors; the row is ``queued`` again and RQ
            retries the job with back-off (``failed`` after ``MAX_ATTEMPTS`` runs).
    """
    mid = uuid.UUID(message_id)
    claimed = db.session.execute(
        update(Message)
        .where(Message.id == mid, Message.status == STATUS_QUEUED)
        .values(status=STATUS_SENDING, attempts=Message.attempts + 1, claimed_at=utcnow(), updated_at=utcnow())
    ).rowcount
    db.session.commit()
    message = db.session.get(Message, mid)
    if not claimed or message is None:
        return message.status if message else "missing"

    contact = messaging.contact_of(message)
    if contact is not None and contact.opted_out_at is not None and message.created_at < contact.opted_out_at:
        return _finish(message, STATUS_FAILED, error="opted out before it was sent", code="opted_out")
    channel, template, providers = _plan(message, contact)
    if channel != message.channel:
        messaging.record_event(message.id, "fallback", detail="outside the WhatsApp 24-hour window, no template: SMS")
        message.channel = channel
        message.encoding, message.segments = sms_encoding(message.text or "")
    buttons = tuple(Button(b["id"], b["title"]) for b in message.buttons or [])
    outbound = OutboundMessage(message.id, channel, message.address, message.text or "", message.language,
                               buttons=buttons, template=template)  # fmt: skip
    db.session.commit()  # never hold a transaction (on SQLite: the write lock) across a provider's network call

    try:
        provider, provider_id = _try_providers(outbound, providers)
    except SendError as exc:
        if exc.maybe_sent:
            log.error("message %s: the provider's answer was unreadable; marked unknown, not resent", message.id)
            return _finish(message, STATUS_UNKNOWN, error=str(exc), code=exc.code)
        if exc.opted_out:
            messaging.opt_out(contact)
        return _finish(
            message, STATUS_FAILED, error=str(exc), code=exc.code or ("opted_out" if exc.opted_out else None)
        )
    except AllProvidersFailed as exc:
        give_up = message.attempts >= MAX_ATTEMPTS
        _finish(message, STATUS_FAILED if give_up else STATUS_QUEUED, error=str(exc))
        log.warning("message %s: every provider failed (run %d)", message.id, message.attempts)
        if give_up:
            return STATUS_FAILED
        raise
    return _finish(message, STATUS_SENT, provider=provider, provider_id=provider_id, sent_at=utcnow())


def _finish(message: Message, status: str, *, error: str | None = None, code: str | None = None, **fields) -> str:
    db.session.refresh(message)  # the row as it is now, not as this job last saw it
    if message.status == STATUS_SENDING:
        message.status = status
    for name, value in fields.items():
        setattr(message, name, value)
    if message.provider_id:
        messaging.link_early_reports(message)
    message.last_error = error[:500] if error else None
    if code:
        message.error_code = code[:32]
    db.session.commit()
    return message.status


def _job_pending(job_id: str) -> bool:
    try:
        return Job.fetch(job_id, connection=redis_client.client).get_status(refresh=False) in _PENDING_JOB_STATES
    except NoSuchJobError:
        return False


def sweep() -> dict[str, int]:
    """The periodic safety net (every minute).

    - releases scheduled messages whose time has come;
    - re-enqueues queued outbound rows and received inbound messages whose job was lost (Redis restarted or
      wiped, or a process died between commit and enqueue);
    - marks ``unknown`` the rows a dead worker left ``sending``: they may have gone out, so they are never sent
      again; a person checks them.

    Returns:
        Counts of what it did.
    """
    from bots.outbox import enqueue_send
    from workers.inbound import enqueue_handle

    now = utcnow()
    due = db.session.scalars(select(Message.id).where(Message.status == STATUS_SCHEDULED, Message.send_at <= now)).all()
    if due:
        db.session.execute(
            update(Message).where(Message.id.in_(due), Message.status == STATUS_SCHEDULED).values(status=STATUS_QUEUED)
        )
    stuck = db.session.execute(
        update(Message)
        .where(
            Message.direction == DIRECTION_OUT, Message.status == STATUS_SENDING, Message.claimed_at < now - STUCK_AFTER
        )
        .values(
            status=STATUS_UNKNOWN, last_error="the worker stopped mid-send; check with the provider before resending"
        )
    ).rowcount
    stale_out = db.session.scalars(
        select(Message.id).where(
            Message.direction == DIRECTION_OUT, Message.status == STATUS_QUEUED, Message.updated_at < now - STALE_AFTER
        )
    ).all()
    stale_in = db.session.scalars(
        select(Message.id).where(
            Message.direction == DIRECTION_IN,
            Message.status == STATUS_RECEIVED,
            Message.channel != "ussd",
            Message.created_at < now - STALE_AFTER,
        )
    ).all()
    db.session.commit()
    if stuck:
        log.error("%d outbound message(s) left mid-send by a dead worker are marked unknown", stuck)
    requeued = 0
    for message_id in [*due, *stale_out]:
        if message_id in due or not _job_pending(f"send-{message_id}"):
            enqueue_send(message_id)
            requeued += 1
    for message_id in stale_in:
        if not _job_pending(f"handle-{message_id}"):
            enqueue_handle(message_id)
            requeued += 1
    return {"released": len(due), "requeued": requeued, "unknown": stuck}
