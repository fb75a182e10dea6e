"""The clinical gate (``flask skin-model validate``), its sign-off record, and what a validated model may change.

The gate refuses: no sign-off name, too few held-out photos, low bounds, cross-validated metrics, a model without
an embedded evaluation, a feature extractor. A sign-off is a database row for the model FILE's checksum, audited;
a hand-edited manifest ("validated_for_clinical_use": true, reordered labels) turns nothing on. A validated
model's top label is shown as "looks most like ..., not a diagnosis" and can only raise the level.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.i18n import t
from app.models import Analysis, AuditLog, Consultation, Recommendation, SkinModelValidation
from app.services import skin_advice, skin_model, skin_model_validation
from app.services.clinical_terms import CONDITIONS
from app.services.skin_model import DEFAULT_MODEL_DIR, ModelError, SkinModel
from app.services.skin_model_validation import GateRefused, problems_of, thresholds
from app.services.triage import assess
from app.skin_model import build_placeholder
from tests.factories import bearer
from tests.photos import encode, sample_photo
from tests.services.test_triage import CALM
from workers.inference import analyse_consultation

PLACEHOLDER = build_placeholder.DEFAULT_DIR
RELAXED = """confirmed_by_clinical_lead = false
min_heldout_per_class = 3
min_balanced_accuracy = 0.70
max_calibration_error = 0.10
[referral_min_sensitivity_lower_bound]
cellulitis = 0.80
shingles = 0.80
ulcer = 0.75
burn = 0.75
mole = 0.40
[raise]
min_probability = 0.60
level = "clinic"
"""


@pytest.fixture(autouse=True)
def _fresh():
    skin_model.clear_cache()
    thresholds.cache_clear()
    yield
    skin_model.clear_cache()
    thresholds.cache_clear()


@pytest.fixture
def relaxed(monkeypatch, tmp_path):
    """Thresholds a 75-photo test model can meet (the real file asks for 30 held-out photos per class)."""
    path = tmp_path / "thresholds.toml"
    path.write_text(RELAXED)
    monkeypatch.setattr(skin_model_validation, "THRESHOLDS_FILE", path)
    monkeypatch.setattr(skin_model_validation, "MIN_HELDOUT_FLOOR", 1)
    thresholds.cache_clear()


def _records() -> int:
    return db.session.scalar(select(func.count()).select_from(SkinModelValidation))


# --- the thresholds file ----------------------------------------------------------------------------------------


def test_the_thresholds_file_names_real_referral_conditions_and_awaits_the_clinical_lead():
    limits = thresholds()
    assert set(limits.referral) == {"cellulitis", "shingles", "ulcer", "burn", "mole"} <= set(CONDITIONS)
    assert limits.min_heldout_per_class >= 30 and not limits.confirmed
    assert all(0.5 <= bound < 1 for bound in limits.referral.values())
    assert limits.raise_level == "clinic"


def _evaluation(**changes) -> dict:
    per_class = {label: {"n": 40, "sensitivity_ci": [0.9, 1.0]} for label in ("fungal", "cellulitis", "mole")}
    evaluation = {"split": "holdout", "heldout": {"per_class": per_class, "balanced_accuracy": 0.9, "ece": 0.03}}
    for key, value in changes.items():
        if key in ("balanced_accuracy", "ece"):
            evaluation["heldout"][key] = value
        elif key == "split":
            evaluation["split"] = value
        else:
            per_class[key].update(value)
    return evaluation


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, []),
        ({"fungal": {"n": 29}}, ["fungal: 29 held-out photos, at least 30 needed"]),
        (
            {"cellulitis": {"sensitivity_ci": [0.79, 0.95]}},
            ["cellulitis: the lower 95 % bound of sensitivity is 0.790"],
        ),
        ({"balanced_accuracy": 0.5}, ["balanced accuracy 0.500 is below 0.7"]),
        ({"ece": 0.2}, ["calibration error 0.2 is above 0.1"]),
        ({"split": "kfold"}, ["the metrics come from kfold cross-validation"]),
    ],
)
def test_the_gate_refuses_each_shortfall(changes, expected):
    problems, summary = problems_of(["fungal", "cellulitis", "mole"], _evaluation(**changes), thresholds())
    assert len(problems) == len(expected) and all(p.startswith(e) for p, e in zip(problems, expected, strict=True))
    assert set(summary["absent_referral"]) == {"shingles", "ulcer", "burn"}  # never named, never raises the level


# --- validate ----------------------------------------------------------------------------------------------------


def test_validate_refuses_too_few_photos_low_bounds_and_no_sign_off(app, runner, trained_skin_model):
    model = str(trained_skin_model["model"])
    with pytest.raises(GateRefused) as caught:
        skin_model_validation.validate(model, "Dr A. Mensah")
    problems = "\n".join(caught.value.problems)
    assert "held-out photos, at least 30 needed" in problems and "mole: the lower 95 % bound" in problems
    result = runner.invoke(args=["skin-model", "validate", model])
    assert result.exit_code == 1 and "--signed-off-by: the name of the clinician" in result.output
    result = runner.invoke(args=["skin-model", "validate", model, "--signed-off-by", "Dr A. Mensah"])
    assert result.exit_code == 1 and "not validated" in result.output and "at least 30 needed" in result.output
    assert _records() == 0 and not db.session.scalar(select(func.count()).select_from(AuditLog))


def test_validate_refuses_a_feature_extractor_and_a_model_without_an_evaluation(app):
    with pytest.raises(GateRefused, match="feature extractor"):
        skin_model_validation.validate(DEFAULT_MODEL_DIR, "Dr A. Mensah")
    with pytest.raises(GateRefused, match="carries no held-out evaluation"):
        skin_model_validation.validate(PLACEHOLDER, "Dr A. Mensah")
    assert _records() == 0


def test_a_passing_model_is_signed_off_once_with_an_audit_record(app, runner, relaxed, trained_skin_model):
    model_dir = trained_skin_model["model"]
    result = runner.invoke(args=["skin-model", "validate", str(model_dir), "--signed-off-by", " Dr A. Mensah "])
    assert result.exit_code == 0, result.output
    assert "not yet confirmed by the clinical lead" in result.output and f"SKIN_MODEL_DIR={model_dir}" in result.output
    record = db.session.scalar(select(SkinModelValidation))
    assert record.model_sha256 == trained_skin_model["manifest"]["sha256"] and record.signed_off_by == "Dr A. Mensah"
    assert record.labels == ["eczema", "fungal", "mole"] and record.signed_off_at is not None
    assert record.summary["referral"]["mole"]["required"] == 0.4
    audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "skin_model.validate"))
    assert audit.entity_id == str(record.id) and audit.details["model_sha256"] == record.model_sha256
    assert skin_model_validation.is_validated(SkinModel(model_dir))
    again = runner.invoke(args=["skin-model", "validate", str(model_dir), "--signed-off-by", "Someone Else"])
    assert again.exit_code == 1 and "already signed off by Dr A. Mensah" in again.output and _records() == 1


# --- the loader only believes the database ----------------------------------------------------------------------


def _copy(source: Path, target: Path, **changes) -> Path:
    shutil.copytree(source, target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest.update(changes)
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


def _sign_placeholder(labels=build_placeholder.LABELS) -> None:
    model = SkinModel(PLACEHOLDER)
    db.session.add(SkinModelValidation(model_sha256=model.sha256, model_name=model.name, model_version=model.version,
                                       labels=list(labels), signed_off_by="Dr A. Mensah", thresholds_sha256="0" * 64,
                                       summary={}))  # fmt: skip
    db.session.commit()


def test_a_hand_edited_manifest_turns_nothing_on(app, tmp_path, trained_skin_model):
    edited = _copy(PLACEHOLDER, tmp_path / "edited", validated_for_clinical_use=True)
    assert not skin_model_validation.is_validated(SkinModel(edited))
    _sign_placeholder()
    assert skin_model_validation.is_validated(SkinModel(PLACEHOLDER))
    reordered = _copy(PLACEHOLDER, tmp_path / "reordered", labels=list(reversed(build_placeholder.LABELS)))
    assert not skin_model_validation.is_validated(SkinModel(reordered))  # same file, labels swapped by hand
    swapped = list(trained_skin_model["manifest"]["labels"])[::-1]
    trained = _copy(trained_skin_model["model"], tmp_path / "trained", labels=swapped)
    with pytest.raises(ModelError, match="labels differ from the labels stored in the model file"):
        SkinModel(trained)


# --- a validated model in use -----------------------------------------------------------------------------------


def _consult(client, token, **answers) -> str:
    fields = {"condition": "fungal", "age_group": "y18_to_59", "pregnant": "false", "body_site": "trunk_limbs",
              "open_sore": "no", "fever": "false", "spreading": "false", **answers}  # fmt: skip
    created = client.post("/api/v1/consultations", headers=bearer(token),
                          data={"image": (io.BytesIO(encode(sample_photo(640, 480), "JPEG")), "skin.jpg"), **fields},
                          content_type="multipart/form-data").get_json()  # fmt: skip
    assert analyse_consultation(created["id"]) == "done"
    return created["id"]


def test_only_a_signed_off_model_shows_its_top_label_as_not_a_diagnosis(app, client, people, tmp_path):
    token = people["tokens"]["pharmacist"]
    app.config["SKIN_MODEL_DIR"] = str(_copy(PLACEHOLDER, tmp_path / "edited", validated_for_clinical_use=True))
    first = _consult(client, token)
    analysis = db.session.scalar(select(Analysis))
    assert analysis.model_validated is False and len(analysis.top) == 3  # the top-3 is recorded all the same
    assert t("skin_result_model_unvalidated", "en") in db.session.scalar(select(Recommendation.advice))

    _sign_placeholder()
    app.config["SKIN_MODEL_DIR"] = str(PLACEHOLDER)
    second = _consult(client, token)
    analysis = db.session.scalar(select(Analysis).where(Analysis.consultation_id == second))
    assert analysis.model_validated is True and len(analysis.top) == 3
    label, probability = analysis.top[0]
    advice = db.session.scalar(select(Recommendation.advice).where(Recommendation.consultation_id == second))
    line = t("skin_result_model_labels", "en", label=skin_advice.label_name(label, "en"),
             percent=round(probability * 100))  # fmt: skip
    assert line in advice and "looks most like" in line and "not a diagnosis" in line
    shown = client.get(f"/api/v1/analysis/{analysis.id}", headers=bearer(token)).get_json()
    assert shown["model_validated"] is True and len(shown["top"]) == 3
    assert first != second


@pytest.mark.parametrize(
    ("answers", "top", "level"),
    [
        ({}, [["cellulitis", 0.9], ["fungal", 0.05]], "clinic"),  # self_care by the rules, raised
        ({}, [["cellulitis", 0.5], ["fungal", 0.4]], "self_care"),  # below min_probability: no change
        ({}, [["fungal", 0.95], ["eczema", 0.03]], "self_care"),  # not a referral condition
        ({"fever": "true", "spreading": "true"}, [["fungal", 0.99], ["eczema", 0.01]], "urgent"),  # never lowered
        ({"fever": "true", "spreading": "true"}, [["mole", 0.99], ["eczema", 0.01]], "urgent"),  # not "raised" down
    ],
)
def test_a_validated_model_can_only_raise_the_level(app, client, people, answers, top, level):
    consultation_id = _consult(client, people["tokens"]["pharmacist"], **answers)
    consultation = db.session.get(Consultation, consultation_id)
    analysis = db.session.scalar(select(Analysis))
    analysis.top, analysis.model_validated = top, True  # as a signed-off model would have recorded it
    recommendation = skin_advice.recommend(consultation, replace=True)
    assert recommendation.level == level
    raised = level == "clinic"
    assert ("triage_reason_model_referral" in recommendation.reasons) is raised
    if raised:
        assert recommendation.medication_ids == [] and "looks most like Cellulitis (90%)" in recommendation.advice
    analysis.model_validated = False  # the same output from a model without a sign-off changes nothing
    assert skin_advice.recommend(consultation, replace=True).level == ("self_care" if raised else level)


def test_the_model_texts_exist_in_both_languages():
    for language in ("en", "tn"):
        line = t("skin_result_model_labels", language, label=skin_advice.label_name("mole", language), percent=71)
        assert "71%" in line and len(line) < 200
        assert t("triage_reason_model_referral", language)
        assert skin_advice.label_name("not_skin", language) != "not_skin"


def test_any_photo_with_a_referral_label_raises_the_level():
    calm = assess(CALM)
    tops = [[["fungal", 0.99], ["eczema", 0.01]], [["shingles", 0.7], ["fungal", 0.2]]]
    raised = skin_advice._raised_by_model(calm, tops)
    assert calm.level == "self_care" and raised.level == "clinic" and raised.medicines == ()
    assert raised.reasons[0] == "triage_reason_model_referral"
    assert skin_advice._raised_by_model(calm, tops[:1]) is calm
    assert skin_advice._raised_by_model(calm, []) is calm
