"""Phone numbers: always stored in E.164 (``+26771234567``)."""

from __future__ import annotations

import phonenumbers


def to_e164(value: str) -> str:
    """Normalise an international number to E.164.

    Raises:
        ValueError: not a valid number, or not written with its country code (``+267...``, ``+233...``).
    """
    text = value.strip()
    if not text.startswith("+"):
        raise ValueError("Write the number in international form with its country code, e.g. +26771234567.")
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError("This is not a phone number.") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError("This is not a valid phone number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
