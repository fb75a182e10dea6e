"""Provider payloads, built and signed exactly as each provider does, and delivered to Thusa's own webhooks.

Each builder returns a :class:`SignedRequest`: the webhook path, the headers and the raw body a provider would send
(Twilio's form fields with ``X-Twilio-Signature``; Africa's Talking's USSD form on the secret-token path;
a Telegram update with ``X-Telegram-Bot-Api-Secret-Token``; a WhatsApp Cloud notification with
``X-Hub-Signature-256``). :func:`deliver` posts it over HTTP to the running server, so the webhook code that runs
is the production code, unchanged. The secrets stay on the server: the browser never sees a signed request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

import httpx
from twilio.request_validator import RequestValidator

from bots.channels.telegram import SECRET_HEADER

DELIVER_TIMEOUT = 15.0  # seconds: a USSD hop is answered in the same request; the rest only store and enqueue
TWILIO_NUMBER = "+26770000000"  # the demo service's own number, as Twilio would put it in ``To``
WHATSAPP_PHONE_NUMBER_ID = "100000000000001"
WHATSAPP_DISPLAY_NUMBER = "233300000000"


class NotConfigured(RuntimeError):
    """A webhook secret the simulator must sign with is not set (production, or test mode without it)."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(f"set {', '.join(names)} to use the simulator on this server")
        self.names = names


@dataclass(frozen=True)
class SignedRequest:
    """One webhook request as a provider sends it."""

    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    """What the webhook answered."""

    status: int
    content_type: str
    text: str


def _require(config: Mapping, *names: str) -> None:
    missing = [name for name in names if not config.get(name)]
    if missing:
        raise NotConfigured(missing)


def webhook_base(config: Mapping) -> str:
    """Where this server's webhooks are reached from the server itself.

    ``PUBLIC_BASE_URL`` when set (the URL Twilio signs); otherwise this machine's own web server on ``HOST`` and
    ``PORT``. Never the request's ``Host`` header: a forged one would make the server post signed webhooks, with
    their secrets, to someone else.
    """
    public = (config.get("PUBLIC_BASE_URL") or "").strip().rstrip("/")
    if public:
        return public
    host = str(config.get("HOST") or "127.0.0.1")
    host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host  # noqa: S104 (reading the bind address)
    return f"http://{host}:{config.get('PORT') or 5000}"


def twilio_sms(config: Mapping, *, phone: str, text: str) -> SignedRequest:
    """An inbound SMS as Twilio posts it to ``/webhooks/twilio/sms``, signed with ``TWILIO_AUTH_TOKEN``."""
    _require(config, "TWILIO_AUTH_TOKEN")
    sid = "SM" + uuid.uuid4().hex
    params = {
        "ToCountry": "BW", "SmsMessageSid": sid, "NumMedia": "0", "SmsSid": sid, "SmsStatus": "received",
        "Body": text, "FromCountry": "BW", "To": TWILIO_NUMBER, "NumSegments": "1", "MessageSid": sid,
        "AccountSid": config.get("TWILIO_ACCOUNT_SID") or "AC" + "0" * 32, "From": phone, "ApiVersion": "2010-04-01",
    }  # fmt: skip
    path = "/webhooks/twilio/sms"
    signature = RequestValidator(config["TWILIO_AUTH_TOKEN"]).compute_signature(webhook_base(config) + path, params)
    return SignedRequest(path, urlencode(params).encode(),
                         {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature,
                          "User-Agent": "TwilioProxy/1.1"})  # fmt: skip


def africastalking_ussd(config: Mapping, *, phone: str, session_id: str, history: str) -> SignedRequest:
    """One USSD hop as Africa's Talking posts it: the whole ``*``-joined history in ``text``, empty at first."""
    _require(config, "AT_WEBHOOK_TOKEN")
    params = {"phoneNumber": phone, "serviceCode": config.get("USSD_SERVICE_CODE") or "*384*2580#", "text": history,
              "sessionId": session_id, "networkCode": "99999"}  # fmt: skip
    path = f"/webhooks/africastalking/{quote(config['AT_WEBHOOK_TOKEN'], safe='')}/ussd"
    return SignedRequest(path, urlencode(params).encode(),
                         {"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8",
                          "User-Agent": "at-ussd-api/1.0"})  # fmt: skip


def new_ussd_session() -> str:
    """A session id in Africa's Talking's form."""
    return "ATUid_" + uuid.uuid4().hex


def _update_id() -> int:
    # Unique per update (the webhook dedupes on it) and increasing, as Telegram's are.
    return time.time_ns() // 1000


def telegram_update(config: Mapping, *, chat_id: str, name: str, text: str | None = None,
                    photo_file_id: str | None = None, callback_data: str | None = None,
                    contact_phone: str | None = None) -> SignedRequest:  # fmt: skip
    """A Telegram update from a private chat: a text, a photo (by ``file_id``), a shared own contact, or a press
    of an inline keyboard button (``callback_data``)."""
    _require(config, "TELEGRAM_WEBHOOK_SECRET")
    person = {"id": int(chat_id), "is_bot": False, "first_name": name.split()[0], "language_code": "en"}
    chat = {"id": int(chat_id), "first_name": name.split()[0], "type": "private"}
    now = int(time.time())
    update: dict = {"update_id": _update_id()}
    if callback_data is not None:
        update["callback_query"] = {
            "id": str(_update_id()), "from": person, "chat_instance": "-" + chat_id, "data": callback_data,
            "message": {"message_id": now % 100000, "from": {"id": 1, "is_bot": True, "first_name": "Thusa"},
                        "chat": chat, "date": now, "text": "..."},
        }  # fmt: skip
    else:
        message: dict = {"message_id": now % 100000, "from": person, "chat": chat, "date": now}
        if photo_file_id is not None:
            # Telegram sends every size of one picture; the webhook picks the largest.
            message["photo"] = [
                {"file_id": photo_file_id + ":thumb", "file_unique_id": "t" + photo_file_id[:8], "file_size": 1,
                 "width": 90, "height": 90},
                {"file_id": photo_file_id, "file_unique_id": "f" + photo_file_id[:8], "width": 1280, "height": 1280},
            ]  # fmt: skip
            if text:
                message["caption"] = text
        elif contact_phone is not None:
            message["contact"] = {"phone_number": contact_phone.lstrip("+"), "first_name": name.split()[0],
                                  "user_id": int(chat_id)}  # fmt: skip
        else:
            message["text"] = text or ""
        update["message"] = message
    body = json.dumps(update).encode()
    return SignedRequest(
        "/webhooks/telegram",
        body,
        {"Content-Type": "application/json", SECRET_HEADER: config["TELEGRAM_WEBHOOK_SECRET"]},
    )


def whatsapp_message(config: Mapping, *, phone: str, name: str, text: str | None = None,
                     image_id: str | None = None, content_type: str | None = None,
                     button: tuple[str, str] | None = None) -> SignedRequest:  # fmt: skip
    """A WhatsApp Cloud API notification: a text, an image (by media id) or an interactive button reply."""
    _require(config, "WHATSAPP_APP_SECRET")
    wa_id = phone.lstrip("+")
    message: dict = {"from": wa_id, "id": "wamid.SIM" + uuid.uuid4().hex, "timestamp": str(int(time.time()))}
    if image_id is not None:
        message.update(type="image", image={"id": image_id, "mime_type": content_type or "image/jpeg",
                                            "sha256": "", **({"caption": text} if text else {})})  # fmt: skip
    elif button is not None:
        message.update(
            type="interactive",
            interactive={"type": "button_reply", "button_reply": {"id": button[0], "title": button[1]}},
        )
    else:
        message.update(type="text", text={"body": text or ""})
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "100000000000000", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": WHATSAPP_DISPLAY_NUMBER,
                         "phone_number_id": config.get("WHATSAPP_PHONE_NUMBER_ID") or WHATSAPP_PHONE_NUMBER_ID},
            "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
            "messages": [message],
        }}]}],
    }  # fmt: skip
    body = json.dumps(payload, separators=(",", ":")).encode()
    signature = hmac.new(config["WHATSAPP_APP_SECRET"].encode(), body, hashlib.sha256).hexdigest()
    return SignedRequest(
        "/webhooks/whatsapp", body, {"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=" + signature}
    )


def deliver(config: Mapping, signed: SignedRequest) -> Answer:
    """POST the request to this server's webhook and return its answer.

    Raises:
        httpx.HTTPError: the server could not be reached.
    """
    response = httpx.post(webhook_base(config) + signed.path, content=signed.body, headers=signed.headers,
                          timeout=DELIVER_TIMEOUT, follow_redirects=False)  # fmt: skip
    return Answer(response.status_code, response.headers.get("content-type", ""), response.text)
