"""Retention: what people wrote and sent is erased once it is older than ``MESSAGE_RETENTION_DAYS``.

The nightly job (``workers.reminders.erase_expired_texts``) calls :func:`erase_expired`. It erases, for every
message in and out (any kind, any channel: reminders, replies, reset codes, USSD hops, chat messages, texts from
numbers that are nobody's patient), its text, quick-reply buttons, media references and chat facts (``extra``);
and, for every skin photo, the stored JPEG and its media reference; and, for every second opinion, the pharmacist's
note and the clinician's advice (free text that may describe the patient). Rows stay with their status, counts and
times, so reports still add up; consultations keep their answers, analyses and recommendation, reviews their
diagnosis, level and confidence (the labels; with no photo left, nothing of them is exported).

Nothing still needed is touched: outbound rows waiting to go out (``scheduled``, ``queued``, ``sending``), inbound
rows not handled yet (``received``: the sweeper hands them to the engine again), and the photos of a consultation
queued for analysis. A consultation still collecting answers after the whole period is abandoned: it is cancelled
first, so its photos go too.

The work is done in batches: each UPDATE changes at most a batch of rows, by primary key, and commits, so a large
backlog never holds its locks for long (on SQLite, other writers wait at most one batch), and a run stops starting
batches after a time budget; the next night goes on. There is no index on ``created_at``: one scan of a table
collects the ids of many batches, so a backlog costs a scan per ``SCAN_ROWS`` rows, not one per batch.
"""

from __future__ import annotations

import logging
import time as clock
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import Text, and_, cast, null, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from app.extensions import db
from app.models import Consultation, ConsultationImage, Message, ReviewRequest, utcnow
from app.models.consultation import (
    STATUS_CANCELLED,
    STATUS_COLLECTING,
    STATUS_COMPLETED,
    STATUS_FAILED,
)
from app.models.message_log import STATUS_QUEUED, STATUS_RECEIVED, STATUS_SCHEDULED, STATUS_SENDING
from app.services import audit

log = logging.getLogger(__name__)

MESSAGE_BATCH = 1_000  # message rows per UPDATE (and transaction)
PHOTO_BATCH = 100  # photo rows per UPDATE: each holds up to a few hundred kB
SCAN_ROWS = 50_000  # ids read by one scan of the table (no index on created_at), then updated batch by batch
PAUSE_SECONDS = 0.05  # between batches, so writers waiting on SQLite's busy timeout get the lock
BUDGET_SECONDS = 1_800.0  # no new batch after this; the rest waits for the next night

STILL_NEEDED = (STATUS_SCHEDULED, STATUS_QUEUED, STATUS_SENDING, STATUS_RECEIVED)  # messages never erased
FINISHED = (STATUS_COMPLETED, STATUS_FAILED, STATUS_CANCELLED)  # consultations whose photos may go
ERASED_MESSAGE = {"text": None, "buttons": [], "media": [], "extra": null()}  # what an erased message holds
ERASED_PHOTO = {"data": None, "media": {}}
ERASED_REVIEW = {"note": None, "advice": None}


def erase_expired(
    now: datetime | None = None,
    *,
    message_batch: int = MESSAGE_BATCH,
    photo_batch: int = PHOTO_BATCH,
    scan_rows: int = SCAN_ROWS,
    budget_seconds: float | None = BUDGET_SECONDS,
    pause_seconds: float = PAUSE_SECONDS,
) -> dict[str, int]:
    """Erase message contents and skin photos older than ``MESSAGE_RETENTION_DAYS``, in batches.

    A scan reads the ids of up to ``scan_rows`` expired rows; they are then erased ``message_batch`` (or
    ``photo_batch``) at a time, each batch one UPDATE by primary key and one transaction, until a scan finds no
    more. Idempotent: a second run finds nothing left. One audit row (``retention.erase``) per run that changed
    anything, with the counts.

    Args:
        now: the current time (UTC); defaults to now.
        message_batch: message rows per statement (and transaction).
        photo_batch: photo rows per statement (and transaction).
        scan_rows: ids read per scan of a table.
        budget_seconds: start no new batch after this many seconds (None: run until nothing is left).
        pause_seconds: the pause between two batches.

    Returns:
        Counts: ``messages`` and ``photos`` erased, abandoned consultations ``cancelled``, and ``done`` (1 when
        nothing was left, 0 when the budget ran out first).
    """
    now = now or utcnow()
    days = current_app.config["MESSAGE_RETENTION_DAYS"]
    before = _cutoff(now, days)
    started = clock.monotonic()

    def in_budget() -> bool:
        return budget_seconds is None or clock.monotonic() - started < budget_seconds

    def in_batches(model, expired, values: dict, size: int) -> tuple[int, bool]:
        """Erase ``expired`` rows of ``model``: (how many, whether none is left)."""
        erased = 0
        while in_budget():
            ids = db.session.scalars(select(model.id).where(expired).limit(scan_rows)).all()
            db.session.commit()
            for first in range(0, len(ids), size):
                if not in_budget():
                    return erased, False
                erased += db.session.execute(
                    update(model)
                    .where(model.id.in_(ids[first : first + size]), expired)  # again: a row may have changed since
                    .values(**values, updated_at=now)
                    .execution_options(synchronize_session=False)
                ).rowcount
                db.session.commit()
                clock.sleep(pause_seconds)
            if len(ids) < scan_rows:
                return erased, True
        return erased, False

    counts = {"messages": 0, "photos": 0, "reviews": 0, "cancelled": 0, "done": 0}
    counts["cancelled"] = _cancel_abandoned(before, now)
    db.session.commit()
    counts["messages"], done = in_batches(Message, _expired_messages(before), ERASED_MESSAGE, message_batch)
    if done:
        counts["photos"], done = in_batches(ConsultationImage, _expired_photos(before), ERASED_PHOTO, photo_batch)
    if done:
        counts["reviews"], done = in_batches(ReviewRequest, _expired_reviews(before), ERASED_REVIEW, message_batch)
    counts["done"] = int(done)
    if counts["messages"] or counts["photos"] or counts["reviews"] or counts["cancelled"]:
        audit.record(None, "retention.erase", "message", None, {**counts, "days": days})
        log.info("retention: %s (older than %d days)", counts, days)
    db.session.commit()
    return counts


def cutoff(now: datetime | None = None) -> datetime:
    """The instant before which contents are erased: ``MESSAGE_RETENTION_DAYS`` before ``now``."""
    return _cutoff(now or utcnow(), current_app.config["MESSAGE_RETENTION_DAYS"])


def _cutoff(now: datetime, days: int) -> datetime:
    return now - timedelta(days=days)


def _expired_messages(before: datetime) -> ColumnElement[bool]:
    # JSON columns are compared as text: PostgreSQL's json type has no equality. SQLAlchemy writes an empty list as
    # "[]" and None as JSON "null" (SQL NULL when written with null()), so both nulls count as empty.
    has_content = or_(
        Message.text.is_not(None),
        cast(Message.media, Text) != "[]",
        cast(Message.buttons, Text) != "[]",
        and_(Message.extra.is_not(None), cast(Message.extra, Text) != "null"),
    )
    return and_(Message.created_at < before, Message.status.not_in(STILL_NEEDED), has_content)


def _expired_photos(before: datetime) -> ColumnElement[bool]:
    finished = select(Consultation.id).where(Consultation.status.in_(FINISHED))
    return and_(
        ConsultationImage.created_at < before,
        ConsultationImage.consultation_id.in_(finished),
        or_(ConsultationImage.data.is_not(None), cast(ConsultationImage.media, Text) != "{}"),
    )


def _expired_reviews(before: datetime) -> ColumnElement[bool]:
    return and_(
        ReviewRequest.created_at < before, or_(ReviewRequest.note.is_not(None), ReviewRequest.advice.is_not(None))
    )


def _cancel_abandoned(before: datetime, now: datetime) -> int:
    return db.session.execute(
        update(Consultation)
        .where(Consultation.status == STATUS_COLLECTING, Consultation.updated_at < before)
        .values(status=STATUS_CANCELLED, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
