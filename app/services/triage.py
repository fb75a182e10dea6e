"""Skin triage: the answers of a consultation and the rules of ``app/clinical/triage_rules.toml`` → a level.

The level is the highest of the condition's base level and of every rule that matches; a rule can only raise it,
so no answer and no other rule ever lowers a red flag. The model's label plays no part while the installed model
is not validated for clinical use (the shipped default), and even then only the pharmacist's answers choose the
rules. Medicines come from the formulary (:mod:`app.services.formulary`): only at self-care and pharmacy levels,
and never one that is prescription-only or contraindicated for this patient. The rules file itself (its conditions,
age groups and rules, parsed and checked) is read by :mod:`app.services.clinical_terms`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from app.models.consultation import LEVEL_CLINIC, LEVEL_PHARMACY, LEVEL_SELF_CARE, LEVELS
from app.services import formulary

# The vocabulary and the parsed rules file live in clinical_terms (the formulary reads them too); the names stay
# importable from here, where the flows, schemas and consultations look for them.
from app.services.clinical_terms import (  # noqa: F401 (re-exported)
    AGE_KEYS,
    BLISTERS,
    BODY_SITES,
    CHOICE_FIELDS,
    CONDITIONS,
    DURATIONS,
    OPEN_SORE,
    RULES_PATH,
    YES_NO_FIELDS,
    Condition,
    Rule,
    Rules,
    RulesError,
    age_range,
    parse,
    rules,
)


@dataclass(frozen=True)
class Answers:
    """What the pharmacist answered (``None``: not asked or not answered; never treated as "no")."""

    condition: str | None = None
    age_group: str | None = None
    pregnant: bool | None = None
    body_site: str | None = None
    duration: str | None = None
    itch: bool | None = None
    pain: bool | None = None
    spreading: bool | None = None
    fever: bool | None = None
    blisters: str | None = None
    mole_change: bool | None = None
    open_sore: str | None = None
    treatment_failed: bool | None = None

    @classmethod
    def of(cls, consultation) -> Answers:
        """The answers recorded on a :class:`~app.models.Consultation`."""
        return cls(**{f.name: getattr(consultation, f.name) for f in fields(cls)})


@dataclass(frozen=True)
class Triage:
    """The outcome: level, the rules that set it, why (catalog keys), and the medicines that fit."""

    level: str
    condition: str
    rule_ids: tuple[str, ...]
    reasons: tuple[str, ...]
    medicines: tuple[str, ...]  # formulary codes, in the condition's order
    excluded: dict[str, str] = field(default_factory=dict)  # code → why it was not offered
    advice: str = ""


def level_rank(level: str) -> int:
    return LEVELS.index(level)


def _holds(key: str, expected, answers: Answers) -> bool:
    """Whether one condition of a rule holds. An unanswered question never satisfies it (so never lowers a level:
    absent answers can only leave out rules, and a rule can only raise)."""
    if key in AGE_KEYS:
        span = age_range(answers.age_group)
        if span is None:
            return False
        lo, hi = span
        return hi is not None and hi <= expected if key == "age_under_months" else lo >= expected
    actual = getattr(answers, key)
    if actual is None:
        return False
    if isinstance(expected, list):
        return actual in expected
    return actual == expected


def matches(rule: Rule, answers: Answers) -> bool:
    """Whether ``rule`` fires for these answers."""
    condition = answers.condition or "unsure"
    if rule.conditions != ("*",) and condition not in rule.conditions:
        return False
    return all(_holds(key, value, answers) for key, value in rule.when.items())


def assess(answers: Answers) -> Triage:
    """Triage a consultation.

    Args:
        answers: the pharmacist's answers; an unknown or missing condition is treated as ``unsure`` (refer).

    Returns:
        The level (the highest of the condition's and of every matching rule), the rules and reasons, and the
        medicines that may be offered at that level.
    """
    data = rules()
    condition = data.conditions.get(answers.condition or "unsure") or data.conditions["unsure"]
    level = condition.level
    fired = [rule for rule in data.rules if matches(rule, answers)]
    for rule in fired:
        if level_rank(rule.level) > level_rank(level):
            level = rule.level
    reasons: list[str] = []
    for rule in sorted(fired, key=lambda r: -level_rank(r.level)):
        reasons.extend(key for key in rule.reasons if key not in reasons)
    if not reasons:
        reasons.append(f"triage_reason_base_{level}")
    if level_rank(level) >= level_rank(LEVEL_CLINIC):
        medicines, excluded = (), {}
    else:
        medicines, excluded = formulary.suitable(condition.medicines, answers, allow_pharmacist=level == LEVEL_PHARMACY)
        if not medicines and level == LEVEL_SELF_CARE:
            # Nothing over the counter fits this patient (age, pregnancy, site): a pharmacist-only one may.
            medicines, excluded = formulary.suitable(condition.medicines, answers, allow_pharmacist=True)
            level = LEVEL_PHARMACY
        if not medicines:
            level = LEVEL_CLINIC  # nothing the pharmacy may give fits: a clinician decides
            reasons.append("triage_reason_no_medicine_fits")
    return Triage(level=level, condition=condition.id, rule_ids=tuple(rule.id for rule in fired),
                  reasons=tuple(reasons), medicines=medicines, excluded=excluded, advice=condition.advice)  # fmt: skip
