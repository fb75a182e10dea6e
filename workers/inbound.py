"""Inbound handling: a stored SMS or chat message is acted on by the dialogue engine in a job."""

from __future__ import annotations

from bots import engine


def handle_message(message_id: str) -> int:
    """Run the engine on one stored inbound message (and any earlier pending ones of the same contact).

    Args:
        message_id: the ``messages.id`` of an inbound row.

    Returns:
        How many messages were handled.
    """
    return engine.handle_message(message_id)
