"""A clinic's notice to a group of its patients (a closure, a change of hours): one message each, in their language."""

from __future__ import annotations

import uuid

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, Timestamps, UUIDPrimaryKey


class ClinicNotice(UUIDPrimaryKey, Timestamps, Base):
    """One notice: who it was for, both texts, and what it cost. Its messages carry ``notice:<id>:`` dedupe keys."""

    __tablename__ = "clinic_notices"

    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinics.id", ondelete="RESTRICT"), index=True)
    audience: Mapped[dict] = mapped_column(JSON)  # {"date": ...} or {"status", "from", "to"}
    message_en: Mapped[str] = mapped_column(String(320))
    message_tn: Mapped[str] = mapped_column(String(320))
    recipients: Mapped[int] = mapped_column(Integer)
    segments: Mapped[dict] = mapped_column(JSON)  # {"en": n, "tn": n}: per message, in each language
    segment_total: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
