"""Retention covers second opinions: the pharmacist's note and the clinician's advice go with the photos once older
than ``MESSAGE_RETENTION_DAYS``; the labels (diagnosis, levels, confidence) stay, and an export finds no photo."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.extensions import db
from app.models import ConsultationImage, ReviewRequest
from app.services import reviews
from app.services.retention import erase_expired
from app.services.review_export import labelled
from tests.conftest import make_user
from tests.factories import make_triaged
from tests.services.test_retention import DAYS, NOW, OLD, RECENT


@pytest.fixture
def app(shared_app):
    application = shared_app(MESSAGE_RETENTION_DAYS=DAYS)
    with application.app_context():
        yield application
        db.session.remove()


def _review(created_at, pharmacist) -> ReviewRequest:
    consultation = make_triaged(pharmacist, consent=True)
    consultation.created_at = created_at
    db.session.query(ConsultationImage).filter_by(consultation_id=consultation.id).update({"created_at": created_at})
    review, _ = reviews.open_review(consultation, reason="requested", by=pharmacist.id, note="Lives with her aunt.")
    review.created_at = created_at
    review.status, review.answered_at, review.diagnosis, review.condition = "answered", created_at, "scabies", "scabies"
    review.level, review.advice, review.confidence = "pharmacy", "Treat the whole household.", "confirmed"
    db.session.commit()
    return review


def test_old_review_notes_and_advice_are_erased_and_the_labels_stay(app):
    pharmacist = make_user("pharmacist", phone="+233241000088")
    old, recent = _review(OLD, pharmacist), _review(RECENT, pharmacist)
    assert len(labelled()) == 2
    counts = erase_expired(now=NOW)
    assert counts["reviews"] == 1 and counts["photos"] == 1
    db.session.expire_all()
    erased, kept = db.session.get(ReviewRequest, old.id), db.session.get(ReviewRequest, recent.id)
    assert (erased.note, erased.advice) == (None, None)
    assert (erased.diagnosis, erased.level, erased.confidence) == ("scabies", "pharmacy", "confirmed")
    assert kept.note == "Lives with her aunt." and kept.advice == "Treat the whole household."
    assert erase_expired(now=NOW + timedelta(seconds=1))["reviews"] == 0  # idempotent
