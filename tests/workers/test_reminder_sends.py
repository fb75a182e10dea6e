"""Sending appointment reminders: the checks at send time, the count of real sends, and crash safety.

Reminders are written by the real job (``queue_due_reminders``) and sent by the real send job with the real
``twilio`` client against :class:`tests.fakes.twilio.FakeTwilio` on 127.0.0.1 (every request held to Twilio's
OpenAPI description), which counts what it received: "exactly once" is counted at the provider. The send job's
clock (``bots.sending.utcnow``) is pinned where sending hours matter, so no test depends on the hour it runs
at; the tests with real worker processes use clinics that may send at any hour and the real clock.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path

import pytest
import redis
from sqlalchemy import select, update

import bots.sending
from app.extensions import db, redis_client
from app.jobs import QUEUE_OUTBOUND, get_queue
from app.messaging.outbox import SEND_BATCH, queue_outbound
from app.models import Appointment, Contact, Message, utcnow
from app.services import appointments
from app.services.send_checks import reminder_epoch
from app.services.upkeep import queue_due_reminders
from bots.sending import (
    STUCK_AFTER,
    UNTRIED_KEY,
    AllProvidersFailed,
    send_batch,
    send_message,
    sweep,
)
from tests.fakes.server import FakeProvider
from tests.fakes.twilio import FakeTwilio
from tests.workers.conftest import ACCOUNT_SID, AUTH_TOKEN, STEERING
from tests.workers.test_reminders import DAY, GABORONE, NOW, book, clinic, local
from workers.runner import run_worker

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TWILIO_FROM = "+15005550006"
WHATSAPP_FROM = "+14155238886"
ATTEMPTS = 3  # SEND_ATTEMPTS_PER_PROVIDER's default
ANY_HOUR = (clock_time(0, 0), clock_time.max)  # a clinic that may send at any hour: for the real clock


class Clock:
    """The send job's ``utcnow``, pinned and moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def twilio_settings(base_url: str) -> dict:
    return {
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_FROM": TWILIO_FROM,
        "TWILIO_WHATSAPP_FROM": "", "TWILIO_WHATSAPP_CONTENT_SID": "", "TWILIO_API_BASE_URL": base_url,
        "AT_USERNAME": "", "AT_API_KEY": "", "TELEGRAM_BOT_TOKEN": "", "WHATSAPP_TOKEN": "",
        "WHATSAPP_PHONE_NUMBER_ID": "", "WHATSAPP_TEMPLATE_REMINDER": "", "PUBLIC_BASE_URL": "",
        "SMS_PROVIDERS": ["twilio"], "SEND_RETRY_BACKOFF_SECONDS": "0",
    }  # fmt: skip


@pytest.fixture
def configure(app_for_fakes, twilio):
    """Build the app with Twilio pointed at the fake (plus overrides) and enter its context."""
    entered = []

    def make(**overrides):
        application = app_for_fakes(**{**twilio_settings(twilio.base_url), **overrides})
        context = application.app_context()
        context.push()
        entered.append(context)
        return application

    yield make
    for context in reversed(entered):
        db.session.remove()
        context.pop()


@pytest.fixture
def app(configure):
    return configure()


@pytest.fixture
def clock(monkeypatch) -> Clock:
    pinned = Clock(NOW)
    monkeypatch.setattr(bots.sending, "utcnow", pinned)
    return pinned


# --- helpers ---------------------------------------------------------------------------------------------------------


def written(appointment: Appointment, now: datetime) -> uuid.UUID:
    """Run the reminder job at ``now`` and return the one reminder it wrote for ``appointment``."""
    assert queue_due_reminders(now=now)["queued"] == 1
    return db.session.scalar(
        select(Message.id)
        .where(Message.appointment_id == appointment.id, Message.kind == "reminder")
        .order_by(Message.created_at.desc())
        .limit(1)
    )


def row(message_id: uuid.UUID) -> Message:
    db.session.expire_all()
    return db.session.get(Message, message_id)


def fresh(appointment: Appointment) -> Appointment:
    db.session.expire_all()
    return db.session.get(Appointment, appointment.id)


def to_numbers(fake: FakeTwilio) -> Counter:
    return Counter(request.form["To"][0] for request in fake.requests)


# --- a reminder that may go out goes out once, and is counted ------------------------------------------------------


def test_a_due_reminder_is_sent_once_and_counted_on_the_appointment(app, twilio, clock):
    appointment = book(clinic(), NOW + 3 * DAY)
    message_id = written(appointment, NOW)

    assert send_message(str(message_id)) == "sent"
    assert send_message(str(message_id)) == "sent"  # a repeated job sends nothing more

    assert twilio.created == [{"To": appointment.patient.phone, "From": TWILIO_FROM, "Body": row(message_id).text}]
    message = row(message_id)
    assert (message.status, message.provider, message.provider_id) == ("sent", "twilio", twilio.resources[0]["sid"])
    assert (message.attempts, message.error_code) == (1, None)
    after = fresh(appointment)
    assert (after.reminders_sent, after.channel) == (1, "sms")


def test_both_offsets_sent_count_two(app, twilio, clock):
    at = NOW + 3 * DAY
    appointment = book(clinic(), at)
    first = written(appointment, NOW)
    assert send_message(str(first)) == "sent"
    clock.now = at - DAY
    second = written(appointment, at - DAY)
    assert second != first

    assert send_message(str(second)) == "sent"

    assert fresh(appointment).reminders_sent == 2
    assert len(twilio.requests) == 2


# --- checked again at send time: cancelled, moved, attended, past → never sent ---------------------------------------


def _cancel(appointment):
    appointments.cancel(None, appointment)


def _cancel_by_patient(appointment):
    appointments.cancel(None, appointment, by_patient=True)


def _move(appointment):
    appointments.reschedule(None, appointment, appointment.appointment_datetime + DAY)


# Attendance is recorded once it can be known (on the visit's day, after its time); the send below still runs at NOW,
# before the visit, so only the changed status can stop the reminder.
def _attended(appointment):
    appointments.set_attendance(None, appointment, True, now=appointment.appointment_datetime)


def _missed(appointment):
    appointments.set_attendance(None, appointment, False, now=appointment.appointment_datetime + timedelta(hours=1))


@pytest.mark.parametrize(
    "change",
    [_cancel, _cancel_by_patient, _move, _attended, _missed],
    ids=["cancelled_by_clinic", "cancelled_by_patient", "moved", "attended", "missed"],
)
def test_a_reminder_whose_appointment_changed_before_it_went_out_is_never_sent(app, twilio, clock, change):
    appointment = book(clinic(), NOW + 3 * DAY)
    message_id = written(appointment, NOW)
    change(fresh(appointment))
    db.session.commit()

    assert send_message(str(message_id)) == "failed"

    message = row(message_id)
    assert (message.status, message.error_code, message.provider_id) == ("failed", "appointment_changed", None)
    reminder_numbers = [r for r in twilio.created if r["Body"] == message.text]
    assert reminder_numbers == []
    assert fresh(appointment).reminders_sent == 0
    assert send_message(str(message_id)) == "failed"


def test_a_reminder_for_an_appointment_that_has_passed_is_never_sent(app, twilio, clock):
    at = NOW + 3 * DAY
    appointment = book(clinic(), at)
    message_id = written(appointment, NOW)
    clock.now = at + timedelta(minutes=1)  # the job waited in Redis until after the visit

    assert send_message(str(message_id)) == "failed"

    assert row(message_id).error_code == "appointment_changed"
    assert twilio.requests == []


def test_an_appointment_moved_and_moved_back_still_gets_the_reminder_written_for_that_time(app, twilio, clock):
    appointment = book(clinic(), NOW + 3 * DAY)
    message_id = written(appointment, NOW)
    original = appointment.appointment_datetime
    appointments.reschedule(None, fresh(appointment), original + DAY)
    appointments.reschedule(None, fresh(appointment), original)
    db.session.commit()

    assert send_message(str(message_id)) == "sent"

    reminder_bodies = [r["Body"] for r in twilio.created if r["Body"] == row(message_id).text]
    assert len(reminder_bodies) == 1
    assert fresh(appointment).reminders_sent == 1


def test_a_reminder_about_no_appointment_is_only_held_to_its_clinics_hours(app, twilio, clock):
    at_clinic = clinic()
    plain = queue_outbound(
        channel="sms", address="+26771234567", text="Thusa reminder: bring your card", kind="reminder"
    )
    of_clinic = queue_outbound(channel="sms", address="+26771234568", text="Thusa reminder: bring your card",
                               kind="reminder", clinic_id=at_clinic.id)  # fmt: skip
    db.session.commit()
    clock.now = local(GABORONE, 2030, 3, 6, 22, 0)

    assert send_message(str(plain.id)) == "sent"
    assert send_message(str(of_clinic.id)) == "scheduled"
    assert row(of_clinic.id).send_at == local(GABORONE, 2030, 3, 7, 7, 0)


@pytest.mark.parametrize(
    ("key", "epoch"),
    [
        ("reminder:7a1c0c7e-4e0b-4d7c-9a51-6d7e3f1b2c3d:1440:1899999000", 1899999000),
        ("reminder:x:4320:0", 0),
        ("reminder:x:4320:soon", None),
        ("moved:7a1c0c7e:1899999000", None),
        ("", None),
        (None, None),
    ],
)
def test_the_appointment_time_is_read_back_from_the_reminder_key(key, epoch):
    assert reminder_epoch(key) == epoch


# --- sending hours ----------------------------------------------------------------------------------------------------


def test_a_reminder_outside_the_sending_hours_waits_for_the_next_allowed_time_then_goes_out_once(app, twilio, clock):
    at = local(GABORONE, 2030, 3, 7, 12, 0)  # Thursday 12:00
    appointment = book(clinic([1440]), at)
    message_id = written(appointment, local(GABORONE, 2030, 3, 6, 12, 0))  # written Wednesday 12:00
    clock.now = local(GABORONE, 2030, 3, 6, 21, 30)  # its job only ran at 21:30 (a backlog)

    assert send_message(str(message_id)) == "scheduled"

    message = row(message_id)
    opens = local(GABORONE, 2030, 3, 7, 7, 0)
    assert (message.status, message.send_at, message.attempts, message.claimed_at) == ("scheduled", opens, 0, None)
    assert twilio.requests == []
    assert send_message(str(message_id)) == "scheduled"  # a stray repeat of the job does nothing
    assert sweep()["released"] == 0  # not yet

    clock.now = opens
    assert sweep()["released"] == 1
    assert f"send-{message_id}" in get_queue(QUEUE_OUTBOUND).job_ids
    assert send_message(str(message_id)) == "sent"

    assert len(twilio.requests) == 1
    assert (row(message_id).attempts, fresh(appointment).reminders_sent) == (1, 1)


def test_a_reminder_with_no_allowed_time_left_before_the_appointment_is_dropped(app, twilio, clock):
    at = local(GABORONE, 2030, 3, 7, 6, 30)  # Thursday 06:30, before the hours open
    appointment = book(clinic([1440]), at)
    message_id = written(appointment, local(GABORONE, 2030, 3, 6, 7, 0))
    clock.now = local(GABORONE, 2030, 3, 6, 20, 0)  # the window closes at 20:00

    assert send_message(str(message_id)) == "failed"

    message = row(message_id)
    assert (message.status, message.error_code) == ("failed", "outside_sending_hours")
    assert twilio.requests == []
    assert fresh(appointment).reminders_sent == 0


@pytest.mark.parametrize(
    ("local_now", "sent"),
    [
        pytest.param((2030, 3, 6, 6, 59), False, id="0659_before_opening"),
        pytest.param((2030, 3, 6, 7, 0), True, id="0700_opening"),
        pytest.param((2030, 3, 6, 19, 59), True, id="1959_last_minute"),
        pytest.param((2030, 3, 6, 20, 0), False, id="2000_closed"),
    ],
)
def test_the_sending_hours_edges_in_clinic_time(app, twilio, clock, local_now, sent):
    appointment = book(clinic([1440], window=(clock_time(7, 0), clock_time(20, 0))), local(GABORONE, 2030, 3, 7, 12))
    message_id = written(appointment, local(GABORONE, 2030, 3, 6, 12, 0))
    clock.now = local(GABORONE, *local_now)

    assert send_message(str(message_id)) == ("sent" if sent else "scheduled")
    assert len(twilio.requests) == (1 if sent else 0)


def test_a_retry_after_every_provider_failed_also_waits_for_the_sending_hours(app, twilio, clock):
    at = local(GABORONE, 2030, 3, 7, 12, 0)
    appointment = book(clinic([1440]), at)
    message_id = written(appointment, local(GABORONE, 2030, 3, 6, 19, 0))
    clock.now = local(GABORONE, 2030, 3, 6, 19, 58)
    for _ in range(ATTEMPTS):
        twilio.fail(500)
    with pytest.raises(AllProvidersFailed):
        send_message(str(message_id))
    assert (row(message_id).status, row(message_id).attempts) == ("queued", 1)

    clock.now = local(GABORONE, 2030, 3, 6, 20, 8)  # RQ's retry comes after the window closed
    assert send_message(str(message_id)) == "scheduled"

    message = row(message_id)
    assert (message.send_at, message.attempts) == (local(GABORONE, 2030, 3, 7, 7, 0), 1)
    assert len(twilio.requests) == ATTEMPTS
    clock.now = local(GABORONE, 2030, 3, 7, 7, 1)
    assert sweep()["released"] == 1
    assert send_message(str(message_id)) == "sent"
    assert len(twilio.requests) == ATTEMPTS + 1 and len(twilio.created) == 1
    assert (row(message_id).attempts, fresh(appointment).reminders_sent) == (2, 1)


def test_a_notice_outside_the_sending_hours_waits_too_and_is_not_stopped_by_the_cancellation_it_announces(
    app, twilio, clock
):
    appointment = book(clinic(), local(GABORONE, 2030, 3, 7, 12, 0))
    appointments.cancel(None, appointment)  # the clinic cancels: the patient is told (a notice)
    db.session.commit()
    (notice,) = db.session.scalars(select(Message).where(Message.kind == "notice")).all()
    clock.now = local(GABORONE, 2030, 3, 6, 22, 0)

    assert send_message(str(notice.id)) == "scheduled"
    assert row(notice.id).send_at == local(GABORONE, 2030, 3, 7, 7, 0)

    clock.now = local(GABORONE, 2030, 3, 7, 7, 0)
    sweep()
    assert send_message(str(notice.id)) == "sent"
    assert [r["Body"] for r in twilio.created] == [notice.text]
    assert fresh(appointment).reminders_sent == 0  # a notice is not a reminder


# --- reminders_sent counts only sends that really happened ----------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "status", "counted"),
    [
        pytest.param(None, "sent", 1, id="accepted"),
        pytest.param((400, 21211), "failed", 0, id="refused_invalid_number"),
        pytest.param((400, 21610), "failed", 0, id="refused_opted_out"),
    ],
)
def test_reminders_sent_counts_accepted_sends_only(app, twilio, clock, answer, status, counted):
    appointment = book(clinic(), NOW + 3 * DAY)
    message_id = written(appointment, NOW)
    if answer:
        twilio.fail(*answer)

    assert send_message(str(message_id)) == status

    assert fresh(appointment).reminders_sent == counted


def test_a_send_that_may_have_happened_is_unknown_and_not_counted(configure, clean_env, clock):
    with FakeProvider() as garbled:
        garbled.respond(200, "<html>a captive portal</html>")
        configure(TWILIO_API_BASE_URL=garbled.base_url)
        appointment = book(clinic(), NOW + 3 * DAY)
        message_id = written(appointment, NOW)

        assert send_message(str(message_id)) == "unknown"
        assert send_message(str(message_id)) == "unknown"

        assert len(garbled.requests) == 1
        assert fresh(appointment).reminders_sent == 0


def test_an_opt_out_after_the_reminder_was_written_stops_it(app, twilio, clock):
    appointment = book(clinic(), NOW + 3 * DAY)
    message_id = written(appointment, NOW)
    db.session.get(Contact, appointment.patient.contact_id).opted_out_at = utcnow()
    db.session.commit()

    assert send_message(str(message_id)) == "failed"

    assert row(message_id).error_code == "opted_out"
    assert twilio.requests == []
    assert fresh(appointment).reminders_sent == 0


@pytest.mark.parametrize(
    ("last_inbound", "used"),
    [pytest.param(timedelta(hours=1), "whatsapp", id="inside_24h"), pytest.param(None, "sms", id="fell_back_to_sms")],
)
def test_the_appointment_records_the_channel_the_reminder_really_went_by(configure, twilio, clock, last_inbound,
                                                                         used):  # fmt: skip
    configure(TWILIO_WHATSAPP_FROM=WHATSAPP_FROM)
    appointment = book(clinic(), NOW + 3 * DAY, channel="whatsapp")
    if last_inbound:
        db.session.get(Contact, appointment.patient.contact_id).last_whatsapp_inbound_at = NOW - last_inbound
        db.session.commit()
    message_id = written(appointment, NOW)
    assert row(message_id).channel == "whatsapp"

    assert send_message(str(message_id)) == "sent"

    (created,) = twilio.created
    assert created["To"] == ("whatsapp:" if used == "whatsapp" else "") + appointment.patient.phone
    assert row(message_id).channel == used
    after = fresh(appointment)
    assert (after.reminders_sent, after.channel) == (1, used)


# --- the real worker ---------------------------------------------------------------------------------------------------


def test_the_worker_sends_a_batch_of_reminders_each_exactly_once(app, twilio, clock, keep_signal_handlers):
    at_clinic = clinic()
    booked = [book(at_clinic, NOW + 3 * DAY + timedelta(minutes=i)) for i in range(12)]
    counts = queue_due_reminders(now=NOW + timedelta(minutes=15), batch_size=5)
    assert counts["queued"] == 12
    db.session.close()

    run_worker(app, burst=True, with_scheduler=False)
    run_worker(app, burst=True, with_scheduler=False)  # nothing left to do

    assert to_numbers(twilio) == Counter({a.patient.phone: 1 for a in booked})
    assert {row(m).status for m in db.session.scalars(select(Message.id))} == {"sent"}
    assert [fresh(a).reminders_sent for a in booked] == [1] * 12


# --- batch send jobs -----------------------------------------------------------------------------------------------


def _batch_jobs() -> dict[str, list[str]]:
    return {job.id: job.args[0] for job in get_queue(QUEUE_OUTBOUND).get_jobs()}


def test_many_reminders_go_out_in_batch_jobs_that_the_sweeper_knows_are_pending(app, twilio, clock,
                                                                               keep_signal_handlers):  # fmt: skip
    at_clinic = clinic()
    booked = [book(at_clinic, NOW + 3 * DAY + timedelta(minutes=i % 5)) for i in range(60)]
    assert queue_due_reminders(now=NOW + timedelta(minutes=10), batch_size=100)["queued"] == 60

    jobs = _batch_jobs()
    assert sorted(len(ids) for ids in jobs.values()) == [10, SEND_BATCH, SEND_BATCH]
    assert all(job_id == f"send-batch-{ids[0]}" for job_id, ids in jobs.items())
    assert sorted(i for ids in jobs.values() for i in ids) == sorted(str(m) for m in db.session.scalars(
        select(Message.id)))  # fmt: skip
    # The pinned clock makes every row look stale to the sweeper: their batch jobs are pending, so nothing is added.
    assert sweep() == {"released": 0, "requeued": 0, "unknown": 0}
    db.session.close()

    run_worker(app, burst=True, with_scheduler=False)

    assert to_numbers(twilio) == Counter({a.patient.phone: 1 for a in booked})
    assert [fresh(a).reminders_sent for a in booked] == [1] * 60
    finished = [get_queue(QUEUE_OUTBOUND).fetch_job(job_id) for job_id in jobs]
    assert sorted(job.return_value()["sent"] for job in finished) == [10, SEND_BATCH, SEND_BATCH]
    assert sweep() == {"released": 0, "requeued": 0, "unknown": 0}


def test_a_reminder_whose_providers_all_failed_in_a_batch_gets_a_job_of_its_own_then_goes_out_once(
    app, twilio, clock, keep_signal_handlers
):
    at_clinic = clinic()
    booked = [book(at_clinic, NOW + 3 * DAY) for _ in range(3)]
    queue_due_reminders(now=NOW)
    (job_id,) = _batch_jobs()
    for _ in range(ATTEMPTS):
        twilio.fail(500)  # the batch's first message: every try of the only provider fails
    db.session.close()

    run_worker(app, burst=True, with_scheduler=False)

    assert get_queue(QUEUE_OUTBOUND).fetch_job(job_id).return_value() == {"retry": 1, "sent": 2}
    (waiting,) = db.session.scalars(select(Message).where(Message.status == "queued")).all()
    assert waiting.attempts == 1
    assert sweep()["requeued"] == 1  # its batch job is over: a job of its own, which RQ retries with back-off
    assert get_queue(QUEUE_OUTBOUND).job_ids == [f"send-{waiting.id}"]
    db.session.close()
    run_worker(app, burst=True, with_scheduler=False)

    assert len(twilio.created) == 3
    assert to_numbers(twilio)[waiting.address] == ATTEMPTS + 1
    assert [fresh(a).reminders_sent for a in booked] == [1, 1, 1]


def test_an_opt_out_the_provider_reports_mid_batch_stops_the_rest_of_the_batch_to_that_number(
    app, twilio, clock, keep_signal_handlers
):
    at_clinic = clinic()
    phone = "+26771230000"
    first = book(at_clinic, NOW + 3 * DAY, phone=phone)
    second = book(at_clinic, NOW + 3 * DAY + timedelta(hours=1), phone=phone)  # the same patient, another visit
    queue_due_reminders(now=NOW + timedelta(hours=1))
    (job_id,) = _batch_jobs()
    twilio.fail(400, 21610)  # "Attempt to send to unsubscribed recipient": the person replied STOP to Twilio
    db.session.close()

    run_worker(app, burst=True, with_scheduler=False)

    assert get_queue(QUEUE_OUTBOUND).fetch_job(job_id).return_value() == {"failed": 2}
    assert len(twilio.requests) == 1  # the second reminder saw the opt-out: never sent
    assert {row(m).error_code for m in db.session.scalars(select(Message.id))} == {"21610", "opted_out"}
    assert db.session.scalar(select(Contact.opted_out_at).where(Contact.address == phone)) is not None
    assert (fresh(first).reminders_sent, fresh(second).reminders_sent) == (0, 0)


def test_a_slow_batch_hands_the_rest_on_to_a_new_job_and_each_reminder_goes_out_once(app, twilio, clock, monkeypatch,
                                                                                    keep_signal_handlers):  # fmt: skip
    monkeypatch.setattr(bots.sending, "BATCH_SECONDS", 0.0)  # every job is "slow" after its first send
    at_clinic = clinic()
    booked = [book(at_clinic, NOW + 3 * DAY) for _ in range(4)]
    queue_due_reminders(now=NOW)
    (job_id,) = _batch_jobs()
    db.session.close()

    run_worker(app, burst=True, with_scheduler=False)

    assert get_queue(QUEUE_OUTBOUND).fetch_job(job_id).return_value() == {"sent": 1, "handed_on": 3}
    assert to_numbers(twilio) == Counter({a.patient.phone: 1 for a in booked})
    assert {row(m).status for m in db.session.scalars(select(Message.id))} == {"sent"}


def _claimed_by_a_dead_batch(count: int) -> list[uuid.UUID]:
    """``count`` due reminders left ``sending`` by a batch whose worker died, longer ago than any job may run."""
    at_clinic = clinic()
    for i in range(count):
        book(at_clinic, NOW + 3 * DAY + timedelta(minutes=i))
    queue_due_reminders(now=NOW + timedelta(hours=1))
    get_queue(QUEUE_OUTBOUND).empty()  # the dead batch's job is gone with it
    db.session.execute(
        update(Message).values(status="sending", attempts=1, claimed_at=utcnow() - STUCK_AFTER - timedelta(seconds=1))
    )
    db.session.commit()
    return list(db.session.scalars(select(Message.id).order_by(Message.created_at, Message.id)))


@pytest.mark.parametrize(
    ("untried", "requeued", "unknown"),
    [
        pytest.param({0, 1}, 2, 1, id="handed-to-a-provider-unknown-the-rest-queued-again"),
        pytest.param(set(), 0, 3, id="notes-lost-with-redis-all-unknown"),
    ],
)
def test_the_sweeper_queues_again_only_what_a_dead_batch_never_handed_to_a_provider(app, twilio, clock, untried,
                                                                                     requeued, unknown):  # fmt: skip
    ids = _claimed_by_a_dead_batch(3)
    for index in untried:
        redis_client.client.set(f"{UNTRIED_KEY}{ids[index]}", 1)

    assert sweep() == {"released": 0, "requeued": requeued, "unknown": unknown}

    db.session.expire_all()
    for index, message_id in enumerate(ids):
        again = index in untried
        assert (row(message_id).status, row(message_id).attempts) == (("queued", 0) if again else ("unknown", 1))
    assert redis_client.client.keys(f"{UNTRIED_KEY}*") == []
    assert sorted(get_queue(QUEUE_OUTBOUND).job_ids) == sorted(f"send-{ids[i]}" for i in untried)
    assert twilio.requests == []


def test_a_batch_that_cannot_clear_its_untried_notes_sends_nothing_and_queues_its_rows_again(app, twilio, clock,
                                                                                             monkeypatch):  # fmt: skip
    """A note left behind would let the sweeper queue again a row already sent: without Redis's word that it is
    gone, no provider is called."""
    at_clinic = clinic()
    booked = [book(at_clinic, NOW + 3 * DAY + timedelta(minutes=i)) for i in range(2)]
    queue_due_reminders(now=NOW + timedelta(hours=1))
    (ids,) = _batch_jobs().values()
    db.session.close()

    def unreachable(self, *names):
        raise redis.ConnectionError("Redis restarting")

    with monkeypatch.context() as patched:
        patched.setattr(redis.Redis, "delete", unreachable)
        assert send_batch(ids) == {"retry": 2}

    assert twilio.requests == []
    assert {(row(m).status, row(m).attempts) for m in ids} == {("queued", 0)}
    run_worker(app, burst=True, with_scheduler=False)  # the job they were handed back to
    assert to_numbers(twilio) == Counter({a.patient.phone: 1 for a in booked})


def _child_env(app, twilio: FakeTwilio) -> dict:
    env = {name: value for name, value in os.environ.items() if not name.startswith(STEERING)}
    env.update({
        "THUSA_ENV": "test", "FLASK_SKIP_DOTENV": "1", "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "REDIS_URL": app.config["REDIS_URL"], "INSTANCE_PATH": app.config["INSTANCE_PATH"], "LOG_LEVEL": "WARNING",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_FROM": TWILIO_FROM,
        "TWILIO_API_BASE_URL": twilio.base_url, "SMS_PROVIDERS": "twilio", "SEND_RETRY_BACKOFF_SECONDS": "0",
        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
    })  # fmt: skip
    return env


def _worker(app, twilio: FakeTwilio) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--burst", "--no-scheduler", "--queue", "outbound"],
        cwd=PROJECT_ROOT,
        env=_child_env(app, twilio),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_a_real_worker_sigkilled_during_a_batch_of_reminders_loses_none_and_repeats_none(app, twilio,
                                                                                        keep_signal_handlers):  # fmt: skip
    """Crash safety end to end: ``flask worker`` in a child process sends a batch of reminders to a slow Twilio and is
    SIGKILLed while one request is in flight. The batch had claimed all 12 and records its sends together at its
    end, so all 12 are left ``sending``. After the sweeper and a restarted worker, every reminder was received by
    the provider exactly once: the 5 handed to the provider are ``unknown`` (a person checks them), the 7 never
    handed to it (their untried note in Redis) were queued again and sent."""
    at_clinic = clinic([1440], window=ANY_HOUR)  # the child runs on the real clock
    now = datetime.now(UTC)
    booked = [
        book(at_clinic, now + timedelta(hours=23, minutes=i), planned=now - timedelta(hours=2)) for i in range(12)
    ]
    assert queue_due_reminders(now=now)["queued"] == 12
    db.session.close()
    answered_before_kill = 4
    for _ in range(answered_before_kill):
        twilio.slow(0.2)  # a slow provider: the batch takes a while
    twilio.slow(60)  # the next request hangs: the worker is killed while it waits

    child = _worker(app, twilio)
    try:
        deadline = time.monotonic() + 60  # the child imports the whole app first: 30 s failed on a loaded machine
        while len(twilio.requests) <= answered_before_kill and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert child.poll() is None, child.stderr.read().decode(errors="replace")[-2000:]
        assert len(twilio.requests) == answered_before_kill + 1, "the child never reached the hanging request"
    finally:
        child.kill()  # SIGKILL: no handler, no cleanup, mid-request
        child.wait(timeout=10)
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL

    statuses = Counter(m.status for m in db.session.scalars(select(Message)))
    not_reached = 12 - answered_before_kill - 1
    assert statuses == {"sending": 12}
    # At once: the claim is fresh (it may still finish) and the killed batch job still looks alive.
    assert sweep() == {"released": 0, "requeued": 0, "unknown": 0}
    # Later (moved forward instead of waited for): STUCK_AFTER since the claim, and the job's time is up, so RQ's
    # registry sees it abandoned.
    db.session.execute(
        update(Message)
        .where(Message.status == "sending")
        .values(claimed_at=utcnow() - STUCK_AFTER - timedelta(seconds=1))
    )
    db.session.commit()
    get_queue(QUEUE_OUTBOUND).started_job_registry.cleanup(timestamp=time.time() + STUCK_AFTER.total_seconds())
    assert sweep() == {"released": 0, "requeued": not_reached, "unknown": answered_before_kill + 1}

    restarted = _worker(app, twilio)  # the restart
    try:
        assert restarted.wait(timeout=120) == 0, restarted.stderr.read().decode(errors="replace")[-2000:]
    finally:
        restarted.stderr.close()
    assert sweep() == {"released": 0, "requeued": 0, "unknown": 0}
    # Another worker on what is left sends nothing more. In this process: the real restart above already proved a
    # fresh `flask worker`, and a third interpreter start cost seconds.
    run_worker(app, (QUEUE_OUTBOUND,), burst=True, with_scheduler=False)

    assert to_numbers(twilio) == Counter({a.patient.phone: 1 for a in booked})  # none lost, none twice
    db.session.expire_all()
    final = {m.appointment_id: m.status for m in db.session.scalars(select(Message))}
    assert Counter(final.values()) == {"sent": not_reached, "unknown": answered_before_kill + 1}
    counted = {a.id: fresh(a).reminders_sent for a in booked}
    assert all(counted[a] == (1 if status == "sent" else 0) for a, status in final.items())
    unknown = [m for m in db.session.scalars(select(Message)) if m.status == "unknown"]
    assert all("mid-send" in m.last_error for m in unknown)
