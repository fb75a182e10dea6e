"""Reading WhatsApp Cloud API webhook notifications into messages and delivery status updates.

One POST can batch several entries, changes, messages *and* statuses, so :func:`parse_notification` returns both.

* ``from`` / ``wa_id`` are digits without ``+`` (they become ``+<digits>``). Users with a WhatsApp username may be
  identified only by a business-scoped user id (BSUID, ``US.1234``) in ``from_user_id``; that is kept as given.
* ``timestamp`` is a string of Unix seconds, sometimes milliseconds.
* The same message id can appear twice in one POST; it is returned once. Replays across POSTs are the webhook
  layer's job (the ``(provider, provider_id)`` key).
* Inbound media arrive as a media id (``Media.provider_media_id``), which the adapter's ``fetch_media`` resolves.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime

from app.messaging.envelopes import InboundMessage, Media, StatusUpdate
from app.models.channel import WHATSAPP
from bots.channels.base import MalformedPayload, ParsedWebhook

log = logging.getLogger("bots.channels.whatsapp")  # the adapter's logger: operators filter on this name

MEDIA_TYPES = ("image", "video", "document", "audio", "voice", "sticker")
IGNORED_STATUSES = ("deleted",)  # courier ignores it; we still report it, unmapped

BSUID = re.compile(r"[A-Z]{2}\.[A-Za-z0-9]{1,128}")  # a business-scoped user id; also an outbound address
_WA_ID = re.compile(r"[0-9]{1,15}")
_DIGITS = re.compile(r"[0-9]+")


def parse_notification(body: bytes, provider: str, map_status: Callable[[str], str | None]) -> ParsedWebhook:
    """Turn a verified notification into messages and status updates, walking every entry and change.

    Group messages, unsupported message types (``unsupported``, ``reaction``, ``contacts`` ...) and changes of
    other fields are skipped; errors Meta reports in the payload are logged at WARNING (codes and titles only).

    Args:
        body: the raw body of the webhook ``POST`` (already verified).
        provider: the adapter's name, stored on each message and status.
        map_status: the adapter's status table (Meta's word → the normalised status, or ``None``).

    Returns:
        Messages (each message id once) and status updates (each ``(id, status)`` once).

    Raises:
        MalformedPayload: not JSON, not a ``whatsapp_business_account`` notification, a message or status
            without an id, a non-numeric timestamp, or a sender that is neither a phone number nor a BSUID.
    """
    try:
        payload = json.loads(body)
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
            for message in _messages(value, seen_messages, provider):
                parsed.messages.append(message)
            parsed.statuses.extend(_statuses(value, seen_statuses, provider, map_status))
            for error in _list(value, "errors", "value"):
                _log_error("WhatsApp webhook error", error)
    return parsed


def _messages(value: dict, seen: set[str], provider: str) -> list[InboundMessage]:
    metadata = value.get("metadata") if isinstance(value.get("metadata"), dict) else {}
    phone_number_id = string(metadata.get("phone_number_id"))
    # Our number as the send API names it (a reply goes from there); the display number only when Meta omits the id.
    recipient = phone_number_id or _business_number(metadata.get("display_phone_number")) or None
    names: dict[str, str] = {}
    for contact in _list(value, "contacts", "value"):
        if not isinstance(contact, dict):
            continue
        profile = contact.get("profile") if isinstance(contact.get("profile"), dict) else {}
        name = string(profile.get("name"))
        for key in ("wa_id", "user_id"):
            if name and string(contact.get(key)):
                names[contact[key]] = name

    messages = []
    for message in _list(value, "messages", "value"):
        message = _object(message, "message")
        message_id = string(message.get("id"))
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
                provider=provider,
                provider_id=message_id,
                sender=sender,
                text=text,
                media=media,
                recipient=recipient,
                received_at=received_at,
                sender_name=names.get(string(message.get("from"))) or names.get(user_id or ""),
                extra=extra,
            )
        )
    return messages


def _statuses(value: dict, seen: set[tuple[str, str]], provider: str,
              map_status: Callable[[str], str | None]) -> list[StatusUpdate]:  # fmt: skip
    updates = []
    for status in _list(value, "statuses", "value"):
        status = _object(status, "status")
        provider_id = string(status.get("id"))
        if not provider_id:
            raise MalformedPayload("WhatsApp status without a message id")
        raw = string(status.get("status"))
        if (provider_id, raw) in seen:
            continue
        seen.add((provider_id, raw))
        normalised = map_status(raw)
        if normalised is None:
            level = logging.INFO if raw in IGNORED_STATUSES else logging.WARNING
            log.log(level, "unmapped WhatsApp status %r for %s", raw[:40], provider_id)
        errors = [error for error in _list(status, "errors", "status") if isinstance(error, dict)]
        code = errors[0].get("code") if errors else None
        updates.append(
            StatusUpdate(
                provider=provider,
                provider_id=provider_id,
                status=normalised,
                raw_status=raw,
                error_code=None if code is None else str(code),
                at=_timestamp(status.get("timestamp"), provider_id),
            )
        )
    return updates


# --- readers --------------------------------------------------------------------------------------------------


def string(value: object) -> str:
    """``value`` if it is a string, else ``""``."""
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
    sender = string(message.get("from"))
    user_id = string(message.get("from_user_id"))
    user_id = user_id if BSUID.fullmatch(user_id) else None
    if _WA_ID.fullmatch(sender):
        return f"+{sender}", user_id
    if BSUID.fullmatch(sender):
        return sender, user_id
    if not sender and user_id:
        return user_id, user_id
    raise MalformedPayload("invalid WhatsApp sender id", {"id": message_id})


def _content(message: dict) -> tuple[str, tuple[Media, ...], dict] | None:
    """Text, media and extra facts for a supported message type; ``None`` for a type we skip."""
    kind = string(message.get("type"))
    body = message.get(kind) if kind else None
    if not isinstance(body, dict):
        return None
    if kind == "text":
        return string(body.get("body")), (), {}
    if kind in MEDIA_TYPES:
        media_id = string(body.get("id"))
        url = string(body.get("url"))
        if not media_id and not url:
            return None
        media = Media(content_type=string(body.get("mime_type")) or None, url=url or None,
                      provider_media_id=media_id or None)  # fmt: skip
        return string(body.get("caption")), (media,), {}
    if kind == "button":
        extra = {"button_payload": body["payload"]} if string(body.get("payload")) else {}
        return string(body.get("text")), (), extra
    if kind == "interactive":
        reply_kind = string(body.get("type"))
        reply = body.get(reply_kind) if reply_kind else None
        if not isinstance(reply, dict):
            return None
        if reply_kind in ("button_reply", "list_reply"):
            extra = {"callback_data": reply["id"]} if string(reply.get("id")) else {}
            return string(reply.get("title")), (), extra
        if reply_kind == "nfm_reply":  # a WhatsApp Flow's answers
            try:
                answers = json.loads(string(reply.get("response_json")) or "null")
            except ValueError:
                answers = None
            return string(reply.get("body")), (), ({"flow_response": answers} if isinstance(answers, dict) else {})
        return None
    if kind == "location":
        latitude, longitude = body.get("latitude"), body.get("longitude")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (latitude, longitude)):
            return None
        return "", (), {"location": {"latitude": latitude, "longitude": longitude}}
    return None


def _business_number(display: object) -> str:
    """Meta's display number (``+250 788 123 200`` or ``15550783881``) as E.164."""
    digits = "".join(ch for ch in string(display) if ch.isascii() and ch.isdigit())
    return f"+{digits}" if digits else ""


def _log_error(what: str, error: object) -> None:
    if isinstance(error, dict):
        log.warning("%s %s: %s", what, error.get("code"), string(error.get("title"))[:200])
