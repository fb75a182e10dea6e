"""The clinical vocabulary of skin triage, as ``app/clinical/triage_rules.toml`` defines it.

The answers a pharmacist can give (conditions, body sites, durations, the red-flag screen ...), the conditions with
their base levels, the age groups and the rules, parsed and checked once per process. Triage (:mod:`app.services.triage`) applies the
rules; the formulary (:mod:`app.services.formulary`) checks its indications and limits against the same words. Both
import this module and neither imports the other back, so the formulary never needs triage to read an age group.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from app.i18n import CATALOG
from app.models.consultation import LEVELS

RULES_PATH = Path(__file__).resolve().parent.parent / "clinical" / "triage_rules.toml"

CONDITIONS = ("fungal", "eczema", "acne", "scabies", "impetigo", "urticaria", "insect_bite", "burn", "cold_sore",
              "shingles", "cellulitis", "ulcer", "mole", "unsure", "animal_bite")  # fmt: skip
BODY_SITES = ("face", "eye", "scalp", "hands_feet", "genitals", "joint", "trunk_limbs")
DURATIONS = ("under_1w", "w1_to_2", "w2_to_6", "over_6w")
BLISTERS = ("none", "local", "widespread")
OPEN_SORE = ("no", "under_2w", "w2_plus")
YES_NO_FIELDS = ("itch", "pain", "spreading", "fever", "mole_change", "treatment_failed", "pregnant")
CHOICE_FIELDS = {"condition": CONDITIONS, "body_site": BODY_SITES, "duration": DURATIONS, "blisters": BLISTERS,
                 "open_sore": OPEN_SORE}  # fmt: skip
# The red-flag screen, one multi-select question asked early (ids are part of the REST API: add, never rename).
RED_FLAGS = ("numb_patch", "airway_swelling", "mucosal_sores", "new_medicine", "weak_immunity", "black_scab",
             "pus_or_crusts", "painless_lump", "large_or_deep_burn", "dark_spot_sole_palm_nail", "bleaching_cream",
             "many_lesions")  # fmt: skip
AGE_KEYS = ("age_under_months", "age_from_months")
# Medicine groups a rule may withhold (formulary.toml `group`).
MEDICINE_GROUPS = ("steroid", "antifungal", "antihistamine", "antipruritic", "antiseptic", "antiviral", "emollient",
                   "analgesic", "scabicide", "keratolytic", "dressing", "antibiotic")  # fmt: skip


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
    withhold: tuple[str, ...] = ()  # medicine groups never offered when the rule fires
    advice: tuple[str, ...] = ()  # catalog keys of lines the reply must carry when the rule fires

    @property
    def verified(self) -> bool:
        return self.evidence != "U"


@dataclass(frozen=True)
class Condition:
    """A condition's base level, the medicines considered for it (first choice first) and its texts (catalog keys):
    ``advice`` for self-care and pharmacy, ``referral_advice`` for referred levels (``""``: none), ``reason`` when no
    rule fires (``""``: the level's own reason)."""

    id: str
    title: str
    level: str
    medicines: tuple[str, ...]
    advice: str
    sources: tuple[str, ...]
    evidence: str
    referral_advice: str = ""
    reason: str = ""


@dataclass(frozen=True)
class Rules:
    """The parsed rules file."""

    ages: dict[str, int]
    age_groups: dict[str, tuple[int, int | None]]  # [from, to) months; to None: no upper bound
    conditions: dict[str, Condition]
    rules: tuple[Rule, ...]
    reviewed: bool = False  # reviewed_by_ghana_pharmacist
    ambulance: str = ""  # the emergency number the urgent reply names (to be confirmed)


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
                        advice=entry["advice"], sources=tuple(entry["sources"]), evidence=entry["evidence"],
                        referral_advice=entry.get("referral_advice", ""), reason=entry.get("reason", ""))
        for name, entry in data["conditions"].items()
    }  # fmt: skip
    parsed = tuple(
        Rule(id=entry["id"], title=entry["title"], conditions=tuple(entry["conditions"]), when=dict(entry["when"]),
             level=entry["level"], reasons=tuple(entry["reasons"]), sources=tuple(entry["sources"]),
             evidence=entry["evidence"], withhold=tuple(entry.get("withhold", ())),
             advice=tuple(entry.get("advice", ())))
        for entry in data["rules"]
    )  # fmt: skip
    _check(ages, age_groups, conditions, parsed)
    ambulance = str(data.get("emergency", {}).get("ambulance", {}).get("value", ""))
    if not ambulance:
        raise RulesError("[emergency] ambulance must name the emergency number the urgent reply gives")
    return Rules(ages=ages, age_groups=age_groups, conditions=conditions, rules=parsed,
                 reviewed=bool(data.get("reviewed_by_ghana_pharmacist", False)), ambulance=ambulance)  # fmt: skip


def _check(ages, age_groups, conditions, parsed) -> None:
    if set(conditions) != set(CONDITIONS):
        raise RulesError(f"conditions must be exactly {CONDITIONS}, not {sorted(conditions)}")
    boundaries = {lo for lo, _ in age_groups.values()} | {hi for _, hi in age_groups.values() if hi is not None}
    for name, months in ages.items():
        if months not in boundaries:
            raise RulesError(f"age threshold {name} = {months} months is not an age-group boundary")
    for condition in conditions.values():
        texts = [key for key in (condition.advice, condition.referral_advice, condition.reason) if key]
        if condition.level not in LEVELS or condition.evidence not in ("P", "S", "U") or not condition.advice:
            raise RulesError(f"condition {condition.id}: bad level or evidence, or no advice key")
        if any(key not in CATALOG for key in texts):
            raise RulesError(f"condition {condition.id}: unknown catalog key in {texts}")
    ids = [rule.id for rule in parsed]
    if len(ids) != len(set(ids)):
        raise RulesError("rule ids must be unique")
    for rule in parsed:
        where = f"rule {rule.id}"
        if rule.level not in LEVELS or rule.evidence not in ("P", "S", "U") or not rule.when or not rule.sources:
            raise RulesError(f"{where}: needs a known level, evidence P/S/U, a non-empty when and sources")
        if rule.conditions != ("*",) and not set(rule.conditions) <= set(CONDITIONS):
            raise RulesError(f"{where}: unknown condition in {rule.conditions}")
        unknown_texts = [key for key in (*rule.reasons, *rule.advice) if key not in CATALOG]
        if not rule.reasons or unknown_texts:
            raise RulesError(f"{where}: reasons and advice must be catalog keys ({unknown_texts})")
        if not set(rule.withhold) <= set(MEDICINE_GROUPS):
            raise RulesError(f"{where}: withhold names an unknown medicine group ({rule.withhold})")
        for key, value in rule.when.items():
            _check_condition(where, key, value, boundaries)


def _check_condition(where: str, key: str, value, boundaries: set[int]) -> None:
    if key in AGE_KEYS:
        if not isinstance(value, int) or value not in boundaries:
            raise RulesError(f"{where}: {key} = {value!r} is not an age-group boundary")
    elif key in YES_NO_FIELDS:
        if not isinstance(value, bool):
            raise RulesError(f"{where}: {key} must be true or false")
    elif key == "red_flags":
        # All of the listed flags must be ticked (one rule per combination; "any of" is several rules).
        values = value if isinstance(value, list) else [value]
        if not values or not set(values) <= set(RED_FLAGS):
            raise RulesError(f"{where}: red_flags = {value!r}; allowed {RED_FLAGS}")
    elif key in CHOICE_FIELDS:
        values = value if isinstance(value, list) else [value]
        if not values or not set(values) <= set(CHOICE_FIELDS[key]):
            raise RulesError(f"{where}: {key} = {value!r}; allowed {CHOICE_FIELDS[key]}")
    else:
        raise RulesError(f"{where}: unknown answer {key!r}")


def age_range(age_group: str | None) -> tuple[int, int | None] | None:
    """The age group's [from, to) months, or ``None`` when unknown."""
    return rules().age_groups.get(age_group or "")
