"""``/api/v1/sms`` (send, schedule, status, queue) and ``/api/v1/messages`` (the message log)."""

from __future__ import annotations

from uuid import UUID

from app.api.common import Blueprint, documents, requires
from app.schemas.common import PaginationQuery, page_body
from app.schemas.message_log import (
    MessageDetailSchema,
    MessagePageSchema,
    MessageQuerySchema,
    MessageSchema,
    SmsScheduleSchema,
    SmsSendSchema,
)
from app.security import current_actor
from app.services import message_log as log_service

sms_blp = Blueprint("sms", __name__, url_prefix="/api/v1/sms", description="Send SMS (staff: for their clinic).")
messages_blp = Blueprint("messages", __name__, url_prefix="/api/v1/messages", description="The message log.")

READERS = ("admin", "staff", "viewer")
SENDERS = ("admin", "staff")


@sms_blp.post("/send")
@requires(sms_blp, *SENDERS)
@sms_blp.arguments(SmsSendSchema)
@sms_blp.response(202, MessageSchema)
@documents(sms_blp, 409)
def send(data):
    """Queue an SMS. 400 for an invalid number; 409 when the number opted out; 429 over the hourly caps."""
    return log_service.send(current_actor(), to=data["to"], text=data["message"], clinic_id=data["clinic_id"])


@sms_blp.post("/schedule")
@requires(sms_blp, *SENDERS)
@sms_blp.arguments(SmsScheduleSchema)
@sms_blp.response(202, MessageSchema)
@documents(sms_blp, 409)
def schedule(data):
    """Schedule an SMS for a future time (timezone-aware ``send_at``)."""
    return log_service.send(current_actor(), to=data["to"], text=data["message"], clinic_id=data["clinic_id"],
                    send_at=data["send_at"])  # fmt: skip


@sms_blp.get("/status/<uuid:message_id>")
@requires(sms_blp, *READERS)
@sms_blp.response(200, MessageDetailSchema)
@documents(sms_blp, 404)
def status(message_id: UUID):
    """One message with every status event and send attempt."""
    message, events = log_service.get(current_actor(), message_id)
    return {**{name: getattr(message, name) for name in MessageSchema().fields}, "events": events}


@sms_blp.get("/queue")
@requires(sms_blp, *READERS)
@sms_blp.arguments(PaginationQuery, location="query")
@sms_blp.response(200, MessagePageSchema)
def queue(query):
    """Messages waiting to go out (scheduled, queued, sending)."""
    return page_body(log_service.pending(current_actor(), **query))


@messages_blp.get("")
@requires(messages_blp, *READERS)
@messages_blp.arguments(MessageQuerySchema, location="query")
@messages_blp.response(200, MessagePageSchema)
def message_log(query):
    """The message log, newest first: filter by phone (exact address), direction, channel, status, from, to."""
    return page_body(log_service.log(current_actor(), **query))
