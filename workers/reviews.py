"""Second-opinion jobs run by the periodic schedule: thin wrappers over :mod:`app.services.reviews` and
:mod:`app.services.follow_ups`."""

from __future__ import annotations

from app.services import follow_ups, reviews


def alert_overdue() -> dict[str, int]:
    """Every minute: one alert per review past its target (SMS to its clinicians, or the pharmacist when none)."""
    return reviews.alert_overdue()


def send_follow_ups() -> dict[str, int]:
    """Every minute: the due check-ins "How is the patient?" to the pharmacists' chats, each once."""
    return follow_ups.send_due()
