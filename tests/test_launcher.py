"""End to end: ``python -m app.launcher`` (what ``make run`` runs) on the embedded default, then a stop signal.

The launcher is started as ``make run`` would start it (no ``DATABASE_URL`` or ``REDIS_URL``: SQLite and the
embedded Redis under a fresh instance folder), on a free port. Once ``/healthz`` answers, ``/readyz`` must answer
too, the API document must list the core paths and the demo admin must be able to sign in. Then SIGTERM (or a
terminal's Ctrl-C: SIGINT to the foreground process group) must stop the launcher and every process it started,
children and grandchildren (gunicorn's workers, RQ's scheduler process) alike.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import closing, suppress
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import redis

import app as app_package
from app.services.demo import ACCOUNTS

ROOT = Path(app_package.__file__).resolve().parents[1]
START_SECONDS = 60  # migrations, demo data, Redis, worker and gunicorn on a cold machine
STOP_SECONDS = 60  # the launcher allows each of its three children 15 s to stop
ADMIN_EMAIL, ADMIN_PASSWORD = next((a[0], a[1]) for a in ACCOUNTS if a[2] == "admin")


def _free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _request(url: str, body: dict | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 (our own loopback server)
        url, data=data, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (our own loopback server)
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def _parent(process: psutil.Process) -> int | None:
    try:
        return process.ppid() if _alive(process) else None
    except psutil.Error:
        return None


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@dataclass
class Launcher:
    """A running launcher, and every process seen below it (kept, so that orphans can still be found)."""

    process: subprocess.Popen
    instance: Path
    log: Path
    base_url: str
    seen: dict[int, psutil.Process] = field(default_factory=dict)

    def record_descendants(self) -> None:
        with suppress(psutil.NoSuchProcess):
            for child in psutil.Process(self.process.pid).children(recursive=True):
                self.seen.setdefault(child.pid, child)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def wait_until_up(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the launcher exited with {self.process.returncode}:\n{self.output()}"
            self.record_descendants()
            with suppress(OSError):
                if _request(f"{self.base_url}/healthz")[0] == 200:
                    return
            time.sleep(0.2)
        pytest.fail(f"/healthz did not answer within {START_SECONDS}s:\n{self.output()}")

    def wait_for_worker_scheduler(self, seconds: float = 15) -> None:
        """Give the RQ worker a moment to fork its scheduler process, so the stop is checked for grandchildren too.

        Not asserted: how RQ runs its scheduler is RQ's business; the launcher must stop whatever there is.
        """
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.record_descendants()
            workers = {p.pid for p in self.seen.values() if "flask --app wsgi worker" in " ".join(_cmdline(p))}
            if any(_parent(p) in workers for p in self.seen.values()):
                return
            time.sleep(0.2)

    def wait_for_exit(self) -> int:
        deadline = time.monotonic() + STOP_SECONDS
        while self.process.poll() is None and time.monotonic() < deadline:
            self.record_descendants()
            time.sleep(0.1)
        if self.process.poll() is None:
            pytest.fail(f"the launcher did not exit within {STOP_SECONDS}s of the signal:\n{self.output()}")
        return self.process.returncode

    def kill_everything(self) -> None:
        """Cleanup whatever happened: the launcher, then every process ever seen below it."""
        if self.process.poll() is None:
            self.record_descendants()
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        for process in self.seen.values():
            with suppress(psutil.NoSuchProcess):
                if process.is_running():
                    process.kill()
        psutil.wait_procs(list(self.seen.values()), timeout=10)


def _start_launcher() -> Launcher:
    """``python -m app.launcher`` on the embedded default in a fresh instance folder, up and answering."""
    # A short path under /tmp: the embedded Redis listens on a Unix socket in the instance folder (108-byte limit).
    instance = Path(tempfile.mkdtemp(prefix="thusa-launcher-"))
    # As an older version left it: a folder and files anyone could read. The launcher must close them at start.
    instance.chmod(0o755)
    (instance / "thusa.db").touch(mode=0o644)  # an empty file: SQLite takes it as a new database
    (instance / "console-media").mkdir(mode=0o755)
    (instance / "console-media" / ("0" * 32)).write_bytes(b"\xff\xd8 a photo")
    (instance / "console-media" / ("0" * 32)).chmod(0o644)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "PORT", "HOST"}}
    env.update(
        PORT=str(port),
        INSTANCE_PATH=str(instance),
        THUSA_ENV="development",
        WEB_CONCURRENCY="1",
        # gunicorn puts its control socket in $XDG_RUNTIME_DIR (else ~/.gunicorn): keep it out of the shared home.
        XDG_RUNTIME_DIR=str(instance),
    )
    log = instance / "launcher.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "app.launcher"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,  # its own process group, as a shell's foreground job
        )  # fmt: skip
    running = Launcher(process, instance, log, f"http://127.0.0.1:{port}")
    try:
        running.wait_until_up()
    except BaseException:
        _clean_up(running)
        raise
    return running


def _clean_up(running: Launcher) -> None:
    running.kill_everything()
    shutil.rmtree(running.instance, ignore_errors=True)


class Launchers:
    """The module's launchers. A start costs three interpreters importing the app (launcher, worker, gunicorn), so a
    test that leaves the launcher as it found it (:func:`running_launcher`) hands it on to the next test that stops
    one (:func:`launcher`), instead of each starting its own."""

    def __init__(self) -> None:
        self.idle: Launcher | None = None

    def borrow(self) -> Launcher:
        """The idle launcher (started now when there is none, or it died); it stays idle after the test."""
        if self.idle is None or self.idle.process.poll() is not None:
            self.close()
            self.idle = _start_launcher()
        return self.idle

    def take(self) -> Launcher:
        """A launcher for this test alone (the idle one if it still runs): the test may stop it."""
        taken, self.idle = self.idle, None
        if taken is not None and taken.process.poll() is None:
            return taken
        if taken is not None:
            _clean_up(taken)
        return _start_launcher()

    def close(self) -> None:
        if self.idle is not None:
            _clean_up(self.idle)
            self.idle = None


@pytest.fixture(scope="module")
def launchers() -> Iterator[Launchers]:
    pool = Launchers()
    yield pool
    pool.close()


@pytest.fixture
def launcher(launchers) -> Iterator[Launcher]:
    """A running launcher for this test alone, which it may stop; everything it started is gone after the test."""
    running = launchers.take()
    try:
        yield running
    finally:
        _clean_up(running)


@pytest.fixture
def running_launcher(launchers) -> Launcher:
    """A running launcher the test must leave running (it is handed on to a test that stops one)."""
    return launchers.borrow()


def _assert_private(launcher: Launcher) -> None:
    """instance/ is 0700 with every folder 0700 and every file 0600, and every process started has umask 077."""
    loose = {}
    for path in [launcher.instance, *launcher.instance.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_ISDIR(mode) and stat.S_IMODE(mode) != 0o700 or stat.S_ISREG(mode) and stat.S_IMODE(mode) != 0o600:
            loose[str(path.relative_to(launcher.instance))] = oct(stat.S_IMODE(mode))
    assert loose == {}, loose
    names = {path.name for path in launcher.instance.rglob("*")}
    assert {"thusa.db", "thusa.db-wal", "thusa.db-shm", "redis.aof", ".secret_key", "0" * 32} <= names, names
    for process in [psutil.Process(launcher.process.pid), *launcher.seen.values()]:
        with suppress(psutil.NoSuchProcess, FileNotFoundError):
            status = Path(f"/proc/{process.pid}/status").read_text()
            umask = next(line.split()[1] for line in status.splitlines() if line.startswith("Umask:"))
            assert umask == "0077", (_cmdline(process), umask)


def test_secure_instance_closes_what_others_could_read_and_follows_no_link(tmp_path):
    from app.launcher import secure_instance

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    outside = elsewhere / "outside.txt"
    outside.write_text("not ours")
    outside.chmod(0o644)
    instance = tmp_path / "instance"
    (instance / "console-media").mkdir(parents=True, mode=0o755)
    instance.chmod(0o755)
    for name in ("thusa.db", "thusa.db-wal", "thusa.db-shm", "redis.aof", "redis.rdb", "console-media/" + "a" * 32):
        (instance / name).write_bytes(b"x")
        (instance / name).chmod(0o644)
    (instance / "link").symlink_to(outside)
    (instance / "linked-folder").symlink_to(elsewhere, target_is_directory=True)
    with closing(socket.socket(socket.AF_UNIX)) as server:
        server.bind(str(instance / "redis.sock"))
        (instance / "redis.sock").chmod(0o700)

        secure_instance(instance)

        assert stat.S_IMODE((instance / "redis.sock").lstat().st_mode) == 0o700  # a socket keeps its mode
    assert stat.S_IMODE(instance.stat().st_mode) == 0o700
    assert stat.S_IMODE((instance / "console-media").stat().st_mode) == 0o700
    for name in ("thusa.db", "thusa.db-wal", "thusa.db-shm", "redis.aof", "redis.rdb", "console-media/" + "a" * 32):
        assert stat.S_IMODE((instance / name).stat().st_mode) == 0o600, name
    # Links are neither followed nor walked into.
    assert (stat.S_IMODE(outside.stat().st_mode), stat.S_IMODE(elsewhere.stat().st_mode)) == (0o644, 0o755)

    fresh = tmp_path / "new" / "instance"
    secure_instance(fresh)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700


def _names(processes) -> list[str]:
    return [" ".join(_cmdline(process)) for process in processes]


def test_the_worker_enqueues_the_periodic_jobs(running_launcher):
    """The worker's periodic schedule runs under ``make run``: its first period is claimed and its job enqueued.

    A regression test: the periodic thread once ran outside the app context and died on its first tick, right after
    claiming the period (so the claim alone proves nothing).
    """
    from workers.schedule import SCHEDULE

    job = SCHEDULE[0]
    connection = redis.Redis(unix_socket_path=str(running_launcher.instance / "redis.sock"), socket_timeout=5)
    try:
        deadline = time.monotonic() + START_SECONDS
        claims: list[bytes] = []
        while not claims and time.monotonic() < deadline:  # the worker may still be starting
            claims = list(connection.scan_iter(f"thusa:periodic:{job.name}:*"))
            time.sleep(0.2)
        assert claims, f"the periodic schedule never ran:\n{running_launcher.output()}"
        slot = claims[0].decode().rsplit(":", 1)[1]
        # The claim and the enqueue are one step apart; allow a generous moment for the job to appear.
        deadline = time.monotonic() + 5
        while not connection.exists(f"rq:job:periodic-{job.name}-{slot}") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert connection.exists(f"rq:job:periodic-{job.name}-{slot}"), running_launcher.output()
    finally:
        connection.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_make_run_serves_then_stops_everything_on_a_signal(launcher, signum):
    # Ready as soon as live: the launcher starts the web server only once everything else is up.
    status, body = _request(f"{launcher.base_url}/readyz")
    assert status == 200, body
    assert json.loads(body)["checks"] == {"database": "ok", "redis": "ok"}

    status, body = _request(f"{launcher.base_url}/api/v1/openapi.json")
    assert status == 200
    paths = json.loads(body)["paths"]
    assert {"/api/v1/auth/login", "/api/v1/users", "/api/v1/clinics"} <= set(paths)

    status, body = _request(
        f"{launcher.base_url}/api/v1/auth/login", {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    assert status == 200, body
    token = json.loads(body)["access_token"]
    status, body = _request(f"{launcher.base_url}/api/v1/users", headers={"Authorization": f"Bearer {token}"})
    assert status == 200, body
    assert ADMIN_EMAIL.encode() in body

    with closing(sqlite3.connect(launcher.instance / "thusa.db")) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    _assert_private(launcher)

    launcher.wait_for_worker_scheduler()
    started = _names(launcher.seen.values())
    assert any("redis-server" in name for name in started), started
    assert any("flask --app wsgi worker" in name for name in started), started
    assert sum("gunicorn" in name for name in started) >= 2, started  # the master and its worker

    if signum == signal.SIGINT:
        os.killpg(launcher.process.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the foreground group
    else:
        launcher.process.send_signal(signal.SIGTERM)
    assert launcher.wait_for_exit() == 0, launcher.output()

    left = [process for process in launcher.seen.values() if _alive(process)]
    assert left == [], f"still running after the launcher exited: {_names(left)}\n{launcher.output()}"
    assert launcher.output().rstrip().endswith("thusa: stopped")
