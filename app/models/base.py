"""Declarative base, column types and mixins shared by every model."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import DateTime, ForeignKey, MetaData, TypeDecorator, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, registry

# Stable constraint names, so Alembic can drop what it created on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# Marks a ForeignKey whose constraint PostgreSQL does not hold: statement-level triggers check it once per
# statement instead of once per row (migration 0016_batched_foreign_keys). SQLite keeps the real constraint.
BATCHED_FOREIGN_KEY = "batched_foreign_key"


def batched_foreign_key(target: str, *, ondelete: str) -> ForeignKey:
    """A foreign key that the ORM knows (joins, flush order) and that PostgreSQL checks by triggers, not a constraint.

    The six of them (the upload's tables) are checked once per statement by the triggers of migration
    ``0016_batched_foreign_keys`` with the same name, ``ondelete`` and errors as the constraint; SQLite keeps the
    constraint itself.
    """
    return ForeignKey(target, ondelete=ondelete, info={BATCHED_FOREIGN_KEY: True})


def is_batched_foreign_key(constraint: object) -> bool:
    """Whether ``constraint`` is a model's ForeignKeyConstraint made of :func:`batched_foreign_key` columns."""
    elements = getattr(constraint, "elements", None) or ()
    return any(element.info.get(BATCHED_FOREIGN_KEY) for element in elements)


def schema_comparison_filter(dialect_name: str) -> Callable[..., bool]:
    """Alembic's ``include_object`` for comparing the models with a database of ``dialect_name``.

    On PostgreSQL it leaves out the batched foreign keys, which the database holds as triggers, so neither a schema
    test nor ``flask db migrate`` (autogenerate) sees them as missing constraints to add back.
    """

    def include_object(obj, name, type_, reflected, compare_to) -> bool:
        if dialect_name != "postgresql" or type_ != "foreign_key_constraint":
            return True
        return not (is_batched_foreign_key(obj) or is_batched_foreign_key(compare_to))

    return include_object


def utcnow() -> datetime:
    """Now, timezone-aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A timestamp that is always timezone-aware UTC in Python, whatever the backend keeps.

    SQLite has no time zones and hands back naive values; PostgreSQL keeps ``timestamptz``. Naive values are
    refused on the way in, so local clinic times can never be stored by mistake.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; store timezone-aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Base of every model: stable constraint names and the shared column types."""

    registry = registry(
        metadata=MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={datetime: UTCDateTime(), uuid.UUID: Uuid()},
    )


_UUID7_BITS = 0x7 << 76 | 0b10 << 62  # version 7, RFC 9562 variant
_RANDOM_A, _RANDOM_B = 0xFFF << 64, (1 << 62) - 1
_VERSION_7 = bytes(b & 0x0F | 0x70 for b in range(256))  # a key's 7th byte, its high half the version
_VARIANT = bytes(b & 0x3F | 0x80 for b in range(256))  # its 9th byte, its two high bits the variant


def new_id() -> uuid.UUID:
    """A new row's primary key: a UUID version 7 (RFC 9562), the Unix time in milliseconds, then 74 random bits.

    Keys made later sort later, so a new row's key goes to the right-hand edge of each B-tree index that holds it
    (PostgreSQL's fast path for the rightmost leaf; pages filled before they split) rather than to a random page of
    the whole index: 13-15 % less PostgreSQL CPU for the 100,000-row upload (bench/upload_csv.py). The key
    shows when its row was made, to the millisecond, to whoever sees it; most rows carry that time in a column
    already (``created_at``, ``received_at``). The 74 random bits keep keys unguessable and unique across processes.
    """
    return uuid.UUID(int=_uuid7_int(time.time_ns() // 1_000_000, int.from_bytes(os.urandom(10), "big")))


def new_id_bytes(count: int) -> list[bytes]:
    """``count`` :func:`new_id` keys as 16 bytes each (what PostgreSQL's binary COPY takes), in ascending order."""
    raw = bytearray(os.urandom(16 * count))
    for position, byte in enumerate((time.time_ns() // 1_000_000).to_bytes(6, "big")):
        raw[position::16] = bytes((byte,)) * count
    raw[6::16] = raw[6::16].translate(_VERSION_7)
    raw[8::16] = raw[8::16].translate(_VARIANT)
    raw = bytes(raw)
    return sorted([raw[i : i + 16] for i in range(0, 16 * count, 16)])


def _uuid7_int(millis: int, random80: int) -> int:
    return millis << 80 | _UUID7_BITS | (random80 << 4) & _RANDOM_A | random80 & _RANDOM_B


class UUIDPrimaryKey:
    """A time-ordered UUID primary key (:func:`new_id`)."""

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)


class Timestamps:
    """``created_at`` / ``updated_at``, set by Python in UTC."""

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
