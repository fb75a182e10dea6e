"""The outbox: an outbound message is a database row first; its send job is enqueued only after commit.

If Redis is down or the process dies between commit and enqueue, the row stays ``queued`` and the periodic
sweeper (``bots.sending.sweep``) enqueues it again. The send job claims the row atomically, so an enqueue
that happens twice still sends once. Consent and SMS-pumping caps are enforced here, before anything is written.
A row can mask a secret in its stored text (a reset code); the real text then lives in Redis only, until sent.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import phonenumbers
import redis
from flask import current_app
from rq import Queue
from sqlalchemy import select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError

from app import jobs
from app.errors import Conflict, ServiceError
from app.extensions import db, redis_client
from app.i18n.gsm7 import sms_encoding
from app.messaging import inbox
from app.messaging.envelopes import Button
from app.models import Contact, Message, new_id, utcnow
from app.models.channel import SMS
from app.models.message_log import (
    DIRECTION_OUT,
    KIND_NOTICE,
    KIND_REMINDER,
    KIND_SYSTEM,
    STATUS_QUEUED,
    STATUS_SCHEDULED,
)
from app.transactions import after_commit

log = logging.getLogger(__name__)


# What a clinic sends its own patients about their appointments is not counted against the SMS-pumping caps.
UNCAPPED_KINDS = (KIND_REMINDER, KIND_NOTICE)
ENQUEUE_CHUNK = 40  # send jobs (of up to 25 messages each) per Redis round trip when many are enqueued at once
SEND_BATCH = 25  # outbox rows per send job when many are written at once (reminders): RQ's cost per job is shared
BATCH_KEY = "thusa:send-batch:"  # + message id → the batch job that sends it: how the sweeper knows it is pending
BATCH_KEY_SECONDS = 7 * 86400
REAL_TEXT_KEY = "thusa:real-text:"  # + message id → the real text of a row whose stored text masks a secret
CODE_MASK = "******"  # what a stored SMS shows instead of a one-time code (same length: same segments)
UNKNOWN_COUNTRY = "ZZ"


class OptedOut(Conflict):
    """The recipient has opted out: nothing may be sent until they send START."""

    code = "opted_out"


class SendCapReached(ServiceError):
    """Too many SMS to one number this hour, or the hourly budget of unauthenticated SMS is spent (guards against
    SMS pumping)."""

    status, code = 429, "send_cap_reached"


def country_of(address: str) -> str:
    """The country (ISO 3166 code, e.g. ``BW``) an E.164 number's country code belongs to; ``ZZ`` when unknown.

    By country code, not by full validation: a pumping attack uses numbers no carrier may ever have issued.
    """
    try:
        number = phonenumbers.parse(address, None)
    except phonenumbers.NumberParseException:
        return UNKNOWN_COUNTRY
    return phonenumbers.region_code_for_country_code(number.country_code) or UNKNOWN_COUNTRY


def _check_caps(address: str, *, unauthenticated: bool) -> None:
    """Count one SMS to ``address`` against its hourly caps, or refuse it (and count nothing).

    Unauthenticated sends (nobody signed in asked for them: anyone on the internet can) are counted apart from
    everything else and are the only ones the global and per-country budgets bound: strangers can spend those
    budgets, never silence what clinics and signed-in users send. The per-number cap holds for both kinds,
    each with its own counter.
    """
    config = current_app.config
    hour = int(time.time() // 3600)
    who = "anon" if unauthenticated else "user"
    limits = [(f"thusa:cap:number:{who}:{address}:{hour}", config["SMS_CAP_PER_NUMBER_HOUR"], "this number")]
    if unauthenticated:
        country = country_of(address)
        limits += [
            (f"thusa:budget:anon:{country}:{hour}", config["SMS_BUDGET_UNAUTHENTICATED_COUNTRY_HOUR"],
             f"numbers in {country} at the request of nobody signed in"),
            (f"thusa:budget:anon:all:{hour}", config["SMS_BUDGET_UNAUTHENTICATED_HOUR"],
             "any number at the request of nobody signed in"),
        ]  # fmt: skip
    try:
        pipe = redis_client.client.pipeline()
        for key, _, _ in limits:
            pipe.incr(key)
            pipe.expire(key, 3600)
        counts = pipe.execute()[::2]
        over = [(cap, what) for (_, cap, what), count in zip(limits, counts, strict=True) if count > cap]
        if over:
            # A refused send spends nothing: hammering one capped number must not use up everybody's budget.
            pipe = redis_client.client.pipeline()
            for key, _, _ in limits:
                pipe.decr(key)
            pipe.execute()
    except redis.RedisError:
        log.warning("SMS caps not checked: Redis unavailable")  # consent still holds; caps fail open
        return
    if over:
        cap, what = over[0]
        if unauthenticated:
            log.warning("unauthenticated SMS refused: no more than %d an hour to %s", cap, what)
        raise SendCapReached(f"No more than {cap} messages an hour may go to {what}; try again later.")


def count_against_caps(address: str) -> None:
    """Count one SMS a clinic sends of its own accord (a clinic notice) against ``address``'s hourly cap, as
    :func:`queue_outbound` counts capped kinds; for bulk writers (:func:`queue_many`) that skip the caps.

    Raises:
        SendCapReached: the number had its hourly share already (nothing is counted).
    """
    _check_caps(address, unauthenticated=False)


def _stash_secret_text(message_id: uuid.UUID, secret_text: str, seconds: int) -> None:
    redis_client.client.set(f"{REAL_TEXT_KEY}{message_id}", secret_text, ex=seconds)


def text_to_send(message: Message) -> str | None:
    """The text a provider gets for an outbox row: its stored text, or, for a row whose stored text masks a
    secret (a reset code), the real text kept in Redis; None once that is gone (expired, or Redis lost it).

    The real text never reaches the database: if it is lost before the send, the message fails and the person
    asks again (a reset code is worth nothing after its few minutes anyway).
    """
    if not (message.extra or {}).get("secret_text"):
        return message.text or ""
    try:
        stored = redis_client.client.get(f"{REAL_TEXT_KEY}{message.id}")
    except redis.RedisError:
        log.warning("message %s: its secret text could not be read (Redis unavailable)", message.id)
        return None
    return stored.decode() if stored is not None else None


def forget_secret_text(message: Message) -> None:
    """Drop the real text of a row sent (nothing needs it any more); its expiry would drop it anyway."""
    if (message.extra or {}).get("secret_text"):
        with contextlib.suppress(redis.RedisError):
            redis_client.client.delete(f"{REAL_TEXT_KEY}{message.id}")


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
    in_conversation: bool = False,
    buttons: tuple[Button, ...] = (),
    send_at: datetime | None = None,
    dedupe_key: str | None = None,
    allow_opted_out: bool = False,
    unauthenticated: bool = False,
    secret_text: str | None = None,
    secret_seconds: int = 900,
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
        reply_to_id: the inbound message this answers (at most one reply each): the reply goes out through the
            provider and from the number that message came in by, never another (no failover).
        in_conversation: a follow-up in the person's conversation on ``channel`` (e.g. a consultation's result sent
            later): pinned like a reply, to the provider and number of their latest inbound message there.
        buttons: quick replies for chat channels.
        send_at: a future time to send at (the row waits as ``scheduled``).
        dedupe_key: one logical message, one row: a second call with the same key returns the first row.
        allow_opted_out: only for the one opt-out confirmation.
        unauthenticated: sent at the request of nobody signed in (a password reset code): counted against the
            unauthenticated SMS budgets (``SMS_BUDGET_UNAUTHENTICATED_HOUR`` and ``..._COUNTRY_HOUR``) instead of
            the counters of what clinics and signed-in users send.
        secret_text: what the provider gets when ``text`` (what is stored) masks a secret in it, e.g. a reset
            code as ``******``. Kept only in Redis, for ``secret_seconds``: a send after that fails.
        secret_seconds: how long ``secret_text`` is kept (the secret's own lifetime).

    Returns:
        The new (or, for a repeated ``dedupe_key``, the existing) message row.

    Raises:
        OptedOut: the contact has opted out. SendCapReached: an SMS over the hourly caps or budgets.
    """
    if dedupe_key is not None:
        existing = db.session.scalar(select(Message).where(Message.dedupe_key == dedupe_key))
        if existing is not None:
            return existing
    contact = db.session.scalar(select(Contact).where(Contact.address == address))
    if contact is not None and contact.opted_out_at is not None and not allow_opted_out:
        raise OptedOut("This number has opted out of messages from Thusa; nothing is sent until they reply START.")
    if channel == SMS and kind not in UNCAPPED_KINDS:
        _check_caps(address, unauthenticated=unauthenticated)
    encoding, segments = sms_encoding(text) if channel == SMS else (None, None)
    scheduled = send_at is not None and send_at > utcnow()
    route = None
    if reply_to_id is not None:
        answered = db.session.get(Message, reply_to_id)  # the engine has it loaded: no query
        route = answered if answered is not None and answered.channel == channel else None
    elif in_conversation:
        route = inbox.latest_inbound(address, channel)
    message = Message(
        id=new_id(),  # known before the row is written: a message without a key waits for the next flush
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
        pinned_provider=route.provider if route else None,
        our_address=route.our_address if route else None,
        buttons=[{"id": b.id, "title": b.title} for b in buttons],
        encoding=encoding,
        segments=segments,
        send_at=send_at,
        status=STATUS_SCHEDULED if scheduled else STATUS_QUEUED,
        dedupe_key=dedupe_key,
        extra={"secret_text": True} if secret_text is not None else None,
    )
    if dedupe_key is None and reply_to_id is None:
        db.session.add(message)  # nothing unique to race on: no savepoint (two round trips, often under a row lock)
    else:
        try:
            with db.session.begin_nested():
                db.session.add(message)
        except IntegrityError:
            lookup = Message.dedupe_key == dedupe_key if dedupe_key else Message.reply_to_id == reply_to_id
            return db.session.scalar(select(Message).where(lookup))
    message_id = message.id
    if secret_text is not None:
        # Stashed before the send is enqueued, in the same post-commit step: a job never runs ahead of it.
        after_commit(db.session(), lambda: _stash_secret_text(message_id, secret_text, secret_seconds))
    if not scheduled:
        after_commit(db.session(), lambda: enqueue_send(message_id))
    return message


def enqueue_send(message_id: uuid.UUID) -> None:
    """Enqueue the send job of one outbox row (safe to repeat: the job claims the row)."""
    jobs.enqueue(jobs.QUEUE_OUTBOUND, jobs.SEND_MESSAGE, str(message_id), job_id=f"send-{message_id}")


@dataclass(frozen=True)
class Outgoing:
    """One message for :func:`queue_many`: what :func:`queue_outbound` takes, for kinds the caps do not count."""

    channel: str
    address: str
    text: str
    language: str | None = None
    kind: str = KIND_REMINDER
    clinic_id: uuid.UUID | None = None
    appointment_id: uuid.UUID | None = None
    dedupe_key: str | None = None
    send_at: datetime | None = None


@dataclass(frozen=True)
class QueuedMany:
    """What :func:`queue_many` did: the rows it wrote, and what it skipped."""

    ids: list[uuid.UUID]  # new rows, queued or scheduled
    scheduled: int  # of those, how many wait for their send_at
    duplicates: int  # already in the outbox under the same dedupe_key
    opted_out: int  # not written: the recipient has opted out


# The columns of a bulk insert that vary per row, in the order of _BULK_INSERT's arrays.
_BULK_COLUMNS = ("id", "channel", "address", "text", "language", "kind", "clinic_id", "appointment_id", "contact_id",
                 "encoding", "segments", "send_at", "status", "dedupe_key")  # fmt: skip
_BULK_INSERT = text(
    "INSERT INTO messages (id, channel, address, text, language, kind, clinic_id, appointment_id, contact_id,"
    " encoding, segments, send_at, status, dedupe_key, direction, buttons, media, attempts, created_at, updated_at)"
    " SELECT *, :direction, '[]', '[]', 0, :stamp, :stamp FROM unnest(CAST(:id AS uuid[]),"
    " CAST(:channel AS varchar[]), CAST(:address AS varchar[]), CAST(:text AS text[]), CAST(:language AS varchar[]),"
    " CAST(:kind AS varchar[]), CAST(:clinic_id AS uuid[]), CAST(:appointment_id AS uuid[]),"
    " CAST(:contact_id AS uuid[]), CAST(:encoding AS varchar[]), CAST(:segments AS integer[]),"
    " CAST(:send_at AS timestamptz[]), CAST(:status AS varchar[]), CAST(:dedupe_key AS varchar[]))"
    " ON CONFLICT (dedupe_key) DO NOTHING RETURNING id"
)


def _insert_rows(rows: list[dict], stamp: datetime) -> set[uuid.UUID]:
    """Insert outbox rows, skipping a dedupe_key already there; returns the ids inserted.

    PostgreSQL gets one statement of a few arrays (``unnest``): several times faster than a multi-row VALUES list,
    whose thousands of placeholders the driver must parse. SQLite gets the multi-row INSERT.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        columns = {name: [row[name] for row in rows] for name in _BULK_COLUMNS}
        return set(db.session.scalars(_BULK_INSERT, {**columns, "direction": DIRECTION_OUT, "stamp": stamp}))
    full = [{**row, "direction": DIRECTION_OUT, "buttons": [], "media": [], "attempts": 0, "created_at": stamp,
             "updated_at": stamp} for row in rows]  # fmt: skip
    statement = sqlite.insert(Message.__table__).on_conflict_do_nothing(index_elements=["dedupe_key"])
    return set(db.session.scalars(statement.returning(Message.__table__.c.id), full))


def queue_many(messages: Sequence[Outgoing], *, now: datetime | None = None) -> QueuedMany:
    """Write many outbound messages to the outbox in the caller's transaction, in bulk; their sends are enqueued on
    commit in batch jobs (:func:`enqueue_sends`).

    The rules are :func:`queue_outbound`'s: nothing goes to an opted-out contact, SMS encoding and segments are
    recorded, a ``dedupe_key`` already in the outbox writes nothing (``ON CONFLICT DO NOTHING``, so two callers
    racing on the same key write one row). Only kinds the SMS caps do not count (reminders, notices) are taken.

    Args:
        messages: the messages.
        now: the current time; a message with a later ``send_at`` waits as ``scheduled``.

    Returns:
        The ids of the new rows, and how many were duplicates or opted out.

    Raises:
        ValueError: a message of a kind the SMS caps count (send those with :func:`queue_outbound`).
    """
    capped = sorted({m.kind for m in messages if m.kind not in UNCAPPED_KINDS})
    if capped:
        raise ValueError(f"queue_many takes only {', '.join(UNCAPPED_KINDS)} messages, not {', '.join(capped)}")
    if not messages:
        return QueuedMany([], 0, 0, 0)
    now = now or utcnow()
    addresses = sorted({m.address for m in messages})
    contacts = {
        address: (contact_id, opted_out_at)
        for address, contact_id, opted_out_at in db.session.execute(
            select(Contact.address, Contact.id, Contact.opted_out_at).where(Contact.address.in_(addresses))
        )
    }
    rows, opted_out, stamp = [], 0, utcnow()
    for m in messages:
        contact_id, opted_out_at = contacts.get(m.address, (None, None))
        if opted_out_at is not None:
            opted_out += 1
            continue
        encoding, segments = sms_encoding(m.text) if m.channel == SMS else (None, None)
        scheduled = m.send_at is not None and m.send_at > now
        rows.append({
            "id": new_id(), "channel": m.channel, "address": m.address, "text": m.text, "language": m.language,
            "kind": m.kind, "clinic_id": m.clinic_id, "appointment_id": m.appointment_id, "contact_id": contact_id,
            "encoding": encoding, "segments": segments, "send_at": m.send_at,
            "status": STATUS_SCHEDULED if scheduled else STATUS_QUEUED, "dedupe_key": m.dedupe_key,
        })  # fmt: skip
    if not rows:
        return QueuedMany([], 0, 0, opted_out)
    inserted = _insert_rows(rows, stamp)
    ids = [row["id"] for row in rows if row["id"] in inserted]
    to_send = [row["id"] for row in rows if row["id"] in inserted and row["status"] == STATUS_QUEUED]
    if to_send:
        after_commit(db.session(), lambda: enqueue_sends(to_send))
    return QueuedMany(ids, len(ids) - len(to_send), len(rows) - len(ids), opted_out)


def enqueue_sends(message_ids: Iterable[uuid.UUID | str]) -> None:
    """Enqueue the sends of many outbox rows: one batch job (``app.jobs.SEND_BATCH``) per
    ``SEND_BATCH`` rows, up to 40 jobs per Redis round trip.

    Each row also gets a key naming its batch job, so the sweeper knows it is pending. A batch job is not retried
    by RQ: a row it could not send stays ``queued`` and the sweeper gives it a job of its own (retried with
    back-off). A single row gets the job :func:`enqueue_send` makes.
    """
    queue = jobs.get_queue(jobs.QUEUE_OUTBOUND)
    ids = [str(message_id) for message_id in message_ids]
    batches = [ids[start : start + SEND_BATCH] for start in range(0, len(ids), SEND_BATCH)]
    for first in range(0, len(batches), ENQUEUE_CHUNK):
        with queue.connection.pipeline() as pipe:
            prepared = []
            for batch in batches[first : first + ENQUEUE_CHUNK]:
                if len(batch) == 1:
                    prepared.append(Queue.prepare_data(jobs.SEND_MESSAGE, args=(batch[0],), job_id=f"send-{batch[0]}",
                                                       retry=jobs.DEFAULT_RETRY, timeout=300,
                                                       result_ttl=jobs.RESULT_TTL,
                                                       failure_ttl=jobs.FAILURE_TTL))  # fmt: skip
                    continue
                job_id = f"send-batch-{batch[0]}"
                prepared.append(Queue.prepare_data(jobs.SEND_BATCH, args=(batch,), job_id=job_id, timeout=300,
                                                   result_ttl=jobs.RESULT_TTL,
                                                   failure_ttl=jobs.FAILURE_TTL))  # fmt: skip
                for message_id in batch:
                    pipe.set(f"{BATCH_KEY}{message_id}", job_id, ex=BATCH_KEY_SECONDS)
            queue.enqueue_many(prepared, pipeline=pipe)
            pipe.execute()
