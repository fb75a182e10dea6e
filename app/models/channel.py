"""The message channels: what a person uses to reach Thusa (as opposed to providers, who carry it).

One enum for every place that names a channel: message rows, patients' preferred channel, the envelopes the
adapters build, the flows. Its members are strings (``MessageChannel.SMS == "sms"``), so they are stored, compared
and serialised as the plain names the database and the API have always used.
"""

from __future__ import annotations

from enum import StrEnum


class MessageChannel(StrEnum):
    """A message channel."""

    SMS = "sms"
    WHATSAPP = "whatsapp"
    TELEGRAM = "telegram"
    USSD = "ussd"


SMS = MessageChannel.SMS
WHATSAPP = MessageChannel.WHATSAPP
TELEGRAM = MessageChannel.TELEGRAM
USSD = MessageChannel.USSD

# Plain strings, for CHECK constraints and schema validators (their repr is the SQL list).
CHANNELS = tuple(channel.value for channel in MessageChannel)
PATIENT_CHANNELS = (SMS.value, WHATSAPP.value)  # where reminders go; replies may come from any channel (and USSD)
CHAT_CHANNELS = (TELEGRAM.value, WHATSAPP.value)  # chat apps: buttons, photos, skin consultations
