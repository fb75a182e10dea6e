"""``flask jobs list`` and ``flask jobs run NAME``: every periodic job can be run by hand, claimed like the
scheduled run (a run by hand while this period's scheduled run is queued, or while another run by hand goes, is
refused; a scheduled run that is over no longer blocks one)."""

from __future__ import annotations

import time

import pytest

from app.jobs import get_queue
from workers.schedule import SCHEDULE, tick

NAMES = [job.name for job in SCHEDULE]


def test_list_names_every_periodic_job(runner):
    result = runner.invoke(args=["jobs", "list"])
    assert result.exit_code == 0
    assert [line.split()[0] for line in result.output.splitlines()] == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_every_periodic_job_runs_by_hand(runner, redis_conn, name):
    every = next(job.every_seconds for job in SCHEDULE if job.name == name)
    before = int(time.time() // every)
    result = runner.invoke(args=["jobs", "run", name])
    after = int(time.time() // every)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{name}: ")
    # The period is claimed as the scheduler claims it: it will not enqueue this job again in it.
    assert any(redis_conn.exists(f"thusa:periodic:{name}:{slot}") for slot in {before, after})


def test_an_unknown_job_is_refused_with_the_names(runner):
    result = runner.invoke(args=["jobs", "run", "mark-everything"])
    assert result.exit_code != 0 and "mark-missed" in result.output


def test_a_run_by_hand_never_overlaps_the_scheduled_run_or_another_by_hand(runner, redis_conn):
    job = next(j for j in SCHEDULE if j.name == "mark-missed")
    now = time.time()
    tick(redis_conn, now=now, schedule=(job,))  # this period's scheduled run is queued
    refused = runner.invoke(args=["jobs", "run", "mark-missed"])
    assert refused.exit_code != 0 and "queued" in refused.output

    get_queue(job.queue).empty()  # the scheduled run is gone (finished, or lost in an outage)
    assert runner.invoke(args=["jobs", "run", "mark-missed"]).exit_code == 0

    redis_conn.set("thusa:periodic-manual:mark-missed", 1)  # another operator's run is going
    busy = runner.invoke(args=["jobs", "run", "mark-missed"])
    assert busy.exit_code != 0 and "by hand" in busy.output
