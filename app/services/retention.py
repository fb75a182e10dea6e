"""Retention: what people wrote and sent is erased once it is older than ``MESSAGE_RETENTION_DAYS``.

The nightly job (``workers.reminders.erase_expired_texts``) calls :func:`erase_expired`. It erases, for every
message in and out (any kind, any channel: reminders, replies, reset codes, USSD hops, chat messages, texts from
numbers that are nobody's patient), its text, quick-reply buttons, media references and chat facts (``extra``);
and, for every skin photo, the stored JPEG and its media reference. Rows stay with their status, counts and
times, so reports still add up; consultations keep their answers, analyses and recommendation.

Nothing still needed is touched: outbound rows waiting to go out (``scheduled``, ``queued``, ``sending``), inbound
rows not handled yet (``received``: the sweeper hands them to the engine again), and the photos of a consultation
queued for analysis. A consultation still collecting answers after the whole period is abandoned: it is cancelled
first, so its photos go too.

The work is done in batches: each statement changes at most a batch of rows and commits, so a large backlog never
holds its locks for long (on SQLite, other writers wait at most one batch), and a run stops starting batches after
a time budget; the next night goes on.
"""

from __future__ import annotations

import logging
import time as clock
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import Text, and_, cast, null, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from app.extensions import db
from app.models import Consultation, ConsultationImage, Message, utcnow
from app.models.consultation import (
    STATUS_CANCELLED,
    STATUS_COLLECTING,
    STATUS_COMPLETED,
    STATUS_FAILED,
)
from app.models.message_log import STATUS_QUEUED, STATUS_RECEIVED, STATUS_SCHEDULED, STATUS_SENDING
from app.services import audit

log = logging.getLogger(__name__)

MESSAGE_BATCH = 1_000  # message rows per statement
PHOTO_BATCH = 100  # photo rows per statement: each holds up to a few hundred kB
PAUSE_SECONDS = 0.05  # between batches, so writers waiting on SQLite's busy timeout get the lock
BUDGET_SECONDS = 1_800.0  # no new batch after this; the rest waits for the next night

STILL_NEEDED = (STATUS_SCHEDULED, STATUS_QUEUED, STATUS_SENDING, STATUS_RECEIVED)  # messages never erased
FINISHED = (STATUS_COMPLETED, STATUS_FAILED, STATUS_CANCELLED)  # consultations whose photos may go


def erase_expired(
    now: datetime | None = None,
    *,
    message_batch: int = MESSAGE_BATCH,
    photo_batch: int = PHOTO_BATCH,
    budget_seconds: float | None = BUDGET_SECONDS,
    pause_seconds: float = PAUSE_SECONDS,
) -> dict[str, int]:
    """Erase message contents and skin photos older than ``MESSAGE_RETENTION_DAYS``, in batches.

    Idempotent: a second run finds nothing left. One audit row (``retention.erase``) per run that changed anything,
    with the counts.

    Args:
        now: the current time (UTC); defaults to now.
        message_batch: message rows per statement (and transaction).
        photo_batch: photo rows per statement (and transaction).
        budget_seconds: start no new batch after this many seconds (None: run until nothing is left).
        pause_seconds: the pause between two batches.

    Returns:
        Counts: ``messages`` and ``photos`` erased, abandoned consultations ``cancelled``, and ``done`` (1 when
        nothing was left, 0 when the budget ran out first).
    """
    now = now or utcnow()
    days = current_app.config["MESSAGE_RETENTION_DAYS"]
    cutoff = _cutoff(now, days)
    started = clock.monotonic()

    def in_budget() -> bool:
        return budget_seconds is None or clock.monotonic() - started < budget_seconds

    counts = {"messages": 0, "photos": 0, "cancelled": 0, "done": 0}
    counts["cancelled"] = _cancel_abandoned(cutoff, now)
    db.session.commit()
    messages_done = _in_batches(_erase_messages, cutoff, now, message_batch, counts, "messages", in_budget,
                                pause_seconds)  # fmt: skip
    photos_done = messages_done and _in_batches(_erase_photos, cutoff, now, photo_batch, counts, "photos", in_budget,
                                                pause_seconds)  # fmt: skip
    counts["done"] = int(photos_done)
    if counts["messages"] or counts["photos"] or counts["cancelled"]:
        audit.record(None, "retention.erase", "message", None, {**counts, "days": days})
        log.info("retention: %s (older than %d days)", counts, days)
    db.session.commit()
    return counts


def cutoff(now: datetime | None = None) -> datetime:
    """The instant before which contents are erased: ``MESSAGE_RETENTION_DAYS`` before ``now``."""
    return _cutoff(now or utcnow(), current_app.config["MESSAGE_RETENTION_DAYS"])


def _cutoff(now: datetime, days: int) -> datetime:
    return now - timedelta(days=days)


def _in_batches(erase, cutoff, now, size, counts, key, in_budget, pause_seconds) -> bool:
    """Run ``erase`` one committed batch at a time until a batch is not full; False if the budget ran out."""
    while in_budget():
        changed = erase(cutoff, now, size)
        db.session.commit()
        counts[key] += changed
        if changed < size:
            return True
        clock.sleep(pause_seconds)
    return False


def _message_has_content() -> ColumnElement[bool]:
    # JSON columns are compared as text: PostgreSQL's json type has no equality. SQLAlchemy writes an empty list as
    # "[]" and None as JSON "null" (or SQL NULL when written with null()), so both nulls count as empty.
    return or_(
        Message.text.is_not(None),
        cast(Message.media, Text) != "[]",
        cast(Message.buttons, Text) != "[]",
        and_(Message.extra.is_not(None), cast(Message.extra, Text) != "null"),
    )


def _erase_messages(cutoff: datetime, now: datetime, size: int) -> int:
    expired = and_(Message.created_at < cutoff, Message.status.not_in(STILL_NEEDED), _message_has_content())
    # The outer WHERE repeats the test: a row that changed status between the subquery and the update is left.
    batch = select(Message.id).where(expired).limit(size).with_for_update(skip_locked=True)  # PostgreSQL only
    return db.session.execute(
        update(Message)
        .where(Message.id.in_(batch.scalar_subquery()), expired)
        .values(text=None, buttons=[], media=[], extra=null(), updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount


def _erase_photos(cutoff: datetime, now: datetime, size: int) -> int:
    finished = select(Consultation.id).where(Consultation.status.in_(FINISHED))
    expired = and_(
        ConsultationImage.created_at < cutoff,
        ConsultationImage.consultation_id.in_(finished),
        or_(ConsultationImage.data.is_not(None), cast(ConsultationImage.media, Text) != "{}"),
    )
    batch = select(ConsultationImage.id).where(expired).limit(size).with_for_update(skip_locked=True)
    return db.session.execute(
        update(ConsultationImage)
        .where(ConsultationImage.id.in_(batch.scalar_subquery()), expired)
        .values(data=None, media={}, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount


def _cancel_abandoned(cutoff: datetime, now: datetime) -> int:
    return db.session.execute(
        update(Consultation)
        .where(Consultation.status == STATUS_COLLECTING, Consultation.updated_at < cutoff)
        .values(status=STATUS_CANCELLED, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
