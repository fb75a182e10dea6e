"""The review queue over REST: who sees which consultation, the order, answers once, photo links that expire,
bad input, clinician accounts, overdue alerts and the outcome report."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditLog, ClinicianPharmacy, Message, ReviewRequest, User, utcnow
from app.models.message_log import DIRECTION_OUT
from app.services import reviews
from tests.conftest import bearer, make_user
from tests.factories import make_triaged, sign_in

ANSWER = {"diagnosis": "eczema", "icd10": "L30.9", "level": "pharmacy", "advice": "Emollient twice a day.",
          "confidence": "confirmed"}  # fmt: skip


@pytest.fixture
def world(app):
    """Two pharmacies (pharmacist accounts) A and B; a clinician for A, one for every pharmacy; a review of each."""
    pharmacist_a = make_user("pharmacist", phone="+233241000011")
    pharmacist_b = make_user("pharmacist", phone="+233241000012")
    clinician_a = make_user("clinician", phone="+233209000011")
    clinician_all = make_user("clinician", phone="+233209000012")
    clinician_all.all_pharmacies = True
    reviews.set_pharmacies(clinician_a, [pharmacist_a.id])
    db.session.commit()
    a, b = make_triaged(pharmacist_a, level="urgent"), make_triaged(pharmacist_b, level="clinic")
    review_a, _ = reviews.open_review(a, reason="level", by=None)
    review_b, _ = reviews.open_review(b, reason="requested", by=pharmacist_b.id, note="please look")
    db.session.commit()
    tokens = {name: sign_in(app, user)["access_token"] for name, user in
              {"a": pharmacist_a, "b": pharmacist_b, "clinician_a": clinician_a, "clinician_all": clinician_all}.items()}  # fmt: skip
    return {"pharmacist_a": pharmacist_a, "pharmacist_b": pharmacist_b, "clinician_a": clinician_a,
            "clinician_all": clinician_all, "a": a, "b": b, "review_a": review_a, "review_b": review_b,
            "tokens": tokens}  # fmt: skip


def _get(client, path, token):
    return client.get(path, headers=bearer(token))


def test_a_clinician_tied_to_pharmacy_a_sees_and_answers_only_as_consultations(client, world):
    token = world["tokens"]["clinician_a"]
    items = _get(client, "/api/v1/reviews", token).get_json()["items"]
    assert [item["id"] for item in items] == [str(world["review_a"].id)]
    assert _get(client, f"/api/v1/reviews/{world['review_b'].id}", token).status_code == 404
    response = client.post(f"/api/v1/reviews/{world['review_b'].id}/answer", json=ANSWER, headers=bearer(token))
    assert response.status_code == 404
    assert db.session.get(ReviewRequest, world["review_b"].id).status == "open"
    # And no signed link to B's photo works for them, even one made by hand for their account.
    image = world["b"].images[0]
    from app.security import Actor

    url = reviews.photo_url(Actor(world["clinician_a"].id, "clinician", None, None), image)
    assert client.get(url).status_code == 404


@pytest.mark.both_backends
def test_a_clinician_for_every_pharmacy_sees_the_queue_most_urgent_first(client, world):
    older = make_triaged(world["pharmacist_b"], level="self_care")
    review, _ = reviews.open_review(older, reason="requested", by=None, now=utcnow() - timedelta(hours=5))
    db.session.commit()
    items = _get(client, "/api/v1/reviews", world["tokens"]["clinician_all"]).get_json()["items"]
    assert [item["rules_level"] for item in items] == ["urgent", "clinic", "self_care"]
    assert items[2]["waiting_minutes"] >= 300 and items[2]["target_minutes"] == 1440
    filtered = _get(client, "/api/v1/reviews?level=clinic", world["tokens"]["clinician_all"]).get_json()
    assert [item["id"] for item in filtered["items"]] == [str(world["review_b"].id)] and filtered["total"] == 1
    assert filtered["items"][0]["note"] == "please look" and filtered["items"][0]["pharmacy_name"] == "Osu Pharmacy"


def test_one_review_shows_the_consultation_and_photo_links_that_expire(app, client, world):
    token = world["tokens"]["clinician_a"]
    body = _get(client, f"/api/v1/reviews/{world['review_a'].id}", token).get_json()
    assert body["consultation"]["id"] == str(world["a"].id)
    assert body["consultation"]["recommendation"]["level"] == "urgent"
    [photo] = body["photos"]
    response = client.get(photo["url"])  # no token: the link is the authorisation
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert response.data == world["a"].images[0].data
    assert db.session.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "review.photo_read"))
    assert client.get(photo["url"] + "x").status_code == 404  # tampered
    app.config["REVIEW_PHOTO_URL_SECONDS"] = 1
    time.sleep(2.1)
    expired = client.get(photo["url"])
    assert expired.status_code == 404 and expired.get_json()["error"]["code"] == "not_found"


def test_a_deactivated_clinicians_photo_link_stops_working(app, client, world):
    token = world["tokens"]["clinician_a"]
    url = _get(client, f"/api/v1/reviews/{world['review_a'].id}", token).get_json()["photos"][0]["url"]
    world["clinician_a"].active = False
    db.session.commit()
    assert client.get(url).status_code == 404


def test_pharmacists_ask_only_about_their_own_consultations(client, world):
    mine = make_triaged(world["pharmacist_a"])
    path = f"/api/v1/consultations/{mine.id}/review-request"
    theirs = client.post(path, json={"note": "x"}, headers=bearer(world["tokens"]["b"]))
    assert theirs.status_code == 404
    first = client.post(path, json={"note": "Fever since Monday."}, headers=bearer(world["tokens"]["a"]))
    assert first.status_code == 201 and first.get_json()["reason"] == "requested"
    again = client.post(path, json={"note": "Now spreading."}, headers=bearer(world["tokens"]["a"]))
    assert again.status_code == 201 and again.get_json()["id"] == first.get_json()["id"]
    assert again.get_json()["note"] == "Fever since Monday.\nNow spreading."
    # A pharmacist never reads the queue, even about their own consultation.
    assert _get(client, "/api/v1/reviews", world["tokens"]["a"]).status_code == 403
    assert _get(client, f"/api/v1/reviews/{first.get_json()['id']}", world["tokens"]["a"]).status_code == 403


def test_a_consultation_not_triaged_yet_cannot_be_reviewed(client, world):
    pending = make_triaged(world["pharmacist_a"])
    pending.status = "queued"
    db.session.commit()
    response = client.post(f"/api/v1/consultations/{pending.id}/review-request", json={},
                           headers=bearer(world["tokens"]["a"]))  # fmt: skip
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "not_triaged"


@pytest.mark.parametrize(("field", "value"), [("level", "soon"), ("confidence", "sure"), ("icd10", "eczema"),
                                              ("advice", ""), ("diagnosis", "x" * 161), ("advice", "x" * 601),
                                              ("diagnosis", "   "), ("advice", " \n "), ("extra", 1)])  # fmt: skip
def test_a_bad_answer_is_a_422_naming_the_field_and_writes_nothing(client, world, field, value):
    response = client.post(f"/api/v1/reviews/{world['review_a'].id}/answer", json={**ANSWER, field: value},
                           headers=bearer(world["tokens"]["clinician_a"]))  # fmt: skip
    assert response.status_code == 422
    assert field in response.get_json()["error"]["details"]["json"]
    assert db.session.get(ReviewRequest, world["review_a"].id).status == "open"


def test_an_api_consultations_answer_goes_to_the_pharmacists_linked_chat(client, world):
    from tests.flows.test_skin import CHAT_ID, linked_chat

    linked_chat(world["pharmacist_a"])
    response = client.post(f"/api/v1/reviews/{world['review_a'].id}/answer", json={**ANSWER, "level": "clinic"},
                           headers=bearer(world["tokens"]["clinician_a"]))  # fmt: skip
    assert response.status_code == 200 and response.get_json()["sent"] is True
    assert response.get_json()["level_change"] == "lowered"
    sent = db.session.scalars(select(Message).where(Message.address == CHAT_ID, Message.direction == DIRECTION_OUT,
                                                    Message.dedupe_key.like("review-answer:%"))).all()  # fmt: skip
    assert len(sent) == 1 and "Level lowered to" in sent[0].text


def test_admins_create_clinicians_with_their_pharmacies(client, people, world):
    admin = bearer(people["tokens"]["admin"])
    body = {"email": "dr.mensah@example.org", "password": "a-long-enough-passphrase-9", "role": "clinician",
            "pharmacist_ids": [str(world["pharmacist_b"].id)]}  # fmt: skip
    created = client.post("/api/v1/users", json=body, headers=admin)
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["pharmacist_ids"] == [str(world["pharmacist_b"].id)]
    clinician = db.session.get(User, created.get_json()["id"])
    token = sign_in(client.application, clinician, "a-long-enough-passphrase-9")["access_token"]
    assert [i["id"] for i in _get(client, "/api/v1/reviews", token).get_json()["items"]] == [str(world["review_b"].id)]
    # Not a pharmacist's id, or pharmacies for another role: 422 naming the field, nothing written.
    bad = client.post("/api/v1/users", json={**body, "email": "x@example.org", "pharmacist_ids": [str(clinician.id)]},
                      headers=admin)  # fmt: skip
    assert bad.status_code == 422 and "pharmacist_ids" in bad.get_json()["error"]["details"]["json"]
    staff = client.post("/api/v1/users", json={**body, "email": "y@example.org", "role": "viewer",
                                               "clinic_id": str(people["home"].id)}, headers=admin)  # fmt: skip
    assert staff.status_code == 422
    assert (
        db.session.scalar(
            select(func.count()).select_from(User).where(User.email.in_(["x@example.org", "y@example.org"]))
        )
        == 0
    )
    moved = client.patch(f"/api/v1/users/{clinician.id}", json={"pharmacist_ids": [str(world["pharmacist_a"].id)]},
                         headers=admin)  # fmt: skip
    assert moved.status_code == 200 and moved.get_json()["pharmacist_ids"] == [str(world["pharmacist_a"].id)]
    assert db.session.scalar(select(func.count()).select_from(ClinicianPharmacy)
                             .where(ClinicianPharmacy.clinician_id == clinician.id)) == 1  # fmt: skip


@pytest.mark.both_backends
def test_overdue_reviews_alert_their_clinicians_once_or_tell_the_pharmacist(app, world):
    from tests.flows.test_skin import CHAT_ID, linked_chat

    linked_chat(world["pharmacist_b"])
    world["clinician_all"].active = False  # B is now covered by nobody
    db.session.commit()
    not_yet = reviews.alert_overdue(utcnow())
    assert not_yet == {"overdue": 0, "sms": 0, "unstaffed": 0}
    counts = reviews.alert_overdue(utcnow() + timedelta(minutes=61))  # A is urgent: 60 minutes
    assert counts == {"overdue": 1, "sms": 1, "unstaffed": 0}
    [sms] = db.session.scalars(select(Message).where(Message.address == world["clinician_a"].phone)).all()
    assert sms.channel == "sms" and sms.segments == 1 and "review queue" in sms.text
    assert reviews.alert_overdue(utcnow() + timedelta(minutes=62)) == {"overdue": 0, "sms": 0, "unstaffed": 0}
    counts = reviews.alert_overdue(utcnow() + timedelta(days=2))  # B (clinic): 24 hours, and no clinician
    assert counts == {"overdue": 1, "sms": 0, "unstaffed": 1}
    told = db.session.scalars(select(Message).where(Message.address == CHAT_ID,
                                                    Message.dedupe_key.like("review-unstaffed:%"))).all()  # fmt: skip
    assert len(told) == 1 and "no clinician" in told[0].text.lower()


@pytest.mark.both_backends
def test_the_outcome_report_counts_by_level_and_condition_in_scope(client, people, world):
    for consultation, outcome in ((world["a"], "worse"), (world["b"], "better")):
        consultation.follow_up_sent_at, consultation.outcome = utcnow(), outcome
    extra = make_triaged(world["pharmacist_b"], level="clinic")
    extra.follow_up_sent_at, extra.outcome = utcnow(), "worse"
    db.session.commit()
    everything = _get(client, "/api/v1/reports/outcomes", people["tokens"]["admin"]).get_json()["items"]
    by_level = {row["level"]: row for row in everything}
    assert by_level["clinic"]["answered"] == 2 and by_level["clinic"]["worse_rate"] == 0.5
    assert by_level["urgent"]["worse"] == 1
    mine = _get(client, "/api/v1/reports/outcomes", world["tokens"]["clinician_a"]).get_json()["items"]
    assert [(row["level"], row["worse"]) for row in mine] == [("urgent", 1)]


@pytest.mark.parametrize("language", ["en", "tn"])
def test_the_longest_answer_fits_one_chat_message(app, language):
    from app.models import Consultation
    from app.schemas.consultations import ADVICE_MAX, DIAGNOSIS_MAX

    consultation = Consultation(condition="insect_bite", created_at=utcnow())
    review = ReviewRequest(rules_level="clinic_today", level="self_care", diagnosis="x" * DIAGNOSIS_MAX,
                           icd10="L30.9999", confidence="confirmed", advice="y" * ADVICE_MAX)  # fmt: skip
    assert len(reviews.answer_text(review, consultation, language)) <= 1024
