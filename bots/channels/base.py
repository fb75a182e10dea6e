"""The small base class every provider adapter implements, and the registry that finds them by name.

An adapter keeps together everything about one provider: checking a webhook is authentic, parsing its payload
into :mod:`app.messaging.envelopes` objects, the table mapping its delivery statuses, and sending through its client
library. Adapters import no service and never touch the database.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from flask import Request, Response

from app.messaging.envelopes import InboundMessage, OutboundMessage, SendResult, StatusUpdate

REGISTRY: dict[str, type[Channel]] = {}


class SendError(Exception):
    """A send failed.

    Attributes:
        retryable: a connect timeout, a refused connection, a 5xx or a 429: nothing was taken, so trying again (or
            another provider) can help.
        code: the provider's error code, if any.
        opted_out: the provider says the recipient has opted out (e.g. Twilio 21610): never retry, opt them out.
        maybe_sent: the request reached the provider but its answer did not (a read timeout) or cannot be read: it
            may have accepted the message, so it must never be sent again; the worker marks it ``unknown`` for a
            person to check.
    """

    def __init__(self, message: str, *, retryable: bool = True, code: str | None = None, opted_out: bool = False,
                 maybe_sent: bool = False):  # fmt: skip
        super().__init__(message)
        self.retryable = retryable and not opted_out and not maybe_sent
        self.code = code
        self.opted_out = opted_out
        self.maybe_sent = maybe_sent


class WebhookRejected(Exception):
    """The request failed the authenticity check: answer ``status`` (403, or 404 for a wrong path token) and
    store nothing."""

    def __init__(self, reason: str, status: int = 403) -> None:
        super().__init__(reason)
        self.status = status


class MalformedPayload(Exception):
    """The payload is authentic but cannot be read: answer 400 with this reason."""

    def __init__(self, reason: str, details: dict | None = None) -> None:
        super().__init__(reason)
        self.details = details or {}


class MediaError(Exception):
    """An attachment could not be downloaded.

    Attributes:
        retryable: a timeout, a connection error, a 5xx or a 429: trying again later can help. Not retryable: not
            found or expired (404/410, a wrong media id), too big, a refused host, a provider that is not
            configured, an authentication failure.
        code: ``not_found``, ``too_large``, ``server_error``, ``rate_limited``, ``network``, ``refused``,
            ``bad_host``, ``not_configured``, ``bad_answer`` or ``checksum``.
        status: the HTTP status that caused it, if any.
    """

    def __init__(self, message: str, *, retryable: bool, code: str, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code
        self.status = status


@dataclass
class ParsedWebhook:
    """What one webhook request carried: messages from people and delivery reports (either may be empty)."""

    messages: list[InboundMessage] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)


class Channel(ABC):  # noqa: B024 (no method is abstract: an adapter implements the kinds it serves)
    """A provider adapter.

    Class attributes:
        name: registry key, also stored as ``messages.provider``.
        sends: the message channels this provider can send on (``("sms", "whatsapp")``).
        settings: config keys that must all be set for the adapter to be enabled.
        status_map: provider status word → normalised status (``sent``, ``delivered``, ``read``, ``failed``).
    """

    name: ClassVar[str] = ""
    sends: ClassVar[tuple[str, ...]] = ()
    settings: ClassVar[tuple[str, ...]] = ()
    status_map: ClassVar[dict[str, str]] = {}

    def __init__(self, config: Mapping) -> None:
        self.config = config

    @classmethod
    def is_configured(cls, config: Mapping) -> bool:
        """True when every setting the adapter needs is set."""
        return all(config.get(key) for key in cls.settings)

    @classmethod
    def is_configured_for(cls, channel: str, config: Mapping) -> bool:
        """True when the adapter can send on ``channel`` (e.g. Twilio WhatsApp also needs a WhatsApp sender)."""
        return cls.is_configured(config)

    def map_status(self, raw: str) -> str | None:
        """The normalised status for a provider's word, or ``None`` when unknown."""
        return self.status_map.get(raw)

    # --- inbound --------------------------------------------------------------------------------------------

    def verify(self, request: Request, kind: str) -> None:
        """Check the request is really from the provider.

        Args:
            request: the Flask request (raw body still available through ``request.get_data()``).
            kind: which webhook (``inbound``, ``status``, ``ussd``).

        Raises:
            WebhookRejected: forged, unsigned or wrong token. Nothing will be stored.
        """
        raise WebhookRejected(f"{self.name} does not accept {kind} webhooks", status=404)

    def parse(self, request: Request, kind: str) -> ParsedWebhook:
        """Turn a verified webhook into messages and status updates.

        Raises:
            MalformedPayload: required fields missing or unreadable.
        """
        raise MalformedPayload(f"{self.name} does not accept {kind} webhooks")

    def acknowledge(self, kind: str) -> Response:
        """The success answer the provider expects (an empty 200 unless the provider wants something else)."""
        return Response(status=200)

    def ussd_response(self, text: str, *, end: bool) -> Response:
        """Render a USSD screen into the HTTP answer (providers that carry USSD only)."""
        raise NotImplementedError(f"{self.name} carries no USSD")

    # --- outbound -------------------------------------------------------------------------------------------

    def send(self, message: OutboundMessage) -> SendResult:
        """Hand ``message`` to the provider.

        Raises:
            SendError: the provider refused or could not be reached.
        """
        raise SendError(f"{self.name} cannot send", retryable=False)

    # --- media ----------------------------------------------------------------------------------------------

    def fetch_media(self, media: Mapping, *, max_bytes: int) -> tuple[bytes, str | None]:
        """Download one attachment (a ``Message.media`` item) through this provider, at most ``max_bytes``.

        Use :func:`bots.channels.media.fetch_media`, which picks the adapter (or the console store).

        Raises:
            MediaError: ``retryable`` for network trouble, 5xx and 429; not for 404/expired, too big, bad host.
        """
        raise MediaError(f"{self.name} carries no media", retryable=False, code="not_configured")


def register(cls: type[Channel]) -> type[Channel]:
    """Class decorator: make a channel adapter findable by its ``name``."""
    REGISTRY[cls.name] = cls
    return cls
