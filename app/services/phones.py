"""Phone numbers: always stored in E.164 (``+26771234567``)."""

from __future__ import annotations

import phonenumbers


def to_e164(value: str, region: str | None = None) -> str:
    """Normalise a phone number to E.164.

    Args:
        value: the number as written.
        region: the country (``BW``, ``GH``) a number without its country code is read in; ``None``: it must
            carry one.

    Raises:
        ValueError: not a valid number, or (with no region) not written with its country code.
    """
    text = value.strip()
    if not text.startswith("+") and region is None:
        raise ValueError("Write the number in international form with its country code, e.g. +26771234567.")
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError("This is not a phone number.") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError("This is not a valid phone number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
