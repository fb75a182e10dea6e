"""``/api/v1/audit``: who read or changed what (admins)."""

from __future__ import annotations

from app.api.common import Blueprint, requires
from app.schemas.audit import AuditPageSchema, AuditQuerySchema
from app.schemas.common import page_body
from app.security import current_actor
from app.services import audit

blp = Blueprint("audit", __name__, url_prefix="/api/v1/audit", description="The audit log (admin).")


@blp.get("")
@requires(blp, "admin")
@blp.arguments(AuditQuerySchema, location="query")
@blp.response(200, AuditPageSchema)
def audit_log(query):
    """The audit log.

    Newest first; filters actor_id, action, entity_type, entity_id, from, to (UTC; a date is a whole day).
    """
    return page_body(audit.search(current_actor(), **query))
