"""Messages in and out of Thusa. An outbound row is the outbox: it is committed before any send is tried."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, Timestamps, UUIDPrimaryKey, utcnow
from app.models.channel import CHANNELS

DIRECTION_IN = "in"
DIRECTION_OUT = "out"
DIRECTIONS = (DIRECTION_IN, DIRECTION_OUT)

STATUS_RECEIVED = "received"  # inbound, stored, not yet handled
STATUS_HANDLED = "handled"  # inbound, the engine has acted on it
STATUS_SCHEDULED = "scheduled"  # outbound, waiting for its send_at
STATUS_QUEUED = "queued"  # outbound, committed, waiting for a worker
STATUS_SENDING = "sending"  # outbound, claimed by a worker
STATUS_SENT = "sent"  # outbound, accepted by the provider
STATUS_DELIVERED = "delivered"  # outbound, the provider reported delivery
STATUS_READ = "read"  # outbound, the provider reported it read (chat)
# outbound: given up, or refused (opted out, capped); inbound: handling failed: retried at retry_at, or given up
# (retry_at empty) after the engine's last attempt
STATUS_FAILED = "failed"
# outbound: it may have gone out (a worker died mid-send, a provider's answer timed out or was unreadable): never
# resent automatically, a person must check
STATUS_UNKNOWN = "unknown"
STATUSES = (
    STATUS_RECEIVED,
    STATUS_HANDLED,
    STATUS_SCHEDULED,
    STATUS_QUEUED,
    STATUS_SENDING,
    STATUS_SENT,
    STATUS_DELIVERED,
    STATUS_READ,
    STATUS_FAILED,
    STATUS_UNKNOWN,
)
# Delivery statuses only move forward along this order; failed is final.
STATUS_RANK = {STATUS_QUEUED: 0, STATUS_SENDING: 1, STATUS_UNKNOWN: 1, STATUS_SENT: 2, STATUS_DELIVERED: 3,
               STATUS_READ: 4}  # fmt: skip

KIND_REPLY = "reply"  # the engine's answer to an inbound message
KIND_REMINDER = "reminder"  # appointment reminders (not capped: the clinic asked for them)
KIND_API = "api"  # sent through POST /api/v1/sms
KIND_SYSTEM = "system"  # password reset codes, alerts, receipts
KIND_NOTICE = "notice"  # an appointment booked, moved or cancelled by the clinic (not capped, like reminders)
KINDS = (KIND_REPLY, KIND_REMINDER, KIND_API, KIND_SYSTEM, KIND_NOTICE)


class Message(UUIDPrimaryKey, Timestamps, Base):
    """One SMS, chat or USSD message. ``address`` is an E.164 number or a chat id; never logged at INFO."""

    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint(f"direction IN {DIRECTIONS}", name="direction"),
        CheckConstraint(f"channel IN {CHANNELS}", name="channel"),
        CheckConstraint(f"status IN {STATUSES}", name="status"),
        CheckConstraint(f"kind IS NULL OR kind IN {KINDS}", name="kind"),
        Index("ix_messages_provider_provider_id", "provider", "provider_id"),
    )

    direction: Mapped[str] = mapped_column(String(3))
    channel: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str | None] = mapped_column(String(32))
    provider_id: Mapped[str | None] = mapped_column(String(128))
    address: Mapped[str] = mapped_column(String(64), index=True)
    text: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(2))
    status: Mapped[str] = mapped_column(String(16), index=True)
    # Unique per logical message (e.g. one reminder per appointment and offset): a retry can never send twice.
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    # outbound: send job runs; inbound: failed handlings (its job's, RQ's retries' and the sweeper's)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    sent_at: Mapped[datetime | None] = mapped_column()
    contact_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"), index=True)
    clinic_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("clinics.id", ondelete="SET NULL"), index=True)
    kind: Mapped[str | None] = mapped_column(String(16))
    media: Mapped[list] = mapped_column(JSON, default=list)  # [{"content_type", "url", "provider_media_id"}]
    buttons: Mapped[list] = mapped_column(JSON, default=list)  # quick replies: [{"id", "title"}]
    encoding: Mapped[str | None] = mapped_column(String(8))  # GSM-7 or UCS-2 (SMS)
    segments: Mapped[int | None] = mapped_column(Integer)
    send_at: Mapped[datetime | None] = mapped_column(index=True)  # scheduled sends
    received_at: Mapped[datetime | None] = mapped_column()  # inbound: when the person sent it
    claimed_at: Mapped[datetime | None] = mapped_column()  # outbound: when a worker started sending it
    error_code: Mapped[str | None] = mapped_column(String(32))
    # The inbound message this one answers: unique, so an inbound message gets at most one reply.
    reply_to_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"), unique=True)
    # The appointment a reminder, notice or patient reply is about (scopes it to the clinic; retention erases it).
    appointment_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("appointments.id", ondelete="SET NULL"), index=True
    )
    # Our side of the conversation: inbound, the number, short code or WhatsApp phone number id the person wrote to
    # (as the provider's send API names it); outbound, the one to send from (a reply goes out where they wrote).
    our_address: Mapped[str | None] = mapped_column(String(64))
    # Outbound: the provider a reply or follow-up must go out on (the one the person wrote through): no failover.
    pinned_provider: Mapped[str | None] = mapped_column(String(32))
    # Inbound, failed: when the sweeper tries to handle it again (empty once the engine has given up).
    retry_at: Mapped[datetime | None] = mapped_column()
    # Skin consultations: small inbound facts a flow needs later (a Telegram shared contact card and the
    # sender's user id, a button's callback data); never the raw payload.
    extra: Mapped[dict | None] = mapped_column(JSON)


class MessageEvent(UUIDPrimaryKey, Base):
    """Every delivery report and send attempt, kept as it came (the message's status is the furthest one)."""

    __tablename__ = "message_events"

    message_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # status | attempt
    provider: Mapped[str | None] = mapped_column(String(32))
    provider_id: Mapped[str | None] = mapped_column(String(128), index=True)
    raw_status: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str | None] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(String(500))
    at: Mapped[datetime] = mapped_column(default=utcnow)
