"""Inbound messages whose handling failed: retried by the sweeper after RQ's retries, in order per contact, given up
after ``INBOUND_MAX_ATTEMPTS`` and then counted in ``/readyz``.

The failure is injected by making the engine's keyword step raise (a bug, a database hiccup); RQ's five runs of a
job are the engine called five times, as the job would be; the sweeper's retries run in the real RQ worker. The
sweeper's clock (``bots.sending.utcnow``) is moved past each ``retry_at`` instead of waiting.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.i18n import t
from app.jobs import QUEUE_DEFAULT, get_queue
from app.messaging.envelopes import InboundMessage
from app.messaging.inbox import contact_for, store_inbound
from app.models import Contact, Message, utcnow
from app.models.message_log import DIRECTION_OUT, STATUS_FAILED, STATUS_HANDLED, STATUS_RECEIVED
from bots import engine, sending
from bots.engine import INBOUND_MAX_ATTEMPTS, handle_message
from workers.runner import run_worker

PHONE = "+26771234567"
RQ_RUNS = 5  # a job's first run and RQ's 4 retries (app.jobs.DEFAULT_RETRY)


def inbound(text: str, *, seconds_ago: int = 0) -> uuid.UUID:
    """Store one inbound SMS as the webhook layer does, and commit it; its id."""
    message, _ = store_inbound(
        InboundMessage(
            channel="sms",
            provider="twilio",
            provider_id=f"SM{uuid.uuid4().hex}",
            sender=PHONE,
            text=text,
            recipient="+15005550006",
            received_at=utcnow() - timedelta(seconds=seconds_ago),
        )  # fmt: skip
    )
    db.session.commit()
    return message.id


def reload(message_id: uuid.UUID) -> Message:
    db.session.expire_all()
    return db.session.get(Message, message_id)


def replies() -> list[str]:
    db.session.expire_all()
    return list(db.session.scalars(select(Message.text).where(Message.direction == DIRECTION_OUT)
                                   .order_by(Message.created_at, Message.id)))  # fmt: skip


def person() -> Contact:
    db.session.expire_all()
    return db.session.scalar(select(Contact).where(Contact.address == PHONE))


@pytest.fixture
def failing(monkeypatch):
    """The engine's keyword step raises while ``failing["times"]`` lasts (a bug that is fixed later)."""
    state = {"times": 0, "calls": 0}
    real = engine._keywords

    def keywords(ctx):
        state["calls"] += 1
        if state["times"] > 0:
            state["times"] -= 1
            raise RuntimeError("injected failure")
        return real(ctx)

    monkeypatch.setattr(engine, "_keywords", keywords)
    return state


@pytest.fixture
def later(monkeypatch):
    """Move the sweeper's clock: ``later(hours)``."""

    def move(hours: float) -> None:
        moved = utcnow() + timedelta(hours=hours)
        monkeypatch.setattr(sending, "utcnow", lambda: moved)

    return move


def exhaust_rq(message_id: uuid.UUID) -> None:
    """The job's runs, all failing, as RQ makes them before giving the job up."""
    for _ in range(RQ_RUNS):
        with pytest.raises(RuntimeError, match="injected"):
            handle_message(str(message_id))


def work(app) -> None:
    db.session.close()
    run_worker(app, burst=True, with_scheduler=False)


def test_a_stop_whose_handling_failed_is_retried_by_the_sweeper_after_rqs_retries_and_honoured(app, failing, later):
    contact_for(PHONE)
    db.session.commit()
    failing["times"] = RQ_RUNS
    stop = inbound("STOP")

    exhaust_rq(stop)
    row = reload(stop)
    assert (row.status, row.attempts) == (STATUS_FAILED, RQ_RUNS)
    assert row.retry_at is not None  # not given up: the sweeper will try again
    assert person().opted_out_at is None

    assert sending.sweep()["requeued"] == 0  # its time has not come
    later(1)
    assert sending.sweep()["requeued"] == 1
    assert sending.sweep()["requeued"] == 0  # its job is pending: never enqueued twice
    assert get_queue(QUEUE_DEFAULT).fetch_job(f"handle-{stop}") is not None
    work(app)

    row = reload(stop)
    assert (row.status, row.retry_at) == (STATUS_HANDLED, None)
    assert person().opted_out_at is not None  # the STOP is honoured
    assert replies() == [t("opt_out_confirmation", None)]
    later(2)
    assert sending.sweep()["requeued"] == 0


def test_a_message_that_fails_every_try_is_given_up_after_the_last_and_counted_in_readyz(app, client, failing, later):
    failing["times"] = 10**6
    stop = inbound("STOP")
    assert client.get("/readyz").get_json()["detail"]["inbound_given_up"] == 0

    exhaust_rq(stop)
    for hours in range(1, INBOUND_MAX_ATTEMPTS - RQ_RUNS + 1):
        later(hours)
        assert sending.sweep()["requeued"] == 1
        work(app)
    row = reload(stop)
    assert (row.status, row.attempts, row.retry_at) == (STATUS_FAILED, INBOUND_MAX_ATTEMPTS, None)
    assert failing["calls"] == INBOUND_MAX_ATTEMPTS

    later(100)
    assert sending.sweep()["requeued"] == 0  # given up: never tried again by itself
    work(app)
    assert failing["calls"] == INBOUND_MAX_ATTEMPTS
    body = client.get("/readyz")
    assert body.status_code == 200  # a message to look at does not make the service unready
    assert body.get_json()["detail"] == {"inbound_given_up": 1, "outbound_unknown": 0}


def test_a_newer_message_waits_behind_an_older_one_that_waits_for_its_retry(app, failing, later):
    # STOP then START: the person ends opted in. Had the START gone first (and the STOP been retried after it),
    # they would end opted out, against their last word.
    contact_for(PHONE)
    db.session.commit()
    failing["times"] = RQ_RUNS
    stop = inbound("STOP", seconds_ago=120)
    exhaust_rq(stop)
    start = inbound("START", seconds_ago=60)

    assert handle_message(str(start)) == 0  # its own job: it waits
    assert reload(start).status == STATUS_RECEIVED
    assert replies() == []
    later(0.05)  # past STALE_AFTER, before the STOP's retry
    assert sending.sweep()["requeued"] == 0  # waiting, not lost: not enqueued again

    later(1)
    assert sending.sweep()["requeued"] == 1  # the STOP's retry ...
    work(app)  # ... handles the START after it
    assert (reload(stop).status, reload(start).status) == (STATUS_HANDLED, STATUS_HANDLED)
    assert replies() == [t("opt_out_confirmation", None), t("opt_in_confirmation", None)]
    assert person().opted_out_at is None


def test_once_the_older_message_is_given_up_the_newer_ones_go_on(app, failing, later):
    contact_for(PHONE)
    db.session.commit()
    failing["times"] = RQ_RUNS + INBOUND_MAX_ATTEMPTS  # the older one's every try
    older = inbound("HELP", seconds_ago=120)
    exhaust_rq(older)
    stop = inbound("STOP", seconds_ago=60)
    assert handle_message(str(stop)) == 0

    for hours in range(1, INBOUND_MAX_ATTEMPTS - RQ_RUNS + 1):
        later(hours)
        sending.sweep()
        work(app)
    assert (reload(older).status, reload(older).retry_at) == (STATUS_FAILED, None)
    failing["times"] = 0
    later(20)
    assert sending.sweep()["requeued"] == 1  # the STOP, no longer waiting
    work(app)
    assert reload(stop).status == STATUS_HANDLED
    assert person().opted_out_at is not None
