"""Outbound sends: the real RQ worker, the claim that makes a send happen once, the sweeper, send errors.

The worker runs in burst mode in this process (``workers.runner.run_worker``), on the test Redis and the test
database. Here a failing channel stands in for every provider, to test the worker's own rules; the real provider
clients against fake provider servers (failover included) are tested in ``tests/workers/test_failover.py``.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import update

import bots.sending
from app.extensions import db
from app.jobs import QUEUE_OUTBOUND, get_queue
from app.messaging.envelopes import OutboundMessage, SendResult
from app.messaging.outbox import queue_outbound
from app.models import Message, utcnow
from app.models.message_log import (
    DIRECTION_OUT,
    STATUS_FAILED,
    STATUS_QUEUED,
    STATUS_SENDING,
    STATUS_SENT,
)
from bots.channels.base import REGISTRY, Channel, SendError, register
from bots.sending import MAX_ATTEMPTS, STALE_AFTER, STUCK_AFTER, AllProvidersFailed, send_message, sweep
from workers.runner import run_worker

PHONE = "+26771234567"
BODY = "Thusa: your password reset code is 654321."


class FailingChannel(Channel):
    """A fake provider that refuses every message with the error it is configured with."""

    name = "test-failing"
    retryable = True
    calls = 0

    def send(self, message: OutboundMessage) -> SendResult:
        type(self).calls += 1
        raise SendError("provider said no (HTTP 503)", retryable=self.retryable)


@pytest.fixture
def failing_channel(monkeypatch):
    """Route every send to :class:`FailingChannel`, found through the registry as a real adapter is."""
    register(FailingChannel)
    FailingChannel.calls = 0
    FailingChannel.retryable = True

    def senders_for(channel: str, config) -> list[Channel]:
        return [REGISTRY[FailingChannel.name](config)]

    monkeypatch.setattr(bots.sending, "senders_for", senders_for)
    yield FailingChannel
    REGISTRY.pop(FailingChannel.name, None)


def _queued(text: str = BODY) -> uuid.UUID:
    message = queue_outbound(channel="sms", address=PHONE, text=text, language="en")
    db.session.commit()
    return message.id


def _row(message_id: uuid.UUID) -> Message:
    db.session.expire_all()
    return db.session.get(Message, message_id)


def _add_row(*, direction: str = DIRECTION_OUT, status: str = STATUS_QUEUED, age: timedelta) -> uuid.UUID:
    message = Message(direction=direction, channel="sms", address=PHONE, text="x", status=status)
    db.session.add(message)
    db.session.flush()
    db.session.execute(update(Message).where(Message.id == message.id).values(updated_at=utcnow() - age))
    db.session.commit()
    return message.id


# --- the real worker -----------------------------------------------------------------------------------------------


@pytest.fixture
def app(shared_app):
    """No pauses between a provider's tries in these tests."""
    application = shared_app(SEND_RETRY_BACKOFF_SECONDS="0")
    with application.app_context():
        yield application
        db.session.remove()


def test_the_worker_sends_a_queued_message(app, keep_signal_handlers):
    message_id = _queued()
    assert get_queue(QUEUE_OUTBOUND).job_ids == [f"send-{message_id}"]
    db.session.close()  # no transaction of the test may hold SQLite's write lock while the worker runs

    performed = run_worker(app, burst=True, with_scheduler=False)

    assert performed is True
    row = _row(message_id)
    assert row.status == STATUS_SENT
    assert row.provider == "console"
    assert row.provider_id == f"console-{message_id}"
    assert row.sent_at is not None
    assert row.attempts == 1
    assert row.last_error is None
    assert get_queue(QUEUE_OUTBOUND).job_ids == []
    job = get_queue(QUEUE_OUTBOUND).fetch_job(f"send-{message_id}")
    assert job.is_finished
    assert job.return_value() == STATUS_SENT


def test_the_worker_leaves_a_retryable_failure_queued_and_schedules_a_retry(app, failing_channel,
                                                                           keep_signal_handlers):  # fmt: skip
    message_id = _queued()
    db.session.close()

    run_worker(app, burst=True, with_scheduler=False)

    row = _row(message_id)
    assert row.status == STATUS_QUEUED
    assert row.attempts == 1
    assert "HTTP 503" in row.last_error
    assert failing_channel.calls == 3  # three tries of the one provider within one job run
    # the retry declared at enqueue: RQ parks the job for later instead of failing it
    assert f"send-{message_id}" in get_queue(QUEUE_OUTBOUND).scheduled_job_registry.get_job_ids()


# --- send_message --------------------------------------------------------------------------------------------------


def test_sending_twice_sends_once(app, caplog):
    message_id = _queued()
    with caplog.at_level(logging.INFO, logger="bots.channels.console"):
        assert send_message(str(message_id)) == STATUS_SENT
        first = _row(message_id)
        provider_id, sent_at = first.provider_id, first.sent_at

        assert send_message(str(message_id)) == STATUS_SENT

    row = _row(message_id)
    assert row.attempts == 1
    assert (row.provider_id, row.sent_at) == (provider_id, sent_at)
    sends = [r for r in caplog.records if r.name == "bots.channels.console" and str(message_id) in r.getMessage()]
    assert len(sends) == 1


def test_a_message_another_worker_is_sending_is_left_alone(app, caplog):
    message_id = _add_row(status=STATUS_SENDING, age=timedelta(0))
    with caplog.at_level(logging.DEBUG, logger="bots.channels.console"):
        assert send_message(str(message_id)) == STATUS_SENDING
    assert _row(message_id).attempts == 0
    assert not [r for r in caplog.records if r.name == "bots.channels.console"]


def test_sending_an_unknown_id_reports_missing(app):
    assert send_message(str(uuid.uuid4())) == "missing"


def test_a_retryable_send_error_leaves_the_row_queued_and_re_raises(app, failing_channel):
    message_id = _queued()

    with pytest.raises(AllProvidersFailed, match="HTTP 503"):
        send_message(str(message_id))

    row = _row(message_id)
    assert row.status == STATUS_QUEUED
    assert row.attempts == 1
    assert "test-failing: provider said no (HTTP 503)" in row.last_error
    assert row.sent_at is None


def test_a_non_retryable_send_error_fails_the_message(app, failing_channel):
    failing_channel.retryable = False
    message_id = _queued()

    assert send_message(str(message_id)) == STATUS_FAILED

    row = _row(message_id)
    assert row.status == STATUS_FAILED
    assert row.attempts == 1
    assert "HTTP 503" in row.last_error


def test_the_last_attempt_fails_the_message_instead_of_retrying(app, failing_channel):
    message_id = _queued()
    db.session.execute(update(Message).where(Message.id == message_id).values(attempts=MAX_ATTEMPTS - 1))
    db.session.commit()

    assert send_message(str(message_id)) == STATUS_FAILED

    row = _row(message_id)
    assert row.status == STATUS_FAILED
    assert row.attempts == MAX_ATTEMPTS


def test_the_attempt_before_the_last_still_retries(app, failing_channel):
    message_id = _queued()
    db.session.execute(update(Message).where(Message.id == message_id).values(attempts=MAX_ATTEMPTS - 2))
    db.session.commit()

    with pytest.raises(AllProvidersFailed):
        send_message(str(message_id))
    assert _row(message_id).status == STATUS_QUEUED


def test_a_failed_message_is_not_sent_again(app, failing_channel):
    failing_channel.retryable = False
    message_id = _queued()
    assert send_message(str(message_id)) == STATUS_FAILED

    assert send_message(str(message_id)) == STATUS_FAILED
    assert failing_channel.calls == 1
    assert _row(message_id).attempts == 1


# --- the sweeper ---------------------------------------------------------------------------------------------------


def test_sweep_enqueues_only_queued_outbound_rows_older_than_stale_after_without_a_job(app):
    old = STALE_AFTER + timedelta(seconds=30)
    stale = _add_row(age=old)
    fresh = _add_row(age=STALE_AFTER - timedelta(seconds=30))
    _add_row(status=STATUS_SENT, age=old)
    _add_row(status=STATUS_FAILED, age=old)
    assert get_queue(QUEUE_OUTBOUND).job_ids == []

    assert sweep()["requeued"] == 1

    job_ids = get_queue(QUEUE_OUTBOUND).job_ids
    assert job_ids == [f"send-{stale}"]
    assert f"send-{fresh}" not in job_ids
    assert list(get_queue(QUEUE_OUTBOUND).fetch_job(f"send-{stale}").args) == [str(stale)]
    # Its job is pending now: a second sweep does not enqueue it again.
    assert sweep()["requeued"] == 0


def test_sweep_marks_rows_a_dead_worker_left_mid_send_unknown_and_never_resends_them(app):
    stuck = _add_row(status=STATUS_SENDING, age=timedelta(0))
    recent = _add_row(status=STATUS_SENDING, age=timedelta(0))
    db.session.execute(update(Message).where(Message.id == stuck).values(claimed_at=utcnow() - STUCK_AFTER * 2))
    db.session.execute(update(Message).where(Message.id == recent).values(claimed_at=utcnow()))
    db.session.commit()

    assert sweep()["unknown"] == 1

    assert _row(stuck).status == "unknown"
    assert _row(recent).status == STATUS_SENDING
    assert get_queue(QUEUE_OUTBOUND).job_ids == []
    assert send_message(str(stuck)) == "unknown"  # a stray job cannot send it either


def test_sweep_with_nothing_stale_enqueues_nothing(app):
    _add_row(age=timedelta(0))
    assert sweep() == {"released": 0, "requeued": 0, "unknown": 0}
    assert get_queue(QUEUE_OUTBOUND).job_ids == []


# --- the console channel's logging -----------------------------------------------------------------------------------


def test_the_console_channel_keeps_the_body_out_of_info_logs(app, caplog):
    message_id = _queued()
    caplog.set_level(logging.INFO, logger="bots.channels.console")

    assert send_message(str(message_id)) == STATUS_SENT

    assert str(message_id) in caplog.text  # it did log the send
    assert BODY not in caplog.text
    assert "654321" not in caplog.text
    assert PHONE not in caplog.text  # only the last digits of the address


def test_the_console_channel_logs_the_body_at_debug(app, caplog):
    message_id = _queued()
    caplog.set_level(logging.DEBUG, logger="bots.channels.console")

    assert send_message(str(message_id)) == STATUS_SENT

    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG and r.name == "bots.channels.console"]
    assert any(BODY in line for line in debug)
