"""Stock: items, movements, alerts and the USSD PIN, as the REST API reads and writes them."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from app.models.stock import MOVEMENT_CHANNELS, MOVEMENT_KINDS
from app.schemas import examples as ex
from app.schemas.appointments import text_field
from app.schemas.common import PaginationQuery, page_of
from app.services.stock import MAX_QUANTITY

NOTE_IN_ALERT = 60  # a manual alert's note, so the SMS stays one segment
_quantity = validate.Range(min=0, max=MAX_QUANTITY)


class StockItemSchema(ma.Schema):
    class Meta:
        example = ex.STOCK_ANSWER

    id = ma.fields.UUID(required=True)
    clinic_id = ma.fields.UUID(required=True)
    name = ma.fields.String(required=True)
    code = ma.fields.String(allow_none=True)
    unit = ma.fields.String(required=True)
    level = ma.fields.Integer(required=True)
    reorder_level = ma.fields.Integer(required=True)
    low = ma.fields.Method("_low", required=True, metadata={"description": "level at or below the reorder level"})
    days_of_stock_left = ma.fields.Float(
        allow_none=True,
        metadata={"description": "level / average daily dispensing of the last 30 days; null: nothing dispensed"},
    )
    low_alert_at = ma.fields.AwareDateTime(allow_none=True, metadata={"description": "when the low-stock alert went"})
    created_at = ma.fields.AwareDateTime(required=True)
    updated_at = ma.fields.AwareDateTime(required=True)

    def _low(self, item) -> bool:
        return item.level <= item.reorder_level


StockItemPageSchema = page_of(StockItemSchema, "StockItemPage")


class StockCreateSchema(ma.Schema):
    class Meta:
        example = {
            "name": "Zinc 20mg dispersible tablets",
            "unit": "tablets",
            "reorder_level": 100,
            "code": "ZNC20",
            "level": 400,
        }

    name = text_field(60, required=True, metadata={"description": "e.g. Paracetamol 500mg tablets"})
    unit = text_field(12, required=True, metadata={"description": "what is counted: tablets, boxes, kits"})
    reorder_level = ma.fields.Integer(required=True, strict=True, validate=_quantity)
    code = text_field(50, allow_none=True)
    level = ma.fields.Integer(strict=True, validate=_quantity, metadata={"description": "recorded as a count"})
    clinic_id = ma.fields.UUID(metadata={"description": "admins only; staff always act for their clinic"})


class StockUpdateSchema(ma.Schema):
    class Meta:
        example = {"level": 36, "note": "Palo ya Labotlhano"}

    level = ma.fields.Integer(strict=True, validate=_quantity, metadata={"description": "a counted level"})
    reorder_level = ma.fields.Integer(strict=True, validate=_quantity)
    name = text_field(60)
    unit = text_field(12)
    code = text_field(50, allow_none=True)
    note = text_field(500, allow_none=True, metadata={"description": "kept with the count"})

    @ma.validates_schema
    def _something(self, data: dict, **_kwargs) -> None:
        if not data.keys() - {"note"}:
            raise ma.ValidationError("Send a counted level, a reorder level or a detail to change.", "level")


class StockQuerySchema(PaginationQuery):
    clinic_id = ma.fields.UUID()
    q = text_field(60, metadata={"description": "part of the name, any case"})
    code = text_field(50)
    low = ma.fields.Boolean(metadata={"description": "only items at or below (true) / above (false) reorder level"})


class LowQuerySchema(PaginationQuery):
    clinic_id = ma.fields.UUID()


class MovementSchema(ma.Schema):
    class Meta:
        example = ex.MOVEMENT_ANSWER

    id = ma.fields.UUID(required=True)
    item_id = ma.fields.UUID(required=True)
    kind = ma.fields.String(required=True, validate=validate.OneOf(MOVEMENT_KINDS))
    quantity = ma.fields.Integer(required=True, metadata={"description": "as entered (a count: the counted level)"})
    delta = ma.fields.Integer(required=True, metadata={"description": "the signed change to the level"})
    level_after = ma.fields.Integer(required=True)
    batch = ma.fields.String(allow_none=True)
    expiry_date = ma.fields.Date(allow_none=True)
    user_id = ma.fields.UUID(allow_none=True)
    user_name = ma.fields.String(allow_none=True)
    channel = ma.fields.String(required=True, validate=validate.OneOf(MOVEMENT_CHANNELS))
    at = ma.fields.AwareDateTime(required=True)
    note = ma.fields.String(allow_none=True)


MovementPageSchema = page_of(MovementSchema, "StockMovementPage")


class MovementQuerySchema(PaginationQuery):
    kind = ma.fields.String(validate=validate.OneOf(MOVEMENT_KINDS))


class MovementCreateSchema(ma.Schema):
    class Meta:
        example = {
            "kind": "received",
            "quantity": 100,
            "batch": "MRDT-2611-B",
            "expiry_date": "2028-06-30",
            "note": "Go tswa kwa CMS Gaborone",
        }

    kind = ma.fields.String(required=True, validate=validate.OneOf(MOVEMENT_KINDS))
    quantity = ma.fields.Integer(
        required=True, strict=True, validate=validate.Range(min=-MAX_QUANTITY, max=MAX_QUANTITY),
        metadata={"description": "units (received, dispensed, expired: 1 or more); counted: the level counted; "
                                 "adjusted: the signed change"},
    )  # fmt: skip
    batch = text_field(50, allow_none=True)
    expiry_date = ma.fields.Date(allow_none=True, metadata={"description": "received stock's expiry date"})
    note = text_field(500, allow_none=True)

    @ma.validates_schema
    def _fits_kind(self, data: dict, **_kwargs) -> None:
        kind, quantity = data.get("kind"), data.get("quantity")
        if kind is None or quantity is None:
            return
        if kind in ("received", "dispensed", "expired") and quantity < 1:
            raise ma.ValidationError("Must be at least 1.", "quantity")
        if kind == "counted" and quantity < 0:
            raise ma.ValidationError("A count cannot be negative.", "quantity")
        if kind == "adjusted" and quantity == 0:
            raise ma.ValidationError("An adjustment must change the level.", "quantity")
        if kind == "adjusted" and not data.get("note"):
            raise ma.ValidationError("Say why the level is adjusted.", "note")
        if data.get("expiry_date") is not None and kind != "received":
            raise ma.ValidationError("Only received stock has an expiry date here.", "expiry_date")
        if data.get("batch") is not None and kind not in ("received", "expired"):
            raise ma.ValidationError("Only received or expired stock has a batch here.", "batch")


class AlertCreateSchema(ma.Schema):
    class Meta:
        example = {"item_id": ex.STOCK_ITEM, "note": "Re setse le dikhiti di le 40 fela."}

    item_id = ma.fields.UUID(required=True)
    note = text_field(NOTE_IN_ALERT, required=True, metadata={"description": "the message, in one SMS with the item"})


class AlertResultSchema(ma.Schema):
    class Meta:
        example = {"item_id": ex.STOCK_ITEM, "recipients": 1, "message_ids": [ex.MESSAGE]}

    item_id = ma.fields.UUID(required=True)
    recipients = ma.fields.Integer(required=True, metadata={"description": "SMS queued"})
    message_ids = ma.fields.List(ma.fields.UUID(), required=True)


class PinSchema(ma.Schema):
    class Meta:
        example = {"pin": "2580"}

    pin = ma.fields.String(required=True, validate=validate.Length(min=1, max=16),
                           metadata={"description": "4 digits; not one digit repeated or a run like 1234",
                                     "example": "2580"})  # fmt: skip
