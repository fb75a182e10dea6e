"""Send jobs: thin wrappers that RQ runs by name (``app.jobs.SEND_MESSAGE``, ``SEND_BATCH``, the sweeper).

The work, and its guarantees, are in :mod:`bots.sending`.
"""

from __future__ import annotations

from bots import sending


def send_message(message_id: str) -> str:
    """Send one outbox message (``messages.id``); returns its status afterwards. Retried by RQ on
    :class:`bots.sending.AllProvidersFailed`."""
    return sending.send_message(message_id)


def send_batch(message_ids: list[str]) -> dict[str, int]:
    """Send many outbox messages in one job; returns how many ended in each status."""
    return sending.send_batch(message_ids)


def sweep() -> dict[str, int]:
    """The periodic safety net (every minute): release, re-enqueue and mark stuck sends; returns counts."""
    return sending.sweep()
