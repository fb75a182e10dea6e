"""The clinical gate of a skin model, its sign-off record, and what a validated model may change.

``flask skin-model validate MODEL --signed-off-by NAME`` runs :func:`validate`: the model's held-out metrics are
read from the model FILE's metadata (written by ``flask skin-model train``, covered by the file's sha256; never
from the manifest, which anyone can edit) and checked against ``app/clinical/model_thresholds.toml`` (the clinical
lead's): enough held-out photos per class, a held-out test part (not cross-validation), balanced accuracy and
calibration, and the lower Wilson bounds of sensitivity for the referral conditions. Only then is a
:class:`~app.models.SkinModelValidation` row written (who, when, the file's sha256, its labels, the thresholds'
checksum), with an audit record in the same transaction.

:func:`is_validated` is what the analysis asks: a model is validated when such a row exists for its file's sha256
and labels. :func:`raised_level` is the only effect a validated model has on triage: it can raise the level, never
lower it.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from sqlalchemy import select

from app.config import PROJECT_ROOT
from app.extensions import db
from app.models import SkinModelValidation, utcnow
from app.models.consultation import LEVELS
from app.services import audit
from app.services.clinical_terms import CONDITIONS

if TYPE_CHECKING:
    from app.services.skin_model import SkinModel

THRESHOLDS_FILE = PROJECT_ROOT / "app" / "clinical" / "model_thresholds.toml"
MIN_HELDOUT_FLOOR = 30  # the file may ask for more, never for fewer


class GateRefused(Exception):
    """The model does not pass the gate; ``problems`` says every reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Thresholds:
    """``model_thresholds.toml``, checked."""

    confirmed: bool
    min_heldout_per_class: int
    min_balanced_accuracy: float
    max_calibration_error: float
    referral: dict[str, float]
    raise_min_probability: float
    raise_level: str
    sha256: str


@cache
def thresholds() -> Thresholds:
    """The thresholds file, read once per process.

    Raises:
        ValueError: a missing key, a value out of range, an unknown condition id or level.
    """
    raw = THRESHOLDS_FILE.read_bytes()
    data = tomllib.loads(raw.decode())
    referral = dict(data["referral_min_sensitivity_lower_bound"])
    unknown = set(referral) - set(CONDITIONS)
    if unknown:
        raise ValueError(f"{THRESHOLDS_FILE}: unknown condition id(s) {', '.join(sorted(unknown))}")
    found = Thresholds(
        confirmed=bool(data["confirmed_by_clinical_lead"]),
        min_heldout_per_class=int(data["min_heldout_per_class"]),
        min_balanced_accuracy=float(data["min_balanced_accuracy"]),
        max_calibration_error=float(data["max_calibration_error"]),
        referral={key: float(value) for key, value in referral.items()},
        raise_min_probability=float(data["raise"]["min_probability"]),
        raise_level=data["raise"]["level"],
        sha256=hashlib.sha256(raw).hexdigest(),
    )
    if found.min_heldout_per_class < MIN_HELDOUT_FLOOR:
        raise ValueError(f"{THRESHOLDS_FILE}: min_heldout_per_class must be at least {MIN_HELDOUT_FLOOR}")
    if found.raise_level not in LEVELS:
        raise ValueError(f"{THRESHOLDS_FILE}: raise.level must be one of {', '.join(LEVELS)}")
    if not all(0 <= v <= 1 for v in (*found.referral.values(), found.raise_min_probability)):
        raise ValueError(f"{THRESHOLDS_FILE}: bounds and probabilities lie between 0 and 1")
    return found


def embedded_evaluation(model: SkinModel) -> tuple[list[str], dict]:
    """The labels and the evaluation stored in the model file by ``train``.

    Raises:
        GateRefused: the file carries none (not made by ``flask skin-model train``).
    """
    # skin_training loads numpy and Pillow: only the sign-off reads this, and the web process needs raised_level().
    from app.services.skin_training import METADATA_EVALUATION, METADATA_LABELS

    metadata = model.metadata
    if METADATA_LABELS not in metadata or METADATA_EVALUATION not in metadata:
        raise GateRefused(["the model file carries no held-out evaluation: only a model made by "
                           "`flask skin-model train` can be signed off"])  # fmt: skip
    return json.loads(metadata[METADATA_LABELS]), json.loads(metadata[METADATA_EVALUATION])


def problems_of(labels: list[str], evaluation: dict, limits: Thresholds) -> tuple[list[str], dict]:
    """Every reason the gate refuses these held-out metrics, and the summary of what it checked."""
    problems: list[str] = []
    heldout = evaluation["heldout"]
    summary: dict = {"split": evaluation["split"], "per_class_n": {}, "referral": {}, "absent_referral": []}
    if evaluation["split"] != "holdout":
        problems.append(f"the metrics come from {evaluation['split']} cross-validation, not a held-out test part "
                        f"(every class needs enough patients for a 70/15/15 split)")  # fmt: skip
    for label in labels:
        n = heldout["per_class"][label]["n"]
        summary["per_class_n"][label] = n
        if n < limits.min_heldout_per_class:
            problems.append(f"{label}: {n} held-out photos, at least {limits.min_heldout_per_class} needed")
    balanced = heldout.get("balanced_accuracy") or 0.0
    summary["balanced_accuracy"] = balanced
    if balanced < limits.min_balanced_accuracy:
        problems.append(f"balanced accuracy {balanced:.3f} is below {limits.min_balanced_accuracy}")
    ece = heldout.get("ece")
    summary["ece"] = ece
    if ece is None or ece > limits.max_calibration_error:
        problems.append(f"calibration error {ece} is above {limits.max_calibration_error}")
    for condition, minimum in sorted(limits.referral.items()):
        if condition not in labels:
            summary["absent_referral"].append(condition)
            continue
        lower = heldout["per_class"][condition]["sensitivity_ci"][0]
        summary["referral"][condition] = {"lower_bound": lower, "required": minimum}
        if lower < minimum:
            problems.append(f"{condition}: the lower 95 % bound of sensitivity is {lower:.3f}, {minimum} required")
    return problems, summary


def validate(model_dir, signed_off_by: str, *, actor=None) -> SkinModelValidation:
    """Check the model against the thresholds and record the sign-off (committed by the caller).

    Raises:
        GateRefused: no sign-off name, an unusable model, metrics that miss a threshold (every reason listed).
    """
    name = (signed_off_by or "").strip()
    if not name:
        raise GateRefused(["--signed-off-by: the name of the clinician who signs off is required"])
    from app.services.skin_model import ModelError, SkinModel  # numpy and Pillow: only the CLI signs a model off

    try:
        model = SkinModel(model_dir)
    except ModelError as exc:
        raise GateRefused([str(exc)]) from None
    if not model.classifier:
        raise GateRefused([f"{model.name} is a feature extractor: it names no condition, there is nothing to sign"])
    labels, evaluation = embedded_evaluation(model)
    if labels != list(model.labels):
        raise GateRefused(["the manifest's labels differ from the labels the model was trained with"])
    limits = thresholds()
    problems, summary = problems_of(labels, evaluation, limits)
    if problems:
        raise GateRefused(problems)
    existing = db.session.scalar(select(SkinModelValidation).where(SkinModelValidation.model_sha256 == model.sha256))
    if existing is not None:
        raise GateRefused([f"this model file was already signed off by {existing.signed_off_by} on "
                           f"{existing.signed_off_at:%Y-%m-%d}"])  # fmt: skip
    summary["thresholds_confirmed_by_clinical_lead"] = limits.confirmed
    record = SkinModelValidation(model_sha256=model.sha256, model_name=model.name, model_version=model.version,
                                 labels=labels, signed_off_by=name[:200], signed_off_at=utcnow(),
                                 thresholds_sha256=limits.sha256, summary=summary)  # fmt: skip
    db.session.add(record)
    db.session.flush()
    audit.record(actor, "skin_model.validate", "skin_model", record.id,
                 {"model_sha256": model.sha256, "model_name": model.name, "model_version": model.version,
                  "signed_off_by": record.signed_off_by, "thresholds_sha256": limits.sha256})  # fmt: skip
    return record


def is_validated(model: SkinModel) -> bool:
    """Whether a sign-off is recorded for this model file (its sha256) with these labels."""
    if not model.classifier:
        return False
    labels = db.session.scalar(
        select(SkinModelValidation.labels).where(SkinModelValidation.model_sha256 == model.sha256)
    )
    return labels is not None and list(labels) == list(model.labels)


def raised_level(level: str, top: list | tuple | None) -> tuple[str, str | None]:
    """The level after a validated model's top label: at least ``raise.level`` when that label is a referral
    condition with at least ``raise.min_probability``; never lower than ``level``. Returns the level and the
    condition that raised it (``None`` when nothing changed)."""
    if not top:
        return level, None
    limits = thresholds()
    label, probability = top[0][0], float(top[0][1])
    referral = label in limits.referral and probability >= limits.raise_min_probability
    if referral and LEVELS.index(limits.raise_level) > LEVELS.index(level):
        return limits.raise_level, label
    return level, None
