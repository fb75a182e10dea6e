"""The analysis pipeline: consultation → photos → model → triage → recommendation → one reply through the outbox.

Each photo not yet stored is read (a REST upload waits in its row, its metadata already out) or fetched (by the
``fetch`` the caller passes: the job hands in the channel adapters' download, which lives in the bots layer), then
decoded within the memory budget, cleaned and stored (:func:`app.services.images.process`); a photo refused there
(a decompression bomb, over the budget, damaged) is marked rejected with its code, and so is its analysis: the
consultation still gets triage from the answers. Each stored photo gets one :class:`~app.models.Analysis`: the
model's name, version and file checksum, whether a clinical sign-off is recorded for that file
(:func:`app.services.skin_model_validation.is_validated`), and its output: a classifier's top-3 labels (recorded
even while the model is not validated, and then never shown as a finding) or, for the shipped feature extractor,
a summary of its feature vector. Triage comes from the pharmacist's answers and the rules file
(:mod:`app.services.skin_advice`). The reply is queued with a dedupe key per consultation, so a retried job never
sends twice; a completed consultation is left alone. Then the second opinion (:mod:`app.services.reviews`): the
review queue for ``clinic_today`` and ``urgent``, the offer for the others; and the follow-up check-in is planned
(:mod:`app.services.follow_ups`).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models import Analysis, Consultation, ConsultationImage, utcnow
from app.models.consultation import (
    ANALYSIS_COMPLETED,
    ANALYSIS_FAILED,
    ANALYSIS_QUEUED,
    IMAGE_PENDING,
    IMAGE_REJECTED,
    IMAGE_STORED,
    STATUS_COMPLETED,
    STATUS_QUEUED,
)
from app.services import consultations, follow_ups, images, reviews, skin_advice, skin_model_validation
from app.services.skin_model import ModelError, get_model

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(minutes=2)  # a consultation queued this long with no result is enqueued again


class PhotoUnavailable(Exception):
    """The photo can never be fetched (gone at the provider, refused): the consultation goes on without it."""


Fetch = Callable[[ConsultationImage], bytes]
"""Returns a photo's bytes from its provider; raises :class:`PhotoUnavailable` for a download that can never
succeed, and anything else for one worth retrying (the job is retried; photos already stored are kept)."""


def analyse_consultation(consultation_id: str, fetch: Fetch) -> str:
    """Analyse one consultation and queue its reply.

    Args:
        consultation_id: the consultation (never a photo or a phone number).
        fetch: how to download a photo not stored yet.

    Returns:
        What happened: ``done``, ``already done`` or ``not found``.

    Raises:
        Whatever ``fetch`` raises for a retryable download failure (stored photos are kept).
    """
    consultation = db.session.get(Consultation, uuid.UUID(consultation_id))
    if consultation is None:
        return "not found"
    if consultation.status == STATUS_COMPLETED:
        return "already done"
    started = time.perf_counter()
    for image in consultation.images:
        if image.status == IMAGE_PENDING:
            _store(image, fetch)
            db.session.commit()  # a retry after a later failure does not download or decode this photo again
    for image in consultation.images:
        if image.status == IMAGE_STORED:
            _analyse(consultation, image)
        elif image.status == IMAGE_REJECTED:
            _refused(image)
    recommendation = skin_advice.recommend(consultation)
    skin_advice.queue_reply(consultation, recommendation)
    consultation.status = STATUS_COMPLETED
    consultation.completed_at = utcnow()
    # Second opinion: clinic_today and urgent enter the review queue on their own; the others are offered it. Then
    # the check-in is planned. All in this transaction: a retried job finds the consultation completed.
    review = reviews.queue_by_level(consultation, recommendation)
    reviews.queue_offer(consultation, review)
    follow_ups.plan(consultation, recommendation.level, since=consultation.completed_at)
    db.session.commit()
    log.info("consultation %s analysed in %.0f ms: %s", consultation.id, (time.perf_counter() - started) * 1000,
             recommendation.level)  # fmt: skip
    return "done"


def _store(image: ConsultationImage, fetch: Fetch) -> None:
    config = current_app.config
    data = image.data  # an upload, as the request stored it
    if data is None:
        try:
            data = fetch(image)
        except PhotoUnavailable as exc:
            log.warning("photo %s of consultation %s cannot be fetched: %s", image.id, image.consultation_id, exc)
            consultations.reject_image(image, "fetch_failed")
            return
    try:
        stored = images.process(data, **images.upload_caps(config), max_decode_bytes=config["IMAGE_DECODE_MAX_BYTES"])
    except images.ImageRejected as exc:
        log.warning("photo %s of consultation %s refused: %s", image.id, image.consultation_id, exc.code)
        consultations.reject_image(image, exc.code)
        return
    consultations.store_processed(image, stored)


def _refused(image: ConsultationImage) -> None:
    """A photo that could not be stored: its analysis (``POST /analysis/skin`` made one up front) fails with the
    photo's code, so whoever polls it learns why."""
    analysis = db.session.scalar(select(Analysis).where(Analysis.image_id == image.id))
    if analysis is not None and analysis.status == ANALYSIS_QUEUED:
        analysis.status, analysis.error_code = ANALYSIS_FAILED, image.error_code
        analysis.error = f"the photo was refused: {image.error_code}"


def _analyse(consultation: Consultation, image: ConsultationImage) -> None:
    analysis = db.session.scalar(select(Analysis).where(Analysis.image_id == image.id))
    if analysis is None:
        analysis = Analysis(consultation_id=consultation.id, image_id=image.id, status=ANALYSIS_QUEUED)
        db.session.add(analysis)
    if analysis.status != ANALYSIS_QUEUED:
        return
    analysis.quality = {"ok": image.quality_ok, "problems": image.quality_problems,
                        "measures": image.quality_measures}  # fmt: skip
    try:
        model = get_model()
        prediction = model.predict(image.data)
    except ModelError as exc:
        # Triage does not depend on the model: the consultation still gets its answer.
        log.error("skin model failed on photo %s: %s", image.id, exc)
        analysis.status, analysis.error_code, analysis.error = ANALYSIS_FAILED, "model_error", str(exc)[:500]
        return
    analysis.status = ANALYSIS_COMPLETED
    analysis.model_name, analysis.model_version = prediction.model_name, prediction.model_version
    analysis.model_sha256 = prediction.model_sha256
    analysis.model_validated = skin_model_validation.is_validated(model)
    analysis.top = [[label, float(p)] for label, p in prediction.top]
    analysis.output = prediction.output
    analysis.timings_ms = {**image.timings_ms, **prediction.timings_ms}
    db.session.flush()


def requeue_stale() -> int:
    """Enqueue again every consultation left queued for over two minutes (Redis was down at commit, a worker
    died): nothing is lost. Returns how many were enqueued."""
    stale = db.session.scalars(
        select(Consultation.id).where(
            Consultation.status == STATUS_QUEUED, Consultation.queued_at < utcnow() - STALE_AFTER
        )
    ).all()
    for consultation_id in stale:
        consultations.enqueue_analysis(str(consultation_id))
    return len(stale)
