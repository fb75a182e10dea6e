"""The audit log."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from app.schemas import examples as ex
from app.schemas.appointments import DayOrMoment, storable
from app.schemas.common import PaginationQuery, page_of


class AuditEntrySchema(ma.Schema):
    class Meta:
        example = ex.AUDIT_ANSWER

    id = ma.fields.UUID(required=True)
    actor_id = ma.fields.UUID(required=True, allow_none=True, metadata={"description": "null: the system"})
    action = ma.fields.String(required=True, metadata={"example": "patient.read"})
    entity_type = ma.fields.String(required=True)
    entity_id = ma.fields.String(required=True, allow_none=True)
    at = ma.fields.AwareDateTime(required=True)
    remote_addr = ma.fields.String(required=True, allow_none=True)
    details = ma.fields.Dict(required=True)


AuditPageSchema = page_of(AuditEntrySchema, "AuditPage")


def _exact(max_length: int) -> ma.fields.String:
    return ma.fields.String(validate=[validate.Length(min=1, max=max_length), storable])


class AuditQuerySchema(PaginationQuery):
    actor_id = ma.fields.UUID()
    action = _exact(64)
    entity_type = _exact(64)
    entity_id = _exact(64)
    since = DayOrMoment(data_key="from", metadata={"description": "a date (UTC day) or a date-time"})
    until = DayOrMoment(data_key="to", metadata={"description": "a date (included) or a date-time (exclusive)"})
