"""One module per provider behind :class:`bots.channels.base.Channel`, found through a small registry."""

from __future__ import annotations

from bots.channels.base import REGISTRY, Channel, SendError, register
from bots.channels.console import ConsoleChannel

__all__ = ["REGISTRY", "Channel", "ConsoleChannel", "SendError", "register", "sender_for"]


def sender_for(channel: str) -> Channel:
    """The channel adapter that sends on ``channel`` (``sms``, ...).

    With no provider credentials configured, everything goes to the console sender: the embedded default.
    """
    return REGISTRY["console"]()
