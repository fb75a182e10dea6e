"""Sending with the real provider clients: retries, failover, permanent errors, crash safety, WhatsApp, encoding.

The real ``twilio`` and ``africastalking`` clients talk to fake servers on 127.0.0.1: Twilio to
:class:`tests.fakes.twilio.FakeTwilio` (every request held to Twilio's OpenAPI description), Africa's Talking to a
:class:`tests.fakes.server.FakeProvider` answering like AT's ``/version1/messaging``. The fakes count requests, so
"exactly once" is counted where it matters: at the provider. The send job is called directly or run by the real
RQ worker; a worker killed with SIGKILL mid-send is a real child process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from app.extensions import db
from app.jobs import QUEUE_OUTBOUND, get_queue
from app.messaging.outbox import OptedOut, queue_outbound
from app.models import Contact, Message, MessageEvent, utcnow
from bots.sending import MAX_ATTEMPTS, STALE_AFTER, STUCK_AFTER, AllProvidersFailed, send_message, sweep
from tests.conftest import bearer
from tests.fakes.server import FakeProvider
from tests.fakes.twilio import FakeTwilio
from tests.workers.conftest import ACCOUNT_SID, AUTH_TOKEN, STEERING
from workers.runner import run_worker

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TWILIO_FROM = "+15005550006"
WHATSAPP_FROM = "+14155238886"
CONTENT_SID = "HX" + "fedcba9876543210" * 2
AT_USERNAME, AT_API_KEY = "thusa", "atsk_live_key_0123456789abcdef"
PHONE = "+26771234567"
BODY = "Thusa: your appointment at Tlokweng Clinic is tomorrow at 09:00."
ATTEMPTS = 3  # SEND_ATTEMPTS_PER_PROVIDER's default, a provider gets at most 3 tries


def at_success(message_id: str = "ATXid_out_1", number: str = PHONE) -> dict:
    """AT's answer when it takes the message: per-recipient status inside SMSMessageData."""
    return {
        "SMSMessageData": {
            "Message": "Sent to 1/1 Total Cost: BWP 0.2000",
            "Recipients": [
                {
                    "statusCode": 101,
                    "number": number,
                    "status": "Success",
                    "cost": "BWP 0.2000",
                    "messageId": message_id,
                }
            ],
        }
    }


def at_refusal(code: int, status: str) -> dict:
    return {
        "SMSMessageData": {
            "Message": "Sent to 0/1 Total Cost: 0",
            "Recipients": [{"statusCode": code, "number": PHONE, "status": status, "cost": "0", "messageId": "None"}],
        }
    }


@pytest.fixture
def at(clean_env):
    with FakeProvider() as fake:
        yield fake


def provider_settings(twilio: FakeTwilio, at: FakeProvider) -> dict:
    return {
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM": TWILIO_FROM,
        "TWILIO_WHATSAPP_FROM": "",
        "TWILIO_WHATSAPP_CONTENT_SID": "",
        "TWILIO_API_BASE_URL": twilio.base_url,
        "AT_USERNAME": AT_USERNAME,
        "AT_API_KEY": AT_API_KEY,
        "AT_SENDER_ID": "",
        "AT_API_BASE_URL": at.base_url,
        "TELEGRAM_BOT_TOKEN": "",
        "WHATSAPP_TOKEN": "",
        "WHATSAPP_PHONE_NUMBER_ID": "",
        "WHATSAPP_TEMPLATE_REMINDER": "",
        "PUBLIC_BASE_URL": "",
        "SMS_PROVIDERS": ["twilio", "africastalking"],
        "SEND_RETRY_BACKOFF_SECONDS": "0",  # no sleeps between a provider's tries
    }


@pytest.fixture
def configure(app_for_fakes, twilio, at):
    """Build the app with both providers pointed at the fakes (plus overrides) and enter its context."""
    entered = []

    def make(**overrides):
        application = app_for_fakes(**{**provider_settings(twilio, at), **overrides})
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


# --- helpers -------------------------------------------------------------------------------------------------------


def queued(text: str = BODY, channel: str = "sms", address: str = PHONE) -> uuid.UUID:
    message = queue_outbound(channel=channel, address=address, text=text, language="en")
    db.session.commit()
    return message.id


def row(message_id: uuid.UUID) -> Message:
    db.session.expire_all()
    return db.session.get(Message, message_id)


def events(message_id: uuid.UUID, kind: str = "attempt") -> list[MessageEvent]:
    db.session.expire_all()
    return db.session.scalars(
        select(MessageEvent)
        .where(MessageEvent.message_id == message_id, MessageEvent.kind == kind)
        .order_by(MessageEvent.at)
    ).all()


def add_contact(address: str = PHONE, **fields) -> Contact:
    contact = Contact(address=address, **fields)
    db.session.add(contact)
    db.session.commit()
    return contact


def work(app) -> None:
    db.session.close()  # SQLite: the test's transaction must not hold the write lock while the worker runs
    run_worker(app, burst=True, with_scheduler=False)


# --- failover: a retryable failure goes to the next provider, once ------------------------------------------------


def test_an_sms_whose_first_provider_answers_500_goes_out_through_the_second_exactly_once(app, twilio, at):
    for _ in range(ATTEMPTS):
        twilio.fail(500)
    at.respond(200, at_success("ATXid_failover_1"))
    message_id = queued()

    assert send_message(str(message_id)) == "sent"

    assert len(twilio.requests) == ATTEMPTS and twilio.created == []
    assert len(at.requests) == 1
    (sent,) = at.requests
    assert (sent.method, sent.path) == ("POST", "/version1/messaging")
    assert (sent.form["to"], sent.form["message"], sent.form["username"]) == ([PHONE], [BODY], [AT_USERNAME])
    message = row(message_id)
    assert (message.status, message.provider, message.provider_id) == ("sent", "africastalking", "ATXid_failover_1")
    assert message.attempts == 1 and message.last_error is None and message.sent_at is not None
    assert [(e.provider, e.error_code, e.status) for e in events(message_id)] == (
        [("twilio", "20500", None)] * ATTEMPTS + [("africastalking", None, "sent")]
    )

    # Exactly once: the same job again, and the sweeper, send nothing more.
    assert send_message(str(message_id)) == "sent"
    assert sweep()["requeued"] == 0
    assert len(at.requests) == 1 and len(twilio.requests) == ATTEMPTS


def test_failover_through_the_real_worker(app, twilio, at, keep_signal_handlers):
    for _ in range(ATTEMPTS):
        twilio.fail(500)
    at.respond(200, at_success("ATXid_failover_2"))
    message_id = queued()
    assert get_queue(QUEUE_OUTBOUND).job_ids == [f"send-{message_id}"]

    work(app)

    message = row(message_id)
    assert (message.status, message.provider, message.provider_id) == ("sent", "africastalking", "ATXid_failover_2")
    assert (len(twilio.requests), len(at.requests)) == (ATTEMPTS, 1)
    assert get_queue(QUEUE_OUTBOUND).fetch_job(f"send-{message_id}").is_finished
    work(app)  # nothing left to do
    assert (len(twilio.requests), len(at.requests)) == (ATTEMPTS, 1)


# Timeouts: a connect timeout (nothing sent) fails over, a read timeout (maybe sent) never does:
# tests/workers/test_send_routes.py.
@pytest.mark.parametrize(
    "script",
    [
        pytest.param(lambda twilio, _: [twilio.fail(429) for _ in range(ATTEMPTS)], id="429"),
        pytest.param(lambda twilio, _: [twilio.fail(503, 20503) for _ in range(ATTEMPTS)], id="503"),
    ],
)
def test_throttling_is_retried_then_failed_over(app, twilio, at, monkeypatch, script):
    script(twilio, monkeypatch)
    at.respond(200, at_success("ATXid_failover_3"))
    message_id = queued()

    assert send_message(str(message_id)) == "sent"

    assert len(twilio.requests) == ATTEMPTS
    assert len(at.requests) == 1
    message = row(message_id)
    assert (message.provider, message.provider_id) == ("africastalking", "ATXid_failover_3")
    assert [e.provider for e in events(message_id)] == ["twilio"] * ATTEMPTS + ["africastalking"]


def test_a_provider_that_recovers_within_its_tries_is_kept(app, twilio, at):
    twilio.fail(500).fail(429)
    message_id = queued()

    assert send_message(str(message_id)) == "sent"

    assert len(twilio.requests) == 3 and len(twilio.created) == 1
    assert at.requests == []
    message = row(message_id)
    assert (message.provider, message.provider_id) == ("twilio", twilio.resources[0]["sid"])
    assert twilio.created[0] == {"To": PHONE, "From": TWILIO_FROM, "Body": BODY}


# --- permanent errors fail at once ---------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [21211, 21614, 21408])
def test_a_permanent_twilio_error_fails_at_once_and_never_tries_the_next_provider(app, twilio, at, code):
    twilio.fail(400, code)
    at.respond(200, at_success())
    message_id = queued()

    assert send_message(str(message_id)) == "failed"

    assert len(twilio.requests) == 1
    assert at.requests == []
    message = row(message_id)
    assert (message.status, message.error_code) == ("failed", str(code))
    assert message.last_error and message.provider_id is None
    assert len(events(message_id)) == 1
    assert send_message(str(message_id)) == "failed"  # a stray job changes nothing
    assert len(twilio.requests) == 1


def test_a_permanent_error_from_the_second_provider_fails_the_message(app, twilio, at):
    for _ in range(ATTEMPTS):
        twilio.fail(500)
    at.respond(200, at_refusal(403, "InvalidPhoneNumber"))
    message_id = queued()

    assert send_message(str(message_id)) == "failed"

    assert (len(twilio.requests), len(at.requests)) == (ATTEMPTS, 1)
    assert row(message_id).error_code == "403"


def test_twilio_21610_opts_the_contact_out_and_nothing_more_is_queued(app, client, people, twilio, at):
    add_contact()
    twilio.fail(400, 21610)
    at.respond(200, at_success())
    message_id = queued()

    assert send_message(str(message_id)) == "failed"

    assert len(twilio.requests) == 1 and at.requests == []
    assert row(message_id).error_code == "21610"
    db.session.expire_all()
    assert db.session.scalar(select(Contact).where(Contact.address == PHONE)).opted_out_at is not None
    with pytest.raises(OptedOut) as refused:
        queue_outbound(channel="sms", address=PHONE, text="Another reminder")
    assert (refused.value.status, refused.value.code) == (409, "opted_out")
    db.session.rollback()
    response = client.post(
        "/api/v1/sms/send", json={"to": PHONE, "message": "Hello"}, headers=bearer(people["tokens"]["staff"])
    )
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "opted_out"
    assert len(twilio.requests) == 1 and at.requests == []


def test_twilio_21610_for_a_number_without_a_contact_row_still_opts_it_out(app, twilio, at):
    twilio.fail(400, 21610)
    message_id = queued()
    assert send_message(str(message_id)) == "failed"
    with pytest.raises(OptedOut):
        queue_outbound(channel="sms", address=PHONE, text="Another reminder")


# --- which providers, in which order -------------------------------------------------------------------------------


def test_sms_providers_order_is_honoured(configure, twilio, at):
    configure(SMS_PROVIDERS=["africastalking", "twilio"])
    at.respond(200, at_success("ATXid_first"))
    message_id = queued()

    assert send_message(str(message_id)) == "sent"

    assert twilio.requests == []
    assert len(at.requests) == 1
    assert row(message_id).provider == "africastalking"


def test_with_africastalking_first_a_failing_africastalking_fails_over_to_twilio(configure, twilio, at):
    configure(SMS_PROVIDERS=["africastalking", "twilio"])
    at.respond(503, {"error": "Service Unavailable"})
    message_id = queued()

    assert send_message(str(message_id)) == "sent"

    assert len(at.requests) == ATTEMPTS
    assert len(twilio.requests) == 1 and len(twilio.created) == 1
    message = row(message_id)
    assert (message.provider, message.provider_id) == ("twilio", twilio.resources[0]["sid"])


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param({"AT_API_KEY": ""}, ["twilio"], id="africastalking_without_key"),
        pytest.param({"TWILIO_FROM": ""}, ["africastalking"], id="twilio_without_sender"),
        pytest.param({"TWILIO_AUTH_TOKEN": ""}, ["africastalking"], id="twilio_without_token"),
        pytest.param({"SMS_PROVIDERS": ["twilio"]}, ["twilio"], id="only_twilio_listed"),
        pytest.param({"SMS_PROVIDERS": ["nexmo", "africastalking"]}, ["africastalking"], id="unknown_name_ignored"),
    ],
)
def test_only_configured_providers_are_used(configure, twilio, at, overrides, expected):
    configure(**overrides)
    for _ in range(2 * ATTEMPTS):
        twilio.fail(500)
    at.respond(503, {"error": "Service Unavailable"})
    message_id = queued()

    with pytest.raises(AllProvidersFailed):
        send_message(str(message_id))

    tried = {"twilio": len(twilio.requests), "africastalking": len(at.requests)}
    assert tried == {name: ATTEMPTS if name in expected else 0 for name in tried}
    assert [e.provider for e in events(message_id)] == [name for name in expected for _ in range(ATTEMPTS)]


def test_without_any_credentials_the_console_sender_is_used(configure, twilio, at):
    configure(TWILIO_ACCOUNT_SID="", TWILIO_AUTH_TOKEN="", TWILIO_FROM="", AT_USERNAME="", AT_API_KEY="")
    message_id = queued()

    assert send_message(str(message_id)) == "sent"

    message = row(message_id)
    assert (message.provider, message.provider_id) == ("console", f"console-{message_id}")
    assert twilio.requests == [] and at.requests == []


# --- every provider failing: retried by RQ, failed after MAX_ATTEMPTS runs -----------------------------------------


def test_all_providers_failing_requeues_the_row_until_max_attempts_then_fails_it(app, twilio, at):
    for _ in range(ATTEMPTS * MAX_ATTEMPTS + 1):
        twilio.fail(500)
    at.respond(503, {"error": "Service Unavailable"})
    message_id = queued()

    for run in range(1, MAX_ATTEMPTS):
        with pytest.raises(AllProvidersFailed):
            send_message(str(message_id))
        message = row(message_id)
        assert (message.status, message.attempts) == ("queued", run)
        assert "twilio" in message.last_error and "africastalking" in message.last_error
        assert (len(twilio.requests), len(at.requests)) == (ATTEMPTS * run, ATTEMPTS * run)

    assert send_message(str(message_id)) == "failed"  # the last run gives up instead of raising

    message = row(message_id)
    assert (message.status, message.attempts) == ("failed", MAX_ATTEMPTS)
    assert message.provider_id is None and message.sent_at is None
    assert (len(twilio.requests), len(at.requests)) == (ATTEMPTS * MAX_ATTEMPTS, ATTEMPTS * MAX_ATTEMPTS)
    assert len(events(message_id)) == 2 * ATTEMPTS * MAX_ATTEMPTS
    assert send_message(str(message_id)) == "failed"
    assert len(twilio.requests) == ATTEMPTS * MAX_ATTEMPTS


def test_the_worker_leaves_the_job_to_rqs_retry_when_every_provider_fails(app, twilio, at, keep_signal_handlers):
    for _ in range(ATTEMPTS):
        twilio.fail(500)
    at.respond(503, {"error": "Service Unavailable"})
    message_id = queued()

    work(app)

    assert row(message_id).status == "queued"
    queue = get_queue(QUEUE_OUTBOUND)
    assert f"send-{message_id}" in queue.scheduled_job_registry.get_job_ids()  # retried later, with back-off
    assert f"send-{message_id}" not in queue.failed_job_registry.get_job_ids()
    # The row is queued and its job pending: the sweeper does not add a second one.
    db.session.execute(
        update(Message)
        .where(Message.id == message_id)
        .values(updated_at=utcnow() - STALE_AFTER - timedelta(seconds=30))
    )
    db.session.commit()
    assert sweep()["requeued"] == 0


def test_a_successful_run_after_a_failed_one_sends_exactly_once(app, twilio, at):
    for _ in range(ATTEMPTS):
        twilio.fail(500)
    at.respond(503, {"error": "Service Unavailable"})
    message_id = queued()
    with pytest.raises(AllProvidersFailed):
        send_message(str(message_id))

    assert send_message(str(message_id)) == "sent"  # RQ's retry: Twilio has recovered

    message = row(message_id)
    assert (message.status, message.attempts, message.last_error) == ("sent", 2, None)
    assert (message.provider, message.provider_id) == ("twilio", twilio.resources[0]["sid"])
    assert len(twilio.created) == 1
    assert len(twilio.requests) == ATTEMPTS + 1 and len(at.requests) == ATTEMPTS
    assert send_message(str(message_id)) == "sent"
    assert sweep() == {"released": 0, "requeued": 0, "unknown": 0}
    assert len(twilio.created) == 1 and len(twilio.requests) == ATTEMPTS + 1


# --- crash safety -----------------------------------------------------------------------------------------------------


def test_a_row_a_killed_worker_left_sending_becomes_unknown_and_is_never_sent(app, twilio, at, keep_signal_handlers):
    """What a SIGKILL mid-send leaves: the row claimed (``sending``), the provider maybe called, the job gone."""
    stuck = queued()
    recent = queued("Thusa: second message")
    db.session.execute(
        update(Message)
        .where(Message.id == stuck)
        .values(status="sending", attempts=1, claimed_at=utcnow() - STUCK_AFTER - timedelta(minutes=1))
    )
    db.session.execute(
        update(Message)
        .where(Message.id == recent)
        .values(status="sending", attempts=1, claimed_at=utcnow() - timedelta(seconds=30))
    )
    db.session.commit()

    assert sweep() == {"released": 0, "requeued": 0, "unknown": 1}

    assert row(stuck).status == "unknown"
    assert "mid-send" in row(stuck).last_error
    assert row(recent).status == "sending"  # it may still be on its way: not yet the sweeper's business
    # Both send jobs are still in Redis: running them sends neither.
    work(app)
    assert (row(stuck).status, row(recent).status) == ("unknown", "sending")
    assert send_message(str(stuck)) == "unknown"
    assert twilio.requests == [] and at.requests == []
    assert sweep()["requeued"] == 0


def test_redis_wiped_after_queueing_the_sweeper_requeues_and_the_worker_sends_once(
    app, twilio, at, redis_conn, keep_signal_handlers
):
    message_id = queued()
    assert get_queue(QUEUE_OUTBOUND).job_ids == [f"send-{message_id}"]
    redis_conn.flushdb()
    assert get_queue(QUEUE_OUTBOUND).job_ids == []

    assert sweep()["requeued"] == 0  # too fresh: its job may simply not have run yet
    db.session.execute(
        update(Message)
        .where(Message.id == message_id)
        .values(updated_at=utcnow() - STALE_AFTER - timedelta(seconds=30))
    )
    db.session.commit()

    assert sweep()["requeued"] == 1
    assert get_queue(QUEUE_OUTBOUND).job_ids == [f"send-{message_id}"]
    assert sweep()["requeued"] == 0  # its job is pending: not enqueued twice
    assert get_queue(QUEUE_OUTBOUND).job_ids == [f"send-{message_id}"]

    work(app)

    assert len(twilio.requests) == 1 and len(twilio.created) == 1
    assert at.requests == []
    message = row(message_id)
    assert (message.status, message.provider_id) == ("sent", twilio.resources[0]["sid"])
    assert sweep()["requeued"] == 0
    work(app)
    assert len(twilio.requests) == 1


def _child_env(app, twilio: FakeTwilio) -> dict:
    env = {name: value for name, value in os.environ.items() if not name.startswith(STEERING)}
    env.update(
        {
            "THUSA_ENV": "test",
            "FLASK_SKIP_DOTENV": "1",
            "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
            "REDIS_URL": app.config["REDIS_URL"],
            "INSTANCE_PATH": app.config["INSTANCE_PATH"],
            "LOG_LEVEL": "WARNING",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_FROM": TWILIO_FROM,
            "TWILIO_API_BASE_URL": twilio.base_url,
            "SMS_PROVIDERS": "twilio",
            "SEND_RETRY_BACKOFF_SECONDS": "0",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
    )
    return env


def test_a_real_worker_sigkilled_mid_request_is_never_resent(configure, twilio, at):
    """``flask worker --burst`` in a child process; Twilio holds the request; the child is SIGKILLed meanwhile."""
    app = configure(SMS_PROVIDERS=["twilio"])
    twilio.slow(30)  # longer than the client's own timeout: the child is killed while it waits
    message_id = queued()
    db.session.close()
    child = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--burst", "--no-scheduler", "--queue", "outbound"],
        cwd=PROJECT_ROOT,
        env=_child_env(app, twilio),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # The child imports the whole app first: 8 s were not enough on a loaded machine (two cores, three test
        # processes and a launcher). Waiting longer costs nothing once the request arrives.
        deadline = time.monotonic() + 60
        while not twilio.requests and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child.poll() is None, child.stderr.read().decode(errors="replace")[-2000:]
        assert len(twilio.requests) == 1, "the child never reached Twilio"
    finally:
        child.kill()  # SIGKILL: no handler, no cleanup, mid-request
        child.wait(timeout=10)
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL

    message = row(message_id)
    assert (message.status, message.attempts) == ("sending", 1)
    assert message.claimed_at is not None
    assert sweep()["unknown"] == 0  # claimed a moment ago: it may still finish
    assert row(message_id).status == "sending"

    # STUCK_AFTER later (the claim moved back instead of waiting six minutes):
    db.session.execute(
        update(Message)
        .where(Message.id == message_id)
        .values(claimed_at=utcnow() - STUCK_AFTER - timedelta(seconds=30))
    )
    db.session.commit()
    assert sweep() == {"released": 0, "requeued": 0, "unknown": 1}
    assert row(message_id).status == "unknown"
    assert send_message(str(message_id)) == "unknown"
    assert len(twilio.requests) == 1  # never sent again
    assert at.requests == []


# --- WhatsApp: the 24-hour window -------------------------------------------------------------------------------


def test_whatsapp_inside_the_24_hour_window_is_free_text(configure, twilio):
    configure(TWILIO_WHATSAPP_FROM=WHATSAPP_FROM, TWILIO_WHATSAPP_CONTENT_SID=CONTENT_SID)
    add_contact(last_whatsapp_inbound_at=utcnow() - timedelta(hours=23))
    message_id = queued("Dumela Mpho, o tla tla kae?", channel="whatsapp")

    assert send_message(str(message_id)) == "sent"

    assert twilio.created == [
        {"To": "whatsapp:" + PHONE, "From": "whatsapp:" + WHATSAPP_FROM, "Body": "Dumela Mpho, o tla tla kae?"}
    ]
    message = row(message_id)
    assert (message.channel, message.provider, message.provider_id) == (
        "whatsapp",
        "twilio",
        twilio.resources[0]["sid"],
    )
    assert events(message_id, "fallback") == []


@pytest.mark.parametrize("last_inbound", [timedelta(hours=25), None], ids=["25_hours_ago", "never"])
def test_whatsapp_outside_the_window_sends_the_approved_template(configure, twilio, at, last_inbound):
    configure(TWILIO_WHATSAPP_FROM=WHATSAPP_FROM, TWILIO_WHATSAPP_CONTENT_SID=CONTENT_SID)
    add_contact(last_whatsapp_inbound_at=utcnow() - last_inbound if last_inbound else None)
    message_id = queued(BODY, channel="whatsapp")

    assert send_message(str(message_id)) == "sent"

    (form,) = twilio.created
    assert "Body" not in form  # a Body outside the window fails with 63016
    assert (form["To"], form["From"], form["ContentSid"]) == (
        "whatsapp:" + PHONE,
        "whatsapp:" + WHATSAPP_FROM,
        CONTENT_SID,
    )
    assert json.loads(form["ContentVariables"]) == {"1": BODY}
    assert row(message_id).channel == "whatsapp"
    assert at.requests == []


def test_whatsapp_outside_the_window_without_a_template_falls_back_to_sms(configure, twilio, at):
    configure(TWILIO_WHATSAPP_FROM=WHATSAPP_FROM)
    add_contact(last_whatsapp_inbound_at=utcnow() - timedelta(days=3))
    message_id = queued(BODY, channel="whatsapp")

    assert send_message(str(message_id)) == "sent"

    assert twilio.created == [{"To": PHONE, "From": TWILIO_FROM, "Body": BODY}]
    message = row(message_id)
    assert (message.channel, message.provider, message.status) == ("sms", "twilio", "sent")
    (fallback,) = events(message_id, "fallback")
    assert "24-hour" in fallback.detail
    assert at.requests == []


def test_a_whatsapp_message_that_fell_back_to_sms_records_its_encoding(configure, twilio):
    configure(TWILIO_WHATSAPP_FROM=WHATSAPP_FROM)
    message_id = queued(BODY, channel="whatsapp")
    assert send_message(str(message_id)) == "sent"
    message = row(message_id)
    assert message.channel == "sms"
    assert (message.encoding, message.segments) == ("GSM-7", 1)


# --- encoding and segments are recorded ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [
        pytest.param("Dumela! Ke a leboga, re tla go bona ka 09:00.", "GSM-7", 1, id="gsm7_short"),
        pytest.param("a" * 160, "GSM-7", 1, id="gsm7_160"),
        pytest.param("Thusa: " + "b" * 193, "GSM-7", 2, id="gsm7_200"),
        pytest.param("Ke a leboga 🙏🏾", "UCS-2", 1, id="emoji"),
        pytest.param("Ke a leboga 🙏 " + "c" * 60, "UCS-2", 2, id="emoji_long"),
    ],
)
def test_encoding_and_segments_are_recorded_and_the_text_arrives_intact(app, twilio, text, encoding, segments):
    message_id = queued(text)
    message = row(message_id)
    assert (message.encoding, message.segments) == (encoding, segments)

    assert send_message(str(message_id)) == "sent"

    assert twilio.created[0]["Body"] == text
    message = row(message_id)
    assert (message.encoding, message.segments) == (encoding, segments)


def test_an_unreadable_success_answer_marks_the_message_unknown_and_never_resends_it(app_factory, redis_conn):
    """A provider said 2xx in a form we cannot read: it may have sent it, so nobody may send it again."""
    with FakeProvider() as twilio:
        twilio.respond(200, "<html>a captive portal</html>")
        app = app_factory(TWILIO_ACCOUNT_SID="AC" + "1" * 32, TWILIO_AUTH_TOKEN="t", TWILIO_FROM="+15005550006",
                          TWILIO_API_BASE_URL=twilio.base_url, SMS_PROVIDERS=["twilio"],
                          SEND_RETRY_BACKOFF_SECONDS="0")  # fmt: skip
        with app.app_context():
            message = queue_outbound(channel="sms", address="+26771234567", text="Dumela")
            db.session.commit()
            assert send_message(str(message.id)) == "unknown"
            assert send_message(str(message.id)) == "unknown"
            assert len(twilio.requests) == 1
            db.session.remove()
