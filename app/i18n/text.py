"""The catalog's entry type, :class:`Text`, on its own so every area module of the catalog can import it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Text:
    """One catalog entry.

    Attributes:
        en: English text, a ``str.format`` template.
        tn: Setswana text, same placeholders.
        channel: ``sms`` (one GSM-7 segment, 160 characters), ``ussd`` (160 characters after ``CON``/``END``),
            ``chat`` (Telegram/WhatsApp, 1,024 characters), ``button`` (a chat button title, 20 characters) or
            ``web`` (a label of the phone simulator page, never sent to a phone).
        example: the longest realistic values of the placeholders; the limits are checked with these.
        tn_reviewed: False until a native Setswana speaker from Botswana has approved ``tn``.
        note: why the wording is what it is (glossary entries used, doubts).
    """

    en: str
    tn: str
    channel: str = "sms"
    example: dict = field(default_factory=dict)
    tn_reviewed: bool = False
    note: str = ""
