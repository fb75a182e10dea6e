"""Contacts and conversations: who writes to Thusa, in which language, and where each conversation stands."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, Timestamps, UUIDPrimaryKey
from app.models.clinic import LANGUAGES


class Contact(UUIDPrimaryKey, Timestamps, Base):
    """One address: an E.164 phone number (SMS, WhatsApp and USSD share it) or a Telegram chat id.

    A contact that has opted out gets nothing but the one confirmation until it opts in again.
    """

    __tablename__ = "contacts"
    __table_args__ = (
        CheckConstraint(f"language IS NULL OR language IN {LANGUAGES}", name="language"),
        # Only the few contacts linked to an account are indexed: a patient's (most, and every upload's) are not.
        Index(
            "ix_contacts_user_id",
            "user_id",
            postgresql_where=text("user_id IS NOT NULL"),
            sqlite_where=text("user_id IS NOT NULL"),
        ),  # fmt: skip
    )

    address: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str | None] = mapped_column(String(2))  # None: not chosen yet, use the default
    opted_out_at: Mapped[datetime | None] = mapped_column()
    # WhatsApp allows free text only within 24 hours of the person's last message.
    last_whatsapp_inbound_at: Mapped[datetime | None] = mapped_column()
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class Conversation(UUIDPrimaryKey, Timestamps, Base):
    """Where one contact stands on one channel: the active flow (if any) and its state."""

    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("contact_id", "channel"),)

    contact_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    flow: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[dict] = mapped_column(JSON, default=dict)
    session_id: Mapped[str | None] = mapped_column(String(128))  # USSD session the state belongs to
