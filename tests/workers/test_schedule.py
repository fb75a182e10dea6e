"""The periodic schedule: one enqueue per job and period, however many schedulers tick, and a loop that lasts.

Time is passed in (``now``) or pinned, never waited for; the claims and the queues are on the real test Redis.
"""

from __future__ import annotations

import importlib
import logging
import threading
import types
from datetime import UTC, datetime, time, timedelta

import pytest
import redis
from sqlalchemy import select

from app.extensions import db
from app.jobs import QUEUE_DEFAULT, QUEUE_OUTBOUND, QUEUE_REMINDERS, QUEUES, get_queue
from app.models import Appointment, Message
from app.services import appointments
from tests.conftest import make_clinic
from workers import runner
from workers import schedule as periodic
from workers.schedule import SCHEDULE, PeriodicJob, run, tick

NOW = 1_750_000_020.0  # an instant 20 s into a minute


class CountingEvent(threading.Event):
    """A stop event that sets itself after ``limit`` waits, so a loop runs a known number of times, at once."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.waits = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.waits += 1
        if self.waits >= self.limit:
            self.set()
        return self.is_set()


def _job_ids() -> dict[str, list[str]]:
    return {name: get_queue(name).job_ids for name in QUEUES}


def _all_job_ids() -> list[str]:
    return [job_id for ids in _job_ids().values() for job_id in ids]


def _expected_id(job: PeriodicJob, now: float) -> str:
    return f"periodic-{job.name}-{int(now // job.every_seconds)}"


def test_the_schedule_is_not_empty():
    assert SCHEDULE
    assert len({job.name for job in SCHEDULE}) == len(SCHEDULE)


@pytest.mark.parametrize("job", SCHEDULE, ids=lambda job: job.name)
def test_every_schedule_entry_names_a_callable_on_a_known_queue(job):
    module_name, _, attribute = job.func.rpartition(".")
    target = getattr(importlib.import_module(module_name), attribute)
    assert callable(target)
    assert job.queue in QUEUES
    assert job.every_seconds > 0


def test_tick_enqueues_each_job_once_with_its_slot_id(app, redis_conn):
    enqueued = tick(redis_conn, now=NOW)

    assert enqueued == [_expected_id(job, NOW) for job in SCHEDULE]
    for job in SCHEDULE:
        queued = get_queue(job.queue).fetch_job(_expected_id(job, NOW))
        assert queued is not None
        assert queued.func_name == job.func
        assert _expected_id(job, NOW) in get_queue(job.queue).job_ids


def test_many_ticks_in_one_period_enqueue_once(app, redis_conn):
    tick(redis_conn, now=NOW)
    job = SCHEDULE[0]
    start = (NOW // job.every_seconds) * job.every_seconds
    later_in_the_same_period = [start, start + 1, NOW, start + job.every_seconds - 0.001]

    assert all(tick(redis_conn, now=when) == [] for when in later_in_the_same_period)
    assert sorted(_all_job_ids()) == sorted(_expected_id(job, NOW) for job in SCHEDULE)


def test_two_schedulers_ticking_at_the_same_instant_enqueue_once(app, redis_conn):
    # A second scheduler process: its own connection to the same Redis.
    other = redis.Redis(connection_pool=redis.ConnectionPool(**redis_conn.connection_pool.connection_kwargs))
    try:
        first = tick(redis_conn, now=NOW)
        second = tick(other, now=NOW)
    finally:
        other.close()

    assert first == [_expected_id(job, NOW) for job in SCHEDULE]
    assert second == []
    assert sorted(_all_job_ids()) == sorted(first)


def test_a_new_period_enqueues_again(app, redis_conn):
    job = SCHEDULE[0]
    tick(redis_conn, now=NOW)

    next_period = NOW + job.every_seconds
    new_slot = [j for j in SCHEDULE if int(next_period // j.every_seconds) != int(NOW // j.every_seconds)]
    assert job in new_slot
    assert tick(redis_conn, now=next_period) == [_expected_id(j, next_period) for j in new_slot]

    assert get_queue(job.queue).job_ids == [_expected_id(job, NOW), _expected_id(job, next_period)]
    assert _expected_id(job, next_period) == f"periodic-{job.name}-{int(NOW // job.every_seconds) + 1}"


@pytest.mark.parametrize(
    ("name", "func", "every_seconds", "queue"),
    [
        ("sweep-messages", "workers.outbound.sweep", 60, QUEUE_OUTBOUND),
        ("queue-reminders", "workers.reminders.queue_due_reminders", 60, QUEUE_REMINDERS),
        ("mark-missed", "workers.reminders.mark_missed", 3600, QUEUE_DEFAULT),
        ("erase-texts", "workers.reminders.erase_expired_texts", 86400, QUEUE_DEFAULT),
    ],
)
def test_the_schedule_runs_each_job_at_its_period_on_its_queue(name, func, every_seconds, queue):
    assert PeriodicJob(name, func, every_seconds, queue) in SCHEDULE


@pytest.mark.parametrize("job", SCHEDULE, ids=lambda job: job.name)
def test_each_job_is_enqueued_once_per_period_whatever_the_ticks(app, redis_conn, job):
    start = (NOW // job.every_seconds) * job.every_seconds
    instants = [start, start + 1, start + job.every_seconds - 1, start + job.every_seconds,
                start + 2 * job.every_seconds - 1, start + 2 * job.every_seconds]  # fmt: skip
    for when in instants:
        tick(redis_conn, now=when, schedule=(job,))

    slots = int(start // job.every_seconds)
    assert get_queue(job.queue).job_ids == [f"periodic-{job.name}-{slots + n}" for n in range(3)]


def test_the_reminder_job_the_scheduler_enqueues_runs_in_the_worker_and_its_reminders_go_out(app, redis_conn,
                                                                                             keep_signal_handlers):  # fmt: skip
    """The whole road with the real clock: tick → worker runs queue_due_reminders → the worker sends each reminder
    (console sender: no provider configured) → counted on the appointment."""
    clinic = make_clinic()
    clinic.reminder_offsets_minutes = [1440]
    clinic.send_window_start, clinic.send_window_end = time(0, 0), time.max  # any hour: the real clock decides
    now = datetime.now(UTC)
    patient = appointments.patient_for("+26771234567")
    appointment = Appointment(clinic_id=clinic.id, clinic=clinic, patient_id=patient.id, patient=patient,
                              appointment_datetime=now + timedelta(hours=23), import_key="ref:E2E-1")  # fmt: skip
    db.session.add(appointment)
    db.session.flush()
    appointments.plan_reminders(appointment, now - timedelta(hours=2))  # booked earlier: due an hour ago
    db.session.commit()
    db.session.close()

    assert "periodic-queue-reminders-" + str(int(now.timestamp() // 60)) in tick(redis_conn, now=now.timestamp())
    runner.run_worker(app, burst=True, with_scheduler=False)

    db.session.expire_all()
    (reminder,) = db.session.scalars(select(Message).where(Message.kind == "reminder")).all()
    assert (reminder.status, reminder.provider) == ("sent", "console")
    assert reminder.dedupe_key == appointments.reminder_key(appointment, 1440)
    done = db.session.get(Appointment, appointment.id)
    assert (done.reminders_sent, done.next_reminder_at) == (1, None)


def test_jobs_of_different_periods_are_claimed_separately(app, redis_conn):
    fast = PeriodicJob("fast", "workers.outbound.sweep", 10, "default")
    slow = PeriodicJob("slow", "workers.outbound.sweep", 3600, "default")

    assert tick(redis_conn, now=NOW, schedule=(fast, slow)) == [_expected_id(fast, NOW), _expected_id(slow, NOW)]
    assert tick(redis_conn, now=NOW + 10, schedule=(fast, slow)) == [_expected_id(fast, NOW + 10)]
    assert get_queue("default").job_ids == [
        _expected_id(fast, NOW),
        _expected_id(slow, NOW),
        _expected_id(fast, NOW + 10),
    ]


def test_run_returns_at_once_when_the_event_is_already_set(app, redis_conn):
    stop = threading.Event()
    stop.set()

    run(redis_conn, stop, poll_seconds=0)

    assert _all_job_ids() == []


def test_run_ticks_until_the_event_is_set(app, redis_conn, monkeypatch):
    monkeypatch.setattr(periodic, "time", types.SimpleNamespace(time=lambda: NOW))
    stop = CountingEvent(limit=3)

    run(redis_conn, stop, poll_seconds=0)

    assert stop.waits == 3  # three ticks, then the loop saw the event and returned
    assert sorted(_all_job_ids()) == sorted(_expected_id(job, NOW) for job in SCHEDULE)


def test_run_survives_redis_being_unreachable(app, caplog):
    down = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    stop = CountingEvent(limit=3)

    with caplog.at_level(logging.WARNING, logger="workers.schedule"):
        run(down, stop, poll_seconds=0)

    assert stop.waits == 3  # each failed tick was logged and the loop went on
    warnings = [r for r in caplog.records if r.name == "workers.schedule" and r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert all("Redis unavailable" in r.getMessage() for r in warnings)


def test_the_worker_process_runs_the_schedule_in_its_periodic_thread(app, redis_conn, monkeypatch):
    """``run_worker`` starts the loop in its own thread, where no app context is inherited: it must still enqueue.

    Only the thread's length is pinned: its stop event lets the loop tick twice, the RQ worker itself returns at
    once (it would otherwise serve the queues until a signal), and the clock is fixed so the period is known.
    """
    monkeypatch.setattr(periodic, "time", types.SimpleNamespace(time=lambda: NOW))
    started: list[str] = []
    errors: list[BaseException] = []

    class ThreadRunToCompletion:
        """A real thread, started by ``run_worker`` as its periodic thread, that ``start`` waits for."""

        def __init__(self, target, args=(), kwargs=None, name=None, daemon=None) -> None:
            self.target, self.args, self.kwargs, self.name = target, args, kwargs or {}, name

        def start(self) -> None:
            def body() -> None:
                try:
                    self.target(*self.args, **self.kwargs)
                except BaseException as exc:  # noqa: BLE001 (report whatever killed the thread)
                    errors.append(exc)

            started.append(self.name)
            thread = threading.Thread(target=body)  # a fresh thread: no app context, as in production
            thread.start()
            thread.join(timeout=30)

    monkeypatch.setattr(
        runner, "threading", types.SimpleNamespace(Thread=ThreadRunToCompletion, Event=lambda: CountingEvent(2))
    )
    monkeypatch.setattr(runner.AppWorker, "work", lambda self, **kwargs: False)

    runner.run_worker(app, burst=False, with_scheduler=True)

    assert started == ["periodic"]
    assert errors == []
    assert sorted(_all_job_ids()) == sorted(_expected_id(job, NOW) for job in SCHEDULE)


def test_a_burst_worker_runs_no_periodic_thread(app, redis_conn, monkeypatch):
    started: list = []
    monkeypatch.setattr(
        runner,
        "threading",
        types.SimpleNamespace(Thread=lambda **kwargs: started.append(kwargs) or None, Event=threading.Event),
    )
    monkeypatch.setattr(runner.AppWorker, "work", lambda self, **kwargs: False)

    runner.run_worker(app, burst=True, with_scheduler=True)

    assert started == []
    assert _all_job_ids() == []
