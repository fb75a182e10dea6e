"""Every patient- and staff-facing text, in English (``en``) and Setswana (``tn``).

``t(key, language, **params)`` is the one way to get a text. The catalog is typed data so a test can check that
every entry exists in both languages, stays inside its channel's limits (GSM-7, one SMS segment where it must)
and that Setswana still waiting for a native speaker's review is marked ``tn_reviewed=False``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LANGUAGES = ("en", "tn")
DEFAULT_LANGUAGE = "en"


@dataclass(frozen=True)
class Text:
    """One catalog entry.

    Attributes:
        en: English text, a ``str.format`` template.
        tn: Setswana text, same placeholders.
        channel: ``sms`` (one GSM-7 segment, 160 characters) or ``ussd`` (160 characters after ``CON``/``END``).
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


CATALOG: dict[str, Text] = {
    "password_reset_code": Text(
        en="Thusa: your password reset code is {code}. It expires in {minutes} minutes. Do not share it.",
        tn="Thusa: nomoro ya go fetola password ke {code}. E fela morago ga metsotso e le {minutes}. "
        "O se e romelele ope.",
        example={"code": "123456", "minutes": 15},
        note="nomoro (67), fetola (48), romela (52) from shared/LANGUAGE.md; 'metsotso' (minutes) and the "
        "expiry phrase are built, not sourced.",
    ),
}


def t(key: str, language: str | None, **params) -> str:
    """The text ``key`` in ``language`` (English when the language is unknown), filled with ``params``.

    Raises:
        KeyError: no such catalog entry (a programming error, caught by the catalog test).
    """
    entry = CATALOG[key]
    template = entry.tn if language == "tn" else entry.en
    return template.format(**params)
