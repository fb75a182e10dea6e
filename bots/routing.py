"""Routing: by which channel, providers and number a claimed outbox row goes out (:func:`plan`); the sender
(:mod:`bots.sending`) then tries the providers in order.

A reply, or a follow-up in a conversation (a consultation's result sent later), goes out through the provider the
person wrote through and from the number they wrote to (the row's ``pinned_provider`` and ``our_address``, written by
the outbox): another provider is another sender, and on WhatsApp another number is outside the 24-hour window the
person opened. Such a row never fails over: if its provider fails, it is retried later on the same provider, or
fails. Failover between providers is for the first message of a conversation (reminders, notices, staff SMS).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app

from app.messaging import inbox
from app.models import Contact, Message
from app.models.channel import SMS, WHATSAPP

WHATSAPP_WINDOW = timedelta(hours=24)

# Each WhatsApp provider's approved template for messages outside the 24-hour window.
TEMPLATE_SETTINGS = {"twilio": "TWILIO_WHATSAPP_CONTENT_SID", "whatsapp": "WHATSAPP_TEMPLATE_REMINDER"}


@dataclass(frozen=True)
class Plan:
    """How a claimed row goes out.

    Attributes:
        channel: the channel to send on (SMS when WhatsApp falls back).
        template: the WhatsApp template to send instead of free text, outside the 24-hour window.
        providers: the adapters to try, in order; empty when the provider a reply is pinned to is not configured.
        sender: our number to send from; None: each provider's configured one.
        pinned: the one provider a reply or follow-up must use (no failover), if any.
    """

    channel: str
    template: dict | None
    providers: list
    sender: str | None = None
    pinned: str | None = None


def _route(channel: str, pinned: str | None, our_address: str | None, senders: Callable[[str], list]) -> Plan:
    """Only ``pinned`` (from ``our_address``) for a reply or follow-up, every provider in order otherwise. A pinned
    provider that is not configured leaves none (the row fails), except with no provider configured at all, when
    the console sender stands in for every one (development)."""
    configured = senders(channel)
    if pinned is None:
        return Plan(channel, None, configured)
    chosen = [p for p in configured if p.name == pinned]
    if not chosen and all(p.name == "console" for p in configured):
        return Plan(channel, None, configured)
    return Plan(channel, None, chosen, sender=our_address if chosen else None, pinned=pinned)


def plan(message: Message, contact: Contact | None, text: str, senders: Callable[[str], list], now: datetime) -> Plan:
    """Which channel, template, providers and sender to use for a claimed row.

    WhatsApp inside the 24-hour window of the number the message would go from: free text (a message that pins
    nothing goes from the number the person last wrote to, the one whose window is open). Outside it: the providers
    that have an approved template send it (the text as its variable); with none, the message falls back to SMS,
    which pins nothing (the first message on that channel).

    Args:
        message: the claimed outbox row.
        contact: its contact, if any.
        senders: the configured adapters of a channel, in order (the console sender when there are none).
        now: the sender's clock.
    """
    pinned, our_address = message.pinned_provider, message.our_address
    if message.channel != WHATSAPP:
        return _route(message.channel, pinned, our_address, senders)
    last = inbox.latest_inbound(message.address, WHATSAPP, provider=pinned, our_address=our_address if pinned else None)
    opened = last.received_at if last else None
    if opened is None and pinned is None and contact is not None:
        opened = contact.last_whatsapp_inbound_at  # no inbound row kept: the contact's record of the window
    if opened is not None and now - opened < WHATSAPP_WINDOW:
        if pinned is not None or last is None:
            return _route(WHATSAPP, pinned, our_address, senders)
        # The first message of a conversation, as free text: only the number whose window is open can take it.
        windowed = _route(WHATSAPP, last.provider, last.our_address, senders)
        if windowed.providers:
            return Plan(WHATSAPP, None, windowed.providers, sender=windowed.sender)
    route = _route(WHATSAPP, pinned, our_address, senders)
    config = current_app.config
    with_template = [p for p in route.providers if config.get(TEMPLATE_SETTINGS.get(p.name, ""))]
    if with_template:
        template = {"language": message.language or "en", "variables": {"1": text}}
        return Plan(WHATSAPP, template, with_template, sender=route.sender, pinned=route.pinned)
    return _route(SMS, None, None, senders)
