"""``PUT /api/v1/users/{id}/pin``: a staff member's USSD PIN (admins for anyone, staff for themself)."""

from __future__ import annotations

from uuid import UUID

from app.api.common import Blueprint, documents, requires
from app.schemas.stock import PinSchema
from app.security import current_actor
from app.services import pins

blp = Blueprint("user_pins", __name__, url_prefix="/api/v1/users", description="USSD PINs of staff accounts.")


@blp.put("/<uuid:user_id>/pin")
@requires(blp, "admin", "staff")
@blp.arguments(PinSchema)
@blp.response(204)
@documents(blp, 404)
def set_pin(data, user_id: UUID):
    """Set the 4-digit PIN of the staff USSD menu (hashed; never shown again). Unlocks a locked USSD login."""
    pins.set_pin(current_actor(), user_id, data["pin"])
