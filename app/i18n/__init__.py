"""Every patient- and staff-facing text, in English (``en``) and Setswana (``tn``).

``t(key, language, **params)`` is the one way to get a text. The catalog is typed data so a test can check that
every entry exists in both languages, stays inside its channel's limits (GSM-7, one SMS segment where it must)
and that Setswana still waiting for a native speaker's review is marked ``tn_reviewed=False``.

The entries live in one module per area, each a ``dict`` of :class:`Text` (defined in :mod:`.text`):
:mod:`.general` (password reset, keyword replies), :mod:`.appointments`, :mod:`.stock` (stock SMS),
:mod:`.ussd` (shared USSD texts and the staff menu), :mod:`.simulator` (the simulator page), :mod:`.skin`
(skin consultations: linking, questions, photos), :mod:`.skin_triage` (the triage reply, the red-flag screen,
reasons and advice) and :mod:`.review` (second opinions, photo consent, follow-up). They are merged here into the one :data:`CATALOG`; import texts from this package only.
"""

from __future__ import annotations

from app.i18n.appointments import APPOINTMENT_TEXTS
from app.i18n.general import GENERAL_TEXTS
from app.i18n.review import REVIEW_TEXTS
from app.i18n.simulator import SIMULATOR_TEXTS
from app.i18n.skin import SKIN_TEXTS
from app.i18n.skin_triage import SKIN_TRIAGE_TEXTS
from app.i18n.stock import STOCK_TEXTS
from app.i18n.text import Text
from app.i18n.ussd import USSD_TEXTS

__all__ = ["CATALOG", "DEFAULT_LANGUAGE", "LANGUAGES", "Text", "t"]

LANGUAGES = ("en", "tn")
DEFAULT_LANGUAGE = "en"


def _merge(*areas: dict[str, Text]) -> dict[str, Text]:
    """One catalog from the area modules; a key defined twice is a programming error, refused at import."""
    catalog: dict[str, Text] = {}
    for texts in areas:
        twice = catalog.keys() & texts.keys()
        if twice:
            raise ValueError(f"catalog keys defined twice: {sorted(twice)}")
        catalog.update(texts)
    return catalog


CATALOG: dict[str, Text] = _merge(
    GENERAL_TEXTS,
    USSD_TEXTS,
    APPOINTMENT_TEXTS,
    STOCK_TEXTS,
    SIMULATOR_TEXTS,
    SKIN_TEXTS,
    SKIN_TRIAGE_TEXTS,
    REVIEW_TEXTS,  # second opinions and follow-up
)


def t(key: str, language: str | None, **params) -> str:
    """The text ``key`` in ``language`` (English when the language is unknown), filled with ``params``.

    Raises:
        KeyError: no such catalog entry (a programming error, caught by the catalog test).
    """
    entry = CATALOG[key]
    template = entry.tn if language == "tn" else entry.en
    return template.format(**params)
