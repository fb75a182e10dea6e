"""Clinic stock: items with their current level, and the movement ledger that explains every level.

The level of an item always equals the sum of its movements' signed quantities (``delta``): a received box adds,
a dispensed or expired one takes away, a count records the correction from the old level to the counted one. A
level can never go negative (a database constraint backs the service's check).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, Timestamps, UUIDPrimaryKey, utcnow
from app.models.channel import USSD
from app.models.clinic import Clinic

KIND_RECEIVED = "received"  # a delivery arrived: adds to the level
KIND_DISPENSED = "dispensed"  # given to patients: takes from the level
KIND_COUNTED = "counted"  # a physical count: the correction from the old level to the counted one
KIND_ADJUSTED = "adjusted"  # any other correction (breakage, transfer), signed, with a note
KIND_EXPIRED = "expired"  # thrown away past its expiry date: takes from the level
MOVEMENT_KINDS = (KIND_RECEIVED, KIND_DISPENSED, KIND_COUNTED, KIND_ADJUSTED, KIND_EXPIRED)

CHANNEL_API = "api"
CHANNEL_USSD = USSD.value
MOVEMENT_CHANNELS = (CHANNEL_API, CHANNEL_USSD)


class StockItem(UUIDPrimaryKey, Timestamps, Base):
    """One kind of stock a clinic keeps (a medicine in one strength and pack, test kits, gloves ...)."""

    __tablename__ = "stock_items"
    __table_args__ = (
        CheckConstraint("level >= 0", name="level_not_negative"),
        CheckConstraint("reorder_level >= 0", name="reorder_level_not_negative"),
        UniqueConstraint("clinic_id", "name", name="uq_stock_items_clinic_id_name"),
        Index("uq_stock_items_clinic_id_code", "clinic_id", "code", unique=True),
    )

    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinics.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    code: Mapped[str | None] = mapped_column(String(50))  # the clinic's or the medical stores' own code
    unit: Mapped[str] = mapped_column(String(30))  # what one counts in: tablets, boxes, sachets, kits
    level: Mapped[int] = mapped_column(Integer, default=0)
    reorder_level: Mapped[int] = mapped_column(Integer, default=0)
    # When the low-stock alert went out; cleared once the level is above the reorder level again (re-armed).
    low_alert_at: Mapped[datetime | None] = mapped_column()

    clinic: Mapped[Clinic] = relationship(lazy="joined")


class StockMovement(UUIDPrimaryKey, Base):
    """One line of the ledger. Never changed or deleted: a mistake is corrected by another movement."""

    __tablename__ = "stock_movements"
    __table_args__ = (
        CheckConstraint(f"kind IN {MOVEMENT_KINDS}", name="kind"),
        CheckConstraint(f"channel IN {MOVEMENT_CHANNELS}", name="channel"),
        CheckConstraint("level_after >= 0", name="level_after_not_negative"),
        Index("ix_stock_movements_item_id_at", "item_id", "at"),
    )

    item_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stock_items.id", ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(String(16))
    quantity: Mapped[int] = mapped_column(Integer)  # as entered: boxes received, the counted level ...
    delta: Mapped[int] = mapped_column(Integer)  # the signed change it made to the level
    level_after: Mapped[int] = mapped_column(Integer)
    batch: Mapped[str | None] = mapped_column(String(50))
    expiry_date: Mapped[date | None] = mapped_column(Date)
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    channel: Mapped[str] = mapped_column(String(8), default=CHANNEL_API)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    note: Mapped[str | None] = mapped_column(String(500))
