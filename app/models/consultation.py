"""Skin consultations: a pharmacist's photos and answers, the model's analysis, and the triage recommendation.

Photos are stored in the database (``LargeBinary``) so web and workers on different machines see the same bytes
and erasing a consultation removes them in the same transaction. No EXIF, no GPS is ever stored: a processed photo
is a re-encoded JPEG, and a REST upload waiting for the worker is its original file with the metadata taken out.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from app.models.base import Base, Timestamps, UUIDPrimaryKey, utcnow
from app.models.channel import CHAT_CHANNELS

# Consultation lifecycle.
STATUS_COLLECTING = "collecting"  # photos in, questions still being answered (chat)
STATUS_QUEUED = "queued"  # every answer in; the analysis job is enqueued
STATUS_COMPLETED = "completed"  # analysed, recommendation written, reply queued
STATUS_FAILED = "failed"  # the analysis gave up (no usable photo, model error); the pharmacist was told
STATUS_CANCELLED = "cancelled"  # the pharmacist stopped it before the last answer
STATUSES = (STATUS_COLLECTING, STATUS_QUEUED, STATUS_COMPLETED, STATUS_FAILED, STATUS_CANCELLED)

CONSULTATION_CHANNELS = (*CHAT_CHANNELS, "api")

# Image lifecycle.
IMAGE_PENDING = "pending"  # not processed yet: a chat photo to download, or an upload (as sent, metadata out)
IMAGE_STORED = "stored"  # processed and stored (data is set)
IMAGE_REJECTED = "rejected"  # not an image we accept (type, size, pixels, ratio, decode budget, unreadable): final
IMAGE_STATUSES = (IMAGE_PENDING, IMAGE_STORED, IMAGE_REJECTED)

# Analysis lifecycle.
ANALYSIS_QUEUED = "queued"  # waiting for the inference worker
ANALYSIS_COMPLETED = "completed"  # model output recorded
ANALYSIS_FAILED = "failed"  # the photo could not be analysed (rejected, model error)
ANALYSIS_STATUSES = (ANALYSIS_QUEUED, ANALYSIS_COMPLETED, ANALYSIS_FAILED)

# Triage levels, mildest first (app/clinical/triage_rules.toml; a higher level always wins).
LEVEL_SELF_CARE = "self_care"  # over-the-counter self-care
LEVEL_PHARMACY = "pharmacy"  # treatment by the pharmacist (an OTC medicine seller sends the patient to one)
LEVEL_CLINIC = "clinic"  # refer to a clinic within 3 days
LEVEL_CLINIC_TODAY = "clinic_today"  # the patient must see a clinician today
LEVEL_URGENT = "urgent"  # hospital now: an emergency
LEVELS = (LEVEL_SELF_CARE, LEVEL_PHARMACY, LEVEL_CLINIC, LEVEL_CLINIC_TODAY, LEVEL_URGENT)

# The follow-up check-in's answers.
OUTCOME_BETTER, OUTCOME_SAME, OUTCOME_WORSE, OUTCOME_CLINIC = "better", "same", "worse", "clinic"
OUTCOMES = (OUTCOME_BETTER, OUTCOME_SAME, OUTCOME_WORSE, OUTCOME_CLINIC)  # "clinic": went to a clinic

AVAILABILITIES = ("otc", "pharmacist", "prescription")  # over the counter, pharmacist only, prescription only


class Consultation(UUIDPrimaryKey, Timestamps, Base):
    """One skin consultation: the answers to the triage questions and the photos (``None``: not answered)."""

    __tablename__ = "consultations"
    __table_args__ = (
        CheckConstraint(f"status IN {STATUSES}", name="status"),
        CheckConstraint(f"channel IN {CONSULTATION_CHANNELS}", name="channel"),
        CheckConstraint("sex IS NULL OR sex IN ('female', 'male')", name="sex"),
        CheckConstraint(f"outcome IS NULL OR outcome IN {OUTCOMES}", name="outcome"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    # Where the reply goes (chat): the contact the photo came from.
    contact_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=STATUS_COLLECTING, index=True)
    condition: Mapped[str | None] = mapped_column(String(32))  # the pharmacist's working impression
    age_group: Mapped[str | None] = mapped_column(String(16))
    sex: Mapped[str | None] = mapped_column(String(8))
    pregnant: Mapped[bool | None] = mapped_column(Boolean)
    body_site: Mapped[str | None] = mapped_column(String(16))
    duration: Mapped[str | None] = mapped_column(String(16))
    itch: Mapped[bool | None] = mapped_column(Boolean)
    pain: Mapped[bool | None] = mapped_column(Boolean)
    spreading: Mapped[bool | None] = mapped_column(Boolean)
    fever: Mapped[bool | None] = mapped_column(Boolean)
    blisters: Mapped[str | None] = mapped_column(String(16))  # none | local | widespread (or peeling)
    mole_change: Mapped[bool | None] = mapped_column(Boolean)  # a changing or bleeding mole
    open_sore: Mapped[str | None] = mapped_column(String(16))  # no | under_2w | 2w_plus
    treatment_failed: Mapped[bool | None] = mapped_column(Boolean)  # treated 2 weeks or more, no better
    # The red-flag screen: the ids ticked (clinical_terms.RED_FLAGS); [] "none of these", None "not asked".
    red_flags: Mapped[list | None] = mapped_column(JSON)
    queued_at: Mapped[datetime | None] = mapped_column()
    completed_at: Mapped[datetime | None] = mapped_column()
    # The patient agreed that the photos may be used to improve the service (asked once in the chat; default no).
    # Only consented photos with a clinician-confirmed diagnosis are ever exported (``flask skin-model``).
    photo_consent: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    photo_consent_at: Mapped[datetime | None] = mapped_column()
    # The check-in "How is the patient?" to the pharmacist's chat: due at, sent at, and the answer (OUTCOMES).
    follow_up_at: Mapped[datetime | None] = mapped_column(index=True)
    follow_up_sent_at: Mapped[datetime | None] = mapped_column()
    outcome: Mapped[str | None] = mapped_column(String(16))
    outcome_at: Mapped[datetime | None] = mapped_column()
    reopened_at: Mapped[datetime | None] = mapped_column()  # the outcome was "worse": a second opinion is offered

    images: Mapped[list[ConsultationImage]] = relationship(
        back_populates="consultation", order_by="ConsultationImage.position", cascade="all, delete-orphan"
    )


class ConsultationImage(UUIDPrimaryKey, Timestamps, Base):
    """One photo of a consultation: where to fetch it (chat) and, once processed, the stored JPEG."""

    __tablename__ = "consultation_images"
    __table_args__ = (
        CheckConstraint(f"status IN {IMAGE_STATUSES}", name="status"),
        UniqueConstraint("consultation_id", "position"),
    )

    consultation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consultations.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=IMAGE_PENDING)
    provider: Mapped[str | None] = mapped_column(String(32))
    media: Mapped[dict] = mapped_column(JSON, default=dict)  # {"content_type", "url", "provider_media_id"}
    message_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    data: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    content_type: Mapped[str | None] = mapped_column(String(32))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    source_format: Mapped[str | None] = mapped_column(String(8))
    source_bytes: Mapped[int | None] = mapped_column(Integer)
    stored_bytes: Mapped[int | None] = mapped_column(Integer)
    ssim: Mapped[float | None] = mapped_column(Float)
    quality_ok: Mapped[bool | None] = mapped_column(Boolean)
    quality_problems: Mapped[list] = mapped_column(JSON, default=list)
    quality_measures: Mapped[dict] = mapped_column(JSON, default=dict)
    timings_ms: Mapped[dict] = mapped_column(JSON, default=dict)
    error_code: Mapped[str | None] = mapped_column(String(32))

    consultation: Mapped[Consultation] = relationship(back_populates="images")


class Analysis(UUIDPrimaryKey, Timestamps, Base):
    """The model's output for one photo. Recorded even while the model is not validated (then never shown)."""

    __tablename__ = "analyses"
    __table_args__ = (CheckConstraint(f"status IN {ANALYSIS_STATUSES}", name="status"),)

    consultation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consultations.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consultation_images.id", ondelete="CASCADE"), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=ANALYSIS_QUEUED)
    model_name: Mapped[str | None] = mapped_column(String(100))
    model_version: Mapped[str | None] = mapped_column(String(50))
    model_validated: Mapped[bool | None] = mapped_column(Boolean)  # a sign-off existed for the model at the time
    model_sha256: Mapped[str | None] = mapped_column(String(64))  # the model file's checksum
    top: Mapped[list] = mapped_column(JSON, default=list)  # [[label, probability], ...] highest first
    output: Mapped[dict | None] = mapped_column(JSON)  # a feature extractor's summary: {"kind", "size", "l2", ...}
    quality: Mapped[dict] = mapped_column(JSON, default=dict)  # {"ok", "problems", "measures"}
    timings_ms: Mapped[dict] = mapped_column(JSON, default=dict)
    error_code: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(String(500))


class SkinModelValidation(UUIDPrimaryKey, Base):
    """A clinical sign-off of one skin model file (``flask skin-model validate``): the only thing that lets a reply
    show a model's label. Keyed by the model file's sha256, so a changed file or a hand-edited manifest is not
    validated; the labels are kept so that a manifest whose labels were reordered is not either."""

    __tablename__ = "skin_model_validations"

    model_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    model_name: Mapped[str] = mapped_column(String(100))
    model_version: Mapped[str] = mapped_column(String(50))
    labels: Mapped[list] = mapped_column(JSON)
    signed_off_by: Mapped[str] = mapped_column(String(200))
    signed_off_at: Mapped[datetime] = mapped_column(default=utcnow)
    thresholds_sha256: Mapped[str] = mapped_column(String(64))  # the model_thresholds.toml the gate applied
    summary: Mapped[dict] = mapped_column(JSON, default=dict)  # what the gate checked: per-class n and bounds


class Recommendation(UUIDPrimaryKey, Base):
    """The triage answer to a consultation: level, why, medicines, advice. One per consultation."""

    __tablename__ = "recommendations"
    __table_args__ = (CheckConstraint(f"level IN {LEVELS}", name="level"),)

    consultation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consultations.id", ondelete="CASCADE"), unique=True)
    level: Mapped[str] = mapped_column(String(16))
    rule_ids: Mapped[list] = mapped_column(JSON, default=list)  # the triage rules that fired
    reasons: Mapped[list] = mapped_column(JSON, default=list)  # catalog keys
    medication_ids: Mapped[list] = mapped_column(JSON, default=list)  # Medication.id values (strings)
    advice: Mapped[str] = mapped_column(Text, default="")  # the reply as sent (English or Setswana)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Medication(UUIDPrimaryKey, Timestamps, Base):
    """A formulary entry (app/clinical/formulary.toml). ``ghana_class`` stays ``unknown`` until confirmed."""

    __tablename__ = "medications"
    __table_args__ = (
        CheckConstraint(f"availability IN {AVAILABILITIES}", name="availability"),
        CheckConstraint("ghana_class IN ('A', 'B', 'C', 'unknown')", name="ghana_class"),
    )

    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    generic_name: Mapped[str] = mapped_column(String(200))
    form: Mapped[str] = mapped_column(String(64))
    strength: Mapped[str] = mapped_column(String(64))
    availability: Mapped[str] = mapped_column(String(16))
    ghana_class: Mapped[str] = mapped_column(String(8), default="unknown")
    eml_level: Mapped[str | None] = mapped_column(String(8))
    indications: Mapped[list] = mapped_column(JSON, default=list)  # condition ids
    indication_text: Mapped[str] = mapped_column(Text, default="")
    contraindications: Mapped[dict] = mapped_column(JSON, default=dict)
    pregnancy_ok: Mapped[bool] = mapped_column(Boolean, default=False)
    min_age_months: Mapped[int | None] = mapped_column(Integer)
    dose_guidance: Mapped[str] = mapped_column(Text, default="")
    sources: Mapped[list] = mapped_column(JSON, default=list)
    verified: Mapped[bool] = mapped_column(Boolean, default=False)


class TriageGuideline(UUIDPrimaryKey, Timestamps, Base):
    """A triage rule as the API shows it: a copy of one entry of app/clinical/triage_rules.toml."""

    __tablename__ = "triage_guidelines"

    code: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # red_flag | condition
    title: Mapped[str] = mapped_column(String(300))
    conditions: Mapped[list] = mapped_column(JSON, default=list)
    when: Mapped[dict] = mapped_column(JSON, default=dict)
    level: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[list] = mapped_column(JSON, default=list)
    sources: Mapped[list] = mapped_column(JSON, default=list)
    evidence: Mapped[str] = mapped_column(String(4))  # P | S | U, as docs/clinical-facts.md labels it
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    # What a rule does besides the level: {"withhold": [medicine groups], "advice": [catalog keys]}.
    effects: Mapped[dict] = mapped_column(JSON, default=dict)


class ChatLinkCode(UUIDPrimaryKey, Base):
    """A one-time code that links a chat account to a pharmacist's account; only its HMAC is stored."""

    __tablename__ = "chat_link_codes"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()
