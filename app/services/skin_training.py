"""Training a skin model head on a partner's confirmed photos (``flask skin-model train`` / ``evaluate``).

The data is a folder of folders, one per condition id of the triage rules (``app/clinical/triage_rules.toml``;
``not_skin`` allowed), with an optional ``meta.csv`` (``file, patient_id, fitzpatrick, site, source``; ``file``
relative to the data folder). Every photo goes the production way: :func:`app.services.images.process` (orient,
strip, re-encode, exactly as a pharmacist's photo is stored), then the model's own preprocessing and the backbone
through onnxruntime (:meth:`app.services.skin_model.SkinModel.features`), so the features a head is trained on
are the ones it sees in service.

The split keeps each patient in one part (a photo without a ``patient_id`` is its own patient), stratified by the
patient's label and seeded: 70/15/15 (train / validation / test) when every class has at least
:data:`HOLDOUT_MIN_PATIENTS` patients, else grouped k-fold cross-validation (out-of-fold predictions; such a model
can be read but not signed off). The head is a class-weighted, L2-regularised multinomial logistic regression in
numpy on standardised features, temperature-scaled on the validation part; the standardisation and the temperature
are folded into one ``Gemm`` followed by a ``Softmax``, appended to the backbone with the ``onnx`` helper. The
result is an ordinary classifier folder for the loader: ``model.onnx`` (outputs ``probabilities`` and
``features``), ``manifest.json``, ``report.md`` (the model card) and ``split.csv``. The labels and the held-out
metrics are also written into the model file's metadata, so its checksum covers them: the gate
(:mod:`app.services.skin_model_validation`) reads them from there, never from the manifest.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.services import images, skin_metrics
from app.services.clinical_terms import CONDITIONS
from app.services.skin_model import MANIFEST_FILE, ModelError, SkinModel, get_model

NOT_SKIN = "not_skin"
ALLOWED_LABELS = (*CONDITIONS, NOT_SKIN)
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".heic", ".heif", ".webp")
META_FILE = "meta.csv"
META_COLUMNS = ("file", "patient_id", "fitzpatrick", "site", "source")
HOLDOUT_MIN_PATIENTS = 20  # below this in any class, 15 % is too few patients to test on: k-fold instead
MAX_FOLDS = 5
SHARES = (0.70, 0.15, 0.15)
L2 = 1e-2
STEPS = 400
LEARNING_RATE = 0.5
MODEL_FILE = "model.onnx"
REPORT_FILE = "report.md"
SPLIT_FILE = "split.csv"
METADATA_LABELS = "thusa.labels"
METADATA_EVALUATION = "thusa.evaluation"
HEAD_OUTPUT = "probabilities"

Progress = Callable[[str], None]


class TrainingError(Exception):
    """The data or the backbone cannot be used; the message names the file, line or class."""


@dataclass
class Photo:
    """One labelled photo of the data folder."""

    file: str  # relative to the data folder, with forward slashes
    label: str
    patient: str
    fitzpatrick: str | None = None
    site: str = ""
    source: str = ""
    features: np.ndarray | None = field(default=None, repr=False)


# --- reading the data -------------------------------------------------------------------------------------------


def read_dataset(data_dir: Path, *, labels: tuple[str, ...] | None = None) -> list[Photo]:
    """The labelled photos of ``data_dir`` (sorted by file), with ``meta.csv`` applied.

    Args:
        labels: only these folders may appear (``evaluate``: the model's labels); default: every condition id.

    Raises:
        TrainingError: an unknown folder, a meta.csv naming a missing file or with a bad column, no photos.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise TrainingError(f"{data_dir}: not a folder")
    allowed = labels or ALLOWED_LABELS
    photos: dict[str, Photo] = {}
    for folder in sorted(p for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if folder.name not in allowed:
            raise TrainingError(f"{folder}: {folder.name!r} is not a label here (allowed: {', '.join(allowed)})")
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix.lower() in PHOTO_SUFFIXES:
                name = path.relative_to(data_dir).as_posix()
                photos[name] = Photo(file=name, label=folder.name, patient=f"file:{name}")
    if not photos:
        raise TrainingError(f"{data_dir}: no photos in condition folders ({', '.join(PHOTO_SUFFIXES)})")
    meta = data_dir / META_FILE
    if meta.exists():
        _apply_meta(meta, photos)
    return [photos[name] for name in sorted(photos)]


def _apply_meta(meta: Path, photos: dict[str, Photo]) -> None:
    with meta.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "file" not in reader.fieldnames:
            raise TrainingError(f"{meta}: the first line must name the columns ({', '.join(META_COLUMNS)})")
        unknown = set(reader.fieldnames) - set(META_COLUMNS)
        if unknown:
            raise TrainingError(f"{meta}: unknown column(s) {', '.join(sorted(unknown))}")
        for line, row in enumerate(reader, start=2):
            name = (row.get("file") or "").strip()
            if name not in photos:
                raise TrainingError(f"{meta}, line {line}: {name!r} is not a photo in a condition folder")
            photo = photos[name]
            if (row.get("patient_id") or "").strip():
                photo.patient = "patient:" + row["patient_id"].strip()
            fitzpatrick = (row.get("fitzpatrick") or "").strip()
            if fitzpatrick and skin_metrics.fitzpatrick_group(fitzpatrick) is None:
                raise TrainingError(f"{meta}, line {line}: fitzpatrick {fitzpatrick!r} is not 1-6 (or I-VI)")
            photo.fitzpatrick = fitzpatrick or None
            photo.site, photo.source = (row.get("site") or "").strip(), (row.get("source") or "").strip()


def file_list_hash(data_dir: Path, photos: list[Photo]) -> str:
    """sha256 of the sorted ``file<TAB>label<TAB>sha256 of its bytes`` lines: which photos, exactly."""
    lines = [f"{p.file}\t{p.label}\t{hashlib.sha256((Path(data_dir) / p.file).read_bytes()).hexdigest()}"
             for p in sorted(photos, key=lambda p: p.file)]  # fmt: skip
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


# --- features: the production path ------------------------------------------------------------------------------


def extract(model: SkinModel, data_dir: Path, photos: list[Photo], *, caps: dict | None = None,
            progress: Progress | None = None) -> list[Photo]:  # fmt: skip
    """Give each photo its features: ``images.process`` (as a stored photo), then the model's preprocessing and
    backbone. Returns the photos that were read; the refused ones are reported through ``progress`` and dropped."""
    caps = caps or {}
    kept, started = [], time.perf_counter()
    for done, photo in enumerate(photos, start=1):
        try:
            stored = images.process((Path(data_dir) / photo.file).read_bytes(), **caps)
            photo.features = model.features(stored.data).astype(np.float32)
            kept.append(photo)
        except images.ImageRejected as exc:
            if progress:
                progress(f"  skipped {photo.file}: {exc.code}")
        if progress and (done % 50 == 0 or done == len(photos)):
            rate = done / max(time.perf_counter() - started, 1e-9)
            progress(f"  features: {done}/{len(photos)} photos ({rate:.1f}/s, about "
                     f"{(len(photos) - done) / rate:.0f} s left)")  # fmt: skip
    return kept


def serving_features(model: SkinModel, photo: bytes, caps: dict | None = None) -> np.ndarray:
    """The features the service computes for an uploaded photo (what :func:`extract` computes for training)."""
    return model.features(images.process(photo, **(caps or {})).data)


# --- the split --------------------------------------------------------------------------------------------------


def _patients_by_label(photos: list[Photo]) -> dict[str, list[str]]:
    """Each patient under the label most of their photos have (ties: the first label in sorted order)."""
    labels_of: dict[str, Counter] = defaultdict(Counter)
    for photo in photos:
        labels_of[photo.patient][photo.label] += 1
    by_label: dict[str, list[str]] = defaultdict(list)
    for patient in sorted(labels_of):
        counts = labels_of[patient]
        best = max(sorted(counts), key=lambda label: counts[label])
        by_label[best].append(patient)
    return by_label


def split(photos: list[Photo], seed: int) -> tuple[str, dict[str, str]]:
    """``("holdout", patient → train/validation/test)`` or ``("kfold", patient → fold0..)``.

    Raises:
        TrainingError: a class with fewer than 2 patients (nothing to test it on).
    """
    by_label = _patients_by_label(photos)
    labels = sorted({p.label for p in photos})
    small = [label for label in labels if len(by_label.get(label, [])) < 2]
    if small:
        raise TrainingError(f"class(es) {', '.join(small)}: fewer than 2 patients; add photos of more patients")
    rng = np.random.default_rng(seed)
    parts: dict[str, str] = {}
    fewest = min(len(by_label[label]) for label in labels)
    if fewest >= HOLDOUT_MIN_PATIENTS:
        for label in labels:
            patients = list(by_label[label])
            rng.shuffle(patients)
            n = len(patients)
            n_test, n_val = max(1, round(SHARES[2] * n)), max(1, round(SHARES[1] * n))
            for index, patient in enumerate(patients):
                parts[patient] = "test" if index < n_test else "validation" if index < n_test + n_val else "train"
        return "holdout", parts
    folds = min(MAX_FOLDS, fewest)
    for label in labels:
        patients = list(by_label[label])
        rng.shuffle(patients)
        for index, patient in enumerate(patients):
            parts[patient] = f"fold{index % folds}"
    return "kfold", parts


# --- the head ---------------------------------------------------------------------------------------------------


@dataclass
class Head:
    """Standardisation, the logistic regression and the temperature; :meth:`folded` makes them one affine map."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray  # (features, classes), on standardised features
    bias: np.ndarray
    temperature: float = 1.0

    def logits(self, features: np.ndarray) -> np.ndarray:
        return ((features - self.mean) / self.scale) @ self.weights + self.bias

    def folded(self) -> tuple[np.ndarray, np.ndarray]:
        """``(W, b)`` with ``softmax(x @ W + b)`` = the calibrated probabilities, as float32."""
        weights = self.weights / self.scale[:, None] / self.temperature
        bias = (self.bias - (self.mean / self.scale) @ self.weights) / self.temperature
        return weights.astype(np.float32), bias.astype(np.float32)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def fit_head(features: np.ndarray, truth: np.ndarray, classes: int, *, l2: float = L2, steps: int = STEPS) -> Head:
    """Class-weighted multinomial logistic regression with an L2 penalty, by full-batch gradient descent with
    Nesterov momentum from zero (deterministic: no random start, no shuffling)."""
    x = np.asarray(features, dtype=np.float64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-6] = 1.0  # a feature that never varies (a dead ReLU) stays at zero weight
    x = (x - mean) / scale
    n, d = x.shape
    counts = np.bincount(truth, minlength=classes).astype(np.float64)
    sample_weight = (n / (classes * np.maximum(counts, 1)))[truth]
    sample_weight /= sample_weight.sum()
    onehot = np.eye(classes)[truth]
    weights, bias = np.zeros((d, classes)), np.zeros(classes)
    velocity_w, velocity_b = np.zeros_like(weights), np.zeros_like(bias)
    rate = LEARNING_RATE / max(1.0, math.sqrt(d) / 8)  # standardised inputs: keep a step stable as d grows
    for _ in range(steps):
        look_w, look_b = weights + 0.9 * velocity_w, bias + 0.9 * velocity_b
        error = (_softmax(x @ look_w + look_b) - onehot) * sample_weight[:, None]
        grad_w, grad_b = x.T @ error + l2 * look_w, error.sum(axis=0)
        velocity_w, velocity_b = 0.9 * velocity_w - rate * grad_w, 0.9 * velocity_b - rate * grad_b
        weights, bias = weights + velocity_w, bias + velocity_b
    return Head(mean=mean, scale=scale, weights=weights, bias=bias)


def fit_temperature(logits: np.ndarray, truth: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood (golden-section search on log T in [-3, 3])."""

    def nll(log_t: float) -> float:
        scaled = logits / math.exp(log_t)
        scaled = scaled - scaled.max(axis=1, keepdims=True)
        return float(-(scaled[np.arange(truth.size), truth] - np.log(np.exp(scaled).sum(axis=1))).mean())

    lo, hi = -3.0, 3.0
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(b)
    return round(math.exp((lo + hi) / 2), 6)


# --- the ONNX graph ---------------------------------------------------------------------------------------------


def _head_nodes(features_name: str, weights: np.ndarray, bias: np.ndarray):
    from onnx import helper, numpy_helper

    initializers = [numpy_helper.from_array(weights, "thusa_head_weights"),
                    numpy_helper.from_array(bias, "thusa_head_bias")]  # fmt: skip
    nodes = [helper.make_node("Gemm", [features_name, "thusa_head_weights", "thusa_head_bias"], ["thusa_logits"],
                              name="thusa_head_gemm"),
             helper.make_node("Softmax", ["thusa_logits"], [HEAD_OUTPUT], axis=1, name="thusa_head_softmax")]  # fmt: skip
    return nodes, initializers


def head_session(weights: np.ndarray, bias: np.ndarray):
    """An onnxruntime session of the head alone (input ``features``): the same two operators as the appended head,
    so held-out probabilities are computed as the served model computes them."""
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper

    nodes, initializers = _head_nodes("features", weights, bias)
    graph = helper.make_graph(nodes, "thusa_head",
                              [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, weights.shape[0]])],
                              [helper.make_tensor_value_info(HEAD_OUTPUT, TensorProto.FLOAT, [None, weights.shape[1]])],
                              initializer=initializers)  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(model.SerializeToString(), sess_options=options,
                                        providers=["CPUExecutionProvider"])  # fmt: skip


def head_probabilities(weights: np.ndarray, bias: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Row by row (a batch of one, as in service) through :func:`head_session`."""
    session = head_session(weights, bias)
    rows = [session.run([HEAD_OUTPUT], {"features": row[None].astype(np.float32)})[0][0] for row in features]
    return np.array(rows, dtype=np.float64).reshape(len(rows), weights.shape[1])


def append_head(backbone: bytes, features_name: str, weights: np.ndarray, bias: np.ndarray, labels: list[str],
                evaluation: dict, *, name: str, version: str) -> bytes:  # fmt: skip
    """The backbone with the head appended: outputs ``probabilities`` (1 x classes) and the backbone's features;
    the labels and the evaluation in the metadata. Serialised deterministically."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load_from_string(backbone)
    nodes, initializers = _head_nodes(features_name, weights, bias)
    model.graph.node.extend(nodes)
    model.graph.initializer.extend(initializers)
    features_output = [o for o in model.graph.output if o.name == features_name]
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info(HEAD_OUTPUT, TensorProto.FLOAT, [1, len(labels)]))
    model.graph.output.extend(features_output)
    model.graph.name = name
    model.producer_name = "thusa flask skin-model train"
    model.producer_version = version
    model.doc_string = f"{name} {version}: a head trained by flask skin-model train on the backbone."
    del model.metadata_props[:]
    for key, value in ((METADATA_LABELS, json.dumps(labels)),
                       (METADATA_EVALUATION, json.dumps(evaluation, sort_keys=True))):  # fmt: skip
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    return model.SerializeToString(deterministic=True)


# --- training ---------------------------------------------------------------------------------------------------


def _matrix(photos: list[Photo]) -> np.ndarray:
    return np.stack([p.features for p in photos]).astype(np.float64)


def _groups(photos: list[Photo]) -> list[str | None]:
    return [skin_metrics.fitzpatrick_group(p.fitzpatrick) for p in photos]


def train(data_dir: Path, out_dir: Path, backbone_dir: Path, *, seed: int = 0, name: str = "thusa-skin-head",
          version: str = "", l2: float = L2, caps: dict | None = None, progress: Progress | None = None) -> dict:  # fmt: skip
    """Train a head on ``data_dir`` and write the model folder ``out_dir``. Returns its manifest.

    Raises:
        TrainingError: bad data, a backbone that is not a feature extractor, an ``out_dir`` that is not empty.
    """
    say = progress or (lambda _message: None)
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise TrainingError(f"{out_dir}: not empty; give a new folder (a trained model is never overwritten)")
    try:
        backbone = get_model(backbone_dir)  # the process's session: a second training reuses it
    except ModelError as exc:
        raise TrainingError(f"the backbone: {exc}") from None
    if backbone.classifier:
        raise TrainingError(f"{backbone_dir}: the backbone must be a feature extractor (output kind features)")
    photos = read_dataset(data_dir)
    say(f"{len(photos)} photos in {len({p.label for p in photos})} classes from {data_dir}")
    data_hash = file_list_hash(data_dir, photos)
    started = time.perf_counter()
    photos = extract(backbone, data_dir, photos, caps=caps, progress=say)
    labels = sorted({p.label for p in photos})
    if len(labels) < 2:
        raise TrainingError("at least 2 classes with readable photos are needed")
    index = {label: i for i, label in enumerate(labels)}
    kind, parts = split(photos, seed)
    part_of = {p.file: parts[p.patient] for p in photos}
    say(f"split: {kind}; fitting the head")
    if kind == "holdout":
        train_set = [p for p in photos if part_of[p.file] == "train"]
        val_set = [p for p in photos if part_of[p.file] == "validation"]
        held = [p for p in photos if part_of[p.file] == "test"]
        head = fit_head(_matrix(train_set), np.array([index[p.label] for p in train_set]), len(labels), l2=l2)
        head.temperature = fit_temperature(head.logits(_matrix(val_set)), np.array([index[p.label] for p in val_set]))
    else:
        folds = sorted(set(parts.values()))
        held, out_of_fold = [], []
        for fold in folds:
            inside = [p for p in photos if part_of[p.file] != fold]
            outside = [p for p in photos if part_of[p.file] == fold]
            fold_head = fit_head(_matrix(inside), np.array([index[p.label] for p in inside]), len(labels), l2=l2)
            held.extend(outside)
            out_of_fold.append(fold_head.logits(_matrix(outside)))
        temperature = fit_temperature(np.concatenate(out_of_fold), np.array([index[p.label] for p in held]))
        head = fit_head(_matrix(photos), np.array([index[p.label] for p in photos]), len(labels), l2=l2)
        head.temperature = temperature
    weights, bias = head.folded()
    if kind == "holdout":
        probabilities = head_probabilities(weights, bias, _matrix(held))
    else:  # out-of-fold: each fold's head, calibrated with the pooled temperature
        probabilities = _softmax(np.concatenate(out_of_fold) / head.temperature)
    metrics = skin_metrics.evaluate(probabilities, np.array([index[p.label] for p in held]), labels, _groups(held))
    counts = {label: dict(Counter(part_of[p.file] for p in photos if p.label == label)) for label in labels}
    version = version or time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    evaluation = {"split": kind, "seed": seed, "heldout": metrics, "temperature": head.temperature, "l2": l2,
                  "counts": counts, "photos": len(photos), "patients": len(set(parts)),
                  "data_sha256": data_hash, "backbone": {"name": backbone.name, "version": backbone.version,
                                                         "sha256": backbone.sha256}}  # fmt: skip
    model = append_head((backbone.model_dir / backbone.manifest["file"]).read_bytes(), backbone.output_name,
                        weights, bias, labels, evaluation, name=name, version=version)  # fmt: skip
    manifest = {
        "name": name,
        "version": version,
        "file": MODEL_FILE,
        "sha256": hashlib.sha256(model).hexdigest(),
        "labels": labels,
        "input": backbone.manifest["input"],
        "output": {"name": HEAD_OUTPUT, "kind": "probabilities", "features": backbone.output_name},
        "resize": backbone.manifest["resize"],
        "pixel_scale": backbone.manifest.get("pixel_scale", 255),
        "mean": backbone.manifest["mean"],
        "std": backbone.manifest["std"],
        "trained_on": f"{len(photos)} confirmed photos of {len(set(parts))} patients from {Path(data_dir).name} "
        f"(file list sha256 {data_hash}); see report.md",
        "validated_for_clinical_use": False,  # informational: only a sign-off in the database counts
        "backbone": evaluation["backbone"],
        "evaluation": evaluation,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MODEL_FILE).write_bytes(model)
    (out_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    with (out_dir / SPLIT_FILE).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "label", "patient", "part"])
        for photo in photos:
            writer.writerow([photo.file, photo.label, photo.patient, part_of[photo.file]])
    (out_dir / REPORT_FILE).write_text(report(manifest, title=f"{name} {version}"))
    say(f"trained in {time.perf_counter() - started:.1f} s; wrote {out_dir} (sha256 {manifest['sha256']})")
    return manifest


def evaluate(model_dir: Path, data_dir: Path, *, caps: dict | None = None, progress: Progress | None = None) -> dict:
    """Re-score a classifier on another labelled set (the same metrics as training's held-out part).

    Raises:
        TrainingError: the model is not a classifier with features, or a folder is not one of its labels.
    """
    try:
        model = SkinModel(model_dir)
    except ModelError as exc:
        raise TrainingError(str(exc)) from None
    if not model.classifier:
        raise TrainingError(f"{model_dir}: a feature extractor names no condition; train a head first")
    photos = read_dataset(data_dir, labels=model.labels)
    rows, kept = [], []
    for done, photo in enumerate(photos, start=1):
        try:
            stored = images.process((Path(data_dir) / photo.file).read_bytes(), **(caps or {}))
        except images.ImageRejected as exc:
            if progress:
                progress(f"  skipped {photo.file}: {exc.code}")
            continue
        rows.append(model.run(model.preprocess(stored.data)).astype(np.float64))
        kept.append(photo)
        if progress and (done % 50 == 0 or done == len(photos)):
            progress(f"  scored {done}/{len(photos)} photos")
    if not kept:
        raise TrainingError(f"{data_dir}: no readable photo")
    index = {label: i for i, label in enumerate(model.labels)}
    probabilities = np.stack(rows)
    if model.kind == "logits":
        probabilities = _softmax(probabilities)
    metrics = skin_metrics.evaluate(probabilities, np.array([index[p.label] for p in kept]), list(model.labels),
                                    _groups(kept))  # fmt: skip
    return {"model": {"name": model.name, "version": model.version, "sha256": model.sha256},
            "data_sha256": file_list_hash(data_dir, kept), "photos": len(kept), "metrics": metrics}  # fmt: skip


# --- the model card ---------------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


def _ci(pair: list[float]) -> str:
    return f"{pair[0] * 100:.1f}-{pair[1] * 100:.1f} %"


def metrics_markdown(metrics: dict, labels: list[str]) -> list[str]:
    """The metrics as Markdown lines: summary, per-class table, confusion matrix, Fitzpatrick groups."""
    lines = [f"- photos scored: {metrics['n']}",
             f"- accuracy {_pct(metrics['accuracy'])}; balanced accuracy {_pct(metrics['balanced_accuracy'])}; "
             f"macro-F1 {metrics['macro_f1']}; top-3 accuracy {_pct(metrics['top3_accuracy'])}",
             f"- expected calibration error (10 bins): {metrics['ece']}", "",
             "| class | n | sensitivity | 95 % CI | PPV | 95 % CI | F1 |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for label in labels:
        row = metrics["per_class"][label]
        lines.append(f"| {label} | {row['n']} | {_pct(row['sensitivity'])} | {_ci(row['sensitivity_ci'])} | "
                     f"{_pct(row['ppv'])} | {_ci(row['ppv_ci'])} | {row['f1']} |")  # fmt: skip
    lines += ["", "Confusion matrix (rows: the confirmed label; columns: the model's top label):", "",
              "| | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]  # fmt: skip
    for label, row in zip(labels, metrics["confusion"], strict=True):
        lines.append(f"| **{label}** | " + " | ".join(str(v) for v in row) + " |")
    if metrics.get("by_fitzpatrick"):
        lines += ["", "By Fitzpatrick group:", "", "| group | n | accuracy | balanced accuracy | top-3 |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for group, part in metrics["by_fitzpatrick"].items():
            lines.append(f"| {group} | {part['n']} | {_pct(part.get('accuracy'))} | "
                         f"{_pct(part.get('balanced_accuracy'))} | {_pct(part.get('top3_accuracy'))} |")  # fmt: skip
    return lines


def report(manifest: dict, *, title: str) -> str:
    """``report.md``: the model card of a trained model."""
    evaluation = manifest["evaluation"]
    labels = manifest["labels"]
    heldout = (
        "the test part (15 % of patients, never seen in training or calibration)"
        if evaluation["split"] == "holdout"
        else "out-of-fold predictions of grouped k-fold cross-validation"
    )
    lines = [f"# Model card: {title}", "",
             "**Not validated for clinical use** until `flask skin-model validate` records a clinical sign-off.", "",
             "## Model", "",
             f"- file sha256: `{manifest['sha256']}`",
             f"- backbone: {evaluation['backbone']['name']} {evaluation['backbone']['version']}, sha256 "
             f"`{evaluation['backbone']['sha256']}`",
             f"- head: class-weighted L2 (lambda {evaluation['l2']}) multinomial logistic regression, temperature "
             f"{evaluation['temperature']}",
             f"- labels: {', '.join(labels)}", "",
             "## Data", "",
             f"- {evaluation['photos']} photos of {evaluation['patients']} patients; file list sha256 "
             f"`{evaluation['data_sha256']}`",
             f"- split: {evaluation['split']} (seed {evaluation['seed']}), grouped by patient", "",
             "| class | " + " | ".join(sorted({k for c in evaluation['counts'].values() for k in c})) + " |"]  # fmt: skip
    parts = sorted({k for c in evaluation["counts"].values() for k in c})
    lines.append("|---" * (len(parts) + 1) + "|")
    for label in labels:
        lines.append(f"| {label} | " + " | ".join(str(evaluation["counts"][label].get(p, 0)) for p in parts) + " |")
    lines += ["", f"## Held-out results: {heldout}", ""] + metrics_markdown(evaluation["heldout"], labels)
    lines += ["", "## Reading this card", "",
              "Sensitivity: of the photos confirmed as this condition, the share the model put first. PPV: of the "
              "photos the model put first as this condition, the share confirmed as it. The 95 % intervals are "
              "Wilson intervals: the gate uses their lower ends. See docs/skin-model.md.", ""]  # fmt: skip
    return "\n".join(lines)
