"""The skin consultation chat flow: linking, a photo starts, the questions with buttons, the analysis enqueued."""

from __future__ import annotations

import itertools
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db, redis_client
from app.i18n import t
from app.messaging.envelopes import InboundMessage, Media
from app.models import AuditLog, Consultation, ConsultationImage, utcnow
from app.models.consultation import IMAGE_PENDING, STATUS_CANCELLED, STATUS_COLLECTING, STATUS_QUEUED
from app.services import consultations
from bots import engine
from bots.flows import skin
from tests.api.test_phone_proof import CONFIRM, register, send_code
from tests.conftest import bearer, make_user
from tests.factories import book
from tests.flows import contact, outbound

PHARMACIST_PHONE = "+233241000002"
CHAT_ID = "770011"
_ids = itertools.count(1)


@pytest.fixture
def pharmacist(app):
    return make_user("pharmacist", phone=PHARMACIST_PHONE)


def send(channel: str, sender: str, text: str = "", *, photo: bool = False, extra: dict | None = None):
    """Store an inbound message as the webhooks do and let the engine handle it; returns the replies so far."""
    from app.messaging import inbox

    media = (Media(content_type="image/jpeg", provider_media_id=f"file-{next(_ids)}"),) if photo else ()
    inbound = InboundMessage(channel=channel, provider=channel, provider_id=f"m-{next(_ids)}", sender=sender,
                             text=text, media=media, extra=extra or {})  # fmt: skip
    message, _ = inbox.store_inbound(inbound)
    db.session.commit()
    engine.handle_message(str(message.id))
    return outbound(sender)


def link_code(user) -> str:
    from app.security import Actor

    return consultations.create_chat_link(Actor(user.id, user.role, None, "127.0.0.1"))["code"]


def consultation_of(address: str) -> Consultation | None:
    db.session.expire_all()
    row = contact(address)
    return db.session.scalar(
        select(Consultation).where(Consultation.contact_id == row.id).order_by(Consultation.created_at.desc())
    )


# --- linking ----------------------------------------------------------------------------------------------------


def test_an_unlinked_telegram_photo_asks_for_a_link_code(pharmacist):
    replies = send("telegram", CHAT_ID, photo=True)
    assert "/link 123456" in replies[-1].text
    assert consultation_of(CHAT_ID) is None


@pytest.mark.parametrize("command", ["/start {code}", "/link {code}", "/LINK  {code} "])
def test_telegram_links_with_a_code(pharmacist, command):
    replies = send("telegram", CHAT_ID, command.format(code=link_code(pharmacist)))
    assert "linked" in replies[-1].text
    assert contact(CHAT_ID).user_id == pharmacist.id
    assert db.session.scalar(select(AuditLog).where(AuditLog.action == "auth.chat_link")) is not None


def test_whatsapp_links_with_link_code(pharmacist):
    replies = send("whatsapp", "+233200000009", f"LINK {link_code(pharmacist)}")
    assert "linked" in replies[-1].text and contact("+233200000009").user_id == pharmacist.id


def test_a_code_works_once_and_expires(pharmacist):
    code = link_code(pharmacist)
    send("telegram", CHAT_ID, f"/link {code}")
    replies = send("telegram", "880022", f"/link {code}")
    assert "expired" in replies[-1].text and contact("880022").user_id is None
    stale = link_code(pharmacist)
    from app.models import ChatLinkCode

    for row in db.session.scalars(select(ChatLinkCode)):
        row.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    replies = send("telegram", "880023", f"/link {stale}")
    assert "expired" in replies[-1].text and contact("880023").user_id is None


def test_a_wrong_code_links_nothing(pharmacist):
    link_code(pharmacist)
    replies = send("telegram", CHAT_ID, "/link 000000")
    assert "wrong" in replies[-1].text and contact(CHAT_ID).user_id is None


def test_a_whatsapp_number_equal_to_the_pharmacists_phone_links_by_itself(pharmacist):
    replies = send("whatsapp", PHARMACIST_PHONE, photo=True)
    assert contact(PHARMACIST_PHONE).user_id == pharmacist.id
    assert "Question 1 of" in replies[-1].text
    assert [b["id"] for b in replies[-1].buttons][:2] == ["skin:condition:fungal", "skin:condition:eczema"]


def test_a_telegram_contact_card_links_only_when_it_is_the_senders_own(pharmacist):
    card = {"phone_number": "233241000002", "user_id": "555"}
    send("telegram", CHAT_ID, extra={"contact": card, "from_id": "999"})  # someone else's card
    assert contact(CHAT_ID).user_id is None
    replies = send("telegram", CHAT_ID, extra={"contact": card, "from_id": "555"})
    assert contact(CHAT_ID).user_id == pharmacist.id and "linked" in replies[-1].text


def test_a_patient_on_whatsapp_is_not_linked(pharmacist):
    replies = send("whatsapp", "+233200000001", photo=True)
    assert contact("+233200000001").user_id is None and "LINK 123456" in replies[-1].text


# --- who links without a code: a proven phone, never a patient's number --------------------------------------------

PATIENT = "+26771234567"


def images() -> int:
    return db.session.scalar(select(func.count()).select_from(ConsultationImage))


def test_a_pharmacist_registered_with_a_patients_number_gets_no_link_and_no_photo(client, clinic):
    book(clinic, PATIENT)
    register(client, phone=PATIENT)  # the attacker types the patient's number at registration
    replies = send("whatsapp", PATIENT, photo=True)  # the patient sends the clinic a photo
    assert contact(PATIENT).user_id is None
    assert consultation_of(PATIENT) is None and images() == 0
    assert "LINK 123456" in replies[-1].text


def test_an_unproven_number_links_by_code_only(client):
    pair = register(client, phone="+233241000077")
    user_id = uuid.UUID(pair["user"]["id"])
    send("whatsapp", "+233241000077", photo=True)
    card = {"phone_number": "233241000077", "user_id": "555"}
    send("telegram", CHAT_ID, extra={"contact": card, "from_id": "555"})  # the sender's own card, unproven number
    assert contact("+233241000077").user_id is None and contact(CHAT_ID).user_id is None and images() == 0

    code = client.post("/api/v1/auth/chat-link", headers=bearer(pair["access_token"])).get_json()["code"]
    replies = send("whatsapp", "+233241000077", f"LINK {code}")
    assert contact("+233241000077").user_id == user_id and "linked" in replies[-1].text


def test_once_proven_the_whatsapp_number_links_by_itself(client):
    pair = register(client, phone="+233241000078")
    code = send_code(client, pair["access_token"])
    assert client.post(CONFIRM, json={"code": code}, headers=bearer(pair["access_token"])).status_code == 200
    replies = send("whatsapp", "+233241000078", photo=True)
    assert contact("+233241000078").user_id == uuid.UUID(pair["user"]["id"])
    assert "Question 1 of" in replies[-1].text


def test_a_proven_phone_that_is_a_patients_number_links_by_code_only(clinic):
    """Proven, but a patient has that number too (a shared phone): their photos must not become consultations."""
    pharmacist = make_user("pharmacist", phone=PATIENT)
    book(clinic, PATIENT)
    send("whatsapp", PATIENT, photo=True)
    send("telegram", CHAT_ID, extra={"contact": {"phone_number": PATIENT[1:], "user_id": "555"}, "from_id": "555"})
    assert contact(PATIENT).user_id is None and contact(CHAT_ID).user_id is None and images() == 0
    replies = send("whatsapp", PATIENT, f"LINK {link_code(pharmacist)}")
    assert contact(PATIENT).user_id == pharmacist.id and "linked" in replies[-1].text


# --- guessing link codes ------------------------------------------------------------------------------------------


def guesses(code: str, count: int) -> list[str]:
    return [guess for guess in (f"{n:06d}" for n in range(count + 1)) if guess != code][:count]


def test_forty_wrong_codes_then_the_right_one_links_nothing(pharmacist):
    code = link_code(pharmacist)
    for guess in guesses(code, 40):
        replies = send("telegram", CHAT_ID, f"/link {guess}")
    assert replies[-1].text == t("skin_link_locked", "en")
    replies = send("telegram", CHAT_ID, f"/link {code}")
    assert contact(CHAT_ID).user_id is None and replies[-1].text == t("skin_link_locked", "en")
    # The lock is this chat's: the pharmacist's own chat still links with the (unspent) code.
    send("telegram", "880099", f"/link {code}")
    assert contact("880099").user_id == pharmacist.id


@pytest.mark.parametrize("language", ["en", "tn"])
def test_the_fifth_wrong_code_locks_the_chat_for_an_hour(pharmacist, language):
    send("whatsapp", "+233200000010", "SETSWANA" if language == "tn" else "ENGLISH")
    code = link_code(pharmacist)
    wrong = guesses(code, consultations.LINK_MAX_WRONG)
    for guess in wrong[:-1]:
        assert send("whatsapp", "+233200000010", f"LINK {guess}")[-1].text == t("skin_link_bad_code", language)
    assert send("whatsapp", "+233200000010", f"LINK {wrong[-1]}")[-1].text == t("skin_link_locked", language)
    assert send("whatsapp", "+233200000010", f"LINK {code}")[-1].text == t("skin_link_locked", language)
    assert contact("+233200000010").user_id is None
    ttl = redis_client.client.ttl(f"thusa:chat-link-wrong:{contact('+233200000010').id}")
    assert 0 < ttl <= consultations.LINK_WRONG_SECONDS


def test_four_wrong_codes_then_the_right_one_links(pharmacist):
    code = link_code(pharmacist)
    for guess in guesses(code, consultations.LINK_MAX_WRONG - 1):
        send("telegram", CHAT_ID, f"/link {guess}")
    send("telegram", CHAT_ID, f"/link {code}")
    assert contact(CHAT_ID).user_id == pharmacist.id


# --- the questions ----------------------------------------------------------------------------------------------


def linked_chat(pharmacist, address: str = CHAT_ID, channel: str = "telegram"):
    send(channel, address, f"/link {link_code(pharmacist)}" if channel == "telegram" else
         f"LINK {link_code(pharmacist)}")  # fmt: skip


ADULT_ANSWERS = [
    ("condition", "skin:condition:fungal"), ("age_group", "skin:age_group:y18_to_59"), ("pregnant", "skin:pregnant:no"),
    ("red_flags", "skin:red_flags:none"), ("duration", "skin:duration:w1_to_2"), ("body_site", "skin:body_site:trunk_limbs"), ("itch", "skin:itch:yes"),
    ("pain", "skin:pain:no"), ("spreading", "skin:spreading:no"), ("fever", "skin:fever:no"),
    ("blisters", "skin:blisters:none"), ("mole_change", "skin:mole_change:no"), ("open_sore", "skin:open_sore:no"),
    ("treatment_failed", "skin:treatment_failed:no"),
]  # fmt: skip


def test_a_photo_then_every_question_then_the_analysis_is_queued(pharmacist, monkeypatch):
    enqueued = []
    monkeypatch.setattr(consultations, "enqueue_analysis", enqueued.append)
    linked_chat(pharmacist)
    replies = send("telegram", CHAT_ID, photo=True)
    consultation = consultation_of(CHAT_ID)
    assert consultation.status == STATUS_COLLECTING and consultation.user_id == pharmacist.id
    for number, (field, answer) in enumerate(ADULT_ANSWERS, start=1):
        assert f"Question {number} of {len(ADULT_ANSWERS)}" in replies[-1].text, field
        assert answer in [button["id"] for button in replies[-1].buttons]
        replies = send("telegram", CHAT_ID, answer)
    consultation = consultation_of(CHAT_ID)
    assert consultation.status == STATUS_QUEUED
    assert (consultation.condition, consultation.age_group, consultation.pregnant) == ("fungal", "y18_to_59", False)
    assert consultation.itch is True and consultation.open_sore == "no" and consultation.treatment_failed is False
    assert consultation.red_flags == []  # "none of these", said, not assumed
    assert "checking the photo" in replies[-1].text
    assert enqueued == [str(consultation.id)]  # the id only: never a photo or a phone number


def test_numbers_and_titles_answer_too_and_nonsense_is_asked_again(pharmacist):
    linked_chat(pharmacist)
    send("telegram", CHAT_ID, photo=True)
    replies = send("telegram", CHAT_ID, "2")  # eczema
    assert consultation_of(CHAT_ID).condition == "eczema" and "Question 2" in replies[-1].text
    replies = send("telegram", CHAT_ID, "banana")
    assert "tap one of the buttons" in replies[-1].text and "Question 2" in replies[-1].text
    replies = send("telegram", CHAT_ID, "1 to 9 years")
    consultation = consultation_of(CHAT_ID)
    assert consultation.age_group == "y1_to_9"
    # No pregnancy question for a child: the warning-sign screen comes next, and the total shrinks by one.
    assert f"Question 3 of {len(ADULT_ANSWERS) - 1}" in replies[-1].text
    assert "Warning signs" in replies[-1].text


def test_more_photos_during_the_questions_are_added(pharmacist):
    linked_chat(pharmacist)
    send("telegram", CHAT_ID, photo=True)
    send("telegram", CHAT_ID, "skin:condition:scabies")
    replies = send("telegram", CHAT_ID, photo=True)
    assert "Photo 2 received" in replies[-1].text and "Question 2" in replies[-1].text
    images = db.session.scalars(select(ConsultationImage).order_by(ConsultationImage.position)).all()
    assert [image.position for image in images] == [0, 1]
    assert all(image.status == IMAGE_PENDING and image.data is None and image.media for image in images)


def test_a_new_photo_after_queueing_starts_a_new_consultation(pharmacist, monkeypatch):
    monkeypatch.setattr(consultations, "enqueue_analysis", lambda _id: None)
    linked_chat(pharmacist)
    send("telegram", CHAT_ID, photo=True)
    for _, answer in ADULT_ANSWERS:
        send("telegram", CHAT_ID, answer)
    first = consultation_of(CHAT_ID)
    send("telegram", CHAT_ID, photo=True)
    second = consultation_of(CHAT_ID)
    assert second.id != first.id and second.status == STATUS_COLLECTING and first.status == STATUS_QUEUED


def test_a_photo_in_the_middle_of_nothing_replaces_an_abandoned_consultation(pharmacist):
    linked_chat(pharmacist)
    send("telegram", CHAT_ID, photo=True)
    first = consultation_of(CHAT_ID)
    # The conversation state is lost (say it expired); a new photo starts afresh and the old one is cancelled.
    from tests.flows import conversation

    row = conversation(CHAT_ID, "telegram")
    row.flow, row.state = None, {}
    db.session.commit()
    send("telegram", CHAT_ID, photo=True)
    assert db.session.get(Consultation, first.id).status == STATUS_CANCELLED
    assert consultation_of(CHAT_ID).status == STATUS_COLLECTING


def test_a_linked_pharmacists_text_asks_for_a_photo(pharmacist):
    linked_chat(pharmacist)
    replies = send("telegram", CHAT_ID, "hello")
    assert "send a photo" in replies[-1].text.lower()


def test_every_question_has_catalog_texts_and_short_enough_buttons():
    from app.i18n import CATALOG

    for question in (skin.CONDITION, skin.AGE, skin.PREGNANT, skin.RED_FLAGS, *skin.LATER):
        assert question.text_key in CATALOG
        for _, key in question.options:
            assert CATALOG[key].channel == "button" and len(CATALOG[key].en) <= 20


# --- the red-flag screen ----------------------------------------------------------------------------------------


def _to_the_screen(pharmacist, channel: str = "telegram", address: str = CHAT_ID):
    linked_chat(pharmacist, address, channel)
    send(channel, address, photo=True)
    send(channel, address, "skin:condition:eczema")
    send(channel, address, "skin:age_group:y18_to_59")
    return send(channel, address, "skin:pregnant:no")


def test_the_screen_is_asked_early_with_every_sign_numbered_and_toggle_buttons_on_telegram(pharmacist):
    replies = _to_the_screen(pharmacist)
    text, buttons = replies[-1].text, [b["id"] for b in replies[-1].buttons]
    assert "Question 4 of 14" in text and "Warning signs" in text
    assert "1. A pale or red patch that feels numb" in text and "12. Many spots" in text
    assert buttons[:2] == ["skin:red_flags:numb_patch", "skin:red_flags:airway_swelling"]
    assert buttons[-2:] == ["skin:red_flags:none", "skin:red_flags:done"] and len(buttons) == 14
    # Toggle: tick 1 and 7, untick 1 again, tick 12; the ticked ones are marked; Done records them.
    for press in ("numb_patch", "pus_or_crusts", "numb_patch", "many_lesions"):
        replies = send("telegram", CHAT_ID, f"skin:red_flags:{press}")
    assert "Ticked: 7, 12" in replies[-1].text
    titles = {b["id"]: b["title"] for b in replies[-1].buttons}
    assert titles["skin:red_flags:pus_or_crusts"].startswith(skin.TICK)
    assert not titles["skin:red_flags:numb_patch"].startswith(skin.TICK)
    assert consultation_of(CHAT_ID).red_flags is None  # nothing recorded before Done
    replies = send("telegram", CHAT_ID, "skin:red_flags:done")
    assert consultation_of(CHAT_ID).red_flags == ["pus_or_crusts", "many_lesions"]
    assert "Question 5 of 14" in replies[-1].text


def test_done_with_nothing_ticked_is_not_taken_as_none(pharmacist):
    _to_the_screen(pharmacist)
    replies = send("telegram", CHAT_ID, "skin:red_flags:done")
    assert "0 if none applies" in replies[-1].text and consultation_of(CHAT_ID).red_flags is None


@pytest.mark.parametrize(
    ("typed", "recorded"),
    [("0", []), ("2 7", ["airway_swelling", "pus_or_crusts"]), ("7,2", ["airway_swelling", "pus_or_crusts"]),
     ("1, 12", ["numb_patch", "many_lesions"]), (" 5 ", ["weak_immunity"]), ("0. None of these", [])],
)  # fmt: skip
def test_whatsapp_answers_the_screen_with_typed_numbers(pharmacist, typed, recorded):
    replies = _to_the_screen(pharmacist, "whatsapp", PHARMACIST_PHONE)
    assert "6. A painless black scab" in replies[-1].text  # typed numbers; one reply button: none of these
    assert [b["id"] for b in replies[-1].buttons] == ["skin:red_flags:none"]
    send("whatsapp", PHARMACIST_PHONE, typed)
    assert consultation_of(PHARMACIST_PHONE).red_flags == recorded


def test_whatsapp_none_button_answers_the_screen(pharmacist):
    _to_the_screen(pharmacist, "whatsapp", PHARMACIST_PHONE)
    replies = send("whatsapp", PHARMACIST_PHONE, extra={"callback_data": "skin:red_flags:none"})
    assert consultation_of(PHARMACIST_PHONE).red_flags == [] and "Question 5 of 14" in replies[-1].text


def test_a_setswana_list_too_long_for_a_whatsapp_body_goes_without_buttons(pharmacist):
    # Never as a numbered list of buttons, where "1" would mean "None of these" and also the first sign.
    linked_chat(pharmacist, PHARMACIST_PHONE, "whatsapp")
    contact(PHARMACIST_PHONE).language = "tn"
    db.session.commit()
    send("whatsapp", PHARMACIST_PHONE, photo=True)
    for answer in ("skin:condition:eczema", "skin:age_group:y18_to_59", "skin:pregnant:no"):
        replies = send("whatsapp", PHARMACIST_PHONE, answer)
    assert "Matshwao a kotsi" in replies[-1].text and replies[-1].buttons == []
    assert len(replies[-1].text) > skin.CHAT_BODY_LIMIT
    send("whatsapp", PHARMACIST_PHONE, "0")
    assert consultation_of(PHARMACIST_PHONE).red_flags == []


@pytest.mark.parametrize("typed", ["13", "0 3", "yes", "2 x", ""])
def test_nonsense_on_the_screen_is_asked_again(pharmacist, typed):
    _to_the_screen(pharmacist, "whatsapp", PHARMACIST_PHONE)
    replies = send("whatsapp", PHARMACIST_PHONE, typed or "  ")
    assert "Send the numbers" in replies[-1].text and "Warning signs" in replies[-1].text
    assert consultation_of(PHARMACIST_PHONE).red_flags is None
