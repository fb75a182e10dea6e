"""One module per provider behind :class:`bots.channels.base.Channel`, found through a small registry.

Importing this package registers every adapter. Which ones are used is settings: an adapter whose credentials are
set is enabled; ``SMS_PROVIDERS`` orders the SMS ones; with none configured, everything goes to the console sender.
"""

from __future__ import annotations

from collections.abc import Mapping

from app.models.channel import SMS, TELEGRAM, WHATSAPP
from bots.channels import africastalking, console, telegram, twilio, whatsapp  # noqa: F401 (register adapters)
from bots.channels.base import REGISTRY, Channel, MalformedPayload, ParsedWebhook, SendError, WebhookRejected, register
from bots.channels.console import save_media  # skin pipeline: the console media store
from bots.channels.media import MediaError, fetch_media  # skin pipeline: attachment downloads

__all__ = [
    "REGISTRY",
    "Channel",
    "MalformedPayload",
    "MediaError",
    "ParsedWebhook",
    "SendError",
    "WebhookRejected",
    "adapter",
    "fetch_media",
    "register",
    "save_media",
    "senders_for",
]


def adapter(name: str, config: Mapping) -> Channel:
    """The adapter ``name`` bound to ``config`` (KeyError for an unknown name)."""
    return REGISTRY[name](config)


def senders_for(channel: str, config: Mapping) -> list[Channel]:
    """The adapters to try, in order, to send on ``channel``; the console sender when none is configured.

    Args:
        channel: ``sms``, ``whatsapp`` or ``telegram``.
        config: the app config.
    """
    if channel == SMS:
        names = [name for name in config.get("SMS_PROVIDERS", []) if name in REGISTRY]
    elif channel == WHATSAPP:
        names = ["twilio", "whatsapp"]
    elif channel == TELEGRAM:
        names = ["telegram"]
    else:
        names = []
    enabled = [
        REGISTRY[name](config)
        for name in names
        if channel in REGISTRY[name].sends and REGISTRY[name].is_configured_for(channel, config)
    ]
    return enabled or [REGISTRY["console"](config)]
