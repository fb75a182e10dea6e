"""The formulary: dermatology medicines from ``app/clinical/formulary.toml``, their limits, and the catalogue API.

The file is the source of truth; :func:`seed` mirrors it into the ``medications`` table (``flask seed-clinical``
and the demo data), so the REST API can list and search it and a recommendation can name rows by id.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from sqlalchemy import String, cast, func, or_, select

from app.errors import NotFound
from app.extensions import db
from app.models import Medication
from app.models.consultation import AVAILABILITIES
from app.models.user import SITE_OTC_SELLER, SITE_PHARMACY
from app.services.clinical_terms import BODY_SITES, CONDITIONS, MEDICINE_GROUPS, age_range

GHANA_CLASSES = ("A", "B", "C", "unknown")  # Pharmacy Council: A prescription, B pharmacist, C over the counter
PREGNANCY_AGES = (120, 720)  # months: pregnancy is possible from 10 to 59 years (the age groups' boundaries)

FORMULARY_PATH = Path(__file__).resolve().parent.parent / "clinical" / "formulary.toml"


@dataclass(frozen=True)
class Medicine:
    """One formulary entry as the file gives it."""

    code: str
    name: str
    generic_name: str
    form: str
    strength: str
    availability: str
    indications: tuple[str, ...]
    indication_text: str
    dose_guidance: str
    pregnancy_ok: bool
    min_age_months: int | None
    not_sites: tuple[str, ...]
    not_on_open_sore: bool
    not_with_conditions: tuple[str, ...]
    sources: tuple[str, ...]
    evidence: str
    notes: str
    group: str = ""
    ghana_class: str = "unknown"
    not_from_months: int | None = None

    @property
    def verified(self) -> bool:
        return self.evidence != "U"

    @property
    def contraindications(self) -> dict:
        return {"pregnancy": not self.pregnancy_ok, "min_age_months": self.min_age_months,
                "not_sites": list(self.not_sites), "not_on_open_sore": self.not_on_open_sore,
                "not_with_conditions": list(self.not_with_conditions), "not_from_months": self.not_from_months}  # fmt: skip


@cache
def medicines() -> dict[str, Medicine]:
    """The formulary file, parsed and checked once per process (code → entry, in file order)."""
    return parse(FORMULARY_PATH.read_text(encoding="utf-8"))


@cache
def reviewed() -> bool:
    """Whether a Ghanaian pharmacist has reviewed the formulary file (``reviewed_by_ghana_pharmacist``)."""
    return bool(tomllib.loads(FORMULARY_PATH.read_text(encoding="utf-8")).get("reviewed_by_ghana_pharmacist", False))


def parse(text: str) -> dict[str, Medicine]:
    """Parse and check a formulary file.

    Raises:
        ValueError: a duplicate code, an unknown availability, indication or evidence label.
    """
    result: dict[str, Medicine] = {}
    for entry in tomllib.loads(text)["medicines"]:
        medicine = Medicine(
            code=entry["code"], name=entry["name"], generic_name=entry["generic_name"], form=entry["form"],
            strength=entry["strength"], availability=entry["availability"], indications=tuple(entry["indications"]),
            indication_text=entry["indication_text"], dose_guidance=entry["dose_guidance"],
            pregnancy_ok=bool(entry["pregnancy_ok"]), min_age_months=entry.get("min_age_months"),
            not_sites=tuple(entry.get("not_sites", ())), not_on_open_sore=bool(entry.get("not_on_open_sore", False)),
            not_with_conditions=tuple(entry.get("not_with_conditions", ())), sources=tuple(entry["sources"]),
            evidence=entry["evidence"], notes=entry.get("notes", ""), group=entry.get("group", ""),
            ghana_class=entry.get("ghana_class", "unknown"), not_from_months=entry.get("not_from_months"),
        )  # fmt: skip
        if medicine.code in result:
            raise ValueError(f"duplicate medicine code {medicine.code}")
        if medicine.availability not in AVAILABILITIES or medicine.evidence not in ("P", "S", "U"):
            raise ValueError(f"{medicine.code}: bad availability or evidence")
        if medicine.group not in MEDICINE_GROUPS or medicine.ghana_class not in GHANA_CLASSES:
            raise ValueError(f"{medicine.code}: unknown group or ghana_class")
        if not set(medicine.indications) <= set(CONDITIONS) or not set(medicine.not_sites) <= set(BODY_SITES):
            raise ValueError(f"{medicine.code}: unknown indication or body site")
        result[medicine.code] = medicine
    return result


def why_not(medicine: Medicine, answers, *, allow_pharmacist: bool, withhold=(), site_type: str = SITE_PHARMACY
            ) -> str | None:  # fmt: skip
    """Why ``medicine`` may not be offered to this patient (``None``: it may).

    Prescription-only medicines are never offered; pharmacist-only ones only when the pharmacist treats. An OTC
    medicine seller (``site_type="otc_seller"``) may sell only what the Pharmacy Council lists as class C, so only
    items whose ``ghana_class`` is confirmed ``C``. A group a triage rule withholds (a steroid while febrile ...)
    is never offered. An unanswered age, site or pregnancy question counts against a medicine with that limit.
    """
    if medicine.availability == "prescription":
        return "prescription_only"
    if medicine.availability == "pharmacist" and not allow_pharmacist:
        return "pharmacist_only"
    if site_type == SITE_OTC_SELLER and medicine.ghana_class != "C":
        return "not_class_c"
    if medicine.group in withhold:
        return "withheld"
    if answers.pregnant is not False and not medicine.pregnancy_ok and _may_be_pregnant(answers):
        return "pregnancy"
    span = age_range(answers.age_group)
    if medicine.min_age_months is not None and (span is None or span[0] < medicine.min_age_months):
        return "age"
    if medicine.not_from_months is not None and (span is None or span[1] is None or span[1] > medicine.not_from_months):
        return "age"
    if medicine.not_sites and (answers.body_site is None or answers.body_site in medicine.not_sites):
        return "body_site"
    if medicine.not_on_open_sore and answers.open_sore not in ("no",):
        return "open_sore"
    if (answers.condition or "unsure") in medicine.not_with_conditions:
        return "condition"
    return None


def _may_be_pregnant(answers) -> bool:
    """Pregnancy is possible unless the answer was no, or the age group lies outside 10-59 years (not asked then:
    a child, or a patient of 60 or more). An unknown age counts as possible."""
    if answers.pregnant is True:
        return True
    span = age_range(answers.age_group)
    return span is None or PREGNANCY_AGES[0] <= span[0] < PREGNANCY_AGES[1]


def suitable(codes, answers, *, allow_pharmacist: bool, withhold=(), site_type: str = SITE_PHARMACY
             ) -> tuple[tuple[str, ...], dict[str, str]]:  # fmt: skip
    """The formulary codes (of ``codes``) that may be offered to this patient, and why the others may not."""
    catalogue = medicines()
    offered, excluded = [], {}
    for code in codes:
        reason = why_not(catalogue[code], answers, allow_pharmacist=allow_pharmacist, withhold=withhold,
                         site_type=site_type)  # fmt: skip
        if reason is None:
            offered.append(code)
        else:
            excluded[code] = reason
    return tuple(offered), excluded


def seed() -> int:
    """Write the formulary file into ``medications`` (insert new codes, update changed ones); caller commits.

    Returns:
        How many rows were inserted or changed.
    """
    existing = {row.code: row for row in db.session.scalars(select(Medication))}
    changed = 0
    for medicine in medicines().values():
        values = {"name": medicine.name, "generic_name": medicine.generic_name, "form": medicine.form,
                  "strength": medicine.strength, "availability": medicine.availability, "ghana_class": medicine.ghana_class,
                  "eml_level": None, "indications": list(medicine.indications),
                  "indication_text": medicine.indication_text, "contraindications": medicine.contraindications,
                  "pregnancy_ok": medicine.pregnancy_ok, "min_age_months": medicine.min_age_months,
                  "dose_guidance": medicine.dose_guidance, "sources": list(medicine.sources),
                  "verified": medicine.verified}  # fmt: skip
        row = existing.get(medicine.code)
        if row is None:
            db.session.add(Medication(code=medicine.code, **values))
            changed += 1
        elif any(getattr(row, name) != value for name, value in values.items()):
            for name, value in values.items():
                setattr(row, name, value)
            changed += 1
    db.session.flush()
    return changed


def ensure_seeded() -> None:
    """Seed the table from the file when it is empty (a fresh database before ``flask seed-clinical``)."""
    if db.session.scalar(select(Medication.id).limit(1)) is None:
        seed()
        db.session.commit()


def ids_for(codes) -> list[str]:
    """The ``medications`` ids of formulary codes (seeding first if a code is missing), in the given order."""
    codes = list(codes)
    if not codes:
        return []
    found = dict(db.session.execute(select(Medication.code, Medication.id).where(Medication.code.in_(codes))).all())
    if len(found) < len(set(codes)):
        seed()
        found = dict(db.session.execute(select(Medication.code, Medication.id).where(Medication.code.in_(codes))).all())
    return [str(found[code]) for code in codes]


def list_medications(*, page: int, per_page: int, availability: str | None = None):
    """A page of the formulary, by name."""
    stmt = select(Medication).order_by(Medication.name, Medication.id)
    if availability:
        stmt = stmt.where(Medication.availability == availability)
    return db.paginate(stmt, page=page, per_page=per_page, error_out=False)


def read(medication_id) -> Medication:
    """One medication.

    Raises:
        NotFound: no such medication.
    """
    row = db.session.get(Medication, medication_id)
    if row is None:
        raise NotFound("No medication with this id.")
    return row


def search(q: str, *, page: int, per_page: int):
    """Medications whose name, generic name or indications contain ``q``, case-insensitively."""
    pattern = "%" + q.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    columns = (Medication.name, Medication.generic_name, Medication.indication_text,
               cast(Medication.indications, String))  # fmt: skip
    stmt = (
        select(Medication)
        .where(or_(*(func.lower(column).like(pattern, escape="\\") for column in columns)))
        .order_by(Medication.name, Medication.id)
    )
    return db.paginate(stmt, page=page, per_page=per_page, error_out=False)
