"""``/api/v1/notices``: a clinic's notice to a group of its patients, and its delivery counts.

Staff for their clinic, admins for any; viewers read their clinic's; pharmacists have no access. Audited.
"""

from __future__ import annotations

from uuid import UUID

from app.api.common import Blueprint, documents, requires
from app.schemas.notices import NoticeRequestSchema, NoticeSchema
from app.security import current_actor
from app.services import notices

blp = Blueprint("notices", __name__, url_prefix="/api/v1/notices",
                description="Clinic notices to their patients (staff: their clinic; admins: any).")  # fmt: skip


@blp.post("")
@requires(blp, "admin", "staff")
@blp.arguments(NoticeRequestSchema)
@blp.response(201, NoticeSchema)
def send(data):
    """Send (or, with ``dry_run``, price) a notice.

    One message per patient of the audience (visits on ``date``, or ``status: scheduled`` between ``from`` and
    ``to``), in their language, through the outbox: never to opted-out numbers, inside the clinic's sending hours,
    within the per-number SMS cap. The answer counts recipients and segments (the cost); a text over 2 SMS
    segments is 422. A dry run writes nothing and answers the same counts with ``id`` null.
    """
    return notices.send(current_actor(), data)


@blp.get("/<uuid:notice_id>")
@requires(blp, "admin", "staff", "viewer")
@blp.response(200, NoticeSchema)
@documents(blp, 404)
def read(notice_id: UUID):
    """One notice with its delivery counts (messages by status)."""
    return notices.read(current_actor(), notice_id)
