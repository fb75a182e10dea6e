"""WhatsApp Cloud API (Meta): one webhook for messages and delivery statuses, and sends through the Graph API.

Webhooks (all on ``/webhooks/whatsapp``):

* ``GET``: the subscription handshake Meta makes once when the callback URL is saved in the App Dashboard
  (:meth:`WhatsAppChannel.verify_subscription`): ``hub.mode=subscribe`` plus ``hub.verify_token`` equal to
  ``WHATSAPP_VERIFY_TOKEN`` → 200 with ``hub.challenge`` as the whole ``text/plain`` body; anything else → 403.
* ``POST`` (kind ``inbound``): a JSON ``whatsapp_business_account`` notification signed with
  ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>``. One POST can batch several entries,
  changes, messages *and* statuses, so :meth:`WhatsAppChannel.parse` returns both.

Quirks worth knowing:

* Courier (RapidPro) answers 200 to a bad signature so Meta stops retrying; we answer 403 (the project's rule for
  every forged webhook) and store nothing. Meta retries non-2xx deliveries, which is what we want for a genuine
  delivery that failed only because of a misconfigured secret.
* ``from`` / ``wa_id`` are digits without ``+`` (they become ``+<digits>``). Users with a WhatsApp username may be
  identified only by a business-scoped user id (BSUID, ``US.1234``) in ``from_user_id``; that is kept as given.
* ``timestamp`` is a string of Unix seconds, sometimes milliseconds.
* The same message id can appear twice in one POST; it is returned once. Replays across POSTs are the webhook
  layer's job (the ``(provider, provider_id)`` key).
* Inbound media arrive as a media id (``Media.provider_media_id``): resolve it with ``GET /<version>/<media id>``
  and then download the returned URL, both with the Bearer token, within 5 minutes of resolving.
* Outside the 24-hour customer-service window only approved templates can be sent. Meta refuses free text with
  error 131047 (re-engagement), usually asynchronously in a ``failed`` status webhook (``error_code="131047"``),
  sometimes in the send response; :meth:`WhatsAppChannel.send` raises a non-retryable ``SendError`` with that code
  so the worker can fall back to a template or SMS.
* Template languages: Meta has no Setswana template language, so ``tn`` maps to ``en`` unless the template says
  which approved language to use (``template["language"]``: a Meta code such as ``en_US``, or a mapping from our
  language to a Meta code).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime

import requests
from flask import Request, Response

from app.messaging.envelopes import InboundMessage, Media, OutboundMessage, SendResult, StatusUpdate
from app.models.channel import WHATSAPP
from bots.channels import media as media_download
from bots.channels.base import Channel, MalformedPayload, ParsedWebhook, SendError, WebhookRejected, register
from bots.channels.media import MediaError

log = logging.getLogger(__name__)

GRAPH_API_BASE_URL = "https://graph.facebook.com"
DEFAULT_API_VERSION = "v21.0"
TIMEOUT_SECONDS = 10

MAX_TEXT_LENGTH = 4096  # free text body
MAX_INTERACTIVE_BODY_LENGTH = 1024  # interactive body and media caption
MAX_REPLY_BUTTONS = 3
MAX_BUTTON_TITLE_LENGTH = 20
MAX_BUTTON_ID_LENGTH = 256
MAX_ERROR_REASON_LENGTH = 300

# Send errors (Graph API ``error.code``). Throttling codes come from courier's handlers/meta/whatsapp/api.go.
THROTTLED_CODES = frozenset({4, 80007, 130429, 131048, 131056, 133016})
# 131053: media upload/download failed (often Meta failing to fetch our link). 2 and 131016: Meta's own
# "temporarily unavailable / overloaded" codes, normally with a 5xx but not guaranteed.
RETRYABLE_CODES = frozenset({2, 131016, 131053})
REENGAGEMENT_CODE = 131047  # outside the 24-hour window: only a template can go

MEDIA_TYPES = ("image", "video", "document", "audio", "voice", "sticker")
IGNORED_STATUSES = ("deleted",)  # courier ignores it; we still report it, unmapped

# Our language → the Meta template language code used when the template does not say.
TEMPLATE_LANGUAGES = {"en": "en", "tn": "en"}

_SIGNATURE_PREFIX = "sha256="
_SIGNATURE_LENGTH = len(_SIGNATURE_PREFIX) + 64
_WA_ID = re.compile(r"[0-9]{1,15}")
_BSUID = re.compile(r"[A-Z]{2}\.[A-Za-z0-9]{1,128}")
_DIGITS = re.compile(r"[0-9]+")
_TOKEN_LIKE = re.compile(r"EAA[A-Za-z0-9]{16,}")  # Meta access tokens start with EAA
# skin pipeline: media ids are digits in the Cloud API (letters, '_', '-' and '.' allowed for other shapes); the
# hosts Meta serves media URLs from (lookaside.fbsbx.com today).
_MEDIA_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")
MEDIA_HOSTS = ("fbsbx.com", "facebook.com", "fbcdn.net", "whatsapp.net")


@register
class WhatsAppChannel(Channel):
    """Meta's WhatsApp Cloud API: verifies and parses its webhooks, sends through ``/<phone number id>/messages``."""

    name = "whatsapp"
    sends = (WHATSAPP,)
    settings = ("WHATSAPP_TOKEN", "WHATSAPP_PHONE_NUMBER_ID")
    status_map = {"sent": "sent", "delivered": "delivered", "read": "read", "failed": "failed"}

    # --- webhook verification -------------------------------------------------------------------------------

    def verify_subscription(self, request: Request) -> Response:
        """Answer Meta's ``GET`` handshake when the callback URL is saved.

        Args:
            request: the ``GET`` request with ``hub.mode``, ``hub.verify_token`` and ``hub.challenge``.

        Returns:
            200 ``text/plain`` whose whole body is ``hub.challenge``.

        Raises:
            WebhookRejected: 403 when the mode is not ``subscribe``, the token differs from
                ``WHATSAPP_VERIFY_TOKEN``, or no verify token is configured.
        """
        expected = self.config.get("WHATSAPP_VERIFY_TOKEN") or ""
        if not expected:
            raise WebhookRejected("WHATSAPP_VERIFY_TOKEN is not set")
        mode = request.args.get("hub.mode", "")
        token = request.args.get("hub.verify_token", "")
        if mode != "subscribe" or not hmac.compare_digest(token.encode(), expected.encode()):
            raise WebhookRejected("WhatsApp subscription verification failed")
        response = Response(request.args.get("hub.challenge", ""), status=200, mimetype="text/plain")
        response.headers["X-Content-Type-Options"] = "nosniff"  # the body is caller-chosen text
        return response

    def verify(self, request: Request, kind: str) -> None:
        """Check ``X-Hub-Signature-256`` over the raw body with the app secret (``WHATSAPP_APP_SECRET``).

        Args:
            request: the webhook ``POST``.
            kind: only ``inbound`` (messages and statuses share the one webhook).

        Raises:
            WebhookRejected: 403 for a missing app secret or a missing, malformed or wrong signature; 404 for
                another kind.
        """
        if kind != "inbound":
            super().verify(request, kind)
        secret = self.config.get("WHATSAPP_APP_SECRET") or ""
        if not secret:
            raise WebhookRejected("WHATSAPP_APP_SECRET is not set")
        header = request.headers.get("X-Hub-Signature-256", "")
        if len(header) != _SIGNATURE_LENGTH or not header.startswith(_SIGNATURE_PREFIX):
            raise WebhookRejected("missing or malformed X-Hub-Signature-256")
        # The raw bytes, never re-serialised JSON: key order, spacing and \u escapes are part of what was signed.
        digest = hmac.new(secret.encode(), request.get_data(cache=True), hashlib.sha256).hexdigest()
        given = header[len(_SIGNATURE_PREFIX) :].lower()
        if not hmac.compare_digest(given.encode(), digest.encode()):
            raise WebhookRejected("X-Hub-Signature-256 does not match")

    # --- parsing --------------------------------------------------------------------------------------------

    def parse(self, request: Request, kind: str) -> ParsedWebhook:
        """Turn a verified notification into messages and status updates, walking every entry and change.

        Group messages, unsupported message types (``unsupported``, ``reaction``, ``contacts`` ...) and changes of
        other fields are skipped; errors Meta reports in the payload are logged at WARNING (codes and titles only).

        Args:
            request: the webhook ``POST`` (already verified).
            kind: ``inbound``.

        Returns:
            Messages (each message id once) and status updates (each ``(id, status)`` once).

        Raises:
            MalformedPayload: not JSON, not a ``whatsapp_business_account`` notification, a message or status
                without an id, a non-numeric timestamp, or a sender that is neither a phone number nor a BSUID.
        """
        if kind != "inbound":
            return super().parse(request, kind)
        try:
            payload = json.loads(request.get_data(cache=True))
        except ValueError:  # also UnicodeDecodeError
            raise MalformedPayload("WhatsApp webhook body is not JSON") from None
        if not isinstance(payload, dict) or payload.get("object") != "whatsapp_business_account":
            raise MalformedPayload("not a whatsapp_business_account notification")

        parsed = ParsedWebhook()
        seen_messages: set[str] = set()
        seen_statuses: set[tuple[str, str]] = set()
        for entry in _list(payload, "entry", "notification", required=True):
            for change in _list(_object(entry, "entry"), "changes", "entry"):
                change = _object(change, "change")
                field = change.get("field", "messages")
                if field != "messages":
                    log.debug("ignoring WhatsApp change of field %r", field)
                    continue
                value = change.get("value")
                if not isinstance(value, dict):
                    raise MalformedPayload("WhatsApp change without a value object")
                for message in self._messages(value, seen_messages):
                    parsed.messages.append(message)
                parsed.statuses.extend(self._statuses(value, seen_statuses))
                for error in _list(value, "errors", "value"):
                    _log_error("WhatsApp webhook error", error)
        return parsed

    def _messages(self, value: dict, seen: set[str]) -> list[InboundMessage]:
        metadata = value.get("metadata") if isinstance(value.get("metadata"), dict) else {}
        phone_number_id = _string(metadata.get("phone_number_id"))
        recipient = _business_number(metadata.get("display_phone_number")) or phone_number_id or None
        names: dict[str, str] = {}
        for contact in _list(value, "contacts", "value"):
            if not isinstance(contact, dict):
                continue
            profile = contact.get("profile") if isinstance(contact.get("profile"), dict) else {}
            name = _string(profile.get("name"))
            for key in ("wa_id", "user_id"):
                if name and _string(contact.get(key)):
                    names[contact[key]] = name

        messages = []
        for message in _list(value, "messages", "value"):
            message = _object(message, "message")
            message_id = _string(message.get("id"))
            if not message_id:
                raise MalformedPayload("WhatsApp message without an id")
            if message_id in seen:
                continue
            if message.get("group_id"):
                log.info("ignoring WhatsApp group message %s", message_id)
                continue
            received_at = _timestamp(message.get("timestamp"), message_id) or datetime.now(UTC)
            sender, user_id = _sender(message, message_id)
            for error in _list(message, "errors", "message"):
                _log_error(f"WhatsApp message {message_id} error", error)
            content = _content(message)
            if content is None:
                log.info("skipping WhatsApp message %s of unsupported type %r", message_id, message.get("type"))
                continue
            text, media, extra = content
            if phone_number_id:
                extra["phone_number_id"] = phone_number_id
            if user_id and user_id != sender:
                extra["user_id"] = user_id
            seen.add(message_id)
            messages.append(
                InboundMessage(
                    channel=WHATSAPP,
                    provider=self.name,
                    provider_id=message_id,
                    sender=sender,
                    text=text,
                    media=media,
                    recipient=recipient,
                    received_at=received_at,
                    sender_name=names.get(_string(message.get("from"))) or names.get(user_id or ""),
                    extra=extra,
                )
            )
        return messages

    def _statuses(self, value: dict, seen: set[tuple[str, str]]) -> list[StatusUpdate]:
        updates = []
        for status in _list(value, "statuses", "value"):
            status = _object(status, "status")
            provider_id = _string(status.get("id"))
            if not provider_id:
                raise MalformedPayload("WhatsApp status without a message id")
            raw = _string(status.get("status"))
            if (provider_id, raw) in seen:
                continue
            seen.add((provider_id, raw))
            normalised = self.map_status(raw)
            if normalised is None:
                level = logging.INFO if raw in IGNORED_STATUSES else logging.WARNING
                log.log(level, "unmapped WhatsApp status %r for %s", raw[:40], provider_id)
            errors = [error for error in _list(status, "errors", "status") if isinstance(error, dict)]
            code = errors[0].get("code") if errors else None
            updates.append(
                StatusUpdate(
                    provider=self.name,
                    provider_id=provider_id,
                    status=normalised,
                    raw_status=raw,
                    error_code=None if code is None else str(code),
                    at=_timestamp(status.get("timestamp"), provider_id),
                )
            )
        return updates

    # --- sending --------------------------------------------------------------------------------------------

    def send(self, message: OutboundMessage) -> SendResult:
        """Send one message with one ``POST /<version>/<phone number id>/messages`` (no retries here).

        Free text, an interactive message with up to 3 reply buttons (more buttons, or titles that collide once
        cut to 20 characters, become a numbered list in the text), an image with the text as caption (an image
        header when there are buttons), or, when ``message.template`` is set, an approved template with body
        parameters.

        Args:
            message: the outbound message; ``address`` is an E.164 number (or a BSUID).

        Returns:
            The result carrying Meta's ``wamid`` as ``provider_id``.

        Raises:
            SendError: retryable for timeouts, connection errors, HTTP 5xx and 429, Meta's throttling codes and
                131053; ``code="131047"`` (not retryable) outside the 24-hour window; not retryable for every other
                refusal, with Meta's code and title (never the token).
        """
        token = self.config.get("WHATSAPP_TOKEN") or ""
        phone_number_id = self.config.get("WHATSAPP_PHONE_NUMBER_ID") or ""
        if not token or not phone_number_id:
            raise SendError("WhatsApp Cloud API is not configured", retryable=False, code="not_configured")
        payload = self.build_payload(message)
        base = (self.config.get("WHATSAPP_API_BASE_URL") or GRAPH_API_BASE_URL).rstrip("/")
        version = str(self.config.get("WHATSAPP_API_VERSION") or DEFAULT_API_VERSION).strip("/")
        if not version.startswith("v"):
            version = f"v{version}"
        url = f"{base}/{version}/{phone_number_id}/messages"
        try:
            # requests.post makes exactly one attempt (its default adapter has max_retries=0).
            response = requests.post(
                url, json=payload, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT_SECONDS
            )
        except requests.Timeout:
            raise SendError("WhatsApp API timed out", retryable=True, code="timeout") from None
        except requests.ConnectionError:
            raise SendError("could not reach the WhatsApp API", retryable=True, code="connection") from None
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema):
            raise SendError("WHATSAPP_API_BASE_URL is not a usable URL", retryable=False, code="bad_url") from None
        except requests.RequestException as exc:
            raise SendError(f"WhatsApp request failed ({type(exc).__name__})", retryable=True, code="request") from None

        try:
            body = response.json()
        except ValueError:
            body = None
        if 200 <= response.status_code < 300:
            provider_id = _message_id(body)
            if provider_id is None:
                log.warning("WhatsApp accepted message %s without returning an id", message.id)
            else:
                log.info("WhatsApp accepted message %s as %s", message.id, provider_id)
            return SendResult(provider=self.name, provider_id=provider_id)
        raise self._send_error(message, response.status_code, body, token)

    def build_payload(self, message: OutboundMessage) -> dict:
        """The JSON body for ``/messages`` (no network).

        Raises:
            SendError: not retryable, for a message WhatsApp cannot take (empty, over 4096 characters, or a
                template without a name).
        """
        payload: dict = {"messaging_product": "whatsapp", "recipient_type": "individual"}
        address = message.address.removeprefix("whatsapp:")
        if _BSUID.fullmatch(address):
            # Users known only by a business-scoped user id are addressed with "recipient" instead of "to".
            payload["recipient"] = address
        else:
            payload["to"] = address.removeprefix("+")
        if message.template:
            payload["type"] = "template"
            payload["template"] = self._template(message)
            return payload

        text = message.text or ""
        buttons = message.buttons
        media_urls = message.media_urls
        if len(media_urls) > 1:
            log.warning("WhatsApp message %s: sending 1 of %d images", message.id, len(media_urls))
        if buttons and _buttons_fit(text, buttons):
            interactive: dict = {
                "type": "button",
                "body": {"text": text},
                "action": {
                    "buttons": [
                        {"type": "reply", "reply": {"id": button.id, "title": _button_title(button.title)}}
                        for button in buttons
                    ]
                },
            }
            if media_urls:
                interactive["header"] = {"type": "image", "image": {"link": media_urls[0]}}
            payload["type"] = "interactive"
            payload["interactive"] = interactive
            return payload
        if buttons:
            text = _numbered(text, buttons)
        if media_urls and len(text) <= MAX_INTERACTIVE_BODY_LENGTH:
            image = {"link": media_urls[0]}
            if text:
                image["caption"] = text
            payload["type"] = "image"
            payload["image"] = image
            return payload
        if media_urls:
            # A caption is limited to 1024 characters; the text matters more than the picture.
            log.warning("WhatsApp message %s: text too long for a caption, image not sent", message.id)
        if not text:
            raise SendError("nothing to send", retryable=False, code="empty_message")
        if len(text) > MAX_TEXT_LENGTH:
            raise SendError(
                f"WhatsApp text is limited to {MAX_TEXT_LENGTH} characters", retryable=False, code="too_long"
            )
        payload["type"] = "text"
        payload["text"] = {"body": text}
        return payload

    def _template(self, message: OutboundMessage) -> dict:
        template = message.template or {}
        name = template.get("name") or self.config.get("WHATSAPP_TEMPLATE_REMINDER")
        if not name:
            raise SendError("WhatsApp template without a name", retryable=False, code="template_missing")
        result: dict = {"name": name, "language": {"policy": "deterministic", "code": self._template_language(message)}}
        variables = template.get("variables") or ()
        if isinstance(variables, dict) and all(str(key).isdecimal() for key in variables):
            # {"1": ..., "2": ...} fills the positional {{1}}, {{2}} placeholders.
            variables = [variables[key] for key in sorted(variables, key=int)]
        if isinstance(variables, dict):
            # Templates created with named parameters ({{first_name}}) take parameter_name.
            parameters = [
                {"type": "text", "parameter_name": str(key), "text": _parameter_text(value)}
                for key, value in variables.items()
            ]
        else:
            parameters = [{"type": "text", "text": _parameter_text(value)} for value in variables]
        if parameters:
            result["components"] = [{"type": "body", "parameters": parameters}]
        return result

    def _template_language(self, message: OutboundMessage) -> str:
        ours = message.language or "en"
        configured = (message.template or {}).get("language")
        if isinstance(configured, dict):
            configured = configured.get(ours)
        if configured and isinstance(configured, str):
            # Our own language names are mapped too, so a template built with language="tn" still works.
            return TEMPLATE_LANGUAGES.get(configured, configured)
        return TEMPLATE_LANGUAGES.get(ours, "en")

    def _send_error(self, message: OutboundMessage, status: int, body: object, token: str) -> SendError:
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {}
        code = error.get("code") if isinstance(error.get("code"), int) else None
        code_text = str(code) if code is not None else f"http_{status}"
        reason = _string(error.get("message")) or _string(error.get("title")) or f"HTTP {status}"
        error_data = error.get("error_data") if isinstance(error.get("error_data"), dict) else {}
        details = _string(error_data.get("details"))
        if details and details not in reason:
            reason = f"{reason}: {details}"
        reason = _redact(reason, token)[:MAX_ERROR_REASON_LENGTH]
        log.warning("WhatsApp refused message %s: HTTP %s, code %s", message.id, status, code_text)
        text = f"WhatsApp API error {code_text}: {reason}"
        if code == REENGAGEMENT_CODE:
            return SendError(f"{text} (outside the 24-hour window: send a template)", retryable=False, code=code_text)
        if status == 429 or code in THROTTLED_CODES:
            return SendError(text, retryable=True, code=code_text)
        if code in RETRYABLE_CODES or status >= 500:
            return SendError(text, retryable=True, code=code_text)
        return SendError(text, retryable=False, code=code_text)

    # --- media (skin photos) ---------------------------------------------------------------------------------

    def fetch_media(self, media: Mapping, *, max_bytes: int) -> tuple[bytes, str | None]:
        """Download an inbound image: ``GET /<version>/<media id>`` for its short-lived URL, then that URL, both
        with the Bearer token. The token goes only to Meta's media hosts (or ``WHATSAPP_API_BASE_URL``'s origin).

        Raises:
            MediaError: an unknown or expired media id (Graph 400/404) is ``not_found``; a size over
                ``max_bytes`` (announced or streamed) ``too_large``; a URL on another host ``bad_host``; 429,
                Meta's throttling and media codes, 5xx, network failures and a sha256 mismatch are retryable.
        """
        token = self.config.get("WHATSAPP_TOKEN") or ""
        base = (self.config.get("WHATSAPP_API_BASE_URL") or GRAPH_API_BASE_URL).rstrip("/")
        headers = {"Authorization": f"Bearer {token}"}
        media_id = _string(media.get("provider_media_id"))
        expected_sha256, content_type, url = "", _string(media.get("content_type")) or None, _string(media.get("url"))
        if media_id:
            if not _MEDIA_ID.fullmatch(media_id):
                raise MediaError("whatsapp: not a media id", retryable=False, code="not_found")
            version = str(self.config.get("WHATSAPP_API_VERSION") or DEFAULT_API_VERSION).strip("/")
            version = version if version.startswith("v") else f"v{version}"
            response = media_download.request("GET", f"{base}/{version}/{media_id}", "whatsapp media lookup",
                                              headers=headers)  # fmt: skip
            try:
                body = response.json()
            except ValueError:
                body = None
            if response.status_code != 200:
                raise _media_error(response.status_code, body, token)
            body = body if isinstance(body, dict) else {}
            url = _string(body.get("url"))
            if not url:
                raise MediaError("whatsapp media lookup: the answer has no url", retryable=True, code="bad_answer")
            size = body.get("file_size")
            if isinstance(size, int | str) and str(size).isdigit() and int(size) > max_bytes:
                raise media_download.too_large("whatsapp media", int(size), max_bytes)
            expected_sha256 = _string(body.get("sha256")).lower()
            content_type = _string(body.get("mime_type")) or content_type
        if not url:
            raise MediaError("whatsapp: the attachment has neither a media id nor a URL", retryable=False,
                             code="not_found")  # fmt: skip

        def allowed(target: str) -> bool:
            return media_download.host_allowed(target, domains=MEDIA_HOSTS, base_url=base)

        if not allowed(url):
            raise MediaError("whatsapp media: the URL is not on a WhatsApp media host", retryable=False,
                             code="bad_host")  # fmt: skip
        data, served_type = media_download.download(url, "whatsapp media download", max_bytes=max_bytes,
                                                    headers=headers, allowed=allowed)  # fmt: skip
        # Meta documents a hex sha256; some payloads carry it base64-encoded: only a hex one can be compared.
        if re.fullmatch(r"[0-9a-f]{64}", expected_sha256) and hashlib.sha256(data).hexdigest() != expected_sha256:
            raise MediaError("whatsapp media download: sha256 differs from Meta's", retryable=True, code="checksum")
        return data, content_type or served_type


# --- helpers --------------------------------------------------------------------------------------------------


def _string(value: object) -> str:
    return value if isinstance(value, str) else ""


def _object(value: object, what: str) -> dict:
    if not isinstance(value, dict):
        raise MalformedPayload(f"WhatsApp {what} is not an object")
    return value


def _list(container: dict, key: str, what: str, *, required: bool = False) -> list:
    value = container.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise MalformedPayload(f"WhatsApp {what} has no {key} list")
    return value


def _timestamp(value: object, owner: str) -> datetime | None:
    """Unix seconds (a string, as Meta sends it, or an int); milliseconds accepted. Missing → None."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise MalformedPayload("invalid WhatsApp timestamp", {"id": owner})
    seconds = number / 1000 if number >= 1_000_000_000_000 else number
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise MalformedPayload("invalid WhatsApp timestamp", {"id": owner}) from None


def _sender(message: dict, message_id: str) -> tuple[str, str | None]:
    """The sender address (``+<wa_id>`` or a BSUID as given) and the message's valid BSUID, if any."""
    sender = _string(message.get("from"))
    user_id = _string(message.get("from_user_id"))
    user_id = user_id if _BSUID.fullmatch(user_id) else None
    if _WA_ID.fullmatch(sender):
        return f"+{sender}", user_id
    if _BSUID.fullmatch(sender):
        return sender, user_id
    if not sender and user_id:
        return user_id, user_id
    raise MalformedPayload("invalid WhatsApp sender id", {"id": message_id})


def _content(message: dict) -> tuple[str, tuple[Media, ...], dict] | None:
    """Text, media and extra facts for a supported message type; ``None`` for a type we skip."""
    kind = _string(message.get("type"))
    body = message.get(kind) if kind else None
    if not isinstance(body, dict):
        return None
    if kind == "text":
        return _string(body.get("body")), (), {}
    if kind in MEDIA_TYPES:
        media_id = _string(body.get("id"))
        url = _string(body.get("url"))
        if not media_id and not url:
            return None
        media = Media(content_type=_string(body.get("mime_type")) or None, url=url or None,
                      provider_media_id=media_id or None)  # fmt: skip
        return _string(body.get("caption")), (media,), {}
    if kind == "button":
        extra = {"button_payload": body["payload"]} if _string(body.get("payload")) else {}
        return _string(body.get("text")), (), extra
    if kind == "interactive":
        reply_kind = _string(body.get("type"))
        reply = body.get(reply_kind) if reply_kind else None
        if not isinstance(reply, dict):
            return None
        if reply_kind in ("button_reply", "list_reply"):
            extra = {"callback_data": reply["id"]} if _string(reply.get("id")) else {}
            return _string(reply.get("title")), (), extra
        if reply_kind == "nfm_reply":  # a WhatsApp Flow's answers
            try:
                answers = json.loads(_string(reply.get("response_json")) or "null")
            except ValueError:
                answers = None
            return _string(reply.get("body")), (), ({"flow_response": answers} if isinstance(answers, dict) else {})
        return None
    if kind == "location":
        latitude, longitude = body.get("latitude"), body.get("longitude")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (latitude, longitude)):
            return None
        return "", (), {"location": {"latitude": latitude, "longitude": longitude}}
    return None


def _business_number(display: object) -> str:
    """Meta's display number (``+250 788 123 200`` or ``15550783881``) as E.164."""
    digits = "".join(ch for ch in _string(display) if ch.isascii() and ch.isdigit())
    return f"+{digits}" if digits else ""


def _log_error(what: str, error: object) -> None:
    if isinstance(error, dict):
        log.warning("%s %s: %s", what, error.get("code"), _string(error.get("title"))[:200])


def _buttons_fit(text: str, buttons: tuple) -> bool:
    """True when the buttons can be WhatsApp reply buttons (else they become a numbered list)."""
    if not text or len(text) > MAX_INTERACTIVE_BODY_LENGTH or len(buttons) > MAX_REPLY_BUTTONS:
        return False
    if any(not button.id or len(button.id) > MAX_BUTTON_ID_LENGTH for button in buttons):
        return False
    titles = [_button_title(button.title) for button in buttons]
    ids = [button.id for button in buttons]
    # Meta rejects duplicate titles or ids within one message.
    return all(titles) and len(set(titles)) == len(titles) and len(set(ids)) == len(ids)


def _button_title(title: str) -> str:
    title = title.strip()
    return title if len(title) <= MAX_BUTTON_TITLE_LENGTH else title[: MAX_BUTTON_TITLE_LENGTH - 1] + "…"


def _numbered(text: str, buttons: tuple) -> str:
    options = "\n".join(f"{number}. {button.title}" for number, button in enumerate(buttons, start=1))
    return f"{text}\n\n{options}" if text else options


def _parameter_text(value: object) -> str:
    # Meta refuses template parameters with newlines, tabs or more than 4 consecutive spaces (error 100).
    text = re.sub(r"\s*[\r\n\t]+\s*", " ", str(value))
    return re.sub(r" {5,}", "    ", text)


def _message_id(body: object) -> str | None:
    messages = body.get("messages") if isinstance(body, dict) else None
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        return _string(messages[0].get("id")) or None
    return None


def _media_error(status: int, body: object, token: str) -> MediaError:
    """A Graph API refusal of a media lookup (skin pipeline)."""
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    code = error.get("code") if isinstance(error.get("code"), int) else None
    reason = _redact(_string(error.get("message")), token)[:MAX_ERROR_REASON_LENGTH]
    detail = f"code {code}: {reason}" if code is not None else reason
    if status == 429 or code in THROTTLED_CODES:
        return MediaError(f"whatsapp media lookup: rate limited ({detail})", retryable=True, code="rate_limited",
                          status=status)  # fmt: skip
    if status >= 500 or code in RETRYABLE_CODES:
        return MediaError(f"whatsapp media lookup: server error ({detail})", retryable=True, code="server_error",
                          status=status)  # fmt: skip
    if status == 400:  # Graph answers an unknown or expired media id with 400 code 100 ("does not exist")
        return MediaError(f"whatsapp media lookup: unknown or expired media id ({detail})", retryable=False,
                          code="not_found", status=400)  # fmt: skip
    return media_download.status_error("whatsapp media lookup", status, detail)


def _redact(text: str, token: str) -> str:
    if token:
        text = text.replace(token, "[redacted]")
    return _TOKEN_LIKE.sub("[redacted]", text)
