"""Skin advice: a consultation's answers triaged into its recommendation, and the reply a pharmacist receives.

The triage rules (:mod:`app.services.triage`) decide the level; this module writes the recommendation row and
the text: photo quality, level and why, medicines with doses from the formulary, when to refer, the model's
labels (only once it is validated) and the disclaimer. Used by the analysis pipeline
(:mod:`app.services.skin_analysis`) and when answers change after the analysis (``consultations``).
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from app.extensions import db
from app.i18n import CATALOG, t
from app.messaging.outbox import OptedOut, queue_outbound
from app.models import Analysis, Consultation, Contact, Recommendation, User
from app.models.channel import CHAT_CHANNELS
from app.models.consultation import ANALYSIS_COMPLETED, IMAGE_STORED, LEVEL_CLINIC
from app.models.message_log import KIND_REPLY
from app.services import formulary, triage

log = logging.getLogger(__name__)

REPLY_LIMIT = 4000  # Telegram and WhatsApp allow 4,096 characters of text; longer replies are split at lines


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
    recommendation.advice = reply_text(consultation, result, language_of(consultation))
    if existing is None:
        db.session.add(recommendation)
    db.session.flush()
    return recommendation


def language_of(consultation: Consultation) -> str:
    """The language of the consultation's chat, else of its pharmacist."""
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


def queue_reply(consultation: Consultation, recommendation: Recommendation) -> None:
    """Queue the recommendation's advice to the chat the consultation came from (in parts, each once: a dedupe key
    per part, so a retried job never sends twice), through the provider and number the person last wrote to there.
    An API consultation gets none: its answer is read in the API."""
    if consultation.channel not in CHAT_CHANNELS or consultation.contact_id is None:
        return  # an API consultation: the answer is read through GET /consultations/{id}
    contact = db.session.get(Contact, consultation.contact_id)
    if contact is None:
        return
    for number, part in enumerate(split(recommendation.advice)):
        try:
            queue_outbound(channel=consultation.channel, address=contact.address, text=part,
                           language=language_of(consultation), kind=KIND_REPLY, user_id=consultation.user_id,
                           in_conversation=True, dedupe_key=f"skin-reply:{consultation.id}:{number}")  # fmt: skip
        except OptedOut:
            log.warning("no skin reply for consultation %s: the chat opted out", consultation.id)
            return
