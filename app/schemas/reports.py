"""Reports."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from app.schemas import examples as ex
from app.schemas.appointments import YEARS


def _in_years(day) -> None:
    if not YEARS[0] <= day.year <= YEARS[1]:
        raise ma.ValidationError(f"The year must be between {YEARS[0]} and {YEARS[1]}.")


class AttendanceQuerySchema(ma.Schema):
    clinic_id = ma.fields.UUID(metadata={"description": "admins: one clinic (else all); others: only their own"})
    since = ma.fields.Date(data_key="from", validate=_in_years,
                           metadata={"description": "first day, clinic time (YYYY-MM-DD)"})  # fmt: skip
    until = ma.fields.Date(data_key="to", validate=_in_years,
                           metadata={"description": "last day, included, clinic time (YYYY-MM-DD)"})  # fmt: skip

    @ma.validates_schema
    def _ordered(self, data, **_kwargs) -> None:
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise ma.ValidationError("Must not be before from.", "to")


class AttendanceCountsSchema(ma.Schema):
    appointments = ma.fields.Integer(required=True)
    reminded = ma.fields.Integer(required=True, metadata={"description": "sent at least one reminder"})
    confirmed = ma.fields.Integer(required=True, metadata={"description": "the patient confirmed"})
    attended = ma.fields.Integer(required=True)
    missed = ma.fields.Integer(required=True)
    cancelled = ma.fields.Integer(required=True)
    no_show_rate = ma.fields.Float(required=True, allow_none=True, validate=validate.Range(0, 1),
                                   metadata={"description": "missed / (attended + missed); null when both 0"})  # fmt: skip
    recovered = ma.fields.Integer(required=True, metadata={"description": "missed, then rebooked within 14 days"})
    recovery_rate = ma.fields.Float(required=True, allow_none=True, validate=validate.Range(0, 1),
                                    metadata={"description": "recovered / missed; null when none missed"})  # fmt: skip


def _breakdown(description: str) -> ma.fields.Dict:
    return ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Nested(AttendanceCountsSchema), required=True,
                          metadata={"description": description})  # fmt: skip


class AttendanceReportSchema(ma.Schema):
    class Meta:
        example = ex.ATTENDANCE_REPORT

    clinic_id = ma.fields.UUID(required=True, allow_none=True, metadata={"description": "null: every clinic"})
    since = ma.fields.Date(data_key="from", attribute="from", required=True, allow_none=True)
    until = ma.fields.Date(data_key="to", attribute="to", required=True, allow_none=True)
    overall = ma.fields.Nested(AttendanceCountsSchema, required=True)
    by_language = _breakdown("en, tn: the appointment's language, else the patient's, else the clinic's")
    by_channel = _breakdown("sms, whatsapp")
    by_reminders = _breakdown("reminders sent: 0, 1, 2, 3+")
    tracing = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer(), required=True,
                             metadata={"description": "tracing outcomes recorded for the period's visits, by outcome"})  # fmt: skip
