"""The analysis job: consultation id → photos → model → triage → recommendation → one reply through the outbox.

Each photo not yet stored is downloaded from its provider (``bots.channels.fetch_media``), cleaned and stored
(``app.services.images.process``); each stored photo gets one :class:`~app.models.Analysis` (the model's top-3,
recorded even while the model is not validated, and then never shown as a finding). Triage comes from the
pharmacist's answers and the rules file. The reply is queued with a dedupe key per consultation, so a retried job
never sends twice; a completed consultation is left alone.
"""

from __future__ import annotations

import logging
import time
import uuid

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.i18n import CATALOG, t
from app.models import Analysis, Consultation, ConsultationImage, Contact, Recommendation, User, utcnow
from app.models.consultation import (
    ANALYSIS_COMPLETED,
    ANALYSIS_FAILED,
    ANALYSIS_QUEUED,
    IMAGE_PENDING,
    IMAGE_STORED,
    LEVEL_CLINIC,
    STATUS_COMPLETED,
    STATUS_QUEUED,
)
from app.models.message import KIND_REPLY
from app.services import consultations, formulary, triage

log = logging.getLogger(__name__)

REPLY_LIMIT = 4000  # Telegram and WhatsApp allow 4,096 characters of text; longer replies are split at lines


def analyse_consultation(consultation_id: str) -> str:
    """Analyse one consultation and queue its reply.

    Args:
        consultation_id: the consultation (never a photo or a phone number).

    Returns:
        What happened: ``done``, ``already done`` or ``not found``.

    Raises:
        bots.channels.MediaError: a retryable download failure (RQ retries the job; stored photos are kept).
    """
    consultation = db.session.get(Consultation, uuid.UUID(consultation_id))
    if consultation is None:
        return "not found"
    if consultation.status == STATUS_COMPLETED:
        return "already done"
    started = time.perf_counter()
    for image in consultation.images:
        if image.status == IMAGE_PENDING:
            _download(image)
            db.session.commit()  # a retry after a later failure does not download this photo again
    for image in consultation.images:
        if image.status == IMAGE_STORED:
            _analyse(consultation, image)
    recommendation = recommend(consultation)
    _reply(consultation, recommendation)
    consultation.status = STATUS_COMPLETED
    consultation.completed_at = utcnow()
    db.session.commit()
    log.info("consultation %s analysed in %.0f ms: %s", consultation.id, (time.perf_counter() - started) * 1000,
             recommendation.level)  # fmt: skip
    return "done"


def _download(image: ConsultationImage) -> None:
    from app.services import images
    from bots.channels import MediaError, fetch_media

    config = current_app.config
    try:
        data, _content_type = fetch_media(image.provider or "", image.media or {}, config)
    except MediaError as exc:
        if exc.retryable:
            raise
        log.warning("photo %s of consultation %s cannot be fetched: %s", image.id, image.consultation_id,
                    exc.__class__.__name__)  # fmt: skip
        consultations.reject_image(image, "fetch_failed")
        return
    try:
        stored = images.process(data, max_bytes=config["IMAGE_MAX_BYTES"], max_pixels=config["IMAGE_MAX_PIXELS"])
    except images.ImageRejected as exc:
        consultations.reject_image(image, exc.code)
        return
    consultations.store_processed(image, stored)


def _analyse(consultation: Consultation, image: ConsultationImage) -> None:
    from app.services.skin_model import ModelError, get_model

    analysis = db.session.scalar(select(Analysis).where(Analysis.image_id == image.id))
    if analysis is None:
        analysis = Analysis(consultation_id=consultation.id, image_id=image.id, status=ANALYSIS_QUEUED)
        db.session.add(analysis)
    if analysis.status != ANALYSIS_QUEUED:
        return
    analysis.quality = {"ok": image.quality_ok, "problems": image.quality_problems,
                        "measures": image.quality_measures}  # fmt: skip
    try:
        prediction = get_model().predict(image.data)
    except ModelError as exc:
        # Triage does not depend on the model: the consultation still gets its answer.
        log.error("skin model failed on photo %s: %s", image.id, exc)
        analysis.status, analysis.error_code, analysis.error = ANALYSIS_FAILED, "model_error", str(exc)[:500]
        return
    analysis.status = ANALYSIS_COMPLETED
    analysis.model_name, analysis.model_version = prediction.model_name, prediction.model_version
    analysis.model_validated = prediction.validated
    analysis.top = [[label, float(p)] for label, p in prediction.top]
    analysis.timings_ms = {**image.timings_ms, **prediction.timings_ms}
    db.session.flush()


def recommend(consultation: Consultation, *, replace: bool = False) -> Recommendation:
    """Triage the consultation's answers into its recommendation (kept as it is unless ``replace``)."""
    existing = db.session.scalar(select(Recommendation).where(Recommendation.consultation_id == consultation.id))
    if existing is not None and not replace:
        return existing
    result = triage.assess(triage.Answers.of(consultation))
    recommendation = existing or Recommendation(consultation_id=consultation.id, level=result.level)
    recommendation.level = result.level
    recommendation.rule_ids = list(result.rule_ids)
    recommendation.reasons = list(result.reasons)
    recommendation.medication_ids = formulary.ids_for(result.medicines)
    recommendation.advice = reply_text(consultation, result, _language(consultation))
    if existing is None:
        db.session.add(recommendation)
    db.session.flush()
    return recommendation


def _language(consultation: Consultation) -> str:
    contact = db.session.get(Contact, consultation.contact_id) if consultation.contact_id else None
    if contact is not None and contact.language:
        return contact.language
    user = db.session.get(User, consultation.user_id)
    return user.language if user else "en"


def _quality_lines(consultation: Consultation, language: str) -> list[str]:
    images = consultation.images
    stored = [image for image in images if image.status == IMAGE_STORED]
    if not stored:
        codes = sorted({image.error_code or "unreadable" for image in images})
        why = "; ".join(t(f"skin_reject_{code}", language) if f"skin_reject_{code}" in CATALOG else code
                        for code in codes)  # fmt: skip
        return [t("skin_failed", language, why=why)]
    if any(image.quality_ok for image in stored):
        return [t("skin_result_quality_ok", language)]
    problems = sorted({problem for image in stored for problem in image.quality_problems})
    tips = " ".join(t(f"skin_tip_{problem}", language) for problem in problems)
    return [t("skin_result_retake", language, tips=tips)]


def _model_line(consultation: Consultation, language: str) -> str:
    analyses = db.session.scalars(
        select(Analysis).where(Analysis.consultation_id == consultation.id, Analysis.status == ANALYSIS_COMPLETED)
    ).all()
    validated = [analysis for analysis in analyses if analysis.model_validated]
    if not validated:
        return t("skin_result_model_unvalidated", language)
    labels = ", ".join(f"{label} {round(p * 100)}%" for label, p in validated[0].top)
    return t("skin_result_model_labels", language, labels=labels)


def reply_text(consultation: Consultation, result: triage.Triage, language: str) -> str:
    """The pharmacist's answer: quality, level and why, medicines with doses, when to refer, the disclaimer."""
    lines = _quality_lines(consultation, language)
    lines.append(t(f"skin_result_level_{result.level}", language))
    reasons = " ".join(_sentence(t(key, language)) for key in result.reasons)
    lines.append(t("skin_result_why", language, reasons=reasons))
    if result.medicines:
        catalogue = formulary.medicines()
        items = "\n".join(f"- {catalogue[code].name}: {catalogue[code].dose_guidance}" for code in result.medicines)
        lines.append(t("skin_result_medicines", language, medicines=items))
    elif triage.level_rank(result.level) >= triage.level_rank(LEVEL_CLINIC):
        lines.append(t("skin_result_no_medicines", language))
    referred = triage.level_rank(result.level) >= triage.level_rank(LEVEL_CLINIC)
    # A referral gets the referral advice, not the condition's self-care tips.
    lines.append(t("triage_advice_refer" if referred else result.advice, language))
    lines.append(t(f"skin_result_refer_{result.level}", language))
    lines.append(_model_line(consultation, language))
    lines.append(t("skin_disclaimer", language))
    return "\n\n".join(lines)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def split(text: str, limit: int = REPLY_LIMIT) -> list[str]:
    """``text`` in parts of at most ``limit`` characters, cut at paragraph or line ends where possible."""
    parts: list[str] = []
    while len(text) > limit:
        cut = max(text.rfind("\n\n", 0, limit), text.rfind("\n", 0, limit))
        cut = cut if cut > 0 else limit
        parts.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    parts.append(text)
    return parts


def _reply(consultation: Consultation, recommendation: Recommendation) -> None:
    from app.messaging.outbox import OptedOut, queue_outbound

    if consultation.channel not in ("telegram", "whatsapp") or consultation.contact_id is None:
        return  # an API consultation: the answer is read through GET /consultations/{id}
    contact = db.session.get(Contact, consultation.contact_id)
    if contact is None:
        return
    for number, part in enumerate(split(recommendation.advice)):
        try:
            queue_outbound(channel=consultation.channel, address=contact.address, text=part,
                           language=_language(consultation), kind=KIND_REPLY, user_id=consultation.user_id,
                           dedupe_key=f"skin-reply:{consultation.id}:{number}")  # fmt: skip
        except OptedOut:
            log.warning("no skin reply for consultation %s: the chat opted out", consultation.id)
            return


def sweep() -> int:
    """Enqueue again every consultation left queued for over two minutes (Redis was down at commit, a worker
    died): nothing is lost. Returns how many were enqueued."""
    from datetime import timedelta

    stale = db.session.scalars(
        select(Consultation.id).where(
            Consultation.status == STATUS_QUEUED, Consultation.queued_at < utcnow() - timedelta(minutes=2)
        )
    ).all()
    for consultation_id in stale:
        consultations.enqueue_analysis(str(consultation_id))
    return len(stale)
