"""The console sender: used when no provider credentials are set (the embedded default of ``make run``).

It sends nothing; it records that a message would have gone out. The message itself stays readable in the message
log (``GET /api/v1/messages``). The body is logged at DEBUG only, and only the development configuration turns
DEBUG on for this logger, so bodies never reach production logs.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Mapping
from pathlib import Path

from bots.channels.base import Channel, register
from bots.messages import SMS, TELEGRAM, WHATSAPP, OutboundMessage, SendResult

log = logging.getLogger(__name__)


@register
class ConsoleChannel(Channel):
    """Records what would have been sent."""

    name = "console"
    sends = (SMS, WHATSAPP, TELEGRAM)

    def send(self, message: OutboundMessage) -> SendResult:
        log.info("console %s message %s to ...%s", message.channel, message.id, message.address[-3:])
        log.debug("console message %s body: %s", message.id, message.text)
        return SendResult(provider=self.name, provider_id=f"console-{message.id}")


# --- console media store (issue 7's minimal copy; issue 6 owns fetch_media and the full version) ---------------
# With no chat provider configured, pictures "sent" to the console channel (the phone simulator's photos) are kept
# under INSTANCE_PATH/console-media/: <media_id> holds the bytes, <media_id>.type the content type. The webhook's
# message carries the media id as ``provider_media_id``, as Telegram's file_id or WhatsApp's media id would.

MEDIA_FOLDER = "console-media"


def save_media(config: Mapping, data: bytes, content_type: str) -> str:
    """Keep one picture in the console media store and return its new media id."""
    folder = Path(config["INSTANCE_PATH"]) / MEDIA_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    media_id = uuid.uuid4().hex
    (folder / f"{media_id}.type").write_text(content_type)
    partial = folder / f".{media_id}.partial"
    partial.write_bytes(data)
    os.replace(partial, folder / media_id)  # whole or absent, and after its type: a reader never sees half a photo
    return media_id
