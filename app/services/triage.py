"""Skin triage: the answers of a consultation and the rules of ``app/clinical/triage_rules.toml`` → a level.

The level is the highest of the condition's base level and of every rule that matches; a rule can only raise it,
so no answer and no other rule ever lowers a red flag. The model's label plays no part while the installed model
is not validated for clinical use (the shipped default), and even then only the pharmacist's answers choose the
rules. Medicines come from the formulary (:mod:`app.services.formulary`): only at self-care and pharmacy levels,
and never one that is prescription-only or contraindicated for this patient.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path

from app.models.consultation import LEVEL_CLINIC, LEVEL_PHARMACY, LEVEL_SELF_CARE, LEVELS

RULES_PATH = Path(__file__).resolve().parent.parent / "clinical" / "triage_rules.toml"

CONDITIONS = ("fungal", "eczema", "acne", "scabies", "impetigo", "urticaria", "insect_bite", "burn", "cold_sore",
              "shingles", "cellulitis", "ulcer", "mole", "unsure")  # fmt: skip
BODY_SITES = ("face", "eye", "scalp", "hands_feet", "genitals", "trunk_limbs")
DURATIONS = ("under_1w", "w1_to_2", "w2_to_6", "over_6w")
BLISTERS = ("none", "local", "widespread")
OPEN_SORE = ("no", "under_2w", "w2_plus")
YES_NO_FIELDS = ("itch", "pain", "spreading", "fever", "mole_change", "treatment_failed", "pregnant")
CHOICE_FIELDS = {"condition": CONDITIONS, "body_site": BODY_SITES, "duration": DURATIONS, "blisters": BLISTERS,
                 "open_sore": OPEN_SORE}  # fmt: skip
AGE_KEYS = ("age_under_months", "age_from_months")


class RulesError(ValueError):
    """The rules file is inconsistent (an unknown answer, level, condition or catalog key)."""


@dataclass(frozen=True)
class Rule:
    """One rule of the rules file."""

    id: str
    title: str
    conditions: tuple[str, ...]
    when: dict
    level: str
    reasons: tuple[str, ...]
    sources: tuple[str, ...]
    evidence: str

    @property
    def verified(self) -> bool:
        return self.evidence != "U"


@dataclass(frozen=True)
class Condition:
    """A condition's base level, the medicines considered for it and its advice text (a catalog key)."""

    id: str
    title: str
    level: str
    medicines: tuple[str, ...]
    advice: str
    sources: tuple[str, ...]
    evidence: str


@dataclass(frozen=True)
class Rules:
    """The parsed rules file."""

    ages: dict[str, int]
    age_groups: dict[str, tuple[int, int | None]]  # [from, to) months; to None: no upper bound
    conditions: dict[str, Condition]
    rules: tuple[Rule, ...]


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


@cache
def rules() -> Rules:
    """The rules file, parsed and checked once per process."""
    return parse(RULES_PATH.read_text(encoding="utf-8"))


def parse(text: str) -> Rules:
    """Parse and check a rules file.

    Raises:
        RulesError: an unknown level, condition, answer or value.
    """
    data = tomllib.loads(text)
    ages = {name: int(entry["value"]) for name, entry in data["ages"].items()}
    age_groups = {name: (int(lo), None if int(hi) < 0 else int(hi)) for name, (lo, hi) in data["age_groups"].items()}
    conditions = {
        name: Condition(id=name, title=entry["title"], level=entry["level"], medicines=tuple(entry["medicines"]),
                        advice=entry["advice"], sources=tuple(entry["sources"]), evidence=entry["evidence"])
        for name, entry in data["conditions"].items()
    }  # fmt: skip
    parsed = tuple(
        Rule(id=entry["id"], title=entry["title"], conditions=tuple(entry["conditions"]), when=dict(entry["when"]),
             level=entry["level"], reasons=tuple(entry["reasons"]), sources=tuple(entry["sources"]),
             evidence=entry["evidence"])
        for entry in data["rules"]
    )  # fmt: skip
    _check(ages, age_groups, conditions, parsed)
    return Rules(ages=ages, age_groups=age_groups, conditions=conditions, rules=parsed)


def _check(ages, age_groups, conditions, parsed) -> None:
    from app.i18n import CATALOG

    if set(conditions) != set(CONDITIONS):
        raise RulesError(f"conditions must be exactly {CONDITIONS}, not {sorted(conditions)}")
    boundaries = {lo for lo, _ in age_groups.values()} | {hi for _, hi in age_groups.values() if hi is not None}
    for name, months in ages.items():
        if months not in boundaries:
            raise RulesError(f"age threshold {name} = {months} months is not an age-group boundary")
    for condition in conditions.values():
        if condition.level not in LEVELS or condition.evidence not in "PSU" or condition.advice not in CATALOG:
            raise RulesError(f"condition {condition.id}: bad level, evidence or advice key")
    ids = [rule.id for rule in parsed]
    if len(ids) != len(set(ids)):
        raise RulesError("rule ids must be unique")
    for rule in parsed:
        where = f"rule {rule.id}"
        if rule.level not in LEVELS or rule.evidence not in ("P", "S", "U") or not rule.when or not rule.sources:
            raise RulesError(f"{where}: needs a known level, evidence P/S/U, a non-empty when and sources")
        if rule.conditions != ("*",) and not set(rule.conditions) <= set(CONDITIONS):
            raise RulesError(f"{where}: unknown condition in {rule.conditions}")
        unknown_reasons = [key for key in rule.reasons if key not in CATALOG]
        if not rule.reasons or unknown_reasons:
            raise RulesError(f"{where}: reasons must be catalog keys ({unknown_reasons})")
        for key, value in rule.when.items():
            _check_condition(where, key, value, boundaries)


def _check_condition(where: str, key: str, value, boundaries: set[int]) -> None:
    if key in AGE_KEYS:
        if not isinstance(value, int) or value not in boundaries:
            raise RulesError(f"{where}: {key} = {value!r} is not an age-group boundary")
    elif key in YES_NO_FIELDS:
        if not isinstance(value, bool):
            raise RulesError(f"{where}: {key} must be true or false")
    elif key in CHOICE_FIELDS:
        values = value if isinstance(value, list) else [value]
        if not values or not set(values) <= set(CHOICE_FIELDS[key]):
            raise RulesError(f"{where}: {key} = {value!r}; allowed {CHOICE_FIELDS[key]}")
    else:
        raise RulesError(f"{where}: unknown answer {key!r}")


def age_range(age_group: str | None) -> tuple[int, int | None] | None:
    """The age group's [from, to) months, or ``None`` when unknown."""
    return rules().age_groups.get(age_group or "")


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
    from app.services import formulary

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
