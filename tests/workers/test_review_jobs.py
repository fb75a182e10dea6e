"""The second-opinion jobs on the periodic schedule: every minute, thin wrappers over the services."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.extensions import db
from app.models import Message, utcnow
from app.services import reviews
from tests.conftest import make_user
from tests.factories import make_triaged
from workers import reviews as review_jobs
from workers.schedule import SCHEDULE


def test_both_jobs_run_every_minute_on_the_default_queue():
    jobs = {job.name: job for job in SCHEDULE}
    assert (jobs["review-alerts"].func, jobs["review-alerts"].every_seconds) == ("workers.reviews.alert_overdue", 60)
    assert (jobs["follow-ups"].func, jobs["follow-ups"].every_seconds) == ("workers.reviews.send_follow_ups", 60)
    assert all(callable(getattr(review_jobs, job.func.rsplit(".", 1)[1])) for job in jobs.values()
               if job.func.startswith("workers.reviews."))  # fmt: skip


def test_the_alert_job_alerts_an_overdue_review_once(app):
    pharmacist = make_user("pharmacist", phone="+233241000055")
    clinician = make_user("clinician", phone="+233209000055")
    reviews.set_pharmacies(clinician, [pharmacist.id])
    review, _ = reviews.open_review(make_triaged(pharmacist, level="urgent"), reason="level", by=None,
                                    now=utcnow() - timedelta(minutes=61))  # fmt: skip
    db.session.commit()
    assert review_jobs.alert_overdue() == {"overdue": 1, "sms": 1, "unstaffed": 0}
    assert review_jobs.alert_overdue() == {"overdue": 0, "sms": 0, "unstaffed": 0}  # a retried or repeated run
    assert len(db.session.scalars(select(Message).where(Message.address == clinician.phone)).all()) == 1
    assert review_jobs.send_follow_ups() == {"sent": 0, "skipped": 0}  # an API consultation has no check-in
