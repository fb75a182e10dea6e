"""Appointment CSV upload on PostgreSQL: 100,000 rows in one ``POST /api/v1/appointments/upload``, against
PostgreSQL ``COPY`` of the same file.

What is measured: the whole upload of one 100,000-row file by a clinic's staff member, through the Flask app
(the test client, in this process: no network or gunicorn in the way) when the endpoint exists, else
``app.services.appointment_import.import_csv`` directly: multipart parsing, decoding, every row validated (phone
number to E.164, time in the clinic's zone, language, lengths), reminders planned, contacts, patients, the clinic's
records of them and appointments written, commit, the report. The file is what a clinic system or a spreadsheet
exports: distinct patients (some with two visits in the week), numbers mostly in international form, some with the
``+`` dropped by a spreadsheet, some national; a week of appointment times inside opening hours, most in clinic time
(``YYYY-MM-DD HH:MM``), some ISO 8601 with an offset; English, Setswana or no language; most rows with the clinic
system's reference.

The ceiling it is compared against, in the same run: ``COPY ... FROM STDIN (FORMAT csv, HEADER)`` of the same
bytes into an unindexed scratch table of text columns through psycopg (``cursor.copy``): what PostgreSQL takes to
store the file with no validation at all.

Memory: the same upload (another clinic's file of other numbers) is then served by a gunicorn worker as production
runs it (``wsgi:app``, production settings, gthread), and the worker's peak resident set during it must stay within
the web process's 200 MB. The in-process figure printed beside it (the request's peak above this process's size) is
smaller than what the upload needs: this process has freed memory of its own (the files it built, Alembic) that the
upload reuses without growing.

Target (benchmark c of ``reminders.py``): ≥ 30,000 rows/s validated; the ratio to ``COPY`` is printed for the record.
Afterwards the database must hold exactly one appointment per row and the report no error; exit status 1 when
anything is missed.

The database named by ``--database-url`` is wiped (``DROP SCHEMA public CASCADE``) and migrated, and the Redis
database of ``--redis-url`` is flushed: point them at throw-away databases, never at real data.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))
if str(ROOT / "bench") not in sys.path:  # the shared gunicorn helpers of webhook_throughput.py
    sys.path.insert(1, str(ROOT / "bench"))

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/thusa_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
UPLOAD_PATH = "/api/v1/appointments/upload"
TARGET_RATE = 30_000  # rows/s validated (the COPY ratio is printed alongside, with no target)
TARGET_WEB_RSS_MB = 200.0  # a gunicorn worker's peak resident set during the upload
TIMEZONE = "Africa/Gaborone"
PASSWORD = "bench-password-not-secret"  # noqa: S105 (a throw-away user of the wiped bench database)
FIRST_NAMES = ("Kagiso", "Mpho", "Neo", "Lesego", "Boitumelo", "Onalenna", "Tumelo", "Kefilwe", "Thato", "Naledi",
               "Amantle", "Tshepo", "Goitseone", "Masego", "Oratile", "Keabetswe")  # fmt: skip
LAST_NAMES = ("Molefe", "Mogapi", "Kgosi", "Sebina", "Motsumi", "Tau", "Ramotswa", "Seretse", "Dintwe", "Modise",
              "Phiri", "Ntsima", "Baipidi", "Gaolathe")  # fmt: skip


# --- the file ---------------------------------------------------------------------------------------------------


def build_csv(rows: int, *, start: date, seed: int = 4, refs: str = "BW-TLK") -> bytes:
    """A clinic system's export of ``rows`` appointments over the week from ``start`` (clinic time); ``refs`` prefixes
    its external references (a clinic's warm-up file needs its own, or its rows would claim the main file's)."""
    rng = random.Random(seed)
    zone = ZoneInfo(TIMEZONE)
    # A week of 15-minute slots, 07:30-16:30, Monday to Saturday: what the clinics' opening hours allow.
    slots = []
    for day in range(7):
        current = start + timedelta(days=day)
        if current.weekday() == 6:
            continue
        moment = datetime.combine(current, clock(7, 30))
        while moment.time() < clock(16, 30):
            slots.append(moment)
            moment += timedelta(minutes=15)
    # Distinct mobile numbers (+2677[1-7]xxxxxx); about one patient in ten has two visits in the week.
    patients = rng.sample(range(10_000_000), k=rows)
    numbers = [f"2677{1 + n % 7}{n // 10 % 1_000_000:06d}" for n in patients]
    out = io.StringIO()
    out.write("patient_phone,appointment_datetime,language,patient_name,external_ref\r\n")
    used: set[tuple[str, datetime]] = set()
    for index in range(rows):
        number = numbers[index if index < 10 or rng.random() >= 0.1 else rng.randrange(index)]
        moment = rng.choice(slots)
        while (number, moment) in used:
            moment = rng.choice(slots)
        used.add((number, moment))
        form = rng.random()
        phone = "+" + number if form < 0.8 else number if form < 0.95 else number[3:]
        when = (moment.strftime("%Y-%m-%d %H:%M") if rng.random() < 0.8
                else moment.replace(tzinfo=zone).isoformat())  # fmt: skip
        language = rng.choice(("en", "tn", "tn", ""))
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}" if rng.random() < 0.9 else ""
        ref = f"{refs}-{index:07d}" if rng.random() < 0.7 else ""
        out.write(f"{phone},{when},{language},{name},{ref}\r\n")
    return out.getvalue().encode()


# --- the database -----------------------------------------------------------------------------------------------


def _engine(url: str):
    import sqlalchemy as sa

    return sa.create_engine(url, connect_args={"connect_timeout": 5}, poolclass=sa.pool.NullPool)


def prepare_database(url: str) -> None:
    """Create the database if missing and wipe its schema (the migrations then build it from scratch)."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if not parsed.get_backend_name().startswith("postgresql"):
        raise SystemExit(f"--database-url must be PostgreSQL, not {parsed.get_backend_name()}")
    server = _engine(parsed.set(database="postgres").render_as_string(hide_password=False))
    with server.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        exists = connection.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :name"),
                                   {"name": parsed.database})  # fmt: skip
        if not exists:
            quoted = parsed.database.replace('"', '""')
            connection.exec_driver_sql(f'CREATE DATABASE "{quoted}"')
    with _engine(url).begin() as connection:
        connection.exec_driver_sql("SET LOCAL lock_timeout = '10s'")  # fail, not hang, if something holds it
        connection.exec_driver_sql("DROP SCHEMA public CASCADE")
        connection.exec_driver_sql("CREATE SCHEMA public")


def copy_rate(url: str, data: bytes, rows: int) -> float:
    """Seconds PostgreSQL ``COPY`` takes to store the file in a scratch table of text columns."""
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url).set(drivername="postgresql")
    with psycopg.connect(parsed.render_as_string(hide_password=False)) as connection:
        connection.execute("DROP TABLE IF EXISTS bench_csv")
        connection.execute("CREATE TABLE bench_csv (patient_phone text, appointment_datetime text, language text,"
                           " patient_name text, external_ref text)")  # fmt: skip
        connection.commit()
        began = time.perf_counter()
        with connection.cursor() as cursor, cursor.copy("COPY bench_csv FROM STDIN (FORMAT csv, HEADER true)") as copy:
            copy.write(data)
        connection.commit()
        seconds = time.perf_counter() - began
        stored = connection.execute("SELECT count(*) FROM bench_csv").fetchone()[0]
    if stored != rows:
        raise SystemExit(f"COPY stored {stored} rows, not {rows}")
    return seconds


# --- the upload -------------------------------------------------------------------------------------------------


def _app(database_url: str, redis_url: str, instance: str):
    from app import create_app

    return create_app({
        "THUSA_ENV": "test", "DATABASE_URL": database_url, "REDIS_URL": redis_url, "INSTANCE_PATH": instance,
        "RATELIMIT_ENABLED": False, "SECRET_KEY": "bench-secret-" + "s" * 32,
        "JWT_SECRET_KEY": "bench-jwt-secret-" + "j" * 32, "LOG_LEVEL": "WARNING",
    })  # fmt: skip


def _multipart(data: bytes) -> tuple[bytes, str]:
    """The upload's request body and its content type."""
    from werkzeug.datastructures import FileStorage
    from werkzeug.test import encode_multipart

    boundary, body = encode_multipart({"file": FileStorage(io.BytesIO(data), filename="appointments.csv",
                                                           content_type="text/csv")})  # fmt: skip
    return body, f"multipart/form-data; boundary={boundary}"


def _upload(app, client, staff, data: bytes, token: str | None,
            request: tuple[bytes, str] | None = None) -> tuple[dict, float, str]:  # fmt: skip
    """One upload of ``data`` as ``staff`` (``request``: its body, built beforehand): the report, seconds, and what
    was measured."""
    if token is not None:
        # The request body is built before the clock starts (and, by the caller, before the memory is measured):
        # the server's work is measured, not the client's.
        body, content_type = request or _multipart(data)
        headers = {"Authorization": f"Bearer {token}"}
        began = time.perf_counter()
        response = client.post(UPLOAD_PATH, data=body, content_type=content_type, headers=headers)
        seconds = time.perf_counter() - began
        if response.status_code >= 300:
            raise SystemExit(f"upload answered {response.status_code}: {response.get_data(as_text=True)[:500]}")
        return response.get_json(), seconds, f"POST {UPLOAD_PATH}"
    from app.extensions import db
    from app.security import Actor
    from app.services.appointment_import import import_csv

    actor = Actor(user_id=staff.id, role=staff.role, clinic_id=staff.clinic_id, remote_addr="127.0.0.1")
    with app.app_context():
        began = time.perf_counter()
        report = import_csv(actor, data)
        seconds = time.perf_counter() - began
        db.session.remove()
    return report, seconds, "import_csv() (no upload endpoint yet)"


def run(database_url: str, redis_url: str, rows: int = 100_000) -> dict:
    """Wipe and migrate ``database_url``, then time the upload of a ``rows``-row CSV and ``COPY`` of the same file.

    Returns:
        ``rows``, ``upload_seconds``, ``upload_rate``, ``copy_seconds``, ``copy_rate``, ``ratio`` (upload / COPY),
        ``target_rate``, ``passed`` (rate ≥ target, every row imported, no error), ``via`` (what was measured),
        ``report`` (the upload's counts) and ``stored`` (appointments in the database afterwards).
    """
    import redis
    from flask_migrate import upgrade
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import Appointment, Clinic, User
    from app.services.passwords import hash_password

    prepare_database(database_url)
    redis.Redis.from_url(redis_url).flushdb()
    with tempfile.TemporaryDirectory(prefix="thusa-bench-") as instance:
        app = _app(database_url, redis_url, instance)
        with app.app_context():
            migrations = io.StringIO()  # Alembic's INFO lines, shown only when migrating fails
            try:
                with contextlib.redirect_stderr(migrations):
                    upgrade(directory=str(ROOT / "migrations"))
            except BaseException:
                sys.stderr.write(migrations.getvalue())
                raise
            clinics = [Clinic(name=name, country="BW", timezone=TIMEZONE, default_language="tn")
                       for name in ("Tlokweng Clinic", "Warm-up Clinic", "Gunicorn Clinic")]  # fmt: skip
            db.session.add_all(clinics)
            db.session.flush()
            users = [User(email=f"staff{i}@bench.example.org", password_hash=hash_password(PASSWORD), role="staff",
                          name="Bench Staff", clinic_id=clinic.id, language="en", active=True)
                     for i, clinic in enumerate(clinics)]  # fmt: skip
            db.session.add_all(users)
            db.session.commit()
            db.session.remove()
        client = app.test_client()
        endpoint = any(rule.rule == UPLOAD_PATH for rule in app.url_map.iter_rules())
        tokens: list[str | None] = [None] * len(users)
        if endpoint:
            for i, user in enumerate(users):
                answer = client.post("/api/v1/auth/login", json={"email": user.email, "password": PASSWORD})
                tokens[i] = answer.get_json()["access_token"]
        start = (datetime.now(ZoneInfo(TIMEZONE)) + timedelta(days=2)).date()
        data = build_csv(rows, start=start)
        # Warm-up (imports, regular expressions, connection pool) on another clinic, as a running server is.
        _upload(app, client, users[1], build_csv(200, start=start, seed=5, refs="BW-WRM"), tokens[1])
        request = _multipart(data) if tokens[0] else None  # the client's ~6 MB body is not the server's memory
        backends = _backend_cpu(database_url)
        resting = peak_rss_mb(reset=True)
        process = time.process_time()
        report, seconds, via = _upload(app, client, users[0], data, tokens[0], request)
        process = time.process_time() - process
        upload_rss = peak_rss_mb() - resting
        after = _backend_cpu(database_url)
        database = sum(cpu - backends.get(pid, 0.0) for pid, cpu in after.items()) if after else None
        with app.app_context():
            stored = db.session.scalar(
                select(func.count()).select_from(Appointment).where(Appointment.clinic_id == clinics[0].id)
            )
            db.session.remove()
            db.engine.dispose()
        worker = worker_memory(database_url, redis_url, instance, users[2].email, build_csv(rows, start=start, seed=6),
                               build_csv(200, start=start, seed=7, refs="BW-WRM"))  # fmt: skip
    copy_seconds = copy_rate(database_url, data, rows)
    rate, copied = rows / seconds, rows / copy_seconds
    passed = (
        rate >= TARGET_RATE
        and stored == rows
        and report.get("imported") == rows
        and not report.get("errors")
        and worker["report"].get("imported") == rows
        and worker["peak_mb"] <= TARGET_WEB_RSS_MB
    )
    return {"rows": rows, "bytes": len(data), "upload_seconds": seconds, "upload_rate": rate,
            "copy_seconds": copy_seconds, "copy_rate": copied, "ratio": rate / copied, "target_rate": TARGET_RATE,
            "passed": passed, "via": via, "stored": stored, "app_cpu_seconds": process,
            "database_cpu_seconds": database, "upload_rss_mb": upload_rss, "resting_rss_mb": resting,
            "worker": worker,
            "report": {k: report.get(k) for k in ("imported", "updated", "unchanged", "error_count")}}  # fmt: skip


def worker_memory(database_url: str, redis_url: str, instance: str, email: str, data: bytes,
                  warm_up: bytes) -> dict:  # fmt: skip
    """The same upload (another clinic, other numbers) served by a gunicorn worker as production runs it (``wsgi:app``,
    production settings, gthread with 4 threads, one worker): the worker's resident set after a 200-row upload
    (``before_mb``) and its peak during the 100,000-row one (``peak_mb``: ``VmHWM``, reset just before it), the
    upload's ``seconds`` over HTTP on loopback and its ``report``. This is the web process the 200 MB target is
    about; this script's own process holds the bench's files and Alembic besides."""
    import http.client
    import json
    import subprocess

    from webhook_throughput import child_pids, free_port, show_log_tail, stop_gunicorn, wait_until_up

    env = {key: value for key, value in os.environ.items() if not key.startswith(("TWILIO_", "AT_", "TELEGRAM_"))}
    env.update({"THUSA_ENV": "production", "SECRET_KEY": "bench-secret-" + "s" * 32,
                "JWT_SECRET_KEY": "bench-jwt-secret-" + "j" * 32, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
                "INSTANCE_PATH": instance, "LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"})  # fmt: skip
    port = free_port()
    log = open(Path(instance) / "gunicorn.log", "w+b")  # noqa: SIM115 (read back on failure)
    process = subprocess.Popen(  # noqa: S603 (our own interpreter, fixed arguments)
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1", "--worker-class", "gthread",
         "--threads", "4", "--no-control-socket", "--chdir", str(ROOT), "wsgi:app"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip

    def call(method: str, path: str, body: bytes, headers: dict[str, str]) -> dict:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        try:
            connection.request(method, path, body=body, headers=headers)
            answer = connection.getresponse()
            payload = answer.read()
        finally:
            connection.close()
        if answer.status >= 300:
            raise RuntimeError(f"{method} {path} answered {answer.status}: {payload[:300]!r}")
        return json.loads(payload)

    try:
        wait_until_up(process, port, timeout=60, workers=1)
        (pid,) = child_pids(process.pid)
        login = json.dumps({"email": email, "password": PASSWORD}).encode()
        token = call("POST", "/api/v1/auth/login", login, {"Content-Type": "application/json"})["access_token"]

        def upload(csv: bytes) -> dict:
            body, content_type = _multipart(csv)
            return call("POST", UPLOAD_PATH, body, {"Content-Type": content_type, "Authorization": f"Bearer {token}"})

        upload(warm_up)  # imports, regular expressions, connections: as a server that has served an upload
        before = _status_mb(pid, "VmRSS")
        with open(f"/proc/{pid}/clear_refs", "w") as handle:  # restart VmHWM from the current size
            handle.write("5")
        began = time.perf_counter()
        report = upload(data)
        seconds = time.perf_counter() - began
        peak = _status_mb(pid, "VmHWM")
    except BaseException:
        show_log_tail(log)
        raise
    finally:
        stop_gunicorn(process)
        log.close()
    return {"before_mb": before, "peak_mb": peak, "seconds": seconds, "report": report}


def _status_mb(pid: int, field: str) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def peak_rss_mb(reset: bool = False) -> float:
    """This process's peak resident set (``VmHWM``) in MB; ``reset`` first restarts the peak from the current size
    (``/proc/self/clear_refs``, where the kernel allows it). Linux only; 0 elsewhere."""
    if reset:
        with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    with contextlib.suppress(OSError), open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _backend_cpu(url: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving ``url``'s database (read from /proc: PostgreSQL runs
    on this machine); empty where that cannot be read."""
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url).set(drivername="postgresql")
    with psycopg.connect(parsed.render_as_string(hide_password=False)) as connection:
        query = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        pids = [pid for (pid,) in connection.execute(query)]
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return {}
        seconds[pid] = (int(fields[11]) + int(fields[12])) / ticks
    return seconds


def describe(result: dict) -> str:
    """The result as the lines this script prints (bench/reminders.py prints them as its part c)."""
    verdict = "PASS" if result["passed"] else "FAIL"
    cpu = f"  CPU of the upload: this process {result['app_cpu_seconds']:.2f} s (both its threads)"
    if result["database_cpu_seconds"]:
        floor = result["rows"] / result["database_cpu_seconds"]
        cpu += (f", PostgreSQL {result['database_cpu_seconds']:.2f} s (storing the rows of four tables and their indexes; the"
                f" foreign keys checked once a statement, migration 0016), so ≤ {floor:,.0f} rows/s while one backend does"
                f" that work")  # fmt: skip
    load, worker = os.getloadavg()[0], result["worker"]
    return "\n".join([
        f"CSV upload of {result['rows']:,} rows ({result['bytes'] / 1e6:.1f} MB), measured: {result['via']}",
        f"  upload            {result['upload_seconds']:7.2f} s  {result['upload_rate']:9,.0f} rows/s validated"
        f"  report {result['report']}, appointments stored {result['stored']:,}",
        f"  PostgreSQL COPY   {result['copy_seconds']:7.2f} s  {result['copy_rate']:9,.0f} rows/s (no validation)",
        f"  upload / COPY = {result['ratio']:.2f}",
        cpu,
        f"  memory: the upload request's peak RSS {result['upload_rss_mb']:.0f} MB above this process's "
        f"{result['resting_rss_mb']:.0f} MB before it (the file is read, validated and written in the request)",
        f"  memory in a gunicorn worker (wsgi:app, production settings, one worker x 4 threads), the same upload of "
        f"other numbers to another clinic ({result['worker']['seconds']:.2f} s over HTTP): {worker['before_mb']:.0f} MB "
        f"before it, peak {worker['peak_mb']:.0f} MB / target {TARGET_WEB_RSS_MB:.0f} MB = "
        f"{worker['peak_mb'] / TARGET_WEB_RSS_MB:.2f}; report "
        f"{ {k: worker['report'].get(k) for k in ('imported', 'updated', 'unchanged', 'error_count')} }",
        f"  load average {load:.1f} on {os.cpu_count()} cores (other processes slow both sides down)",
        f"  target ≥ {result['target_rate']:,} rows/s validated: {result['upload_rate']:,.0f} → {verdict}",
    ])  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
                        help="PostgreSQL database to WIPE and use (env BENCH_DATABASE_URL)")  # fmt: skip
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL),
                        help="Redis database to FLUSH and use (env BENCH_REDIS_URL)")  # fmt: skip
    parser.add_argument("--rows", type=int, default=100_000, help="rows in the file (default 100,000)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"preparing {args.database_url} (wipe + migrate) and {args.redis_url} (flush) ...", flush=True)
    result = run(args.database_url, args.redis_url, args.rows)
    print(describe(result))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
