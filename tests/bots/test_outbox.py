"""The outbox: an outbound row is committed first, and its send job is enqueued only after that commit.

The queue inspected is the real RQ queue ``outbound`` on the test Redis; the rows are read back from the real
database (SQLite and PostgreSQL).
"""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.jobs import QUEUE_OUTBOUND, get_queue
from app.messaging.outbox import queue_outbound, text_to_send
from app.models import Message
from app.models.message_log import DIRECTION_OUT, STATUS_QUEUED

PHONE = "+26771234567"

# the outbox's bulk insert has a dialect branch
pytestmark = pytest.mark.both_backends


def _outbound_job_ids() -> list[str]:
    return get_queue(QUEUE_OUTBOUND).job_ids


def _row_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Message))


def _reload(message_id) -> Message:
    """The row as the database has it, not the object the session still holds."""
    db.session.expire_all()
    return db.session.get(Message, message_id)


def test_queue_outbound_writes_a_queued_outbound_row(app):
    message = queue_outbound(channel="sms", address=PHONE, text="Dumela", language="tn")
    db.session.commit()

    row = _reload(message.id)
    assert row.direction == DIRECTION_OUT
    assert row.status == STATUS_QUEUED
    assert (row.channel, row.address, row.text, row.language) == ("sms", PHONE, "Dumela", "tn")
    assert row.attempts == 0
    assert row.sent_at is None and row.provider_id is None


def test_the_send_job_is_enqueued_only_after_commit(app):
    message = queue_outbound(channel="sms", address=PHONE, text="Hello")
    db.session.flush()
    assert _outbound_job_ids() == []

    db.session.commit()

    assert _outbound_job_ids() == [f"send-{message.id}"]
    job = get_queue(QUEUE_OUTBOUND).fetch_job(f"send-{message.id}")
    assert job.func_name == "workers.outbound.send_message"
    assert list(job.args) == [str(message.id)]


def test_a_rollback_drops_the_row_and_enqueues_nothing(app):
    queue_outbound(channel="sms", address=PHONE, text="Hello")
    db.session.rollback()

    assert _outbound_job_ids() == []
    assert _row_count() == 0
    db.session.commit()  # a later, unrelated commit must not run the forgotten callback
    assert _outbound_job_ids() == []


def test_two_messages_in_one_transaction_are_both_enqueued_only_after_commit(app):
    first = queue_outbound(channel="sms", address=PHONE, text="one")
    second = queue_outbound(channel="sms", address=PHONE, text="two")
    assert _outbound_job_ids() == []  # a SAVEPOINT release is not the commit

    db.session.commit()
    assert sorted(_outbound_job_ids()) == sorted([f"send-{first.id}", f"send-{second.id}"])


def test_a_rollback_after_two_messages_enqueues_nothing(app):
    queue_outbound(channel="sms", address=PHONE, text="one")
    queue_outbound(channel="sms", address=PHONE, text="two")
    db.session.rollback()

    assert _outbound_job_ids() == []


def test_a_repeated_dedupe_key_returns_the_same_row_and_no_second_job(app):
    first = queue_outbound(channel="sms", address=PHONE, text="Reminder", dedupe_key="reminder:1:24h")
    db.session.commit()
    again = queue_outbound(channel="sms", address=PHONE, text="Reminder, again", dedupe_key="reminder:1:24h")
    db.session.commit()

    assert again.id == first.id
    assert again.text == "Reminder"
    assert _row_count() == 1
    assert _outbound_job_ids() == [f"send-{first.id}"]


def test_a_repeated_dedupe_key_in_the_same_transaction_returns_the_pending_row(app):
    first = queue_outbound(channel="sms", address=PHONE, text="Reminder", dedupe_key="reminder:2:24h")
    again = queue_outbound(channel="sms", address=PHONE, text="Reminder", dedupe_key="reminder:2:24h")
    db.session.commit()

    assert again.id == first.id
    assert _row_count() == 1
    assert _outbound_job_ids() == [f"send-{first.id}"]


def test_different_dedupe_keys_make_different_rows(app):
    one = queue_outbound(channel="sms", address=PHONE, text="a", dedupe_key="k1")
    db.session.commit()
    two = queue_outbound(channel="sms", address=PHONE, text="b", dedupe_key="k2")
    db.session.commit()

    assert one.id != two.id
    assert _row_count() == 2
    assert sorted(_outbound_job_ids()) == sorted([f"send-{one.id}", f"send-{two.id}"])


def test_redis_down_at_commit_keeps_the_row_queued_and_the_commit_succeeds(app_factory, caplog):
    app = app_factory(REDIS_URL="redis://127.0.0.1:1/0")
    with app.app_context():
        try:
            with caplog.at_level(logging.WARNING, logger="app.transactions"):
                message = queue_outbound(channel="sms", address=PHONE, text="Hello")
                db.session.commit()
            message_id = message.id
            db.session.remove()  # read back in a fresh session: the row really is in the database

            row = db.session.get(Message, message_id)
            assert row is not None
            assert row.status == STATUS_QUEUED
            assert row.attempts == 0
            assert "sweeper will retry" in caplog.text
        finally:
            db.session.remove()
            db.engine.dispose()


def test_a_masked_row_stores_the_mask_and_keeps_the_real_text_in_redis_only_after_commit(app, redis_conn):
    message = queue_outbound(channel="sms", address=PHONE, text="Thusa code ******", secret_text="Thusa code 482913",
                             secret_seconds=900, unauthenticated=True)  # fmt: skip
    assert list(redis_conn.scan_iter("thusa:real-text:*")) == []
    db.session.commit()

    row = _reload(message.id)
    assert row.text == "Thusa code ******" and (row.encoding, row.segments) == ("GSM-7", 1)
    assert text_to_send(row) == "Thusa code 482913"
    assert 0 < redis_conn.ttl(f"thusa:real-text:{message.id}") <= 900


def test_a_rolled_back_masked_row_leaves_no_real_text_behind(app, redis_conn):
    queue_outbound(channel="sms", address=PHONE, text="Thusa code ******", secret_text="Thusa code 482913")
    db.session.rollback()

    assert list(redis_conn.scan_iter("thusa:real-text:*")) == []
