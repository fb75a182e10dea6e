"""Appointment jobs, run by the periodic schedule: thin wrappers over :mod:`app.services.upkeep`."""

from __future__ import annotations

from app.services import upkeep


def queue_due_reminders() -> dict[str, int]:
    """Every minute: write the due appointment reminders to the outbox; returns counts."""
    return upkeep.queue_due_reminders()


def mark_missed() -> int:
    """Hourly: mark missed the appointments whose day is over in their clinic's time zone; returns how many."""
    return upkeep.mark_missed()


def erase_expired_texts() -> int:
    """Nightly: erase the texts of messages past the retention period; returns how many."""
    return upkeep.erase_expired_texts()
