"""Twilio Programmable Messaging: SMS and WhatsApp through one account.

Webhooks (both form-encoded, both signed with ``X-Twilio-Signature``):

* ``POST /webhooks/twilio/sms`` (kind ``inbound``): a message from a person, SMS or WhatsApp. WhatsApp is told apart
  only by the ``whatsapp:`` prefix on ``From`` (one URL serves both). ``Body`` is absent on media-only messages;
  media come as ``NumMedia`` + ``MediaUrlN`` / ``MediaContentTypeN``; a tapped WhatsApp quick-reply sends
  ``ButtonText`` (its title) and ``ButtonPayload`` (its id).
* ``POST /webhooks/twilio/status`` (kind ``status``): the ``StatusCallback`` we pass on every send.
  ``MessageSid`` + ``MessageStatus`` (+ ``ErrorCode``). Twilio skips the callback for a message's first status and
  callbacks can arrive out of order; the caller never moves a status backwards.

Both are answered with an empty TwiML document (an empty non-XML 200 gives Twilio error 11200).

Vendor quirks handled here:

* The signature covers the exact public URL Twilio called (scheme, host, path, query string) plus every POST
  parameter, so behind a TLS-terminating proxy the URL is rebuilt from ``PUBLIC_BASE_URL`` (or the app's
  ``ProxyFix`` makes ``request`` show the public one). ``X-Forwarded-Path`` is not honoured: it is not a header
  ProxyFix vouches for.
* A WhatsApp sender may be a business-scoped user id (``US.1234``) instead of a number; it is kept as given.
* Outside WhatsApp's 24-hour window a free-text ``Body`` fails (error 63016): templates go as ``ContentSid`` +
  ``ContentVariables`` and no ``Body``.
* ``twilio.rest.Client`` has no base-URL option; ``TWILIO_API_BASE_URL`` overrides the api domain's ``base_url``,
  and the ``TWILIO_EDGE`` / ``TWILIO_REGION`` environment variables are then ignored (the client would otherwise
  rewrite the overridden host).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import quote

from flask import Request, Response
from twilio.request_validator import RequestValidator

from app.messaging.envelopes import InboundMessage, Media, OutboundMessage, SendResult, StatusUpdate
from app.models.channel import SMS, WHATSAPP
from bots.channels import media as media_download
from bots.channels.base import Channel, MalformedPayload, ParsedWebhook, SendError, WebhookRejected, register
from bots.channels.media import MediaError

if TYPE_CHECKING:
    from twilio.base.exceptions import TwilioRestException, TwilioServiceException
    from twilio.rest import Client

log = logging.getLogger(__name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
WHATSAPP_PREFIX = "whatsapp:"
STATUS_PATH = "/webhooks/twilio/status"

# Twilio error codes with a meaning of their own.
OPTED_OUT = "21610"  # "Attempt to send to unsubscribed recipient": the person replied STOP
INVALID_TO = ("21211", "21614", "21408")  # invalid number / not a mobile number / region not enabled
MAX_MEDIA = 10  # Twilio accepts at most 10 media per message
# A WhatsApp business-scoped user id ("US.1234"), sent as ExternalUserId and sometimes as From.
BSUID = re.compile(r"^[A-Za-z]{2}\.[A-Za-z0-9_-]+$")

# What werkzeug leaves unquoted in a path (WHATWG path-segment set, plus "%" for already-quoted input).
_PATH_SAFE = "!$&'()*+,/:;=@%"


# skin pipeline: where MediaUrlN may point (with credentials) and where Twilio redirects media downloads to.
TWILIO_API_HOSTS = ("api.twilio.com",)
TWILIO_MEDIA_HOSTS = ("twiliocdn.com", "twilio.com")
TWILIO_S3_HOSTS = ("s3-external-1.amazonaws.com", "s3.amazonaws.com")
TWILIO_S3_PATH = "/media.twiliocdn.com/"


def _strip_whatsapp(address: str | None) -> str | None:
    if address is None:
        return None
    address = address.strip()
    return address[len(WHATSAPP_PREFIX) :] if address.lower().startswith(WHATSAPP_PREFIX) else address


@register
class TwilioChannel(Channel):
    """Twilio SMS and WhatsApp: verifies and parses Twilio's webhooks, sends through ``twilio.rest.Client``."""

    name = "twilio"
    sends = (SMS, WHATSAPP)
    settings = ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN")
    # Twilio MessageStatus → normalised status. Our "sent" means "the provider accepted it", so every state before
    # the carrier confirms (accepted/scheduled/queued/sending by a Messaging Service or Twilio itself) is "sent".
    # partially_delivered (some segments arrived) counts as delivered: the person got the message, and "failed"
    # would make the worker resend it. canceled (a scheduled message we cancelled) never reached anyone: failed.
    # receiving/received describe inbound messages and are deliberately left unknown (None).
    status_map: ClassVar[dict[str, str]] = {
        "accepted": "sent",
        "scheduled": "sent",
        "queued": "sent",
        "sending": "sent",
        "sent": "sent",
        "delivered": "delivered",
        "partially_delivered": "delivered",
        "read": "read",
        "failed": "failed",
        "undelivered": "failed",
        "canceled": "failed",
    }
    # Bounded wait for one API call (connect and read); the worker owns retries.
    timeout_seconds: ClassVar[float] = 10.0

    def __init__(self, config: Mapping) -> None:
        super().__init__(config)
        self._client: Client | None = None

    @classmethod
    def is_configured_for(cls, channel: str, config: Mapping) -> bool:
        """True when the account is set and so is the sender for ``channel`` (``TWILIO_FROM`` for SMS,
        ``TWILIO_WHATSAPP_FROM`` for WhatsApp)."""
        sender_setting = {SMS: "TWILIO_FROM", WHATSAPP: "TWILIO_WHATSAPP_FROM"}.get(channel)
        return bool(sender_setting and cls.is_configured(config) and config.get(sender_setting))

    # --- inbound --------------------------------------------------------------------------------------------

    def verify(self, request: Request, kind: str) -> None:
        """Check ``X-Twilio-Signature`` (and ``AccountSid``) on an inbound or status webhook.

        The signed URL is ``PUBLIC_BASE_URL`` + path + query string when ``PUBLIC_BASE_URL`` is set, else the URL
        the request shows (public when the app runs behind ``ProxyFix``).

        Args:
            request: the Flask request.
            kind: ``inbound`` or ``status``.

        Raises:
            WebhookRejected: 404 for another kind; 403 when the auth token is not configured, the signature is
                missing or wrong, or the request names another account.
        """
        if kind not in ("inbound", "status"):
            raise WebhookRejected(f"twilio does not accept {kind} webhooks", status=404)
        token = self.config.get("TWILIO_AUTH_TOKEN")
        if not token:
            raise WebhookRejected("twilio auth token is not configured", status=403)
        signature = request.headers.get("X-Twilio-Signature", "")
        if not signature:
            raise WebhookRejected("missing X-Twilio-Signature", status=403)
        # A GET webhook carries its parameters in the URL, which is already signed as a whole.
        params = request.form if request.method == "POST" else {}
        if not RequestValidator(token).validate(self._signed_url(request), params, signature):
            raise WebhookRejected("invalid X-Twilio-Signature", status=403)
        account = request.values.get("AccountSid")
        expected = self.config.get("TWILIO_ACCOUNT_SID")
        if account and expected and account != expected:
            raise WebhookRejected("webhook for another Twilio account", status=403)

    def _signed_url(self, request: Request) -> str:
        base = (self.config.get("PUBLIC_BASE_URL") or request.root_url).rstrip("/")
        url = base + quote(request.path, safe=_PATH_SAFE)
        # The raw query string, as Twilio signed it (werkzeug's full_path would add a bare "?" when there is none).
        if request.query_string:
            url += "?" + request.query_string.decode("utf-8", "replace")
        return url

    def parse(self, request: Request, kind: str) -> ParsedWebhook:
        """Turn a verified Twilio webhook into an inbound message or a status update.

        Args:
            request: the Flask request (form-encoded).
            kind: ``inbound`` (``/webhooks/twilio/sms``) or ``status`` (``/webhooks/twilio/status``).

        Returns:
            One :class:`InboundMessage`, one :class:`StatusUpdate`, or nothing for a status callback without
            ``MessageSid`` / ``MessageStatus`` (acknowledged so Twilio does not retry it).

        Raises:
            MalformedPayload: an inbound message without ``MessageSid`` or ``From``.
        """
        form = request.form
        if kind == "status":
            return self._parse_status(form)
        if kind != "inbound":
            raise MalformedPayload(f"twilio does not accept {kind} webhooks")
        missing = [key for key in ("MessageSid", "From") if not (form.get(key) or "").strip()]
        if missing:
            raise MalformedPayload(f"missing required field(s): {', '.join(missing)}", {"missing": missing})
        raw_from = form["From"].strip()
        is_whatsapp = raw_from.lower().startswith(WHATSAPP_PREFIX)
        text = form.get("Body", "")
        extra: dict = {}
        if is_whatsapp:
            # A tapped quick-reply: its title is what the person "said", its payload is our button id.
            if form.get("ButtonText"):
                text = form["ButtonText"]
            if form.get("ButtonPayload"):
                extra["callback_data"] = form["ButtonPayload"]
            external_id = _strip_whatsapp(form.get("ExternalUserId"))
            if external_id and BSUID.match(external_id):
                extra["external_user_id"] = external_id
        message = InboundMessage(
            channel=WHATSAPP if is_whatsapp else SMS,
            provider=self.name,
            provider_id=form["MessageSid"].strip(),
            sender=_strip_whatsapp(raw_from),
            text=text,
            media=self._media(form),
            recipient=_strip_whatsapp(form.get("To")) or None,
            received_at=datetime.now(UTC),  # Twilio's inbound webhook carries no timestamp
            sender_name=form.get("ProfileName") or None,
            extra=extra,
        )
        return ParsedWebhook(messages=[message])

    @staticmethod
    def _media(form: Mapping) -> tuple[Media, ...]:
        try:
            count = int(form.get("NumMedia") or 0)
        except ValueError:
            count = MAX_MEDIA  # unreadable count: take whatever MediaUrlN are there
        media = []
        for index in range(min(max(count, 0), MAX_MEDIA)):
            url = form.get(f"MediaUrl{index}")
            if url:
                media.append(Media(content_type=form.get(f"MediaContentType{index}") or None, url=url))
        return tuple(media)

    def _parse_status(self, form: Mapping) -> ParsedWebhook:
        sid = (form.get("MessageSid") or "").strip()
        raw = (form.get("MessageStatus") or "").strip()
        if not sid or not raw:
            return ParsedWebhook()
        error_code = (form.get("ErrorCode") or "").strip() or None
        update = StatusUpdate(
            provider=self.name,
            provider_id=sid,
            status=self.map_status(raw.lower()),
            raw_status=raw,
            error_code=error_code,
            opted_out=error_code == OPTED_OUT,
        )
        return ParsedWebhook(statuses=[update])

    def acknowledge(self, kind: str) -> Response:
        """An empty TwiML document: 200 ``text/xml``, no reply sent by Twilio."""
        return Response(EMPTY_TWIML, status=200, mimetype="text/xml")

    # --- outbound -------------------------------------------------------------------------------------------

    def _rest_client(self) -> Client:
        if self._client is None:
            # twilio.rest and requests load here, on the first send (a worker): webhooks need the validator only.
            from twilio.http.http_client import TwilioHttpClient
            from twilio.rest import Client

            # max_retries=0: one attempt per call, the worker decides about retries and failover.
            http_client = TwilioHttpClient(timeout=self.timeout_seconds, max_retries=0)
            client = Client(self.config.get("TWILIO_ACCOUNT_SID"), self.config.get("TWILIO_AUTH_TOKEN"),
                            http_client=http_client)  # fmt: skip
            base_url = self.config.get("TWILIO_API_BASE_URL")
            if base_url:
                client.api.base_url = base_url.rstrip("/")
                # TWILIO_EDGE / TWILIO_REGION in the environment would rewrite the overridden host.
                client.edge = client.region = None
            self._client = client
        return self._client

    def _params(self, message: OutboundMessage) -> dict:
        text = message.text
        if message.buttons:
            # Twilio free-form messages carry no buttons: offer numbered choices instead.
            choices = "\n".join(f"{number}. {button.title}" for number, button in enumerate(message.buttons, 1))
            text = f"{text}\n{choices}" if text else choices
        if message.channel == SMS:
            sender = message.sender or self.config.get("TWILIO_FROM")
            if not sender:
                raise SendError("TWILIO_FROM is not set", retryable=False, code="not_configured")
            # MMS does not exist in our countries: SMS carries the text only.
            params = {"to": message.address, "from_": sender, "body": text}
        else:
            sender = _strip_whatsapp(message.sender or self.config.get("TWILIO_WHATSAPP_FROM"))
            if not sender:
                raise SendError("TWILIO_WHATSAPP_FROM is not set", retryable=False, code="not_configured")
            params = {"to": WHATSAPP_PREFIX + _strip_whatsapp(message.address), "from_": WHATSAPP_PREFIX + sender}
            if message.template is not None:
                content_sid = self.config.get("TWILIO_WHATSAPP_CONTENT_SID")
                if not content_sid:
                    raise SendError("no approved WhatsApp template (TWILIO_WHATSAPP_CONTENT_SID)", retryable=False,
                                    code="template_not_configured")  # fmt: skip
                # Outside the 24-hour window a Body fails with 63016: the template goes alone.
                params["content_sid"] = content_sid
                params["content_variables"] = json.dumps(_content_variables(message.template.get("variables")))
            else:
                params["body"] = text
                if message.media_urls:
                    params["media_url"] = list(message.media_urls)
        public = self.config.get("PUBLIC_BASE_URL")
        if public:
            params["status_callback"] = public.rstrip("/") + STATUS_PATH
        return params

    def send(self, message: OutboundMessage) -> SendResult:
        """Send one SMS or WhatsApp message through Twilio: one attempt, no client-side retries.

        Args:
            message: the message; ``message.template`` (WhatsApp outside the 24-hour window) sends the approved
                ``TWILIO_WHATSAPP_CONTENT_SID`` template with its variables instead of the text.

        Returns:
            The Twilio message sid (``SM…``) as ``provider_id``.

        Raises:
            SendError: retryable for connect timeouts, connection errors, HTTP 429 and 5xx; ``maybe_sent`` for a
                read timeout (the request went out) and an unreadable answer; ``opted_out`` for error 21610;
                permanent (with Twilio's code) for invalid numbers and every other refusal.
        """
        if message.channel not in self.sends:
            raise SendError(f"twilio cannot send {message.channel}", retryable=False, code="unsupported_channel")
        import requests  # with the SDK, on the first send only: see _rest_client()
        from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException

        params = self._params(message)
        try:
            created = self._rest_client().messages.create(**params)
        except (TwilioRestException, TwilioServiceException) as exc:
            raise _classify(exc, message) from None
        except requests.ReadTimeout:
            # The request went out and no answer came in time: Twilio may have taken it, so it must not go again.
            log.warning("twilio %s message %s: no answer in time; it may have been sent", message.channel, message.id)
            raise SendError("Twilio did not answer in time; it may have sent the message", code="read_timeout",
                            maybe_sent=True) from None  # fmt: skip
        except requests.RequestException as exc:
            # Connection refused, connect timeouts, DNS: nothing reached Twilio.
            log.warning("twilio %s message %s: not sent (%s)", message.channel, message.id, exc.__class__.__name__)
            raise SendError(f"Twilio unreachable ({exc.__class__.__name__})", retryable=True) from None
        except (TwilioException, ValueError) as exc:
            # A 2xx whose body is not Twilio's JSON: Twilio may have accepted it, so it must not go again.
            log.warning("twilio %s message %s: unreadable answer (%s)", message.channel, message.id,
                        exc.__class__.__name__)  # fmt: skip
            raise SendError(
                f"unreadable answer from Twilio ({exc.__class__.__name__})", code="bad_response", maybe_sent=True
            ) from None
        if not created.sid:
            log.warning("twilio %s message %s: accepted without a sid", message.channel, message.id)
        log.info("twilio %s message %s accepted as %s", message.channel, message.id, created.sid)
        return SendResult(provider=self.name, provider_id=created.sid)

    # --- media (skin photos) ---------------------------------------------------------------------------------

    def fetch_media(self, media: Mapping, *, max_bytes: int) -> tuple[bytes, str | None]:
        """Download a ``MediaUrlN`` with HTTP Basic auth (account SID + auth token), as Twilio's "enforce HTTP
        auth on media URLs" setting requires.

        Only a URL on Twilio's API host (or ``TWILIO_API_BASE_URL``'s origin) is fetched, and the credentials go
        only there: Twilio answers with a redirect to its media CDN, which is followed (to Twilio hosts only)
        without them.

        Raises:
            MediaError: ``bad_host`` for any other URL or redirect; 404 ``not_found``; too big ``too_large``;
                429, 5xx and network failures retryable.
        """
        url = media.get("url") or ""
        if not url:
            raise MediaError("twilio: the attachment has no MediaUrl", retryable=False, code="not_found")
        base = (self.config.get("TWILIO_API_BASE_URL") or "").rstrip("/") or None

        def api_url(target: str) -> bool:
            return media_download.host_allowed(target, domains=TWILIO_API_HOSTS, base_url=base)

        def allowed(target: str) -> bool:
            return (
                api_url(target)
                or media_download.host_allowed(target, domains=TWILIO_MEDIA_HOSTS)
                or (
                    media_download.host_allowed(target, domains=TWILIO_S3_HOSTS)
                    and media_download.path(target).startswith(TWILIO_S3_PATH)
                )
            )

        if not api_url(url):
            raise MediaError("twilio media: the URL is not on Twilio's API host", retryable=False, code="bad_host")
        auth = (self.config.get("TWILIO_ACCOUNT_SID") or "", self.config.get("TWILIO_AUTH_TOKEN") or "")
        data, served_type = media_download.download(url, "twilio media download", max_bytes=max_bytes, auth=auth,
                                                    allowed=allowed, auth_for=api_url)  # fmt: skip
        return data, served_type or media.get("content_type") or None


def _content_variables(variables) -> dict[str, str]:
    """Twilio's ContentVariables object: ``{"1": "Mpho", ...}``; a list becomes numbered placeholders."""
    if not variables:
        return {}
    if isinstance(variables, Mapping):
        return {str(key): str(value) for key, value in variables.items()}
    return {str(number): str(value) for number, value in enumerate(variables, 1)}


def _classify(exc: TwilioRestException | TwilioServiceException, message: OutboundMessage) -> SendError:
    status = int(exc.status or 0)
    code = str(exc.code) if exc.code is not None else None
    log.warning("twilio %s message %s refused: HTTP %s code %s", message.channel, message.id, status, code)
    if code == OPTED_OUT:
        return SendError("recipient opted out (Twilio 21610)", retryable=False, code=code, opted_out=True)
    if status == 429 or status >= 500:
        return SendError(f"Twilio busy or failing (HTTP {status}, code {code})", retryable=True, code=code)
    reason = "invalid recipient number" if code in INVALID_TO else "refused"
    return SendError(f"Twilio {reason} (HTTP {status}, code {code})", retryable=False, code=code)
