"""Inbound handling: a stored SMS or chat message is acted on by the dialogue engine in a job."""

from __future__ import annotations

import uuid

from bots import engine


def handle_message(message_id: str) -> int:
    """Run the engine on one stored inbound message (and any earlier pending ones of the same contact).

    Args:
        message_id: the ``messages.id`` of an inbound row.

    Returns:
        How many messages were handled.
    """
    return engine.handle_message(message_id)


def enqueue_handle(message_id: uuid.UUID) -> None:
    """Enqueue the handling job of one inbound message (safe to repeat: handled messages are skipped)."""
    from workers import QUEUE_DEFAULT, enqueue

    enqueue(QUEUE_DEFAULT, handle_message, str(message_id), job_id=f"handle-{message_id}")
