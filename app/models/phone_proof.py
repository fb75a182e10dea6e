"""Codes that prove an account's phone number: sent by SMS to the number, entered in the API."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UUIDPrimaryKey


class PhoneProofCode(UUIDPrimaryKey, Base):
    """A 6-digit code sent by SMS to the account's phone; only its HMAC is stored.

    It proves only the number it was sent to (``phone``), and is spent on use, on expiry, by a newer code or by too
    many wrong tries. The rows of the last hour also count the sends, for the hourly cap.
    """

    __tablename__ = "phone_proof_codes"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    phone: Mapped[str] = mapped_column(String(16))
    code_hash: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()
