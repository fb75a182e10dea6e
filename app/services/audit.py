"""The audit trail: every create, update, delete and every read of patient data is written here.

A record is added to the caller's database session, so it commits (or rolls back) with the change it describes.
"""

from __future__ import annotations

import uuid

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
