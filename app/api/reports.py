"""``/api/v1/reports``: what became of the appointments."""

from __future__ import annotations

from app.api.common import Blueprint, requires
from app.schemas.reports import AttendanceQuerySchema, AttendanceReportSchema
from app.security import current_actor
from app.services import reports

blp = Blueprint("reports", __name__, url_prefix="/api/v1/reports",
                description="Reports (staff and viewers: their clinic; admins: any or all).")  # fmt: skip


@blp.get("/attendance")
@requires(blp, "admin", "staff", "viewer")
@blp.arguments(AttendanceQuerySchema, location="query")
@blp.response(200, AttendanceReportSchema)
def attendance(query):
    """Attendance report.

    Appointments, reminded, confirmed, attended, missed, cancelled and the no-show rate, overall and by language,
    channel and reminders sent. ``from`` / ``to`` are days in clinic time, both included.
    """
    return reports.attendance(current_actor(), **query)
