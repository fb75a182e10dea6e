"""Telegram: the Bot API webhook in, python-telegram-bot (PTB) out.

Webhook: ``POST /webhooks/telegram`` (kind ``inbound``) receives one Update as JSON. Telegram signs nothing; with
``setWebhook(secret_token=...)`` it sends the secret back in the ``X-Telegram-Bot-Api-Secret-Token`` header, which
must equal ``TELEGRAM_WEBHOOK_SECRET`` (no secret configured: every update is refused). ``update_id`` is the
idempotency key (``message_id`` is only unique per chat). Telegram retries anything that is not 2xx, so updates we
do not use (edited messages, channel posts, member changes, service messages) parse to an empty result and get a
200. Telegram has no delivery reports: there is no status webhook and ``status_map`` is empty.

This module is the adapter (verify, send, photo downloads) and the webhook registration the CLI runs. Reading an
Update's JSON is :mod:`bots.channels.telegram_updates`; the process's one event loop and shared ``Bot`` (PTB is
asyncio-only) and the masking of the bot token in logs are :mod:`bots.channels.telegram_client`. Send errors never
carry the token.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import re
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from flask import Request

from app.messaging.envelopes import OutboundMessage, SendResult
from app.models.channel import TELEGRAM
from bots.channels import media as media_download
from bots.channels.base import Channel, MediaError, ParsedWebhook, SendError, WebhookRejected, register
from bots.channels.telegram_client import client_for, redact, remember_token
from bots.channels.telegram_client import shutdown as shutdown  # the CLI and tests close the client through here
from bots.channels.telegram_updates import as_dict, as_str, is_int, parse_update

if TYPE_CHECKING:
    from telegram import Bot
    from telegram.error import TelegramError

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name, not a secret)
CAPTION_LIMIT = 1024  # Bot API: photo captions are at most 1024 characters (texts 4096)
CALLBACK_DATA_LIMIT = 64  # Bot API: callback_data is 1-64 bytes


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
        return parse_update(request.get_data(), self.name)

    def send(self, message: OutboundMessage) -> SendResult:
        """Send a text (``sendMessage``) or pictures (``sendPhoto`` by URL, the text as the last one's caption).

        Buttons become an inline keyboard, one button per row, ``callback_data`` = :attr:`Button.id`. A text too
        long for a caption (1024 characters) follows the pictures as its own message.

        Returns:
            SendResult: ``provider_id`` is ``"<chat_id>:<message_id>"`` of the last message sent.

        Raises:
            SendError: 429, connect/write/pool timeouts, network errors and 5xx are retryable; a read timeout (or
                the whole call running out) is ``maybe_sent`` (the request went out); a Bot API 403 ("Forbidden: bot was
                blocked by the user", kicked from the group ...) is ``opted_out``; 400 (chat not found, bad
                request ...) and 401 are permanent.
        """
        token = self.config.get("TELEGRAM_BOT_TOKEN") or ""
        if not token:
            raise SendError("telegram: TELEGRAM_BOT_TOKEN is not set", retryable=False, code="not_configured")
        # python-telegram-bot (with httpx) is ~15 MB: loaded by the first send (a worker), never by a webhook.
        from telegram.error import TelegramError

        for button in message.buttons:
            if not 1 <= len(button.id.encode()) <= CALLBACK_DATA_LIMIT:
                raise SendError(f"telegram: button id must be 1-{CALLBACK_DATA_LIMIT} bytes", retryable=False,
                                code="button_data_invalid")  # fmt: skip
        client, loop = client_for(token, (self.config.get("TELEGRAM_API_BASE_URL") or "").rstrip("/"))
        future = asyncio.run_coroutine_threadsafe(self._send(client.bot, message), loop)
        try:
            chat_id, message_id = future.result(self.send_timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            # The whole call ran out while a request may have been out already: never sent again automatically.
            raise SendError(f"telegram: no answer within {self.send_timeout} s; it may have sent the message",
                            code="read_timeout", maybe_sent=True) from None  # fmt: skip
        except TelegramError as exc:
            raise _send_error(exc) from None
        return SendResult(provider=self.name, provider_id=f"{chat_id}:{message_id}")

    async def _send(self, bot: Bot, message: OutboundMessage) -> tuple[int, int]:
        from telegram import InlineKeyboardButton, InlineKeyboardMarkup  # loaded by send() already

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
        remember_token(token)
        base = (self.config.get("TELEGRAM_API_BASE_URL") or "https://api.telegram.org").rstrip("/")
        response = media_download.request("POST", f"{base}/bot{token}/getFile", "telegram getFile",
                                          data={"file_id": file_id})  # fmt: skip
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or answer.get("ok") is not True:
            answer = answer if isinstance(answer, dict) else {}
            status = answer.get("error_code") if is_int(answer.get("error_code")) else response.status_code
            detail = redact(as_str(answer.get("description")))[:200]
            if 200 <= status < 300:  # a 200 that is not a Bot API answer: a proxy or a glitch, try again later
                raise MediaError("telegram getFile: unreadable answer", retryable=True, code="bad_answer")
            if status == 400:  # "Bad Request: wrong file_id or the file is temporarily unavailable", "file is too big"
                raise MediaError(f"telegram getFile: refused ({detail or 'HTTP 400'})", retryable=False,
                                 code="too_large" if "too big" in detail.lower() else "not_found", status=400)  # fmt: skip
            raise media_download.status_error("telegram getFile", status, detail)
        result = as_dict(answer.get("result"))
        file_path = as_str(result.get("file_path"))
        if not file_path or file_path.startswith("/") or ".." in file_path.split("/"):
            raise MediaError("telegram getFile: the answer has no usable file_path", retryable=False, code="not_found")
        if is_int(result.get("file_size")) and result["file_size"] > max_bytes:
            raise media_download.too_large("telegram file", result["file_size"], max_bytes)
        data, content_type = media_download.download(
            f"{base}/file/bot{token}/{quote(file_path, safe='/')}", "telegram file download", max_bytes=max_bytes
        )
        if content_type in (None, "application/octet-stream"):  # what the Bot API's file server answers
            content_type = media.get("content_type") or None
        return data, content_type


def _send_error(exc: TelegramError) -> SendError:
    """Classify a PTB error. The message never carries the token (PTB's own messages can, e.g. InvalidToken)."""
    import httpx  # loaded with PTB by send()
    from telegram.error import BadRequest, ChatMigrated, Forbidden, InvalidToken, NetworkError, RetryAfter, TimedOut

    detail = redact(f"{exc.__class__.__name__}: {exc.message}")
    if isinstance(exc, RetryAfter):
        # exc.message says how long to wait; reading exc.retry_after warns (PTB's int -> timedelta migration).
        return SendError(f"telegram: rate limited ({detail})", code="429")
    if isinstance(exc, TimedOut):
        if isinstance(exc.__cause__, httpx.ReadTimeout):
            # PTB wraps every httpx timeout in TimedOut; only a read timeout comes after the request went out.
            return SendError(f"telegram: no answer in time; it may have sent the message ({detail})",
                             code="read_timeout", maybe_sent=True)  # fmt: skip
        return SendError(f"telegram: timed out ({detail})", code="timeout")  # connect, write or pool: not sent
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
    from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, TelegramError  # as in send()

    client, loop = client_for(token, (config.get("TELEGRAM_API_BASE_URL") or "").rstrip("/"))
    future = asyncio.run_coroutine_threadsafe(call(client.bot), loop)
    try:
        return future.result(TelegramChannel.send_timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise WebhookSetupError(f"telegram: {method}: no answer within {TelegramChannel.send_timeout} s") from None
    except InvalidToken:
        raise WebhookSetupError(f"telegram: {method}: the bot token (TELEGRAM_BOT_TOKEN) was rejected") from None
    except TelegramError as exc:
        detail = redact(f"{exc.__class__.__name__}: {exc.message}").replace(token, "<token>")
        if isinstance(exc, BadRequest | Forbidden):  # BadRequest is a NetworkError subclass: test it first
            raise WebhookSetupError(f"telegram: {method} refused ({detail})") from None
        if isinstance(exc, NetworkError):  # TimedOut, connection errors, 5xx
            raise WebhookSetupError(f"telegram: {method}: Bot API unreachable or failing ({detail})") from None
        raise WebhookSetupError(f"telegram: {method} failed ({detail})") from None
