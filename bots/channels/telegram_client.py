"""The process's Telegram Bot API client: one event loop, one ``Bot`` per token, and the token kept out of logs.

* PTB (python-telegram-bot) is asyncio-only and its ``Bot`` binds its HTTP pool to the event loop it first ran on
  (a ``Bot`` reused across ``asyncio.run`` calls fails with "Event loop is closed"). Each process therefore keeps
  ONE event loop on a daemon thread and ONE ``Bot`` per (token, API URL); sync callers (Flask, RQ workers) submit
  coroutines to it with :func:`client_for`. The loop is made lazily, and again in a forked child (gunicorn / RQ
  fork after import).
* The bot token is part of every Bot API URL. httpx logs request URLs at INFO and PTB logs its base URL at DEBUG:
  both loggers get a filter that masks the token (:func:`redact`), and httpx is set to WARNING.

The adapter (:mod:`bots.channels.telegram`) sends and registers its webhook through this module.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from telegram import Bot
    from telegram.request import HTTPXRequest

log = logging.getLogger("bots.channels.telegram")  # the adapter's logger, as before the client had its own module

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
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def redact(text: str) -> str:
    """``text`` with every bot token this process has used (and any token-shaped URL part) masked."""
    for token in tuple(_known_tokens):
        text = text.replace(token, "<token>").replace(quote(token, safe=""), "<token>")
    return _TOKEN_IN_URL.sub(r"\1<token>", text)


_REDACT = _RedactToken()
# A logger's filters only see records made on that very logger, so each logger that prints URLs gets one.
for _name in ("httpx", "telegram.Bot", "telegram.ext.ExtBot", "urllib3.connectionpool"):
    logging.getLogger(_name).addFilter(_REDACT)
logging.getLogger("httpx").setLevel(logging.WARNING)


def remember_token(token: str) -> None:
    """Mask ``token`` in logs and error texts from now on (:func:`redact`)."""
    _known_tokens.add(token)


# --- one event loop and one Bot per process -----------------------------------------------------------------------


@dataclass
class Client:
    """A shared ``Bot`` and its two HTTP request pools (updates, everything else)."""

    bot: Bot
    requests: tuple[HTTPXRequest, HTTPXRequest]


_lock = threading.Lock()
_pid: int | None = None
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_clients: dict[tuple[str, str], Client] = {}


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


def client_for(token: str, api_base_url: str) -> tuple[Client, asyncio.AbstractEventLoop]:
    """The shared Bot for ``token`` at ``api_base_url`` ('' = the real API) and the loop it runs on."""
    # python-telegram-bot and httpx (~15 MB) are loaded by the first send, so a web process that sends nothing
    # on Telegram never holds them.
    from telegram import Bot
    from telegram.request import HTTPXRequest

    with _lock:
        loop = _event_loop()
        key = (token, api_base_url)
        client = _clients.get(key)
        if client is None:
            remember_token(token)
            # PTB never retries by itself; httpx's transport does not retry either. Timeouts are passed per call.
            requests = (HTTPXRequest(connection_pool_size=1), HTTPXRequest(connection_pool_size=32))
            urls = {}
            if api_base_url:
                urls = {"base_url": f"{api_base_url}/bot", "base_file_url": f"{api_base_url}/file/bot"}
            bot = Bot(token, request=requests[1], get_updates_request=requests[0], **urls)
            client = _clients[key] = Client(bot, requests)
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
