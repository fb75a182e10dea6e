"""Appointment jobs and retention, run by the periodic schedule: thin wrappers over :mod:`app.services.upkeep`
and :mod:`app.services.retention`."""

from __future__ import annotations

from flask import current_app

from app.models import utcnow
from app.services import retention, upkeep
from bots.channels import console


def queue_due_reminders() -> dict[str, int]:
    """Every minute: write the due appointment reminders to the outbox; returns counts."""
    return upkeep.queue_due_reminders()


def mark_missed() -> int:
    """Hourly: mark missed the appointments whose day is over in their clinic's time zone; returns how many."""
    return upkeep.mark_missed()


def erase_expired_texts() -> dict[str, int]:
    """Nightly: erase message contents and skin photos past the retention period, in the database and in the
    console media store; returns counts (:func:`app.services.retention.erase_expired`, plus ``media_files``)."""
    now = utcnow()
    counts = retention.erase_expired(now)
    counts["media_files"] = console.erase_media_before(current_app.config, retention.cutoff(now))
    return counts
