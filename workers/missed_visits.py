"""Missed-visit jobs, run by the periodic schedule: thin wrappers over :mod:`app.services.recovery`."""

from __future__ import annotations

from app.services import recovery


def queue_recovery_sms() -> dict[str, int]:
    """Every minute: write the recovery SMS of the missed visits whose time has come; returns counts."""
    return recovery.queue_due_recovery()
