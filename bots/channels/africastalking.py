"""Africa's Talking (AT): inbound SMS, SMS delivery reports, USSD sessions, and sending SMS.

Webhooks (all ``application/x-www-form-urlencoded`` POSTs):

* ``/webhooks/africastalking/<token>/sms`` (kind ``inbound``): ``from``, ``to``, ``text``, ``date``, ``id``,
  ``linkId``. ``id`` is the idempotency key. ``date`` comes as ``2017-05-03T06:04:45Z`` or
  ``2017-05-03 06:04:45`` (UTC). ``from`` can be alphanumeric (``MTN``).
* ``/webhooks/africastalking/<token>/delivery`` (kind ``status``): ``id`` (the ``messageId`` the send API
  returned), ``status``, ``phoneNumber``, ``networkCode``, ``failureReason``, ``retryCount``.
* ``/webhooks/africastalking/<token>/ussd`` (kind ``ussd``): ``sessionId``, ``serviceCode``, ``phoneNumber``,
  ``networkCode``, ``text``. The answer is ``text/plain`` starting ``CON `` (wait for input) or ``END ``.

Quirks:

* AT signs nothing. The callback URLs carry a secret path token (``AT_WEBHOOK_TOKEN``); a wrong or unset token
  answers 404, so the URL looks like it does not exist.
* USSD ``text`` is ``""`` on the first hop and then *every* input of the session joined with ``*``. An input can
  itself contain ``*``, so the newest input cannot be recovered by splitting: the adapter passes the whole string
  on as ``extra["ussd_history"]`` and flows read new input relative to the history they stored. The history holds a
  staff member's PIN in every hop after it, so it is never stored: the hop's ``text`` is only the last segment, and
  the webhook masks even that (``InboundMessage.masked``) when the hop may carry a PIN, before anything is stored.
* If the same URL also receives AT's end-of-session notification (it has ``status``/``input`` and no ``text``),
  it becomes a ``close`` session event.
* Success of a send is decided per recipient: an HTTP 200 can carry a refused recipient.
* The SDK (``africastalking`` 2.0.3) builds its URL once in its constructor and returns a parsed dict only when
  the answer's content type is exactly ``application/json`` (a ``str`` otherwise); its exception for a non-2xx
  answer carries the body but not the HTTP status.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING
from urllib.parse import unquote

import phonenumbers
from flask import Request, Response

from app.messaging.envelopes import (
    SESSION_CLOSE,
    SESSION_NEW,
    SESSION_RESUME,
    InboundMessage,
    OutboundMessage,
    SendResult,
    StatusUpdate,
)
from app.models.channel import SMS, USSD
from bots.channels.base import Channel, MalformedPayload, ParsedWebhook, SendError, WebhookRejected, register

if TYPE_CHECKING:
    from africastalking.SMS import SMSService

log = logging.getLogger(__name__)

KINDS = ("inbound", "status", "ussd")

# (connect, read) seconds: one attempt never takes much more than 10 s.
SEND_TIMEOUT = (3.05, 6.95)

# Per-recipient statusCode of the send API (AT "SMS" docs): 100 Processed, 101 Sent, 102 Queued.
SUCCESS_CODES = {100, 101, 102}
# Account or gateway trouble: another try, or another provider, can get the message out.
RETRYABLE_CODES = {
    401: "RiskHold",
    405: "InsufficientBalance",
    407: "CouldNotRoute",
    500: "InternalServerError",
    501: "GatewayError",
    502: "RejectedByGateway",
}
# The number or our sender id is wrong: no provider will do better.
PERMANENT_CODES = {402: "InvalidSenderId", 403: "InvalidPhoneNumber", 404: "UnsupportedNumberType"}
# The recipient has blocked messages from us.
OPTED_OUT_CODES = {406: "UserInBlacklist", 409: "DoNotDisturbRejection"}
_NAMES = {**RETRYABLE_CODES, **PERMANENT_CODES, **OPTED_OUT_CODES}
_CODES = {name.lower(): code for code, name in _NAMES.items()}

# Delivery-report failureReason values meaning the recipient opted out (AT spells the first both ways).
OPTED_OUT_REASONS = {"userinblacklist", "donotdisturbrejection"}


@cache
def sms_service_class() -> type[SMSService]:
    """The SDK's SMS service, remembering the HTTP status of its answer (``last_status``).

    ``AfricasTalkingException`` carries only the response body; the status decides whether a failure is worth
    another try. This wraps the SDK's (name-mangled, private) POST helper and changes nothing else. Made on the
    first send: the SDK and requests (~3.5 MB) stay out of the web process, which only parses AT's webhooks.
    """
    from africastalking.Service import Service
    from africastalking.SMS import SMSService

    class StatusSMSService(SMSService):
        last_status: int | None = None

        def _Service__make_post_request(self, *args, **kwargs):  # noqa: N802 (the SDK's mangled name)
            response = Service._Service__make_post_request(*args, **kwargs)
            self.last_status = getattr(response, "status_code", None)
            return response

    return StatusSMSService


def _phone(value: str) -> str | None:
    """``value`` in E.164 when it is a possible phone number, else ``None``.

    A ``+`` that was not URL-encoded arrives as a space, and some senders drop it: digits alone get it back.
    """
    text = value.strip()
    digits = text.lstrip("+")
    if not digits.isdigit():
        return None
    try:
        number = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _parse_date(value: str) -> datetime:
    """AT's ``date``: ``2017-05-03T06:04:45Z`` or ``2017-05-03 06:04:45`` (UTC), optionally with fractions."""
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1]
    for pattern in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d %H:%M:%S.%f"):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ValueError(value)


def _require(form, *names: str) -> None:
    missing = [name for name in names if not form.get(name, "").strip()]
    if missing:
        raise MalformedPayload(
            f"missing required field{'s' if len(missing) > 1 else ''}: {', '.join(missing)}", {"missing": missing}
        )


@register
class AfricasTalkingChannel(Channel):
    """Africa's Talking: SMS in and out, delivery reports, USSD."""

    name = "africastalking"
    sends = (SMS,)
    settings = ("AT_USERNAME", "AT_API_KEY")
    status_map = {
        "Success": "delivered",  # final: on the handset
        "Sent": "sent",
        "Submitted": "sent",  # documented by AT, missing from courier's table
        "Buffered": "sent",  # queued at the telco
        "Rejected": "failed",
        "Failed": "failed",
        "Expired": "failed",
    }

    # --- inbound --------------------------------------------------------------------------------------------

    def verify(self, request: Request, kind: str) -> None:
        """Check the secret path token of an AT callback URL.

        The token is the ``token`` URL variable of the matched route (``/webhooks/africastalking/<token>/...``);
        when the request was not routed (adapter tests), it is the path segment after ``africastalking``.

        Args:
            request: the Flask request.
            kind: ``inbound``, ``status`` or ``ussd``.

        Raises:
            WebhookRejected: (404) unknown kind, ``AT_WEBHOOK_TOKEN`` unset, or a different token.
        """
        if kind not in KINDS:
            raise WebhookRejected(f"africastalking does not accept {kind} webhooks", status=404)
        expected = self.config.get("AT_WEBHOOK_TOKEN") or ""
        given = self._path_token(request)
        if not expected or not given or not hmac.compare_digest(given.encode(), expected.encode()):
            # The reason names no token: it may end up in a log.
            raise WebhookRejected("unknown Africa's Talking callback URL", status=404)

    @staticmethod
    def _path_token(request: Request) -> str:
        token = (request.view_args or {}).get("token")
        if token:
            return str(token)
        parts = request.path.strip("/").split("/")
        if "africastalking" in parts:
            index = parts.index("africastalking") + 1
            if index < len(parts) - 1:  # a token segment followed by the kind's segment
                return parts[index]
        return ""

    def parse(self, request: Request, kind: str) -> ParsedWebhook:
        """Turn a verified AT callback into messages (``inbound``, ``ussd``) or delivery reports (``status``).

        Args:
            request: the Flask request (form-encoded body).
            kind: ``inbound``, ``status`` or ``ussd``.

        Returns:
            One message or one status update; empty for a delivery report without ``id`` or ``status`` (answered
            200 so that AT does not retry it forever).

        Raises:
            MalformedPayload: an SMS without ``id``/``from`` or with an unreadable ``date``; a USSD hop without
                ``sessionId``/``phoneNumber``.
        """
        form = request.form
        if kind == "inbound":
            return ParsedWebhook(messages=[self._parse_sms(form)])
        if kind == "status":
            status = self._parse_status(form)
            return ParsedWebhook(statuses=[status] if status else [])
        if kind == "ussd":
            return ParsedWebhook(messages=[self._parse_ussd(form)])
        raise MalformedPayload(f"africastalking does not accept {kind} webhooks")

    def _parse_sms(self, form) -> InboundMessage:
        _require(form, "id", "from")
        raw_from = form["from"].strip()
        received_at = datetime.now(UTC)
        if form.get("date", "").strip():
            try:
                received_at = _parse_date(form["date"])
            except ValueError:
                raise MalformedPayload("invalid date format", {"date": form["date"]}) from None
        extra = {
            name: form[key] for key, name in (("linkId", "link_id"), ("networkCode", "network_code")) if form.get(key)
        }
        # Courier rejects an absent ``text`` and an alphanumeric ``from``; we keep both messages: an empty SMS is
        # still a message, and a network's own sender (``MTN``) is a real, if unanswerable, sender.
        return InboundMessage(
            channel=SMS,
            provider=self.name,
            provider_id=form["id"].strip(),
            sender=_phone(raw_from) or raw_from,
            text=form.get("text", ""),
            recipient=form.get("to") or None,
            received_at=received_at,
            extra=extra,
        )

    def _parse_status(self, form) -> StatusUpdate | None:
        provider_id = form.get("id", "").strip()
        raw = form.get("status", "").strip()
        if not provider_id or not raw:
            log.warning("africastalking delivery report without id or status ignored")
            return None
        reason = form.get("failureReason", "").strip() or None
        return StatusUpdate(
            provider=self.name,
            provider_id=provider_id,
            status=self.map_status(raw),
            raw_status=raw,
            error_code=reason,
            opted_out=bool(reason) and reason.lower() in OPTED_OUT_REASONS,
        )

    def _parse_ussd(self, form) -> InboundMessage:
        _require(form, "sessionId", "phoneNumber")
        sender = _phone(form["phoneNumber"])
        if sender is None:
            raise MalformedPayload("phoneNumber is not a phone number", {"phoneNumber": form["phoneNumber"]})
        session_id = form["sessionId"].strip()
        # The form decoder already turns %2A384%23 into *384#; a doubly encoded code needs one more pass.
        service_code = unquote(form.get("serviceCode", "").strip())
        extra = {"service_code": service_code, "network_code": form.get("networkCode", "")}

        if "text" not in form and ("status" in form or "input" in form):
            # End-of-session notification (its own callback URL in the AT dashboard, but harmless here).
            history = form.get("input", "")
            extra.update(
                ussd_history=history, status=form.get("status", ""), error_message=form.get("errorMessage", "")
            )
            return InboundMessage(
                channel=USSD,
                provider=self.name,
                provider_id=f"{session_id}:end",
                sender=sender,
                session_event=SESSION_CLOSE,
                session_id=session_id,
                received_at=datetime.now(UTC),
                extra=extra,
            )

        history = form.get("text", "")
        extra["ussd_history"] = history
        digest = self.hop_digest(sender, history)
        return InboundMessage(
            channel=USSD,
            provider=self.name,
            # One id per hop: a replayed hop (same session, same history) is recognised as a duplicate.
            provider_id=f"{session_id}:{digest}",
            sender=sender,
            # Best effort only: an input containing "*" is cut here. Flows use extra["ussd_history"].
            text=history.rsplit("*", 1)[-1] if history else "",
            session_event=SESSION_RESUME if history else SESSION_NEW,
            session_id=session_id,
            received_at=datetime.now(UTC),
            extra=extra,
        )

    def hop_digest(self, sender: str, history: str) -> str:
        """A hop's id within its session: keyed by the app secret and bound to the phone, so the id neither reveals
        what was typed (a staff PIN is in the history) nor lets another phone's hop pass for a replay of this one."""
        key = (self.config.get("SECRET_KEY") or "").encode()
        return hmac.new(key, f"{sender}\n{history}".encode(), hashlib.sha256).hexdigest()[:40]

    def acknowledge(self, kind: str) -> Response:
        """An empty 200: all AT needs for an inbound SMS or a delivery report."""
        return Response(status=200)

    def ussd_response(self, text: str, *, end: bool) -> Response:
        """Render a USSD screen: ``CON <text>`` keeps the session open, ``END <text>`` closes it.

        Args:
            text: the screen (lines separated by ``\\n``; keep it GSM-7 and within about 160 characters).
            end: close the session after this screen.
        """
        if len(text) > 160:
            log.warning("africastalking USSD screen of %d characters may be cut by the telco", len(text))
        return Response(f"{'END' if end else 'CON'} {text}", status=200, mimetype="text/plain")

    # --- outbound -------------------------------------------------------------------------------------------

    def _client(self) -> SMSService:
        """A fresh SDK client (cheap: no network), pointed at ``AT_API_BASE_URL`` when that is set."""
        client = sms_service_class()(self.config.get("AT_USERNAME") or "", self.config.get("AT_API_KEY") or "")
        base = (self.config.get("AT_API_BASE_URL") or "").rstrip("/")
        if base:
            # The only place the base URL is applied: the SDK reads _baseUrl at call time (send_premium, which
            # reads _contentUrl, is not used).
            client._baseUrl = base + "/version1"
        return client

    def send(self, message: OutboundMessage) -> SendResult:
        """Send one SMS through AT's messaging API: one attempt, no retries.

        Args:
            message: an SMS to an E.164 number, from ``message.sender`` (the short code or number the person
                wrote to) or ``AT_SENDER_ID``. Media URLs are appended to the text (SMS carries none).

        Returns:
            The ``messageId`` AT gave the recipient (delivery reports carry it as ``id``).

        Raises:
            SendError: retryable for connect timeouts, connection errors, HTTP 5xx/429 and account or gateway
                trouble; ``maybe_sent`` for a read timeout (the request went out) and an unreadable answer;
                permanent for a bad number or sender id; ``opted_out`` when the recipient blocked us.
        """
        if message.channel != SMS:
            raise SendError(f"africastalking cannot send {message.channel}", retryable=False, code="unsupported")
        text = "\n".join([message.text, *message.media_urls]) if message.media_urls else message.text
        import requests  # with the SDK, on the first send only: see sms_service_class()
        from africastalking.Service import AfricasTalkingException

        client = self._client()
        log.info("africastalking sms %s to ...%s", message.id, message.address[-3:])
        try:
            sender_id = message.sender or self.config.get("AT_SENDER_ID") or None
            answer = client.send(text, [message.address], sender_id=sender_id, timeout=SEND_TIMEOUT)
        except requests.JSONDecodeError as exc:  # "application/json" that is not JSON: AT may have accepted it
            raise SendError("Africa's Talking: unreadable answer", code="bad_response", maybe_sent=True) from exc
        except ValueError as exc:  # the SDK's own number check, before any request
            raise SendError(
                "Africa's Talking: invalid phone number", retryable=False, code="InvalidPhoneNumber"
            ) from exc
        except requests.ReadTimeout as exc:  # the request went out: AT may have taken it, so it must not go again
            raise SendError("Africa's Talking did not answer in time; it may have sent the message",
                            code="read_timeout", maybe_sent=True) from exc  # fmt: skip
        except requests.Timeout as exc:  # connecting timed out: nothing reached AT
            raise SendError("Africa's Talking: timed out", retryable=True, code="timeout") from exc
        except requests.RequestException as exc:
            raise SendError(f"Africa's Talking: {exc.__class__.__name__}", retryable=True, code="connection") from exc
        except AfricasTalkingException as exc:
            raise self._http_error(client.last_status, str(exc)) from exc
        return self._result(answer)

    def _http_error(self, status: int | None, body: str) -> SendError:
        """A non-2xx answer: 5xx and 429 are worth another try (or provider); other 4xx are ours to fix."""
        api_key = self.config.get("AT_API_KEY") or ""
        if api_key:
            body = body.replace(api_key, "***")
        detail = f"Africa's Talking answered HTTP {status or '?'}: {body[:200]}"
        # status None: the SDK changed under us; failing over is safer than dropping the message.
        retryable = status is None or status == 429 or status >= 500
        return SendError(detail, retryable=retryable, code=f"http_{status}" if status else "http_error")

    def _result(self, answer: dict | str) -> SendResult:
        if isinstance(answer, str):
            # The SDK parses only an exact "application/json" content type (a charset suffix gives a str).
            try:
                answer = json.loads(answer)
            except ValueError:
                # A 2xx we cannot read: AT may have accepted it, so a retry could send it twice.
                raise SendError("Africa's Talking: unreadable answer", code="bad_response", maybe_sent=True) from None
        data = answer.get("SMSMessageData") if isinstance(answer, dict) else None
        if not isinstance(data, dict):
            raise SendError("Africa's Talking: answer without SMSMessageData", retryable=False, code="bad_response")
        recipients = data.get("Recipients") or []
        if not recipients:
            # e.g. "InvalidSenderId" or "Sent to 0/1 Total Cost: 0": AT refused the whole request.
            reason = str(data.get("Message") or "no recipients accepted")
            raise SendError(f"Africa's Talking refused the message: {reason}", retryable=False, code="no_recipients")
        recipient = recipients[0]
        status = str(recipient.get("status") or "")
        try:
            code = int(recipient.get("statusCode"))
        except (TypeError, ValueError):
            code = _CODES.get(status.lower())
        if status == "Success" or code in SUCCESS_CODES:
            message_id = recipient.get("messageId")
            return SendResult(provider=self.name, provider_id=str(message_id) if message_id else None)
        name = _NAMES.get(code, status) if code is not None else status
        error_code = str(code) if code is not None else (status or "unknown")
        detail = f"Africa's Talking refused the recipient: {name or 'unknown'} ({code if code is not None else '?'})"
        if code in OPTED_OUT_CODES:
            raise SendError(detail, retryable=False, code=error_code, opted_out=True)
        if code in PERMANENT_CODES:
            raise SendError(detail, retryable=False, code=error_code)
        # RETRYABLE_CODES, and statuses AT may add later: another provider may get the message out.
        raise SendError(detail, retryable=True, code=error_code)
