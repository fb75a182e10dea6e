"""The periodic schedule: which job runs how often, and the loop that enqueues them.

Any number of ``flask worker`` processes on any number of machines may run this loop; each period's run is
claimed once in Redis (``SET NX``), so a job is enqueued once per period however many schedulers are up.
(RQ's own cron scheduler enqueues from every process that runs it, which would send reminders twice.)
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from dataclasses import dataclass

import redis
from rq.exceptions import NoSuchJobError
from rq.job import Job

from app.jobs import QUEUE_DEFAULT, QUEUE_INFERENCE, QUEUE_OUTBOUND, QUEUE_REMINDERS, enqueue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicJob:
    """A job enqueued every ``every_seconds``, aligned to the clock (a 60 s job runs at each minute)."""

    name: str
    func: str  # dotted path, so the table can name jobs of modules that are not imported yet
    every_seconds: int
    queue: str


SCHEDULE: tuple[PeriodicJob, ...] = (
    PeriodicJob("sweep-messages", "workers.outbound.sweep", 60, QUEUE_OUTBOUND),
    PeriodicJob("queue-reminders", "workers.reminders.queue_due_reminders", 60, QUEUE_REMINDERS),
    # Hourly, so each clinic's day ends on time in its own time zone (Gaborone's at 22:00 UTC, Accra's at 00:00).
    PeriodicJob("mark-missed", "workers.reminders.mark_missed", 3600, QUEUE_DEFAULT),
    PeriodicJob("erase-texts", "workers.reminders.erase_expired_texts", 86400, QUEUE_DEFAULT),
    # Skin consultations: re-enqueue analyses whose enqueue was lost (Redis down at commit).
    PeriodicJob("sweep-consultations", "workers.inference.sweep", 300, QUEUE_INFERENCE),
    # Missed visits: each one's recovery SMS, once the clinic's sending hours allow (workers.missed_visits).
    PeriodicJob("queue-recovery", "workers.missed_visits.queue_recovery_sms", 60, QUEUE_REMINDERS),
    # Second opinions: overdue reviews alert their clinicians; the follow-up check-ins go out when due.
    PeriodicJob("review-alerts", "workers.reviews.alert_overdue", 60, QUEUE_DEFAULT),
    PeriodicJob("follow-ups", "workers.reviews.send_follow_ups", 60, QUEUE_DEFAULT),
)


def tick(connection: redis.Redis, now: float | None = None, schedule: tuple[PeriodicJob, ...] = SCHEDULE) -> list[str]:
    """Enqueue every job whose period has started and that no scheduler has claimed yet.

    Returns:
        The ids of the jobs this call enqueued.
    """
    now = time.time() if now is None else now
    enqueued = []
    for job in schedule:
        slot = int(now // job.every_seconds)
        claim = f"thusa:periodic:{job.name}:{slot}"
        if connection.set(claim, 1, nx=True, ex=job.every_seconds * 2):
            job_id = f"periodic-{job.name}-{slot}"
            try:
                enqueue(job.queue, job.func, job_id=job_id, retry=None, timeout=max(job.every_seconds - 5, 10))
            except Exception:
                connection.delete(claim)  # let the next tick (here or on another worker) try this period again
                raise
            enqueued.append(job_id)
    return enqueued


class RunRefused(RuntimeError):
    """A periodic job cannot be run by hand now: a run of it is queued or going."""


# RQ statuses of a scheduled run that has not finished: a run by hand now would overlap it.
_UNFINISHED = ("queued", "started", "deferred", "scheduled")


def find(name: str, schedule: tuple[PeriodicJob, ...] = SCHEDULE) -> PeriodicJob:
    """The periodic job called ``name``.

    Raises:
        KeyError: no such job.
    """
    for job in schedule:
        if job.name == name:
            return job
    raise KeyError(name)


def run_now(connection: redis.Redis, name: str, now: float | None = None,
            schedule: tuple[PeriodicJob, ...] = SCHEDULE) -> object:  # fmt: skip
    """Run the periodic job ``name`` in this process now (after an outage, or to try a change), claimed like the
    scheduled run so the two never overlap.

    The run claims its period as :func:`tick` does, so the scheduler will not enqueue it again in this period.
    When the scheduler already claimed the period, the run goes ahead only if that period's job is no longer
    queued or running (it finished, failed, or was lost with an outage). Two runs by hand never overlap either.

    Returns:
        What the job returned.

    Raises:
        KeyError: no such job. RunRefused: this period's scheduled run, or another run by hand, is not finished.
    """
    job = find(name, schedule)
    now = time.time() if now is None else now
    slot = int(now // job.every_seconds)
    claim = f"thusa:periodic:{job.name}:{slot}"
    by_hand = f"thusa:periodic-manual:{job.name}"
    if not connection.set(by_hand, 1, nx=True, ex=max(job.every_seconds, 3600)):
        raise RunRefused(f"{job.name} is already being run by hand.")
    try:
        if not connection.set(claim, 1, nx=True, ex=job.every_seconds * 2):
            try:
                status = Job.fetch(f"periodic-{job.name}-{slot}", connection=connection).get_status(refresh=True)
            except NoSuchJobError:
                status = None
            if status is not None and str(getattr(status, "value", status)) in _UNFINISHED:
                raise RunRefused(f"this period's scheduled run of {job.name} is {getattr(status, 'value', status)}; "
                                 f"wait for it to finish.")  # fmt: skip
        module, _, attribute = job.func.rpartition(".")
        return getattr(importlib.import_module(module), attribute)()
    finally:
        connection.delete(by_hand)


def run(connection: redis.Redis, stop: threading.Event, poll_seconds: float = 1.0) -> None:
    """Call :func:`tick` every ``poll_seconds`` until ``stop`` is set; Redis hiccups are logged, not fatal."""
    while not stop.is_set():
        try:
            tick(connection)
        except redis.RedisError:
            log.warning("periodic scheduler: Redis unavailable, will retry", exc_info=True)
        stop.wait(poll_seconds)
