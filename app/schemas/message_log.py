"""SMS requests and the message log."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from app.models.message_log import CHANNELS, DIRECTIONS, STATUSES
from app.schemas import examples as ex
from app.schemas.common import PaginationQuery, page_of


class SmsSendSchema(ma.Schema):
    class Meta:
        example = {
            "to": ex.BW_PATIENT_PHONE,
            "message": "Dumela Mpho, kliniki e tla tswalwa ka Labotlhano 11/12. Tla ka Labone.",
        }

    to = ma.fields.String(required=True, validate=validate.Length(min=1, max=32),
                          metadata={"description": "E.164, or a national number of the clinic's country"})  # fmt: skip
    message = ma.fields.String(required=True, validate=validate.Length(min=1, max=1600))
    clinic_id = ma.fields.UUID(load_default=None, metadata={"description": "admins only; staff send for their own"})


class SmsScheduleSchema(SmsSendSchema):
    class Meta:
        example = {
            "to": ex.GH_PATIENT_PHONE,
            "message": "Hello Ama, Accra Central Clinic is closed on Friday 11/12.",
            "send_at": "2030-03-05T07:30:00+00:00",
        }

    send_at = ma.fields.AwareDateTime(required=True, metadata={"description": "timezone-aware, in the future"})


class MessageSchema(ma.Schema):
    class Meta:
        example = ex.MESSAGE_ANSWER

    id = ma.fields.UUID()
    direction = ma.fields.String(metadata={"description": "in or out"})
    channel = ma.fields.String()
    provider = ma.fields.String(allow_none=True)
    provider_id = ma.fields.String(allow_none=True)
    address = ma.fields.String(metadata={"description": "E.164 number or chat id"})
    text = ma.fields.String(allow_none=True)
    status = ma.fields.String()
    kind = ma.fields.String(allow_none=True)
    encoding = ma.fields.String(allow_none=True)
    segments = ma.fields.Integer(allow_none=True)
    error_code = ma.fields.String(allow_none=True)
    last_error = ma.fields.String(allow_none=True)
    clinic_id = ma.fields.UUID(allow_none=True)
    send_at = ma.fields.AwareDateTime(allow_none=True)
    sent_at = ma.fields.AwareDateTime(allow_none=True)
    received_at = ma.fields.AwareDateTime(allow_none=True)
    created_at = ma.fields.AwareDateTime()
    updated_at = ma.fields.AwareDateTime()


class MessageEventSchema(ma.Schema):
    kind = ma.fields.String()
    provider = ma.fields.String(allow_none=True)
    status = ma.fields.String(allow_none=True)
    raw_status = ma.fields.String(allow_none=True)
    error_code = ma.fields.String(allow_none=True)
    detail = ma.fields.String(allow_none=True)
    at = ma.fields.AwareDateTime()


class MessageDetailSchema(MessageSchema):
    class Meta:
        example = ex.MESSAGE_DETAIL

    events = ma.fields.List(ma.fields.Nested(MessageEventSchema))


class MessageQuerySchema(PaginationQuery):
    phone = ma.fields.String(validate=validate.Length(max=64), metadata={"description": "the exact stored address"})
    direction = ma.fields.String(validate=validate.OneOf(DIRECTIONS))
    channel = ma.fields.String(validate=validate.OneOf(CHANNELS))
    status = ma.fields.String(validate=validate.OneOf(STATUSES))
    since = ma.fields.AwareDateTime(data_key="from")
    until = ma.fields.AwareDateTime(data_key="to")
    clinic_id = ma.fields.UUID()


MessagePageSchema = page_of(MessageSchema, "MessagePage")
