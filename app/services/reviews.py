"""Second opinions: pharmacists ask a clinician about a consultation; clinicians answer from a queue.

Who sees what: a pharmacist requests reviews of their own consultations only; a clinician reads and answers the
consultations of the pharmacies they cover (``clinician_pharmacies``, or all with ``all_pharmacies``); an admin
everything. Anyone else's consultation is a 404, never a 403 (an id says nothing about who owns it). Every read and
write is audited.

A review is requested by the pharmacist (the chat's "Ask a clinician" button, or
``POST /api/v1/consultations/{id}/review-request``) or on its own when the rules say ``clinic_today`` or ``urgent``
(:func:`queue_by_level`, called by the analysis pipeline). It waits ``open`` against a target
(``REVIEW_TARGET_MINUTES_URGENT`` for urgent, ``REVIEW_TARGET_MINUTES`` otherwise); past it, the periodic job
(:func:`alert_overdue`) sends one SMS to each clinician covering it, or tells the pharmacist none does.

The answer (:func:`answer`) is taken once: the review row is locked and a second answer is a 409, and the chat
message has a dedupe key per review, so a repeated POST or a retried job never sends twice. It goes to the chat
the consultation came from (an API consultation: the pharmacist's latest linked chat), in that chat's language. The
clinician's level is stored beside the rules' level and the message says whether it was raised or lowered.

Photos are shown to clinicians as signed links that expire (``REVIEW_PHOTO_URL_SECONDS``): the link names the photo
and the clinician, and serving it checks again that the clinician is active and still covers the consultation.
"""

from __future__ import annotations

import logging
import math
import uuid
from datetime import datetime, timedelta

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import Select, case, false, func, select

from app.errors import Conflict, NotFound, ValidationFailed
from app.extensions import db
from app.i18n import t
from app.messaging.envelopes import Button
from app.messaging.outbox import OptedOut, SendCapReached, queue_outbound
from app.models import (
    ClinicianPharmacy,
    Consultation,
    ConsultationImage,
    Contact,
    Message,
    Recommendation,
    ReviewRequest,
    User,
    utcnow,
)
from app.models.channel import CHAT_CHANNELS, SMS
from app.models.consultation import (
    IMAGE_STORED,
    LEVEL_CLINIC_TODAY,
    LEVEL_URGENT,
    LEVELS,
    OUTCOME_WORSE,
    STATUS_COMPLETED,
)
from app.models.message_log import DIRECTION_IN, KIND_REPLY, KIND_SYSTEM
from app.models.review import (
    REASON_LEVEL,
    REASON_REQUESTED,
    REASON_WORSE,
    REVIEW_ANSWERED,
    REVIEW_OPEN,
)
from app.models.user import ROLE_ADMIN, ROLE_CLINICIAN, ROLE_PHARMACIST
from app.services import audit, clinical_terms, follow_ups, triage

log = logging.getLogger(__name__)

AUTO_LEVELS = (LEVEL_CLINIC_TODAY, LEVEL_URGENT)  # these enter the queue on their own
NOTE_MAX = 1000  # characters of pharmacist notes a review keeps (they are appended)
PHOTO_SALT = "review-photo"
BUTTON_PREFIX = "skin:review:"  # + consultation id: the chat's "Ask a clinician" button


class NotTriaged(Conflict):
    """The consultation has no triage answer yet: there is nothing for a clinician to review."""

    code = "not_triaged"


class AlreadyAnswered(Conflict):
    """The review was answered already; the answer went to the pharmacist once."""

    code = "already_answered"


# --- who sees what ------------------------------------------------------------------------------------------------


def covered_pharmacists(clinician_id: uuid.UUID) -> Select:
    """The ids of the pharmacist accounts a clinician covers through ``clinician_pharmacies`` (a subquery)."""
    return select(ClinicianPharmacy.pharmacist_id).where(ClinicianPharmacy.clinician_id == clinician_id)


def _scoped(stmt, actor):
    """``stmt`` (over consultations) narrowed to what ``actor`` may see."""
    if actor.role == ROLE_ADMIN:
        return stmt
    if actor.role == ROLE_CLINICIAN:
        user = db.session.get(User, actor.user_id)
        if user is not None and user.all_pharmacies:
            return stmt
        return stmt.where(Consultation.user_id.in_(covered_pharmacists(actor.user_id)))
    if actor.role == ROLE_PHARMACIST:
        return stmt.where(Consultation.user_id == actor.user_id)
    return stmt.where(false())


def covers(clinician: User, consultation: Consultation) -> bool:
    """Whether an active clinician covers this consultation's pharmacy."""
    if not clinician.active or clinician.role != ROLE_CLINICIAN:
        return False
    if clinician.all_pharmacies:
        return True
    return (
        db.session.scalar(
            select(ClinicianPharmacy.id).where(
                ClinicianPharmacy.clinician_id == clinician.id, ClinicianPharmacy.pharmacist_id == consultation.user_id
            )  # fmt: skip
        )
        is not None
    )


def clinicians_for(consultation: Consultation) -> list[User]:
    """The active clinicians who cover this consultation."""
    stmt = select(User).where(User.role == ROLE_CLINICIAN, User.active.is_(True)).where(
        (User.all_pharmacies.is_(True)) | User.id.in_(
            select(ClinicianPharmacy.clinician_id).where(ClinicianPharmacy.pharmacist_id == consultation.user_id)
        )
    )  # fmt: skip
    return list(db.session.scalars(stmt.order_by(User.created_at, User.id)))


def _visible_review(actor, review_id: uuid.UUID) -> tuple[ReviewRequest, Consultation]:
    found = db.session.execute(
        _scoped(
            select(ReviewRequest, Consultation).join(Consultation, ReviewRequest.consultation_id == Consultation.id),
            actor,
        ).where(ReviewRequest.id == review_id)  # fmt: skip
    ).first()
    if found is None:
        raise NotFound("No review with this id.")
    return found[0], found[1]


def check_pharmacies(role: str, pharmacist_ids: list[uuid.UUID] | None) -> None:
    """Refuse pharmacies for a role other than clinician, and ids that are no pharmacist account (before anything is
    written).

    Raises:
        ValidationFailed: naming ``pharmacist_ids``.
    """
    if not pharmacist_ids:
        return
    if role != ROLE_CLINICIAN:
        raise ValidationFailed("Only a clinician covers pharmacies.",
                               {"json": {"pharmacist_ids": ["Only for the clinician role."]}})  # fmt: skip
    wanted = set(pharmacist_ids)
    found = set(db.session.scalars(select(User.id).where(User.id.in_(wanted), User.role == ROLE_PHARMACIST)))
    if wanted - found:
        raise ValidationFailed("Unknown pharmacist.", {"json": {"pharmacist_ids": [
            f"Not a pharmacist account: {', '.join(sorted(str(i) for i in wanted - found))}."]}})  # fmt: skip


def set_pharmacies(user: User, pharmacist_ids: list[uuid.UUID] | None) -> None:
    """Replace the pharmacies (pharmacist accounts) a clinician covers (``None``: leave them); checked first with
    :func:`check_pharmacies`."""
    if pharmacist_ids is None:
        return
    check_pharmacies(user.role, pharmacist_ids)
    wanted = set(pharmacist_ids)
    db.session.flush()
    existing = {row.pharmacist_id: row for row in
                db.session.scalars(select(ClinicianPharmacy).where(ClinicianPharmacy.clinician_id == user.id))}  # fmt: skip
    for pharmacist_id, row in existing.items():
        if pharmacist_id not in wanted:
            db.session.delete(row)
    for pharmacist_id in wanted - set(existing):
        db.session.add(ClinicianPharmacy(clinician_id=user.id, pharmacist_id=pharmacist_id))
    db.session.flush()


def pharmacies_of(user: User) -> list[uuid.UUID]:
    """The pharmacist accounts a clinician covers by name (empty for other roles)."""
    if user.role != ROLE_CLINICIAN:
        return []
    return sorted(db.session.scalars(select(ClinicianPharmacy.pharmacist_id)
                                     .where(ClinicianPharmacy.clinician_id == user.id)), key=str)  # fmt: skip


# --- asking -------------------------------------------------------------------------------------------------------


def target_minutes(level: str) -> int:
    """How long a request at ``level`` may wait for an answer."""
    config = current_app.config
    return int(config["REVIEW_TARGET_MINUTES_URGENT"] if level == LEVEL_URGENT else config["REVIEW_TARGET_MINUTES"])


def target_hours(level: str) -> int:
    """The target in whole hours (rounded up), as the chat states it."""
    return max(1, math.ceil(target_minutes(level) / 60))


def _recommendation(consultation: Consultation) -> Recommendation | None:
    return db.session.scalar(select(Recommendation).where(Recommendation.consultation_id == consultation.id))


def open_review_of(consultation_id: uuid.UUID) -> ReviewRequest | None:
    """The consultation's open review, if any (at most one is open at a time)."""
    return db.session.scalar(
        select(ReviewRequest).where(
            ReviewRequest.consultation_id == consultation_id, ReviewRequest.status == REVIEW_OPEN
        )  # fmt: skip
    )


def _append_note(review: ReviewRequest, note: str | None) -> None:
    note = (note or "").strip()
    if note:
        review.note = (f"{review.note}\n{note}" if review.note else note)[:NOTE_MAX]


def open_review(consultation: Consultation, *, reason: str, by: uuid.UUID | None, note: str | None = None,
                now: datetime | None = None) -> tuple[ReviewRequest, bool]:  # fmt: skip
    """The consultation's open review, made now if there is none (the consultation row is locked first, so two
    requests at once make one). Returns ``(review, created)``; the caller commits.

    Raises:
        NotTriaged: the consultation has no recommendation yet.
    """
    db.session.scalar(select(Consultation.id).where(Consultation.id == consultation.id).with_for_update())
    recommendation = _recommendation(consultation)
    if recommendation is None or consultation.status != STATUS_COMPLETED:
        raise NotTriaged("This consultation is not triaged yet; ask for a review once its answer has come.")
    existing = open_review_of(consultation.id)
    if existing is not None:
        _append_note(existing, note)
        return existing, False
    now = now or utcnow()
    review = ReviewRequest(consultation_id=consultation.id, status=REVIEW_OPEN, reason=reason, requested_by=by,
                           rules_level=recommendation.level, requested_at=now,
                           due_at=now + timedelta(minutes=target_minutes(recommendation.level)))  # fmt: skip
    _append_note(review, note)
    db.session.add(review)
    db.session.flush()
    audit.record(None if by is None else UserActor(by), "review.request", "review", review.id,
                 {"consultation_id": str(consultation.id), "reason": reason, "level": recommendation.level})  # fmt: skip
    return review, True


class UserActor:
    """An actor for the audit log from a user id alone (a chat message or a job has no request)."""

    def __init__(self, user_id: uuid.UUID) -> None:
        self.user_id = user_id
        self.remote_addr = None


def request_review(actor, consultation_id: uuid.UUID, note: str | None) -> dict:
    """``POST /consultations/{id}/review-request``: the pharmacist's own consultation (an admin's: any).

    Raises:
        NotFound: no such consultation, or someone else's. NotTriaged: not answered by the rules yet.
    """
    consultation = db.session.get(Consultation, consultation_id)
    if consultation is None or (actor.role != ROLE_ADMIN and consultation.user_id != actor.user_id):
        raise NotFound("No consultation with this id.")
    review, created = open_review(consultation, reason=REASON_REQUESTED, by=actor.user_id, note=note)
    if not created:
        audit.record(actor, "review.note", "review", review.id, {"consultation_id": str(consultation.id)})
    db.session.commit()
    return summary(review, consultation)


def request_from_chat(user: User, consultation_id: uuid.UUID) -> tuple[ReviewRequest, bool] | None:
    """The chat's "Ask a clinician": ``None`` when the consultation is not this pharmacist's or not triaged."""
    consultation = db.session.get(Consultation, consultation_id)
    if consultation is None or consultation.user_id != user.id:
        return None
    reason = REASON_WORSE if consultation.outcome == OUTCOME_WORSE else REASON_REQUESTED
    try:
        return open_review(consultation, reason=reason, by=user.id)
    except NotTriaged:
        return None


def add_note(user: User, review_id: uuid.UUID, note: str) -> bool:
    """A note typed in the chat after asking: added to the review if it is still open and the user's."""
    review = db.session.get(ReviewRequest, review_id)
    if review is None or review.status != REVIEW_OPEN:
        return False
    consultation = db.session.get(Consultation, review.consultation_id)
    if consultation is None or consultation.user_id != user.id:
        return False
    _append_note(review, note)
    audit.record(UserActor(user.id), "review.note", "review", review.id, {"consultation_id": str(consultation.id)})
    return True


def queue_by_level(consultation: Consultation, recommendation: Recommendation) -> ReviewRequest | None:
    """A consultation the rules send to a clinician today or to hospital enters the queue on its own."""
    if recommendation.level not in AUTO_LEVELS:
        return None
    review, _ = open_review(consultation, reason=REASON_LEVEL, by=None)
    return review


def case_label(consultation: Consultation, language: str) -> str:
    """How a message names a consultation: its date and the pharmacist's impression (no patient details)."""
    when = consultation.created_at.date().isoformat()
    if consultation.condition and consultation.condition in clinical_terms.CONDITIONS:
        return f"{when}, {t(f'opt_condition_{consultation.condition}', language)}"
    return when


def ask_button(consultation: Consultation, language: str) -> Button:
    """The chat's "Ask a clinician" button for this consultation."""
    return Button(id=f"{BUTTON_PREFIX}{consultation.id}", title=t("review_button_ask", language))


def queue_offer(consultation: Consultation, review: ReviewRequest | None) -> None:
    """After the triage reply: the offer of a second opinion with its button, or (queued on its own) the notice
    that a clinician was asked. Once per consultation (dedupe key)."""
    chat = pharmacist_chat(consultation)
    if chat is None:
        return
    channel, address, language = chat
    if review is not None and not clinicians_for(consultation):
        text, buttons = t("review_unstaffed", language), ()  # queued, but nobody covers this pharmacy yet
    elif review is not None:
        text, buttons = t("review_auto", language, case=case_label(consultation, language),
                          hours=target_hours(review.rules_level)), ()  # fmt: skip
    else:
        text, buttons = (
            t("review_offer", language, case=case_label(consultation, language)),
            (ask_button(consultation, language),),
        )
    send_chat(channel, address, language, text, consultation, f"review-offer:{consultation.id}", buttons)


def send_chat(channel: str, address: str, language: str, text: str, consultation: Consultation, key: str,
              buttons=()) -> Message | None:  # fmt: skip
    """Queue one message to the pharmacist's chat once (``key`` is its dedupe key); ``None`` when refused (opted
    out, over the caps)."""
    try:
        return queue_outbound(channel=channel, address=address, text=text, language=language, kind=KIND_REPLY,
                              user_id=consultation.user_id, in_conversation=True, buttons=tuple(buttons),
                              dedupe_key=key)  # fmt: skip
    except (OptedOut, SendCapReached) as exc:
        log.warning("no chat message %s for consultation %s: %s", key.split(":")[0], consultation.id, exc.code)
        return None


def pharmacist_chat(consultation: Consultation) -> tuple[str, str, str] | None:
    """``(channel, address, language)`` of the chat the pharmacist reads for this consultation: the one it came
    from, or, for an API consultation, the chat the pharmacist last wrote from; ``None`` without one."""
    from app.services.skin_advice import language_of

    contact = None
    channel = consultation.channel
    if consultation.channel in CHAT_CHANNELS and consultation.contact_id is not None:
        contact = db.session.get(Contact, consultation.contact_id)
    if contact is None:
        latest = db.session.execute(
            select(Message.channel, Contact)
            .join(Contact, Message.contact_id == Contact.id)
            .where(Contact.user_id == consultation.user_id, Message.direction == DIRECTION_IN,
                   Message.channel.in_(CHAT_CHANNELS))
            .order_by(Message.created_at.desc())
            .limit(1)
        ).first()  # fmt: skip
        if latest is None:
            return None
        channel, contact = latest
    if contact.user_id != consultation.user_id:
        return None  # the chat was linked to another account since: never send there
    return channel, contact.address, contact.language or language_of(consultation)


# --- the queue ----------------------------------------------------------------------------------------------------


def _level_rank():
    return case({level: rank for rank, level in enumerate(LEVELS)}, value=ReviewRequest.rules_level)


def list_queue(actor, *, page: int, per_page: int, status: str = REVIEW_OPEN, level: str | None = None) -> dict:
    """A page of reviews: the most serious level first, then the longest waiting (answered ones too, by status)."""
    stmt = _scoped(select(ReviewRequest, Consultation).join(Consultation, ReviewRequest.consultation_id ==
                                                             Consultation.id), actor).where(
        ReviewRequest.status == status)  # fmt: skip
    if level:
        stmt = stmt.where(ReviewRequest.rules_level == level)
    stmt = stmt.order_by(_level_rank().desc(), ReviewRequest.requested_at, ReviewRequest.id)
    total = db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    rows = db.session.execute(stmt.limit(per_page).offset((page - 1) * per_page)).all()
    audit.record(actor, "review.list", "review", None, {"count": len(rows), "status": status})
    db.session.commit()
    now = utcnow()
    return {"items": [summary(review, consultation, now) for review, consultation in rows], "page": page,
            "per_page": per_page, "total": total, "pages": max(1, math.ceil(total / per_page)) if total else 0}  # fmt: skip


def summary(review: ReviewRequest, consultation: Consultation, now: datetime | None = None) -> dict:
    """A review as the queue shows it."""
    now = now or utcnow()
    until = review.answered_at or now
    waited = int((until - review.requested_at).total_seconds() // 60)
    pharmacist = db.session.get(User, consultation.user_id)
    return {
        "id": review.id, "consultation_id": consultation.id, "status": review.status, "reason": review.reason,
        "rules_level": review.rules_level, "level": review.level, "condition": consultation.condition,
        "note": review.note, "requested_at": review.requested_at, "due_at": review.due_at,
        "waiting_minutes": waited, "target_minutes": target_minutes(review.rules_level),
        "overdue": review.status == REVIEW_OPEN and now > review.due_at,
        "pharmacy_name": pharmacist.pharmacy_name if pharmacist else None,
        "answered_at": review.answered_at, "answered_by": review.answered_by, "diagnosis": review.diagnosis,
        "icd10": review.icd10, "advice": review.advice, "confidence": review.confidence,
        "level_change": level_change(review),
    }  # fmt: skip


def level_change(review: ReviewRequest) -> str | None:
    """``raised``, ``lowered`` or ``same`` once answered (the clinician's level against the rules')."""
    if review.level is None:
        return None
    delta = triage.level_rank(review.level) - triage.level_rank(review.rules_level)
    return "raised" if delta > 0 else "lowered" if delta < 0 else "same"


def read(actor, review_id: uuid.UUID) -> dict:
    """One review with its consultation (answers, triage, analyses) and its photos as signed links (audited)."""
    from app.services import consultations

    review, consultation = _visible_review(actor, review_id)
    audit.record(actor, "review.read", "review", review.id, {"consultation_id": str(consultation.id)})
    db.session.commit()
    body = summary(review, consultation)
    body["consultation"] = consultations.detail(consultation, actor)
    body["photos"] = [{"image_id": image.id, "position": image.position, "url": photo_url(actor, image),
                       "expires_in": current_app.config["REVIEW_PHOTO_URL_SECONDS"]}
                      for image in consultation.images if image.status == IMAGE_STORED]  # fmt: skip
    body["history"] = [summary(other, consultation) for other in db.session.scalars(
        select(ReviewRequest).where(ReviewRequest.consultation_id == consultation.id, ReviewRequest.id != review.id)
        .order_by(ReviewRequest.requested_at))]  # fmt: skip
    return body


def reviews_of(consultation: Consultation) -> list[dict]:
    """Every review of a consultation, oldest first (the consultation's detail shows them)."""
    rows = db.session.scalars(select(ReviewRequest).where(ReviewRequest.consultation_id == consultation.id)
                              .order_by(ReviewRequest.requested_at, ReviewRequest.id))  # fmt: skip
    return [summary(review, consultation) for review in rows]


# --- photos as signed links ---------------------------------------------------------------------------------------


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=PHOTO_SALT)


def photo_url(actor, image: ConsultationImage) -> str:
    """A link to one stored photo for this actor, valid ``REVIEW_PHOTO_URL_SECONDS``."""
    token = _serializer().dumps({"i": str(image.id), "u": str(actor.user_id)})
    return f"/api/v1/review-photos/{token}"


def read_photo(token: str, remote_addr: str | None) -> tuple[bytes, str]:
    """The photo a signed link names, if it has not expired and its clinician (or admin) may still see it.

    Raises:
        NotFound: a bad, expired or no longer authorised link (one answer for all: a link says nothing).
    """
    gone = NotFound("This photo link is invalid or has expired; open the review again for a new one.")
    try:
        claims = _serializer().loads(token, max_age=current_app.config["REVIEW_PHOTO_URL_SECONDS"])
        image_id, user_id = uuid.UUID(claims["i"]), uuid.UUID(claims["u"])
    except (BadSignature, SignatureExpired, KeyError, TypeError, ValueError):
        raise gone from None
    user = db.session.get(User, user_id)
    image = db.session.get(ConsultationImage, image_id)
    if user is None or not user.active or image is None or image.status != IMAGE_STORED:
        raise gone
    actor = _PhotoActor(user, remote_addr)
    visible = db.session.scalar(_scoped(select(Consultation.id), actor).where(Consultation.id == image.consultation_id))
    data = image.data
    if visible is None or data is None:
        raise gone
    audit.record(actor, "review.photo_read", "consultation_image", image.id,
                 {"consultation_id": str(image.consultation_id)})  # fmt: skip
    db.session.commit()
    return data, image.content_type or "image/jpeg"


class _PhotoActor:
    def __init__(self, user: User, remote_addr: str | None) -> None:
        self.user_id, self.role, self.remote_addr = user.id, user.role, remote_addr


# --- answering ----------------------------------------------------------------------------------------------------


def answer(actor, review_id: uuid.UUID, data: dict) -> dict:
    """Record a clinician's answer and queue it to the pharmacist's chat once.

    Args:
        actor: a clinician covering the consultation, or an admin.
        review_id: the review.
        data: ``diagnosis`` (a condition id or free text), optional ``icd10``, ``level``, ``advice``,
            ``confidence``.

    Raises:
        NotFound: no such review, or one this clinician does not cover. AlreadyAnswered: answered before (nothing is
            sent again).
    """
    review, consultation = _visible_review(actor, review_id)
    review = db.session.scalar(select(ReviewRequest).where(ReviewRequest.id == review.id).with_for_update()
                               .execution_options(populate_existing=True))  # fmt: skip
    if review.status != REVIEW_OPEN:
        raise AlreadyAnswered("This review was answered already; its answer went to the pharmacist.")
    now = utcnow()
    diagnosis = data["diagnosis"].strip()
    review.status, review.answered_at, review.answered_by = REVIEW_ANSWERED, now, actor.user_id
    review.diagnosis = diagnosis
    review.condition = diagnosis if diagnosis in clinical_terms.CONDITIONS or diagnosis == "not_skin" else None
    review.icd10 = data.get("icd10")
    review.level, review.advice, review.confidence = data["level"], data["advice"].strip(), data["confidence"]
    follow_ups.plan(consultation, review.level, since=consultation.completed_at or now)
    audit.record(actor, "review.answer", "review", review.id,
                 {"consultation_id": str(consultation.id), "rules_level": review.rules_level, "level": review.level,
                  "level_change": level_change(review), "confidence": review.confidence,
                  "condition": review.condition})  # fmt: skip
    sent = send_answer(review, consultation)
    db.session.commit()
    body = summary(review, consultation)
    body["sent"] = sent
    return body


def answer_text(review: ReviewRequest, consultation: Consultation, language: str) -> str:
    """The message the pharmacist gets: diagnosis, confidence, the level beside the rules' level, the advice."""
    level, rules_level = (t(f"review_level_name_{name}", language) for name in (review.level, review.rules_level))
    change = level_change(review)
    key = {"raised": "review_level_raised", "lowered": "review_level_lowered"}.get(change, "review_level_same")
    diagnosis = review.diagnosis or ""
    if review.condition and review.condition in clinical_terms.CONDITIONS:
        diagnosis = t(f"opt_condition_{review.condition}", language)
    if review.icd10:
        diagnosis = f"{diagnosis} ({review.icd10})"
    return t("review_answer", language, case=case_label(consultation, language), diagnosis=diagnosis,
             confidence=t(f"review_confidence_{review.confidence}", language),
             level_line=t(key, language, level=level, rules_level=rules_level), advice=review.advice)  # fmt: skip


def send_answer(review: ReviewRequest, consultation: Consultation) -> bool:
    """Queue the answer to the pharmacist's chat (once: a dedupe key per review); False without a chat."""
    chat = pharmacist_chat(consultation)
    if chat is None:
        return False  # read through the API
    channel, address, language = chat
    return send_chat(channel, address, language, answer_text(review, consultation, language), consultation,
                      f"review-answer:{review.id}") is not None  # fmt: skip


# --- overdue ------------------------------------------------------------------------------------------------------


def alert_overdue(now: datetime | None = None) -> dict[str, int]:
    """Every minute: each open review past its target gets one alert: an SMS to every clinician covering it who has a
    phone, or, when no active clinician covers it, a chat message to the pharmacist. Returns counts."""
    now = now or utcnow()
    counts = {"overdue": 0, "sms": 0, "unstaffed": 0}
    due = db.session.scalars(
        select(ReviewRequest).where(ReviewRequest.status == REVIEW_OPEN, ReviewRequest.due_at <= now,
                                    ReviewRequest.overdue_alerted_at.is_(None))
        .order_by(ReviewRequest.due_at).limit(200).with_for_update(skip_locked=True)
    ).all()  # fmt: skip
    for review in due:
        counts["overdue"] += 1
        consultation = db.session.get(Consultation, review.consultation_id)
        clinicians = clinicians_for(consultation)
        if clinicians:
            minutes = int((now - review.requested_at).total_seconds() // 60)
            for clinician in clinicians:
                if not clinician.phone:
                    continue
                text = t("review_overdue_sms", clinician.language,
                         level=t(f"review_level_name_{review.rules_level}", clinician.language),
                         minutes=minutes, target=target_minutes(review.rules_level))  # fmt: skip
                try:
                    queue_outbound(channel=SMS, address=clinician.phone, text=text, language=clinician.language,
                                   kind=KIND_SYSTEM, user_id=clinician.id,
                                   dedupe_key=f"review-overdue:{review.id}:{clinician.id}")  # fmt: skip
                    counts["sms"] += 1
                except (OptedOut, SendCapReached) as exc:
                    log.warning("no overdue alert to clinician %s: %s", clinician.id, exc.code)
        else:
            chat = pharmacist_chat(consultation)
            if chat is not None:
                channel, address, language = chat
                text = t("review_overdue_unstaffed", language, case=case_label(consultation, language))
                if send_chat(channel, address, language, text, consultation, f"review-unstaffed:{review.id}"):
                    counts["unstaffed"] += 1
        review.overdue_alerted_at = now
        audit.record(None, "review.overdue", "review", review.id, {"clinicians": len(clinicians)})
    db.session.commit()
    if counts["overdue"]:
        log.info("overdue reviews: %s", counts)
    return counts
