"""The ONNX loader (``app.services.skin_model``) on the placeholder model (the test suite's tiny classifier).

The placeholder is rebuilt from its script and compared byte for byte, so the two never drift. The shipped
backbone (a feature extractor) has its own tests: tests/services/test_skin_backbone.py. Every refusal
(checksum, input name, shape, layout, label count, broken manifest, missing files) is a ModelError naming the
problem. A second, tiny NHWC model that outputs logits shows the loader is driven by the manifest alone.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app import create_app
from app.services import skin_model
from app.services.images import ImageRejected, process
from app.services.skin_model import DEFAULT_MODEL_DIR, ModelError, SkinModel, get_model
from app.skin_model import build_placeholder
from tests.photos import encode, sample_photo

PLACEHOLDER = build_placeholder.DEFAULT_DIR


@pytest.fixture(autouse=True)
def _fresh_models():
    skin_model.clear_cache()
    yield
    skin_model.clear_cache()


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(PLACEHOLDER, folder)
    return folder


def _edit_manifest(folder: Path, **changes) -> None:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            manifest.pop(key, None)
        else:
            manifest[key] = value
    path.write_text(json.dumps(manifest))


def _stored_photo(colour=None) -> bytes:
    picture = Image.new("RGB", (640, 480), colour) if colour else sample_photo(640, 480)
    return process(encode(picture, "JPEG", quality=90)).data


# --- the shipped default model --------------------------------------------------------------------------------


def test_the_shipped_model_is_exactly_what_the_script_builds():
    model = build_placeholder.build_model()
    shipped = (PLACEHOLDER / "model.onnx").read_bytes()
    assert hashlib.sha256(model).hexdigest() == hashlib.sha256(shipped).hexdigest()
    assert (PLACEHOLDER / "manifest.json").read_text() == build_placeholder.manifest_text(
        build_placeholder.build_manifest(model)
    )
    assert build_placeholder.main(["--check"]) == 0


def test_the_build_check_fails_when_the_shipped_file_drifts(model_copy: Path):
    (model_copy / "model.onnx").write_bytes((model_copy / "model.onnx").read_bytes() + b"\x00")
    assert build_placeholder.main(["--check", "--out", str(model_copy)]) == 1


def test_the_placeholder_is_small_honest_and_not_validated():
    manifest = json.loads((PLACEHOLDER / "manifest.json").read_text())
    assert (PLACEHOLDER / "model.onnx").stat().st_size < 300_000
    assert manifest["validated_for_clinical_use"] is False
    assert "never trained" in manifest["trained_on"] and "clinical" in manifest["trained_on"]
    assert manifest["labels"] == list(build_placeholder.LABELS)
    assert {"fungal", "eczema", "acne", "scabies", "impetigo", "urticaria", "insect_bite", "burn", "cold_sore",
            "shingles", "cellulitis", "ulcer", "mole"} <= set(manifest["labels"])  # fmt: skip


def test_the_placeholder_predicts_the_top_three_labels():
    model = get_model(PLACEHOLDER)
    prediction = model.predict(_stored_photo())

    assert (prediction.model_name, prediction.model_version) == (build_placeholder.NAME, build_placeholder.VERSION)
    assert prediction.model_sha256 == hashlib.sha256((PLACEHOLDER / "model.onnx").read_bytes()).hexdigest()
    assert prediction.output == {"kind": "probabilities"}
    assert len(prediction.top) == 3
    labels = [label for label, _ in prediction.top]
    probabilities = [probability for _, probability in prediction.top]
    assert len(set(labels)) == 3 and set(labels) <= set(build_placeholder.LABELS)
    assert probabilities == sorted(probabilities, reverse=True)
    assert all(0 < p < 1 for p in probabilities) and sum(probabilities) <= 1.0 + 1e-6
    assert set(prediction.timings_ms) == {"preprocess", "inference"}
    assert model.predict(_stored_photo()).top == prediction.top  # deterministic


def test_different_pictures_give_different_outputs():
    model = get_model(PLACEHOLDER)
    red = model.predict(_stored_photo((200, 40, 40))).top
    blue = model.predict(_stored_photo((40, 40, 200))).top
    assert red != blue


def test_an_unreadable_picture_is_refused():
    with pytest.raises(ImageRejected) as caught:
        get_model(PLACEHOLDER).predict(b"not a picture")
    assert caught.value.code == "unreadable"


# --- one session per process ----------------------------------------------------------------------------------


def test_one_single_threaded_session_per_process():
    first = get_model(PLACEHOLDER)
    assert get_model(str(PLACEHOLDER)) is first
    options = first._session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)


def test_the_folder_comes_from_skin_model_dir(tmp_path: Path, model_copy: Path):
    app = create_app({"THUSA_ENV": "test", "INSTANCE_PATH": str(tmp_path), "SKIN_MODEL_DIR": str(model_copy)})
    with app.app_context():
        assert get_model().model_dir == model_copy.resolve()
    default_app = create_app({"THUSA_ENV": "test", "INSTANCE_PATH": str(tmp_path), "SKIN_MODEL_DIR": ""})
    with default_app.app_context():
        assert skin_model.model_dir_from_config(default_app.config) == DEFAULT_MODEL_DIR  # the backbone


def test_a_relative_skin_model_dir_is_read_from_the_project_root():
    assert skin_model.model_dir_from_config({"SKIN_MODEL_DIR": "app/skin_model/placeholder"}) == PLACEHOLDER
    assert skin_model.model_dir_from_config({}) == DEFAULT_MODEL_DIR


def test_a_failed_load_is_not_cached(model_copy: Path):
    _edit_manifest(model_copy, sha256="0" * 64)
    with pytest.raises(ModelError):
        get_model(model_copy)
    _edit_manifest(model_copy, sha256=hashlib.sha256((model_copy / "model.onnx").read_bytes()).hexdigest())
    assert get_model(model_copy).name == build_placeholder.NAME


# --- refusals ---------------------------------------------------------------------------------------------------


def test_a_checksum_mismatch_is_refused(model_copy: Path):
    data = bytearray((model_copy / "model.onnx").read_bytes())
    data[-1] ^= 0xFF
    (model_copy / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256 is .*, the manifest says"):
        SkinModel(model_copy)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"input": {"name": "pixels", "shape": [1, 3, 224, 224], "layout": "NCHW"}}, "input.name 'pixels' is not"),
        ({"input": {"name": "image", "shape": [1, 3, 256, 256], "layout": "NCHW"}}, "does not match the model"),
        ({"input": {"name": "image", "shape": [1, 224, 224, 3], "layout": "NHWC"}}, "does not match the model"),
        ({"input": {"name": "image", "shape": [1, 3, 224, 224], "layout": "NHWC"}}, "3 channels"),
        ({"labels": list(build_placeholder.LABELS[:-1])}, "13 labels but the model outputs 14 values"),
        ({"labels": [*build_placeholder.LABELS, "extra"]}, "15 labels but the model outputs 14 values"),
        ({"labels": ["a", "a"]}, "labels must be"),
        ({"output": {"name": "logits_out"}}, "output.name 'logits_out' is not"),
        ({"validated_for_clinical_use": None}, "validated_for_clinical_use must be true or false"),
        ({"validated_for_clinical_use": "no"}, "validated_for_clinical_use must be true or false"),
        ({"trained_on": ""}, "trained_on must be"),
        ({"sha256": "abc"}, "sha256 must be 64"),
        ({"std": [0.2, 0.0, 0.2]}, "std must be 3 positive numbers"),
        ({"mean": [0.5]}, "mean must be 3 numbers"),
        ({"file": "../model.onnx"}, "file must be a file name"),
        ({"resize": "zoom"}, "resize must be one of"),
        ({"name": None, "version": 3}, "name must be a non-empty string; version must be"),
    ],
)
def test_a_manifest_that_does_not_fit_the_model_is_refused(model_copy: Path, changes, message):
    _edit_manifest(model_copy, **changes)
    with pytest.raises(ModelError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SkinModel(model_copy)


def test_missing_or_broken_files_are_refused(model_copy: Path, tmp_path: Path):
    with pytest.raises(ModelError, match="no manifest"):
        SkinModel(tmp_path / "nowhere")
    (model_copy / "model.onnx").unlink()
    with pytest.raises(ModelError, match="cannot read the model file"):
        SkinModel(model_copy)
    (model_copy / "manifest.json").write_text("{not json")
    with pytest.raises(ModelError, match="not readable JSON"):
        SkinModel(model_copy)
    (model_copy / "manifest.json").write_text("[]")
    with pytest.raises(ModelError, match="not a JSON object"):
        SkinModel(model_copy)


def test_a_file_that_is_not_onnx_is_refused_even_with_a_matching_checksum(model_copy: Path):
    junk = b"this is not an ONNX model"
    (model_copy / "model.onnx").write_bytes(junk)
    _edit_manifest(model_copy, sha256=hashlib.sha256(junk).hexdigest())
    with pytest.raises(ModelError, match="onnxruntime cannot load the model"):
        SkinModel(model_copy)


# --- any model the manifest describes ---------------------------------------------------------------------------


def _redness_model(folder: Path) -> None:
    """An NHWC model with a dynamic batch that outputs logits: mean colour -> [red - blue, blue - red]."""
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.array([[4, -4], [0, 0], [-4, 4]], dtype=np.float32), "weights")
    axes = numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "axes")
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["pixels", "axes"], ["colour"], keepdims=0),
            helper.make_node("MatMul", ["colour", "weights"], ["scores"]),
        ],  # fmt: skip
        "redness",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 32, 32, 3])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 2])],
        initializer=[weights, axes],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    data = model.SerializeToString()
    folder.mkdir()
    (folder / "net.onnx").write_bytes(data)
    manifest = {"name": "redness", "version": "0.1", "file": "net.onnx", "sha256": hashlib.sha256(data).hexdigest(),
                "labels": ["red", "blue"], "input": {"name": "pixels", "shape": [1, 32, 32, 3], "layout": "NHWC"},
                "output": {"name": "scores", "kind": "logits"}, "resize": "squash", "pixel_scale": 255,
                "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "trained_on": "nothing (a test model)",
                "validated_for_clinical_use": True}  # fmt: skip
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_an_nhwc_model_with_logits_is_driven_by_its_manifest(tmp_path: Path):
    folder = tmp_path / "redness"
    _redness_model(folder)
    model = get_model(folder)

    red = model.predict(_stored_photo((230, 20, 20)))
    blue = model.predict(_stored_photo((20, 20, 230)))

    assert red.model_name == "redness"  # the manifest's "validated_for_clinical_use": true turns nothing on
    assert len(red.top) == 2  # top-3 of a two-label model
    assert red.top[0][0] == "red"
    assert blue.top[0][0] == "blue"
    assert sum(p for _, p in red.top) == pytest.approx(1.0)  # the softmax was applied to the logits
    assert red.top[0][1] > 0.99
    batch = model.preprocess(_stored_photo((255, 0, 0)))
    assert batch.shape == (1, 32, 32, 3)
    assert batch[0, 0, 0].tolist() == pytest.approx([1.0, -1.0, -1.0], abs=0.03)


def test_center_crop_keeps_the_middle_and_never_blows_a_strip_up():
    model = get_model(PLACEHOLDER)
    strip = Image.new("RGB", (1, 2048), (90, 60, 40))
    batch = model.preprocess(encode(strip, "PNG"))
    assert batch.shape == (1, 3, 224, 224)
    wide = Image.new("RGB", (900, 300), (255, 0, 0))
    wide.paste((0, 0, 255), (300, 0, 600, 300))  # blue middle third, red sides
    middle = model.preprocess(encode(wide, "PNG"))
    blue = (1.0 - build_placeholder.MEAN[2]) / build_placeholder.STD[2]
    assert middle[0, 2, 112, 5] == pytest.approx(blue, abs=0.05)  # the crop is the blue middle
    assert middle[0, 2, 112, 218] == pytest.approx(blue, abs=0.05)
