"""Decompression bombs: a 100-megapixel PNG (a file of about 20 kB) must be refused in well under a second.

What is measured: ``app.services.images.check_upload`` and ``app.services.images.process`` on the bomb, each
``--runs`` times, until they raise ``ImageRejected("too_many_pixels")``; and, for scale, ``process`` on a normal
12-megapixel photo JPEG built from scikit-image's bundled ``coffee`` photo. The ceiling in the same run is what a
naive pipeline pays for the same bomb: Pillow decoding it with the pixel cap lifted (``Image.MAX_IMAGE_PIXELS =
None``; once, as it takes seconds and 100 MB). Target: p95 of the refusal < 1 s; the ratio to the naive
decode is printed. Exit status 1 when the target is missed or the bomb is not refused.

    .venv/bin/python bench/image_bomb.py [--runs 50]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image  # noqa: E402

from app.services import images  # noqa: E402
from tests.photos import encode, png_bomb, sample_photo  # noqa: E402

TARGET_SECONDS = 1.0


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _refusal_times(call, data: bytes, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        try:
            call(data)
        except images.ImageRejected as exc:
            if exc.code != "too_many_pixels":
                raise SystemExit(f"{call.__name__}: refused as {exc.code}, not too_many_pixels") from None
        else:
            raise SystemExit(f"{call.__name__}: the bomb was NOT refused")
        times.append(time.perf_counter() - started)
    return times


def _naive_decode(data: bytes) -> float:
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        started = time.perf_counter()
        with Image.open(io.BytesIO(data)) as picture:
            picture.load()
        return time.perf_counter() - started
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def _peak_rss_mb() -> float:
    """This process's peak resident set (``VmHWM``, Linux; ``ru_maxrss`` elsewhere) in MB."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args(argv)

    bomb = png_bomb()
    print(f"bomb: 10000 x 10000 = 100,000,000 pixels in {len(bomb):,} bytes")
    results = {}
    for call in (images.check_upload, images.process):
        times = _refusal_times(call, bomb, args.runs)
        results[call.__name__] = _p95(times)
        print(f"{call.__name__:>12} refuses it: p50 {statistics.median(times) * 1000:.2f} ms, "
              f"p95 {_p95(times) * 1000:.2f} ms ({args.runs} runs)")  # fmt: skip
    naive = _naive_decode(bomb)
    print(f"ceiling: Pillow decoding the bomb with the cap lifted: {naive * 1000:.0f} ms")

    photo = encode(sample_photo(4000, 3000), "JPEG", quality=92)
    photo_times = []
    for _ in range(5):
        started = time.perf_counter()
        images.process(photo)
        photo_times.append(time.perf_counter() - started)
    print(f"for scale: process() of a 12-MP photo JPEG ({len(photo):,} bytes): "
          f"median {statistics.median(photo_times) * 1000:.0f} ms (5 runs)")  # fmt: skip
    print(f"memory: peak RSS of this process (every refusal and the uncapped decode ran here) {_peak_rss_mb():.0f} MB")

    worst = max(results.values())
    print(
        f"refusal p95 / target = {worst * 1000:.2f} ms / {TARGET_SECONDS * 1000:.0f} ms = {worst / TARGET_SECONDS:.2e}"
    )
    print(f"refusal p95 / naive decode = {worst / naive:.2e}")
    if worst >= TARGET_SECONDS:
        print("target missed: the refusal must take under 1 s")
        return 1
    print("target met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
