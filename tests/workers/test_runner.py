"""The worker's own RQ worker class: how it stops listening for RQ's worker commands."""

from __future__ import annotations

import time

from rq.serializers import JSONSerializer

from app.extensions import redis_client
from app.jobs import QUEUE_DEFAULT, get_queue
from workers.runner import AppWorker


def test_stopping_ends_the_command_listener_even_when_it_reads_the_unsubscribe_answer_first(app, redis_conn):
    """The order that made every other worker stop take a second longer (RQ's join gave up on a listener waiting
    for a new subscription): here the listener always handles the unsubscribe answer before the worker goes on."""
    worker = AppWorker([get_queue(QUEUE_DEFAULT)], connection=redis_client.client, serializer=JSONSerializer)
    worker.subscribe()
    pubsub = worker.pubsub
    deadline = time.monotonic() + 30
    while not pubsub.subscribed and time.monotonic() < deadline:
        time.sleep(0.01)
    send_unsubscribe = pubsub.unsubscribe

    def unsubscribe_and_let_the_listener_read_the_answer(*args):
        send_unsubscribe(*args)
        waited = time.monotonic() + 30
        while pubsub.subscribed and time.monotonic() < waited:
            time.sleep(0.01)

    pubsub.unsubscribe = unsubscribe_and_let_the_listener_read_the_answer

    worker.unsubscribe()

    assert not pubsub.subscribed
    assert not worker.pubsub_thread.is_alive()
