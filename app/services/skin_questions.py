"""The triage questions, in the order the chat asks them, for the chat flow and for partners building a form.

Each question is an answer field of a consultation with its catalog text and options. Three kinds: ``choice`` (one
value), ``yes_no`` and ``multi`` (the red-flag screen: any number of ids, ``[]`` for "none of these"). The screen
comes early, right after the age (and pregnancy), so the warning signs are asked before anything else. Pregnancy is
asked only when the age group makes it possible (10 to 59 years) or is still unknown.
``GET /api/v1/triage/questions`` lists them (:func:`catalogue`) with their texts in both languages.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.i18n import LANGUAGES, t
from app.services.clinical_terms import BLISTERS, BODY_SITES, CONDITIONS, DURATIONS, OPEN_SORE, RED_FLAGS, rules
from app.services.formulary import PREGNANCY_AGES

CHOICE, YES_NO, MULTI = "choice", "yes_no", "multi"


@dataclass(frozen=True)
class Question:
    """One question: the answer field, its kind, and its options ``(value, button text key)``; a ``multi`` option
    also has a longer description (``skin_flag_<id>``)."""

    field: str
    kind: str
    options: tuple[tuple[object, str], ...]

    @property
    def text_key(self) -> str:
        return f"skin_q_{self.field}"


def _yes_no(field: str) -> Question:
    return Question(field, YES_NO, ((True, "opt_yes"), (False, "opt_no")))


def _choices(field: str, values) -> Question:
    return Question(field, CHOICE, tuple((value, f"opt_{field}_{value}") for value in values))


CONDITION = Question("condition", CHOICE, tuple((c, f"opt_condition_{c}") for c in CONDITIONS))
AGE = Question("age_group", CHOICE, tuple((group, f"opt_age_{group}") for group in rules().age_groups))
PREGNANT = _yes_no("pregnant")
RED_FLAG_SCREEN = Question("red_flags", MULTI, tuple((flag, f"opt_red_flags_{flag}") for flag in RED_FLAGS))
LATER = (
    _choices("duration", DURATIONS),
    _choices("body_site", BODY_SITES),
    _yes_no("itch"),
    _yes_no("pain"),
    _yes_no("spreading"),
    _yes_no("fever"),
    _choices("blisters", BLISTERS),
    _yes_no("mole_change"),
    _choices("open_sore", OPEN_SORE),
    _yes_no("treatment_failed"),
)
ALL = (CONDITION, AGE, PREGNANT, RED_FLAG_SCREEN, *LATER)


def pregnancy_asked(age_group: str | None) -> bool:
    """Pregnancy is asked from 10 to 59 years, and while the age is unknown (counted, not yet asked)."""
    span = rules().age_groups.get(age_group or "")
    return span is None or PREGNANCY_AGES[0] <= span[0] < PREGNANCY_AGES[1]


def questions_for(age_group: str | None) -> list[Question]:
    """The questions for a patient of this age group, in order."""
    return [question for question in ALL if question is not PREGNANT or pregnancy_asked(age_group)]


def description_key(question: Question, value) -> str:
    """The catalog key of an option's longer description (the red-flag screen's options)."""
    return f"skin_flag_{value}"


def catalogue() -> list[dict]:
    """Every question with its id, kind, options and texts in both languages (``GET /api/v1/triage/questions``)."""
    items = []
    for number, question in enumerate(ALL, start=1):
        options = []
        for value, key in question.options:
            option = {"value": value, "label": _texts(key)}
            if question.kind == MULTI:
                option["description"] = _texts(description_key(question, value))
            options.append(option)
        item = {"id": question.field, "number": number, "kind": question.kind, "text": _texts(question.text_key),
                "options": options, "asked_when": None}  # fmt: skip
        if question is PREGNANT:
            item["asked_when"] = {"age_from_months": PREGNANCY_AGES[0], "age_below_months": PREGNANCY_AGES[1]}
        if question.kind == MULTI:
            item["none_value"] = []
        items.append(item)
    return items


def _texts(key: str) -> dict[str, str]:
    return {language: t(key, language) for language in LANGUAGES}
