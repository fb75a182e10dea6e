"""Skin triage: the answers of a consultation and the rules of ``app/clinical/triage_rules.toml`` → a level.

The level is the highest of the condition's base level and of every rule that matches; a rule can only raise it,
so no answer and no other rule ever lowers a red flag. The model's label plays no part while the installed model
is not validated for clinical use (the shipped default), and even then only the pharmacist's answers choose the
rules. Medicines come from the formulary (:mod:`app.services.formulary`): only at self-care and pharmacy levels,
never one that is prescription-only or contraindicated for this patient, never a group a matching rule withholds
(a steroid while febrile ...), and for an OTC medicine seller only confirmed class C items. The rules file itself
(its conditions, age groups and rules, parsed and checked) is read by :mod:`app.services.clinical_terms`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from app.models.consultation import LEVEL_CLINIC, LEVEL_PHARMACY, LEVEL_SELF_CARE, LEVELS
from app.models.user import SITE_OTC_SELLER, SITE_PHARMACY
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
    RED_FLAGS,
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
    red_flags: tuple[str, ...] | None = None  # the screen's ticked ids; () "none of these"; None "not asked"

    @classmethod
    def of(cls, consultation) -> Answers:
        """The answers recorded on a :class:`~app.models.Consultation`."""
        values = {f.name: getattr(consultation, f.name) for f in fields(cls)}
        if values["red_flags"] is not None:
            values["red_flags"] = tuple(values["red_flags"])
        return cls(**values)


@dataclass(frozen=True)
class Triage:
    """The outcome: level, the rules that set it, why (catalog keys), and the medicines that fit."""

    level: str
    condition: str
    rule_ids: tuple[str, ...]
    reasons: tuple[str, ...]
    medicines: tuple[str, ...]  # formulary codes, first choice first (the condition's order)
    excluded: dict[str, str] = field(default_factory=dict)  # code → why it was not offered
    advice: str = ""  # the condition's self-care advice (catalog key)
    referral_advice: str = ""  # the condition's line for referred levels ("" none)
    rule_advice: tuple[str, ...] = ()  # lines the fired rules require (catalog keys)
    withheld: tuple[str, ...] = ()  # medicine groups the fired rules withhold
    site_type: str = SITE_PHARMACY


def level_rank(level: str) -> int:
    return LEVELS.index(level)


def _holds(key: str, expected, answers: Answers) -> bool:
    """Whether one condition of a rule holds. An unanswered question never satisfies it (so never lowers a level:
    absent answers can only leave out rules, and a rule can only raise)."""
    if key == "red_flags":
        if answers.red_flags is None:
            return False
        return set(expected if isinstance(expected, list) else [expected]) <= set(answers.red_flags)
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


def assess(answers: Answers, *, site_type: str | None = SITE_PHARMACY) -> Triage:
    """Triage a consultation.

    Args:
        answers: the pharmacist's answers; an unknown or missing condition is treated as ``unsure`` (refer).
        site_type: who asks: ``pharmacy`` (classes B and C; also ``None``, an account from before site types) or
            ``otc_seller`` (class C only: a seller with nothing confirmed class C to offer sends the patient to a
            pharmacy, or to a clinic when a pharmacy could not treat either).

    Returns:
        The level (the highest of the condition's and of every matching rule), the rules and reasons, and the
        medicines that may be offered at that level.
    """
    site_type = site_type or SITE_PHARMACY
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
    if level == condition.level and condition.reason and condition.reason not in reasons:
        reasons.insert(0, condition.reason)
    if not reasons:
        reasons.append(f"triage_reason_base_{level}")
    withheld = tuple(sorted({group for rule in fired for group in rule.withhold}))
    rule_advice = tuple(dict.fromkeys(key for rule in fired for key in rule.advice))
    medicines: tuple[str, ...] = ()
    excluded: dict[str, str] = {}
    if level_rank(level) < level_rank(LEVEL_CLINIC):
        level, medicines, excluded, extra = _offer(condition.medicines, answers, level, withheld, site_type)
        reasons.extend(key for key in extra if key not in reasons)
    if answers.red_flags is None and level_rank(level) < level_rank(LEVEL_CLINIC):
        # "None of the warning signs asked about" would overclaim: the screen itself was never answered.
        reasons = [key for key in reasons if not key.startswith("triage_reason_base_")]
        reasons.append("triage_reason_screen_not_asked")
    return Triage(level=level, condition=condition.id, rule_ids=tuple(rule.id for rule in fired),
                  reasons=tuple(reasons), medicines=medicines, excluded=excluded, advice=condition.advice,
                  referral_advice=condition.referral_advice, rule_advice=rule_advice, withheld=withheld,
                  site_type=site_type)  # fmt: skip


def _offer(codes, answers: Answers, level: str, withheld, site_type: str):
    """The medicines for a self-care or pharmacy level, and the level they leave (only ever raised)."""

    def fit(allow_pharmacist: bool, site: str):
        return formulary.suitable(codes, answers, allow_pharmacist=allow_pharmacist, withhold=withheld,
                                  site_type=site)  # fmt: skip

    medicines, excluded = fit(level == LEVEL_PHARMACY, site_type)
    if not medicines and level == LEVEL_SELF_CARE:
        # Nothing over the counter fits this patient (age, pregnancy, site): a pharmacist-only one may.
        medicines, excluded = fit(True, site_type)
        if medicines or site_type == SITE_OTC_SELLER:
            level = LEVEL_PHARMACY
    if medicines:
        return level, medicines, excluded, ()
    if site_type == SITE_OTC_SELLER and fit(True, SITE_PHARMACY)[0]:
        # A pharmacy could treat it, the seller may not (no confirmed class C item): send the patient to one.
        return LEVEL_PHARMACY, (), excluded, ("triage_reason_otc_seller",)
    return LEVEL_CLINIC, (), excluded, ("triage_reason_no_medicine_fits",)  # a clinician decides
