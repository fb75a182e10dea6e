"""``/api/v1/auth/phone``: prove the signed-in account's phone number with a code sent to it by SMS."""

from __future__ import annotations

from app.api.common import Blueprint, documents, requires
from app.schemas.phone_proof import PhoneCodeSentSchema, PhoneConfirmSchema
from app.schemas.users import UserSchema
from app.security import current_actor
from app.services import phone_proof

blp = Blueprint("phone_proof", __name__, url_prefix="/api/v1/auth/phone",
                description="Proving the account's phone number.")  # fmt: skip


@blp.post("/verify")
@requires(blp)
@blp.response(202, PhoneCodeSentSchema)
@documents(blp, 409, 422)
def verify():
    """Send a 6-digit code by SMS to your own phone (valid 10 minutes; at most 3 an hour).

    Until the phone is proven, chats link by code only, password reset codes are not sent to it and the staff USSD
    menu does not open for it. 409 when it is already proven, 422 when the account has no phone.
    """
    sent = phone_proof.send_code(current_actor())
    return {"message": "A code is on its way to your phone by SMS.", **sent}


@blp.post("/confirm")
@requires(blp)
@blp.arguments(PhoneConfirmSchema)
@blp.response(200, UserSchema)
@documents(blp, 422)
def confirm(data):
    """Prove your phone with the code (5 wrong tries spend it); answers the account, ``phone_verified`` true."""
    return phone_proof.confirm(current_actor(), data["code"])
