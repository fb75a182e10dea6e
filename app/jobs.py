"""Background jobs on RQ, seen from below: queue names, the JSON serializer, and one way to enqueue.

Jobs are enqueued by their dotted name (``"workers.outbound.send_message"``), never by importing the function:
the code that enqueues (services, the outbox, webhooks) sits in lower layers than the jobs themselves
(``workers/``), which import those layers, not the other way round. The names of the jobs that lower layers
enqueue are kept here, in one place.

Jobs are plain functions that take ids (never phone numbers, message bodies or photos); retries, timeouts and
unique job ids are declared where they are enqueued. ``flask worker`` runs them inside the app context.
"""

from __future__ import annotations

import uuid

from rq import Queue, Retry
from rq.job import Job
from rq.serializers import JSONSerializer

from app.extensions import redis_client

QUEUE_DEFAULT = "default"
QUEUE_OUTBOUND = "outbound"  # sends from the outbox; latency matters most here
QUEUE_REMINDERS = "reminders"  # finds due appointment reminders
QUEUE_INFERENCE = "inference"  # photo analysis; slow, CPU-bound
QUEUES = (QUEUE_OUTBOUND, QUEUE_REMINDERS, QUEUE_DEFAULT, QUEUE_INFERENCE)  # a worker serves them in this order

DEFAULT_RETRY = Retry(max=4, interval=[10, 30, 120, 600])
RESULT_TTL = 3600
FAILURE_TTL = 7 * 86400

# The jobs lower layers enqueue, by dotted name (the worker imports the module when it runs the job).
SEND_MESSAGE = "workers.outbound.send_message"
SEND_BATCH = "workers.outbound.send_batch"
HANDLE_MESSAGE = "workers.inbound.handle_message"
ANALYSE_CONSULTATION = "workers.inference.analyse_consultation"


def get_queue(name: str) -> Queue:
    """The RQ queue ``name`` on the app's Redis, with the JSON serializer."""
    if name not in QUEUES:
        raise ValueError(f"unknown queue {name!r}; queues are {', '.join(QUEUES)}")
    return Queue(name, connection=redis_client.client, serializer=JSONSerializer)


def enqueue(queue_name: str, job: str, *args, job_id: str | None = None, retry: Retry | None = DEFAULT_RETRY,
            timeout: int = 300) -> Job:  # fmt: skip
    """Enqueue the job named ``job`` (a dotted path) with ``args`` on ``queue_name``.

    Args:
        queue_name: one of :data:`QUEUES`.
        job: the job's dotted name, e.g. :data:`SEND_MESSAGE`.
        *args: the job's arguments; JSON values (ids, not objects).
        job_id: a unique id (enqueueing twice under one id keeps one job).
        retry: RQ's retry policy (None: no retry).
        timeout: seconds the job may run.

    Returns:
        The RQ job.
    """
    queue = get_queue(queue_name)
    # One round trip to Redis instead of two: enqueueing is on the webhooks' hot path.
    with queue.connection.pipeline() as pipe:
        rq_job = queue.enqueue_call(job, args=args, job_id=job_id, retry=retry, timeout=timeout,
                                    result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL, pipeline=pipe)  # fmt: skip
        pipe.execute()
    return rq_job


def enqueue_handle(message_id: uuid.UUID | str) -> None:
    """Enqueue the handling job of one stored inbound message (safe to repeat: handled messages are skipped)."""
    enqueue(QUEUE_DEFAULT, HANDLE_MESSAGE, str(message_id), job_id=f"handle-{message_id}")
