"""``flask skin-model export-dataset``: only consented photos with a clinician-confirmed condition, in the layout
``flask skin-model train`` reads (``DIR/<condition>/*.jpg`` and ``DIR/meta.csv``), with nothing that names a person."""

from __future__ import annotations

import csv
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, ReviewRequest, utcnow
from app.services import reviews, triage
from app.services.review_export import META_COLUMNS
from tests.conftest import make_user
from tests.factories import make_triaged
from tests.photos import encode, sample_photo


def _answered(consultation, *, diagnosis: str, confidence: str = "confirmed", at=None) -> ReviewRequest:
    review, _ = reviews.open_review(consultation, reason="requested", by=None)
    review.status, review.answered_at, review.diagnosis = "answered", at or utcnow(), diagnosis
    review.condition = diagnosis if diagnosis in (*triage.CONDITIONS, "not_skin") else None
    review.level, review.advice, review.confidence = "pharmacy", "Advice naming nobody.", confidence
    db.session.commit()
    return review


@pytest.mark.both_backends
def test_only_consented_confirmed_photos_are_exported_in_the_training_layout(runner, tmp_path):
    pharmacist = make_user("pharmacist", phone="+233241000077")
    photo = encode(sample_photo(320, 240), "JPEG", quality=90)
    exported = make_triaged(pharmacist, consent=True, photo=photo, body_site="face")
    _answered(exported, diagnosis="scabies")
    not_skin = make_triaged(pharmacist, consent=True, photo=photo)
    _answered(not_skin, diagnosis="not_skin")
    _answered(make_triaged(pharmacist, consent=False, photo=photo), diagnosis="scabies")  # no consent
    _answered(make_triaged(pharmacist, consent=True, photo=photo), diagnosis="scabies", confidence="likely")
    _answered(make_triaged(pharmacist, consent=True, photo=photo), diagnosis="Lichen planus, L43.9")  # free text
    make_triaged(pharmacist, consent=True, photo=photo)  # never reviewed
    erased = make_triaged(pharmacist, consent=True, photo=photo)
    _answered(erased, diagnosis="scabies")
    erased.images[0].data = None  # retention erased the photo
    db.session.commit()

    out = tmp_path / "dataset"
    result = runner.invoke(args=["skin-model", "export-dataset", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "exported 2 photos of 2 consultations" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["meta.csv", "not_skin", "scabies"]
    [jpeg] = list((out / "scabies").iterdir())
    assert jpeg.read_bytes() == photo and jpeg.suffix == ".jpg"
    with (out / "meta.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == META_COLUMNS
    by_file = {row["file"]: row for row in rows}
    row = by_file[f"scabies/{jpeg.name}"]
    assert (row["site"], row["source"], row["fitzpatrick"]) == ("face", "thusa-review", "")
    assert all((out / name).is_file() for name in by_file)
    # Pseudonymous: no consultation, photo or account id, name or number anywhere in the export.
    names = " ".join(by_file) + " ".join(row["patient_id"] for row in rows)
    for secret in (str(exported.id), str(exported.images[0].id), str(pharmacist.id), pharmacist.phone,
                   pharmacist.name, pharmacist.email):  # fmt: skip
        assert secret not in (out / "meta.csv").read_text() and secret not in names
    assert len({row["patient_id"] for row in rows}) == 2
    audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "review.export"))
    assert audit.details["photos"] == 2 and audit.details["by_condition"] == {"scabies": 1, "not_skin": 1}

    # The folder must be new or empty; --since keeps only reviews answered from that day on.
    again = runner.invoke(args=["skin-model", "export-dataset", "--out", str(out)])
    assert again.exit_code != 0 and "empty" in again.output
    tomorrow = (utcnow() + timedelta(days=1)).date().isoformat()
    later = runner.invoke(args=["skin-model", "export-dataset", "--out", str(tmp_path / "later"), "--since", tomorrow])
    assert later.exit_code == 0 and "exported 0 photos" in later.output
    assert (tmp_path / "later" / "meta.csv").read_text().strip() == ",".join(META_COLUMNS)


def test_flask_skin_model_train_accepts_the_export(runner, tmp_path):
    """The export is a training set as it stands: ``train`` reads its folders and meta.csv (patients kept apart by
    their pseudonymous ids) and writes a model."""
    pharmacist = make_user("pharmacist", phone="+233241000078")
    for seed, condition in enumerate(("scabies", "not_skin")):
        for n in range(3):
            photo = encode(sample_photo(320, 240, seed=10 * seed + n), "JPEG", quality=90)
            _answered(make_triaged(pharmacist, consent=True, photo=photo), diagnosis=condition)
    data, out = tmp_path / "dataset", tmp_path / "model"
    assert runner.invoke(args=["skin-model", "export-dataset", "--out", str(data)]).exit_code == 0

    result = runner.invoke(args=["skin-model", "train", "--data", str(data), "--out", str(out)])

    assert result.exit_code == 0, result.output
    assert (out / "model.onnx").is_file() and (out / "report.md").is_file()
    with (out / "split.csv").open(newline="") as handle:
        split = list(csv.DictReader(handle))
    assert len(split) == 6
