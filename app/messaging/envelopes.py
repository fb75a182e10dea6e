"""Normalised envelopes: what the engine, the outbox and the sender see instead of any vendor's payload.

Channel adapters (``bots/channels/``) turn provider webhooks into :class:`InboundMessage` and
:class:`StatusUpdate`, and turn :class:`OutboundMessage` into provider calls. Nothing past the adapters ever
reads vendor JSON or form fields. Channel names are :class:`app.models.channel.MessageChannel`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime

# USSD session events.
SESSION_NEW = "new"  # first hop of a USSD session (AT sends text="")
SESSION_RESUME = "resume"  # a later hop
SESSION_CLOSE = "close"  # the session ended (end-of-session notification)


@dataclass(frozen=True)
class Media:
    """One attachment: a URL to fetch (Twilio), or a provider media id to resolve first (Telegram, WhatsApp)."""

    content_type: str | None = None
    url: str | None = None
    provider_media_id: str | None = None


@dataclass(frozen=True)
class InboundMessage:
    """A message from a person, as every channel adapter reports it.

    Attributes:
        channel: ``sms``, ``whatsapp``, ``telegram`` or ``ussd``.
        provider: the adapter's name (``twilio``, ``africastalking``, ``telegram``, ``whatsapp`` ...).
        provider_id: the provider's id for this message (the idempotency key with ``provider``).
        sender: E.164 number (``+26771234567``) or, on Telegram, the chat id.
        text: what the person typed ('' when only media came), as it is stored: a mask where it may be a secret.
        media: attachments, largest size only.
        recipient: our number / short code / bot the message went to, when the provider says, as the provider's
            send API names it (WhatsApp Cloud: the phone number id): a reply is sent from it.
        session_event: for USSD, ``new`` / ``resume`` / ``close``; otherwise ``None``.
        session_id: the USSD session id.
        received_at: when the provider says it was sent, else when we received it (UTC).
        sender_name: a display name the provider gave (WhatsApp profile, Telegram first name).
        extra: small provider facts the flows may need (``service_code``, ``network_code``, ``callback_data``,
            ``ussd_history``); never the raw payload. Storage keeps only a few named keys (never the USSD history,
            which holds every input of the session, a staff PIN among them).
        private_text: what the person typed when ``text`` was masked for storage (a staff PIN): handed to the
            flows in memory, never stored, never in the repr (see :meth:`masked`).
    """

    channel: str
    provider: str
    provider_id: str
    sender: str
    text: str = ""
    media: tuple[Media, ...] = ()
    recipient: str | None = None
    session_event: str | None = None
    session_id: str | None = None
    received_at: datetime | None = None
    sender_name: str | None = None
    extra: dict = field(default_factory=dict, repr=False)  # a USSD history holds every input, a PIN among them
    private_text: str | None = field(default=None, repr=False)

    @property
    def typed(self) -> str:
        """What the person typed, masked or not: for the flows, never for storage (that is ``text``)."""
        return self.text if self.private_text is None else self.private_text

    def masked(self, mask: str) -> InboundMessage:
        """This message as it may be stored: ``text`` replaced by ``mask``, the real input kept in memory only."""
        return replace(self, text=mask, private_text=self.typed)


@dataclass(frozen=True)
class StatusUpdate:
    """A delivery report for a message we sent.

    Attributes:
        provider: the adapter's name.
        provider_id: the provider's id of our outbound message.
        status: normalised status (``sent``, ``delivered``, ``read``, ``failed``), or ``None`` for a value the
            adapter does not know (kept raw, never an error).
        raw_status: the provider's own word.
        error_code: the provider's error code, if any (e.g. Twilio ``21610`` = the recipient sent STOP).
        at: when the provider says it happened.
        opted_out: the provider says the recipient has opted out.
    """

    provider: str
    provider_id: str
    status: str | None
    raw_status: str
    error_code: str | None = None
    at: datetime | None = None
    opted_out: bool = False


@dataclass(frozen=True)
class Button:
    """A quick-reply choice: Telegram inline keyboard, WhatsApp interactive button, numbered text elsewhere."""

    id: str
    title: str


@dataclass(frozen=True)
class OutboundMessage:
    """A message to send, as a channel adapter's ``send`` receives it.

    Attributes:
        id: the outbox row's id (adapters put it in status-callback URLs where the provider allows).
        channel: the message channel to use.
        address: E.164 number or chat id.
        text: the body, already translated.
        language: ``en`` or ``tn``.
        buttons: quick replies (chat channels).
        media_urls: images to attach.
        template: outside WhatsApp's 24-hour window: the approved template to use instead of free text
            (``{"name": ..., "variables": [...]}``); ``None`` inside the window.
        sender: our number, short code or WhatsApp phone number id to send from (a reply goes out from where the
            person wrote to); ``None``: the provider's configured sender.
    """

    id: uuid.UUID
    channel: str
    address: str
    text: str
    language: str | None = None
    buttons: tuple[Button, ...] = ()
    media_urls: tuple[str, ...] = ()
    template: dict | None = None
    sender: str | None = None


@dataclass(frozen=True)
class SendResult:
    """What a provider answered when it accepted a message: its id (for delivery reports)."""

    provider: str
    provider_id: str | None
