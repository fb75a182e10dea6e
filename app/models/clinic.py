"""Clinics (Botswana and Ghana), each with its own time zone and default language."""

from __future__ import annotations

from datetime import time

from sqlalchemy import JSON, Boolean, CheckConstraint, Integer, String, Time
from sqlalchemy.orm import Mapped, mapped_column

from app.i18n.gsm7 import fold
from app.models.base import Base, Timestamps, UUIDPrimaryKey

COUNTRIES = ("BW", "GH")
LANGUAGES = ("en", "tn")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

DEFAULT_REMINDER_OFFSETS = [3 * 24 * 60, 24 * 60]  # minutes before the appointment: 3 days and 1 day
DEFAULT_SEND_WINDOW = (time(7, 0), time(20, 0))  # reminders only go out between these local times
# Opening hours per weekday: a list of [open, close] local "HH:MM" pairs; a missing or empty day is closed.
DEFAULT_OPENING_HOURS = {day: [["07:30", "16:30"]] for day in WEEKDAYS[:5]}
SMS_NAME_LENGTH = 30  # a clinic's name as it appears in SMS and USSD texts, so every reminder fits one segment
# GSM-7 extension characters cost two septets each; in a name shown in SMS they become one-septet lookalikes.
_ONE_SEPTET = str.maketrans({"[": "(", "]": ")", "{": "(", "}": ")", "~": "-", "|": "/", "\\": "/", "^": "'",
                             "€": "E", "\f": " "})  # fmt: skip


def default_opening_hours() -> dict:
    return {day: [list(pair) for pair in hours] for day, hours in DEFAULT_OPENING_HOURS.items()}


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
    # The name in SMS and USSD texts (GSM-7, at most SMS_NAME_LENGTH characters); None: the name, shortened.
    short_name: Mapped[str | None] = mapped_column(String(SMS_NAME_LENGTH))

    # Appointment reminders.
    reminder_offsets_minutes: Mapped[list] = mapped_column(JSON, default=lambda: list(DEFAULT_REMINDER_OFFSETS))
    send_window_start: Mapped[time] = mapped_column(Time, default=DEFAULT_SEND_WINDOW[0])
    send_window_end: Mapped[time] = mapped_column(Time, default=DEFAULT_SEND_WINDOW[1])
    booking_confirmation: Mapped[bool] = mapped_column(Boolean, default=False)  # SMS when an appointment is made

    # Rescheduling: free slots are cut from the opening hours; each slot takes slot_capacity patients.
    opening_hours: Mapped[dict] = mapped_column(JSON, default=default_opening_hours)
    slot_minutes: Mapped[int] = mapped_column(Integer, default=30)
    slot_capacity: Mapped[int] = mapped_column(Integer, default=4)

    # Low-stock alerts: the users (ids as strings) who get low-stock SMS; None: every active staff member.
    alert_recipient_ids: Mapped[list | None] = mapped_column(JSON)

    @property
    def sms_name(self) -> str:
        """The clinic's name as SMS and USSD texts show it."""
        name = fold(self.short_name or self.name).translate(_ONE_SEPTET).strip()
        if len(name) <= SMS_NAME_LENGTH:
            return name
        cut = name[:SMS_NAME_LENGTH].rsplit(" ", 1)[0]
        return cut if len(cut) >= SMS_NAME_LENGTH // 2 else name[:SMS_NAME_LENGTH]
