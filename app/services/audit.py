"""The audit trail: every create, update, delete and every read of patient data is written here.

A record is added to the caller's database session, so it commits (or rolls back) with the change it describes.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog


def record(actor, action: str, entity_type: str, entity_id: uuid.UUID | str | None, details: dict | None = None):
    """Add an audit row to the current transaction.

    Args:
        actor: the :class:`app.security.Actor` (or ``None`` for the system, e.g. a job).
        action: dotted verb such as ``user.create`` or ``patient.read``.
        entity_type: the kind of thing touched (``user``, ``clinic`` ...).
        entity_id: its id.
        details: extra facts; never secrets, message bodies or phone numbers.
    """
    row = AuditLog(
        actor_id=getattr(actor, "user_id", None),
        action=action,
        entity_type=entity_type,
        entity_id=str(entity_id) if entity_id is not None else None,
        remote_addr=getattr(actor, "remote_addr", None),
        details=details or {},
    )
    db.session.add(row)
    return row


def search(actor, *, page: int, per_page: int, actor_id: uuid.UUID | None = None, action: str | None = None,
           entity_type: str | None = None, entity_id: str | None = None, since: date | datetime | None = None,
           until: date | datetime | None = None):  # fmt: skip
    """A page of the audit log, newest first, filtered (admins; the API checks the role).

    Args:
        actor: who asks (unused: reading the log is not itself logged, or every read would add a row to read).
        since, until: ``at`` from ``since`` (inclusive) to ``until`` (exclusive); a date is a whole UTC day (``until``
            included), a date-time without offset is UTC.
    """
    stmt = select(AuditLog).order_by(AuditLog.at.desc(), AuditLog.id)
    for column, value in ((AuditLog.actor_id, actor_id), (AuditLog.action, action),
                          (AuditLog.entity_type, entity_type), (AuditLog.entity_id, entity_id)):  # fmt: skip
        if value is not None:
            stmt = stmt.where(column == value)
    if since is not None:
        stmt = stmt.where(AuditLog.at >= _utc(since, end=False))
    if until is not None:
        stmt = stmt.where(AuditLog.at < _utc(until, end=True))
    return db.paginate(stmt, page=page, per_page=per_page, error_out=False)


def _utc(value: date | datetime, *, end: bool) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime.combine(value + timedelta(days=1) if end else value, time.min, tzinfo=UTC)
