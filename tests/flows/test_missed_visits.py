"""Missed visits come back: the one recovery SMS (app/services/recovery.py), the reply ``2`` and a letter that rebook
(bots/flows/recovery.py), and the attendance report's recovered count.

The hourly job marks yesterday's visit missed; the minute job writes the recovery SMS at the clinic's next sending
time; the patient's reply is stored and handled as the webhook and the job do. Read back from the real database.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.messaging import inbox
from app.models import Appointment, Message, utcnow
from app.models.appointment import STATUS_CONFIRMED, STATUS_MISSED
from app.security import Actor
from app.services import appointments, recovery, reports
from app.services.upkeep import mark_missed
from tests.bots.test_webhooks import CONFIG
from tests.factories import past_visit
from tests.flows import OTHER_PHONE, PHONE, book, conversation, make_clinic, outbound, reload
from tests.flows.test_appointments import say


@pytest.fixture
def app(shared_app):
    application = shared_app(**CONFIG)
    with application.app_context():
        yield application
        db.session.remove()


@pytest.fixture
def clinic(app):
    return make_clinic("Tlokweng Clinic", language="en")


def yesterday(clinic, phone: str = PHONE, **fields) -> Appointment:
    """A visit yesterday at 10:00 clinic time that nobody marked."""
    return past_visit(clinic, phone, **fields)


def recoveries(phone: str = PHONE) -> list[Message]:
    return [m for m in outbound(phone) if (m.dedupe_key or "").startswith(recovery.RECOVERY_KEY)]


def missed_and_messaged(clinic, phone: str = PHONE) -> Appointment:
    visit = yesterday(clinic, phone)
    now = utcnow()
    mark_missed(now)
    recovery.queue_due_recovery(reload(visit).recovery_at or now)
    return reload(visit)


# --- the recovery SMS ---------------------------------------------------------------------------------------------


@pytest.mark.both_backends  # RETURNING from the bulk UPDATE; SKIP LOCKED
def test_a_missed_visit_gets_exactly_one_recovery_sms_at_the_next_sending_time(app, clinic):
    visit = yesterday(clinic)
    night = datetime.combine(appointments.local_time(clinic, utcnow()).date(), time(0, 30),
                             tzinfo=appointments.zone(clinic)).astimezone(UTC)  # fmt: skip

    assert mark_missed(night) == 1
    due = reload(visit).recovery_at
    assert appointments.local_time(clinic, due).time() == clinic.send_window_start  # next morning, 07:00
    assert recovery.queue_due_recovery(due - timedelta(minutes=1))["due"] == 0  # not before

    counts = recovery.queue_due_recovery(due)
    again = recovery.queue_due_recovery(due + timedelta(minutes=1))
    mark_missed(due)  # the hourly job again: the visit is already missed, nothing new is owed

    assert counts["queued"] == 1 and again["due"] == 0
    assert recovery.queue_due_recovery(due + timedelta(hours=2))["due"] == 0
    [sms] = recoveries()
    assert sms.kind == "notice" and sms.appointment_id == visit.id and sms.clinic_id == clinic.id
    day = appointments.format_day(clinic, visit.appointment_datetime, "en")
    assert sms.text == f"Thusa: we missed you at Tlokweng Clinic on {day}. Reply 2 to choose a new time."
    assert reload(visit).recovery_at is None


@pytest.mark.parametrize("case", ["opted_out", "later_visit", "attendance_corrected", "in_setswana"])
def test_who_gets_no_recovery_sms_and_in_which_language(app, clinic, case):
    visit = yesterday(clinic, patient_language="tn" if case == "in_setswana" else None)
    if case == "opted_out":
        inbox.contact_for(PHONE).opted_out_at = utcnow()
        db.session.commit()
    if case == "later_visit":
        book(clinic, days=5)
    mark_missed(utcnow())
    if case == "attendance_corrected":
        appointments.set_attendance(None, reload(visit), True)
        db.session.commit()
    recovery.queue_due_recovery(utcnow() + timedelta(days=1))

    sent = recoveries()
    if case == "in_setswana":
        assert [m.language for m in sent] == ["tn"] and sent[0].text.startswith("Thusa: ga re a go bona kwa")
    else:
        assert sent == []


ADMIN = Actor(user_id=None, role="admin", clinic_id=None, remote_addr=None)


def test_staff_marking_a_visit_missed_owes_one_recovery_sms(app, clinic):
    visit = yesterday(clinic)
    actor = ADMIN
    appointments.set_attendance(actor, visit, False)
    db.session.commit()
    first = reload(visit).recovery_at
    appointments.set_attendance(actor, reload(visit), False)  # marked twice: still one owed, not moved
    db.session.commit()

    assert first is not None and reload(visit).recovery_at == first
    assert appointments.in_send_window(clinic, first)


# --- the reply: 2, then a letter ----------------------------------------------------------------------------------


@pytest.mark.both_backends  # the report's "within 14 days" is interval arithmetic, Julian days on SQLite
def test_reply_2_then_a_letter_rebooks_linked_to_the_missed_visit_and_the_report_counts_it(app, clinic):
    missed = missed_and_messaged(clinic)
    assert missed.status == STATUS_MISSED

    _, offer = say("2")
    slots = [datetime.fromisoformat(at) for at in conversation().state["offer"]["slots"]]
    assert offer.text.startswith("Thusa: free times: A ") and offer.appointment_id == missed.id
    _, done = say("b")

    rebooked = db.session.scalar(select(Appointment).where(Appointment.rebooked_from_id == missed.id))
    assert rebooked.appointment_datetime == slots[1] and rebooked.status == STATUS_CONFIRMED
    assert done.text.startswith("Thusa: thank you. Your visit to Tlokweng Clinic is now on")
    assert recovery.recoverable(PHONE) is None  # rebooked: a later "2" is about the new visit

    day = appointments.local_time(clinic, missed.appointment_datetime).date()
    report = reports.attendance(ADMIN, clinic_id=clinic.id, since=day, until=day)
    assert report["overall"]["missed"] == 1 and report["overall"]["recovered"] == 1
    assert report["overall"]["recovery_rate"] == 1.0
    assert report["by_language"]["en"]["recovered"] == 1 and report["by_channel"]["sms"]["recovered"] == 1


def test_anything_else_gets_the_recovery_text_once_a_day_and_strangers_get_nothing_of_it(app, clinic):
    missed_and_messaged(clinic)
    _, first = say("hello")
    _, second = say("what?")
    _, stranger = say("2", sender=OTHER_PHONE)

    assert first.text.startswith("Thusa: you missed your visit to Tlokweng Clinic on")
    assert second is None
    assert stranger is None or "free times" not in stranger.text


def test_no_sms_no_rebooking_by_reply(app, clinic):
    visit = yesterday(clinic)
    mark_missed(utcnow())  # marked, but the recovery SMS has not gone yet

    _, reply = say("2")
    assert recovery.recoverable(PHONE) is None
    assert reply is None or "free times" not in reply.text
    assert db.session.scalar(select(Appointment).where(Appointment.rebooked_from_id == visit.id)) is None


def test_a_recovery_sms_claimed_outside_the_sending_hours_waits_for_them(app, clinic):
    from app.models import Message as Row
    from app.services import send_checks

    visit = missed_and_messaged(clinic)
    [sms] = recoveries()
    night = datetime.combine(appointments.local_time(clinic, utcnow()).date(), time(23, 0),
                             tzinfo=appointments.zone(clinic)).astimezone(UTC)  # fmt: skip
    verdict = send_checks.hold(db.session.get(Row, sms.id), visit, night)
    assert verdict.code is None and verdict.send_at == appointments.next_send_time(clinic, night)
