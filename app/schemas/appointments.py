"""Appointments: the JSON fields of the REST API (the CSV columns), lists, bulk changes and the import report."""

from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

import marshmallow as ma
from marshmallow import validate

from app.models.appointment import CANCELLED_BY, PATIENT_CHANNELS, STATUSES, TRACING_OUTCOMES
from app.schemas import examples as ex
from app.schemas.common import PaginationQuery, language_field, page_of

BULK_LIMIT = 1000  # items in one POST /bulk
YEARS = (2000, 2200)  # appointment times outside these years are typing mistakes (and overflow time zone maths)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def storable(value: str) -> None:
    """Text the databases can store: no NUL character (PostgreSQL refuses it) and no lone UTF-16 surrogate (JSON
    allows ``"\\ud800"``, UTF-8 cannot encode it). Refused here, as a 422, rather than failing in the database."""
    if "\x00" in value:
        raise ma.ValidationError("Must not contain NUL characters.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ma.ValidationError("Must be valid Unicode text (it holds a lone surrogate).") from None


def text_field(max_length: int, *, min_length: int = 1, **kwargs) -> ma.fields.String:
    """A trimmed string of ``min_length`` to ``max_length`` characters (after trimming) the databases can store."""
    return _Trimmed(validate=[validate.Length(min=min_length, max=max_length), storable], **kwargs)


class _Trimmed(ma.fields.String):
    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).strip()


def _in_years(moment: datetime) -> None:
    if not YEARS[0] <= moment.year <= YEARS[1]:
        raise ma.ValidationError(f"The year must be between {YEARS[0]} and {YEARS[1]}.")


def appointment_time(**kwargs) -> ma.fields.DateTime:
    """ISO 8601 with an offset, or without one (then read in the clinic's time); ``YYYY-MM-DD HH:MM`` works too."""
    kwargs.setdefault("metadata", {}).update(
        description="ISO 8601; with an offset (e.g. 2026-03-04T09:00:00+02:00), or without one for clinic time",
        example="2026-03-04T09:00:00+02:00",
    )
    return ma.fields.DateTime(validate=_in_years, **kwargs)


class DayOrMoment(ma.fields.Field):
    """A query bound: a date (``YYYY-MM-DD``, a whole day in clinic time) or an ISO 8601 date-time."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("metadata", {}).setdefault("type", "string")
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs) -> date | datetime:
        invalid = ma.ValidationError("Not a date (YYYY-MM-DD) or an ISO 8601 date-time.")
        if not isinstance(value, str):
            raise invalid
        text = value.strip()
        if _DATE.match(text):
            try:
                day = date.fromisoformat(text)
            except ValueError:
                raise invalid from None
            _in_years(datetime(day.year, 1, 1))
            return day
        try:
            moment = ma.fields.DateTime().deserialize(text)
        except ma.ValidationError:
            raise invalid from None
        _in_years(moment)
        return moment


class LocalDateTime(ma.fields.DateTime):
    """The appointment time in its clinic's time zone, with the offset (read only)."""

    def get_value(self, obj, attr, accessor=None, default=ma.missing):
        return obj.appointment_datetime.astimezone(ZoneInfo(obj.clinic.timezone))


# --- responses ----------------------------------------------------------------------------------------------------


class SeriesSchema(ma.Schema):
    id = ma.fields.UUID(required=True)
    every_days = ma.fields.Integer(required=True)
    count = ma.fields.Integer(allow_none=True, required=True, metadata={"description": "null: open"})
    booked = ma.fields.Integer(required=True, metadata={"description": "visits booked so far"})
    ended_at = ma.fields.AwareDateTime(allow_none=True, required=True,
                                       metadata={"description": "the clinic cancelled the rest"})  # fmt: skip


class AppointmentSchema(ma.Schema):
    class Meta:
        example = ex.APPOINTMENT_ANSWER

    id = ma.fields.UUID(required=True)
    clinic_id = ma.fields.UUID(required=True)
    patient_id = ma.fields.UUID(required=True)
    patient_phone = ma.fields.String(required=True, attribute="patient.phone",
                                     metadata={"description": "E.164 (erased:<patient id> after erasure)"})  # fmt: skip
    patient_name = ma.fields.String(allow_none=True, attribute="record.name", dump_default=None,
                                    metadata={"description": "the appointment's clinic's own name for the patient"})  # fmt: skip
    appointment_datetime = ma.fields.AwareDateTime(required=True, metadata={"description": "UTC"})
    local_datetime = LocalDateTime(required=True, metadata={"description": "clinic time, with its offset"})
    language = ma.fields.String(allow_none=True, metadata={"description": "en, tn, or null: the patient's"})
    status = ma.fields.String(required=True, validate=validate.OneOf(STATUSES))
    reminders_sent = ma.fields.Integer(required=True)
    attended = ma.fields.Boolean(allow_none=True, metadata={"description": "null until known"})
    confirmed_at = ma.fields.AwareDateTime(allow_none=True)
    cancelled_by = ma.fields.String(allow_none=True, validate=validate.OneOf(CANCELLED_BY))
    external_ref = ma.fields.String(allow_none=True)
    channel = ma.fields.String(required=True)
    next_reminder_at = ma.fields.AwareDateTime(allow_none=True)
    series = ma.fields.Nested(SeriesSchema, allow_none=True, dump_default=None,
                              metadata={"description": "the series this recurring visit belongs to"})  # fmt: skip
    series_number = ma.fields.Integer(allow_none=True, metadata={"description": "its number in the series, from 1"})
    rebooked_from_id = ma.fields.UUID(allow_none=True, metadata={"description": "the missed visit it rebooks"})
    created_at = ma.fields.AwareDateTime(required=True)
    updated_at = ma.fields.AwareDateTime(required=True)


AppointmentPageSchema = page_of(AppointmentSchema, "AppointmentPage")


class BulkErrorSchema(ma.Schema):
    code = ma.fields.String(required=True)
    message = ma.fields.String(required=True)
    details = ma.fields.Dict(required=True)


class BulkResultSchema(ma.Schema):
    index = ma.fields.Integer(required=True, metadata={"description": "the item's position in the request, from 0"})
    status = ma.fields.Integer(required=True, metadata={"description": "what the item alone would have answered"})
    id = ma.fields.UUID(metadata={"description": "the appointment, when the item succeeded"})
    error = ma.fields.Nested(BulkErrorSchema, metadata={"description": "the error, when it failed"})


class BulkResponseSchema(ma.Schema):
    class Meta:
        example = {
            "results": [
                {"index": 0, "status": 201, "id": ex.APPOINTMENT},
                {
                    "index": 1,
                    "status": 422,
                    "error": {
                        "code": "validation_error",
                        "message": "The item has invalid fields; see details.",
                        "details": {"patient_phone": ["This is not a valid phone number."]},
                    },
                },
            ]
        }

    results = ma.fields.List(ma.fields.Nested(BulkResultSchema), required=True)


class ImportErrorSchema(ma.Schema):
    line = ma.fields.Integer(required=True, metadata={"description": "the file's line; the header is line 1"})
    column = ma.fields.String(allow_none=True, metadata={"description": "the header name"})
    message = ma.fields.String(required=True)


class ImportReportSchema(ma.Schema):
    class Meta:
        example = {
            "imported": 118,
            "updated": 3,
            "unchanged": 0,
            "error_count": 1,
            "errors": [
                {
                    "line": 7,
                    "column": "appointment_datetime",
                    "message": "No month 13: this clinic writes dates day first (dd/mm/yyyy HH:MM, as 01/12/2026 09:00); write 2026-12-01 09:00 to be sure.",
                }
            ],
        }

    imported = ma.fields.Integer(required=True)
    updated = ma.fields.Integer(required=True)
    unchanged = ma.fields.Integer(required=True)
    errors = ma.fields.List(ma.fields.Nested(ImportErrorSchema), required=True)
    error_count = ma.fields.Integer(required=True, metadata={"description": "all errors (the list may be capped)"})


# --- requests -----------------------------------------------------------------------------------------------------


class RepeatSchema(ma.Schema):
    """A recurring visit: the next one about ``every_days`` after each visit, ``count`` visits in all."""

    every_days = ma.fields.Integer(required=True, validate=validate.Range(1, 366),
                                   metadata={"description": "days between visits (e.g. 28 for ART refills)"})  # fmt: skip
    count = ma.fields.Integer(allow_none=True, load_default=None, validate=validate.Range(2, 52),
                              metadata={"description": "visits in all, this one included; absent or null: open"})  # fmt: skip


class AppointmentCreateSchema(ma.Schema):
    """The CSV columns as JSON fields."""

    class Meta:
        example = {
            "patient_phone": "+26772345678",
            "appointment_datetime": ex.BOOKING_LOCAL,
            "language": "tn",
            "patient_name": "Kagiso Molefe",
            "external_ref": "GMC-2030-00112",
            "channel": "sms",
        }

    patient_phone = ma.fields.String(
        required=True, validate=[validate.Length(min=1, max=32), storable],
        metadata={"description": "E.164, or a national number of the clinic's country", "example": "+26771234567"},
    )  # fmt: skip
    appointment_datetime = appointment_time(required=True)
    language = language_field(allow_none=True, load_default=None)
    patient_name = text_field(200, allow_none=True, load_default=None)
    external_ref = text_field(100, allow_none=True, load_default=None,
                              metadata={"description": "the clinic system's own id"})  # fmt: skip
    clinic_id = ma.fields.UUID(load_default=None, metadata={"description": "admins only (required for them)"})
    channel = ma.fields.String(allow_none=True, load_default=None, validate=validate.OneOf(PATIENT_CHANNELS),
                               metadata={"description": "where this clinic's reminders to the patient go: sms or "
                                                        "whatsapp (the clinic's own record; others keep theirs)"})  # fmt: skip
    repeat = ma.fields.Nested(RepeatSchema, allow_none=True, load_default=None,
                              metadata={"description": "make this the first visit of a series"})  # fmt: skip
    rebooks = ma.fields.UUID(allow_none=True, load_default=None,
                             metadata={"description": "the missed visit of this clinic that this one rebooks"})  # fmt: skip


class AppointmentUpdateSchema(ma.Schema):
    """Every field optional; only those sent change. A new time re-plans the reminders and tells the patient."""

    class Meta:
        example = {"appointment_datetime": ex.MOVED_LOCAL, "language": "tn"}

    appointment_datetime = appointment_time()
    language = language_field(allow_none=True)
    patient_name = text_field(200, allow_none=True)
    external_ref = text_field(100, allow_none=True)


class AttendanceSchema(ma.Schema):
    class Meta:
        example = {"attended": False}  # a missed visit: the one the Postman collection then traces

    attended = ma.fields.Boolean(required=True)


class AppointmentQuerySchema(PaginationQuery):
    since = DayOrMoment(
        data_key="from", metadata={"description": "a date (from its start, clinic time) or a date-time"}
    )
    until = DayOrMoment(data_key="to", metadata={"description": "a date (to its end, clinic time) or a date-time "
                                                                "(exclusive)"})  # fmt: skip
    status = ma.fields.String(validate=validate.OneOf(STATUSES))
    phone = ma.fields.String(validate=[validate.Length(min=1, max=64), storable],
                             metadata={"description": "E.164, or a national number of the clinic's country"})  # fmt: skip
    clinic_id = ma.fields.UUID(metadata={"description": "admins: any clinic; others: only their own"})


class UpcomingQuerySchema(PaginationQuery):
    clinic_id = ma.fields.UUID(metadata={"description": "admins: any clinic; others: only their own"})


class BulkCreateItemSchema(AppointmentCreateSchema):
    action = ma.fields.String(required=True, validate=validate.Equal("create"))


class BulkCancelItemSchema(ma.Schema):
    action = ma.fields.String(required=True, validate=validate.Equal("cancel"))
    id = ma.fields.UUID(required=True)


class BulkRescheduleItemSchema(ma.Schema):
    action = ma.fields.String(required=True, validate=validate.Equal("reschedule"))
    id = ma.fields.UUID(required=True)
    appointment_datetime = appointment_time(required=True)


BULK_ITEM_SCHEMAS = {
    "create": BulkCreateItemSchema,
    "cancel": BulkCancelItemSchema,
    "reschedule": BulkRescheduleItemSchema,
}


class BulkRequestSchema(ma.Schema):
    class Meta:
        example = {
            "items": [
                {
                    "action": "create",
                    "patient_phone": "+26773456789",
                    "appointment_datetime": ex.BOOKING_LOCAL,
                    "language": "tn",
                    "patient_name": "Onalenna Seretse",
                    "external_ref": "GMC-2030-00113",
                },
                {"action": "reschedule", "id": ex.APPOINTMENT, "appointment_datetime": ex.MOVED_LOCAL},
            ]
        }

    items = ma.fields.List(
        ma.fields.Dict(),
        required=True,
        validate=validate.Length(min=1, max=BULK_LIMIT),
        metadata={
            "description": f"1 to {BULK_LIMIT} items, each checked on its own: "
            '{"action": "create", <the fields of POST /appointments>}, {"action": "cancel", "id"}, or '
            '{"action": "reschedule", "id", "appointment_datetime"}'
        },
    )


class UploadFileSchema(ma.Schema):
    class Meta:
        example = {
            "file": "patient_phone,appointment_datetime,language,patient_name,external_ref\n"
            "+26772345678,06/03/2030 10:30,tn,Kagiso Molefe,GMC-2030-00112\n"
            "+233241234567,2030-03-06 11:00,en,Ama Mensah,GMC-2030-00114\n"
        }

    file = ma.fields.Raw(required=True, metadata={"type": "string", "format": "binary",
                                                  "description": "the CSV file (UTF-8, , or ; separated)"})  # fmt: skip


class UploadQuerySchema(ma.Schema):
    atomic = ma.fields.Boolean(load_default=False, metadata={"description": "import nothing if any row is invalid"})
    clinic_id = ma.fields.UUID(metadata={"description": "admins: the clinic of rows without a clinic_id column value"})


# --- tracing patients who missed a visit ----------------------------------------------------------------------------


class CancelQuerySchema(ma.Schema):
    series = ma.fields.String(load_default="one", validate=validate.OneOf(("one", "rest")),
                              metadata={"description": "a visit of a series: one (the next is booked) or rest"})  # fmt: skip


class TracingQuerySchema(PaginationQuery):
    clinic_id = ma.fields.UUID(metadata={"description": "admins: one clinic (else all); others: only their own"})
    overdue = ma.fields.Boolean(metadata={"description": "only those missed more than 14 days ago (true) or not"})


class TracingOutcomeSchema(ma.Schema):
    class Meta:
        example = {"outcome": "unreachable", "note": ex.TRACING_NOTE_TN}

    outcome = ma.fields.String(required=True, validate=validate.OneOf(TRACING_OUTCOMES))
    note = text_field(500, allow_none=True, load_default=None,
                      metadata={"description": "what was said or tried (health data: erased with the patient)"})  # fmt: skip


class TracingEntrySchema(ma.Schema):
    class Meta:
        example = ex.TRACING_ENTRY

    appointment = ma.fields.Nested(AppointmentSchema, required=True)
    days_since = ma.fields.Integer(required=True, metadata={"description": "clinic-local days since the visit"})
    overdue = ma.fields.Boolean(required=True, metadata={"description": "missed more than 14 days ago"})
    contact_attempts = ma.fields.Integer(required=True,
                                         metadata={"description": "the recovery SMS and each outcome recorded"})  # fmt: skip
    last_outcome = ma.fields.String(allow_none=True, required=True)
    last_outcome_at = ma.fields.AwareDateTime(allow_none=True, required=True)
    last_note = ma.fields.String(allow_none=True, required=True)


TracingPageSchema = page_of(TracingEntrySchema, "TracingPage")
