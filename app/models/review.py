"""Second opinions: a clinician's review of a skin consultation, requested by the pharmacist or by the triage level.

A request waits ``open`` in the review queue until a clinician answers it: a diagnosis (a condition id of
app/clinical/triage_rules.toml, or free text with an optional ICD-10 code), the level the clinician sets beside the
rules' level (kept as ``rules_level``), advice and a confidence. The answer goes once to the pharmacist's chat. A
consultation has at most one open request at a time (a "worse" follow-up may open another after an answer).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, Timestamps, UUIDPrimaryKey
from app.models.consultation import LEVELS

# Review lifecycle.
REVIEW_OPEN = "open"  # in the queue, waiting for a clinician
REVIEW_ANSWERED = "answered"  # a clinician answered; the answer was queued to the pharmacist's chat
REVIEW_STATUSES = (REVIEW_OPEN, REVIEW_ANSWERED)

# Why it is in the queue.
REASON_REQUESTED = "requested"  # the pharmacist asked (chat button or REST)
REASON_LEVEL = "level"  # the rules said clinic_today or urgent: queued on its own
REASON_WORSE = "worse"  # the follow-up said worse and the pharmacist asked again
REASONS = (REASON_REQUESTED, REASON_LEVEL, REASON_WORSE)

CONFIDENCES = ("confirmed", "likely", "unsure")
CONFIRMED = "confirmed"


class ReviewRequest(UUIDPrimaryKey, Timestamps, Base):
    """One request for a clinician's second opinion on a consultation, and the answer."""

    __tablename__ = "review_requests"
    __table_args__ = (
        CheckConstraint(f"status IN {REVIEW_STATUSES}", name="status"),
        CheckConstraint(f"reason IN {REASONS}", name="reason"),
        CheckConstraint(f"rules_level IN {LEVELS}", name="rules_level"),
        CheckConstraint(f"level IS NULL OR level IN {LEVELS}", name="level"),
        CheckConstraint(f"confidence IS NULL OR confidence IN {CONFIDENCES}", name="confidence"),
    )

    consultation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consultations.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=REVIEW_OPEN, index=True)
    reason: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    note: Mapped[str | None] = mapped_column(Text)  # the pharmacist's note (erased with the photos by retention)
    rules_level: Mapped[str] = mapped_column(String(16))  # the triage rules' level when it was requested
    requested_at: Mapped[datetime] = mapped_column()
    due_at: Mapped[datetime] = mapped_column(index=True)  # requested_at + the level's target
    overdue_alerted_at: Mapped[datetime | None] = mapped_column()  # the overdue alert went out (once)
    answered_at: Mapped[datetime | None] = mapped_column()
    answered_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    diagnosis: Mapped[str | None] = mapped_column(String(200))  # a condition id or free text
    condition: Mapped[str | None] = mapped_column(String(32))  # the diagnosis when it is a condition id (a label)
    icd10: Mapped[str | None] = mapped_column(String(8))
    level: Mapped[str | None] = mapped_column(String(16))  # the clinician's level, beside rules_level
    advice: Mapped[str | None] = mapped_column(Text)  # erased with the photos by retention
    confidence: Mapped[str | None] = mapped_column(String(16))
