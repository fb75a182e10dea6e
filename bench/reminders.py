"""Appointment reminders on PostgreSQL + Redis: planning and enqueueing, sending, and the CSV upload.

(a) **Plan and enqueue.** 100,000 appointments over the coming week in 10 clinics (Gaborone and Accra), each with
its first reminder due, as an import or the API leaves them (``next_reminder_at`` planned). Measured: one
``app.services.upkeep.queue_due_reminders`` run at an instant when all are due, i.e. the product's minute job over
the whole backlog: due rows read by index in batches of 2,000 (``FOR UPDATE SKIP LOCKED``), each reminder's text
rendered in its language, the outbox rows inserted (``ON CONFLICT DO NOTHING`` on the dedupe key), every
appointment re-planned, one commit per batch, then one RQ send job per reminder enqueued through Redis pipelines.
Ceiling, same run: Redis ``LPUSH`` of as many items, pipelined 1,000 per round trip (what Redis alone takes to
hold that many queue entries). No target: the ratio is printed for the record.

(b) **Send.** Reminders sent by TWO ``flask worker`` processes (the product's worker: RQ, the claim, the send-time
checks, the real ``twilio`` client, the result and ``reminders_sent`` recorded) to a fake Twilio API on 127.0.0.1,
against the same ``twilio`` client (the product's Twilio adapter, one client) sending to the same fake directly in
a loop, in this process. The fake runs in its own process (a threaded HTTP/1.1 server answering like Twilio's
``Messages.json`` create, ``201`` with a Message resource) and counts what it received per number, so "each
reminder exactly once" is checked at the provider. The workers are started and warmed up first (200 reminders);
the rate is the measured reminders over the time from the first claim to the last ``sent`` (timestamps the workers
wrote), so process start-up is not counted. Target: ≥ 0.5 of the direct rate.

(c) **CSV upload** of 100,000 rows against PostgreSQL ``COPY`` of the same file: ``bench/upload_csv.py``'s ``run``
(target ≥ 30,000 rows/s validated). It runs last: it wipes the database again.

The database named by ``--database-url`` is wiped (``DROP SCHEMA public CASCADE``) and migrated, and the Redis
database of ``--redis-url`` is flushed: point them at throw-away databases, never at real data. Exit status 1 when
a target or a check is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `python bench/reminders.py` from anywhere: the project's packages

import upload_csv  # noqa: E402  (bench/, beside this script: part (c), and the database preparation)
from upload_csv import prepare_database  # noqa: E402
from webhook_throughput import peak_rss_mb  # noqa: E402

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/thusa_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/12"
ACCOUNT_SID = "AC" + "b" * 32
AUTH_TOKEN = secrets.token_hex(16)  # this run only
TWILIO_FROM = "+15005550006"
SEND_TARGET_RATIO = 0.5
SEND_TARGET_CPU_MS = 2.5  # worker CPU a reminder (both workers together)
WORKERS = 2
CLINICS = (
    # name, country, time zone, default language
    ("Tlokweng Clinic", "BW", "Africa/Gaborone", "tn"),
    ("Gaborone Main Clinic", "BW", "Africa/Gaborone", "en"),
    ("Mogoditshane Clinic", "BW", "Africa/Gaborone", "tn"),
    ("Molepolole Health Post", "BW", "Africa/Gaborone", "tn"),
    ("Kanye Clinic", "BW", "Africa/Gaborone", "tn"),
    ("Francistown Clinic", "BW", "Africa/Gaborone", "en"),
    ("Kumasi Clinic", "GH", "Africa/Accra", "en"),
    ("Osu Clinic", "GH", "Africa/Accra", "en"),
    ("Tamale Health Centre", "GH", "Africa/Accra", "en"),
    ("Cape Coast Clinic", "GH", "Africa/Accra", "en"),
)
WEEK_OFFSETS = [7 * 24 * 60, 3 * 24 * 60, 24 * 60]  # a week, 3 days, 1 day before: every visit of the week is due


# --- the fake Twilio (its own process) ---------------------------------------------------------------------------


def serve_fake_twilio() -> None:
    """A threaded HTTP/1.1 server answering ``POST .../Messages.json`` like Twilio: ``201`` and a Message resource.

    Prints ``PORT <n>`` when up. ``GET /stats`` answers ``{"requests": n, "numbers": {To: count}}``.
    """
    lock = threading.Lock()
    numbers: Counter = Counter()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as api.twilio.com
        disable_nagle_algorithm = True  # headers and body go out as written, no 40 ms delayed-ACK stall

        def _answer(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if not self.path.endswith("/Messages.json"):
                return self._answer(404, {"code": 20404, "message": "not found", "status": 404})
            form = parse_qs(body.decode())
            to = form.get("To", [""])[0]
            with lock:
                numbers[to] += 1
            sid = "SM" + uuid.uuid4().hex
            return self._answer(201, {
                "account_sid": ACCOUNT_SID, "api_version": "2010-04-01", "body": form.get("Body", [""])[0],
                "date_created": "Mon, 04 Mar 2030 10:00:00 +0000", "date_sent": None,
                "date_updated": "Mon, 04 Mar 2030 10:00:00 +0000", "direction": "outbound-api", "error_code": None,
                "error_message": None, "from": form.get("From", [""])[0], "messaging_service_sid": None,
                "num_media": "0", "num_segments": "1", "price": None, "price_unit": "USD", "sid": sid,
                "status": "queued", "subresource_uris": {}, "to": to,
                "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json",
            })  # fmt: skip

        def do_GET(self):  # noqa: N802
            with lock:
                stats = {"requests": sum(numbers.values()), "numbers": dict(numbers)}
            self._answer(200, stats)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


class FakeTwilioProcess:
    """Runs :func:`serve_fake_twilio` in a child process."""

    def __enter__(self) -> FakeTwilioProcess:
        self.process = subprocess.Popen(  # noqa: S603 (our own interpreter and script)
            [sys.executable, __file__, "--serve-fake-twilio"], stdout=subprocess.PIPE, text=True
        )
        line = self.process.stdout.readline().split()
        if len(line) != 2 or line[0] != "PORT":
            raise RuntimeError("the fake Twilio did not start")
        self.base_url = f"http://127.0.0.1:{line[1]}"
        return self

    def stats(self) -> dict:
        import requests

        return requests.get(self.base_url + "/stats", timeout=10).json()

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


# --- setup ---------------------------------------------------------------------------------------------------------


def settings(args: argparse.Namespace, instance: str, twilio_base_url: str) -> dict:
    return {
        "THUSA_ENV": "test", "DATABASE_URL": args.database_url, "REDIS_URL": args.redis_url,
        "INSTANCE_PATH": instance, "LOG_LEVEL": args.log_level, "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_FROM": TWILIO_FROM, "TWILIO_API_BASE_URL": twilio_base_url,
        "SMS_PROVIDERS": "twilio", "SEND_RETRY_BACKOFF_SECONDS": "0",
    }  # fmt: skip


def make_app(config: dict):
    from app import create_app

    overrides = {**config, "SMS_PROVIDERS": ["twilio"], "SECRET_KEY": "bench-" + "s" * 40,
                 "JWT_SECRET_KEY": "bench-" + "j" * 40}  # fmt: skip
    return create_app(overrides)


def child_env(config: dict) -> dict:
    steering = ("TWILIO_", "AT_", "TELEGRAM_", "WHATSAPP_", "SMS_", "SEND_", "PUBLIC_BASE_URL", "HTTP_PROXY",
                "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")  # fmt: skip
    env = {name: value for name, value in os.environ.items() if not name.startswith(steering)}
    env.update({name: str(value) for name, value in config.items()})
    env.update({"FLASK_SKIP_DOTENV": "1", "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
                "PYTHONUNBUFFERED": "1"})  # fmt: skip
    return env


def empty_tables() -> None:
    import sqlalchemy as sa

    from app.extensions import db
    from app.models import Base

    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    db.session.execute(sa.text(f"TRUNCATE {tables} CASCADE"))
    db.session.commit()


def add_appointments(clinics: list, count: int, *, start: datetime, days: float, booked: datetime, seed: int,
                     first: int = 0, office_hours: bool = True) -> int:  # fmt: skip
    """``count`` appointments spread over ``days`` from ``start`` (between 07:30 and 16:00 local with
    ``office_hours``), one patient each (numbers from index ``first``), with their reminders planned as at
    ``booked`` (what an import does), written in bulk. Returns how many have a reminder planned."""
    from app.extensions import db
    from app.models import Appointment, Contact, Patient, PatientRecord
    from app.services.appointments import next_reminder, zone

    rng = random.Random(seed)
    contacts, patients, records, rows = [], [], [], []
    stamp = datetime.now(UTC)
    end = start + timedelta(days=days)
    for i in range(first, first + count):
        clinic = clinics[i % len(clinics)]
        at = start + timedelta(seconds=rng.uniform(1, days * 86400))
        if office_hours:
            minutes = rng.randrange(7 * 60 + 30, 16 * 60, 15)
            day = at.astimezone(zone(clinic))
            at = day.replace(hour=minutes // 60, minute=minutes % 60, second=0, microsecond=0).astimezone(UTC)
            at += timedelta(days=1) if at <= start else -timedelta(days=1) if at > end else timedelta(0)
        phone = f"+2677{i:07d}" if clinic.country == "BW" else f"+23324{i:07d}"
        contact_id, patient_id = uuid.uuid4(), uuid.uuid4()
        language = rng.choice((None, "en", "tn"))
        contacts.append({"id": contact_id, "address": phone, "language": rng.choice((None, "en", "tn")),
                         "created_at": stamp, "updated_at": stamp})  # fmt: skip
        patients.append({"id": patient_id, "phone": phone, "contact_id": contact_id, "created_at": stamp,
                         "updated_at": stamp})  # fmt: skip
        records.append({"id": uuid.uuid4(), "patient_id": patient_id, "clinic_id": clinic.id,
                        "preferred_channel": "sms", "created_at": stamp, "updated_at": stamp})  # fmt: skip
        send_at, offset = next_reminder(clinic, at, "scheduled", booked)
        rows.append({"id": uuid.uuid4(), "clinic_id": clinic.id, "patient_id": patient_id, "appointment_datetime": at,
                     "language": language, "status": "scheduled", "reminders_sent": 0, "channel": "sms",
                     "import_key": f"ref:BENCH-{seed}-{i}", "external_ref": f"BENCH-{seed}-{i}",
                     "next_reminder_at": send_at, "next_reminder_offset": offset, "created_at": stamp,
                     "updated_at": stamp})  # fmt: skip
    for model, data in ((Contact, contacts), (Patient, patients), (PatientRecord, records), (Appointment, rows)):
        for chunk in range(0, len(data), 5000):
            db.session.execute(model.__table__.insert(), data[chunk : chunk + 5000])
    db.session.commit()
    return sum(1 for row in rows if row["next_reminder_at"] is not None)


def make_clinics(offsets: list[int], window: tuple[clock_time, clock_time] | None = None) -> list:
    from app.extensions import db
    from app.models import Clinic

    clinics = []
    for name, country, timezone, language in CLINICS:
        clinic = Clinic(name=name, country=country, timezone=timezone, default_language=language,
                        reminder_offsets_minutes=offsets)  # fmt: skip
        if window:
            clinic.send_window_start, clinic.send_window_end = window
        clinics.append(clinic)
    db.session.add_all(clinics)
    db.session.commit()
    return clinics


# --- (a) plan and enqueue -----------------------------------------------------------------------------------------


def bench_enqueue(app, args: argparse.Namespace) -> dict:
    import redis
    from sqlalchemy import func, select

    from app.extensions import db
    from app.jobs import QUEUE_OUTBOUND, get_queue
    from app.messaging.outbox import BATCH_KEY
    from app.models import Message
    from app.services.upkeep import queue_due_reminders

    with app.app_context():
        empty_tables()
        # An instant 12:00 UTC (14:00 in Gaborone, 12:00 in Accra: inside the sending hours); visits the week after.
        now = (datetime.now(UTC) + timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0)
        clinics = make_clinics(WEEK_OFFSETS)
        planned = add_appointments(clinics, args.appointments, start=now, days=7, booked=now - timedelta(days=8),
                                   seed=1)  # fmt: skip
        db.session.remove()
        connection = redis.Redis.from_url(args.redis_url)
        connection.flushdb()
        print(f"(a) {args.appointments:,} appointments in {len(clinics)} clinics over a week, {planned:,} with a "
              "reminder planned; enqueueing ...", flush=True)  # fmt: skip

        began = time.perf_counter()
        counts = queue_due_reminders(now=now, budget_seconds=None)
        seconds = time.perf_counter() - began

        written = db.session.scalar(select(func.count()).select_from(Message).where(Message.kind == "reminder"))
        distinct = db.session.scalar(select(func.count(func.distinct(Message.appointment_id))))
        jobs = get_queue(QUEUE_OUTBOUND).count
        # Every reminder has its send job: a batch job names it (the sweeper's key) or it has one of its own.
        in_batches = sum(1 for _ in connection.scan_iter(match=f"{BATCH_KEY}*", count=10_000))
        alone = sum(1 for _ in connection.scan_iter(match="rq:job:send-????????-*", count=10_000))
        db.session.remove()

    items = [str(uuid.uuid4()) for _ in range(counts["queued"] or args.appointments)]
    connection.delete("bench:lpush")
    lpush_began = time.perf_counter()
    for start in range(0, len(items), 1000):
        with connection.pipeline(transaction=False) as pipe:
            for item in items[start : start + 1000]:
                pipe.lpush("bench:lpush", item)
            pipe.execute()
    lpush_seconds = time.perf_counter() - lpush_began
    pushed = connection.llen("bench:lpush")
    connection.flushdb()  # the 100,000 send jobs are not part of (b)
    checks = []
    if not counts["queued"] == written == distinct == in_batches + alone == planned:
        checks.append(f"(a) {counts['queued']} queued, {written} rows for {distinct} appointments, {in_batches} in "
                      f"batch jobs and {alone} alone, for {planned} due")  # fmt: skip
    if pushed != len(items):
        checks.append(f"(a) LPUSH stored {pushed} of {len(items)}")
    return {"counts": counts, "seconds": seconds, "lpush_seconds": lpush_seconds, "items": len(items),
            "written": written, "jobs": jobs, "checks": checks}  # fmt: skip


# --- (b) send ---------------------------------------------------------------------------------------------------


class Cpu:
    """CPU seconds of processes, from /proc (Linux)."""

    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    @classmethod
    def of(cls, pids: list[int]) -> float:
        total = 0.0
        for pid in pids:
            with contextlib.suppress(OSError, IndexError, ValueError):
                with open(f"/proc/{pid}/stat") as handle:
                    fields = handle.read().rpartition(")")[2].split()
                total += (int(fields[11]) + int(fields[12])) / cls.ticks
        return total


def _queue_send_batch(app, clinics: list, count: int, seed: int, first: int) -> set:
    """``count`` reminders due now, written by the product's job (rows committed, send jobs enqueued at once, so the
    idle workers start on them together). Returns the ids of every reminder written so far."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Message
    from app.services.upkeep import queue_due_reminders

    with app.app_context():
        now = datetime.now(UTC)
        add_appointments(clinics, count, start=now + timedelta(hours=22), days=1 / 24, booked=now - timedelta(hours=3),
                         seed=seed, first=first, office_hours=False)  # fmt: skip
        counts = queue_due_reminders(now=now, batch_size=max(count, 1), budget_seconds=None)
        if counts["queued"] != count:
            raise SystemExit(f"(b) the job queued {counts['queued']} reminders, not {count}: {counts}")
        ids = set(db.session.scalars(select(Message.id).where(Message.kind == "reminder")))
        db.session.remove()
    return ids


def _wait_sent(app, expected: int, timeout: float) -> int:
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import Message

    deadline = time.monotonic() + timeout
    with app.app_context():
        while True:
            done = db.session.scalar(
                select(func.count()).select_from(Message).where(Message.status.in_(("sent", "failed", "unknown")))
            )
            db.session.commit()
            if done >= expected or time.monotonic() > deadline:
                db.session.remove()
                return done
            time.sleep(0.1)


def _span(app, since_ids: set) -> tuple[float, Counter]:
    """Seconds from the first claim to the last sent over the messages not in ``since_ids``, and their statuses."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Message

    with app.app_context():
        rows = db.session.execute(select(Message.id, Message.status, Message.claimed_at, Message.sent_at)).all()
        db.session.remove()
    measured = [r for r in rows if r.id not in since_ids]
    first = min(r.claimed_at for r in measured if r.claimed_at)
    last = max(r.sent_at for r in measured if r.sent_at)
    return (last - first).total_seconds(), Counter(r.status for r in measured)


def _direct_loop(app, count: int, first: int) -> tuple[float, float]:
    """The ceiling: the product's Twilio adapter (one twilio client, as a worker keeps it) sending ``count``
    reminder texts to the fake in a loop, nothing else. Returns (seconds, CPU seconds of this process)."""
    from app.i18n import t
    from app.messaging.envelopes import OutboundMessage
    from app.models.channel import SMS
    from bots.channels.twilio import TwilioChannel

    with app.app_context():
        channel = TwilioChannel(app.config)
        text = t("appointment_reminder", "tn", clinic="Tlokweng Clinic", when="Labotlhano 31/12 ka 16:30")
        messages = [
            OutboundMessage(uuid.uuid4(), SMS, f"+26779{i:06d}", text, "tn") for i in range(first, first + count)
        ]
        channel.send(messages[0])  # connect
        cpu, began = time.process_time(), time.perf_counter()
        for message in messages[1:]:
            channel.send(message)
        return time.perf_counter() - began, time.process_time() - cpu


def bench_send(app, args: argparse.Namespace, fake: FakeTwilioProcess, config: dict, instance: str) -> dict:
    """Part (b). The direct loop runs before and after the workers (half the sends each), so drift in the
    machine's load hits both sides alike."""
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import Appointment

    with app.app_context():
        empty_tables()
        clinics = make_clinics([24 * 60], window=(clock_time(0, 0), clock_time.max))  # any hour: the real clock
        db.session.remove()
    half = args.sends // 2 + 1
    before = _direct_loop(app, half, first=0)

    env = child_env(config)
    flask = Path(sys.executable).with_name("flask")
    command = [str(flask)] if flask.exists() else [sys.executable, "-m", "flask"]
    command += ["--app", "wsgi", "worker", "--no-scheduler", "--queue", "outbound"]
    logs = [open(Path(instance) / f"worker{i}.log", "w+b") for i in range(WORKERS)]  # noqa: SIM115 (closed below)
    workers = [subprocess.Popen(command, cwd=ROOT, env=env, stderr=log, stdout=subprocess.DEVNULL,  # noqa: S603
                                start_new_session=True) for log in logs]  # fmt: skip
    try:
        warm_ids = _queue_send_batch(app, clinics, args.warmup, seed=2, first=0)
        if _wait_sent(app, len(warm_ids), timeout=120) < len(warm_ids):
            raise SystemExit("(b) the workers did not send the warm-up reminders within 120 s")
        pids = [w.pid for w in workers]
        cpu_workers = Cpu.of(pids)
        all_ids = _queue_send_batch(app, clinics, args.sends, seed=3, first=args.warmup)
        done = _wait_sent(app, len(all_ids), timeout=args.time_limit) - len(warm_ids)
        cpu_workers = Cpu.of(pids) - cpu_workers
        worker_rss = [peak_rss_mb(pid) for pid in pids]
    finally:
        for worker in workers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGTERM)
        for worker, log in zip(workers, logs, strict=True):
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
            log.seek(0)
            errors = log.read().decode(errors="replace")
            log.close()
            if "Traceback" in errors:
                sys.stderr.write(errors[-3000:])
    after = _direct_loop(app, half, first=half)
    seconds, statuses = _span(app, warm_ids)
    stats = fake.stats()
    with app.app_context():
        counted = db.session.scalar(select(func.sum(Appointment.reminders_sent)))
        db.session.remove()
    worker_numbers = {n: c for n, c in stats["numbers"].items() if not n.startswith("+26779")}
    total = args.warmup + args.sends
    checks = []
    if done < args.sends or statuses != Counter({"sent": args.sends}):
        checks.append(f"(b) {dict(statuses)} after {args.time_limit:.0f} s for {args.sends} reminders")
    if len(worker_numbers) != total or set(worker_numbers.values()) != {1}:
        twice = sum(1 for c in worker_numbers.values() if c > 1)
        checks.append(f"(b) the provider got {sum(worker_numbers.values())} requests for {len(worker_numbers)} "
                      f"numbers ({twice} more than once) for {total} reminders")  # fmt: skip
    if counted != total:
        checks.append(f"(b) reminders_sent adds up to {counted} for {total} reminders sent")
    direct_sends = 2 * (half - 1)
    return {"direct_rate": direct_sends / (before[0] + after[0]), "direct_rates": ((half - 1) / before[0],
            (half - 1) / after[0]), "direct_cpu": (before[1] + after[1]) / direct_sends, "seconds": seconds,
            "worker_cpu": cpu_workers / args.sends, "statuses": statuses, "checks": checks,
            "worker_rss": worker_rss}  # fmt: skip


def explain_send(app, count: int) -> list[str]:
    """Where a worker's time per reminder goes: one worker in this process sends ``count`` reminders with every
    database statement, commit and provider call timed (wall clock, so waiting for PostgreSQL counts)."""
    import psycopg
    import twilio.http.http_client as twilio_http

    from app.extensions import db
    from workers.runner import run_worker

    with app.app_context():
        clinics = make_clinics([24 * 60], window=(clock_time(0, 0), clock_time.max))
        db.session.remove()
    _queue_send_batch(app, clinics, 50, seed=7, first=900_000)
    run_worker(app, burst=True, with_scheduler=False)  # warm
    _queue_send_batch(app, clinics, count, seed=8, first=910_000)
    spent: dict[str, list[float]] = {}

    def timed(name_of, function):
        def wrapper(*args, **kwargs):
            began = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                entry = spent.setdefault(name_of(args), [0, 0.0])
                entry[0] += 1
                entry[1] += time.perf_counter() - began

        return wrapper

    saved = (psycopg.Cursor.execute, psycopg.Connection.commit, twilio_http.TwilioHttpClient.request)
    psycopg.Cursor.execute = timed(lambda a: "SQL " + " ".join(str(a[1]).split()[:3])[:34], saved[0])
    psycopg.Connection.commit = timed(lambda a: "COMMIT", saved[1])
    twilio_http.TwilioHttpClient.request = timed(lambda a: "twilio API call", saved[2])
    try:
        cpu, began = time.process_time(), time.perf_counter()
        run_worker(app, burst=True, with_scheduler=False)
        wall, cpu = time.perf_counter() - began, time.process_time() - cpu
    finally:
        psycopg.Cursor.execute, psycopg.Connection.commit, twilio_http.TwilioHttpClient.request = saved
    lines = [f"    one worker in-process, {count} reminders: {1000 * wall / count:.2f} ms per reminder "
             f"({1000 * cpu / count:.2f} ms CPU); of which:"]  # fmt: skip
    accounted = 0.0
    for name, (calls, seconds) in sorted(spent.items(), key=lambda item: -item[1][1]):
        accounted += seconds
        lines.append(f"      {name:40s} {calls / count:5.2f} per reminder  {1000 * seconds / count:6.2f} ms")
    lines.append(f"      {'the rest (Python: SQLAlchemy, RQ, twilio)':40s} {'':18s}  "
                 f"{1000 * (wall - accounted) / count:6.2f} ms")  # fmt: skip
    return lines


# --- (c) upload --------------------------------------------------------------------------------------------------


def bench_upload(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """Part (c): bench/upload_csv.py's ``run``. Returns the lines to print and what was missed."""
    result = upload_csv.run(args.database_url, args.redis_url, args.rows)
    lines = ["(c) " + upload_csv.describe(result)]
    return lines, ([] if result.get("passed") else ["(c) CSV upload target missed"])


# --- the run --------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--appointments", type=int, default=100_000, help="(a) appointments (default 100,000)")
    parser.add_argument("--sends", type=int, default=3_000, help="(b) reminders measured per side (default 3,000)")
    parser.add_argument("--warmup", type=int, default=200, help="(b) unmeasured reminders first (default 200)")
    parser.add_argument("--rows", type=int, default=100_000, help="(c) CSV rows (default 100,000)")
    parser.add_argument("--parts", default="abc", help="which parts to run (default abc)")
    parser.add_argument("--time-limit", type=float, default=300.0, help="(b) give the workers this long (s)")
    parser.add_argument("--explain", type=int, default=0, metavar="N",
                        help="(b) also time each statement, commit and API call of one worker over N reminders")  # fmt: skip
    parser.add_argument("--log-level", default="WARNING",
                        help="the workers' LOG_LEVEL (default WARNING: RQ's per-job INFO lines off)")  # fmt: skip
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
                        help="PostgreSQL database to WIPE and use (env BENCH_DATABASE_URL)")  # fmt: skip
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL),
                        help="Redis database to FLUSH and use (env BENCH_REDIS_URL)")  # fmt: skip
    parser.add_argument("--serve-fake-twilio", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_fake_twilio:
        serve_fake_twilio()
        return 0
    import redis
    from flask_migrate import upgrade

    began = time.monotonic()
    lines, missed = [], []
    print(f"preparing {args.database_url} (wipe + migrate) and {args.redis_url} (flush) ...", flush=True)
    prepare_database(args.database_url)
    redis.Redis.from_url(args.redis_url).flushdb()
    with tempfile.TemporaryDirectory(prefix="thusa-bench-") as instance, FakeTwilioProcess() as fake:
        config = settings(args, instance, fake.base_url)
        app = make_app(config)
        with app.app_context():
            upgrade(directory=str(ROOT / "migrations"))
        if "a" in args.parts:
            a = bench_enqueue(app, args)
            n = a["counts"]["queued"]
            rate, lpush_rate = n / a["seconds"], a["items"] / a["lpush_seconds"]
            lines += [
                f"(a) plan + enqueue {n:,} due reminders: {a['seconds']:.2f} s = {rate:,.0f}/s "
                f"({a['counts']['batches']} batches; rows {a['written']:,}, send jobs {a['jobs']:,} of up to 25 reminders)",
                f"    Redis LPUSH {a['items']:,} items (pipelined, 1,000 per round trip): {a['lpush_seconds']:.2f} s "
                f"= {lpush_rate:,.0f}/s",
                f"    reminders / LPUSH = {rate / lpush_rate:.3f} of the rate ({a['seconds'] / a['lpush_seconds']:.0f}x"
                " the time); no target",
            ]  # fmt: skip
            missed += a["checks"]
        if "b" in args.parts:
            print(f"(b) {args.sends:,} reminders by {WORKERS} workers vs the twilio client in a loop ...", flush=True)
            b = bench_send(app, args, fake, config, instance)
            direct, workers = b["direct_rate"], args.sends / b["seconds"]
            ratio = workers / direct
            verdict = "PASS" if ratio >= SEND_TARGET_RATIO else "FAIL"
            lines += [
                f"(b) {WORKERS} workers sent {args.sends:,} reminders in {b['seconds']:.2f} s = {workers:,.0f}/s "
                f"(worker CPU {1000 * b['worker_cpu']:.1f} ms per reminder, both workers together)",
                f"    twilio client in a loop: {direct:,.0f}/s (before the workers {b['direct_rates'][0]:,.0f}/s, "
                f"after {b['direct_rates'][1]:,.0f}/s; CPU {1000 * b['direct_cpu']:.1f} ms per send)",
                f"    workers / direct = {ratio:.2f}  (target >= {SEND_TARGET_RATIO:.2f})  {verdict}",
                f"    worker CPU a reminder / target = {1000 * b['worker_cpu']:.2f} / {SEND_TARGET_CPU_MS} ms = "
                f"{1000 * b['worker_cpu'] / SEND_TARGET_CPU_MS:.2f}",
                f"    peak RSS of each worker: {', '.join(f'{mb:.0f} MB' for mb in b['worker_rss'])}",
            ]  # fmt: skip
            if args.explain:
                print(f"(b) explaining the send path over {args.explain} reminders ...", flush=True)
                lines += explain_send(app, args.explain)
            missed += b["checks"]
            if ratio < SEND_TARGET_RATIO:
                missed.append(f"(b) workers / direct = {ratio:.2f} (target {SEND_TARGET_RATIO:.2f})")
            if 1000 * b["worker_cpu"] > SEND_TARGET_CPU_MS:
                missed.append(
                    f"(b) worker CPU {1000 * b['worker_cpu']:.2f} ms a reminder (target {SEND_TARGET_CPU_MS})"
                )
        with app.app_context():
            from app.extensions import db

            db.engine.dispose()  # (c) drops the schema: no pooled connection of ours may be in the way
    if "c" in args.parts:
        print(f"(c) CSV upload of {args.rows:,} rows ...", flush=True)
        upload_lines, upload_missed = bench_upload(args)
        lines += upload_lines
        missed += upload_missed
    print()
    print("\n".join(lines))
    print(f"\ntotal time {time.monotonic() - began:.1f} s")
    if missed:
        print("FAILED:\n  " + "\n  ".join(missed))
        return 1
    print("PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
