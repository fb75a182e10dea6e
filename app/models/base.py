"""Declarative base, column types and mixins shared by every model."""

from __future__ import annotations

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


class UUIDPrimaryKey:
    """A random UUID primary key."""

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)


class Timestamps:
    """``created_at`` / ``updated_at``, set by Python in UTC."""

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
