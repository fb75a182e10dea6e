"""Second opinions in the chat, end to end: a photo triaged urgent enters the queue on its own, a clinician answers
through the API, the pharmacist's chat gets the answer once; "Ask a clinician", the note, photo consent, and the
follow-up check-in with its buttons, typed numbers and "Worse"."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.i18n import t
from app.models import AuditLog, Consultation, Message, ReviewRequest, utcnow
from app.models.consultation import OUTCOME_WORSE, STATUS_COMPLETED
from app.models.message_log import DIRECTION_OUT
from app.services import follow_ups, reviews, skin_analysis
from tests.conftest import bearer, make_user
from tests.factories import make_triaged, sign_in
from tests.flows import contact, conversation
from tests.flows.test_skin import ADULT_ANSWERS, CHAT_ID, consultation_of, linked_chat, send
from tests.photos import encode, sample_photo

# Typed "2": the screen's second sign, swelling of the lips, tongue or throat (airway): urgent.
URGENT = [(field, "2" if field == "red_flags" else answer) for field, answer in ADULT_ANSWERS]


@pytest.fixture
def pharmacist(app):
    return make_user("pharmacist", phone="+233241000002")


@pytest.fixture
def clinician(app, pharmacist):
    user = make_user("clinician", phone="+233209000001")
    reviews.set_pharmacies(user, [pharmacist.id])
    db.session.commit()
    return user


def _answered_chat(pharmacist, answers=ADULT_ANSWERS, monkeypatch=None) -> Consultation:
    """A chat consultation: photo, every answer, then the analysis job run here on a real photo."""
    linked_chat(pharmacist)
    send("telegram", CHAT_ID, photo=True)
    for _, answer in answers:
        replies = send("telegram", CHAT_ID, answer)
    assert "checking the photo" in replies[-1].text
    consultation = consultation_of(CHAT_ID)
    photo = encode(sample_photo(800, 600), "JPEG", quality=90)
    assert skin_analysis.analyse_consultation(str(consultation.id), fetch=lambda image: photo) == "done"
    db.session.expire_all()
    return db.session.get(Consultation, consultation.id)


def _to_chat() -> list[Message]:
    db.session.expire_all()
    return db.session.scalars(select(Message).where(Message.address == CHAT_ID, Message.direction == DIRECTION_OUT)
                              .order_by(Message.created_at)).all()  # fmt: skip


def test_an_urgent_photo_enters_the_queue_and_the_answer_reaches_the_chat_once(app, client, pharmacist, clinician,
                                                                               monkeypatch):  # fmt: skip
    monkeypatch.setattr("app.services.consultations.enqueue_analysis", lambda _id: None)
    consultation = _answered_chat(pharmacist, URGENT)
    assert consultation.status == STATUS_COMPLETED
    review = db.session.scalar(select(ReviewRequest).where(ReviewRequest.consultation_id == consultation.id))
    assert (review.status, review.reason, review.rules_level) == ("open", "level", "urgent")
    assert "sent to a clinician" in _to_chat()[-1].text  # told at once, no button to press

    token = sign_in(app, clinician)["access_token"]
    queue = client.get("/api/v1/reviews", headers=bearer(token)).get_json()
    assert [item["id"] for item in queue["items"]] == [str(review.id)]
    assert queue["items"][0]["target_minutes"] == 60 and queue["items"][0]["overdue"] is False

    body = {"diagnosis": "angioedema", "icd10": "T78.3", "level": "urgent", "advice": "Hospital now; adrenaline.",
            "confidence": "likely"}  # fmt: skip
    before = len(_to_chat())
    first = client.post(f"/api/v1/reviews/{review.id}/answer", json=body, headers=bearer(token))
    assert first.status_code == 200, first.get_json()
    assert first.get_json()["sent"] is True and first.get_json()["level_change"] == "same"
    again = client.post(f"/api/v1/reviews/{review.id}/answer", json={**body, "advice": "changed"},
                        headers=bearer(token))  # fmt: skip
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "already_answered"
    sent = _to_chat()[before:]
    assert len(sent) == 1, [m.text for m in sent]
    assert "a clinician answered" in sent[0].text and "Hospital now; adrenaline." in sent[0].text
    assert "angioedema (T78.3)" in sent[0].text and sent[0].dedupe_key == f"review-answer:{review.id}"
    # The job retried: the same key writes nothing new.
    reviews.send_answer(db.session.get(ReviewRequest, review.id), consultation)
    db.session.commit()
    assert len(_to_chat()[before:]) == 1
    audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "review.answer"))
    assert audit.actor_id == clinician.id and audit.details["rules_level"] == "urgent"


def test_the_answer_is_in_setswana_for_a_setswana_chat_and_shows_a_raised_level(app, client, pharmacist, clinician):
    chat = contact_for_chat(pharmacist, language="tn")
    consultation = make_triaged(pharmacist, level="pharmacy", channel="telegram", contact_id=chat.id)
    review, _ = reviews.open_review(consultation, reason="requested", by=pharmacist.id)
    db.session.commit()
    response = client.post(f"/api/v1/reviews/{review.id}/answer", headers=bearer(sign_in(app, clinician)["access_token"]),
                           json={"diagnosis": "impetigo", "level": "clinic_today", "advice": "Antibiotics.",
                                 "confidence": "confirmed"})  # fmt: skip
    assert response.status_code == 200 and response.get_json()["level_change"] == "raised"
    message = _to_chat()[-1]
    assert message.language == "tn"
    assert message.text.startswith("Thusa: ngaka e arabile")
    assert (
        t(
            "review_level_raised",
            "tn",
            level=t("review_level_name_clinic_today", "tn"),
            rules_level=t("review_level_name_pharmacy", "tn"),
        )
        in message.text
    )
    stored = db.session.get(ReviewRequest, review.id)
    assert (stored.rules_level, stored.level, stored.condition) == ("pharmacy", "clinic_today", "impetigo")


def contact_for_chat(pharmacist, language: str | None = None):
    linked_chat(pharmacist)
    row = contact(CHAT_ID)
    row.language = language
    db.session.commit()
    return row


def test_ask_a_clinician_then_a_note_then_the_consent(pharmacist, clinician, monkeypatch):
    monkeypatch.setattr("app.services.consultations.enqueue_analysis", lambda _id: None)
    consultation = _answered_chat(pharmacist)
    offer = _to_chat()[-1]
    assert "second opinion" in offer.text
    assert offer.buttons == [{"id": f"skin:review:{consultation.id}", "title": "Ask a clinician"}]
    assert db.session.scalar(select(func.count()).select_from(ReviewRequest)) == 0  # pharmacy level: offered only

    replies = send("telegram", CHAT_ID, "1")  # typed: the offer's only button
    assert "will review this consultation" in replies[-1].text and "24 hour" in replies[-1].text
    review = db.session.scalar(select(ReviewRequest))
    assert (review.reason, review.requested_by) == ("requested", pharmacist.id)
    replies = send("telegram", CHAT_ID, "The rash is on both arms now.")
    assert replies[-1].text == t("review_note_added", "en")
    db.session.expire_all()
    assert db.session.get(ReviewRequest, review.id).note == "The rash is on both arms now."
    # Pressed again: the same request, no second one.
    replies = send("telegram", CHAT_ID, extra={"callback_data": f"skin:review:{consultation.id}"})
    assert "already been asked" in replies[-1].text
    assert db.session.scalar(select(func.count()).select_from(ReviewRequest)) == 1

    # The consent question rode on the "checking the photo" reply; its button answers it any time, and so does its
    # title typed, though a newer message has buttons of its own.
    replies = send("telegram", CHAT_ID, extra={"callback_data": f"skin:consent:{consultation.id}:no"})
    assert replies[-1].text == t("skin_consent_no", "en")
    assert consultation.photo_consent is False
    replies = send("telegram", CHAT_ID, "yes")
    assert replies[-1].text == t("skin_consent_yes", "en")
    db.session.expire_all()
    assert db.session.get(Consultation, consultation.id).photo_consent is True


def test_the_consent_question_is_asked_once_with_the_analysing_reply(pharmacist, monkeypatch):
    monkeypatch.setattr("app.services.consultations.enqueue_analysis", lambda _id: None)
    linked_chat(pharmacist)
    send("telegram", CHAT_ID, photo=True)
    for _, answer in ADULT_ANSWERS:
        replies = send("telegram", CHAT_ID, answer)
    consultation = consultation_of(CHAT_ID)
    assert t("skin_consent_question", "en") in replies[-1].text
    assert [b["id"] for b in replies[-1].buttons] == [f"skin:consent:{consultation.id}:yes",
                                                     f"skin:consent:{consultation.id}:no"]  # fmt: skip
    replies = send("telegram", CHAT_ID, "2")  # typed "No"
    assert replies[-1].text == t("skin_consent_no", "en")
    asked = sum(t("skin_consent_question", "en") in (m.text or "") for m in _to_chat())
    assert asked == 1 and consultation_of(CHAT_ID).photo_consent is False


def test_another_pharmacist_cannot_ask_about_or_answer_for_someone_elses_consultation(pharmacist):
    other = make_user("pharmacist", phone="+233241999999")
    theirs = make_triaged(other)
    linked_chat(pharmacist)
    for data in (f"skin:review:{theirs.id}", f"skin:consent:{theirs.id}:yes", f"skin:outcome:{theirs.id}:worse",
                 "skin:review:not-a-uuid"):  # fmt: skip
        replies = send("telegram", CHAT_ID, extra={"callback_data": data})
        assert replies[-1].text == t("review_not_found", "en"), data
    db.session.expire_all()
    stored = db.session.get(Consultation, theirs.id)
    assert (stored.photo_consent, stored.outcome) == (False, None)
    assert db.session.scalar(select(func.count()).select_from(ReviewRequest)) == 0


@pytest.mark.both_backends
def test_the_check_in_arrives_once_and_worse_reopens_the_case(app, pharmacist, clinician, monkeypatch):
    monkeypatch.setattr("app.services.consultations.enqueue_analysis", lambda _id: None)
    app.config["FOLLOW_UP_MINUTES_SELF_CARE"] = 1
    app.config["FOLLOW_UP_MINUTES_REFERRED"] = 1
    consultation = _answered_chat(pharmacist)
    assert consultation.follow_up_at == consultation.completed_at + timedelta(minutes=1)
    assert follow_ups.send_due(utcnow()) == {"sent": 0, "skipped": 0}  # not due yet
    later = utcnow() + timedelta(minutes=2)
    assert follow_ups.send_due(later) == {"sent": 1, "skipped": 0}
    assert follow_ups.send_due(later + timedelta(minutes=1)) == {"sent": 0, "skipped": 0}  # once
    check_in = [m for m in _to_chat() if m.dedupe_key == f"follow-up:{consultation.id}"]
    assert len(check_in) == 1 and "how is the patient" in check_in[0].text.lower()
    assert [b["title"] for b in check_in[0].buttons] == ["Better", "Same", "Worse", "Went to clinic"]

    replies = send("telegram", CHAT_ID, "3")  # typed: the third option, Worse
    db.session.expire_all()
    stored = db.session.get(Consultation, consultation.id)
    assert stored.outcome == OUTCOME_WORSE and stored.reopened_at is not None
    assert "open again" in replies[-1].text
    assert [b["id"] for b in replies[-1].buttons] == [f"skin:review:{consultation.id}"]
    replies = send("telegram", CHAT_ID, extra={"callback_data": replies[-1].buttons[0]["id"]})
    assert "will review this consultation" in replies[-1].text
    assert conversation(CHAT_ID, "telegram").state.get("noting")
    assert db.session.scalar(select(ReviewRequest.reason)) == "worse"


def test_an_urgent_case_with_no_clinician_covering_it_says_so(pharmacist, monkeypatch):
    monkeypatch.setattr("app.services.consultations.enqueue_analysis", lambda _id: None)
    _answered_chat(pharmacist, URGENT)
    assert _to_chat()[-1].text == t("review_unstaffed", "en")
    assert db.session.scalar(select(ReviewRequest.status)) == "open"  # queued all the same


def test_a_photo_while_a_note_is_awaited_starts_a_new_consultation(pharmacist, clinician):
    chat = contact_for_chat(pharmacist)
    consultation = make_triaged(pharmacist, channel="telegram", contact_id=chat.id)
    send("telegram", CHAT_ID, extra={"callback_data": f"skin:review:{consultation.id}"})
    replies = send("telegram", CHAT_ID, photo=True)
    assert "Question 1" in replies[-1].text
    assert consultation_of(CHAT_ID).id != consultation.id


def test_without_a_clinician_the_pharmacist_hears_the_answer_may_be_late(pharmacist):
    chat = contact_for_chat(pharmacist)
    consultation = make_triaged(pharmacist, channel="telegram", contact_id=chat.id)
    replies = send("telegram", CHAT_ID, extra={"callback_data": f"skin:review:{consultation.id}"})
    assert replies[-1].text == t("review_unstaffed", "en")
    assert db.session.scalar(select(func.count()).select_from(ReviewRequest)) == 1  # still queued
