"""The formulary file, its seeding into the database, search, and the rules for what may be offered."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Medication
from app.services import formulary, triage
from app.services.triage import Answers

ISSUE_LIST = ("clotrimazole", "miconazole", "hydrocortisone", "calamine", "benzyl benzoate", "permethrin",
              "fusidic acid", "chlorhexidine", "cetirizine")  # fmt: skip
ADULT = Answers(condition="eczema", age_group="y18_to_59", pregnant=False, body_site="trunk_limbs", open_sore="no")


def test_the_issues_medicines_are_all_there_with_status_and_limits():
    generics = {m.generic_name for m in formulary.medicines().values()}
    for name in ISSUE_LIST:
        assert name in generics, name
    for medicine in formulary.medicines().values():
        assert medicine.availability in ("otc", "pharmacist", "prescription")
        assert medicine.dose_guidance and medicine.sources and medicine.strength and medicine.form
        assert medicine.evidence in ("P", "S", "U")


def test_every_condition_medicine_exists():
    for condition in triage.rules().conditions.values():
        for code in condition.medicines:
            assert code in formulary.medicines(), (condition.id, code)
            assert condition.id in formulary.medicines()[code].indications, (condition.id, code)


def test_clinical_md_limits_are_encoded():
    m = formulary.medicines()
    assert m["hydrocortisone-cream"].min_age_months == 120  # UK GSL: 10 years and over
    assert {"face", "eye", "genitals"} <= set(m["hydrocortisone-cream"].not_sites)
    assert m["permethrin-cream"].min_age_months == 2
    assert not m["griseofulvin-tablets"].pregnancy_ok and m["griseofulvin-tablets"].availability == "prescription"
    assert not m["doxycycline-capsules"].pregnancy_ok
    assert m["fusidic-acid-cream"].availability == "prescription"
    assert not m["chlorhexidine-wash"].verified  # CLINICAL.md: regimen [U]


@pytest.mark.parametrize(
    ("code", "changes", "reason"),
    [
        ("fusidic-acid-cream", {}, "prescription_only"),
        ("permethrin-cream", {}, "pharmacist_only"),
        ("benzoyl-peroxide-gel", {"pregnant": True}, "pregnancy"),
        ("benzoyl-peroxide-gel", {"pregnant": None}, "pregnancy"),  # not answered: assume she may be
        ("hydrocortisone-cream", {"age_group": "y1_to_9"}, "age"),
        ("hydrocortisone-cream", {"age_group": None}, "age"),
        ("hydrocortisone-cream", {"body_site": "face"}, "body_site"),
        ("hydrocortisone-cream", {"open_sore": "under_2w"}, "open_sore"),
        ("hydrocortisone-cream", {"condition": "fungal"}, "condition"),  # steroids mask and spread tinea
    ],
)
def test_why_a_medicine_is_not_offered(code, changes, reason):
    medicine = formulary.medicines()[code]
    assert formulary.why_not(medicine, dataclasses.replace(ADULT, **changes), allow_pharmacist=False) == reason


def test_a_child_under_ten_is_not_asked_about_pregnancy_and_not_treated_as_possibly_pregnant():
    child = dataclasses.replace(ADULT, condition="burn", age_group="y1_to_9", pregnant=None)
    assert formulary.why_not(formulary.medicines()["non-adherent-dressing"], child, allow_pharmacist=False) is None


def test_parse_refuses_a_broken_file():
    text = formulary.FORMULARY_PATH.read_text(encoding="utf-8")
    first = text[text.index("[[medicines]]") : text.index("[[medicines]]", text.index("[[medicines]]") + 1)]
    with pytest.raises(ValueError, match="duplicate"):
        formulary.parse(text + "\n" + first)
    with pytest.raises(ValueError, match="availability"):
        formulary.parse(first.replace('availability = "otc"', 'availability = "shop"'))


def test_seed_is_idempotent_and_updates_changes(app):
    assert formulary.seed() == len(formulary.medicines())
    db.session.commit()
    assert formulary.seed() == 0
    row = db.session.scalar(select(Medication).where(Medication.code == "clotrimazole-cream"))
    row.dose_guidance = "changed by hand"
    db.session.commit()
    assert formulary.seed() == 1
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(Medication)) == len(formulary.medicines())
    row = db.session.scalar(select(Medication).where(Medication.code == "clotrimazole-cream"))
    assert row.dose_guidance.startswith("Apply") and row.ghana_class == "unknown" and row.eml_level is None


@pytest.mark.parametrize(
    ("q", "expected"),
    [("CLOTRIMAZOLE", "clotrimazole-cream"), ("benzyl", "benzyl-benzoate-emulsion"), ("hives", "cetirizine-tablets"),
     ("scabies", "permethrin-cream"), ("Ringworm", "clotrimazole-cream"), ("insect_bite", "calamine-lotion")],
)  # fmt: skip
def test_search_by_name_generic_name_or_indication(app, q, expected):
    formulary.seed()
    db.session.commit()
    codes = [row.code for row in formulary.search(q, page=1, per_page=100).items]
    assert expected in codes


def test_search_treats_wildcards_as_text(app):
    formulary.seed()
    db.session.commit()
    assert formulary.search("%", page=1, per_page=100).items == [] or all(
        "%" in (row.name + row.generic_name + row.indication_text) for row in formulary.search("%", page=1,
                                                                                             per_page=100).items
    )  # fmt: skip
    assert formulary.search("_", page=1, per_page=100).total < len(formulary.medicines())
