"""Patient replies by SMS and WhatsApp (bots/flows/appointments.py): confirm, change the date, cannot come, help.

Messages are stored as the webhook layer stores them and handled by ``bots.engine.handle_message`` as the job does
(a few go the whole road: the Twilio webhook with a valid signature, then the real worker). What happened is read
back from the real database (PostgreSQL): the appointment, the reply row, the links between them.
"""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from app.extensions import db
from app.i18n import t
from app.messaging.envelopes import InboundMessage
from app.messaging.inbox import contact_for, store_inbound
from app.models import Appointment, AuditLog, Consultation, Message, utcnow
from app.models.message_log import STATUS_HANDLED
from app.security import Actor
from app.services import appointments, consultations
from bots.engine import handle_message
from bots.flows.appointments import CANNOT_COME, CHANGE, CONFIRM, HELP_EVERY, OFFER_TTL, letters_text, parse
from tests.api.test_phone_proof import register
from tests.bots.test_webhooks import CONFIG, assert_twiml, post_sms, post_twilio, sid, sms_params, work
from tests.conftest import make_user
from tests.flows import (
    LONGEST_NAME,
    OTHER_PHONE,
    PHONE,
    book,
    contact,
    conversation,
    fill,
    inbound_rows,
    make_clinic,
    outbound,
    reload,
    reply_to,
    when,
)

SPELLINGS = {
    CONFIRM: ["1", "1.", "1)", " 1 ", "YES", "yes", "Yes!", "EE", "ee", " ee ", "Ee.", "E e"],
    CHANGE: ["2", "2.", "(2)", "CHANGE", "change", "Change!", "FETOLA", "fetola", " Fetola. "],
    CANNOT_COME: ["3", "3.", "3)", "NO", "no", "No!", "NNYAA", "nnyaa", " Nnyaa... "],
}
CASES = [(text, action) for action, texts in SPELLINGS.items() for text in texts]
GARBAGE = ["", "4", "0", "A", "hello", "ok", "1 2", "yes please", "12", "?"]


@pytest.fixture
def app(shared_app):
    application = shared_app(**CONFIG)
    with application.app_context():
        yield application
        db.session.remove()


def inbound(text: str, *, sender: str = PHONE, channel: str = "sms") -> Message:
    message, created = store_inbound(
        InboundMessage(
            channel=channel, provider="twilio", provider_id=f"id-{uuid.uuid4().hex}", sender=sender, text=text
        )  # fmt: skip
    )
    assert created
    db.session.commit()
    return message


def say(text: str, **kwargs) -> tuple[Message, Message | None]:
    """Store and handle one message: (the message as stored afterwards, its reply or None)."""
    message = inbound(text, **kwargs)
    handle_message(str(message.id))
    return reload(message), reply_to(message.id)


def offer_text(appointment: Appointment, slots: list[datetime]) -> str:
    language = appointments.language_of(appointment)
    listed = ", ".join(f"{letter} {when(appointment, at)}" for letter, at in zip("ABC", slots, strict=False))
    return appointments.text_for(appointment, "appointment_offer", slots=listed,
                                 letters=letters_text(len(slots), language))  # fmt: skip


def offered() -> list[datetime]:
    """The slots of the open offer, as the flow keeps them."""
    return [datetime.fromisoformat(at) for at in conversation().state["offer"]["slots"]]


def helps() -> list[Message]:
    return [row for row in outbound() if (row.dedupe_key or "").startswith("appointment_help:")]


@pytest.fixture
def visit(clinic):
    return book(clinic, language="en")


# --- parsing: a pure table -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "action"), CASES)
def test_every_accepted_spelling_means_its_action(text, action):
    assert parse(text) == action
    assert parse(text, letters=3) == action  # an open offer changes nothing for 1, 2 and 3


@pytest.mark.parametrize("text", GARBAGE)
def test_anything_else_is_not_an_answer(text):
    assert parse(text) is None


@pytest.mark.parametrize(
    ("text", "letters", "expected"),
    [("A", 3, "A"), ("b", 3, "B"), (" c. ", 3, "C"), ("C)", 3, "C"), ("C", 2, None), ("B", 1, None), ("A", 0, None),
     ("D", 3, None), ("AB", 3, None)],
)  # fmt: skip
def test_letters_count_only_for_slots_on_the_open_offer(text, letters, expected):
    assert parse(text, letters=letters) == expected


@pytest.mark.parametrize(
    ("count", "language", "expected"),
    [(1, "en", "A"), (2, "en", "A or B"), (3, "en", "A, B or C"), (3, "tn", "A, B kgotsa C")],
)
def test_the_letters_of_an_offer_are_joined_with_the_catalogs_or(count, language, expected):  # fmt: skip
    assert letters_text(count, language) == expected


# --- every spelling, end to end through the engine -----------------------------------------------------------------


@pytest.mark.parametrize(("text", "action"), CASES)
def test_each_spelling_acts_on_the_nearest_appointment(app, visit, text, action):
    message, reply = say(text)

    appointment = reload(visit)
    assert message.status == STATUS_HANDLED
    if action == CONFIRM:
        assert appointment.status == "confirmed" and appointment.confirmed_at is not None
        assert reply.text == appointments.text_for(appointment, "appointment_confirmed")
    elif action == CANNOT_COME:
        assert (appointment.status, appointment.cancelled_by) == ("cancelled", "patient")
        assert reply.text == appointments.text_for(appointment, "appointment_cancelled_by_patient")
    else:
        assert appointment.status == "reschedule_requested"
        slots = offered()
        assert len(slots) == 3 and slots == sorted(slots) and all(at > utcnow() for at in slots)
        assert reply.text == offer_text(appointment, slots)


@pytest.mark.parametrize("text", GARBAGE[1:])  # "" is not an SMS anyone can send; media-only is covered below
def test_garbage_from_a_patient_gets_help_once_a_day_then_silence(app, visit, text):
    first, reply = say(text)
    assert reply.text == appointments.text_for(visit, "appointment_help")
    assert (first.appointment_id, reply.appointment_id) == (visit.id, visit.id)

    second, again = say(text)
    assert again is None  # not a second help text the same day
    assert second.status == STATUS_HANDLED and second.appointment_id == visit.id  # still in the clinic's log
    assert reload(visit).status == "scheduled"
    assert conversation().flow is None
    assert len(outbound()) == 1


# --- the paths -----------------------------------------------------------------------------------------------------


def test_confirm_links_message_and_reply_to_the_appointment_and_its_clinic(app, clinic, visit):
    message, reply = say("1")

    assert (message.appointment_id, message.clinic_id) == (visit.id, clinic.id)
    assert (reply.appointment_id, reply.clinic_id, reply.reply_to_id) == (visit.id, clinic.id, message.id)
    assert (reply.kind, reply.channel, reply.language, reply.segments) == ("reply", "sms", "en", 1)
    assert reply.text == f"Thusa: thank you. Your visit to Tlokweng Clinic on {when(visit)} is confirmed."
    chat = conversation()
    assert (chat.flow, chat.state) == (None, {})
    actions = db.session.scalars(select(AuditLog.action).where(AuditLog.entity_id == str(visit.id))).all()
    assert "appointment.confirm" in actions


def test_cannot_come_cancels_for_the_patient_and_sends_no_clinic_notice(app, visit):
    _, reply = say("Nnyaa")

    appointment = reload(visit)
    assert (appointment.status, appointment.cancelled_by) == ("cancelled", "patient")
    assert appointment.next_reminder_at is None
    assert [row.id for row in outbound()] == [reply.id]  # the answer only: no "called off" notice on top
    assert reply.text == appointments.text_for(appointment, "appointment_cancelled_by_patient")

    _, after = say("1")  # nothing upcoming any more: the engine's default reply
    assert after.text == t("default_reply", "en") and after.appointment_id is None


def test_change_then_a_letter_moves_the_appointment_and_confirms_it(app, visit):
    _, offer = say("2")
    slots = offered()
    assert offer.text == offer_text(reload(visit), slots)
    assert offer.appointment_id == visit.id and offer.segments == 1
    assert conversation().flow == "appointment-replies"

    message, reply = say("b.")

    appointment = reload(visit)
    assert appointment.appointment_datetime == slots[1]
    assert appointment.status == "confirmed" and appointment.confirmed_at is not None
    assert reply.text == appointments.text_for(appointment, "appointment_rescheduled")
    assert when(appointment, slots[1]) in reply.text
    assert (message.appointment_id, reply.appointment_id) == (visit.id, visit.id)
    assert [row.kind for row in outbound()] == ["reply", "reply"]  # no "moved" notice: the patient chose it
    chat = conversation()
    assert (chat.flow, chat.state) == (None, {})


def test_a_slot_filled_while_the_patient_chose_gets_a_fresh_offer(app, app_factory):
    clinic = make_clinic(slot_capacity=1)
    visit = book(clinic, language="en")
    say("2")
    first = offered()
    fill(clinic, first[0])  # someone else takes slot A

    _, reply = say("A")

    appointment = reload(visit)
    assert appointment.appointment_datetime == visit.appointment_datetime  # not moved
    assert appointment.status == "reschedule_requested"
    fresh = offered()
    assert first[0] not in fresh and len(fresh) == 3
    assert reply.text == offer_text(appointment, fresh)

    _, moved = say("A")
    assert reload(visit).appointment_datetime == fresh[0]
    assert moved.text == appointments.text_for(reload(visit), "appointment_rescheduled")


def test_no_free_slots_says_the_clinic_will_call_and_ends_the_flow(app):
    clinic = make_clinic(opening_hours={})
    visit = book(clinic, language="tn")

    _, reply = say("fetola")

    assert reply.text == appointments.text_for(visit, "appointment_no_slots")
    assert reply.language == "tn"
    assert reload(visit).status == "reschedule_requested"  # the clinic sees who waits for a call
    assert conversation().flow is None


@pytest.mark.parametrize(("text", "status"), [("1", "confirmed"), ("3", "cancelled"), ("Ee", "confirmed")])
def test_while_an_offer_is_open_1_and_3_still_work(app, visit, text, status):
    say("2")

    _, reply = say(text)

    assert reload(visit).status == status
    key = "appointment_confirmed" if status == "confirmed" else "appointment_cancelled_by_patient"
    assert reply.text == appointments.text_for(reload(visit), key)
    assert conversation().flow is None


def test_2_again_offers_again(app, visit):
    say("2")
    _, reply = say("CHANGE")
    assert reply.text == offer_text(reload(visit), offered())
    assert conversation().flow == "appointment-replies"


def test_garbage_while_an_offer_is_open_keeps_the_offer(app, visit):
    say("2")

    _, reply = say("which one?")
    assert reply.text == appointments.text_for(visit, "appointment_help")
    assert conversation().flow == "appointment-replies"

    _, moved = say("C")
    assert moved.text == appointments.text_for(reload(visit), "appointment_rescheduled")


def test_an_expired_offer_is_forgotten(app, visit):
    say("2")
    chat = conversation()
    chat.state = {
        **chat.state,
        "offer": {**chat.state["offer"], "at": (utcnow() - OFFER_TTL - timedelta(minutes=1)).isoformat()},
    }
    db.session.commit()  # fmt: skip

    _, reply = say("A")

    assert reload(visit).appointment_datetime == visit.appointment_datetime
    assert reply.text == appointments.text_for(visit, "appointment_help")  # a bare letter means nothing now
    chat = conversation()
    assert (chat.flow, chat.state) == (None, {})


def test_a_letter_without_an_offer_is_not_an_answer(app, visit):
    _, reply = say("A")
    assert reply.text == appointments.text_for(visit, "appointment_help")
    assert reload(visit).status == "scheduled"


def test_an_offer_for_an_appointment_the_clinic_cancelled_meanwhile_is_forgotten(app, clinic, visit):
    later = book(clinic, days=5, language="en")
    say("2")
    appointments.cancel(None, reload(visit))
    db.session.commit()

    _, reply = say("1")  # about the next appointment now

    assert reload(later).status == "confirmed"
    assert reply.text == appointments.text_for(reload(later), "appointment_confirmed")
    assert reply.appointment_id == later.id


def test_an_offer_is_answered_by_default_when_nothing_is_upcoming_any_more(app, visit):
    say("2")
    appointments.cancel(None, reload(visit))
    db.session.commit()

    _, reply = say("A")

    assert reply.text == t("default_reply", "en") and reply.appointment_id is None
    assert conversation().flow is None


def test_the_reply_is_about_the_nearest_upcoming_appointment_at_any_clinic(app):
    far = book(make_clinic("Mochudi Clinic"), days=9, language="en")
    near = book(make_clinic("Kanye Clinic"), days=2, language="en")
    past_clinic = make_clinic("Molepolole Clinic")
    cancelled = book(past_clinic, days=1, language="en")
    appointments.cancel(None, cancelled)
    db.session.commit()

    message, reply = say("1")

    assert reload(near).status == "confirmed"
    assert reload(far).status == "scheduled"
    assert (message.clinic_id, reply.clinic_id) == (near.clinic_id, near.clinic_id)
    assert "Kanye Clinic" in reply.text


# --- who gets the flow at all --------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["1", "hello", "A"])
def test_no_upcoming_appointment_means_the_default_reply(app, clinic, text):
    _, reply = say(text)
    assert reply.text == t("default_reply", "en")
    assert reply.appointment_id is None
    assert conversation().flow is None


def test_someone_elses_appointment_is_not_touched(app, clinic):
    theirs = book(clinic, phone=OTHER_PHONE)
    _, reply = say("1")
    assert reload(theirs).status == "scheduled"
    assert reply.text == t("default_reply", "en")


@pytest.mark.parametrize(("text", "key"), [("HELP", "help"), ("thuso", "help"), ("SETSWANA", "language_set")])
def test_keywords_still_come_first(app, visit, text, key):
    _, reply = say(text)
    assert reply.text == t(key, "tn" if key == "language_set" else "en")
    assert reload(visit).status == "scheduled"


def test_keywords_answer_while_an_offer_is_open_and_the_offer_stays(app, visit):
    say("2")
    _, helped = say("Help")
    assert helped.text == t("help", "en")
    _, moved = say("a")
    assert moved.text == appointments.text_for(reload(visit), "appointment_rescheduled")


def test_stop_opts_out_and_then_nothing_answers_not_even_yes(app, visit):
    _, confirmation = say("STOP")
    assert confirmation.text == t("opt_out_confirmation", "en")

    message, reply = say("YES")  # YES is an appointment answer, never an opt-in

    assert reply is None
    assert message.status == STATUS_HANDLED
    assert reload(visit).status == "scheduled"
    assert contact_for(PHONE).opted_out_at is not None


# --- help: once a day per contact ----------------------------------------------------------------------------------


def test_help_comes_again_after_a_day(app, visit):
    say("hello")
    say("hello again")
    assert len(helps()) == 1
    # A day passes: the help text was sent (and keyed) a day and a minute ago.
    (sent,) = helps()
    earlier = utcnow() - HELP_EVERY - timedelta(minutes=1)
    key = f"{sent.dedupe_key.rsplit(':', 1)[0]}:{earlier.date().isoformat()}"
    db.session.execute(update(Message).where(Message.id == sent.id).values(created_at=earlier, dedupe_key=key))
    db.session.commit()

    _, reply = say("hello tomorrow")

    assert reply.text == appointments.text_for(visit, "appointment_help")
    assert len(helps()) == 2
    assert len({row.dedupe_key for row in helps()}) == 2


def test_help_is_once_a_day_per_contact_across_sms_and_whatsapp(app, visit):
    _, on_sms = say("hello")
    _, on_whatsapp = say("hello", channel="whatsapp")

    assert on_sms.channel == "sms"
    assert on_whatsapp is None
    assert len(helps()) == 1


def test_a_media_only_whatsapp_message_is_unrecognised(app, visit):
    _, reply = say("", channel="whatsapp")
    assert (reply.channel, reply.text) == ("whatsapp", appointments.text_for(visit, "appointment_help"))


@pytest.mark.postgres_only
def test_two_workers_at_once_send_one_help_text(app, visit):
    """Two messages of one patient (SMS and WhatsApp) are handled by two workers at the same moment."""
    messages = [inbound("what?"), inbound("huh", channel="whatsapp")]
    db.session.close()
    barrier = threading.Barrier(2)
    handled: list[int] = []
    errors: list[BaseException] = []

    def job(message_id: uuid.UUID) -> None:
        with app.app_context():
            try:
                barrier.wait(timeout=10)
                handled.append(handle_message(str(message_id)))
            except BaseException as exc:  # reported below
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=job, args=(message.id,)) for message in messages]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert sum(handled) == 2
    assert len(helps()) == 1
    assert all(row.status == STATUS_HANDLED for row in inbound_rows())


# --- language ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("appointment_language", "contact_language", "clinic_language", "expected"),
    [("tn", "en", "en", "tn"), ("en", "tn", "tn", "en"), (None, "tn", "en", "tn"), (None, "en", "tn", "en"),
     (None, None, "tn", "tn"), (None, None, "en", "en")],
)  # fmt: skip
@pytest.mark.parametrize("text", ["1", "2", "3", "hello"])
def test_texts_follow_the_appointments_language(app, appointment_language, contact_language, clinic_language,
                                                expected, text):  # fmt: skip
    clinic = make_clinic(LONGEST_NAME, language=clinic_language)
    visit = book(clinic)
    visit.language = appointment_language
    visit.patient.contact.language = contact_language
    db.session.commit()

    _, reply = say(text)

    appointment = reload(visit)
    key = {"1": "appointment_confirmed", "3": "appointment_cancelled_by_patient", "hello": "appointment_help"}.get(text)
    if key is None:
        expected_text = offer_text(appointment, offered())
    else:
        expected_text = t(key, expected, clinic=LONGEST_NAME, when=when(appointment, language=expected))
    assert reply.text == expected_text
    assert reply.language == expected
    assert (reply.encoding, reply.segments) == ("GSM-7", 1)  # the longest clinic name still fits one SMS


def test_setswana_words_answer_in_setswana(app, clinic):
    visit = book(clinic, language="tn")
    _, reply = say("ee")
    assert reply.text == f"Thusa: re a leboga. Re tlhomamisitse gore o tla etela Tlokweng Clinic ka {when(visit)}."


# --- the whole road: Twilio webhook → job → engine → outbox → worker -------------------------------------------------


def test_an_sms_answer_through_the_twilio_webhook_and_the_worker(app, client, visit, keep_signal_handlers):
    assert_twiml(post_sms(client, " Ee ", sid(401)))
    work(app)

    assert reload(visit).status == "confirmed"
    (message,) = inbound_rows()
    reply = reply_to(message.id)
    assert (message.status, message.appointment_id, message.clinic_id) == ("handled", visit.id, visit.clinic_id)
    assert (reply.status, reply.provider, reply.appointment_id) == ("sent", "console", visit.id)
    assert reply.text == appointments.text_for(reload(visit), "appointment_confirmed")

    assert_twiml(post_sms(client, "2", sid(402)))
    work(app)
    slots = offered()
    assert_twiml(post_sms(client, "C)", sid(403)))
    work(app)

    assert reload(visit).appointment_datetime == slots[2]
    assert [row.status for row in outbound()] == ["sent"] * 3
    assert outbound()[-1].text == appointments.text_for(reload(visit), "appointment_rescheduled")


def test_a_whatsapp_answer_through_the_twilio_webhook(app, client, visit, keep_signal_handlers):
    params = sms_params("3", sid(404), sender=f"whatsapp:{PHONE}", To="whatsapp:+14155238886")
    assert_twiml(post_twilio(client, "/webhooks/twilio/sms", params))
    work(app)

    assert reload(visit).status == "cancelled"
    (message,) = inbound_rows()
    reply = reply_to(message.id)
    assert (message.channel, reply.channel, reply.appointment_id) == ("whatsapp", "whatsapp", visit.id)
    assert reply.text == appointments.text_for(reload(visit), "appointment_cancelled_by_patient")


def test_replies_of_one_appointment_are_all_in_its_message_log(app, visit):
    for text in ("2", "hello", "A"):
        say(text)
    linked = db.session.scalar(select(func.count()).select_from(Message).where(Message.appointment_id == visit.id))
    assert linked == 6  # three answers and three replies (the help text included)


# --- a pharmacist's chat on the patient's number ----------------------------------------------------------------------


def whatsapp(client, text: str, number: int, **media) -> None:
    params = sms_params(text, sid(number), sender=f"whatsapp:{PHONE}", To="whatsapp:+14155238886", **media)
    assert_twiml(post_twilio(client, "/webhooks/twilio/sms", params))


PHOTO = {"NumMedia": "1", "MediaContentType0": "image/jpeg",
         "MediaUrl0": "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1"}  # fmt: skip


def test_a_pharmacist_registered_with_the_patients_number_never_gets_the_patients_answer(
    app, client, visit, keep_signal_handlers
):
    """The attacker registers with the patient's number; the patient sends a photo, then answers the reminder."""
    register(client, phone=PHONE)
    whatsapp(client, "", 410, **PHOTO)
    work(app)
    whatsapp(client, "1", 411)
    work(app)

    assert contact().user_id is None
    assert db.session.scalar(select(func.count()).select_from(Consultation)) == 0  # no photo of theirs to read
    assert reload(visit).status == "confirmed"
    assert outbound()[-1].text == appointments.text_for(reload(visit), "appointment_confirmed")


def test_a_pharmacist_chat_linked_on_a_patients_number_still_lets_1_confirm(app, client, visit, keep_signal_handlers):
    """A phone shared by a pharmacist (linked with a code) and a patient: the reminder answer still reaches the visit."""
    pharmacist = make_user("pharmacist", phone=PHONE)
    code = consultations.create_chat_link(Actor(pharmacist.id, pharmacist.role, None, "127.0.0.1"))["code"]
    whatsapp(client, f"LINK {code}", 412)
    work(app)
    assert contact().user_id == pharmacist.id

    whatsapp(client, "1", 413)
    work(app)
    assert reload(visit).status == "confirmed"
    assert outbound()[-1].text == appointments.text_for(reload(visit), "appointment_confirmed")
