"""``/api/v1/appointments``: book, list, change, cancel, bulk changes, CSV upload and attendance.

Staff act for their own clinic, admins for any (naming it with ``clinic_id``), viewers read their clinic's;
pharmacists have no access. Every read is audited.
"""

from __future__ import annotations

from uuid import UUID

import marshmallow as ma
from flask.views import MethodView

from app.api.common import Blueprint, documents, requires
from app.errors import ValidationFailed
from app.schemas.appointments import (
    BULK_ITEM_SCHEMAS,
    AppointmentCreateSchema,
    AppointmentPageSchema,
    AppointmentQuerySchema,
    AppointmentSchema,
    AppointmentUpdateSchema,
    AttendanceSchema,
    BulkRequestSchema,
    BulkResponseSchema,
    CancelQuerySchema,
    ImportReportSchema,
    TracingEntrySchema,
    TracingOutcomeSchema,
    TracingPageSchema,
    TracingQuerySchema,
    UpcomingQuerySchema,
    UploadFileSchema,
    UploadQuerySchema,
)
from app.schemas.common import page_body
from app.security import current_actor
from app.services import appointment_import, appointments, clinics, tracing

blp = Blueprint("appointments", __name__, url_prefix="/api/v1/appointments",
                description="Clinic appointments (staff: their clinic; admins: all; viewers: read).")  # fmt: skip

READERS = ("admin", "staff", "viewer")
WRITERS = ("admin", "staff")


@blp.route("")
class Appointments(MethodView):
    @requires(blp, *READERS)
    @blp.arguments(AppointmentQuerySchema, location="query")
    @blp.response(200, AppointmentPageSchema)
    def get(self, query):
        """List appointments in time order.

        Filters: ``from``, ``to`` (a date is a whole day in clinic time, ``to`` included; a date-time without
        offset is clinic time, ``to`` excluded), ``status``, ``phone`` (exact; a national number is read in the
        clinic's country) and ``clinic_id`` (admins; others only their own).
        """
        return page_body(appointments.list_appointments(current_actor(), **query))

    @requires(blp, *WRITERS)
    @blp.arguments(AppointmentCreateSchema)
    @blp.response(201, AppointmentSchema)
    @documents(blp, 409)
    def post(self, data):
        """Book an appointment.

        The CSV columns as JSON fields; a time without offset is clinic time; a national number is read in the
        clinic's country; admins name the clinic (``clinic_id``). Nothing is sent unless the clinic turned on
        booking confirmations. 409: the clinic already has it (same external_ref, or same number and time).
        """
        return appointments.book(current_actor(), data)


@blp.get("/upcoming")
@requires(blp, *READERS)
@blp.arguments(UpcomingQuerySchema, location="query")
@blp.response(200, AppointmentPageSchema)
def upcoming(query):
    """Upcoming appointments.

    Active appointments from now to the end of the 7th day (today included) in clinic time, soonest first.
    """
    return page_body(appointments.upcoming(current_actor(), **query))


@blp.post("/bulk")
@requires(blp, *WRITERS)
@blp.arguments(BulkRequestSchema)
@blp.response(200, BulkResponseSchema)
def bulk(data):
    """Create, cancel and reschedule many appointments.

    Up to 1,000 items; each succeeds or fails on its own (a SAVEPOINT each), and its result's ``status`` is what
    the item alone would have got (201, 200, 403, 404, 409, 422). More than 1,000 items: 422 for the request.
    """
    return {"results": appointments.bulk(current_actor(), [_bulk_item(item) for item in data["items"]])}


def _bulk_item(item: dict) -> dict | ValidationFailed:
    schema = BULK_ITEM_SCHEMAS.get(item.get("action")) if isinstance(item.get("action"), str) else None
    if schema is None:
        return ValidationFailed("Unknown action: use create, cancel or reschedule.",
                                {"item": {"action": [f"Must be one of: {', '.join(BULK_ITEM_SCHEMAS)}."]}})  # fmt: skip
    try:
        return schema().load(item)
    except ma.ValidationError as exc:
        return ValidationFailed("The item has invalid or unknown fields; see details.", {"item": exc.messages})


@blp.post("/upload")
@requires(blp, *WRITERS)
@blp.arguments(UploadQuerySchema, location="query")
@blp.arguments(UploadFileSchema, location="files")
@blp.response(200, ImportReportSchema)
def upload(query, files):
    """Import appointments from a CSV file.

    Multipart field ``file``; columns patient_phone, appointment_datetime, language, optional patient_name,
    external_ref, clinic_id (admins). Valid rows are imported and invalid ones reported (200, also with row
    errors); with ``atomic=true`` one invalid row imports nothing and the answer is 422 with the report in
    ``error.details.report``. Uploading the same file again creates no duplicates. A missing or empty file: 422
    naming ``file``.
    """
    actor = current_actor()
    clinics.clinic_for(actor, query.get("clinic_id"), location="query")
    # The file goes to the import unread: it reads the bytes itself and frees them once parsed (~6 MB for a
    # 100,000-row file that a local here would hold to the end of the request).
    stream = files["file"].stream
    if not stream.read(1):
        raise ValidationFailed("The file is empty.", {"files": {"file": ["The file is empty."]}})
    stream.seek(0)
    report = appointment_import.import_csv(actor, stream, clinic_id=query.get("clinic_id"), atomic=query["atomic"])
    if query["atomic"] and report["error_count"]:
        raise ValidationFailed(f"Nothing was imported: {report['error_count']} error(s); see details.report.",
                               {"report": report})  # fmt: skip
    return report


@blp.route("/<uuid:appointment_id>")
class AppointmentById(MethodView):
    @requires(blp, *READERS)
    @blp.response(200, AppointmentSchema)
    @documents(blp, 404)
    def get(self, appointment_id: UUID):
        """One appointment (staff and viewers: only their clinic's)."""
        return appointments.read(current_actor(), appointment_id)

    @requires(blp, *WRITERS)
    @blp.arguments(AppointmentUpdateSchema)
    @blp.response(200, AppointmentSchema)
    @documents(blp, 404, 409)
    def put(self, data, appointment_id: UUID):
        """Change an appointment.

        The time, language, patient name or external_ref; only the fields sent. A new time re-plans the reminders
        and tells the patient. 409: the appointment is over (cancelled, attended, missed), or the external_ref is
        another appointment's.
        """
        return appointments.edit(current_actor(), appointment_id, data)

    @requires(blp, *WRITERS)
    @blp.arguments(CancelQuerySchema, location="query")
    @blp.response(200, AppointmentSchema)
    @documents(blp, 404, 409)
    def delete(self, query, appointment_id: UUID):
        """Cancel an appointment.

        Status cancelled, no more reminders, the patient told in their language. Answers the cancelled
        appointment (200); 409 when it is no longer active (a second cancel included). A visit of a series:
        ``?series=one`` (default) skips it and books the next; ``?series=rest`` ends the series.
        """
        return appointments.withdraw(current_actor(), appointment_id, series_rest=query["series"] == "rest")


@blp.get("/tracing")
@requires(blp, *READERS)
@blp.arguments(TracingQuerySchema, location="query")
@blp.response(200, TracingPageSchema)
def tracing_list(query):
    """Patients to trace.

    Missed visits not rebooked (and with no later visit at the clinic, and no closing outcome recorded), oldest
    first, with days since, contact attempts (the recovery SMS and each outcome) and the last outcome; ``overdue``
    after 14 days. Staff and viewers: their clinic; admins: the one they name, or all.
    """
    return tracing.tracing_list(current_actor(), **query)


@blp.post("/<uuid:appointment_id>/tracing")
@requires(blp, *WRITERS)
@blp.arguments(TracingOutcomeSchema)
@blp.response(201, TracingEntrySchema)
@documents(blp, 404, 409)
def tracing_outcome(data, appointment_id: UUID):
    """Record a tracing outcome.

    ``reached_rebooked``, ``reached_declined``, ``transferred_out`` and ``died`` take the visit off the list;
    ``unreachable`` counts one more attempt. Audited. 409: the visit is not missed.
    """
    return tracing.record(current_actor(), appointment_id, data["outcome"], data["note"])


@blp.put("/<uuid:appointment_id>/attendance")
@requires(blp, *WRITERS)
@blp.arguments(AttendanceSchema)
@blp.response(200, AppointmentSchema)
@documents(blp, 404, 409)
def attendance(data, appointment_id: UUID):
    """Record whether the patient came.

    Status attended or missed; missed owes the patient one recovery SMS (none more when it was missed already).
    409, and nothing is recorded: the appointment was cancelled; ``attended`` before the visit's day in clinic time
    (a patient may come early that day); ``missed`` before the visit's time has passed. The message gives the
    visit's date and from when it can be marked.
    """
    return appointments.record_attendance(current_actor(), appointment_id, data["attended"])
