"""The console sender and media store: used when no provider credentials are set (the embedded default of
``make run``).

It sends nothing; it records that a message would have gone out. The message itself stays readable in the message
log (``GET /api/v1/messages``). The body is logged at DEBUG only, and only the development configuration turns
DEBUG on for this logger, so bodies never reach production logs.

The media store keeps pictures under ``INSTANCE_PATH/console-media/`` (readable by this user only), one file per
picture named by a random id, plus ``<id>.type`` holding its content type. The phone simulator saves a picture
with :func:`save_media` and posts a Telegram or WhatsApp webhook whose media id is that id; when the provider is
not configured, :func:`bots.channels.media.fetch_media` reads it back from here. Pictures older than
``MESSAGE_RETENTION_DAYS`` are deleted by the nightly retention job (:func:`erase_media_before`).
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from app.messaging.envelopes import OutboundMessage, SendResult
from app.models.channel import SMS, TELEGRAM, WHATSAPP
from bots.channels.base import Channel, register
from bots.channels.media import MediaError, too_large

log = logging.getLogger(__name__)

MEDIA_FOLDER = "console-media"
_MEDIA_ID = re.compile(r"[0-9a-f]{32}")  # nothing else can name a file: no path ever comes from outside
_CONTENT_TYPE = re.compile(r"[a-z0-9][a-z0-9.+-]*/[a-z0-9][a-z0-9.+-]*")


def media_folder(config: Mapping) -> Path:
    """``INSTANCE_PATH/console-media``."""
    return Path(config["INSTANCE_PATH"]) / MEDIA_FOLDER


def save_media(config: Mapping, data: bytes, content_type: str | None) -> str:
    """Keep ``data`` in the console media store and return its media id (32 hex digits, a random UUID).

    Args:
        config: the app config (``INSTANCE_PATH``).
        data: the file.
        content_type: its type, e.g. ``image/jpeg`` (stored lower-case, without parameters; anything that is not a
            ``type/subtype`` is stored as none).
    """
    folder = media_folder(config)
    folder.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # instance/ itself: private too when made here
    folder.mkdir(exist_ok=True, mode=0o700)
    media_id = uuid.uuid4().hex
    kind = (content_type or "").split(";")[0].strip().lower()
    _write(folder / f"{media_id}.type", kind.encode() if _CONTENT_TYPE.fullmatch(kind) else b"")
    _write(folder / media_id, data)  # written last: a media id is readable only once both files are complete
    return media_id


def erase_media_before(config: Mapping, cutoff: datetime) -> int:
    """Delete the pictures the store was given before ``cutoff`` (retention), with their type files.

    Returns:
        How many pictures were deleted.
    """
    folder = media_folder(config)
    if not folder.is_dir():
        return 0
    erased = 0
    for path in folder.iterdir():
        media_id = path.name.split(".", 1)[0]
        if not _MEDIA_ID.fullmatch(media_id) or path.is_symlink() or not path.is_file():
            continue  # nothing the store did not write
        try:
            if path.stat().st_mtime < cutoff.timestamp():
                path.unlink()
                erased += path.name == media_id
        except FileNotFoundError:  # a second run at the same time got it first
            continue
    return erased


def _write(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    os.replace(partial, path)


@register
class ConsoleChannel(Channel):
    """Records what would have been sent; serves the pictures of the console media store."""

    name = "console"
    sends = (SMS, WHATSAPP, TELEGRAM)

    def send(self, message: OutboundMessage) -> SendResult:
        log.info("console %s message %s to ...%s", message.channel, message.id, message.address[-3:])
        log.debug("console message %s body: %s", message.id, message.text)
        return SendResult(provider=self.name, provider_id=f"console-{message.id}")

    def fetch_media(self, media: Mapping, *, max_bytes: int) -> tuple[bytes, str | None]:
        """Read a picture saved with :func:`save_media`, by ``provider_media_id``.

        Raises:
            MediaError: not retryable: no such id in the store (``not_found``), bigger than ``max_bytes``, or an
                attachment with only a URL (a provider that is not configured: ``not_configured``).
        """
        media_id = media.get("provider_media_id") or ""
        if not media_id:
            raise MediaError("the provider of this attachment is not configured, and the console media store "
                             "knows attachments by media id only", retryable=False, code="not_configured")  # fmt: skip
        path = media_folder(self.config) / media_id
        if not _MEDIA_ID.fullmatch(media_id) or not path.is_file():
            raise MediaError("console media store: no such media id", retryable=False, code="not_found")
        size = path.stat().st_size
        if size > max_bytes:
            raise too_large("console media store", size, max_bytes)
        kind_path = path.with_name(f"{media_id}.type")
        kind = kind_path.read_text().strip() if kind_path.is_file() else ""
        return path.read_bytes(), kind or media.get("content_type") or None
