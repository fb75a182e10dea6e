"""The console sender: used when no provider credentials are set (the embedded default of ``make run``).

It sends nothing; it records that a message would have gone out. The message itself stays readable in the message
log (``GET /api/v1/messages``). The body is logged at DEBUG only, and only the development configuration turns
DEBUG on for this logger, so bodies never reach production logs.
"""

from __future__ import annotations

import logging

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
