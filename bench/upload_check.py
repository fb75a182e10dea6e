"""A small upload must cost a small request: the 163 kB, 8000 x 5000 one-colour RGBA PNG that decodes to 160 MB.

What is measured: ``POST /api/v1/consultations`` (and ``POST /api/v1/analysis/skin``) of that PNG by a signed-in
pharmacist, through the Flask app in this process (the test client: multipart parsing, the JWT, the upload limit,
the header checks, the answer), ``--runs`` times each, after a warm-up. Per request: the wall time, and the peak
resident memory above what the process held just before (Linux ``/proc/self/status`` VmHWM, reset with
``/proc/self/clear_refs`` before each request, so Pillow's and libpng's C allocations count; ``ru_maxrss`` where
that reset is not allowed, which only sees new peaks). Then once more under ``tracemalloc`` for the Python side.

Ceilings: 200 ms and 50 MB a request; ``measured / ceiling`` is printed for both, and the exit status is 1 when
either is missed or the PNG is not refused from its header (413 ``too_compressed``). For scale, the same run
measures what decoding it costs the way the request used to (``images.process`` with the pixels-a-byte cap lifted:
decode, orient, re-encode, now the worker's job) and a 12-megapixel photo JPEG's upload.

The database is a throw-away SQLite file; the Redis database of ``--redis-url`` is flushed (default db 12): never
point it at real data.

    .venv/bin/python bench/upload_check.py [--runs 20] [--redis-url redis://127.0.0.1:6379/12]
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/12"
CEILING_SECONDS = 0.200
CEILING_BYTES = 50 * 1000 * 1000
PATHS = ("/api/v1/consultations", "/api/v1/analysis/skin")
PASSWORD = "bench-password-123"  # noqa: S105 - a throw-away account in a throw-away database


class PeakMemory:
    """The peak resident memory of this process above its level at ``start``."""

    def __init__(self) -> None:
        self.resettable = self._reset()

    @staticmethod
    def _reset() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")  # resets VmHWM to the current VmRSS
            return True
        except OSError:
            return False

    @staticmethod
    def _status(field: str) -> int:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        raise LookupError(field)

    def start(self) -> None:
        if self.resettable:
            self._reset()
            self.before = self._status("VmRSS")
        else:
            self.before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def peak(self) -> int:
        if self.resettable:
            return self._status("VmHWM") - self.before
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - self.before


def _app(database_url: str, redis_url: str, instance: str):
    from app import create_app

    return create_app({"THUSA_ENV": "test", "DATABASE_URL": database_url, "REDIS_URL": redis_url,
                       "INSTANCE_PATH": instance, "UPLOAD_RATE_LIMIT": "100000 per minute",
                       "RATELIMIT_DEFAULT": "100000 per minute", "LOG_LEVEL": "WARNING"})  # fmt: skip


def _token(client) -> str:
    from app.extensions import db
    from app.models import User
    from app.services.passwords import hash_password

    db.session.add(User(email="bench@thusa.example", password_hash=hash_password(PASSWORD), role="pharmacist",
                        name="Bench", pharmacy_name="Bench Pharmacy", language="en"))  # fmt: skip
    db.session.commit()
    response = client.post("/api/v1/auth/login", json={"email": "bench@thusa.example", "password": PASSWORD})
    return response.get_json()["access_token"]


def _post(client, token: str, path: str, data: bytes):
    return client.post(path, headers={"Authorization": f"Bearer {token}"},
                       data={"image": (io.BytesIO(data), "skin.png")}, content_type="multipart/form-data")  # fmt: skip


def _measure(client, token: str, path: str, data: bytes, memory: PeakMemory) -> tuple[float, int, int, dict]:
    memory.start()
    started = time.perf_counter()
    response = _post(client, token, path, data)
    elapsed = time.perf_counter() - started
    return elapsed, memory.peak(), response.status_code, response.get_json()


def _mb(value: float) -> str:
    return f"{value / 1e6:.1f} MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="measured requests per endpoint (after a warm-up)")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL),
                        help="flushed (default Redis db 12)")  # fmt: skip
    args = parser.parse_args(argv)

    import redis
    from flask_migrate import upgrade

    redis.Redis.from_url(args.redis_url).flushdb()
    with tempfile.TemporaryDirectory() as instance:
        app = _app(f"sqlite:///{instance}/bench.db", args.redis_url, instance)
        with app.app_context():
            upgrade(directory=str(ROOT / "migrations"))
            return _run(app, args.runs)


def _run(app, runs: int) -> int:
    from app.services import images
    from tests.photos import encode, sample_photo, solid_png

    bomb = solid_png()  # built row by row: the 160 MB picture is never in memory here
    print(f"the PNG: 8000 x 5000 RGBA of one colour, {len(bomb):,} bytes ({40_000_000 / len(bomb):.0f} pixels a byte)")
    client = app.test_client()
    token = _token(client)
    photo = encode(sample_photo(4000, 3000), "JPEG", quality=92)
    memory = PeakMemory()
    if not memory.resettable:
        print("note: /proc/self/clear_refs is not writable here; ru_maxrss only sees new peaks")

    for path in PATHS:  # warm-up: imports, the first connection, Pillow's plugins
        _post(client, token, path, photo)
        _post(client, token, path, bomb)

    failed = False
    worst_time = worst_memory = 0.0
    for path in PATHS:
        times, peaks = [], []
        for _ in range(runs):
            elapsed, peak, status, body = _measure(client, token, path, bomb, memory)
            if status != 413 or body["error"]["code"] != "too_compressed":
                print(f"{path}: answered {status} {body}, not 413 too_compressed")
                failed = True
            times.append(elapsed)
            peaks.append(peak)
        worst_time, worst_memory = max(worst_time, max(times)), max(worst_memory, max(peaks))
        print(f"{path}: 413 too_compressed; time p50 {statistics.median(times) * 1000:.1f} ms, max "
              f"{max(times) * 1000:.1f} ms; peak RSS above the start p50 {_mb(statistics.median(peaks))}, "
              f"max {_mb(max(peaks))} ({runs} runs)")  # fmt: skip

    tracemalloc.start()
    _post(client, token, PATHS[0], bomb)
    _, python_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"Python allocations during one request (tracemalloc peak): {_mb(python_peak)}")

    print("for scale:")
    elapsed, peak, status, _ = _measure(client, token, PATHS[0], photo, memory)
    print(f"  a 12-MP photo JPEG ({len(photo):,} bytes) uploaded: {status}, {elapsed * 1000:.1f} ms, "
          f"peak RSS {_mb(peak)} (header checks and the metadata strip; no decode)")  # fmt: skip
    memory.start()
    started = time.perf_counter()
    images.process(bomb, max_pixels_per_byte=10**9)
    old_time, old_memory = time.perf_counter() - started, memory.peak()
    print(f"  decoding the PNG as the request used to (images.process, ratio cap lifted; now the worker's job, "
          f"within IMAGE_DECODE_MAX_BYTES): {old_time * 1000:.0f} ms, peak RSS {_mb(old_memory)}")  # fmt: skip

    print(f"request time  max / ceiling = {worst_time * 1000:.1f} ms / {CEILING_SECONDS * 1000:.0f} ms = "
          f"{worst_time / CEILING_SECONDS:.3f}")  # fmt: skip
    print(f"request RSS   max / ceiling = {_mb(worst_memory)} / {_mb(CEILING_BYTES)} = "
          f"{worst_memory / CEILING_BYTES:.3f}")  # fmt: skip
    if worst_time >= CEILING_SECONDS or worst_memory >= CEILING_BYTES:
        print("target missed")
        failed = True
    if failed:
        return 1
    print("target met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
