"""``flask skin-model train`` / ``evaluate`` end to end on a generated dataset, in seconds, on the real backbone.

Three synthetic textures stand for three conditions (tests/photos.py ``texture_dataset``: 20 fake patients each,
every fourth with two photos, Fitzpatrick types in meta.csv). The trained folder must load as an ordinary
classifier, separate the classes on its held-out part, keep every patient in one part, and store held-out metrics
equal to the ones recomputed from the model file on the test photos; training and serving compute the same
features for a photo. The backbone and the trained model are made once for the module.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from app.services import images, skin_metrics, skin_training
from app.services.skin_model import DEFAULT_MODEL_DIR, SkinModel, get_model
from app.services.skin_training import TrainingError
from tests.photos import texture_dataset
from tests.services.conftest import TRAINED_VERSION as VERSION


@pytest.fixture
def trained(trained_skin_model) -> dict:
    return trained_skin_model


def _split(model_dir: Path) -> list[dict]:
    with (model_dir / skin_training.SPLIT_FILE).open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_trained_folder_loads_as_a_classifier_with_its_card(trained):
    model = SkinModel(trained["model"])
    manifest = trained["manifest"]
    assert model.classifier and model.labels == ("eczema", "fungal", "mole")
    assert model.sha256 == manifest["sha256"] and model.version == VERSION
    assert manifest["evaluation"]["backbone"]["sha256"] == get_model(DEFAULT_MODEL_DIR).sha256
    assert manifest["evaluation"]["split"] == "holdout" and manifest["evaluation"]["photos"] == 75
    # the file itself carries the labels and the evaluation (its checksum covers them)
    assert json.loads(model.metadata[skin_training.METADATA_EVALUATION]) == manifest["evaluation"]
    report = (trained["model"] / skin_training.REPORT_FILE).read_text()
    for needle in ("sensitivity", "PPV", "95 % CI", "macro-F1", "top-3", "calibration error", "Confusion matrix",
                   "By Fitzpatrick group", manifest["evaluation"]["data_sha256"], manifest["sha256"]):  # fmt: skip
        assert needle in report, needle
    assert any("features: 75/75" in line for line in trained["messages"])  # progress on the terminal
    assert trained["seconds"] < 30


def test_it_separates_the_classes_on_held_out_patients(trained):
    heldout = trained["manifest"]["evaluation"]["heldout"]
    assert heldout["n"] >= 9 and heldout["balanced_accuracy"] >= 0.9 and heldout["top3_accuracy"] == 1.0
    assert set(heldout["by_fitzpatrick"]) <= {"III-IV", "V-VI"}


def test_no_patient_is_in_two_parts_and_the_split_is_stratified(trained):
    rows = _split(trained["model"])
    parts_of = defaultdict(set)
    for row in rows:
        parts_of[row["patient"]].add(row["part"])
        assert row["patient"] == "patient:" + trained["patient_of"][row["file"]]
    assert all(len(parts) == 1 for parts in parts_of.values())
    assert any(sum(1 for r in rows if r["patient"] == p) == 2 for p in parts_of)  # two-photo patients exist
    for label in ("eczema", "fungal", "mole"):
        assert {r["part"] for r in rows if r["label"] == label} == {"train", "validation", "test"}


def test_stored_metrics_equal_the_ones_recomputed_from_the_model_file(trained):
    model = SkinModel(trained["model"])
    test_rows = [row for row in _split(trained["model"]) if row["part"] == "test"]
    meta = {row["file"]: row for row in csv.DictReader((trained["data"] / "meta.csv").open())}
    probabilities = np.stack([model.run(model.preprocess(images.process((trained["data"] / r["file"]).read_bytes()).data))
                              for r in test_rows]).astype(np.float64)  # fmt: skip
    truth = np.array([model.labels.index(r["label"]) for r in test_rows])
    groups = [skin_metrics.fitzpatrick_group(meta[r["file"]]["fitzpatrick"]) for r in test_rows]
    recomputed = skin_metrics.evaluate(probabilities, truth, model.labels, groups)
    stored = trained["manifest"]["evaluation"]["heldout"]
    assert recomputed["confusion"] == stored["confusion"] and recomputed["n"] == stored["n"]
    assert _close(recomputed, stored)


def _close(a, b) -> bool:
    if isinstance(a, dict):
        assert set(a) == set(b)
        return all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        assert len(a) == len(b)
        return all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        assert b == pytest.approx(a, abs=1e-5)
        return True
    assert a == b
    return True


def test_training_and_serving_compute_the_same_features(trained):
    backbone, served = get_model(DEFAULT_MODEL_DIR), SkinModel(trained["model"])
    name = sorted(trained["patient_of"])[0]
    photo = (trained["data"] / name).read_bytes()
    [extracted] = skin_training.extract(backbone, trained["data"], skin_training.read_dataset(trained["data"])[:1])
    assert extracted.file == name
    stored = images.process(photo).data  # what the analysis pipeline stores and hands to the model
    assert np.array_equal(extracted.features, skin_training.serving_features(backbone, photo))
    assert np.array_equal(served.features(stored), backbone.features(stored))  # the head reads the backbone's


def test_the_command_line_trains_byte_for_byte_the_same_model_then_evaluates(trained, runner, tmp_path):
    out = tmp_path / "again"
    result = runner.invoke(args=["skin-model", "train", "--data", str(trained["data"]), "--out", str(out),
                                 "--version", VERSION])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (out / "model.onnx").read_bytes() == (trained["model"] / "model.onnx").read_bytes()  # seeded, deterministic
    assert "flask skin-model validate" in result.output and trained["manifest"]["sha256"] in result.output
    refused = runner.invoke(args=["skin-model", "train", "--data", str(trained["data"]), "--out", str(out)])
    assert refused.exit_code == 1 and "not empty" in refused.output

    other = tmp_path / "other"
    texture_dataset(other, patients=4, seed=11)
    evaluated = runner.invoke(args=["skin-model", "evaluate", str(out), "--data", str(other), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    body = json.loads(evaluated.stdout)
    assert body["photos"] == 15 and body["model"]["sha256"] == trained["manifest"]["sha256"]
    assert body["metrics"]["balanced_accuracy"] >= 0.8 and set(body["metrics"]["per_class"]) == {
        "eczema",
        "fungal",
        "mole",
    }
    text = runner.invoke(args=["skin-model", "evaluate", str(out), "--data", str(other)])
    assert text.exit_code == 0 and "| class | n | sensitivity |" in text.output


def test_few_patients_fall_back_to_grouped_k_fold(tmp_path):
    texture_dataset(tmp_path / "data", patients=5, kinds=("fungal", "mole"))
    manifest = skin_training.train(tmp_path / "data", tmp_path / "model", DEFAULT_MODEL_DIR, version="kf")
    evaluation = manifest["evaluation"]
    assert evaluation["split"] == "kfold" and evaluation["heldout"]["n"] == evaluation["photos"] == 14
    parts = {row["patient"]: row["part"] for row in _split(tmp_path / "model")}
    assert set(parts.values()) == {f"fold{i}" for i in range(5)}
    assert "out-of-fold" in (tmp_path / "model" / "report.md").read_text()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: (d / "psoriasis").mkdir(), "'psoriasis' is not a label here"),
        (lambda d: (d / "meta.csv").write_text("file,patient_id\nfungal/nope.jpg,p1\n"), "line 2: 'fungal/nope.jpg'"),
        (lambda d: (d / "meta.csv").write_text("file,patient\n"), "unknown column(s) patient"),
        (lambda d: (d / "meta.csv").write_text("file,fitzpatrick\nfungal/fu000-0.jpg,7\n"), "fitzpatrick '7'"),
    ],
)
def test_bad_data_is_refused_naming_the_file(tmp_path, make, message):
    texture_dataset(tmp_path, patients=2, kinds=("fungal", "mole"))
    make(tmp_path)
    with pytest.raises(TrainingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        skin_training.read_dataset(tmp_path)


def test_a_class_of_one_patient_or_a_classifier_as_backbone_is_refused(tmp_path):
    texture_dataset(tmp_path / "data", patients=1, kinds=("fungal", "mole"), second_photo_every=1)
    with pytest.raises(TrainingError, match="fewer than 2 patients"):
        skin_training.train(tmp_path / "data", tmp_path / "out", DEFAULT_MODEL_DIR)
    with pytest.raises(TrainingError, match="must be a feature extractor"):
        skin_training.train(tmp_path / "data", tmp_path / "out2", Path("app/skin_model/placeholder").resolve())


def test_wilson_intervals_match_known_values():
    assert skin_metrics.wilson(30, 30) == pytest.approx((0.886487, 1.0), abs=1e-6)
    assert skin_metrics.wilson(8, 10) == pytest.approx((0.490162, 0.943318), abs=1e-6)
    assert skin_metrics.wilson(0, 0) == (0.0, 1.0)
