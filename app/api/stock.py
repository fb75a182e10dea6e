"""``/api/v1/stock``: clinic stock levels, the movement ledger, low stock and alerts.

Staff act for their own clinic, admins for any (naming it with ``clinic_id``), viewers read their clinic's;
pharmacists have no access. Reads of movements (they name who made them) are audited.
"""

from __future__ import annotations

from uuid import UUID

from flask.views import MethodView

from app.api.common import Blueprint, documents, requires
from app.schemas.common import page_body
from app.schemas.stock import (
    AlertCreateSchema,
    AlertResultSchema,
    LowQuerySchema,
    MovementCreateSchema,
    MovementPageSchema,
    MovementQuerySchema,
    MovementSchema,
    StockCreateSchema,
    StockItemPageSchema,
    StockItemSchema,
    StockQuerySchema,
    StockUpdateSchema,
)
from app.security import current_actor
from app.services import stock

blp = Blueprint("stock", __name__, url_prefix="/api/v1/stock",
                description="Clinic stock (staff: their clinic; admins: all; viewers: read).")  # fmt: skip

READERS = ("admin", "staff", "viewer")
WRITERS = ("admin", "staff")


@blp.route("")
class StockItems(MethodView):
    @requires(blp, *READERS)
    @blp.arguments(StockQuerySchema, location="query")
    @blp.response(200, StockItemPageSchema)
    def get(self, query):
        """List stock items with their levels and days of stock left.

        Filters: ``q`` (part of the name), ``code``, ``low`` and ``clinic_id`` (admins; others only their own).
        ``days_of_stock_left`` is the level divided by the average daily dispensing of the last 30 days.
        """
        return page_body(stock.list_items(current_actor(), **query))

    @requires(blp, *WRITERS)
    @blp.arguments(StockCreateSchema)
    @blp.response(201, StockItemSchema)
    @documents(blp, 409)
    def post(self, data):
        """Create an item. An initial ``level`` is recorded as a count. 409: the name or code is taken."""
        return stock.create_item(current_actor(), data)


@blp.get("/low")
@requires(blp, *READERS)
@blp.arguments(LowQuerySchema, location="query")
@blp.response(200, StockItemPageSchema)
def low(query):
    """Items at or below their reorder level, fewest days of stock left first (unknown days last)."""
    return page_body(stock.low_items(current_actor(), **query))


@blp.post("/alert")
@requires(blp, *WRITERS)
@blp.arguments(AlertCreateSchema)
@blp.response(202, AlertResultSchema)
@documents(blp, 404)
def alert(data):
    """Send the clinic's alert recipients an SMS about an item, with a note, each in their own language."""
    return stock.manual_alert(current_actor(), data["item_id"], data["note"])


@blp.route("/<uuid:item_id>")
class StockItemById(MethodView):
    @requires(blp, *READERS)
    @blp.response(200, StockItemSchema)
    @documents(blp, 404)
    def get(self, item_id: UUID):
        """One item."""
        return stock.get_item(current_actor(), item_id)

    @requires(blp, *WRITERS)
    @blp.arguments(StockUpdateSchema)
    @blp.response(200, StockItemSchema)
    @documents(blp, 404, 409)
    def put(self, data, item_id: UUID):
        """Set a counted level (recorded as a ``counted`` movement), change the reorder level or the details."""
        return stock.update_item(current_actor(), item_id, data)


@blp.route("/<uuid:item_id>/movements")
class Movements(MethodView):
    @requires(blp, *READERS)
    @blp.arguments(MovementQuerySchema, location="query")
    @blp.response(200, MovementPageSchema)
    @documents(blp, 404)
    def get(self, query, item_id: UUID):
        """The item's movements, newest first (the read is audited: movements name who made them)."""
        return page_body(stock.movements(current_actor(), item_id, **query))

    @requires(blp, *WRITERS)
    @blp.arguments(MovementCreateSchema)
    @blp.response(201, MovementSchema)
    @documents(blp, 404, 409)
    def post(self, data, item_id: UUID):
        """Record a movement: received, dispensed, expired, counted or adjusted. 409: the level would go below 0."""
        return stock.record_movement(current_actor(), item_id, data)
