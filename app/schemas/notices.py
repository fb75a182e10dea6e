"""Clinic notices: the request (audience, both texts, dry run) and the notice with its cost and delivery counts."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from app.schemas import examples as ex
from app.schemas.appointments import YEARS, text_field


def _in_years(day) -> None:
    if not YEARS[0] <= day.year <= YEARS[1]:
        raise ma.ValidationError(f"The year must be between {YEARS[0]} and {YEARS[1]}.")


class AudienceSchema(ma.Schema):
    """Either ``date`` (visits that day), or ``status`` ``scheduled`` with optional ``from`` / ``to``."""

    date = ma.fields.Date(validate=_in_years, metadata={"description": "visits on this day (clinic time)"})
    status = ma.fields.String(validate=validate.OneOf(("scheduled",)),
                              metadata={"description": "scheduled: every visit still coming (any active status)"})  # fmt: skip
    since = ma.fields.Date(data_key="from", validate=_in_years, metadata={"description": "first day, clinic time"})
    until = ma.fields.Date(data_key="to", validate=_in_years, metadata={"description": "last day, included"})

    @ma.validates_schema
    def _one_kind(self, data, **_kwargs) -> None:
        if ("date" in data) == ("status" in data):
            raise ma.ValidationError("Give either date, or status (with optional from and to).", "audience")
        if "date" in data and ("since" in data or "until" in data):
            raise ma.ValidationError("from and to go with status, not with date.", "audience")
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise ma.ValidationError("Must not be before from.", "to")


class NoticeRequestSchema(ma.Schema):
    class Meta:
        example = ex.NOTICE_REQUEST

    clinic_id = ma.fields.UUID(load_default=None, metadata={"description": "admins: required; staff: their own"})
    audience = ma.fields.Nested(AudienceSchema, required=True)
    message_en = text_field(320, required=True, metadata={"description": "English text, at most 2 SMS segments"})
    message_tn = text_field(320, required=True, metadata={"description": "Setswana text, at most 2 SMS segments"})
    dry_run = ma.fields.Boolean(load_default=False, metadata={"description": "count and price; send nothing"})


class NoticeSegmentsSchema(ma.Schema):
    en = ma.fields.Integer(required=True)
    tn = ma.fields.Integer(required=True)


class NoticeSchema(ma.Schema):
    class Meta:
        example = ex.NOTICE_ANSWER

    id = ma.fields.UUID(allow_none=True, required=True, metadata={"description": "null for a dry run"})
    clinic_id = ma.fields.UUID(required=True)
    audience = ma.fields.Dict(required=True)
    dry_run = ma.fields.Boolean(required=True)
    recipients = ma.fields.Integer(required=True, metadata={"description": "patients sent (or to be sent) one each"})
    opted_out = ma.fields.Integer(allow_none=True, required=True, metadata={"description": "left out: opted out"})
    capped = ma.fields.Integer(allow_none=True, required=True,
                               metadata={"description": "left out: over the hourly per-number SMS cap"})  # fmt: skip
    segments = ma.fields.Nested(NoticeSegmentsSchema, required=True, metadata={"description": "per message"})
    segment_total = ma.fields.Integer(required=True, metadata={"description": "every message's segments: the cost"})
    created_at = ma.fields.AwareDateTime(required=True)
    delivery = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer(), required=True,
                              metadata={"description": "messages by status (queued, scheduled, sent, delivered, "
                                                       "failed ...)"})  # fmt: skip
