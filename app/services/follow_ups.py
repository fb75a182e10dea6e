"""Follow-up and consent: the check-in "How is the patient?" and the patient's agreement to use the photos.

After the triage reply, a chat consultation gets a check-in to the pharmacist's chat: ``FOLLOW_UP_MINUTES_REFERRED``
later for the clinic levels (``clinic``, ``clinic_today``, ``urgent``), ``FOLLOW_UP_MINUTES_SELF_CARE`` for
``self_care`` and ``pharmacy`` (a clinician's answer moves it by the level the clinician set, while it is not sent
yet). The periodic job (every minute, :func:`send_due`) queues each due check-in once (a dedupe key, and the
consultation's ``follow_up_sent_at``) with four buttons: Better, Same, Worse, Went to clinic. Every answer is the
consultation's outcome; "worse" re-opens the consultation (``reopened_at``) and offers a second opinion.
:func:`outcomes_report` counts outcomes by level and condition.

Consent is one question the chat asks once per consultation, with the "checking the photo" reply; without an
answer it stays no. Only consented photos with a clinician-confirmed diagnosis are exported
(:mod:`app.services.review_export`).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select

from app.extensions import db
from app.i18n import t
from app.messaging.envelopes import Button
from app.models import Consultation, Recommendation, ReviewRequest, User, utcnow
from app.models.channel import CHAT_CHANNELS
from app.models.consultation import (
    LEVEL_CLINIC,
    OUTCOME_WORSE,
    OUTCOMES,
    STATUS_COMPLETED,
)
from app.models.review import REVIEW_ANSWERED
from app.services import audit, reviews, triage

log = logging.getLogger(__name__)

OUTCOME_PREFIX = "skin:outcome:"  # + consultation id + ":" + outcome
CONSENT_PREFIX = "skin:consent:"  # + consultation id + ":yes" / ":no"
BATCH = 200  # check-ins per run of the minute job


def minutes_for(level: str) -> int:
    """How long after the triage reply the check-in comes for this level."""
    config = current_app.config
    referred = triage.level_rank(level) >= triage.level_rank(LEVEL_CLINIC)
    return int(config["FOLLOW_UP_MINUTES_REFERRED"] if referred else config["FOLLOW_UP_MINUTES_SELF_CARE"])


def plan(consultation: Consultation, level: str, *, since: datetime) -> None:
    """Set (or move, while not sent yet) the consultation's check-in; chat consultations only."""
    if consultation.channel not in CHAT_CHANNELS or consultation.follow_up_sent_at is not None:
        return
    consultation.follow_up_at = since + timedelta(minutes=minutes_for(level))


def outcome_buttons(consultation: Consultation, language: str) -> tuple[Button, ...]:
    """The check-in's four buttons: Better, Same, Worse, Went to clinic."""
    return tuple(Button(id=f"{OUTCOME_PREFIX}{consultation.id}:{outcome}", title=t(f"follow_up_{outcome}", language))
                 for outcome in OUTCOMES)  # fmt: skip


def send_due(now: datetime | None = None) -> dict[str, int]:
    """Every minute: queue each check-in that is due, once. Returns counts (``sent``, ``skipped``: no chat)."""
    now = now or utcnow()
    counts = {"sent": 0, "skipped": 0}
    due = db.session.scalars(
        select(Consultation).where(Consultation.follow_up_at <= now, Consultation.follow_up_sent_at.is_(None),
                                   Consultation.status == STATUS_COMPLETED)
        .order_by(Consultation.follow_up_at).limit(BATCH).with_for_update(skip_locked=True)
    ).all()  # fmt: skip
    for consultation in due:
        consultation.follow_up_sent_at = now
        chat = reviews.pharmacist_chat(consultation)
        if chat is None:
            counts["skipped"] += 1
            continue
        channel, address, language = chat
        text = t("follow_up_question", language, case=reviews.case_label(consultation, language))
        if reviews.send_chat(channel, address, language, text, consultation, f"follow-up:{consultation.id}",
                              outcome_buttons(consultation, language)):  # fmt: skip
            counts["sent"] += 1
        audit.record(None, "consultation.follow_up", "consultation", consultation.id)
    db.session.commit()
    return counts


def _own(user: User, consultation_id: uuid.UUID) -> Consultation | None:
    consultation = db.session.get(Consultation, consultation_id)
    if consultation is None or consultation.user_id != user.id:
        return None
    return consultation


def record_outcome(user: User, consultation_id: uuid.UUID, outcome: str) -> Consultation | None:
    """The pharmacist's answer to the check-in (``None``: not their consultation). "Worse" re-opens it."""
    consultation = _own(user, consultation_id)
    if consultation is None or outcome not in OUTCOMES:
        return None
    now = utcnow()
    consultation.outcome, consultation.outcome_at = outcome, now
    if outcome == OUTCOME_WORSE:
        consultation.reopened_at = now
    audit.record(reviews.UserActor(user.id), "consultation.outcome", "consultation", consultation.id,
                 {"outcome": outcome})  # fmt: skip
    return consultation


def record_consent(user: User, consultation_id: uuid.UUID, agreed: bool) -> Consultation | None:
    """The patient's answer to the photo question (``None``: not this pharmacist's consultation)."""
    consultation = _own(user, consultation_id)
    if consultation is None:
        return None
    consultation.photo_consent, consultation.photo_consent_at = agreed, utcnow()
    audit.record(reviews.UserActor(user.id), "consultation.consent", "consultation", consultation.id,
                 {"photo_consent": agreed})  # fmt: skip
    return consultation


def consent_buttons(consultation: Consultation, language: str) -> tuple[Button, ...]:
    """Yes / No to the photo consent question."""
    return (Button(id=f"{CONSENT_PREFIX}{consultation.id}:yes", title=t("opt_yes", language)),
            Button(id=f"{CONSENT_PREFIX}{consultation.id}:no", title=t("opt_no", language)))  # fmt: skip


def outcomes_report(actor) -> dict:
    """Outcomes by level (the clinician's when answered, else the rules') and condition, in the actor's scope.

    Each row: ``level``, ``condition``, ``consultations`` (with a check-in sent), ``answered`` and one count per
    outcome; ``worse_rate`` = worse / answered (``None`` with no answer yet).
    """
    latest = (select(ReviewRequest.consultation_id, func.max(ReviewRequest.answered_at).label("at"))
              .where(ReviewRequest.status == REVIEW_ANSWERED).group_by(ReviewRequest.consultation_id).subquery())  # fmt: skip
    stmt = reviews._scoped(
        select(Consultation.id, Consultation.condition, Consultation.outcome, Recommendation.level, ReviewRequest.level)
        .join(Recommendation, Recommendation.consultation_id == Consultation.id)
        .outerjoin(latest, latest.c.consultation_id == Consultation.id)
        .outerjoin(ReviewRequest, (ReviewRequest.consultation_id == Consultation.id)
                   & (ReviewRequest.answered_at == latest.c.at))
        .where(Consultation.follow_up_sent_at.is_not(None)),
        actor,
    )  # fmt: skip
    rows: dict[tuple[str, str], dict] = {}
    for _, condition, outcome, rules_level, clinician_level in db.session.execute(stmt):
        level = clinician_level or rules_level
        row = rows.setdefault((level, condition or "unknown"), {
            "level": level, "condition": condition or "unknown", "consultations": 0, "answered": 0,
            **{outcome_name: 0 for outcome_name in OUTCOMES}})  # fmt: skip
        row["consultations"] += 1
        if outcome in OUTCOMES:
            row["answered"] += 1
            row[outcome] += 1
    items = sorted(rows.values(), key=lambda r: (triage.level_rank(r["level"]), r["condition"]))
    for row in items:
        row["worse_rate"] = round(row[OUTCOME_WORSE] / row["answered"], 3) if row["answered"] else None
    audit.record(actor, "report.outcomes", "consultation", None, {"rows": len(items)})
    db.session.commit()
    return {"items": items}
