"""Clinics (Botswana and Ghana), each with its own time zone and default language."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, Timestamps, UUIDPrimaryKey

COUNTRIES = ("BW", "GH")
LANGUAGES = ("en", "tn")


class Clinic(UUIDPrimaryKey, Timestamps, Base):
    """A clinic or health post. Times are stored in UTC and shown in ``timezone`` (IANA name)."""

    __tablename__ = "clinics"
    __table_args__ = (
        CheckConstraint(f"country IN {COUNTRIES}", name="country"),
        CheckConstraint(f"default_language IN {LANGUAGES}", name="default_language"),
    )

    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))
    timezone: Mapped[str] = mapped_column(String(64))
    default_language: Mapped[str] = mapped_column(String(2), default="en")
