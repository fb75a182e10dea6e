"""GSM 03.38 (GSM-7) character set: what fits one SMS segment without switching to UCS-2."""

from __future__ import annotations

import unicodedata

BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
EXTENSION = set("^{}\\[~]|€\f")  # each costs two septets (escape + character)
SINGLE_SEGMENT = 160


def septets(text: str) -> int | None:
    """Length in GSM-7 septets, or ``None`` when a character is outside GSM-7 (the SMS would go as UCS-2)."""
    total = 0
    for char in text:
        if char in BASIC:
            total += 1
        elif char in EXTENSION:
            total += 2
        else:
            return None
    return total


def fits_one_segment(text: str) -> bool:
    """True when ``text`` is GSM-7 and fits a single 160-septet SMS segment."""
    length = septets(text)
    return length is not None and length <= SINGLE_SEGMENT


def sms_encoding(text: str) -> tuple[str, int]:
    """How an SMS of ``text`` goes out: ``("GSM-7", segments)`` or ``("UCS-2", segments)``.

    A single segment holds 160 GSM-7 septets or 70 UCS-2 code units; concatenated segments lose room to their
    header (153 and 67).
    """
    length = septets(text)
    if length is not None:
        return "GSM-7", 1 if length <= SINGLE_SEGMENT else -(-length // 153)
    units = len(text.encode("utf-16-le")) // 2
    return "UCS-2", 1 if units <= 70 else -(-units // 67)


def fold(text: str) -> str:
    """``text`` with every character outside GSM-7 replaced by its plain Latin letter (``š`` → ``s``) or ``?``.

    For names shown in SMS (a clinic called "Tšhabong Clinic"): one non-GSM-7 character would turn the whole SMS
    into UCS-2, 70 characters per segment instead of 160.
    """
    out = []
    for char in text:
        if char in BASIC or char in EXTENSION:
            out.append(char)
            continue
        base = "".join(c for c in unicodedata.normalize("NFKD", char) if c in BASIC)
        out.append(base or ("'" if char in "‘’" else '"' if char in "“”" else "-" if char in "–—" else "?"))
    return "".join(out)
