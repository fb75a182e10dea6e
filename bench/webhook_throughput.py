"""Inbound Twilio SMS webhook throughput on gunicorn + PostgreSQL + Redis, against two endpoints on the same server.

What is measured: ``POST /webhooks/twilio/sms`` with signed, distinct inbound SMS (a new ``MessageSid`` and a new
sender number each, English and Setswana bodies), i.e. the whole product path: signature check, parse, contact
created, message stored once (dedupe key), commit, the handling job enqueued to Redis after commit, empty TwiML.
No RQ worker runs: handling a message is a job, not part of the webhook's answer.

The ceilings it is compared against, served by the same gunicorn in the same run, with the same settings:

* ``POST /bench/constant``: reads the form and returns the same TwiML, no I/O (what Flask + gunicorn + this
  client can do at most);
* ``POST /bench/insert``: reads the form, one PostgreSQL ``INSERT`` through the app's SQLAlchemy session, commit,
  same TwiML (the price of one durable write).

Both routes exist only in :func:`bench_app`, the WSGI entry this script hands gunicorn; the product never has them.
They are exempt from rate limits as the webhook blueprint is, so the three endpoints go through the same Flask
app, middleware, ``before/after_request`` hooks and connection pools.

Why the comparison is fair: one server process tree (2 gthread workers × 4 threads, as ``make run`` starts them;
the machine has 2 cores and the load generator needs some of them), the same persistent keep-alive connections
for all three endpoints (so each endpoint sees the same spread of connections over the two workers), every request
body built and signed before the clock starts, and the endpoints run interleaved in rounds (constant, insert,
webhook, constant, ...), so drift (autovacuum, table growth, CPU frequency) hits all three alike. The load is
closed-loop: ``--concurrency`` clients, each sending its next request when the previous answer arrived; latency
is from the first byte sent to the last byte of the answer, so it includes waiting for a free server thread.
The table also shows the CPU each party spent per request (this load generator, the gunicorn workers, the
PostgreSQL backends of this run, from ``/proc``): the client's share is small and alike for all three endpoints,
and the server columns show where a slow endpoint's time goes.

Target: webhook rate ≥ 50 % of the insert endpoint's rate, webhook p99 < 50 ms. Afterwards PostgreSQL
must hold exactly one inbound message per webhook request sent (nothing lost, nothing twice) and Redis one
handling job per message; any non-2xx answer fails the run. Exit status 1 when anything is missed.

The database named by ``--database-url`` is wiped (``DROP SCHEMA public CASCADE``) and migrated, and the Redis
database of ``--redis-url`` is flushed: point them at throw-away databases, never at real data.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import math
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WEBHOOK_PATH = "/webhooks/twilio/sms"
CONSTANT_PATH = "/bench/constant"
INSERT_PATH = "/bench/insert"
PID_HEADER = "X-Bench-Worker"
DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/thusa_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
# As `make run` starts gunicorn: 2 processes (one per core) × 4 threads, so a worker waiting on PostgreSQL or
# Redis still has threads to run; more processes would only fight the load generator for the 2 cores.
GUNICORN_WORKERS = 2
GUNICORN_THREADS = 4
TARGET_RATIO = 0.50
TARGET_P99_MS = 50.0

BODIES = (
    "Dumela mma, ke kopa go bona ngaka ka Labobedi.",
    "Ke na le letshoroma le tlhogo e e botlhoko fa e se kae.",
    "Ke a leboga thata 🙏",
    "Ee",
    "Nnyaa, ga ke kgone ka Labone",
    "THUSO",
    "Ke batla go fetola letsatsi la kopano ya me",
    "A tliliniki e bulegile ka Matlhatso?",
    "Hi, I need to move my appointment to Friday please",
    "My child has had a rash on her arm since Monday",
    "YES",
    "Dumela! Ke kopa dipilisi tsa me tsa BP, di fedile.",
    "Ngwanaka o na le mogotlhwane bosigo jotlhe",
    "When does the clinic open on Saturday?",
)


# --- the server side: the product app plus the two comparison routes (gunicorn loads this) --------------------


TARGET_WEB_RSS_MB = 200.0  # each web process (gunicorn worker) at its peak under the load


def bench_app():
    """The product app from ``create_app()`` plus ``/bench/constant`` and ``/bench/insert``, for gunicorn only.

    Every answer also names the gunicorn worker that served it (``X-Bench-Worker``), so the report can show how
    the client's connections were spread over the workers.
    """
    from flask import Response, request
    from sqlalchemy import text

    from app import create_app
    from app.extensions import db, limiter
    from bots.channels.twilio import EMPTY_TWIML

    app = create_app()
    insert = text("INSERT INTO bench_inserts (sid, sender, body) VALUES (:sid, :sender, :body)")

    def bench_constant():
        request.form  # noqa: B018 (parse the body as the webhook does)
        return Response(EMPTY_TWIML, status=200, mimetype="text/xml")

    def bench_insert():
        form = request.form
        db.session.execute(
            insert, {"sid": form.get("MessageSid"), "sender": form.get("From"), "body": form.get("Body")}
        )
        db.session.commit()
        return Response(EMPTY_TWIML, status=200, mimetype="text/xml")

    for path, view in ((CONSTANT_PATH, bench_constant), (INSERT_PATH, bench_insert)):
        limiter.exempt(view)  # as the webhook blueprint is
        app.add_url_rule(path, view.__name__, view, methods=["POST"])

    return tag_pid(app)


def tag_pid(app):
    """Wrap ``app`` so every answer names the gunicorn worker process that served it (``PID_HEADER``)."""
    inner = app.wsgi_app

    def tagged(environ, start_response):
        def start(status, headers, exc_info=None):
            return start_response(status, [*headers, (PID_HEADER, str(os.getpid()))], exc_info)

        return inner(environ, start)

    app.wsgi_app = tagged
    return app


# --- requests ----------------------------------------------------------------------------------------------------


def _post(path: str, host: str, form: list[tuple[str, str]], headers: dict[str, str] | None = None) -> bytes:
    body = urllib.parse.urlencode(form).encode()
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}",
        "User-Agent: TwilioProxy/1.1",
        "Content-Type: application/x-www-form-urlencoded",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Requests:
    """Builds every request body up front: distinct SIDs and senders, each webhook request signed."""

    def __init__(self, host: str, public_base_url: str, account_sid: str, auth_token: str) -> None:
        from twilio.request_validator import RequestValidator

        self.host = host
        self.signed_url = public_base_url.rstrip("/") + WEBHOOK_PATH
        self.account_sid = account_sid
        self.validator = RequestValidator(auth_token)
        self._numbers = itertools.count(71_000_000)  # Botswana mobile numbers: +267 7x xxx xxx
        self._bodies = itertools.cycle(BODIES)

    def _form(self) -> list[tuple[str, str]]:
        sid = "SM" + secrets.token_hex(16)
        return [
            ("ToCountry", "BW"), ("ToState", ""), ("SmsMessageSid", sid), ("NumMedia", "0"), ("ToCity", ""),
            ("FromZip", ""), ("SmsSid", sid), ("FromState", ""), ("SmsStatus", "received"), ("FromCity", ""),
            ("Body", next(self._bodies)), ("FromCountry", "BW"), ("To", "+26773000100"), ("ToZip", ""),
            ("NumSegments", "1"), ("MessageSid", sid), ("AccountSid", self.account_sid),
            ("From", f"+267{next(self._numbers)}"), ("ApiVersion", "2010-04-01"),
        ]  # fmt: skip

    def webhook(self, count: int) -> list[bytes]:
        out = []
        for _ in range(count):
            form = self._form()
            signature = self.validator.compute_signature(self.signed_url, dict(form))
            out.append(_post(WEBHOOK_PATH, self.host, form, {"X-Twilio-Signature": signature}))
        return out

    def plain(self, path: str, count: int) -> list[bytes]:
        return [_post(path, self.host, self._form()) for _ in range(count)]


# --- the load generator ----------------------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection with a minimal reader (status line, headers, Content-Length body).

    Far cheaper per request than ``http.client`` (whose header parsing would cost the shared CPUs more than
    the constant endpoint does), so the client skews the comparison as little as possible.
    """

    def __init__(self, port: int, timeout: float) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.worker = ""

    def exchange(self, data: bytes) -> int:
        """Send one request, read its whole answer; return the HTTP status."""
        self.sock.sendall(data)
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "-1"))
        if length < 0:
            raise RuntimeError(f"answer without Content-Length: {lines[0]}")
        while len(self.buffer) < length:
            self._fill()
        self.buffer = self.buffer[length:]
        self.worker = headers.get(PID_HEADER.lower(), self.worker)
        if headers.get("connection", "").lower() == "close":
            raise RuntimeError("the server closed a keep-alive connection")
        return status

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


@dataclass
class Result:
    """Every request of one endpoint, over all rounds."""

    name: str
    latencies: list[float] = field(default_factory=list)  # seconds
    seconds: float = 0.0  # wall time of its phases
    errors: list[str] = field(default_factory=list)  # one per failed request: non-2xx or a broken connection
    unsent: int = 0  # left when the time limit struck (or every connection broke)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds spent by each party during its phases

    def cpu_ms_per_request(self, party: str) -> str:
        if party not in self.cpu or not self.latencies:
            return "-"
        return f"{self.cpu[party] / len(self.latencies) * 1000:.2f}"

    @property
    def count(self) -> int:
        return len(self.latencies) + len(self.errors)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile_ms(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        rank = max(1, math.ceil(p / 100 * len(ordered)))  # nearest-rank percentile
        return ordered[rank - 1] * 1000


class CpuMeter:
    """CPU time used by the load generator (this process), the gunicorn workers and this run's PostgreSQL backends.

    Read from ``/proc`` (Linux); a party whose processes cannot be read is left out. Only backends connected to
    the benchmark database are counted, so other users of the same PostgreSQL server do not blur the figures;
    PostgreSQL's background writers and Redis are not counted.
    """

    def __init__(self, app_pids: list[int], db_pids: list[int]) -> None:
        self.parties = {"app": app_pids, "db": db_pids}
        self.ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def _seconds(self, pid: int) -> float:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / self.ticks  # utime + stime

    def read(self) -> dict[str, float]:
        now = {"client": time.process_time()}
        for party, pids in self.parties.items():
            with contextlib.suppress(OSError, ValueError, IndexError):
                now[party] = sum(self._seconds(pid) for pid in pids) if pids else 0.0
        return now


def child_pids(parent: int) -> list[int]:
    """The processes whose parent is ``parent`` (gunicorn's workers), from ``/proc`` (Linux)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{entry}/stat") as handle:
                if int(handle.read().rpartition(")")[2].split()[1]) == parent:
                    found.append(int(entry))
    return found


def peak_rss_mb(pid: int) -> float:
    """A process's peak resident set (``VmHWM``) in MB, from ``/proc`` (Linux); 0 when it cannot be read."""
    with contextlib.suppress(OSError, ValueError), open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pin_to_cores(pid: int, cores: set[int]) -> bool:
    """Run ``pid`` (0: this process) on ``cores`` only, where the machine has them; True when done."""
    if not hasattr(os, "sched_setaffinity") or max(cores) >= (os.cpu_count() or 1):
        return False
    try:
        os.sched_setaffinity(pid, cores)
    except OSError:
        return False
    return True


def run_phase(connections: list[Connection], requests: list[bytes], result: Result, deadline: float,
              meter: CpuMeter | None = None) -> None:  # fmt: skip
    """Send ``requests`` over ``connections`` (one thread each, closed loop) and add what happened to ``result``."""
    pending = iter(requests)
    lock = threading.Lock()
    start = threading.Barrier(len(connections) + 1)
    latencies: list[list[float]] = [[] for _ in connections]
    errors: list[list[str]] = [[] for _ in connections]

    def client(index: int) -> None:
        connection, mine, failed = connections[index], latencies[index], errors[index]
        start.wait()
        while time.monotonic() < deadline:
            with lock:
                data = next(pending, None)
            if data is None:
                return
            began = time.perf_counter()
            try:
                status = connection.exchange(data)
            except Exception as exc:  # a broken connection ends this client; the rest go on
                failed.append(f"{exc.__class__.__name__}: {exc}")
                return
            if 200 <= status < 300:
                mine.append(time.perf_counter() - began)
            else:
                failed.append(f"HTTP {status}")

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(len(connections))]
    for thread in threads:
        thread.start()
    cpu_before = meter.read() if meter else {}
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    cpu_after = meter.read() if meter else {}
    unsent = sum(1 for _ in pending)
    result.seconds += elapsed
    for party in cpu_before.keys() & cpu_after.keys():
        result.cpu[party] = result.cpu.get(party, 0.0) + cpu_after[party] - cpu_before[party]
    for mine in latencies:
        result.latencies.extend(mine)
    for failed in errors:
        result.errors.extend(failed)
    result.unsent += unsent


# --- setting up and tearing down --------------------------------------------------------------------------------


def _psycopg_engine(url: str):
    import sqlalchemy as sa

    return sa.create_engine(url, connect_args={"connect_timeout": 5}, poolclass=sa.pool.NullPool)


def prepare_database(url: str) -> None:
    """Create the database if missing and wipe its schema (the migrations then build it from scratch)."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if not parsed.get_backend_name().startswith("postgresql"):
        raise SystemExit(f"--database-url must be PostgreSQL, not {parsed.get_backend_name()}")
    server = _psycopg_engine(parsed.set(database="postgres").render_as_string(hide_password=False))
    with server.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        exists = connection.scalar(
            sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": parsed.database}
        )
        if not exists:
            quoted = parsed.database.replace('"', '""')
            connection.exec_driver_sql(f'CREATE DATABASE "{quoted}"')
    engine = _psycopg_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("SET LOCAL lock_timeout = '10s'")  # fail, not hang, if something holds it
        connection.exec_driver_sql("DROP SCHEMA public CASCADE")
        connection.exec_driver_sql("CREATE SCHEMA public")


def create_bench_table(url: str) -> None:
    with _psycopg_engine(url).begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE bench_inserts (id bigserial PRIMARY KEY, sid varchar(64) NOT NULL, sender varchar(64),"
            " body text, created_at timestamptz NOT NULL DEFAULT now())"
        )


def migrate(env: dict[str, str]) -> None:
    flask = Path(sys.executable).with_name("flask")
    command = [str(flask)] if flask.exists() else [sys.executable, "-m", "flask"]
    done = subprocess.run(  # noqa: S603 (our own interpreter's flask, fixed arguments)
        [*command, "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise SystemExit(f"migrations failed:\n{done.stdout}\n{done.stderr}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_gunicorn(port: int, env: dict[str, str], log) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "gunicorn",
        "--bind", f"127.0.0.1:{port}",
        "--workers", str(GUNICORN_WORKERS), "--worker-class", "gthread", "--threads", str(GUNICORN_THREADS),
        "--keep-alive", "60",  # one set of connections serves the whole run
        "--no-control-socket", "--chdir", str(ROOT), "--pythonpath", str(Path(__file__).resolve().parent),
        "webhook_throughput:bench_app()",
    ]  # fmt: skip
    # A session of its own: stop_gunicorn() ends the arbiter and its workers as one process group.
    return subprocess.Popen(  # noqa: S603 (our own interpreter, fixed arguments)
        command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def open_balanced(port: int, count: int, timeout: float) -> list[Connection]:
    """``count`` keep-alive connections spread evenly over the gunicorn workers.

    Which gthread worker accepts a connection is a race, and connections opened in a burst often all land on
    one worker: the run would then measure one process with half the machine idle. So each new connection asks
    which worker holds it (``X-Bench-Worker``); one beyond its worker's share is set aside (closed at the end)
    and connecting goes on until every worker holds its share.
    """
    probe = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    share = -(-count // GUNICORN_WORKERS)
    kept: dict[str, list[Connection]] = {}
    surplus: list[Connection] = []
    deadline = time.monotonic() + timeout
    try:
        while sum(map(len, kept.values())) < count and len(surplus) < 10 * count and time.monotonic() < deadline:
            connection = Connection(port, timeout=10)
            if connection.exchange(probe) != 200:
                raise RuntimeError("/healthz did not answer 200")
            mine = kept.setdefault(connection.worker, [])
            if len(mine) < share:
                mine.append(connection)
            else:
                surplus.append(connection)
                time.sleep(0.01)  # let the other worker wake up and accept
    finally:
        for connection in surplus:
            connection.close()
    connections = [c for mine in kept.values() for c in mine]
    while len(connections) < count:  # never balanced in time: take what comes (the report shows the spread)
        connections.append(Connection(port, timeout=10))
        connections[-1].exchange(probe)
    return connections


def wait_until_up(process: subprocess.Popen, port: int, timeout: float, workers: int = GUNICORN_WORKERS) -> None:
    """Return once ``workers`` distinct gunicorn workers have answered ``/healthz`` (``PID_HEADER``).

    One answer is not enough: the first worker to finish building the app answers while the others are still
    building it (~2.5 s of CPU each), and a load started then would measure their boot, not the requests.
    """
    deadline = time.monotonic() + timeout
    probe = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    answered: set[str] = set()
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with status {process.returncode}")
        try:
            connection = Connection(port, timeout=2)
            try:
                if connection.exchange(probe) == 200:
                    answered.add(connection.worker)
                    if len(answered) >= workers:
                        return
            finally:
                connection.close()
        except OSError:
            pass
        time.sleep(0.1)  # a new connection may reach another worker; asking faster would slow its boot
    raise RuntimeError(f"{workers - len(answered)} of {workers} gunicorn workers did not answer /healthz within "
                       f"{timeout:.0f} s")  # fmt: skip


def show_log_tail(log, chars: int = 4000) -> None:
    """Write the last ``chars`` of gunicorn's log (a binary file opened ``w+b``) to stderr: why a run failed."""
    log.seek(0)
    sys.stderr.write(log.read().decode(errors="replace")[-chars:])


def stop_gunicorn(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def database_backends(url: str) -> list[int]:
    """The PostgreSQL backends serving the benchmark database (the app's pooled connections, once warm)."""
    from sqlalchemy.engine import make_url

    with _psycopg_engine(url).connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = %(name)s AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend'",
            {"name": make_url(url).database},
        )
        return [row[0] for row in rows]


def stored_counts(database_url: str, redis_url: str) -> dict[str, int]:
    import redis

    with _psycopg_engine(database_url).connect() as connection:
        inbound = connection.exec_driver_sql(
            "SELECT count(*), count(DISTINCT provider_id) FROM messages WHERE direction = 'in' AND provider = 'twilio'"
        ).one()
        inserted = connection.exec_driver_sql("SELECT count(*) FROM bench_inserts").scalar()
    jobs = redis.Redis.from_url(redis_url).llen("rq:queue:default")
    return {"inbound": inbound[0], "inbound_distinct": inbound[1], "inserted": inserted, "jobs": jobs}


# --- the run -----------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Throughput and latency of the signed Twilio SMS webhook on gunicorn (PostgreSQL + Redis), "
        "against a constant-reply endpoint and a one-INSERT endpoint on the same server, in the same run. "
        f"Target: webhook rate >= {TARGET_RATIO:.0%} of the insert endpoint's, webhook p99 < {TARGET_P99_MS:.0f} ms. "
        "Exits 1 when a target or a check is missed. WIPES the given database and Redis db.",
    )
    parser.add_argument("--requests", type=int, default=3000, metavar="N",
                        help="measured requests per endpoint, split over the rounds (default 3000)")  # fmt: skip
    parser.add_argument("--concurrency", type=int, default=16, metavar="C",
                        help="clients in flight at once, each on its own keep-alive connection (default 16)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3, metavar="R",
                        help="the endpoints take turns R times, N/R requests each turn (default 3)")  # fmt: skip
    parser.add_argument("--warmup", type=int, default=300, metavar="W",
                        help="unmeasured requests per endpoint first (default 300)")  # fmt: skip
    parser.add_argument("--time-limit", type=float, default=90.0, metavar="S",
                        help="stop sending after S seconds of load, and fail (default 90)")  # fmt: skip
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
                        help="throw-away PostgreSQL database, wiped and migrated; created if missing "
                        f"(env BENCH_DATABASE_URL, default {DEFAULT_DATABASE_URL})")  # fmt: skip
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL),
                        help=f"throw-away Redis database, flushed (env BENCH_REDIS_URL, default {DEFAULT_REDIS_URL})")  # fmt: skip
    args = parser.parse_args(argv)
    if min(args.requests, args.concurrency, args.rounds) < 1 or args.warmup < 0:
        parser.error("--requests, --concurrency and --rounds must be at least 1, --warmup at least 0")
    return args


def server_env(args: argparse.Namespace, port: int, instance: str) -> dict[str, str]:
    # Provider credentials from the caller's environment stay out: only this run's Twilio account may sign.
    providers = ("TWILIO_", "AT_", "TELEGRAM_", "WHATSAPP_")
    env = {key: value for key, value in os.environ.items() if not key.startswith(providers)}
    env.update({
        "THUSA_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "JWT_SECRET_KEY": secrets.token_urlsafe(48),
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "RATELIMIT_ENABLED": "true",
        "TRUST_PROXY_HOPS": "0",
        "INSTANCE_PATH": instance,
        "TWILIO_ACCOUNT_SID": "AC" + secrets.token_hex(16),
        "TWILIO_AUTH_TOKEN": secrets.token_hex(16),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "PYTHONUNBUFFERED": "1",
    })  # fmt: skip
    return env


def report(results: list[Result], counts: dict[str, int], answered_webhooks: int, answered_inserts: int, workers: dict,
           args: argparse.Namespace) -> list[str]:  # fmt: skip
    """Print the table and the verdicts; return what was missed."""
    print(f"\n{args.requests} requests per endpoint in {args.rounds} rounds, concurrency {args.concurrency}, "
          f"gunicorn {GUNICORN_WORKERS} workers x {GUNICORN_THREADS} threads (gthread)")  # fmt: skip
    spread = ", ".join(f"worker {pid}: {n}" for pid, n in sorted(workers.items()))
    print(f"client connections per gunicorn worker: {spread}\n")
    print(f"{'':<57}{'CPU ms per request':^27}")
    print(f"{'endpoint':<28}{'requests':>9}{'errors':>7}{'rps':>7}{'p50 ms':>8}{'p99 ms':>8}"
          f"{'client':>9}{'gunicorn':>9}{'postgres':>9}")  # fmt: skip
    for result in results:
        print(f"{result.name:<28}{result.count:>9}{len(result.errors):>7}{result.rate:>7.0f}"
              f"{result.percentile_ms(50):>8.1f}{result.percentile_ms(99):>8.1f}"
              f"{result.cpu_ms_per_request('client'):>9}{result.cpu_ms_per_request('app'):>9}"
              f"{result.cpu_ms_per_request('db'):>9}")  # fmt: skip
    constant, insert, webhook = results
    ratio = webhook.rate / insert.rate if insert.rate else 0.0
    p99 = webhook.percentile_ms(99)
    missed = []
    print()
    print(f"webhook rate / insert rate   = {webhook.rate:.0f} / {insert.rate:.0f} = {ratio:.2f}"
          f"  (target >= {TARGET_RATIO:.2f})  {'ok' if ratio >= TARGET_RATIO else 'MISSED'}")  # fmt: skip
    print(f"webhook p99                  = {p99:.1f} ms  (target < {TARGET_P99_MS:.0f} ms)  "
          f"{'ok' if p99 < TARGET_P99_MS else 'MISSED'}")  # fmt: skip
    if constant.rate:
        print(f"ceiling (constant endpoint)  = {constant.rate:.0f} rps; webhook / constant = "
              f"{webhook.rate / constant.rate:.2f}, insert / constant = {insert.rate / constant.rate:.2f}")  # fmt: skip
    if ratio < TARGET_RATIO:
        missed.append(f"webhook rate is {ratio:.2f} of the insert endpoint's (target {TARGET_RATIO:.2f})")
    if not p99 < TARGET_P99_MS:
        missed.append(f"webhook p99 is {p99:.1f} ms (target < {TARGET_P99_MS:.0f} ms)")
    for result in results:
        if result.errors:
            sample = "; ".join(sorted(set(result.errors))[:3])
            missed.append(f"{result.name}: {len(result.errors)} failed requests ({sample})")
        if result.unsent:
            missed.append(f"{result.name}: {result.unsent} requests not sent within --time-limit")
    print(f"stored inbound messages      = {counts['inbound']} ({counts['inbound_distinct']} distinct SIDs) "
          f"for {answered_webhooks} webhook requests answered 2xx (warm-up included); handling jobs in Redis = "
          f"{counts['jobs']}; insert rows = {counts['inserted']} for {answered_inserts} answered")  # fmt: skip
    if not counts["inbound"] == counts["inbound_distinct"] == answered_webhooks:
        missed.append(f"{counts['inbound']} inbound messages stored for {answered_webhooks} webhook requests answered")
    if counts["jobs"] != counts["inbound"]:
        missed.append(f"{counts['jobs']} handling jobs enqueued for {counts['inbound']} stored messages")
    if counts["inserted"] != answered_inserts:
        missed.append(f"{counts['inserted']} rows inserted for {answered_inserts} insert requests answered")
    return missed


def main(argv: list[str] | None = None) -> int:
    import redis

    args = parse_args(argv)
    began = time.monotonic()
    port = free_port()
    host = f"127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="thusa-bench-") as instance:
        env = server_env(args, port, instance)
        print(f"preparing {args.database_url} (wipe + migrate) and {args.redis_url} (flush) ...", flush=True)
        prepare_database(args.database_url)
        migrate(env)
        create_bench_table(args.database_url)
        redis.Redis.from_url(args.redis_url).flushdb()

        builder = Requests(host, env["PUBLIC_BASE_URL"], env["TWILIO_ACCOUNT_SID"], env["TWILIO_AUTH_TOKEN"])
        per_round = [args.requests // args.rounds + (1 if i < args.requests % args.rounds else 0)
                     for i in range(args.rounds)]  # fmt: skip
        endpoints = (
            ("constant (no I/O)", lambda n: builder.plain(CONSTANT_PATH, n)),
            ("insert (1 INSERT + commit)", lambda n: builder.plain(INSERT_PATH, n)),
            ("webhook twilio/sms", builder.webhook),
        )
        warmups = [make(args.warmup) for _, make in endpoints]
        rounds = [[make(n) for _, make in endpoints] for n in per_round]

        log = open(Path(instance) / "gunicorn.log", "w+b")  # noqa: SIM115 (read back on failure)
        process = start_gunicorn(port, env, log)
        connections: list[Connection] = []
        try:
            wait_until_up(process, port, timeout=60)
            print(f"gunicorn up on {host} after {time.monotonic() - began:.1f} s; load ...", flush=True)
            connections = open_balanced(port, args.concurrency, timeout=15)
            deadline = time.monotonic() + args.time_limit
            results = [Result(name) for name, _ in endpoints]
            warmed = [Result(f"warm-up {name}") for name, _ in endpoints]
            for result, batch in zip(warmed, warmups, strict=True):
                run_phase(connections, batch, result, deadline)
            workers: dict[str, int] = {}
            for connection in connections:
                workers[connection.worker] = workers.get(connection.worker, 0) + 1
            meter = CpuMeter([int(pid) for pid in workers if pid.isdigit()], database_backends(args.database_url))
            for batch in rounds:
                for result, requests in zip(results, batch, strict=True):
                    run_phase(connections, requests, result, deadline, meter)
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn died during the run (status {process.returncode})")
            web_rss = {pid: peak_rss_mb(pid) for pid in child_pids(process.pid)}
        except BaseException:
            show_log_tail(log)
            raise
        finally:
            for connection in connections:
                connection.close()
            stop_gunicorn(process)
            log.close()
        counts = stored_counts(args.database_url, args.redis_url)
    print("peak RSS of each gunicorn worker: " + ", ".join(f"{mb:.0f} MB" for _, mb in sorted(web_rss.items()))
          + f" / target {TARGET_WEB_RSS_MB:.0f} MB = {max(web_rss.values(), default=0) / TARGET_WEB_RSS_MB:.2f}")  # fmt: skip
    # Every answered request must have left exactly one row (a failed request already fails the run).
    answered_webhooks = len(warmed[2].latencies) + len(results[2].latencies)
    answered_inserts = len(warmed[1].latencies) + len(results[1].latencies)
    missed = report(results, counts, answered_webhooks, answered_inserts, workers, args)
    missed += [f"{w.name}: {len(w.errors)} failed requests ({w.errors[0]})" for w in warmed if w.errors]
    missed += [f"{w.name}: {w.unsent} requests not sent within --time-limit" for w in warmed if w.unsent]
    if max(web_rss.values(), default=0) > TARGET_WEB_RSS_MB:
        missed.append(f"a gunicorn worker peaked at {max(web_rss.values()):.0f} MB (target {TARGET_WEB_RSS_MB:.0f} MB)")
    print(f"\ntotal time {time.monotonic() - began:.1f} s")
    if missed:
        print("FAILED:\n  " + "\n  ".join(missed))
        return 1
    print("PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
