"""Reading Telegram webhook Updates (Bot API JSON) into :class:`~app.messaging.envelopes.InboundMessage` objects.

``update_id`` is the idempotency key (``message_id`` is only unique per chat). Updates we do not use (edited
messages, channel posts, member changes, service messages) parse to an empty result, because Telegram retries
anything that is not answered 2xx.

* ``message.photo`` lists sizes of ONE image; we keep only the largest (by pixels) as one :class:`Media` holding the
  ``file_id``. The download URL (``getFile``) contains the bot token, so only the ``file_id`` is ever stored.
* Replies go to ``chat.id`` (negative for groups), which is the sender address; ``from.id`` (the person) is kept in
  ``extra["from_id"]`` so a shared contact can be checked to be the sender's own.
* Courier-era payloads lack fields PTB's ``Update.de_json`` requires (``from.is_bot``), so the update is read as
  plain JSON here; PTB is used only to send.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from app.messaging.envelopes import InboundMessage, Media
from app.models.channel import TELEGRAM
from bots.channels.base import MalformedPayload, ParsedWebhook

# Message fields we recognise but do not read: the person gets a message with no text, and the flows can say what
# they accept.
UNSUPPORTED_KINDS = (
    "sticker",
    "video",
    "video_note",
    "voice",
    "audio",
    "animation",
    "document",
    "poll",
    "dice",
    "game",
    "story",
    "web_app_data",
)


def parse_update(body: bytes, provider: str) -> ParsedWebhook:
    """Read one Update: a message or a button press becomes an :class:`InboundMessage`.

    ``provider_id`` is the ``update_id``; ``sender`` is the chat id as a string. ``extra`` may hold
    ``from_id`` (the person's user id), ``callback_data`` and ``callback_query_id`` (button press), ``contact``
    (``phone_number``, ``user_id``: a shared contact card, possibly someone else's), ``location``
    (``latitude``, ``longitude``) and ``unsupported_media`` (``voice``, ``sticker``, a non-image
    ``document`` ...). Other update types give an empty result.

    Args:
        body: the raw webhook body.
        provider: the adapter's name, stored as each message's ``provider``.

    Raises:
        MalformedPayload: the body is not a JSON object with an integer ``update_id``, or a message has no chat.
    """
    try:
        update = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedPayload("the Telegram update is not JSON") from None
    if not isinstance(update, dict):
        raise MalformedPayload("the Telegram update is not a JSON object")
    update_id = update.get("update_id")
    if not is_int(update_id):
        raise MalformedPayload("the Telegram update has no integer update_id", {"field": "update_id"})
    provider_id = str(update_id)
    if isinstance(update.get("message"), dict):
        message = _message(provider, provider_id, update["message"])
    elif isinstance(update.get("callback_query"), dict):
        message = _button_press(provider, provider_id, update["callback_query"])
    else:
        message = None  # edited_message, channel_post, my_chat_member ...: nothing for the service
    return ParsedWebhook(messages=[message] if message else [])


def _message(provider: str, provider_id: str, message: dict) -> InboundMessage | None:
    chat_id = as_dict(message.get("chat")).get("id")
    if not is_int(chat_id):
        raise MalformedPayload("the Telegram message has no chat.id", {"field": "message.chat.id"})
    sender = as_dict(message.get("from"))
    text = as_str(message.get("text")) or as_str(message.get("caption"))
    media: list[Media] = []
    extra: dict[str, Any] = {}
    if is_int(sender.get("id")):
        extra["from_id"] = str(sender["id"])

    sizes = [size for size in _as_list(message.get("photo")) if isinstance(size, dict) and as_str(size.get("file_id"))]
    if sizes:
        # The sizes of one picture, usually ascending, but the Bot API promises no order: pick by pixels.
        # (Courier picks the largest under 100 kB to save bandwidth; we want the full picture for analysis.)
        largest = max(sizes, key=_photo_size)
        media.append(Media(content_type="image/jpeg", provider_media_id=largest["file_id"]))
    document = as_dict(message.get("document"))
    mime_type = as_str(document.get("mime_type")).lower()
    if mime_type.startswith("image/") and as_str(document.get("file_id")):
        # A picture sent "as a file" (uncompressed) arrives as a document.
        media.append(Media(content_type=mime_type, provider_media_id=document["file_id"]))
    elif not media:
        kind = next((name for name in UNSUPPORTED_KINDS if message.get(name) is not None), None)
        if kind:
            extra["unsupported_media"] = kind

    contact = as_dict(message.get("contact"))
    if contact:
        user_id = contact.get("user_id")  # set only when the card is a Telegram user's
        extra["contact"] = {
            "phone_number": as_str(contact.get("phone_number")) or None,
            "user_id": str(user_id) if is_int(user_id) else None,
        }
    location = as_dict(message.get("location")) or as_dict(as_dict(message.get("venue")).get("location"))
    if _is_number(location.get("latitude")) and _is_number(location.get("longitude")):
        extra["location"] = {"latitude": location["latitude"], "longitude": location["longitude"]}

    if not (text or media or set(extra) - {"from_id"}):
        return None  # a service message (member joined, chat photo changed, pinned message ...)
    return InboundMessage(
        channel=TELEGRAM,
        provider=provider,
        provider_id=provider_id,
        sender=str(chat_id),
        text=text,
        media=tuple(media),
        received_at=_timestamp(message.get("date")),
        sender_name=as_str(sender.get("first_name")) or None,
        extra=extra,
    )


def _button_press(provider: str, provider_id: str, query: dict) -> InboundMessage | None:
    data = as_str(query.get("data"))
    if not data:
        return None  # a game button (game_short_name): we send no games
    person = as_dict(query.get("from"))
    chat_id = as_dict(as_dict(query.get("message")).get("chat")).get("id")
    if not is_int(chat_id):
        # The button was on an inline-mode message (no chat attached): the person's private chat is their id.
        chat_id = person.get("id")
    if not is_int(chat_id):
        raise MalformedPayload("the Telegram callback_query has neither message.chat.id nor from.id",
                               {"field": "callback_query.from.id"})  # fmt: skip
    extra: dict[str, Any] = {"callback_data": data, "callback_query_id": as_str(query.get("id")) or None}
    if is_int(person.get("id")):
        extra["from_id"] = str(person["id"])
    return InboundMessage(
        channel=TELEGRAM,
        provider=provider,
        provider_id=provider_id,
        sender=str(chat_id),
        text=data,
        received_at=datetime.now(UTC),  # a button press carries no date (message.date is the message's)
        sender_name=as_str(person.get("first_name")) or None,
        extra=extra,
    )


# --- small readers for untyped JSON --------------------------------------------------------------------------------


def is_int(value: object) -> bool:
    """True for a JSON integer (``bool`` is an ``int`` subclass in Python, but not one here)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_number(value: object) -> float:
    return value if _is_number(value) else 0  # type: ignore[return-value]


def as_str(value: object) -> str:
    """``value`` if it is a string, else ``""``."""
    return value if isinstance(value, str) else ""


def as_dict(value: object) -> dict:
    """``value`` if it is a JSON object, else ``{}``."""
    return value if isinstance(value, dict) else {}


def _as_list(value: object) -> list:
    return value if isinstance(value, list) else []


def _photo_size(size: dict) -> tuple[float, float]:
    return _as_number(size.get("width")) * _as_number(size.get("height")), _as_number(size.get("file_size"))


def _timestamp(value: object) -> datetime:
    if is_int(value):
        try:
            return datetime.fromtimestamp(value, UTC)  # type: ignore[arg-type]
        except (OverflowError, OSError, ValueError):
            pass
    return datetime.now(UTC)
