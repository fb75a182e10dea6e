"""Normalised messages: what the engine and the outbox see instead of any vendor's payload."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class OutboundMessage:
    """A message to send, as a channel's ``send`` receives it."""

    id: uuid.UUID
    channel: str
    address: str
    text: str
    language: str | None = None


@dataclass(frozen=True)
class SendResult:
    """What a provider answered: its id for the message (for delivery reports)."""

    provider: str
    provider_id: str | None
