"""Skin advice: a consultation's answers triaged into its recommendation, and the reply a pharmacist receives.

The triage rules (:mod:`app.services.triage`) decide the level; this module writes the recommendation row and
the reply, at most :data:`REPLY_MAX` characters in either language: the level first in plain words, why, one
first-choice medicine with its dose and the alternatives by name, the advice the condition and the rules require
(shingles' 72-hour window, anthrax's district health office ...), what to watch for or, at ``urgent``, the
emergency step, the note that the rules are not yet checked against the Ghana STG, the photo quality, the model's
top label (only for a model with a recorded clinical sign-off: "looks most like ..., not a diagnosis") and the
disclaimer. A validated model can only raise the level the rules decided
(:func:`app.services.skin_model_validation.raised_level`), never lower it. Used by the analysis pipeline
(:mod:`app.services.skin_analysis`) and when answers change after the analysis (``consultations``).
"""

from __future__ import annotations

import dataclasses
import logging

from sqlalchemy import select

from app.extensions import db
from app.i18n import CATALOG, t
from app.messaging.outbox import OptedOut, queue_outbound
from app.models import Analysis, Consultation, Contact, Recommendation, User
from app.models.channel import CHAT_CHANNELS
from app.models.consultation import (
    ANALYSIS_COMPLETED,
    IMAGE_STORED,
    LEVEL_CLINIC,
    LEVEL_PHARMACY,
    LEVEL_URGENT,
    LEVELS,
)
from app.models.message_log import KIND_REPLY
from app.models.user import SITE_OTC_SELLER
from app.services import formulary, skin_model_validation, triage

log = logging.getLogger(__name__)

REPLY_LIMIT = 4000  # Telegram and WhatsApp allow 4,096 characters of text; longer replies are split at lines
REPLY_MAX = 700  # what a pharmacist reads at the counter: the reply is written to fit this (issue 14)
MAX_REASONS = 2  # the recommendation keeps every reason; the reply names the weightiest
MAX_ALTERNATIVES = 2
# Lines that may go when many red flags make the reply too long, in this order (lower first; "reasons" cuts the
# why-line to its first reason). Everything else always stays.
_MODEL, _PHOTO_OK, _ALTERNATIVES, _NO_MEDICINE, _PHOTO_FAILED, _BLEACHING, _REFERRAL_AT_URGENT, _FIRST_AID = range(1, 9)
_SHORTENING = (_MODEL, _PHOTO_OK, _ALTERNATIVES, "reasons", _NO_MEDICINE, _PHOTO_FAILED, _BLEACHING,
               _REFERRAL_AT_URGENT, _FIRST_AID)  # fmt: skip
# Advice lines that may go (when the reply is still too long) and at which step; the others always stay.
_OPTIONAL_ADVICE = {"triage_advice_bleaching": _BLEACHING, "triage_advice_burn_first_aid": _FIRST_AID}


def recommend(consultation: Consultation, *, replace: bool = False) -> Recommendation:
    """Triage the consultation's answers into its recommendation (kept as it is unless ``replace``)."""
    existing = db.session.scalar(select(Recommendation).where(Recommendation.consultation_id == consultation.id))
    if existing is not None and not replace:
        return existing
    result = triage.assess(triage.Answers.of(consultation), site_type=site_type_of(consultation))
    result = _raised_by_model(result, validated_tops(consultation))
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


def site_type_of(consultation: Consultation) -> str | None:
    """Where the consulting account works (``pharmacy`` or ``otc_seller``; ``None`` for an admin or an older
    account, which triage treats as a pharmacy)."""
    user = db.session.get(User, consultation.user_id)
    return user.site_type if user is not None else None


def language_of(consultation: Consultation) -> str:
    """The language of the consultation's chat, else of its pharmacist."""
    contact = db.session.get(Contact, consultation.contact_id) if consultation.contact_id else None
    if contact is not None and contact.language:
        return contact.language
    user = db.session.get(User, consultation.user_id)
    return user.language if user else "en"


def _photo_line(consultation: Consultation, language: str) -> tuple[str, bool]:
    """The photo verdict, and whether it must stay in the reply (no photo could be analysed at all)."""
    images = consultation.images
    stored = [image for image in images if image.status == IMAGE_STORED]
    if not stored:
        codes = sorted({image.error_code or "unreadable" for image in images})
        why = "; ".join(t(f"skin_reject_{code}", language) if f"skin_reject_{code}" in CATALOG else code
                        for code in codes)  # fmt: skip
        return t("skin_failed", language, why=why), True
    if any(image.quality_ok for image in stored):
        return t("skin_result_photo_ok", language), False
    return t("skin_result_photo_retake", language), False


def validated_tops(consultation: Consultation) -> list[list]:
    """The top-3 of each of the consultation's photos analysed by a model with a recorded sign-off, the one whose
    first label the model is surest of first; ``[]`` when there is none."""
    analyses = db.session.scalars(
        select(Analysis).where(
            Analysis.consultation_id == consultation.id,
            Analysis.status == ANALYSIS_COMPLETED,
            Analysis.model_validated.is_(True),
        )  # fmt: skip
    ).all()
    return sorted((analysis.top for analysis in analyses if analysis.top), key=lambda top: -top[0][1])


def _raised_by_model(result: triage.Triage, tops: list[list]) -> triage.Triage:
    """The triage result, at a higher level when a validated model's top label for any photo is a referral
    condition (:func:`app.services.skin_model_validation.raised_level`); otherwise unchanged."""
    level, raised = result.level, False
    for top in tops:
        level, condition = skin_model_validation.raised_level(level, top)
        raised = raised or condition is not None
    if not raised:
        return result
    reasons = [key for key in result.reasons if not key.startswith("triage_reason_base_")]
    return dataclasses.replace(result, level=level, medicines=(), excluded={},
                               reasons=("triage_reason_model_referral", *reasons))  # fmt: skip


def label_name(label: str, language: str) -> str:
    """A model label in words: the condition's button title, ``not_skin`` its own text."""
    key = f"opt_condition_{label}" if label != "not_skin" else "skin_model_label_not_skin"
    return t(key, language) if key in CATALOG else label


def _model_line(consultation: Consultation, language: str) -> str:
    tops = validated_tops(consultation)
    if not tops:
        return t("skin_result_model_unvalidated", language)
    # A photo whose label raised the level is the one to name, even if another photo's label is surer.
    raising = [top for top in tops if skin_model_validation.raised_level(LEVELS[0], top)[1] is not None]
    label, probability = (raising or tops)[0][0]
    return t("skin_result_model_labels", language, label=label_name(label, language),
             percent=round(probability * 100))  # fmt: skip


def reply_text(consultation: Consultation, result: triage.Triage, language: str) -> str:
    """The pharmacist's answer (see :func:`compose`), with the consultation's photo verdict and model line."""
    photo, photo_needed = _photo_line(consultation, language)
    return compose(result, language, photo=photo, photo_needed=photo_needed,
                   model=_model_line(consultation, language))  # fmt: skip


def compose(result: triage.Triage, language: str, *, photo: str = "", photo_needed: bool = False,
            model: str = "") -> str:  # fmt: skip
    """The reply for a triage result, at most :data:`REPLY_MAX` characters.

    The lines, in order: level, why, medicine (or "give no medicine"), advice, watch-for or the emergency step,
    the Ghana STG note, photo, model, disclaimer. When the text is too long, the optional lines go first, in this
    order: the model line, a good photo verdict, the alternatives, the reasons after the first; then, only when
    many red flags pile up, "give no medicine", a failed photo verdict, the bleaching advice, the condition's line
    at ``urgent`` (the hospital takes over) and the burn first aid. The level, the first reason, the first-choice
    medicine and its dose, the watch-for line or the emergency step, every other advice line (anthrax's district
    health office, shingles' 72 hours below ``urgent`` ...), the STG note and the disclaimer always stay
    (tests/services/test_skin_reply.py checks the length over random answers in both languages).
    """
    referred = triage.level_rank(result.level) >= triage.level_rank(LEVEL_CLINIC)
    reasons = [_sentence(t(key, language)) for key in result.reasons]
    # Each line: (text, drop order; None = never dropped). Lower numbers are dropped first.
    lines: list[tuple[str, int | None]] = [(t(_level_key(result), language), None)]
    lines.append((t("skin_result_why", language, reasons=" ".join(reasons[:MAX_REASONS])), None))
    if result.medicines:
        catalogue = formulary.medicines()
        first = catalogue[result.medicines[0]]
        lines.append((t("skin_result_first_choice", language, name=first.name, dose=first.dose_guidance), None))
        others = [catalogue[code].name for code in result.medicines[1 : 1 + MAX_ALTERNATIVES]]
        if others:
            lines.append((t("skin_result_alternatives", language, names=", ".join(others)), _ALTERNATIVES))
    elif referred:
        lines.append((t("skin_result_no_medicines", language), _NO_MEDICINE))
    advice = {key: _OPTIONAL_ADVICE.get(key) for key in result.rule_advice}
    condition_advice = result.referral_advice if referred else result.advice
    if condition_advice and condition_advice not in advice:
        # At "urgent" the hospital takes over: the condition's own line (shingles' 72 hours ...) may go.
        advice[condition_advice] = _REFERRAL_AT_URGENT if result.level == LEVEL_URGENT else None
    lines.extend((t(key, language), order) for key, order in advice.items())
    if result.level == LEVEL_URGENT:
        lines.append((t("skin_result_emergency", language, number=triage.rules().ambulance), None))
    else:
        lines.append((t(f"skin_result_watch_{result.level}", language), None))
    if not (triage.rules().reviewed and formulary.reviewed()):
        lines.append((t("skin_result_unreviewed", language), None))
    if photo:
        lines.append((photo, _PHOTO_FAILED if photo_needed else _PHOTO_OK))
    if model:
        lines.append((model, _MODEL))
    lines.append((t("skin_disclaimer", language), None))
    for step in _SHORTENING:
        if len(_joined(lines)) <= REPLY_MAX:
            break
        if step == "reasons":
            lines[1] = (t("skin_result_why", language, reasons=reasons[0]), None)
        else:
            lines = [(text, order) for text, order in lines if order != step]
    return _joined(lines)


def _joined(lines: list[tuple[str, int | None]]) -> str:
    return "\n".join(text for text, _ in lines)


def _level_key(result: triage.Triage) -> str:
    if result.level == LEVEL_PHARMACY and result.site_type == SITE_OTC_SELLER and not result.medicines:
        return "skin_result_level_pharmacy_otc"
    return f"skin_result_level_{result.level}"


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
