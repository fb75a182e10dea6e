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
* Inbound media arrive as a media id (``Media.provider_media_id``): resolve it with ``GET /<version>/<media id>``
  and then download the returned URL, both with the Bearer token, within 5 minutes of resolving.
* Outside the 24-hour customer-service window only approved templates can be sent. Meta refuses free text with
  error 131047 (re-engagement), usually asynchronously in a ``failed`` status webhook (``error_code="131047"``),
  sometimes in the send response; :meth:`WhatsAppChannel.send` raises a non-retryable ``SendError`` with that code
  so the worker can fall back to a template or SMS.

Reading the notifications is :mod:`bots.channels.whatsapp_webhook` (with their quirks: sender ids, timestamps,
repeated ids); building the JSON of a send, and the template languages, :mod:`bots.channels.whatsapp_payloads`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Mapping

from flask import Request, Response

from app.messaging.envelopes import OutboundMessage, SendResult
from app.models.channel import WHATSAPP
from bots.channels import media as media_download
from bots.channels.base import Channel, MediaError, ParsedWebhook, SendError, WebhookRejected, register
from bots.channels.whatsapp_payloads import build_payload
from bots.channels.whatsapp_webhook import parse_notification, string

log = logging.getLogger(__name__)

GRAPH_API_BASE_URL = "https://graph.facebook.com"
DEFAULT_API_VERSION = "v21.0"
TIMEOUT_SECONDS = 10

MAX_ERROR_REASON_LENGTH = 300

# Send errors (Graph API ``error.code``). Throttling codes come from courier's handlers/meta/whatsapp/api.go.
THROTTLED_CODES = frozenset({4, 80007, 130429, 131048, 131056, 133016})
# 131053: media upload/download failed (often Meta failing to fetch our link). 2 and 131016: Meta's own
# "temporarily unavailable / overloaded" codes, normally with a 5xx but not guaranteed.
RETRYABLE_CODES = frozenset({2, 131016, 131053})
REENGAGEMENT_CODE = 131047  # outside the 24-hour window: only a template can go

_SIGNATURE_PREFIX = "sha256="
_SIGNATURE_LENGTH = len(_SIGNATURE_PREFIX) + 64
_TOKEN_LIKE = re.compile(r"EAA[A-Za-z0-9]{16,}")  # Meta access tokens start with EAA
# skin pipeline: media ids are digits in the Cloud API (letters, '_', '-' and '.' allowed for other shapes); the
# hosts Meta serves media URLs from (lookaside.fbsbx.com today).
_MEDIA_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_PHONE_NUMBER_ID = re.compile(r"[0-9]{1,32}")
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
        return parse_notification(request.get_data(cache=True), self.name, self.map_status)

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
            SendError: retryable for connect timeouts, connection errors, HTTP 5xx and 429, Meta's throttling codes
                and 131053; ``maybe_sent`` for a read timeout (the request went out); ``code="131047"`` (not
                retryable) outside the 24-hour window; not retryable for every other refusal, with Meta's code and
                title (never the token).
        """
        token = self.config.get("WHATSAPP_TOKEN") or ""
        # A reply goes from the number the person wrote to: its phone number id, from the signed webhook (a display
        # number, kept when Meta sent no id, cannot address the API).
        own = message.sender if message.sender and _PHONE_NUMBER_ID.fullmatch(message.sender) else None
        phone_number_id = own or self.config.get("WHATSAPP_PHONE_NUMBER_ID") or ""
        if not token or not phone_number_id:
            raise SendError("WhatsApp Cloud API is not configured", retryable=False, code="not_configured")
        payload = self.build_payload(message)
        base = (self.config.get("WHATSAPP_API_BASE_URL") or GRAPH_API_BASE_URL).rstrip("/")
        version = str(self.config.get("WHATSAPP_API_VERSION") or DEFAULT_API_VERSION).strip("/")
        if not version.startswith("v"):
            version = f"v{version}"
        url = f"{base}/{version}/{phone_number_id}/messages"
        import requests  # ~3 MB with its dependencies: loaded by the first send (a worker), not by a webhook

        try:
            # requests.post makes exactly one attempt (its default adapter has max_retries=0).
            response = requests.post(
                url, json=payload, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT_SECONDS
            )
        except requests.ReadTimeout:  # the request went out: Meta may have taken it, so it must not go again
            raise SendError("WhatsApp API did not answer in time; it may have sent the message", code="read_timeout",
                            maybe_sent=True) from None  # fmt: skip
        except requests.Timeout:  # connecting timed out: nothing reached Meta
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
        """The JSON body for ``/messages`` (no network): :func:`bots.channels.whatsapp_payloads.build_payload`.

        Raises:
            SendError: not retryable, for a message WhatsApp cannot take (empty, over 4096 characters, or a
                template without a name).
        """
        return build_payload(message, self.config)

    def _send_error(self, message: OutboundMessage, status: int, body: object, token: str) -> SendError:
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {}
        code = error.get("code") if isinstance(error.get("code"), int) else None
        code_text = str(code) if code is not None else f"http_{status}"
        reason = string(error.get("message")) or string(error.get("title")) or f"HTTP {status}"
        error_data = error.get("error_data") if isinstance(error.get("error_data"), dict) else {}
        details = string(error_data.get("details"))
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
        media_id = string(media.get("provider_media_id"))
        expected_sha256, content_type, url = "", string(media.get("content_type")) or None, string(media.get("url"))
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
            url = string(body.get("url"))
            if not url:
                raise MediaError("whatsapp media lookup: the answer has no url", retryable=True, code="bad_answer")
            size = body.get("file_size")
            if isinstance(size, int | str) and str(size).isdigit() and int(size) > max_bytes:
                raise media_download.too_large("whatsapp media", int(size), max_bytes)
            expected_sha256 = string(body.get("sha256")).lower()
            content_type = string(body.get("mime_type")) or content_type
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


def _message_id(body: object) -> str | None:
    messages = body.get("messages") if isinstance(body, dict) else None
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        return string(messages[0].get("id")) or None
    return None


def _media_error(status: int, body: object, token: str) -> MediaError:
    """A Graph API refusal of a media lookup (skin pipeline)."""
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    code = error.get("code") if isinstance(error.get("code"), int) else None
    reason = _redact(string(error.get("message")), token)[:MAX_ERROR_REASON_LENGTH]
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
