"""Patients: search, one patient's record, a clinic's record of a patient."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from app.models.channel import PATIENT_CHANNELS
from app.schemas import examples as ex
from app.schemas.appointments import AppointmentSchema, storable, text_field
from app.schemas.common import PaginationQuery, page_of
from app.schemas.message_log import MessageSchema

OWN = "your clinic's record (staff and viewers); always null for admins, who read records"


class PatientRecordSchema(ma.Schema):
    """What one clinic records about the patient; no other clinic sees it."""

    clinic_id = ma.fields.UUID(required=True)
    name = ma.fields.String(allow_none=True)
    preferred_channel = ma.fields.String(required=True, metadata={"description": "where this clinic's texts go: "
                                                                                 "sms or whatsapp"})  # fmt: skip
    notes = ma.fields.String(allow_none=True)
    created_at = ma.fields.AwareDateTime(required=True)
    updated_at = ma.fields.AwareDateTime(required=True)


class PatientSchema(ma.Schema):
    class Meta:
        example = ex.PATIENT_ANSWER

    id = ma.fields.UUID(required=True)
    phone = ma.fields.String(required=True, metadata={"description": "E.164; erased:<id> after erasure"})
    language = ma.fields.String(allow_none=True, metadata={"description": "the person's own choice: en, tn, or "
                                                                          "null: not chosen"})  # fmt: skip
    opted_out_at = ma.fields.AwareDateTime(allow_none=True, metadata={"description": "the person's own choice"})
    erased_at = ma.fields.AwareDateTime(allow_none=True)
    created_at = ma.fields.AwareDateTime(required=True)
    name = ma.fields.String(allow_none=True, metadata={"description": f"the name in {OWN}"})
    preferred_channel = ma.fields.String(allow_none=True, metadata={"description": f"sms or whatsapp, from {OWN}"})
    notes = ma.fields.String(allow_none=True, metadata={"description": f"the notes of {OWN}"})
    records = ma.fields.List(ma.fields.Nested(PatientRecordSchema), required=True,
                             metadata={"description": "what clinics record about the patient: staff and viewers "
                                                      "only their clinic's, admins every clinic's"})  # fmt: skip


class PatientDetailSchema(PatientSchema):
    class Meta:
        example = {**ex.PATIENT_ANSWER, "appointments": [ex.APPOINTMENT_ANSWER], "messages": [ex.MESSAGE_ANSWER]}

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


class PatientRecordUpdateSchema(ma.Schema):
    """Every field optional; only those sent change, and only in the one clinic's record."""

    class Meta:
        example = {"name": "Mpho Kgosi", "preferred_channel": "whatsapp", "notes": "O rata melaetsa ka Setswana."}

    name = text_field(200, allow_none=True)
    preferred_channel = ma.fields.String(validate=validate.OneOf(PATIENT_CHANNELS),
                                         metadata={"description": "where this clinic's texts go: sms or whatsapp"})  # fmt: skip
    notes = text_field(2000, allow_none=True)
    clinic_id = ma.fields.UUID(metadata={"description": "admins only (required for them): whose record"})
