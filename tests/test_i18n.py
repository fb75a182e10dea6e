"""The text catalog and the GSM-7 helpers: every entry in both languages, inside its channel's limits.

Table-driven over ``app.i18n.CATALOG``, so a new entry is checked the moment it is added. The character rules
come from docs/setswana-glossary.md section 3.3 (GSM-7 traps in Setswana texts).
"""

from __future__ import annotations

import string

import pytest

from app.i18n import CATALOG, DEFAULT_LANGUAGE, LANGUAGES, t
from app.i18n.gsm7 import BASIC, EXTENSION, SINGLE_SEGMENT, fits_one_segment, septets

CHANNELS = ("sms", "ussd", "chat", "button", "web")
USSD_LIMIT = 160
WEB_LIMIT = 300  # a label or one-sentence notice of the simulator page
# Skin consultations: a WhatsApp interactive body, and a WhatsApp reply button title.
CHAT_LIMITS = {"chat": 1024, "button": 20}
KEYS = sorted(CATALOG)

# LANGUAGE.md 3.3: standard Setswana writes e and o without the circumflex (ê, ô appear in some dictionaries and
# school books but are not regularly used); š is avoided by rephrasing; MomConnect's curly quotes, Babel's
# U+2019 group separator, en dashes and thin or non-breaking spaces are all outside GSM-7, and any one of them
# turns the whole SMS into UCS-2 (70 characters a segment instead of 160).
GSM7_TRAPS = {
    "ê": "e circumflex: write plain e",
    "Ê": "E circumflex: write plain E",
    "ô": "o circumflex: write plain o",
    "Ô": "O circumflex: write plain O",
    "š": "s caron: rephrase (do not just drop the caron: 'ntsha' is another word)",
    "Š": "S caron: rephrase",
    "‘": "curly quote: use '",
    "’": "curly apostrophe (also Babel's tn group separator): use '",
    "“": 'curly quote: use "',
    "”": 'curly quote: use "',
    "–": "en dash: use -",
    "—": "em dash: use -",
    "\u00a0": "no-break space: use a space",
    "\u2009": "thin space: use a space",
    "\u202f": "narrow no-break space (Babel's hm): use a space",
    "…": "ellipsis: use ...",
}


def _placeholders(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}


def _rendered(key: str) -> dict[str, str]:
    entry = CATALOG[key]
    return {language: t(key, language, **entry.example) for language in LANGUAGES}


def test_the_catalog_is_not_empty_and_knows_both_languages():
    assert CATALOG
    assert LANGUAGES == ("en", "tn")
    assert DEFAULT_LANGUAGE == "en"


@pytest.mark.parametrize("key", KEYS)
def test_each_entry_has_english_and_setswana(key):
    entry = CATALOG[key]
    assert entry.en.strip(), f"{key}: English text is empty"
    assert entry.tn.strip(), f"{key}: Setswana text is empty"
    assert entry.channel in CHANNELS, f"{key}: unknown channel {entry.channel!r}"


@pytest.mark.parametrize("key", KEYS)
def test_both_languages_have_the_same_placeholders(key):
    entry = CATALOG[key]
    assert _placeholders(entry.en) == _placeholders(entry.tn)


@pytest.mark.parametrize("key", KEYS)
def test_the_example_fills_every_placeholder(key):
    entry = CATALOG[key]
    assert set(entry.example) == _placeholders(entry.en), f"{key}: example must give exactly the placeholders"
    for text in _rendered(key).values():
        assert "{" not in text and "}" not in text


@pytest.mark.parametrize("key", KEYS)
def test_the_filled_texts_fit_their_channel(key):
    entry = CATALOG[key]
    for language, text in _rendered(key).items():
        if entry.channel == "sms":
            assert fits_one_segment(text), f"{key}/{language}: {septets(text)} septets (None: not GSM-7): {text!r}"
        elif entry.channel == "web":
            assert len(text) <= WEB_LIMIT, f"{key}/{language}: {len(text)} characters: {text!r}"
        elif entry.channel in CHAT_LIMITS:
            assert len(text) <= CHAT_LIMITS[entry.channel], f"{key}/{language}: {len(text)} characters: {text!r}"
        else:
            assert septets(text) is not None, f"{key}/{language}: not GSM-7: {text!r}"
            assert len(text) <= USSD_LIMIT, f"{key}/{language}: {len(text)} characters: {text!r}"


@pytest.mark.parametrize("key", KEYS)
def test_no_gsm7_traps_from_language_md(key):
    entry = CATALOG[key]
    for language, text in {"en": entry.en, "tn": entry.tn, **_rendered(key)}.items():
        found = {char: why for char, why in GSM7_TRAPS.items() if char in text}
        assert not found, f"{key}/{language}: {found}"


def test_no_trap_character_is_gsm7():
    # The trap list and the GSM-7 table must agree, or the rule above would be checking the wrong thing.
    assert all(septets(char) is None for char in GSM7_TRAPS)


def test_unreviewed_setswana_is_flagged_and_listed():
    unreviewed = sorted(key for key, entry in CATALOG.items() if entry.tn_reviewed is False)
    assert all(isinstance(entry.tn_reviewed, bool) for entry in CATALOG.values())
    # Not a failure: the list is the work a native Setswana speaker from Botswana still has to do.
    print(f"Setswana awaiting native review ({len(unreviewed)}): {', '.join(unreviewed) or 'none'}")


@pytest.mark.parametrize("language", ["fr", "", None, "TN", "tsn"])
def test_t_falls_back_to_english_for_an_unknown_language(language):
    key = KEYS[0]
    example = CATALOG[key].example
    assert t(key, language, **example) == CATALOG[key].en.format(**example)


def test_t_gives_setswana_for_tn():
    key = KEYS[0]
    example = CATALOG[key].example
    assert t(key, "tn", **example) == CATALOG[key].tn.format(**example)


def test_t_refuses_an_unknown_key():
    with pytest.raises(KeyError):
        t("no_such_text", "en")


def test_password_reset_text_carries_the_code_in_both_languages():
    for language in LANGUAGES:
        text = t("password_reset_code", language, code="048213", minutes=15)
        assert "048213" in text and "15" in text


# --- GSM-7 -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("Dumela", 6),
        ("Re a leboga.", 12),
        ("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà", 42),  # basic-set letters, one septet each
        ("line\nbreak\r", 11),
        ("€", 2),  # extension table: escape + character
        ("^{}\\[~]|€", 18),
        ("\f", 2),
        ("P12.50 [ok]", 13),
        ("ŝ", None),
        ("“SMS”", None),
        ("‘SMS’", None),
        ("metšhine", None),
        ("ê", None),
        ("ô", None),
        ("1’234", None),
        ("9:30\u202fAM", None),
        ("4\u2009–\u20096", None),
        ("ç", None),  # GSM0338.TXT maps only capital Ç
        ("\t", None),
        ("😀", None),
    ],
)
def test_septets(text, expected):
    assert septets(text) == expected


def test_one_non_gsm7_character_makes_the_whole_text_non_gsm7():
    assert septets("a" * 100 + "“") is None


@pytest.mark.parametrize(
    ("text", "fits"),
    [
        ("a" * SINGLE_SEGMENT, True),
        ("a" * (SINGLE_SEGMENT + 1), False),
        ("€" * (SINGLE_SEGMENT // 2), True),
        ("€" * (SINGLE_SEGMENT // 2) + "a", False),  # 161 septets in 81 characters
        ("a" * 159 + "[", False),
        ("ê", False),  # would go as UCS-2
        ("", True),
    ],
)
def test_fits_one_segment(text, fits):
    assert fits_one_segment(text) is fits


def test_the_gsm7_tables_have_the_sizes_of_gsm_03_38():
    assert SINGLE_SEGMENT == 160
    assert len(BASIC) == 127  # 128 codes, one of them the escape to the extension table
    assert len(EXTENSION) == 10
    assert not BASIC & EXTENSION


# A short line above a screen (bots/flows/ussd_staff.py's _prefixed and _again): both must fit together, or the
# person sees the line alone and loses the menu (the Setswana visits screen once came to 191 characters).
STACKED = [
    ("ussd_staff_no_visit", {"digits": "4567"}, "ussd_staff_visits", {"total": 999, "attended": 999}),
    ("ussd_staff_four_digits", {}, "ussd_staff_visits", {"total": 999, "attended": 999}),
    ("ussd_staff_no_trace", {"digits": "4567"}, "ussd_staff_trace", {"count": 9999}),
    ("ussd_staff_four_digits", {}, "ussd_staff_trace", {"count": 9999}),
]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("line", "line_params", "screen", "screen_params"), STACKED)
def test_a_hint_above_a_staff_screen_keeps_the_screen(language, line, line_params, screen, screen_params):
    text = f"{t(line, language, **line_params)}\n{t(screen, language, **screen_params)}"
    assert len(text) <= USSD_LIMIT, f"{len(text)} characters: {text!r}"
