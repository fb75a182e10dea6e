"""The USSD entry point (bots/flows/ussd.py) through the real Africa's Talking endpoint: staff or patient routing,
every path of the patient menu, replays, sessions, languages and the 160-character screen limit.

Each hop is posted as Africa's Talking posts it: ``text`` is the whole session history joined with ``*``. The
answer is read from the HTTP response (``CON``/``END``); what it did from the real database (PostgreSQL).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.i18n import t
from app.i18n.gsm7 import septets
from app.models import Appointment, AuditLog, Message, utcnow
from app.models.clinic import WEEKDAYS
from app.services import appointments
from bots.flows.ussd import new_input
from bots.flows.ussd_menu import SCREEN_LIMIT
from tests.api.test_phone_proof import CONFIRM, register, send_code
from tests.bots.test_webhooks import CONFIG, USSD_PATH
from tests.conftest import bearer, make_user, sign_in
from tests.flows import (
    LONGEST_DAYS,
    LONGEST_NAME,
    OTHER_PHONE,
    PHONE,
    book,
    conversation,
    fill,
    inbound_rows,
    make_clinic,
    outbound,
    reload,
    set_language,
    when,
)


@pytest.fixture
def app(shared_app):
    application = shared_app(**CONFIG)
    with application.app_context():
        yield application
        db.session.remove()


class Session:
    """One USSD session as Africa's Talking drives it: every hop carries the history of the inputs so far."""

    count = 0

    def __init__(self, client, phone: str = PHONE, session_id: str | None = None):
        type(self).count += 1
        self.client, self.phone = client, phone
        self.session_id = session_id or f"ATUid_test_{type(self).count}"
        self.inputs: list[str] = []

    @property
    def history(self) -> str:
        return "*".join(self.inputs)

    def post(self, text: str):
        response = self.client.post(USSD_PATH, data={"sessionId": self.session_id, "phoneNumber": self.phone,
                                                     "serviceCode": "*384*2580#", "networkCode": "65201",
                                                     "text": text})  # fmt: skip
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.mimetype == "text/plain"
        return response.get_data(as_text=True)

    def dial(self) -> str:
        return self.post("")

    def send(self, typed: str) -> str:
        self.inputs.append(typed)
        return self.post(self.history)

    def close(self) -> None:
        response = self.client.post(USSD_PATH, data={"sessionId": self.session_id, "phoneNumber": self.phone,
                                                     "status": "Success", "input": self.history})  # fmt: skip
        assert response.status_code == 200


def con(text: str) -> str:
    return f"CON {text}"


def end(text: str) -> str:
    return f"END {text}"


def screen(appointment: Appointment, key: str, **params) -> str:
    return appointments.text_for(appointment, key, **params)


def slots_screen(appointment: Appointment, slots: list[datetime]) -> str:
    lines = "\n".join(f"{n} {when(appointment, at)}" for n, at in enumerate(slots, start=1))
    return screen(appointment, "ussd_slots_menu", slots=lines)


def invalid(appointment: Appointment, menu: str) -> str:
    language = appointments.language_of(appointment)
    text = t("ussd_invalid_choice", language, menu=menu)
    return text if len(text) <= SCREEN_LIMIT else t("ussd_invalid_choice", language, menu=menu.split("\n", 1)[1])


def offered() -> list[datetime]:
    return [datetime.fromisoformat(at) for at in conversation(channel="ussd").state["slots"]]


@pytest.fixture
def visit(clinic):
    return book(clinic, language="en")


# --- routing -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("contact_language", "user_language", "expected"),
    [(None, "tn", "tn"), (None, "en", "en"), ("en", "tn", "en"), ("tn", "en", "tn")],
)
def test_an_active_staff_phone_gets_the_staff_menu_pin_screen(app, client, contact_language, user_language,
                                                              expected):  # fmt: skip
    clinic = make_clinic()
    make_user("staff", clinic=clinic, phone=PHONE, language=user_language).pin_hash = "set"
    db.session.commit()
    book(clinic)  # staff may be patients too: the staff menu still wins
    set_language(PHONE, contact_language)

    body = Session(client).dial()

    assert body == con(t("ussd_staff_pin", expected))
    assert conversation(channel="ussd").state == {"menu": "ussd-staff"}


@pytest.mark.parametrize(("role", "active"), [("staff", False), ("viewer", True), ("admin", True)])
def test_every_other_phone_gets_the_patient_menu(app, client, visit, role, active):
    make_user(role, clinic=visit.clinic if role != "admin" else None, phone=PHONE, active=active)

    assert Session(client).dial() == con(screen(visit, "ussd_patient_menu"))


def test_a_staff_members_colleagues_phone_is_a_patient(app, client, clinic):
    make_user("staff", clinic=clinic, phone=OTHER_PHONE)
    visit = book(clinic, language="en")

    assert Session(client).dial() == con(screen(visit, "ussd_patient_menu"))
    assert Session(client, phone=OTHER_PHONE).dial() == end(t("ussd_staff_no_pin", "en"))


def test_a_staff_phone_that_is_not_proven_gets_the_patient_menu(app, client, visit):
    make_user("staff", clinic=visit.clinic, phone=PHONE, phone_proven=False).pin_hash = "set"
    db.session.commit()

    assert Session(client).dial() == con(screen(visit, "ussd_patient_menu"))


def test_a_squatted_staff_number_gets_no_staff_menu_until_proven(app, client, visit):
    """A stranger registers with the number, and the account is later made staff: the number is still unproven."""
    pair = register(client, phone=PHONE)
    admin = bearer(sign_in(app, make_user("admin"))["access_token"])
    user_id = pair["user"]["id"]
    promoted = client.patch(f"/api/v1/users/{user_id}", json={"role": "staff", "clinic_id": str(visit.clinic_id),
                                                                "pharmacy_name": None}, headers=admin)  # fmt: skip
    assert promoted.status_code == 200, promoted.get_json()
    assert client.put(f"/api/v1/users/{user_id}/pin", json={"pin": "2580"}, headers=admin).status_code == 204

    assert Session(client).dial() == con(screen(visit, "ussd_patient_menu"))  # no PIN screen, no staff menu

    code = send_code(client, pair["access_token"])
    assert client.post(CONFIRM, json={"code": code}, headers=bearer(pair["access_token"])).status_code == 200
    assert Session(client).dial() == con(t("ussd_staff_pin", "en"))


def test_an_admin_gives_the_squatted_number_to_the_real_staff_member(app, client, visit):
    register(client, phone=PHONE)
    admin = bearer(sign_in(app, make_user("admin"))["access_token"])
    body = {"email": "neo@example.org", "password": "a-long-enough-passphrase-9", "role": "staff",
            "clinic_id": str(visit.clinic_id), "phone": PHONE, "language": "en"}  # fmt: skip
    created = client.post("/api/v1/users", json=body, headers=admin)
    assert created.status_code == 201, created.get_json()
    client.put(f"/api/v1/users/{created.get_json()['id']}/pin", json={"pin": "2580"}, headers=admin)

    assert Session(client).dial() == con(t("ussd_staff_pin", "en"))


@pytest.mark.parametrize(
    ("contact_language", "last_clinic", "expected"),
    [(None, None, "en"), (None, "tn", "tn"), ("en", "tn", "en"), ("tn", None, "tn")],
)
def test_a_patient_with_nothing_upcoming_is_told_so(app, client, contact_language, last_clinic, expected):  # fmt: skip
    if last_clinic:
        past = book(make_clinic(language=last_clinic))
        appointments.cancel(None, past)
        db.session.commit()
    set_language(PHONE, contact_language)

    assert Session(client).dial() == end(t("ussd_patient_none", expected))


# --- every path of the patient menu --------------------------------------------------------------------------------


def test_confirm(app, client, visit):
    session = Session(client)
    assert session.dial() == con(screen(visit, "ussd_patient_menu"))

    body = session.send("1")

    appointment = reload(visit)
    assert appointment.status == "confirmed" and appointment.confirmed_at is not None
    assert body == end(screen(appointment, "appointment_confirmed"))
    chat = conversation(channel="ussd")
    assert (chat.flow, chat.state) == (None, {})


def test_change_then_choose_a_slot(app, client, visit):
    session = Session(client)
    session.dial()

    body = session.send("2")

    assert reload(visit).status == "reschedule_requested"
    slots = offered()
    assert len(slots) == 3
    assert body == con(slots_screen(visit, slots))

    done = session.send("3")

    appointment = reload(visit)
    assert (appointment.appointment_datetime, appointment.status) == (slots[2], "confirmed")
    assert done == end(screen(appointment, "appointment_rescheduled"))
    assert outbound() == [row for row in outbound() if row.channel == "ussd"]  # no SMS notice: the patient chose


def test_back_from_the_slots_and_from_the_check(app, client, visit):
    session = Session(client)
    menu = con(screen(visit, "ussd_patient_menu"))
    session.dial()
    session.send("2")
    assert session.send("0") == menu
    assert session.send("3") == con(screen(visit, "ussd_cancel_check"))
    assert session.send("2") == menu
    assert reload(visit).status == "reschedule_requested"  # asked for a change on the way, then did nothing

    assert session.send("1") == end(screen(reload(visit), "appointment_confirmed"))
    assert reload(visit).status == "confirmed"


def test_cannot_come_after_checking(app, client, visit):
    session = Session(client)
    session.dial()
    assert session.send("3") == con(screen(visit, "ussd_cancel_check"))
    assert reload(visit).status == "scheduled"  # nothing happens before the check is answered

    body = session.send("1")

    appointment = reload(visit)
    assert (appointment.status, appointment.cancelled_by) == ("cancelled", "patient")
    assert body == end(screen(appointment, "appointment_cancelled_by_patient"))


@pytest.mark.parametrize("typed", ["9", " ", "a", "12", "1*2", "0", " 4 ", "#"])
def test_an_invalid_choice_shows_the_same_screen_again(app, client, visit, typed):
    session = Session(client)
    session.dial()
    menu = screen(visit, "ussd_patient_menu")
    assert session.send(typed) == con(invalid(visit, menu))

    session.send("2")
    slots = slots_screen(visit, offered())
    assert session.send(typed if typed != "0" else "5") == con(invalid(visit, slots))

    session.send("0")
    session.send("3")
    check = screen(visit, "ussd_cancel_check")
    assert session.send(typed) == con(invalid(visit, check))

    assert session.send("1") == end(screen(reload(visit), "appointment_cancelled_by_patient"))  # still works


def test_an_input_containing_a_star_is_one_input(app, client, visit):
    """History ``3*1*2``: after the check screen (``3``) the person typed ``1*2``: not 1, not 2 — invalid."""
    session = Session(client)
    session.dial()
    session.send("3")
    assert session.send("1*2") == con(invalid(visit, screen(visit, "ussd_cancel_check")))
    assert reload(visit).status == "scheduled"


def test_a_slot_taken_meanwhile_offers_fresh_slots(app, client):
    clinic = make_clinic(slot_capacity=1)
    visit = book(clinic, language="tn")
    session = Session(client)
    session.dial()
    session.send("2")
    first = offered()
    fill(clinic, first[0])

    body = session.send("1")

    fresh = offered()
    assert first[0] not in fresh
    assert body == con(slots_screen(visit, fresh))
    assert reload(visit).appointment_datetime == visit.appointment_datetime
    assert session.send("1") == end(screen(reload(visit), "appointment_rescheduled"))
    assert reload(visit).appointment_datetime == fresh[0]


def test_no_free_slots_ends_with_the_clinic_will_call(app, client):
    visit = book(make_clinic(opening_hours={}), language="en")
    session = Session(client)
    session.dial()

    assert session.send("2") == end(screen(visit, "appointment_no_slots"))
    assert reload(visit).status == "reschedule_requested"


def test_an_appointment_cancelled_by_the_clinic_during_the_session_starts_over(app, client, clinic, visit):
    later = book(clinic, days=6, language="en")
    session = Session(client)
    session.dial()
    appointments.cancel(None, reload(visit))
    db.session.commit()

    assert session.send("1") == con(screen(later, "ussd_patient_menu"))
    assert reload(later).status == "scheduled"  # the 1 was for the other appointment: nothing done
    assert session.send("1") == end(screen(reload(later), "appointment_confirmed"))


def test_hops_and_screens_are_linked_to_the_appointment(app, client, clinic, visit):
    session = Session(client)
    session.dial()
    session.send("1")

    hops = inbound_rows()
    screens = outbound()
    assert len(hops) == len(screens) == 2
    assert {(row.appointment_id, row.clinic_id) for row in hops + screens} == {(visit.id, clinic.id)}
    assert [row.reply_to_id for row in screens] == [row.id for row in hops]


# --- replays and sessions ------------------------------------------------------------------------------------------


def test_a_replayed_hop_gets_the_same_screen_and_acts_once(app, client, visit):
    session = Session(client)
    first = session.dial()
    assert session.dial() == first
    session.send("2")
    slots_body = session.post("2")
    assert slots_body == con(slots_screen(visit, offered()))

    done = session.send("1")
    assert session.post("2*1") == done  # the replay, after the session ended
    assert session.post("2") == slots_body  # an older hop replayed late: its own screen, nothing new

    moves = db.session.scalar(select(func.count()).select_from(AuditLog)
                              .where(AuditLog.action == "appointment.reschedule"))  # fmt: skip
    assert moves == 1
    assert len(inbound_rows()) == len(outbound()) == 3
    chat = conversation(channel="ussd")
    assert (chat.flow, chat.state) == (None, {})


def test_a_new_session_starts_afresh_without_a_close_notification(app, client, visit):
    old = Session(client)
    old.dial()
    old.send("2")  # left in the slots screen; the network never told us the session ended
    assert conversation(channel="ussd").state["step"] == "slots"

    new = Session(client)
    assert new.dial() == con(screen(reload(visit), "ussd_patient_menu"))
    chat = conversation(channel="ussd")
    assert (chat.session_id, chat.state["step"]) == (new.session_id, "menu")

    assert new.send("1") == end(screen(reload(visit), "appointment_confirmed"))  # 1 = confirm, not the first slot
    assert reload(visit).appointment_datetime == visit.appointment_datetime


def test_a_late_close_of_an_old_session_leaves_the_new_one_alone(app, client, visit):
    old = Session(client)
    old.dial()
    new = Session(client)
    new.dial()
    new.send("3")

    old.close()

    chat = conversation(channel="ussd")
    assert (chat.flow, chat.state["step"]) == ("ussd", "check")
    assert new.send("1") == end(screen(reload(visit), "appointment_cancelled_by_patient"))


def test_the_close_of_the_current_session_forgets_it(app, client, visit):
    session = Session(client)
    session.dial()
    session.send("2")

    session.close()

    chat = conversation(channel="ussd")
    assert (chat.flow, chat.state) == (None, {})


def test_ussd_and_sms_conversations_are_separate(app, client, visit):
    session = Session(client)
    session.dial()
    session.send("2")
    assert conversation(channel="sms") is None


@pytest.mark.parametrize(
    ("stored", "history", "typed"),
    [("", "", ""), ("", "1", "1"), ("", "1*2", "1*2"), ("1", "1*2", "2"), ("1*2", "1*2*5*0", "5*0"),
     ("1", "1*", ""), ("1*2", "3", "3"), ("2", "2* 1 ", "1")],
)  # fmt: skip
def test_new_input_is_read_relative_to_the_stored_history(stored, history, typed):
    from bots.flows import Context

    chat = type("Chat", (), {"state": {"history": stored}})()
    ctx = Context(contact=None, conversation=chat, message=None, text="ignored", extra={"ussd_history": history})

    assert new_input(ctx) == typed
    assert chat.state["history"] == history


# --- languages and the 160-character limit -------------------------------------------------------------------------


def next_weekday(clinic, weekday: str, hour: time) -> datetime:
    """The first ``weekday`` at ``hour`` (clinic time) at least three days ahead, in UTC."""
    zone = appointments.zone(clinic)
    day = (utcnow().astimezone(zone) + timedelta(days=3)).date()
    while WEEKDAYS[day.weekday()] != weekday:
        day += timedelta(days=1)
    return datetime.combine(day, hour, tzinfo=zone).astimezone(UTC)


@pytest.mark.parametrize("language", ["en", "tn"])
def test_every_screen_fits_160_characters_with_the_longest_names(app, client, language):
    day = LONGEST_DAYS[language]
    clinic = make_clinic(LONGEST_NAME, language=language, opening_hours={day: [["15:00", "16:30"]]})
    visit = book(clinic, at=next_weekday(clinic, day, time(16, 30)))
    shown: list[str] = []

    def hop(session: Session, typed: str | None = None) -> str:
        body = session.dial() if typed is None else session.send(typed)
        shown.append(body)
        return body

    first = Session(client)
    hop(first)
    for typed in ("9", "2", "9", "0", "3", "9", "2", "1"):
        hop(first, typed)
    second = Session(client)
    hop(second)
    hop(second, "2")
    assert all(when(visit, at).startswith(t("weekdays", language).split(",")[WEEKDAYS.index(day)]) for at in offered())
    hop(second, "2")
    third = Session(client)
    hop(third)
    hop(third, "3")
    hop(third, "1")
    make_user("staff", clinic=clinic, phone=OTHER_PHONE)
    shown.append(Session(client, phone=OTHER_PHONE).dial())
    shown.append(Session(client, phone="+26773456789").dial())

    assert len(shown) == 17 and len(set(shown)) >= 12
    for body in shown:
        assert body[:4] in ("CON ", "END ")
        assert septets(body[4:]) is not None, body  # GSM-7 only
        assert len(body[4:]) <= SCREEN_LIMIT, (len(body[4:]), body)
    assert LONGEST_NAME in shown[0]


@pytest.mark.parametrize(
    ("appointment_language", "contact_language", "clinic_language", "expected"),
    [("tn", "en", "en", "tn"), ("en", "tn", "tn", "en"), (None, "tn", "en", "tn"), (None, None, "tn", "tn"),
     (None, None, "en", "en")],
)  # fmt: skip
def test_appointment_screens_follow_the_appointments_language(app, client, appointment_language, contact_language,
                                                              clinic_language, expected):  # fmt: skip
    visit = book(make_clinic(language=clinic_language))
    visit.language = appointment_language
    visit.patient.contact.language = contact_language
    db.session.commit()
    session = Session(client)

    body = session.dial()

    assert body == con(t("ussd_patient_menu", expected, clinic="Tlokweng Clinic",
                         when=when(visit, language=expected)))  # fmt: skip
    assert session.send("1") == end(t("appointment_confirmed", expected, clinic="Tlokweng Clinic",
                                      when=when(visit, language=expected)))  # fmt: skip


def test_no_screen_goes_through_the_outbox_or_a_job(app, client, visit):
    from app.jobs import QUEUE_DEFAULT, QUEUE_OUTBOUND, get_queue

    session = Session(client)
    session.dial()
    session.send("1")
    assert get_queue(QUEUE_DEFAULT).job_ids == [] and get_queue(QUEUE_OUTBOUND).job_ids == []
    assert {row.status for row in outbound()} == {"sent"}
    assert db.session.scalar(select(func.count()).select_from(Message).where(Message.channel == "sms")) == 0
