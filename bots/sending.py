"""Sending: claim an outbox row, plan its channel and providers (:mod:`bots.routing`: a reply goes out where the
person wrote, never failed over), hand it to them in order, record the result; and the sweeper. The jobs in
``workers.outbound`` call these; the adapters they use are in ``bots.channels``. A read timeout or an unreadable
answer may mean the provider took the message: the row ends ``unknown`` and is never resent or failed over.

Guarantees: no message is lost and none is sent twice, even if a worker is killed mid-send or Redis loses its
data. A row is claimed (``queued`` → ``sending``) before any provider is called; a row found still ``sending``
long after its claim may have gone out, so the sweeper marks it ``unknown`` for a person to check and never sends
it again. A ``queued`` row whose job is gone is enqueued again.

Reminders and notices are checked again after the claim: the appointment still as written for, and the clinic's
sending hours. Rows written in bulk (the reminder job) are sent by batch jobs (:func:`send_batch`), which share
RQ's cost per job but keep every per-message guarantee. Every send ends through one function, :func:`_finish`.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
import weakref
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

import redis
from flask import Flask, current_app
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.timeouts import JobTimeoutException
from sqlalchemy import case, insert, select, update
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value

from app.extensions import db, redis_client
from app.i18n.gsm7 import sms_encoding
from app.jobs import HANDLE_MESSAGE, QUEUE_DEFAULT, QUEUE_OUTBOUND, enqueue, enqueue_handle, get_queue
from app.messaging import inbox, outbox
from app.messaging.envelopes import Button, OutboundMessage
from app.messaging.outbox import BATCH_KEY, enqueue_send, enqueue_sends
from app.models import Appointment, Contact, Message, MessageEvent, new_id, utcnow
from app.models.channel import USSD
from app.models.message_log import (
    DIRECTION_IN,
    DIRECTION_OUT,
    KIND_NOTICE,
    KIND_REMINDER,
    STATUS_FAILED,
    STATUS_QUEUED,
    STATUS_RECEIVED,
    STATUS_SCHEDULED,
    STATUS_SENDING,
    STATUS_SENT,
    STATUS_UNKNOWN,
)
from app.services import send_checks
from bots import routing
from bots.channels import SendError, senders_for

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5  # job runs per message (each run tries every provider)
STALE_AFTER = timedelta(minutes=1)  # a queued row or received message this old with no job is re-enqueued
STUCK_AFTER = timedelta(minutes=6)  # longer than a send job may run (300 s timeout): the worker died mid-send
_PENDING_JOB_STATES = {"queued", "scheduled", "started", "deferred"}
BATCH_SECONDS = 60.0  # a batch job starts no new send after this, so it ends well inside its 300 s timeout
# + message id: set when a batch claims the row, deleted just before its first provider call. A row a dead worker
# left ``sending`` whose key is still there never reached a provider: the sweeper queues it again instead of
# marking it unknown. A lost key (Redis restarted) only ever makes the row unknown: never sent twice.
UNTRIED_KEY = "thusa:untried:"
UNTRIED_KEY_SECONDS = 86400


class AllProvidersFailed(Exception):
    """Every provider failed with a retryable error; RQ retries the job later."""


# Provider adapters per app and channel, kept for the worker's life: each keeps its HTTP client, so a send reuses a
# kept-alive (TLS) connection instead of building a client and connecting anew for every message.
_ADAPTERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def forget_adapters(app: Flask) -> None:
    """Drop the adapters kept for ``app``, so the next send builds them from its settings as they are now."""
    _ADAPTERS.pop(app, None)


def _senders(channel: str) -> list:
    app = current_app._get_current_object()
    cached = _ADAPTERS.setdefault(app, {})
    if channel not in cached:
        cached[channel] = senders_for(channel, app.config)
    return cached[channel]


def _try_providers(outbound: OutboundMessage, providers: list, *, pinned: str | None = None
                   ) -> tuple[str, str | None, int]:  # fmt: skip
    """Send through each provider in order: a few tries each on retryable errors, within a time budget. A pinned
    send has one provider: its failures are retried later on that provider, never failed over.

    Returns:
        (provider, provider id, attempt) of the provider that accepted it.

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
            # The accepted attempt is recorded with the message's status (_finish): one commit less per message.
            return result.provider, result.provider_id, attempt
    detail = "; ".join(errors)
    if pinned is not None:
        detail = f"{pinned} (where the person wrote; a reply never fails over): {detail}"
    raise AllProvidersFailed(detail[:500])


def _note_attempt(message_id: uuid.UUID, provider: str, detail: str, code: str | None, status: str | None = None):
    inbox.record_event(message_id, "attempt", provider=provider, detail=detail, error_code=code, status=status)
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
    return _send(message_id, commit_sent=True)


def _send(message_id: str, *, commit_sent: bool) -> str:
    """:func:`send_message`; with ``commit_sent`` False a send the provider accepted is recorded but left for the
    caller to commit."""
    mid = uuid.UUID(message_id)
    # The claim returns the row, and the checks below read in the same transaction: it commits (making the claim
    # durable) before any provider is called.
    message = db.session.execute(
        update(Message)
        .where(Message.id == mid, Message.status == STATUS_QUEUED)
        .values(status=STATUS_SENDING, attempts=Message.attempts + 1, claimed_at=utcnow(), updated_at=utcnow())
        .returning(Message)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if message is None:
        db.session.commit()
        message = db.session.get(Message, mid, populate_existing=True)
        return message.status if message else "missing"
    appointment = None
    if message.kind in (KIND_REMINDER, KIND_NOTICE) and message.appointment_id is not None:
        # Read afresh (it may have changed since this process last saw it), with the patient's contact: the
        # contact read below then comes from the session, not from another query.
        appointment = db.session.get(Appointment, message.appointment_id, populate_existing=True)
    ready = _prepare(message, appointment)
    if isinstance(ready, str):
        return ready
    db.session.commit()  # never hold a transaction (on SQLite: the write lock) across a provider's network call
    if not _tried(message):
        return STATUS_QUEUED
    accepted = _deliver(ready)
    if isinstance(accepted, str):
        return accepted
    return _finish(message, STATUS_SENT, provider=accepted.provider, provider_id=accepted.provider_id,
                   attempt=accepted.attempt, commit=commit_sent)  # fmt: skip


@dataclass
class _Ready:
    """A claimed row that passed the checks: what to hand to which providers."""

    message: Message
    contact: Contact | None
    outbound: OutboundMessage
    plan: routing.Plan


@dataclass
class _Accepted:
    """A provider took the message."""

    message: Message
    provider: str
    provider_id: str | None
    attempt: int


def _prepare(message: Message, appointment: Appointment | None) -> _Ready | str:
    """The checks a claimed row passes before any provider sees it (opt-out, the appointment and the clinic's
    sending hours, a secret text still there, a route); returns what to send, or the status the row ended in."""
    contact = inbox.contact_of(message)
    if contact is not None and contact.opted_out_at is not None and message.created_at < contact.opted_out_at:
        return _finish(message, STATUS_FAILED, error="opted out before it was sent", code="opted_out")
    if message.kind in (KIND_REMINDER, KIND_NOTICE):
        held = _hold_for_appointment(message, appointment)
        if held is not None:
            return held
    text = outbox.text_to_send(message)
    if text is None:
        return _finish(message, STATUS_FAILED, error="its secret text expired or was lost before the send",
                       code="secret_expired")  # fmt: skip
    plan = routing.plan(message, contact, text, _senders, utcnow())
    if plan.channel != message.channel:
        inbox.record_event(message.id, "fallback", detail="outside the WhatsApp 24-hour window, no template: SMS")
        message.channel = plan.channel
        message.encoding, message.segments = sms_encoding(message.text or "")
        message.pinned_provider = message.our_address = None  # an SMS instead: the first on that channel
    if not plan.providers:
        return _finish(message, STATUS_FAILED, code="route_unavailable",
                       error=f"{plan.pinned or message.pinned_provider}, the provider the person wrote through, is "
                       f"not configured for {plan.channel}; a reply is never sent from another number")  # fmt: skip
    buttons = tuple(Button(b["id"], b["title"]) for b in message.buttons or [])
    outbound = OutboundMessage(message.id, plan.channel, message.address, text, message.language,
                               buttons=buttons, template=plan.template, sender=plan.sender)  # fmt: skip
    return _Ready(message, contact, outbound, plan)


def _deliver(ready: _Ready) -> _Accepted | str:
    """Hand a prepared row to its providers (no transaction open). A refusal or a send that may have happened is
    recorded and committed at once; an accepted send is returned for the caller to record.

    Raises:
        AllProvidersFailed: every provider failed with retryable errors; the row is ``queued`` again (or
            ``failed`` after ``MAX_ATTEMPTS`` runs, then this returns ``failed`` instead).
    """
    message = ready.message
    try:
        provider, provider_id, attempt = _try_providers(ready.outbound, ready.plan.providers, pinned=ready.plan.pinned)
    except SendError as exc:
        if exc.maybe_sent:
            log.error("message %s: the provider's answer timed out or was unreadable; it may have gone out: marked "
                      "unknown, not resent", message.id)  # fmt: skip
            return _finish(message, STATUS_UNKNOWN, error=str(exc), code=exc.code)
        if exc.opted_out:
            inbox.opt_out(ready.contact)
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
    outbox.forget_secret_text(message)
    return _Accepted(message, provider, provider_id, attempt)


def _finish(message: Message, status: str, *, error: str | None = None, code: str | None = None,
            provider: str | None = None, provider_id: str | None = None, attempt: int | None = None,
            commit: bool = True, event: bool = True) -> str:  # fmt: skip
    """Record how a claimed send ended: the one way every send ends, in Core statements (the hot path: ORM
    bookkeeping cost more than the statements).

    The status moves only if the row is still ``sending`` (one conditional UPDATE instead of a read and a write);
    if another process changed it meanwhile (the sweeper marked it ``unknown``), the outcome (provider, error) is
    still recorded but the status it has stays. A send the provider accepted (``provider`` given) also records
    its accepted attempt, links delivery reports that arrived before it, and counts a reminder (only when it
    ended here: an ``unknown`` send is never counted).

    Args:
        message: the claimed row.
        status: the status it ends in (``sent``, ``failed``, ``unknown``, or ``queued`` again for a retry).
        error: why it failed, for the record.
        code: a short error code (kept as it was when None).
        provider: the provider that accepted it.
        provider_id: that provider's id of the message (for delivery reports).
        attempt: which try at that provider was accepted.
        commit: commit (True), or only flush and leave the commit to the caller.
        event: record the accepted attempt (False: the caller already did, for a whole batch).

    Returns:
        The message's status afterwards.
    """
    now = utcnow()
    messages, events = Message.__table__, MessageEvent.__table__
    # Without updated_at in the values, the column's own onupdate stamps it, as the ORM would.
    written: dict = {"last_error": error[:500] if error else None}
    if code:
        written["error_code"] = code[:32]
    if provider is not None:
        written.update(provider=provider, provider_id=provider_id, sent_at=now, updated_at=now)
    if provider is not None and event:
        # The accepted attempt is recorded here, with the status: one commit less per message.
        db.session.execute(
            insert(events).values(
                id=new_id(),
                message_id=message.id,
                kind="attempt",
                provider=provider,
                detail=f"attempt {attempt}: accepted",
                status=STATUS_SENT,
                at=now,
            )
        )
    returned = (messages.c.status, messages.c.kind, messages.c.appointment_id, messages.c.channel,
                messages.c.provider, messages.c.provider_id, messages.c.updated_at)  # fmt: skip
    row = db.session.execute(
        update(messages)
        .where(messages.c.id == message.id, messages.c.status == STATUS_SENDING)
        .values(status=status, **written)
        .returning(*returned)
    ).one_or_none()
    ended_here = row is not None
    if not ended_here:
        row = db.session.execute(
            update(messages).where(messages.c.id == message.id).values(**written).returning(*returned)
        ).one()
    now_stored = {"status": row.status, "provider": row.provider, "provider_id": row.provider_id,
                  "updated_at": row.updated_at}  # fmt: skip
    for name, value in {**written, **now_stored}.items():
        set_committed_value(message, name, value)  # the object shows what was written, without a reload
    early = row.provider_id and db.session.scalar(
        select(events.c.id)
        .where(
            events.c.message_id.is_(None), events.c.provider == row.provider, events.c.provider_id == row.provider_id
        )
        .limit(1)
    )
    if early:
        inbox.link_early_reports(message)
    if ended_here and status == STATUS_SENT and row.kind == KIND_REMINDER and row.appointment_id:
        send_checks.count_reminders(Counter({(row.appointment_id, row.channel): 1}))
    if commit:
        db.session.commit()
    else:
        db.session.flush()
    return message.status


def _hold_for_appointment(message: Message, appointment: Appointment | None) -> str | None:
    """Acts on :func:`app.services.send_checks.hold`: fails the row, or gives it back to wait for the clinic's
    sending hours (``scheduled``, released by the sweeper). An RQ retry after every provider failed claims the row
    again, so retries wait for the sending hours too.

    Returns:
        The message's new status when it must not be sent now; None to send it.
    """
    verdict = send_checks.hold(message, appointment, utcnow())  # this module's clock, which tests pin
    if verdict is None:
        return None
    if verdict.code is not None:
        return _finish(message, STATUS_FAILED, error=verdict.error, code=verdict.code)
    # Not a send attempt: give the run back, so waiting never uses up the retries.
    deferred = db.session.execute(
        update(Message)
        .where(Message.id == message.id, Message.status == STATUS_SENDING)
        .values(
            status=STATUS_SCHEDULED,
            send_at=verdict.send_at,
            attempts=Message.attempts - 1,
            claimed_at=None,
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    db.session.refresh(message)
    if deferred:
        log.info("message %s: outside the clinic's sending hours, waits until %s", message.id,
                 verdict.send_at.isoformat())  # fmt: skip
    return message.status


def send_batch(message_ids: list[str]) -> dict[str, int]:
    """Send many outbox messages in one job, with the database work of the whole batch shared: one statement
    claims every row (committed before any provider is called), one reads their appointments (and with them
    their contacts and clinics), and the accepted sends are recorded together, in one commit, after the last.

    Every per-message guarantee still holds: each row is checked (opt-out, the appointment, the clinic's sending
    hours) after its claim and before its provider call, and a refusal or a send that may have happened is
    recorded at once. If the process dies, the rows it claimed stay ``sending``: the sweeper marks ``unknown`` the
    ones that may have reached a provider and queues again the ones that cannot have (their ``UNTRIED_KEY``).

    A message whose providers all failed is ``queued`` again: the sweeper gives it a job of its own a minute later,
    which RQ then retries with back-off. After ``BATCH_SECONDS`` (a slow provider) the rest are handed back
    unsent to a new job.

    Args:
        message_ids: ``messages.id`` of queued outbound rows.

    Returns:
        How many messages ended in each status (``retry``: every provider failed; ``error``: an unexpected error,
        logged; ``handed_on``: left to a new job).
    """
    started = time.monotonic()
    done: Counter = Counter()
    ids = [uuid.UUID(message_id) for message_id in message_ids]
    claimed = (
        db.session.execute(
            update(Message)
            .where(Message.id.in_(ids), Message.status == STATUS_QUEUED)
            .values(status=STATUS_SENDING, attempts=Message.attempts + 1, claimed_at=utcnow(), updated_at=utcnow())
            .returning(Message)
            .execution_options(populate_existing=True, synchronize_session=False)
        )
        .scalars()
        .all()
    )
    position = {message_id: index for index, message_id in enumerate(ids)}
    claimed.sort(key=lambda message: position[message.id])
    mine = {message.id for message in claimed}
    others = [message_id for message_id in ids if message_id not in mine]
    if others:  # sent, or claimed by someone else, meanwhile
        statuses = db.session.scalars(select(Message.status).where(Message.id.in_(others))).all()
        done.update(statuses)
        done["missing"] += len(others) - len(statuses)
    appointments, _contacts = _load_for(claimed)  # held until the batch ends
    _mark_untried(claimed)
    db.session.commit()  # the claims: durable before any provider is called
    ready: list[_Ready] = []
    for message in claimed:
        try:
            prepared = _prepare(message, appointments.get(message.appointment_id))
        except Exception:
            db.session.rollback()  # it stays ``sending``, untried: the sweeper queues it again
            log.exception("message %s: its checks failed unexpectedly", message.id)
            done["error"] += 1
            continue
        if isinstance(prepared, str):
            done[prepared] += 1
        else:
            ready.append(prepared)
    db.session.commit()  # what the checks changed (a WhatsApp message falling back to SMS)

    accepted: list[_Accepted] = []
    try:
        for index, item in enumerate(ready):
            if index and time.monotonic() - started > BATCH_SECONDS:  # each job sends at least one
                rest = [r.message.id for r in ready[index:]]
                _record_accepted(accepted, done)
                accepted = []
                _hand_back(rest)
                done["handed_on"] += len(rest)
                break
            contact = item.contact
            if (
                contact is not None
                and contact.opted_out_at is not None
                and item.message.created_at < contact.opted_out_at
            ):
                # A provider reported this person opted out earlier in the batch (the same contact object).
                done[_finish(item.message, STATUS_FAILED, error="opted out before it was sent", code="opted_out")] += 1
                continue
            if not _tried(item.message):
                done["retry"] += 1
                continue
            try:
                outcome = _deliver(item)
            except AllProvidersFailed:
                done["retry"] += 1
                continue
            except JobTimeoutException:
                raise  # RQ ends the job: never swallowed (BATCH_SECONDS keeps a batch well inside its timeout)
            except Exception:
                # One message's surprise must not strand the others; this one stays ``sending``: unknown.
                db.session.rollback()
                log.exception("message %s: sending failed unexpectedly", item.message.id)
                done["error"] += 1
                continue
            if isinstance(outcome, str):
                done[outcome] += 1
            else:
                accepted.append(outcome)
    finally:
        if accepted:
            _record_accepted(accepted, done)
        db.session.expunge_all()
    return dict(done)


def _load_for(claimed: list[Message]) -> tuple[dict[uuid.UUID, Appointment], list[Contact]]:
    """Read afresh, in two statements, the appointments (with their patients' contacts and clinics) and the
    contacts the claimed rows need.

    Returns:
        The appointments by id, and the contacts. Hold on to both: the session keeps objects only while something
        refers to them, and the checks look the contacts up there.
    """
    appointments: dict[uuid.UUID, Appointment] = {}
    wanted = {m.appointment_id for m in claimed if m.kind in (KIND_REMINDER, KIND_NOTICE) and m.appointment_id}
    if wanted:
        appointments = {
            a.id: a
            for a in db.session.scalars(
                select(Appointment).where(Appointment.id.in_(wanted)).execution_options(populate_existing=True)
            ).unique()
        }
    known = {a.patient.contact_id for a in appointments.values()}
    contact_ids = {m.contact_id for m in claimed if m.contact_id and m.contact_id not in known}
    contacts = []
    if contact_ids:
        contacts = db.session.scalars(
            select(Contact).where(Contact.id.in_(contact_ids)).execution_options(populate_existing=True)
        ).all()
    return appointments, contacts


def _mark_untried(claimed: list[Message]) -> None:
    """Note in Redis that the claimed rows have not reached a provider yet (one round trip). Without Redis the
    notes are simply missing: a dead worker's rows then become ``unknown``, as they would anyway."""
    if not claimed:
        return
    try:
        with redis_client.client.pipeline(transaction=False) as pipe:
            for message in claimed:
                pipe.set(f"{UNTRIED_KEY}{message.id}", 1, ex=UNTRIED_KEY_SECONDS)
            pipe.execute()
    except redis.RedisError:
        log.warning("Redis unavailable: %d claimed row(s) would be unknown, not resent, if this worker died",
                    len(claimed))  # fmt: skip


def _tried(message: Message) -> bool:
    """Delete the row's untried note just before its provider call. If Redis cannot confirm that, the note may
    survive and the sweeper would queue the row again after a send: so the row is not sent now but given back."""
    try:
        redis_client.client.delete(f"{UNTRIED_KEY}{message.id}")
    except redis.RedisError:
        log.warning("message %s: Redis unavailable, not sent now, queued again", message.id)
        _hand_back([message.id])
        return False
    return True


def _hand_back(message_ids: list[uuid.UUID]) -> None:
    """Give claimed rows that no provider has seen back to the queue, unsent and with their run returned, and
    enqueue them in a new job."""
    db.session.execute(
        update(Message)
        .where(Message.id.in_(message_ids), Message.status == STATUS_SENDING)
        .values(status=STATUS_QUEUED, attempts=Message.attempts - 1, claimed_at=None, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    with contextlib.suppress(redis.RedisError):
        redis_client.client.delete(*[f"{UNTRIED_KEY}{m}" for m in message_ids])
    enqueue_sends(message_ids)


def _record_accepted(accepted: list[_Accepted], done: Counter) -> None:
    """Record the accepted sends of a batch in a few statements and one commit: as :func:`_finish` does for one
    (the accepted attempt, the status if still ``sending``, early delivery reports, reminder counts)."""
    if not accepted:
        return
    now = utcnow()
    messages, events = Message.__table__, MessageEvent.__table__
    db.session.execute(
        insert(events),
        [
            {
                "id": new_id(),
                "message_id": a.message.id,
                "kind": "attempt",
                "provider": a.provider,
                "detail": f"attempt {a.attempt}: accepted",
                "status": STATUS_SENT,
                "at": now,
            }  # fmt: skip
            for a in accepted
        ],
    )
    by_id = {a.message.id: a for a in accepted}
    written = {
        "last_error": None,
        "provider": case({i: a.provider for i, a in by_id.items()}, value=messages.c.id),
        "provider_id": case({i: a.provider_id for i, a in by_id.items()}, value=messages.c.id),
        "sent_at": now,
        "updated_at": now,
    }
    ended = db.session.execute(
        update(messages)
        .where(messages.c.id.in_(by_id), messages.c.status == STATUS_SENDING)
        .values(status=STATUS_SENT, **written)
        .returning(messages.c.id, messages.c.kind, messages.c.appointment_id, messages.c.channel)
    ).all()
    ended_here = {row.id for row in ended}
    for message_id, item in by_id.items():
        if message_id not in ended_here:  # another process changed its status meanwhile: the outcome is still kept
            _finish(item.message, STATUS_SENT, provider=item.provider, provider_id=item.provider_id,
                    attempt=None, commit=False, event=False)  # fmt: skip
            done[item.message.status] += 1
    done[STATUS_SENT] += len(ended_here)
    for row in ended:
        message = by_id[row.id].message
        for name, value in (("status", STATUS_SENT), ("provider", by_id[row.id].provider),
                            ("provider_id", by_id[row.id].provider_id), ("sent_at", now), ("updated_at", now),
                            ("last_error", None)):  # fmt: skip
            set_committed_value(message, name, value)
    send_checks.count_reminders(
        Counter((row.appointment_id, row.channel) for row in ended if row.kind == KIND_REMINDER and row.appointment_id)
    )
    provider_ids = {a.provider_id for a in accepted if a.provider_id}
    if provider_ids:
        early = set(
            db.session.execute(
                select(events.c.provider, events.c.provider_id).where(
                    events.c.message_id.is_(None), events.c.provider_id.in_(provider_ids)
                )
            ).all()
        )
        for item in accepted:
            if (item.provider, item.provider_id) in early:
                inbox.link_early_reports(item.message)
    db.session.commit()


def _job_pending(job_id: str) -> bool:
    try:
        return Job.fetch(job_id, connection=redis_client.client).get_status(refresh=False) in _PENDING_JOB_STATES
    except NoSuchJobError:
        return False


def _pending_sends(message_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these outbox rows still have a send job waiting or running (their own ``send-{id}`` or a batch
    job's), in three Redis round trips per 1,000 rows."""
    connection, pending = redis_client.client, set()
    for start in range(0, len(message_ids), 1000):
        chunk = message_ids[start : start + 1000]
        own = Job.fetch_many([f"send-{m}" for m in chunk], connection=connection, serializer=JSONSerializer)
        batches = [b.decode() if b else None for b in connection.mget([f"{BATCH_KEY}{m}" for m in chunk])]
        wanted = sorted({b for b in batches if b})
        states = {
            job.id: job.get_status(refresh=False)
            for job in Job.fetch_many(wanted, connection=connection, serializer=JSONSerializer)
            if job is not None
        }
        for message_id, job, batch in zip(chunk, own, batches, strict=True):
            if (job is not None and job.get_status(refresh=False) in _PENDING_JOB_STATES) or (
                states.get(batch) in _PENDING_JOB_STATES
            ):
                pending.add(message_id)
    return pending


def _still_untried(message_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these ``sending`` rows still have their untried note: never handed to a provider. Without Redis,
    none (they become ``unknown``: never sent twice)."""
    if not message_ids:
        return set()
    try:
        notes = redis_client.client.mget([f"{UNTRIED_KEY}{m}" for m in message_ids])
    except redis.RedisError:
        return set()
    return {m for m, note in zip(message_ids, notes, strict=True) if note is not None}


def sweep() -> dict[str, int]:
    """The periodic safety net (every minute).

    - releases scheduled messages whose time has come;
    - re-enqueues queued outbound rows and received inbound messages whose job was lost (Redis restarted or
      wiped, or a process died between commit and enqueue), except messages waiting behind an earlier one of the
      same person that failed (its retry handles them, in order);
    - tries again inbound messages whose handling failed, once their ``retry_at`` has come (RQ's retries of their
      job are over by then); the engine sets the next one, or gives up;
    - marks ``unknown`` the rows a dead worker left ``sending``: they may have gone out, so they are never sent
      again; a person checks them. Rows a dead batch claimed but never handed to a provider (their untried note
      is still in Redis) are queued again instead.

    Returns:
        Counts of what it did.
    """
    # RQ's own check for jobs whose worker died (their time ran out): a dead batch job becomes failed, so the
    # messages it had not reached are enqueued again below.
    get_queue(QUEUE_OUTBOUND).started_job_registry.cleanup()
    now = utcnow()
    due = db.session.scalars(select(Message.id).where(Message.status == STATUS_SCHEDULED, Message.send_at <= now)).all()
    if due:
        db.session.execute(
            update(Message).where(Message.id.in_(due), Message.status == STATUS_SCHEDULED).values(status=STATUS_QUEUED)
        )
    left = db.session.scalars(
        select(Message.id).where(
            Message.direction == DIRECTION_OUT, Message.status == STATUS_SENDING, Message.claimed_at < now - STUCK_AFTER
        )
    ).all()
    untried = _still_untried(left)
    if untried:  # claimed by a batch that died before handing them to a provider: queued again, run returned
        db.session.execute(
            update(Message)
            .where(Message.id.in_(untried), Message.status == STATUS_SENDING)
            .values(status=STATUS_QUEUED, attempts=Message.attempts - 1, claimed_at=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    stuck = 0
    if len(left) > len(untried):
        stuck = db.session.execute(
            update(Message)
            .where(Message.id.in_([m for m in left if m not in untried]), Message.status == STATUS_SENDING)
            .values(
                status=STATUS_UNKNOWN,
                last_error="the worker stopped mid-send; check with the provider before resending",
            )
            .execution_options(synchronize_session=False)
        ).rowcount
    stale_out = db.session.scalars(
        select(Message.id).where(
            Message.direction == DIRECTION_OUT, Message.status == STATUS_QUEUED, Message.updated_at < now - STALE_AFTER
        )
    ).all()
    earlier = aliased(Message)
    waiting = (  # an earlier message of the same person waits for its retry: this one waits behind it
        select(earlier.id)
        .where(
            earlier.address == Message.address,
            earlier.direction == DIRECTION_IN,
            earlier.status == STATUS_FAILED,
            earlier.retry_at.is_not(None),
            earlier.channel != USSD,
            earlier.received_at <= Message.received_at,
        )
        .exists()
    )
    stale_in = db.session.scalars(
        select(Message.id).where(
            Message.direction == DIRECTION_IN,
            Message.status == STATUS_RECEIVED,
            Message.channel != USSD,
            Message.created_at < now - STALE_AFTER,
            ~waiting,
        )
    ).all()
    retry_in = db.session.scalars(
        select(Message.id).where(
            Message.direction == DIRECTION_IN,
            Message.status == STATUS_FAILED,
            Message.channel != USSD,
            Message.retry_at <= now,
        )
    ).all()
    if retry_in:
        # A lease: a retry whose job is lost (or whose worker dies) is tried again once a job's time is surely over.
        db.session.execute(
            update(Message)
            .where(Message.id.in_(retry_in), Message.status == STATUS_FAILED)
            .values(retry_at=now + STUCK_AFTER)
            .execution_options(synchronize_session=False)
        )
    db.session.commit()
    if stuck:
        log.error("%d outbound message(s) left mid-send by a dead worker are marked unknown", stuck)
    if untried:
        with contextlib.suppress(redis.RedisError):  # a surviving note is harmless once the row is queued
            redis_client.client.delete(*[f"{UNTRIED_KEY}{m}" for m in untried])
    requeued = 0
    pending = _pending_sends(stale_out) if stale_out else set()
    for message_id in [*due, *untried, *stale_out]:
        if message_id in due or message_id in untried or message_id not in pending:
            enqueue_send(message_id)
            requeued += 1
    for message_id in stale_in:
        if not _job_pending(f"handle-{message_id}"):
            enqueue_handle(message_id)
            requeued += 1
    for message_id in retry_in:
        if not _job_pending(f"handle-{message_id}"):
            # One run per retry (no RQ retries): the back-off between tries is the engine's retry_at.
            enqueue(QUEUE_DEFAULT, HANDLE_MESSAGE, str(message_id), job_id=f"handle-{message_id}", retry=None)
            requeued += 1
    return {"released": len(due), "requeued": requeued, "unknown": stuck}
