"""Telegram: the Bot API webhook in, python-telegram-bot (PTB) out.

Webhook: ``POST /webhooks/telegram`` (kind ``inbound``) receives one Update as JSON. Telegram signs nothing; with
``setWebhook(secret_token=...)`` it sends the secret back in the ``X-Telegram-Bot-Api-Secret-Token`` header, which
must equal ``TELEGRAM_WEBHOOK_SECRET`` (no secret configured: every update is refused). ``update_id`` is the
idempotency key (``message_id`` is only unique per chat). Telegram retries anything that is not 2xx, so updates we
do not use (edited messages, channel posts, member changes, service messages) parse to an empty result and get a
200. Telegram has no delivery reports: there is no status webhook and ``status_map`` is empty.

Quirks:

* ``message.photo`` lists sizes of ONE image; we keep only the largest (by pixels) as one :class:`Media` holding the
  ``file_id``. The download URL (``getFile``) contains the bot token, so only the ``file_id`` is ever stored.
* Replies go to ``chat.id`` (negative for groups), which is the sender address; ``from.id`` (the person) is kept in
  ``extra["from_id"]`` so a shared contact can be checked to be the sender's own.
* Courier-era payloads lack fields PTB's ``Update.de_json`` requires (``from.is_bot``), so the update is read as
  plain JSON here; PTB is used only to send.
* PTB is asyncio-only and its ``Bot`` binds its HTTP pool to the event loop it first ran on (a ``Bot`` reused across
  ``asyncio.run`` calls fails with "Event loop is closed"). Each process therefore keeps ONE event loop on a
  daemon thread and ONE ``Bot`` per (token, API URL); sync callers (Flask, RQ workers) submit coroutines to it.
  The loop is made lazily, and again in a forked child (gunicorn / RQ fork after import).
* The bot token is part of every Bot API URL. httpx logs request URLs at INFO and PTB logs its base URL at DEBUG:
  both loggers get a filter that masks the token, httpx is set to WARNING, and send errors never carry it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from flask import Request
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest

from app.messaging.envelopes import InboundMessage, Media, OutboundMessage, SendResult
from app.models.channel import TELEGRAM
from bots.channels import media as media_download
from bots.channels.base import Channel, MalformedPayload, ParsedWebhook, SendError, WebhookRejected, register
from bots.channels.media import MediaError

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name, not a secret)
CAPTION_LIMIT = 1024  # Bot API: photo captions are at most 1024 characters (texts 4096)
CALLBACK_DATA_LIMIT = 64  # Bot API: callback_data is 1-64 bytes

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


# --- keeping the bot token out of logs ------------------------------------------------------------------------------

_TOKEN_IN_URL = re.compile(r"(/bot|/file/bot)[^/\s\"'`]+")
_known_tokens: set[str] = set()


class _RedactToken(logging.Filter):
    """Masks bot tokens in records of the loggers that print Bot API URLs (httpx at INFO, PTB at DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record: let the handler report it, a filter must not raise into the caller
            return True
        redacted = _redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def _redact(text: str) -> str:
    for token in tuple(_known_tokens):
        text = text.replace(token, "<token>").replace(quote(token, safe=""), "<token>")
    return _TOKEN_IN_URL.sub(r"\1<token>", text)


_REDACT = _RedactToken()
# A logger's filters only see records made on that very logger, so each logger that prints URLs gets one.
for _name in ("httpx", "telegram.Bot", "telegram.ext.ExtBot", "urllib3.connectionpool"):
    logging.getLogger(_name).addFilter(_REDACT)
logging.getLogger("httpx").setLevel(logging.WARNING)


# --- one event loop and one Bot per process -----------------------------------------------------------------------


@dataclass
class _Client:
    bot: Bot
    requests: tuple[HTTPXRequest, HTTPXRequest]


_lock = threading.Lock()
_pid: int | None = None
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_clients: dict[tuple[str, str], _Client] = {}


def _forget_after_fork() -> None:
    # The loop thread does not survive fork and the parent's httpx pools are bound to the parent's loop: a child
    # starts from nothing. The lock is replaced too, in case another thread held it at the moment of the fork.
    global _lock, _pid, _loop, _thread, _clients
    _lock, _pid, _loop, _thread, _clients = threading.Lock(), None, None, None, {}


os.register_at_fork(after_in_child=_forget_after_fork)


def _event_loop() -> asyncio.AbstractEventLoop:
    """The process's Bot API event loop, started on first use (and again in a forked child). Call with _lock."""
    global _pid, _loop, _thread, _clients
    if _pid != os.getpid() or _loop is None or _thread is None or not _thread.is_alive():
        _clients = {}  # Bots made for another loop cannot be used on the new one
        _loop = asyncio.new_event_loop()
        _thread = threading.Thread(target=_loop.run_forever, name="telegram-bot-api", daemon=True)
        _thread.start()
        _pid = os.getpid()
    return _loop


def _client(token: str, api_base_url: str) -> tuple[_Client, asyncio.AbstractEventLoop]:
    """The shared Bot for ``token`` at ``api_base_url`` ('' = the real API) and the loop it runs on."""
    with _lock:
        loop = _event_loop()
        key = (token, api_base_url)
        client = _clients.get(key)
        if client is None:
            _known_tokens.add(token)
            # PTB never retries by itself; httpx's transport does not retry either. Timeouts are passed per call.
            requests = (HTTPXRequest(connection_pool_size=1), HTTPXRequest(connection_pool_size=32))
            urls = {}
            if api_base_url:
                urls = {"base_url": f"{api_base_url}/bot", "base_file_url": f"{api_base_url}/file/bot"}
            bot = Bot(token, request=requests[1], get_updates_request=requests[0], **urls)
            client = _clients[key] = _Client(bot, requests)
        return client, loop


def shutdown(timeout: float = 5.0) -> None:
    """Close every Bot's HTTP pool and stop the event loop thread (tests; a clean process exit)."""
    global _pid, _loop, _thread, _clients
    with _lock:
        loop, thread, clients = _loop, _thread, list(_clients.values())
        _pid, _loop, _thread, _clients = None, None, None, {}
    if loop is None:
        return
    if thread is not None and thread.is_alive():

        async def close_all() -> None:
            # Bot.shutdown() does nothing for a Bot that was never initialize()d (we skip that: it calls getMe),
            # so the request objects are closed directly.
            for client in clients:
                for request in client.requests:
                    await request.shutdown()

        try:
            asyncio.run_coroutine_threadsafe(close_all(), loop).result(timeout)
        except Exception:  # closing is best effort
            log.warning("telegram: closing the Bot API clients failed", exc_info=False)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
    if not loop.is_running():
        loop.close()


# --- the adapter --------------------------------------------------------------------------------------------------


@register
class TelegramChannel(Channel):
    """Telegram Bot API: inbound updates by webhook, replies with ``sendMessage`` / ``sendPhoto``.

    Timeouts (seconds) are class attributes so tests can shorten them: each HTTP phase is bounded by its own
    timeout and the whole call by ``send_timeout``.
    """

    name = "telegram"
    sends = (TELEGRAM,)
    settings = ("TELEGRAM_BOT_TOKEN",)
    status_map: dict[str, str] = {}

    connect_timeout = 3.0
    write_timeout = 3.0
    read_timeout = 7.0
    pool_timeout = 2.0
    send_timeout = 10.0

    # --- inbound ----------------------------------------------------------------------------------------------

    def verify(self, request: Request, kind: str) -> None:
        """Check the secret header Telegram echoes from ``setWebhook(secret_token=...)``.

        Args:
            request: the Flask request.
            kind: only ``inbound`` exists for Telegram.

        Raises:
            WebhookRejected: 403 when ``TELEGRAM_WEBHOOK_SECRET`` is unset or the header is missing or different;
                404 for any other kind.
        """
        if kind != "inbound":
            super().verify(request, kind)
        secret = self.config.get("TELEGRAM_WEBHOOK_SECRET") or ""
        if not secret:
            raise WebhookRejected("TELEGRAM_WEBHOOK_SECRET is not set: Telegram updates cannot be authenticated")
        given = request.headers.get(SECRET_HEADER)
        if given is None:
            raise WebhookRejected(f"missing {SECRET_HEADER} header")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            raise WebhookRejected(f"wrong {SECRET_HEADER} header")

    def parse(self, request: Request, kind: str) -> ParsedWebhook:
        """Read one Update: a message or a button press becomes an :class:`InboundMessage`.

        ``provider_id`` is the ``update_id``; ``sender`` is the chat id as a string. ``extra`` may hold
        ``from_id`` (the person's user id), ``callback_data`` and ``callback_query_id`` (button press), ``contact``
        (``phone_number``, ``user_id``: a shared contact card, possibly someone else's), ``location``
        (``latitude``, ``longitude``) and ``unsupported_media`` (``voice``, ``sticker``, a non-image
        ``document`` ...). Other update types give an empty result.

        Raises:
            MalformedPayload: the body is not a JSON object with an integer ``update_id``, or a message has no chat.
        """
        if kind != "inbound":
            return super().parse(request, kind)
        try:
            update = json.loads(request.get_data())
        except (ValueError, UnicodeDecodeError):
            raise MalformedPayload("the Telegram update is not JSON") from None
        if not isinstance(update, dict):
            raise MalformedPayload("the Telegram update is not a JSON object")
        update_id = update.get("update_id")
        if not _is_int(update_id):
            raise MalformedPayload("the Telegram update has no integer update_id", {"field": "update_id"})
        provider_id = str(update_id)
        if isinstance(update.get("message"), dict):
            message = self._message(provider_id, update["message"])
        elif isinstance(update.get("callback_query"), dict):
            message = self._button_press(provider_id, update["callback_query"])
        else:
            message = None  # edited_message, channel_post, my_chat_member ...: nothing for the service
        return ParsedWebhook(messages=[message] if message else [])

    def _message(self, provider_id: str, message: dict) -> InboundMessage | None:
        chat_id = _dict(message.get("chat")).get("id")
        if not _is_int(chat_id):
            raise MalformedPayload("the Telegram message has no chat.id", {"field": "message.chat.id"})
        sender = _dict(message.get("from"))
        text = _str(message.get("text")) or _str(message.get("caption"))
        media: list[Media] = []
        extra: dict[str, Any] = {}
        if _is_int(sender.get("id")):
            extra["from_id"] = str(sender["id"])

        sizes = [size for size in _list(message.get("photo")) if isinstance(size, dict) and _str(size.get("file_id"))]
        if sizes:
            # The sizes of one picture, usually ascending, but the Bot API promises no order: pick by pixels.
            # (Courier picks the largest under 100 kB to save bandwidth; we want the full picture for analysis.)
            largest = max(sizes, key=_photo_size)
            media.append(Media(content_type="image/jpeg", provider_media_id=largest["file_id"]))
        document = _dict(message.get("document"))
        mime_type = _str(document.get("mime_type")).lower()
        if mime_type.startswith("image/") and _str(document.get("file_id")):
            # A picture sent "as a file" (uncompressed) arrives as a document.
            media.append(Media(content_type=mime_type, provider_media_id=document["file_id"]))
        elif not media:
            kind = next((name for name in UNSUPPORTED_KINDS if message.get(name) is not None), None)
            if kind:
                extra["unsupported_media"] = kind

        contact = _dict(message.get("contact"))
        if contact:
            user_id = contact.get("user_id")  # set only when the card is a Telegram user's
            extra["contact"] = {
                "phone_number": _str(contact.get("phone_number")) or None,
                "user_id": str(user_id) if _is_int(user_id) else None,
            }
        location = _dict(message.get("location")) or _dict(_dict(message.get("venue")).get("location"))
        if _is_number(location.get("latitude")) and _is_number(location.get("longitude")):
            extra["location"] = {"latitude": location["latitude"], "longitude": location["longitude"]}

        if not (text or media or set(extra) - {"from_id"}):
            return None  # a service message (member joined, chat photo changed, pinned message ...)
        return InboundMessage(
            channel=TELEGRAM,
            provider=self.name,
            provider_id=provider_id,
            sender=str(chat_id),
            text=text,
            media=tuple(media),
            received_at=_timestamp(message.get("date")),
            sender_name=_str(sender.get("first_name")) or None,
            extra=extra,
        )

    def _button_press(self, provider_id: str, query: dict) -> InboundMessage | None:
        data = _str(query.get("data"))
        if not data:
            return None  # a game button (game_short_name): we send no games
        person = _dict(query.get("from"))
        chat_id = _dict(_dict(query.get("message")).get("chat")).get("id")
        if not _is_int(chat_id):
            # The button was on an inline-mode message (no chat attached): the person's private chat is their id.
            chat_id = person.get("id")
        if not _is_int(chat_id):
            raise MalformedPayload("the Telegram callback_query has neither message.chat.id nor from.id",
                                   {"field": "callback_query.from.id"})  # fmt: skip
        extra: dict[str, Any] = {"callback_data": data, "callback_query_id": _str(query.get("id")) or None}
        if _is_int(person.get("id")):
            extra["from_id"] = str(person["id"])
        return InboundMessage(
            channel=TELEGRAM,
            provider=self.name,
            provider_id=provider_id,
            sender=str(chat_id),
            text=data,
            received_at=datetime.now(UTC),  # a button press carries no date (message.date is the message's)
            sender_name=_str(person.get("first_name")) or None,
            extra=extra,
        )

    # --- outbound ---------------------------------------------------------------------------------------------

    def send(self, message: OutboundMessage) -> SendResult:
        """Send a text (``sendMessage``) or pictures (``sendPhoto`` by URL, the text as the last one's caption).

        Buttons become an inline keyboard, one button per row, ``callback_data`` = :attr:`Button.id`. A text too
        long for a caption (1024 characters) follows the pictures as its own message.

        Returns:
            SendResult: ``provider_id`` is ``"<chat_id>:<message_id>"`` of the last message sent.

        Raises:
            SendError: 429, timeouts, network errors and 5xx are retryable; a Bot API 403 ("Forbidden: bot was
                blocked by the user", kicked from the group ...) is ``opted_out``; 400 (chat not found, bad
                request ...) and 401 are permanent.
        """
        token = self.config.get("TELEGRAM_BOT_TOKEN") or ""
        if not token:
            raise SendError("telegram: TELEGRAM_BOT_TOKEN is not set", retryable=False, code="not_configured")
        for button in message.buttons:
            if not 1 <= len(button.id.encode()) <= CALLBACK_DATA_LIMIT:
                raise SendError(f"telegram: button id must be 1-{CALLBACK_DATA_LIMIT} bytes", retryable=False,
                                code="button_data_invalid")  # fmt: skip
        client, loop = _client(token, (self.config.get("TELEGRAM_API_BASE_URL") or "").rstrip("/"))
        future = asyncio.run_coroutine_threadsafe(self._send(client.bot, message), loop)
        try:
            chat_id, message_id = future.result(self.send_timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise SendError(f"telegram: no answer within {self.send_timeout} s", code="timeout") from None
        except TelegramError as exc:
            raise _send_error(exc) from None
        return SendResult(provider=self.name, provider_id=f"{chat_id}:{message_id}")

    async def _send(self, bot: Bot, message: OutboundMessage) -> tuple[int, int]:
        timeouts = {
            "connect_timeout": self.connect_timeout,
            "write_timeout": self.write_timeout,
            "read_timeout": self.read_timeout,
            "pool_timeout": self.pool_timeout,
        }
        markup = None
        if message.buttons:
            markup = InlineKeyboardMarkup(
                [[InlineKeyboardButton(button.title, callback_data=button.id)] for button in message.buttons]
            )
        caption_fits = len(message.text) <= CAPTION_LIMIT
        sent = None
        for number, url in enumerate(message.media_urls, start=1):
            last = number == len(message.media_urls)
            with_text = last and caption_fits
            sent = await bot.send_photo(
                chat_id=message.address,
                photo=url,
                caption=message.text if with_text and message.text else None,
                reply_markup=markup if with_text else None,
                **timeouts,
            )
        if sent is None or not caption_fits:
            sent = await bot.send_message(chat_id=message.address, text=message.text, reply_markup=markup, **timeouts)
        return sent.chat.id, sent.message_id

    # --- media (skin photos) ---------------------------------------------------------------------------------

    def fetch_media(self, media: Mapping, *, max_bytes: int) -> tuple[bytes, str | None]:
        """Download a photo by its ``file_id``: ``getFile`` (Bot API), then ``/file/bot<token>/<file_path>``.

        The file path is asked for every time (it is valid for at least an hour only), so only the ``file_id`` is
        ever stored. ``getFile``'s ``file_size`` is checked against ``max_bytes`` before downloading.

        Raises:
            MediaError: a wrong or expired ``file_id`` (Bot API 400) or a missing file is ``not_found``; 429,
                5xx, unreadable answers and network failures are retryable. Never carries the token.
        """
        token = self.config.get("TELEGRAM_BOT_TOKEN") or ""
        file_id = media.get("provider_media_id") or ""
        if not file_id:
            raise MediaError("telegram: the attachment has no file_id", retryable=False, code="not_found")
        _known_tokens.add(token)
        base = (self.config.get("TELEGRAM_API_BASE_URL") or "https://api.telegram.org").rstrip("/")
        response = media_download.request("POST", f"{base}/bot{token}/getFile", "telegram getFile",
                                          data={"file_id": file_id})  # fmt: skip
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or answer.get("ok") is not True:
            answer = answer if isinstance(answer, dict) else {}
            status = answer.get("error_code") if _is_int(answer.get("error_code")) else response.status_code
            detail = _redact(_str(answer.get("description")))[:200]
            if 200 <= status < 300:  # a 200 that is not a Bot API answer: a proxy or a glitch, try again later
                raise MediaError("telegram getFile: unreadable answer", retryable=True, code="bad_answer")
            if status == 400:  # "Bad Request: wrong file_id or the file is temporarily unavailable", "file is too big"
                raise MediaError(f"telegram getFile: refused ({detail or 'HTTP 400'})", retryable=False,
                                 code="too_large" if "too big" in detail.lower() else "not_found", status=400)  # fmt: skip
            raise media_download.status_error("telegram getFile", status, detail)
        result = _dict(answer.get("result"))
        file_path = _str(result.get("file_path"))
        if not file_path or file_path.startswith("/") or ".." in file_path.split("/"):
            raise MediaError("telegram getFile: the answer has no usable file_path", retryable=False, code="not_found")
        if _is_int(result.get("file_size")) and result["file_size"] > max_bytes:
            raise media_download.too_large("telegram file", result["file_size"], max_bytes)
        data, content_type = media_download.download(
            f"{base}/file/bot{token}/{quote(file_path, safe='/')}", "telegram file download", max_bytes=max_bytes
        )
        if content_type in (None, "application/octet-stream"):  # what the Bot API's file server answers
            content_type = media.get("content_type") or None
        return data, content_type


def _send_error(exc: TelegramError) -> SendError:
    """Classify a PTB error. The message never carries the token (PTB's own messages can, e.g. InvalidToken)."""
    detail = _redact(f"{exc.__class__.__name__}: {exc.message}")
    if isinstance(exc, RetryAfter):
        # exc.message says how long to wait; reading exc.retry_after warns (PTB's int -> timedelta migration).
        return SendError(f"telegram: rate limited ({detail})", code="429")
    if isinstance(exc, TimedOut):
        return SendError(f"telegram: timed out ({detail})", code="timeout")
    if isinstance(exc, Forbidden):
        # The Bot API's 403s all read "Forbidden: ..." (blocked by the user, user deactivated, kicked from the
        # group, can't initiate conversation): the chat is closed to us. Anything else behind a 403 (a proxy, a
        # misconfigured bot) says nothing about the person, so it does not opt them out.
        if exc.message.lower().startswith("forbidden"):
            return SendError(f"telegram: the chat refuses our messages ({detail})", code="403", opted_out=True)
        return SendError(f"telegram: request refused ({detail})", retryable=False, code="403")
    if isinstance(exc, BadRequest):  # a NetworkError subclass in PTB: test it first
        return SendError(f"telegram: request refused ({detail})", retryable=False, code="400")
    if isinstance(exc, InvalidToken):
        return SendError("telegram: the bot token was rejected", retryable=False, code="401")
    if isinstance(exc, ChatMigrated):
        return SendError(f"telegram: the group moved to chat {exc.new_chat_id}", retryable=False, code="migrated")
    if isinstance(exc, NetworkError):  # connection errors, 5xx, 502 ...
        return SendError(f"telegram: network or server error ({detail})", code="network")
    return SendError(f"telegram: {detail}", code="error")  # e.g. an unreadable answer: may work next time


# --- registering the webhook (``flask --app wsgi telegram set-webhook`` / ``webhook-info``) ---------------------

WEBHOOK_PATH = "/webhooks/telegram"
ALLOWED_UPDATES = ("message", "callback_query")  # what parse() reads; Telegram then sends nothing else
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")  # setWebhook refuses any other secret_token
_LOCAL_HOSTS = ("127.0.0.1", "localhost")


class WebhookSetupError(Exception):
    """The webhook could not be registered or read. The message is fit to show and never holds the token."""


def webhook_url(config: Mapping[str, Any]) -> str:
    """``PUBLIC_BASE_URL`` + ``/webhooks/telegram``, checked the way Telegram will check it.

    Telegram only calls https URLs. Plain http is accepted for 127.0.0.1 / localhost only, so tests (and a local
    Bot API server) can run; the real Bot API refuses such a URL.

    Raises:
        WebhookSetupError: ``PUBLIC_BASE_URL`` is unset, not a URL, or http on another host.
    """
    base = (config.get("PUBLIC_BASE_URL") or "").strip().rstrip("/")
    if not base:
        raise WebhookSetupError("PUBLIC_BASE_URL is not set: Telegram needs the service's public https URL")
    try:
        parts = urlsplit(base)
        host = parts.hostname
    except ValueError:
        host = None
    if host is None or parts.scheme not in ("https", "http") or parts.query or parts.fragment:
        raise WebhookSetupError(f"PUBLIC_BASE_URL is not an http(s) URL like https://thusa.example.org: {base!r}")
    if parts.scheme == "http" and host not in _LOCAL_HOSTS:
        raise WebhookSetupError(f"PUBLIC_BASE_URL must be https (Telegram calls only https webhooks): {base!r}")
    return base + WEBHOOK_PATH


def set_webhook(config: Mapping[str, Any], *, drop_pending: bool = False) -> str:
    """Register this service's webhook with Telegram (``setWebhook``) and return the URL registered.

    ``url`` is :func:`webhook_url`, ``secret_token`` is ``TELEGRAM_WEBHOOK_SECRET`` (what :meth:`TelegramChannel.
    verify` expects back), ``allowed_updates`` is ``message`` and ``callback_query``.

    Args:
        config: the app settings (``TELEGRAM_BOT_TOKEN``, ``TELEGRAM_WEBHOOK_SECRET``, ``PUBLIC_BASE_URL``,
            ``TELEGRAM_API_BASE_URL``).
        drop_pending: ask Telegram to drop the updates it has queued but not delivered yet.

    Raises:
        WebhookSetupError: a setting is missing or invalid (nothing is sent), or the Bot API refused or could not
            be reached.
    """
    token = _setup_token(config)
    secret = config.get("TELEGRAM_WEBHOOK_SECRET") or ""
    if not secret:
        raise WebhookSetupError("TELEGRAM_WEBHOOK_SECRET is not set: without it every Telegram update is refused")
    if not _SECRET_TOKEN.fullmatch(secret):
        raise WebhookSetupError("TELEGRAM_WEBHOOK_SECRET must be 1-256 characters, only A-Z, a-z, 0-9, _ and - "
                                "(Telegram refuses any other secret_token)")  # fmt: skip
    url = webhook_url(config)

    async def call(bot: Bot) -> bool:
        return await bot.set_webhook(url=url, secret_token=secret, allowed_updates=list(ALLOWED_UPDATES),
                                     drop_pending_updates=drop_pending, **_timeouts())  # fmt: skip

    if _setup_call(config, token, "setWebhook", call) is not True:
        raise WebhookSetupError("telegram: setWebhook did not answer true")
    return url


def webhook_info(config: Mapping[str, Any]) -> dict[str, Any]:
    """Telegram's ``getWebhookInfo``: ``url`` ('' when none is set), ``pending_update_count``,
    ``last_error_message`` and ``last_error_date`` (None when there was no error), ``allowed_updates``.

    Raises:
        WebhookSetupError: ``TELEGRAM_BOT_TOKEN`` is unset, or the Bot API refused or could not be reached.
    """
    token = _setup_token(config)

    async def call(bot: Bot) -> Any:
        return await bot.get_webhook_info(**_timeouts())

    info = _setup_call(config, token, "getWebhookInfo", call)
    return {
        "url": (info.url or "").replace(token, "<token>"),
        "pending_update_count": info.pending_update_count,
        "last_error_message": info.last_error_message,
        "last_error_date": info.last_error_date.isoformat() if info.last_error_date else None,
        "allowed_updates": list(info.allowed_updates or ()),
    }


def _setup_token(config: Mapping[str, Any]) -> str:
    token = config.get("TELEGRAM_BOT_TOKEN") or ""
    if not token:
        raise WebhookSetupError("TELEGRAM_BOT_TOKEN is not set")
    return token


def _timeouts() -> dict[str, float]:
    return {
        "connect_timeout": TelegramChannel.connect_timeout,
        "write_timeout": TelegramChannel.write_timeout,
        "read_timeout": TelegramChannel.read_timeout,
        "pool_timeout": TelegramChannel.pool_timeout,
    }


def _setup_call(config: Mapping[str, Any], token: str, method: str,
                call: Callable[[Bot], Coroutine[Any, Any, Any]]) -> Any:  # fmt: skip
    """Run ``call(bot)`` on the process's shared loop and Bot, bounded by ``TelegramChannel.send_timeout``."""
    client, loop = _client(token, (config.get("TELEGRAM_API_BASE_URL") or "").rstrip("/"))
    future = asyncio.run_coroutine_threadsafe(call(client.bot), loop)
    try:
        return future.result(TelegramChannel.send_timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise WebhookSetupError(f"telegram: {method}: no answer within {TelegramChannel.send_timeout} s") from None
    except InvalidToken:
        raise WebhookSetupError(f"telegram: {method}: the bot token (TELEGRAM_BOT_TOKEN) was rejected") from None
    except TelegramError as exc:
        detail = _redact(f"{exc.__class__.__name__}: {exc.message}").replace(token, "<token>")
        if isinstance(exc, BadRequest | Forbidden):  # BadRequest is a NetworkError subclass: test it first
            raise WebhookSetupError(f"telegram: {method} refused ({detail})") from None
        if isinstance(exc, NetworkError):  # TimedOut, connection errors, 5xx
            raise WebhookSetupError(f"telegram: {method}: Bot API unreachable or failing ({detail})") from None
        raise WebhookSetupError(f"telegram: {method} failed ({detail})") from None


# --- small readers for untyped JSON --------------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(value: object) -> float:
    return value if _is_number(value) else 0  # type: ignore[return-value]


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _dict(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list:
    return value if isinstance(value, list) else []


def _photo_size(size: dict) -> tuple[float, float]:
    return _number(size.get("width")) * _number(size.get("height")), _number(size.get("file_size"))


def _timestamp(value: object) -> datetime:
    if _is_int(value):
        try:
            return datetime.fromtimestamp(value, UTC)  # type: ignore[arg-type]
        except (OverflowError, OSError, ValueError):
            pass
    return datetime.now(UTC)
