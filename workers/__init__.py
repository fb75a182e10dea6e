"""Background jobs on RQ: queue names, the JSON serializer, and one way to enqueue.

Jobs are plain functions that take ids (never phone numbers, message bodies or photos); retries, timeouts and
unique job ids are declared where they are enqueued. ``flask worker`` runs them inside the app context.
"""

from __future__ import annotations

from collections.abc import Callable

from rq import Queue, Retry
from rq.serializers import JSONSerializer

from app.extensions import redis_client

QUEUE_DEFAULT = "default"
QUEUE_OUTBOUND = "outbound"  # sends from the outbox; latency matters most here
QUEUE_REMINDERS = "reminders"  # finds due appointment reminders
QUEUE_INFERENCE = "inference"  # photo analysis; slow, CPU-bound
QUEUES = (QUEUE_OUTBOUND, QUEUE_REMINDERS, QUEUE_DEFAULT, QUEUE_INFERENCE)  # a worker serves them in this order

DEFAULT_RETRY = Retry(max=4, interval=[10, 30, 120, 600])


def get_queue(name: str) -> Queue:
    """The RQ queue ``name`` on the app's Redis, with the JSON serializer."""
    if name not in QUEUES:
        raise ValueError(f"unknown queue {name!r}; queues are {', '.join(QUEUES)}")
    return Queue(name, connection=redis_client.client, serializer=JSONSerializer)


def enqueue(queue_name: str, func: Callable | str, *args, job_id: str | None = None, retry: Retry | None = DEFAULT_RETRY,
            timeout: int = 300):  # fmt: skip
    """Enqueue ``func(*args)`` on ``queue_name``. Arguments must be JSON values (ids, not objects)."""
    queue = get_queue(queue_name)
    # One round trip to Redis instead of two: enqueueing is on the webhooks' hot path.
    with queue.connection.pipeline() as pipe:
        job = queue.enqueue_call(func, args=args, job_id=job_id, retry=retry, timeout=timeout, result_ttl=3600,
                                 failure_ttl=7 * 86400, pipeline=pipe)  # fmt: skip
        pipe.execute()
    return job
