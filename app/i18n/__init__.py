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
    "opt_out_confirmation": Text(
        en="Thusa: you will get no more messages from us. Reply START to get them again.",
        tn="Thusa: ga o kitla o amogela melaetsa gape. Araba ka START go e amogela gape.",
        note="amogela (71), melaetsa (23), araba (51); 'ga o kitla' (you will not) is built.",
    ),
    "opt_in_confirmation": Text(
        en="Thusa: welcome back. You will get our messages again. Reply STOP to stop them.",
        tn="Thusa: o amogetswe gape. O tla amogela melaetsa gape. Araba ka STOP go e emisa.",
        note="o amogetswe (12), emisa (53).",
    ),
    "help": Text(
        en="Thusa: reply STOP to stop messages, SETSWANA or ENGLISH to change language. For other help, call your "
        "clinic.",
        tn="Thusa: araba ka STOP go emisa melaetsa, SETSWANA kgotsa ENGLISH go fetola puo. Thuso e nngwe: leletsa "
        "kokelwana ya gago.",
        note="fetola puo (48, 64), leletsa (57), kokelwana (13, uncertain); 'kgotsa' (or) is common but unsourced.",
    ),
    "language_set": Text(
        en="Thusa: we will write to you in English. Reply SETSWANA for Setswana.",
        tn="Thusa: re tla go kwalela ka Setswana. Araba ka ENGLISH go bona Sekgoa.",
        note="Sekgoa (65); 're tla go kwalela' (we will write to you) is built.",
    ),
    "default_reply": Text(
        en="Thusa: sorry, we did not understand your message. For help, call your clinic.",
        tn="Thusa: maswabi, ga re a tlhaloganya molaetsa wa gago. Go bona thuso, leletsa kokelwana ya gago.",
        note="maswabi (9), molaetsa (23), thuso (54), leletsa (57), kokelwana (13, uncertain); 'tlhaloganya' "
        "(understand) is not in the glossary. No 'Reply HELP': Twilio answers HELP itself (LANGUAGE.md section 4).",
    ),
    "ussd_unavailable": Text(
        en="Thusa: this menu is not available yet. Please try again later.",
        tn="Thusa: lenaneo le ga le ise le nne teng. Tsweetswee leka gape moragonyana.",
        channel="ussd",
        note="lenaneo (62, uncertain), leka gape (78); the rest is built.",
    ),
    "ussd_error": Text(
        en="Thusa: sorry, something went wrong. Please dial again.",
        tn="Thusa: maswabi, go nnile le phoso. Tsweetswee leletsa gape.",
        channel="ussd",
        note="maswabi (9), phoso (77), leletsa (57); 'go nnile le' (there was) is built.",
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
