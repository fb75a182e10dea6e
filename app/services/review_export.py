"""The labelled photo export: consented photos whose diagnosis a clinician confirmed, as training data.

``flask skin-model export-dataset --out DIR [--since DATE]`` writes what ``flask skin-model train --data DIR``
reads: one folder per condition id of app/clinical/triage_rules.toml (or ``not_skin``), each photo a clean JPEG
(stored without EXIF or any metadata by the pipeline), and ``DIR/meta.csv`` with the columns ``file``
(the path from DIR, e.g. ``eczema/3f9c....jpg``), ``patient_id``, ``fitzpatrick``, ``site``, ``source``.

Only a consultation whose patient agreed (``photo_consent``) and whose latest answered review has the confidence
``confirmed`` and a condition id as its diagnosis is exported. Nothing names a person: ``patient_id`` is a keyed hash
of the consultation id (one consultation, one patient; the same id in every export with the same ``SECRET_KEY``),
file names are keyed hashes of the photo ids, and no name, number, chat id or free text is written. Photos
retention has erased are skipped. Each export is audited with its counts.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from flask import current_app
from sqlalchemy import func, select

from app.extensions import db
from app.models import Consultation, ConsultationImage, ReviewRequest
from app.models.consultation import IMAGE_STORED
from app.models.review import CONFIRMED, REVIEW_ANSWERED
from app.services import audit, clinical_terms

META_COLUMNS = ("file", "patient_id", "fitzpatrick", "site", "source")
NOT_SKIN = "not_skin"
SOURCE = "thusa-review"


class ExportError(Exception):
    """The output folder cannot be used (not empty, not a folder)."""


@dataclass(frozen=True)
class Exported:
    photos: int
    consultations: int
    by_condition: dict[str, int]


def _pseudonym(kind: str, value: object, length: int = 16) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"export-{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:length]


def labelled(since: datetime | None = None) -> list[tuple[Consultation, str]]:
    """``(consultation, condition)`` for every consented consultation whose latest answer is a confirmed condition
    (answered at or after ``since`` when given)."""
    latest = (select(ReviewRequest.consultation_id, func.max(ReviewRequest.answered_at).label("at"))
              .where(ReviewRequest.status == REVIEW_ANSWERED).group_by(ReviewRequest.consultation_id).subquery())  # fmt: skip
    stmt = (
        select(Consultation, ReviewRequest)
        .join(latest, latest.c.consultation_id == Consultation.id)
        .join(ReviewRequest, (ReviewRequest.consultation_id == Consultation.id)
              & (ReviewRequest.answered_at == latest.c.at))
        .where(Consultation.photo_consent.is_(True), ReviewRequest.confidence == CONFIRMED,
               ReviewRequest.condition.is_not(None))
        .order_by(Consultation.created_at, Consultation.id)
    )  # fmt: skip
    if since is not None:
        stmt = stmt.where(ReviewRequest.answered_at >= since)
    allowed = {*clinical_terms.CONDITIONS, NOT_SKIN}
    return [(consultation, review.condition) for consultation, review in db.session.execute(stmt)
            if review.condition in allowed]  # fmt: skip


def export_dataset(out: Path, since: datetime | None = None) -> Exported:
    """Write the dataset to ``out`` (created; it must be empty if it exists).

    Raises:
        ExportError: ``out`` is a file or a folder that is not empty.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out} must be a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    rows = []
    consultations = 0
    for consultation, condition in labelled(since):
        images = db.session.scalars(
            select(ConsultationImage).where(ConsultationImage.consultation_id == consultation.id,
                                            ConsultationImage.status == IMAGE_STORED,
                                            ConsultationImage.data.is_not(None))
            .order_by(ConsultationImage.position)
        ).all()  # fmt: skip
        if not images:
            continue
        consultations += 1
        patient = _pseudonym("patient", consultation.id)
        folder = out / condition
        folder.mkdir(exist_ok=True)
        for image in images:
            name = f"{_pseudonym('photo', image.id, 24)}.jpg"
            (folder / name).write_bytes(image.data)
            rows.append({"file": f"{condition}/{name}", "patient_id": patient, "fitzpatrick": "",
                         "site": consultation.body_site or "", "source": SOURCE})  # fmt: skip
            counts[condition] = counts.get(condition, 0) + 1
            db.session.expire(image, ["data"])  # one photo's bytes in memory at a time
    with (out / "meta.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=META_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    audit.record(None, "review.export", "consultation", None,
                 {"photos": len(rows), "consultations": consultations, "by_condition": counts,
                  "since": since.isoformat() if since else None})  # fmt: skip
    db.session.commit()
    return Exported(len(rows), consultations, counts)
