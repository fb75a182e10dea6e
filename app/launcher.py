"""``make run``: the whole service from one foreground process.

Order: embedded Redis (unless ``REDIS_URL`` is set) → migrations → demo data → worker (with scheduler) → web.
``instance/`` is made private first (0700, its files 0600), and everything started here creates files with umask
077, so the database, Redis's files and the photos there are readable by this user only.
The web server starts last, so ``/readyz`` answers 200 as soon as ``/healthz`` does. SIGINT or SIGTERM stops the
children in reverse order; if any child dies, the rest are stopped too. Children get SIGTERM if this process is
killed outright (Linux parent-death signal), so nothing is left behind.
"""

from __future__ import annotations

import argparse
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from dotenv import load_dotenv

from app import create_app
from app.config import PROJECT_ROOT, instance_path, load_config
from app.extensions import db
from app.redis_conn import SOCKET_NAME, embedded_server_args, running_embedded_url
from app.services.demo import seed_demo

STOP_SECONDS = 15
# Files the launcher and its children create are readable by this user only: instance/ holds health data (the
# SQLite database and its -wal/-shm, Redis's append-only file with queued jobs, the console media store's photos).
PRIVATE_UMASK = 0o077


class Stop(Exception):
    """A stop signal arrived while the service was still starting."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Supervisor:
    """Starts children, watches them, stops them all in reverse order."""

    def __init__(self) -> None:
        self.children: list[tuple[str, subprocess.Popen]] = []
        self.stopping = False
        self.watching = False

    def start(self, name: str, args: list[str], env: dict) -> subprocess.Popen:
        # A session of their own: a terminal's Ctrl-C reaches only this process, which stops them in order.
        proc = subprocess.Popen(args, env=env, cwd=PROJECT_ROOT, start_new_session=True,  # noqa: S603
                                preexec_fn=_die_with_parent)  # fmt: skip
        self.children.append((name, proc))
        return proc

    def stop_all(self) -> None:
        self.stopping = True
        for name, proc in reversed(self.children):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(STOP_SECONDS)
                except subprocess.TimeoutExpired:
                    print(f"thusa: {name} did not stop in {STOP_SECONDS}s; killing it", flush=True)
                    proc.kill()
                    proc.wait()

    def watch(self) -> int:
        self.watching = True
        while not self.stopping:
            for name, proc in self.children:
                if proc.poll() is not None:
                    print(f"thusa: {name} exited with {proc.returncode}; stopping the rest", flush=True)
                    return 1
            time.sleep(0.5)
        return 0


def _wait_for(check, what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise SystemExit(f"thusa: {what} did not come up within {seconds:.0f}s")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 (our own loopback URL)
            return response.status == 200
    except OSError:
        return False


def secure_instance(instance: Path) -> None:
    """Make ``instance`` private: created if missing, it and every folder in it 0700, every file in it 0600.

    For what an earlier run, an older version or a command run without the launcher left readable by others. Symbolic
    links are neither followed nor changed; sockets keep the modes their servers gave them.
    """
    instance.mkdir(mode=0o700, parents=True, exist_ok=True)
    instance.chmod(0o700)
    for root, folders, files in os.walk(instance):  # does not descend into linked folders
        for name in [*folders, *files]:
            path = Path(root) / name
            mode = path.lstat().st_mode
            wanted = 0o700 if stat.S_ISDIR(mode) else 0o600 if stat.S_ISREG(mode) else None
            if wanted is not None and stat.S_IMODE(mode) != wanted:
                path.chmod(wanted)


def prepare() -> list[str]:
    """Apply migrations and seed the demo data in this process; returns the demo sign-in lines."""
    from flask_migrate import upgrade

    app = create_app()
    with app.app_context():
        upgrade()
        lines = seed_demo() if app.config["THUSA_ENV"] != "production" else []
        db.engine.dispose()
    return lines


def main(argv: list[str] | None = None) -> int:
    # Before the parser reads PORT and HOST, so .env sets them too, as it does for the simulator that posts to them.
    load_dotenv(PROJECT_ROOT / ".env")  # the same file the flask commands read; the environment wins
    parser = argparse.ArgumentParser(
        prog="python -m app.launcher",
        description="Run Thusa: embedded Redis (unless REDIS_URL is set), migrations, demo data, worker with "
        "scheduler, and the web server on http://127.0.0.1:$PORT. Ctrl-C stops everything.",
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "5000")), help="web port (PORT)")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"), help="web address (HOST)")
    args = parser.parse_args(argv)

    supervisor = Supervisor()

    def _on_signal(signum, _frame):
        supervisor.stopping = True
        if not supervisor.watching:
            raise Stop

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)

    env = dict(os.environ)
    os.umask(PRIVATE_UMASK)  # this process (migrations: the SQLite file) and every child inherit it
    instance = instance_path()
    secure_instance(instance)
    bin_dir = Path(sys.executable).parent
    try:
        if not env.get("REDIS_URL"):
            if running_embedded_url(instance):
                raise SystemExit(f"thusa: an embedded Redis already runs on {instance / SOCKET_NAME}; "
                                 "is another `make run` up?")  # fmt: skip
            supervisor.start("redis", embedded_server_args(instance), env)
            _wait_for(lambda: running_embedded_url(instance), "embedded Redis", 15)
            env["REDIS_URL"] = os.environ["REDIS_URL"] = f"unix://{instance / SOCKET_NAME}"
            print(f"thusa: embedded Redis on {instance / SOCKET_NAME}", flush=True)

        for line in prepare():
            print(line, flush=True)

        supervisor.start("worker", [str(bin_dir / "flask"), "--app", "wsgi", "worker"], env)
        workers = env.get("WEB_CONCURRENCY", "2")
        supervisor.start("web", [str(bin_dir / "gunicorn"), "--bind", f"{args.host}:{args.port}", "--workers", workers,
                                 "--threads", "4", "--graceful-timeout", "10",
                                 "--control-socket", str(instance / "gunicorn.ctl"), "wsgi:app"], env)  # fmt: skip
        base = f"http://{args.host}:{args.port}"
        _wait_for(lambda: _http_ok(f"{base}/healthz"), "the web server", 60)
        print(f"thusa: up at {base}  (API docs {base}/api/v1/docs, health {base}/readyz); Ctrl-C stops",
              flush=True)  # fmt: skip
        if load_config()["SIMULATOR_ENABLED"]:  # on by default in development only
            print(f"thusa: phone simulator at {base}/simulator", flush=True)
        return supervisor.watch()
    except Stop:
        return 0
    finally:
        supervisor.stop_all()
        print("thusa: stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
