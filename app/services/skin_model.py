"""The skin photo model: a model-agnostic ONNX loader driven by the ``manifest.json`` next to the model.

A model folder holds ``model.onnx`` (or the manifest's ``file``) and ``manifest.json``::

    {"name": "...", "version": "...", "file": "model.onnx", "sha256": "<hex of the model file>",
     "labels": ["fungal", ...],                       # one per output value, in output order
     "input": {"name": "image", "shape": [1, 3, 224, 224], "layout": "NCHW"},   # or NHWC, e.g. [1, 224, 224, 3]
     "output": {"name": "probabilities", "kind": "probabilities"},              # or "logits" (softmax applied)
     "resize": "center_crop",                          # or "squash" (stretch to the input size)
     "pixel_scale": 255, "mean": [r, g, b], "std": [r, g, b],   # x = (pixel / pixel_scale - mean) / std
     "trained_on": "what data, honestly", "validated_for_clinical_use": false}

Two kinds of model:

- **A classifier** (output kind ``probabilities`` or ``logits``): ``labels`` name its outputs; a prediction is the
  top-3 labels. ``output.features`` may name a second output holding the features its head reads (a model made by
  ``flask skin-model train`` has it), which :meth:`SkinModel.features` returns.
- **A feature extractor** (output kind ``features``, ``output.size`` values, no ``labels``): the shipped default,
  the EfficientNet-Lite0 backbone (``app/skin_model/default``, built by ``app/skin_model/build_backbone.py``). It
  names no condition: a prediction has no labels, only a compact summary of the feature vector (size, mean, max,
  L2 norm, how many are non-zero), which the analysis records with the model's name, version and checksum.

Whether a label may ever be shown is NOT the manifest's business: ``validated_for_clinical_use`` is informational,
and a model counts as validated only when the database holds a sign-off for its file's sha256 (and labels), made
by ``flask skin-model validate`` after the clinical gate (:mod:`app.services.skin_model_validation`). Editing a
manifest by hand turns nothing on.

The loader refuses (:class:`ModelError`) a manifest with a missing or wrong field, a model whose sha256 differs, an
input name, shape or layout the model does not have, or a label count (or ``output.size``) different from the
model's output size (checked by running the model once on a blank picture). Each process holds one onnxruntime
session per model folder, with one intra-op and one inter-op thread: the RQ worker runs one job at a time and the
web processes share the machine's cores. The test suite runs the 1.4 kB untrained placeholder
(``app/skin_model/placeholder``, ``build_placeholder.py``) except where a test is about the backbone.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from app.config import PROJECT_ROOT
from app.services.images import ImageRejected

DEFAULT_MODEL_DIR = PROJECT_ROOT / "app" / "skin_model" / "default"
MANIFEST_FILE = "manifest.json"
TOP = 3
LAYOUTS = ("NCHW", "NHWC")
RESIZES = ("center_crop", "squash")
OUTPUT_KINDS = ("probabilities", "logits", "features")
FEATURES = "features"
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ModelError(Exception):
    """The model cannot be used: a bad manifest, a checksum or shape mismatch, a missing file."""


@dataclass(frozen=True)
class Prediction:
    """What the model said about one picture.

    Attributes:
        model_name, model_version: from the manifest.
        model_sha256: the checksum of the model file (what a sign-off is recorded against).
        top: a classifier's three most probable ``(label, probability)``, highest first; ``()`` for a feature
            extractor.
        output: a feature extractor's summary of its feature vector (``kind``, ``size``, ``mean``, ``max``, ``l2``,
            ``nonzero``); ``{"kind": <output kind>}`` for a classifier.
        timings_ms: ``preprocess`` (decode + resize + normalise) and ``inference``.
    """

    model_name: str
    model_version: str
    model_sha256: str
    top: tuple[tuple[str, float], ...]
    output: dict
    timings_ms: dict


class SkinModel:
    """One model folder, checked and loaded into an onnxruntime session."""

    def __init__(self, model_dir: str | os.PathLike) -> None:
        """Read and check the manifest and the model.

        Raises:
            ModelError: anything that makes the model unusable; the message names the field or file.
        """
        self.model_dir = Path(model_dir)
        self.manifest = _read_manifest(self.model_dir)
        manifest = self.manifest
        model_path = self.model_dir / manifest["file"]
        try:
            model = model_path.read_bytes()
        except OSError as exc:
            raise ModelError(f"{model_path}: cannot read the model file ({exc.strerror or exc})") from None
        digest = hashlib.sha256(model).hexdigest()
        if digest != manifest["sha256"]:
            raise ModelError(f"{model_path}: sha256 is {digest}, the manifest says {manifest['sha256']}")
        self.sha256: str = digest
        self.kind: str = manifest["output"].get("kind", "probabilities")
        self.labels: tuple[str, ...] = tuple(manifest.get("labels") or ())
        self.input_name: str = manifest["input"]["name"]
        self.layout: str = manifest["input"]["layout"]
        shape = manifest["input"]["shape"]
        self.height, self.width = (shape[2], shape[3]) if self.layout == "NCHW" else (shape[1], shape[2])
        self._shape = tuple(shape)
        self._mean = np.array(manifest["mean"], dtype=np.float32)
        self._std = np.array(manifest["std"], dtype=np.float32)
        self._scale = float(manifest.get("pixel_scale", 255))
        self._session = _session(model, model_path)
        self._output_name = self._check_session()
        self._features_name = self._check_features()

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def output_name(self) -> str:
        """The model's main output (a classifier's scores, a feature extractor's features)."""
        return self._output_name

    @property
    def classifier(self) -> bool:
        """Whether the model names conditions (a feature extractor does not)."""
        return self.kind != FEATURES

    def _check_session(self) -> str:
        """The output name, after checking the model's declared input and its real output against the manifest."""
        inputs = {item.name: item for item in self._session.get_inputs()}
        if self.input_name not in inputs:
            raise ModelError(f"the manifest's input.name {self.input_name!r} is not an input of the model "
                             f"(it has {sorted(inputs)})")  # fmt: skip
        declared = inputs[self.input_name].shape
        if len(declared) != len(self._shape) or any(
            isinstance(dim, int) and dim != want for dim, want in zip(declared, self._shape, strict=False)
        ):
            raise ModelError(f"the manifest's input.shape {list(self._shape)} does not match the model's {declared} "
                             f"(layout {self.layout})")  # fmt: skip
        outputs = [item.name for item in self._session.get_outputs()]
        wanted = self.manifest["output"].get("name") or outputs[0]
        if wanted not in outputs:
            raise ModelError(f"the manifest's output.name {wanted!r} is not an output of the model (it has {outputs})")
        blank = np.zeros(self._shape, dtype=np.float32)
        try:
            values = self._session.run([wanted], {self.input_name: blank})[0]
        except Exception as exc:  # onnxruntime raises its own exception types for every kind of failure
            raise ModelError(f"the model does not run on an input of shape {list(self._shape)}: {exc}") from None
        if self.kind == FEATURES:
            if values.size != self.manifest["output"]["size"]:
                raise ModelError(f"the manifest's output.size is {self.manifest['output']['size']} but the model "
                                 f"outputs {values.size} values")  # fmt: skip
        elif values.size != len(self.labels):
            raise ModelError(f"the manifest has {len(self.labels)} labels but the model outputs {values.size} values")
        embedded = self._session.get_modelmeta().custom_metadata_map.get("thusa.labels")
        if embedded is not None and json.loads(embedded) != list(self.labels):
            raise ModelError("the manifest's labels differ from the labels stored in the model file")
        return wanted

    def _check_features(self) -> str | None:
        if self.kind == FEATURES:
            return self._output_name
        name = self.manifest["output"].get("features")
        if name and name not in [item.name for item in self._session.get_outputs()]:
            raise ModelError(f"the manifest's output.features {name!r} is not an output of the model")
        return name or None

    @property
    def metadata(self) -> dict[str, str]:
        """The model file's own metadata (``metadata_props``): a trained model carries its labels and held-out
        metrics there, covered by the file's checksum."""
        return dict(self._session.get_modelmeta().custom_metadata_map)

    def run(self, batch: np.ndarray, output: str | None = None) -> np.ndarray:
        """One output (default: the main one) for a preprocessed batch of one, as a flat float32 vector."""
        name = output or self._output_name
        return self._session.run([name], {self.input_name: batch})[0].reshape(-1)

    def features(self, image: bytes) -> np.ndarray:
        """The feature vector for one picture (a feature extractor's output, or a trained model's ``features``).

        Raises:
            ModelError: the model has no feature output.
            ImageRejected: ``unreadable``.
        """
        if self._features_name is None:
            raise ModelError(f"model {self.name} {self.version} has no feature output")
        return self.run(self.preprocess(image), self._features_name)

    def predict(self, image: bytes) -> Prediction:
        """The top-3 labels for one picture (``StoredImage.data``: a JPEG; PNG is read too).

        Raises:
            ImageRejected: ``unreadable`` when the bytes are not a readable JPEG or PNG.
        """
        started = time.perf_counter()
        batch = self.preprocess(image)
        prepared = time.perf_counter()
        values = self.run(batch).astype(np.float64)
        finished = time.perf_counter()
        if self.kind == FEATURES:
            top: tuple[tuple[str, float], ...] = ()
            output = summary(values)
        else:
            probabilities = _softmax(values) if self.kind == "logits" else values
            order = np.argsort(-probabilities, kind="stable")[:TOP]
            top = tuple((self.labels[i], round(float(probabilities[i]), 6)) for i in order)
            output = {"kind": self.kind}
        return Prediction(
            model_name=self.name,
            model_version=self.version,
            model_sha256=self.sha256,
            top=top,
            output=output,
            timings_ms={
                "preprocess": round((prepared - started) * 1000, 1),
                "inference": round((finished - prepared) * 1000, 1),
            },
        )

    def preprocess(self, image: bytes) -> np.ndarray:
        """Decode, resize to the input size, scale, normalise and lay out as the manifest says (a batch of one)."""
        try:
            with Image.open(io.BytesIO(image), formats=["JPEG", "PNG"]) as opened:
                if opened.format == "JPEG":
                    opened.draft("RGB", (self.width, self.height))  # decode at 1/2..1/8 scale when that suffices
                picture = opened.convert("RGB")
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            raise ImageRejected("unreadable", "the stored picture cannot be read") from None
        picture = _resize(picture, self.width, self.height, self.manifest["resize"])
        pixels = np.asarray(picture, dtype=np.float32) / self._scale
        pixels = (pixels - self._mean) / self._std  # HWC
        if self.layout == "NCHW":
            pixels = pixels.transpose(2, 0, 1)
        return np.ascontiguousarray(pixels[None], dtype=np.float32)


def summary(values: np.ndarray) -> dict:
    """A compact record of a feature vector: enough to see that a real backbone ran, not the vector itself."""
    return {"kind": FEATURES, "size": int(values.size), "mean": round(float(values.mean()), 6),
            "max": round(float(values.max()), 6), "l2": round(float(np.linalg.norm(values)), 6),
            "nonzero": int(np.count_nonzero(values))}  # fmt: skip


def _resize(picture: Image.Image, width: int, height: int, how: str) -> Image.Image:
    if how == "center_crop":
        # Crop the source to the input's aspect ratio first, then resize only that box: scaling the whole picture
        # first would make a 1 x 2048 strip 224 x 458752 pixels (300 MB) on the way.
        ratio = width / height
        if picture.width / picture.height > ratio:
            box_width, box_height = max(1, round(picture.height * ratio)), picture.height
        else:
            box_width, box_height = picture.width, max(1, round(picture.width / ratio))
        left, top = (picture.width - box_width) // 2, (picture.height - box_height) // 2
        box = (left, top, left + box_width, top + box_height)
        return picture.resize((width, height), Image.Resampling.BILINEAR, box=box, reducing_gap=2.0)
    return picture.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=2.0)


def _softmax(values: np.ndarray) -> np.ndarray:
    shifted = np.exp(values - values.max())
    return shifted / shifted.sum()


def _session(model: bytes, path: Path):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: onnxruntime's warnings go to stderr, not our logs
    try:
        return onnxruntime.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's Fail / InvalidGraph / InvalidProtobuf ...
        raise ModelError(f"{path}: onnxruntime cannot load the model: {exc}") from None


# --- the manifest ------------------------------------------------------------------------------------------------


def _read_manifest(model_dir: Path) -> dict:
    path = model_dir / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path}: no manifest (a model folder needs {MANIFEST_FILE} next to the model)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"{path}: the manifest is not readable JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise ModelError(f"{path}: the manifest is not a JSON object")
    manifest.setdefault("file", "model.onnx")
    manifest.setdefault("output", {})
    manifest.setdefault("resize", "center_crop")
    problems = _manifest_problems(manifest)
    if problems:
        raise ModelError(f"{path}: " + "; ".join(problems))
    return manifest


def _manifest_problems(m: dict) -> list[str]:
    problems = []

    def need(key: str, ok: bool, what: str) -> None:
        if not ok:
            problems.append(f"{key} must be {what}")

    for key in ("name", "version", "trained_on"):
        need(key, isinstance(m.get(key), str) and m[key].strip() != "", "a non-empty string")
    need("file", isinstance(m["file"], str) and "/" not in m["file"] and m["file"] not in ("", ".", ".."),
         "a file name in the model folder")  # fmt: skip
    need("sha256", isinstance(m.get("sha256"), str) and bool(_SHA256.fullmatch(m["sha256"])),
         "64 lower-case hex digits")  # fmt: skip
    need("validated_for_clinical_use", isinstance(m.get("validated_for_clinical_use"), bool), "true or false")
    labels = m.get("labels")
    output = m["output"]
    if isinstance(output, dict) and output.get("kind") == FEATURES:
        need("labels", labels in (None, []), "absent for a feature extractor (output.kind features)")
        size = output.get("size")
        need("output.size", isinstance(size, int) and not isinstance(size, bool) and size > 0,
             "a positive whole number (the feature count)")  # fmt: skip
    else:
        need("labels", isinstance(labels, list) and len(labels) >= 2
             and all(isinstance(label, str) and label for label in labels) and len(set(labels)) == len(labels),
             "a list of at least 2 distinct non-empty strings")  # fmt: skip
    spec = m.get("input")
    if not isinstance(spec, dict):
        problems.append("input must be an object with name, shape and layout")
    else:
        need("input.name", isinstance(spec.get("name"), str) and spec["name"] != "", "a non-empty string")
        need("input.layout", spec.get("layout") in LAYOUTS, f"one of {', '.join(LAYOUTS)}")
        shape = spec.get("shape")
        good_shape = (isinstance(shape, list) and len(shape) == 4
                      and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape))  # fmt: skip
        need("input.shape", good_shape, "4 positive whole numbers")
        if good_shape and spec.get("layout") in LAYOUTS:
            channels = shape[1] if spec["layout"] == "NCHW" else shape[3]
            need("input.shape", shape[0] == 1 and channels == 3, f"a batch of 1 with 3 channels ({spec['layout']})")
    need("output", isinstance(output, dict), "an object")
    if isinstance(output, dict):
        need("output.kind", output.get("kind", "probabilities") in OUTPUT_KINDS, f"one of {', '.join(OUTPUT_KINDS)}")
        need("output.name", isinstance(output.get("name", ""), str), "a string")
        need("output.features", isinstance(output.get("features", ""), str), "a string (the features output)")
    need("resize", m["resize"] in RESIZES, f"one of {', '.join(RESIZES)}")
    need("pixel_scale", _is_positive(m.get("pixel_scale", 255)), "a positive number")
    need("mean", _triple(m.get("mean"), lambda v: True), "3 numbers (R, G, B)")
    need("std", _triple(m.get("std"), lambda v: v > 0), "3 positive numbers (R, G, B)")
    return problems


def _is_positive(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _triple(value: object, check) -> bool:
    return (isinstance(value, list) and len(value) == 3
            and all(isinstance(v, int | float) and not isinstance(v, bool) and check(v) for v in value))  # fmt: skip


# --- one model per process ------------------------------------------------------------------------------------

_lock = threading.Lock()
_models: dict[Path, SkinModel] = {}


def _forget_after_fork() -> None:
    # onnxruntime's thread pools do not survive fork: a forked RQ work horse or gunicorn worker loads its own.
    global _lock, _models
    _lock, _models = threading.Lock(), {}


os.register_at_fork(after_in_child=_forget_after_fork)


def model_dir_from_config(config) -> Path:
    """``SKIN_MODEL_DIR`` from ``config`` (relative to the project root), else the shipped default model (the
    EfficientNet-Lite0 backbone)."""
    configured = (config.get("SKIN_MODEL_DIR") or "").strip() if config is not None else ""
    if not configured:
        return DEFAULT_MODEL_DIR
    path = Path(configured)
    return path if path.is_absolute() else PROJECT_ROOT / path


def get_model(model_dir: str | os.PathLike | None = None) -> SkinModel:
    """The process-wide model for ``model_dir`` (default: ``current_app.config["SKIN_MODEL_DIR"]``, else the model
    shipped in the repository), loaded and checked on first use.

    Raises:
        ModelError: the folder's model or manifest is unusable (the next call tries again).
    """
    if model_dir is None:
        from flask import current_app, has_app_context

        model_dir = model_dir_from_config(current_app.config if has_app_context() else None)
    key = Path(model_dir).resolve()
    with _lock:
        model = _models.get(key)
        if model is None:
            model = _models[key] = SkinModel(key)
        return model


def clear_cache() -> None:
    """Forget every loaded model (tests; after a model folder was replaced)."""
    with _lock:
        _models.clear()
