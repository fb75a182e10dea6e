"""Messages in and out of Thusa. An outbound row is the outbox: it is committed before any send is tried."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, Timestamps, UUIDPrimaryKey

DIRECTION_IN = "in"
DIRECTION_OUT = "out"
DIRECTIONS = (DIRECTION_IN, DIRECTION_OUT)

CHANNELS = ("sms", "whatsapp", "telegram", "ussd")

STATUS_RECEIVED = "received"  # inbound, stored, not yet handled
STATUS_HANDLED = "handled"  # inbound, the engine has acted on it
STATUS_QUEUED = "queued"  # outbound, committed, waiting for a worker
STATUS_SENDING = "sending"  # outbound, claimed by a worker
STATUS_SENT = "sent"  # outbound, accepted by the provider
STATUS_DELIVERED = "delivered"  # outbound, the provider reported delivery
STATUS_FAILED = "failed"  # outbound, given up
STATUSES = (
    STATUS_RECEIVED,
    STATUS_HANDLED,
    STATUS_QUEUED,
    STATUS_SENDING,
    STATUS_SENT,
    STATUS_DELIVERED,
    STATUS_FAILED,
)


class Message(UUIDPrimaryKey, Timestamps, Base):
    """One SMS, chat or USSD message. ``address`` is an E.164 number or a chat id; never logged at INFO."""

    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint(f"direction IN {DIRECTIONS}", name="direction"),
        CheckConstraint(f"channel IN {CHANNELS}", name="channel"),
        CheckConstraint(f"status IN {STATUSES}", name="status"),
    )

    direction: Mapped[str] = mapped_column(String(3))
    channel: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str | None] = mapped_column(String(32))
    provider_id: Mapped[str | None] = mapped_column(String(128), index=True)
    address: Mapped[str] = mapped_column(String(64), index=True)
    text: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(2))
    status: Mapped[str] = mapped_column(String(16), index=True)
    # Unique per logical message (e.g. one reminder per appointment and offset): a retry can never send twice.
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    sent_at: Mapped[datetime | None] = mapped_column()
