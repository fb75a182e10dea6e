"""Patients: search, one patient's record."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from app.schemas.appointments import AppointmentSchema, storable
from app.schemas.common import PaginationQuery, page_of
from app.schemas.message_log import MessageSchema


class PatientSchema(ma.Schema):
    id = ma.fields.UUID(required=True)
    phone = ma.fields.String(required=True, metadata={"description": "E.164; erased:<id> after erasure"})
    name = ma.fields.String(allow_none=True)
    language = ma.fields.String(allow_none=True, metadata={"description": "en, tn, or null: not chosen"})
    preferred_channel = ma.fields.String(required=True, metadata={"description": "sms or whatsapp"})
    opted_out_at = ma.fields.AwareDateTime(allow_none=True)
    erased_at = ma.fields.AwareDateTime(allow_none=True)
    created_at = ma.fields.AwareDateTime(required=True)


class PatientDetailSchema(PatientSchema):
    appointments = ma.fields.List(ma.fields.Nested(AppointmentSchema), required=True,
                                  metadata={"description": "newest first; staff and viewers: their clinic's"})  # fmt: skip
    messages = ma.fields.List(ma.fields.Nested(MessageSchema), required=True,
                              metadata={"description": "the newest 200: about their appointments, or to or from "
                                                       "their number; staff and viewers: their clinic's"})  # fmt: skip


PatientPageSchema = page_of(PatientSchema, "PatientPage")


class PatientQuerySchema(PaginationQuery):
    phone = ma.fields.String(validate=[validate.Length(min=1, max=64), storable],
                             metadata={"description": "exact: E.164, or a national number of your clinic's "
                                                      "country"})  # fmt: skip
