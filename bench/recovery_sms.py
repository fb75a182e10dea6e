"""Missed visits on PostgreSQL + Redis: planning the recovery SMS of 10,000 missed visits.

10,000 visits yesterday in 5 Botswana clinics, none marked (as an import or the API leaves them). Measured, each
once, as the product's jobs run them: (1) ``app.services.upkeep.mark_missed`` at 00:30 clinic time, which marks
them missed and makes each owe its recovery SMS at 07:00; (2) ``app.services.recovery.queue_due_recovery`` at
07:00, which writes the 10,000 recovery SMS to the outbox (rendered in each patient's language, ``ON CONFLICT DO
NOTHING`` on their keys) and enqueues their send jobs through Redis. Printed: the time of each, and the process's
peak RSS (VmHWM, reset before each step where the kernel allows it). Checked: exactly one SMS per visit, and a
second run writes none. No ceiling to compare with: the figures are for the record (the job runs every minute
with a 45 s budget per run; a backlog larger than a run takes is finished by the next runs).

The database named by ``--database-url`` is wiped and migrated and the Redis database of ``--redis-url`` flushed:
point them at throw-away databases. Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from upload_csv import prepare_database  # noqa: E402

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/thusa_bench_recovery"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
GABORONE = ZoneInfo("Africa/Gaborone")


def peak_rss_mb(reset: bool = False) -> float:
    """The process's peak resident set (VmHWM) in MB; ``reset`` first asks the kernel to start it afresh."""
    if reset:
        with contextlib.suppress(OSError):  # not every kernel lets a process reset it
            Path("/proc/self/clear_refs").write_text("5")
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def seed(visits: int, day) -> None:
    """``visits`` unmarked visits on ``day`` (clinic time) in 5 clinics, one patient each, half in Setswana."""
    from sqlalchemy import insert

    from app.extensions import db
    from app.models import Appointment, Clinic, Contact, Patient, PatientRecord, utcnow

    clinics = [Clinic(name=f"Clinic {n}", country="BW", timezone="Africa/Gaborone", default_language="en")
               for n in range(5)]  # fmt: skip
    db.session.add_all(clinics)
    db.session.flush()
    stamp = utcnow()
    contacts, patients, records, appointments = [], [], [], []
    for n in range(visits):
        phone = f"+2677{n:07d}"
        contact_id, patient_id, clinic = uuid.uuid4(), uuid.uuid4(), clinics[n % len(clinics)]
        at = datetime.combine(day, clock_time(8 + n % 8, 30 * (n % 2)), tzinfo=GABORONE).astimezone(UTC)
        contacts.append({"id": contact_id, "address": phone, "language": "tn" if n % 2 else None,
                         "created_at": stamp, "updated_at": stamp})  # fmt: skip
        patients.append({"id": patient_id, "phone": phone, "contact_id": contact_id, "created_at": stamp,
                         "updated_at": stamp})  # fmt: skip
        records.append({"id": uuid.uuid4(), "patient_id": patient_id, "clinic_id": clinic.id,
                        "preferred_channel": "sms", "created_at": stamp, "updated_at": stamp})  # fmt: skip
        appointments.append({"id": uuid.uuid4(), "clinic_id": clinic.id, "patient_id": patient_id,
                             "appointment_datetime": at, "status": "scheduled", "reminders_sent": 0,
                             "import_key": f"at:{phone}|{at:%Y-%m-%dT%H:%MZ}", "channel": "sms",
                             "created_at": stamp, "updated_at": stamp})  # fmt: skip
    for model, rows in ((Contact, contacts), (Patient, patients), (PatientRecord, records),
                        (Appointment, appointments)):  # fmt: skip
        db.session.execute(insert(model), rows)
    db.session.commit()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--visits", type=int, default=10_000)
    args = parser.parse_args(argv)

    import redis
    from flask_migrate import upgrade
    from sqlalchemy import func, select

    print(f"preparing {args.database_url} (wipe + migrate) and {args.redis_url} (flush) ...", flush=True)
    prepare_database(args.database_url)
    redis.Redis.from_url(args.redis_url).flushdb()
    from app import create_app

    failures = []
    with tempfile.TemporaryDirectory(prefix="thusa-bench-") as instance:
        app = create_app({"THUSA_ENV": "test", "DATABASE_URL": args.database_url, "REDIS_URL": args.redis_url,
                          "INSTANCE_PATH": instance, "SECRET_KEY": "bench-" + "s" * 40,
                          "JWT_SECRET_KEY": "bench-" + "j" * 40})  # fmt: skip
        with app.app_context():
            from app.extensions import db
            from app.models import Message
            from app.services import recovery
            from app.services.upkeep import mark_missed

            upgrade(directory=str(ROOT / "migrations"))
            today = datetime.now(GABORONE).date()
            seed(args.visits, today - timedelta(days=1))
            night = datetime.combine(today, clock_time(0, 30), tzinfo=GABORONE).astimezone(UTC)
            morning = datetime.combine(today, clock_time(7, 0), tzinfo=GABORONE).astimezone(UTC)

            before = peak_rss_mb(reset=True)
            began = time.perf_counter()
            marked = mark_missed(night)
            mark_seconds, mark_rss = time.perf_counter() - began, peak_rss_mb()

            peak_rss_mb(reset=True)
            began = time.perf_counter()
            counts = recovery.queue_due_recovery(morning, budget_seconds=None)
            plan_seconds, plan_rss = time.perf_counter() - began, peak_rss_mb()
            again = recovery.queue_due_recovery(morning + timedelta(minutes=1), budget_seconds=None)
            written = db.session.scalar(select(func.count()).select_from(Message).where(
                Message.dedupe_key.startswith(recovery.RECOVERY_KEY)))  # fmt: skip

    n = args.visits
    print(f"mark-missed: {marked:,} visits marked in {mark_seconds:.2f} s ({marked / mark_seconds:,.0f}/s); "
          f"peak RSS {mark_rss:.0f} MB (before {before:.0f} MB)")  # fmt: skip
    print(f"recovery SMS: {counts['queued']:,} planned and enqueued in {plan_seconds:.2f} s "
          f"({counts['queued'] / plan_seconds:,.0f}/s, {counts['batches']} batches); peak RSS {plan_rss:.0f} MB")  # fmt: skip
    if marked != n:
        failures.append(f"marked {marked}, not {n}")
    if counts["queued"] != n or written != n:
        failures.append(f"wrote {counts['queued']} recovery SMS ({written} rows), not {n}")
    if again["due"] or again["queued"]:
        failures.append(f"a second run wrote {again['queued']}")
    for failure in failures:
        print(f"FAIL: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
