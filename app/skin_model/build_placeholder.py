"""Build the placeholder skin model (``placeholder/model.onnx`` + ``manifest.json``), byte for byte reproducibly.

    .venv/bin/python -m app.skin_model.build_placeholder          # rewrites app/skin_model/placeholder/
    .venv/bin/python -m app.skin_model.build_placeholder --check  # exit 1 if the shipped files differ from a rebuild

The model is NOT a diagnostic model and was never trained. It was the shipped model before the EfficientNet-Lite0
backbone (``build_backbone.py``) took its place; it stays as the test suite's model (``SKIN_MODEL_DIR`` in
tests/conftest.py): 1.4 kB that loads in milliseconds, with 14 labels, so the tests that do not care which model
runs exercise the whole path (photo -> ONNX session -> top-3 labels -> stored analysis) without loading 13.5 MB. It computes nine colour and
texture statistics of the normalised picture (per channel: mean, mean of squares, mean absolute Laplacian), then a
fixed linear layer whose weights come from a formula, then a softmax over the conditions of the triage rules
(``app/clinical/triage_rules.toml``). Its output says nothing about the skin; the manifest says so
(``validated_for_clinical_use: false``), and while that is false no reply shows a label as a finding.

Needs the ``onnx`` package (requirements-dev.txt); the service itself only needs onnxruntime to run the result.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from pathlib import Path

import numpy as np

DEFAULT_DIR = Path(__file__).resolve().parent / "placeholder"
MODEL_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"

NAME = "thusa-colour-statistics-baseline"
VERSION = "1.0.0"
# The condition ids of the triage rules, in the order of app/services/clinical_terms.py CONDITIONS.
LABELS = ("fungal", "eczema", "acne", "scabies", "impetigo", "urticaria", "insect_bite", "burn", "cold_sore",
          "shingles", "cellulitis", "ulcer", "mole", "unsure")  # fmt: skip
INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
SIZE = 224
MEAN = (0.485, 0.456, 0.406)  # the ImageNet statistics most published skin models are fine-tuned with
STD = (0.229, 0.224, 0.225)
OPSET = 17
IR_VERSION = 8  # pinned so that the bytes do not change with the onnx package's default
FEATURES = 9
TRAINED_ON = (
    "Nothing. The weights are fixed by a formula in app/skin_model/build_placeholder.py; the model was never trained, "
    "on clinical data or any other. Its output is not a finding about the skin."
)


def _weights() -> tuple[np.ndarray, np.ndarray]:
    """The fixed linear layer: small, deterministic, platform-independent (no random generator involved)."""
    weights = np.array(
        [[round(0.5 * math.sin(1.7 * (i + 1) + 0.9 * (j + 1) * (i + 2)), 4) for j in range(len(LABELS))]
         for i in range(FEATURES)],
        dtype=np.float32,
    )  # fmt: skip
    bias = np.zeros(len(LABELS), dtype=np.float32)
    bias[LABELS.index("unsure")] = 1.0  # an untrained model should lean to "unsure"
    return weights, bias


def build_model() -> bytes:
    """The serialised ONNX model."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights, bias = _weights()
    laplacian = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float32)
    kernel = np.stack([laplacian[None]] * 3)  # (3, 1, 3, 3): one Laplacian per channel (depthwise)
    initializers = [
        numpy_helper.from_array(kernel, "laplacian"),
        numpy_helper.from_array(weights, "weights"),
        numpy_helper.from_array(bias, "bias"),
    ]
    nodes = [
        helper.make_node("GlobalAveragePool", [INPUT_NAME], ["mean"]),
        helper.make_node("Mul", [INPUT_NAME, INPUT_NAME], ["squares"]),
        helper.make_node("GlobalAveragePool", ["squares"], ["mean_square"]),
        helper.make_node("Conv", [INPUT_NAME, "laplacian"], ["edges"], group=3, kernel_shape=[3, 3]),
        helper.make_node("Abs", ["edges"], ["edge_strength"]),
        helper.make_node("GlobalAveragePool", ["edge_strength"], ["texture"]),
        helper.make_node("Concat", ["mean", "mean_square", "texture"], ["statistics"], axis=1),
        helper.make_node("Flatten", ["statistics"], ["features"], axis=1),
        helper.make_node("Gemm", ["features", "weights", "bias"], ["logits"]),
        helper.make_node("Softmax", ["logits"], [OUTPUT_NAME], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        NAME,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [1, len(LABELS)])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    model.producer_name = "thusa app/skin_model/build_placeholder.py"
    model.producer_version = VERSION
    model.model_version = 1
    model.doc_string = "Untrained colour-statistics baseline; not validated for clinical use."
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString(deterministic=True)


def build_manifest(model: bytes) -> dict:
    """The manifest describing ``model`` (its sha256 included)."""
    return {
        "name": NAME,
        "version": VERSION,
        "file": MODEL_FILE,
        "sha256": hashlib.sha256(model).hexdigest(),
        "labels": list(LABELS),
        "input": {"name": INPUT_NAME, "shape": [1, 3, SIZE, SIZE], "layout": "NCHW", "dtype": "float32"},
        "output": {"name": OUTPUT_NAME, "kind": "probabilities"},
        "resize": "center_crop",
        "pixel_scale": 255,
        "mean": list(MEAN),
        "std": list(STD),
        "trained_on": TRAINED_ON,
        "validated_for_clinical_use": False,
        "license": "same as this repository",
    }


def manifest_text(manifest: dict) -> str:
    """The manifest as it is written to disk (stable key order and spacing)."""
    return json.dumps(manifest, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write (or ``--check``) the default model folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the shipped files instead of writing")
    parser.add_argument("--out", type=Path, default=DEFAULT_DIR, help="folder to write (default: %(default)s)")
    args = parser.parse_args(argv)
    model = build_model()
    manifest = manifest_text(build_manifest(model))
    model_path, manifest_path = args.out / MODEL_FILE, args.out / MANIFEST_FILE
    if args.check:
        same = (model_path.exists() and model_path.read_bytes() == model
                and manifest_path.exists() and manifest_path.read_text() == manifest)  # fmt: skip
        print(f"{args.out}: {'up to date' if same else 'DIFFERS from a rebuild'}")
        return 0 if same else 1
    args.out.mkdir(parents=True, exist_ok=True)
    model_path.write_bytes(model)
    manifest_path.write_text(manifest)
    print(f"wrote {model_path} ({len(model)} bytes, sha256 {hashlib.sha256(model).hexdigest()}) and {manifest_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
