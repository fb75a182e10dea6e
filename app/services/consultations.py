"""Skin consultations: linking a pharmacist's chat account, consultations and their photos, the analysis queue.

Pharmacists see their own consultations, admins every one; every read of a consultation is audited. Photos are
processed by :mod:`app.services.images` in the analysis job and stored as clean JPEGs (an upload waits for it as
its original file with the metadata taken out; a chat photo is downloaded by the job); the job runs the pipeline
(``app.services.skin_analysis``): model, triage and the reply.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import uuid
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select, update

from app import jobs
from app.errors import Forbidden, NotFound, ServiceError, ValidationFailed
from app.extensions import db, redis_client
from app.i18n import t
from app.models import (
    Analysis,
    Appointment,
    ChatLinkCode,
    Consultation,
    ConsultationImage,
    Contact,
    Patient,
    Recommendation,
    TriageGuideline,
    User,
    utcnow,
)
from app.models.consultation import (
    ANALYSIS_QUEUED,
    IMAGE_PENDING,
    IMAGE_REJECTED,
    IMAGE_STORED,
    STATUS_CANCELLED,
    STATUS_COLLECTING,
    STATUS_COMPLETED,
    STATUS_QUEUED,
)
from app.models.user import ROLE_ADMIN, ROLE_PHARMACIST
from app.services import audit, phone_proof, reviews, skin_advice, triage
from app.transactions import after_commit

log = logging.getLogger(__name__)

LINK_CODE_MINUTES = 15
LINK_CODE_MAX_ACTIVE = 5  # codes per user that may be valid at once (older ones are spent)
LINK_MAX_WRONG = 5  # wrong link codes per chat in LINK_WRONG_SECONDS; then every code is refused, even the right one
LINK_WRONG_SECONDS = 3600
CONSULTING_ROLES = (ROLE_PHARMACIST, ROLE_ADMIN)
MAX_IMAGES = 10  # photos per consultation
ANSWER_FIELDS = ("condition", "age_group", "sex", "pregnant", "body_site", "duration", "itch", "pain", "spreading",
                 "fever", "blisters", "mole_change", "open_sore", "treatment_failed", "red_flags")  # fmt: skip


class ChatLinkLocked(ServiceError):
    """Too many wrong link codes from this chat: no code links it until the hour is over."""

    status, code = 429, "chat_link_locked"


class PhotoRejected(ServiceError):
    """An upload that is not a photo Thusa accepts (type, bytes, pixels, unreadable): the pipeline's status."""

    def __init__(self, rejected) -> None:
        super().__init__(rejected.message, {"files": {"image": [rejected.message]}}, code=rejected.code)
        self.status = rejected.status


# --- chat linking -----------------------------------------------------------------------------------------------


def _digest(code: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"chat-link:{code}".encode(), hashlib.sha256).hexdigest()


def create_chat_link(actor) -> dict:
    """A one-time 6-digit code the caller sends to the bot (``/link CODE``, ``LINK CODE``) within 15 minutes."""
    user = db.session.get(User, actor.user_id)
    now = utcnow()
    active = db.session.scalars(
        select(ChatLinkCode)
        .where(ChatLinkCode.user_id == user.id, ChatLinkCode.used_at.is_(None), ChatLinkCode.expires_at > now)
        .order_by(ChatLinkCode.created_at.desc())
    ).all()
    for old in active[LINK_CODE_MAX_ACTIVE - 1 :]:
        old.used_at = now
    code = f"{secrets.randbelow(1_000_000):06d}"
    row = ChatLinkCode(user_id=user.id, code_hash=_digest(code), created_at=now,
                       expires_at=now + timedelta(minutes=LINK_CODE_MINUTES))  # fmt: skip
    db.session.add(row)
    audit.record(actor, "auth.chat_link_create", "user", user.id)
    db.session.commit()
    return {"code": code, "expires_at": row.expires_at}


def _link(contact: Contact, user: User, how: str) -> User:
    contact.user_id = user.id
    audit.record(None, "auth.chat_link", "user", user.id, {"contact_id": str(contact.id), "how": how})
    return user


def _consulting(user: User | None) -> User | None:
    return user if user is not None and user.active and user.role in CONSULTING_ROLES else None


def _wrong_codes_key(contact: Contact) -> str:
    return f"thusa:chat-link-wrong:{contact.id}"


def _count_wrong_code(contact: Contact) -> int:
    pipe = redis_client.client.pipeline()
    pipe.incr(_wrong_codes_key(contact))
    pipe.expire(_wrong_codes_key(contact), LINK_WRONG_SECONDS, nx=True)  # the hour starts at the first wrong code
    return pipe.execute()[0]


def link_with_code(contact: Contact, code: str) -> User | None:
    """Link ``contact`` to the account whose unexpired, unused code this is (``None``: no such code).

    A chat gets :data:`LINK_MAX_WRONG` wrong codes an hour (a guessing guard, counted in Redis per contact); after
    that every code is refused, the right one too, until the hour is over. Without Redis nothing is linked: the
    error reaches the job, which tries again later.

    Raises:
        ChatLinkLocked: this chat sent too many wrong codes (the try that reaches the limit raises it too).
    """
    locked = ChatLinkLocked("Too many wrong link codes from this chat; try again in an hour.")
    if int(redis_client.client.get(_wrong_codes_key(contact)) or 0) >= LINK_MAX_WRONG:
        raise locked
    now = utcnow()
    row = db.session.scalar(
        select(ChatLinkCode)
        .where(ChatLinkCode.code_hash == _digest(code), ChatLinkCode.used_at.is_(None), ChatLinkCode.expires_at > now)
        .with_for_update()
    )
    if row is None:
        if _count_wrong_code(contact) >= LINK_MAX_WRONG:
            audit.record(None, "auth.chat_link_locked", "contact", contact.id)
            raise locked
        return None
    row.used_at = now
    user = _consulting(db.session.get(User, row.user_id))
    return _link(contact, user, "code") if user else None


def is_patient_number(phone: str) -> bool:
    """Whether a patient with this number has (or had) an appointment."""
    stmt = select(Appointment.id).join(Patient, Appointment.patient_id == Patient.id).where(Patient.phone == phone)
    return db.session.scalar(stmt.limit(1)) is not None


def _user_by_phone(phone: str | None) -> User | None:
    """The consulting account a chat from ``phone`` may link to without a code, if any.

    Only a proven phone (:mod:`app.services.phone_proof`): a number typed at registration may be anyone's. And
    never a patient's number, even a proven one: the phone may be shared, and the patient's photos and reminder
    answers must not become a pharmacist's consultation (such a chat links with a code only).
    """
    if not phone:
        return None
    digits = "+" + "".join(ch for ch in phone if ch.isdigit())
    user = _consulting(db.session.scalar(select(User).where(User.phone == digits)))
    if user is None or not phone_proof.proven(user) or is_patient_number(digits):
        return None
    return user


def link_by_phone(contact: Contact) -> User | None:
    """WhatsApp: the sender's number is a consulting user's proven phone → linked (WhatsApp proves the sender)."""
    user = _user_by_phone(contact.address)
    return _link(contact, user, "whatsapp_number") if user else None


def link_by_shared_contact(contact: Contact, extra: dict | None) -> User | None:
    """Telegram: a shared contact card links only when it is the sender's own (``contact.user_id`` is the sender's
    id) and its number is a consulting user's proven phone. Anyone can share someone else's card."""
    extra = extra or {}
    card = extra.get("contact") or {}
    sender = extra.get("from_id")
    if not sender or card.get("user_id") != sender:
        return None
    user = _user_by_phone(card.get("phone_number"))
    return _link(contact, user, "telegram_contact") if user else None


def pharmacist_of(contact: Contact) -> User | None:
    """The active consulting account this chat is linked to, if any."""
    return _consulting(db.session.get(User, contact.user_id)) if contact.user_id else None


# --- consultations from chat --------------------------------------------------------------------------------------


def open_consultation(user: User, contact: Contact, channel: str) -> Consultation:
    """A new consultation collecting answers on a chat channel."""
    consultation = Consultation(user_id=user.id, contact_id=contact.id, channel=channel, status=STATUS_COLLECTING)
    db.session.add(consultation)
    db.session.flush()
    return consultation


def add_chat_photos(consultation: Consultation, message) -> int:
    """Record the attachments of an inbound chat message (fetched later by the job). Returns how many were taken."""
    taken = 0
    position = _next_position(consultation)
    for media in message.media or []:
        if position >= MAX_IMAGES:
            break
        db.session.add(ConsultationImage(consultation_id=consultation.id, position=position, status=IMAGE_PENDING,
                                         provider=message.provider, media=dict(media), message_id=message.id))  # fmt: skip
        position += 1
        taken += 1
    db.session.flush()
    return taken


def _next_position(consultation: Consultation) -> int:
    last = db.session.scalar(
        select(func.max(ConsultationImage.position)).where(ConsultationImage.consultation_id == consultation.id)
    )
    return 0 if last is None else last + 1


def image_count(consultation_id: uuid.UUID) -> int:
    return db.session.scalar(
        select(func.count()).select_from(ConsultationImage).where(ConsultationImage.consultation_id == consultation_id)
    )


def record_answer(consultation: Consultation, name: str, value) -> None:
    """Store one answer (a field of :data:`ANSWER_FIELDS`)."""
    if name not in ANSWER_FIELDS:
        raise ValueError(f"not an answer: {name}")
    setattr(consultation, name, value)


def queue_analysis(consultation: Consultation) -> None:
    """Mark the consultation queued and enqueue the analysis job once the transaction commits."""
    consultation.status = STATUS_QUEUED
    consultation.queued_at = utcnow()
    consultation_id = str(consultation.id)
    after_commit(db.session(), lambda: enqueue_analysis(consultation_id))


def enqueue_analysis(consultation_id: str) -> None:
    """Enqueue the analysis job (safe to repeat: the job does nothing for a completed consultation)."""
    jobs.enqueue(jobs.QUEUE_INFERENCE, jobs.ANALYSE_CONSULTATION, consultation_id,
                 job_id=f"analyse-{consultation_id}", timeout=600)  # fmt: skip


def cancel_collecting(contact: Contact) -> None:
    """Close any consultation of this chat still collecting answers (a new photo starts a new one)."""
    db.session.execute(
        update(Consultation)
        .where(Consultation.contact_id == contact.id, Consultation.status == STATUS_COLLECTING)
        .values(status=STATUS_CANCELLED, updated_at=utcnow())
    )


# --- REST ---------------------------------------------------------------------------------------------------------


def _owned(actor, consultation_id: uuid.UUID) -> Consultation:
    consultation = db.session.get(Consultation, consultation_id)
    if consultation is None:
        raise NotFound("No consultation with this id.")
    if not actor.is_admin and consultation.user_id != actor.user_id:
        # A pharmacist cannot tell another's consultation from a missing one.
        raise NotFound("No consultation with this id.")
    return consultation


def _prepared(data: bytes):
    # Heavy (numpy, Pillow, pillow-heif): loaded with the first photo, not by every process that imports this.
    from app.services import images

    try:
        return images.prepare_upload(data, **images.upload_caps(current_app.config))
    except images.ImageRejected as exc:
        raise PhotoRejected(exc) from exc


def store_processed(image: ConsultationImage, stored) -> None:
    """Fill an image row from the pipeline's :class:`~app.services.images.StoredImage`."""
    image.status = IMAGE_STORED
    image.data = stored.data
    image.content_type = stored.content_type
    image.width, image.height = stored.width, stored.height
    image.source_format, image.source_bytes = stored.source_format, stored.source_bytes
    image.stored_bytes = len(stored.data)
    image.ssim = stored.ssim
    image.quality_ok = stored.quality.ok
    image.quality_problems = list(stored.quality.problems)
    image.quality_measures = dict(stored.quality.measures)
    image.timings_ms = dict(stored.timings_ms)
    image.error_code = None


def reject_image(image: ConsultationImage, code: str) -> None:
    image.status = IMAGE_REJECTED
    image.error_code = code[:32]
    image.data = None


def _check_answers(answers: dict) -> None:
    for name, value in answers.items():
        if name in triage.CHOICE_FIELDS and value is not None and value not in triage.CHOICE_FIELDS[name]:
            raise ValidationFailed(
                f"Unknown {name}.", {"form": {name: [f"Must be one of {triage.CHOICE_FIELDS[name]}."]}}
            )
        if name == "age_group" and value is not None and value not in triage.rules().age_groups:
            raise ValidationFailed("Unknown age_group.", {"form": {name: ["Unknown age group."]}})
        if name == "red_flags" and value is not None and not set(value) <= set(triage.RED_FLAGS):
            raise ValidationFailed("Unknown red flag.", {"form": {name: [f"Each must be one of {triage.RED_FLAGS}."]}})


def create_from_upload(actor, data: bytes, answers: dict, *, with_analysis: bool = False):
    """A consultation from an uploaded photo (REST): checked by its header and stored without its metadata now;
    decoded, stored as a clean JPEG and analysed by the job.

    Nothing here decodes a pixel (:func:`app.services.images.prepare_upload`): a small file that decodes to hundreds
    of megabytes costs the request microseconds; the worker decodes it within ``IMAGE_DECODE_MAX_BYTES``.

    Args:
        actor: a pharmacist or admin.
        data: the uploaded file.
        answers: optional answers (``ANSWER_FIELDS``).
        with_analysis: also create the photo's :class:`Analysis` row now (``POST /analysis/skin`` answers its id).

    Returns:
        ``(consultation, image, analysis)``; ``analysis`` is ``None`` unless ``with_analysis``.

    Raises:
        PhotoRejected: not an accepted photo (415, 413 or 422), nothing stored.
    """
    if actor.role not in CONSULTING_ROLES:
        raise Forbidden("Only pharmacists and admins make consultations.")
    _check_answers(answers)
    upload = _prepared(data)
    consultation = Consultation(user_id=actor.user_id, channel="api", status=STATUS_COLLECTING,
                                **{k: v for k, v in answers.items() if k in ANSWER_FIELDS})  # fmt: skip
    if answers.get("photo_consent") is not None:
        consultation.photo_consent, consultation.photo_consent_at = answers["photo_consent"], utcnow()
    db.session.add(consultation)
    db.session.flush()
    # Pending until the job decodes it: the original file, its metadata (EXIF with GPS ...) already taken out.
    image = ConsultationImage(consultation_id=consultation.id, position=0, provider="api", status=IMAGE_PENDING,
                              data=upload.data, source_format=upload.source_format,
                              source_bytes=upload.source_bytes)  # fmt: skip
    db.session.add(image)
    db.session.flush()
    analysis = None
    if with_analysis:
        analysis = Analysis(consultation_id=consultation.id, image_id=image.id, status=ANALYSIS_QUEUED)
        db.session.add(analysis)
    queue_analysis(consultation)
    audit.record(actor, "consultation.create", "consultation", consultation.id)
    db.session.commit()
    return consultation, image, analysis


def list_consultations(actor, *, page: int, per_page: int, status: str | None = None):
    """Newest first; pharmacists see their own."""
    stmt = select(Consultation).order_by(Consultation.created_at.desc(), Consultation.id)
    if not actor.is_admin:
        stmt = stmt.where(Consultation.user_id == actor.user_id)
    if status:
        stmt = stmt.where(Consultation.status == status)
    result = db.paginate(stmt, page=page, per_page=per_page, error_out=False)
    audit.record(actor, "consultation.list", "consultation", None, {"count": len(result.items)})
    db.session.commit()
    return result


def read(actor, consultation_id: uuid.UUID) -> dict:
    """One consultation with its photos' facts, analyses and recommendation (audited)."""
    consultation = _owned(actor, consultation_id)
    audit.record(actor, "consultation.read", "consultation", consultation.id)
    db.session.commit()
    return detail(consultation, actor)


def detail(consultation: Consultation, actor) -> dict:
    analyses = db.session.scalars(
        select(Analysis).where(Analysis.consultation_id == consultation.id).order_by(Analysis.created_at)
    ).all()
    recommendation = db.session.scalar(select(Recommendation).where(Recommendation.consultation_id == consultation.id))
    body = {name: getattr(consultation, name) for name in ("id", "user_id", "channel", "status", "created_at",
                                                           "updated_at", "completed_at", *ANSWER_FIELDS)}  # fmt: skip
    body["images"] = [_image_body(image) for image in consultation.images]
    body["analyses"] = [analysis_body(analysis, actor) for analysis in analyses]
    body["recommendation"] = recommendation
    body["retake"] = retake_request(consultation.images)
    for name in ("photo_consent", "follow_up_at", "follow_up_sent_at", "outcome", "outcome_at", "reopened_at"):
        body[name] = getattr(consultation, name)
    body["reviews"] = reviews.reviews_of(consultation)
    return body


def _image_body(image: ConsultationImage) -> dict:
    return {name: getattr(image, name) for name in ("id", "position", "status", "content_type", "width", "height",
                                                    "source_format", "source_bytes", "stored_bytes", "ssim",
                                                    "quality_ok", "quality_problems", "error_code")}  # fmt: skip


def retake_request(images) -> dict | None:
    """``{"problems", "message"}`` when no stored photo is of good quality (the chat reply says the same)."""
    stored = [image for image in images if image.status == IMAGE_STORED]
    if stored and any(image.quality_ok for image in stored):
        return None
    problems = sorted({p for image in stored for p in image.quality_problems})
    if not stored and not any(image.status == IMAGE_REJECTED for image in images):
        return None  # nothing processed yet
    tips = " ".join(t(f"skin_tip_{problem}", "en") for problem in problems)
    return {"problems": problems, "message": t("skin_result_retake", "en", tips=tips).strip()}


def update_consultation(actor, consultation_id: uuid.UUID, answers: dict) -> dict:
    """Change answers; a consultation already analysed is triaged again (a new recommendation, no new reply)."""
    consultation = _owned(actor, consultation_id)
    answers = dict(answers)
    consent = answers.pop("photo_consent", None)
    _check_answers(answers)
    for name, value in answers.items():
        record_answer(consultation, name, value)
    if consent is not None:
        consultation.photo_consent, consultation.photo_consent_at = consent, utcnow()
    if consultation.status == STATUS_COMPLETED:
        recommendation = skin_advice.recommend(consultation, replace=True)
        reviews.queue_by_level(consultation, recommendation)  # answers that now say clinic_today or urgent
    fields = sorted([*answers, *(["photo_consent"] if consent is not None else [])])
    audit.record(actor, "consultation.update", "consultation", consultation.id, {"fields": fields})
    db.session.commit()
    return detail(consultation, actor)


def analysis_body(analysis: Analysis, actor) -> dict:
    """An analysis as the API shows it: while the model is not validated, its labels only to admins."""
    show = bool(analysis.model_validated) or getattr(actor, "is_admin", False)
    return {"id": analysis.id, "consultation_id": analysis.consultation_id, "image_id": analysis.image_id,
            "status": analysis.status, "model_name": analysis.model_name, "model_version": analysis.model_version,
            "model_validated": analysis.model_validated, "model_sha256": analysis.model_sha256,
            "top": analysis.top if show else [], "output": analysis.output, "quality": analysis.quality, "timings_ms": analysis.timings_ms, "error_code": analysis.error_code,
            "created_at": analysis.created_at, "updated_at": analysis.updated_at}  # fmt: skip


def read_analysis(actor, analysis_id: uuid.UUID) -> dict:
    analysis = db.session.get(Analysis, analysis_id)
    if analysis is None:
        raise NotFound("No analysis with this id.")
    _owned(actor, analysis.consultation_id)
    audit.record(actor, "analysis.read", "analysis", analysis.id)
    db.session.commit()
    return analysis_body(analysis, actor)


# --- triage guidelines ------------------------------------------------------------------------------------------


def seed_guidelines() -> int:
    """Mirror the rules file into ``triage_guidelines`` (insert, update, and drop rules no longer in the file)."""
    data = triage.rules()
    existing = {row.code: row for row in db.session.scalars(select(TriageGuideline))}
    entries = [(f"condition:{c.id}", "condition", c.title, [c.id], {}, c.level,
                [c.reason or f"triage_reason_base_{c.level}"], list(c.sources), c.evidence,
                {"withhold": [], "advice": list(dict.fromkeys(key for key in (c.advice, c.referral_advice) if key))})
               for c in data.conditions.values()]  # fmt: skip
    entries += [(r.id, "red_flag", r.title, list(r.conditions), dict(r.when), r.level, list(r.reasons),
                 list(r.sources), r.evidence, {"withhold": list(r.withhold), "advice": list(r.advice)})
                for r in data.rules]  # fmt: skip
    changed = 0
    for code, kind, title, conditions, when, level, reasons, sources, evidence, effects in entries:
        values = {"kind": kind, "title": title, "conditions": conditions, "when": when, "level": level,
                  "reasons": reasons, "sources": sources, "evidence": evidence, "verified": evidence != "U",
                  "effects": effects}  # fmt: skip
        row = existing.pop(code, None)
        if row is None:
            db.session.add(TriageGuideline(code=code, **values))
            changed += 1
        elif any(getattr(row, k) != v for k, v in values.items()):
            for k, v in values.items():
                setattr(row, k, v)
            changed += 1
    for row in existing.values():
        db.session.delete(row)
        changed += 1
    db.session.flush()
    return changed


def guidelines(*, kind: str | None = None, level: str | None = None) -> list[TriageGuideline]:
    data = triage.rules()
    expected = {f"condition:{c}" for c in data.conditions} | {rule.id for rule in data.rules}
    if set(db.session.scalars(select(TriageGuideline.code))) != expected:
        seed_guidelines()  # a fresh database, or a rules file with new rules, before ``flask seed-clinical``
        db.session.commit()
    stmt = select(TriageGuideline).order_by(TriageGuideline.kind, TriageGuideline.code)
    if kind:
        stmt = stmt.where(TriageGuideline.kind == kind)
    if level:
        stmt = stmt.where(TriageGuideline.level == level)
    return list(db.session.scalars(stmt))
