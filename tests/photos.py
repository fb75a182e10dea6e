"""Pictures built for tests and benchmarks: photo-like images from scikit-image's bundled sample photos, files in
every accepted format, metadata to strip, and a decompression bomb. Nothing is downloaded.
"""

from __future__ import annotations

import functools
import io
import struct
import zlib

import numpy as np
from PIL import Image

GPS_IFD = 0x8825
ORIENTATION = 0x0112


def sample_photo(width: int = 1200, height: int = 900, *, seed: int = 1, noise: float = 4.0) -> Image.Image:
    """A real photo (scikit-image's ``coffee``, a 600x400 camera picture) scaled to ``width`` x ``height`` with mild
    sensor-like noise, so that it compresses like a phone photo and not like a flat upscaled image."""
    from skimage import data

    picture = Image.fromarray(data.coffee()).resize((width, height), Image.Resampling.BICUBIC)
    if noise:
        rng = np.random.default_rng(seed)
        pixels = np.asarray(picture).astype(np.int16) + rng.normal(0, noise, (height, width, 3)).astype(np.int16)
        picture = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return picture


def encode(picture: Image.Image, fmt: str, **params) -> bytes:
    """``picture`` saved as ``fmt`` (``JPEG``, ``PNG``, ``WEBP``, ``HEIF``, ``GIF`` ...) into bytes.

    HEIF is encoded with x265's fastest preset unless ``enc_params`` say otherwise: a valid HEIF file of the same
    size and quality setting, made in a tenth of the time (12 MP: 1.6 s instead of 12 s), since the tests are about
    reading pictures, not about how well the encoder compresses them.
    """
    import pillow_heif

    pillow_heif.register_heif_opener()
    if fmt == "HEIF":
        params.setdefault("enc_params", {"preset": "ultrafast"})
    buffer = io.BytesIO()
    picture.save(buffer, fmt, **params)
    return buffer.getvalue()


def gps_exif(orientation: int = 1) -> Image.Exif:
    """EXIF with an orientation and a GPS position (Gaborone), camera make and a user comment."""
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0131] = "CameraApp 1.0"  # Software
    gps = exif.get_ifd(GPS_IFD)
    gps[1] = "S"
    gps[2] = (24.0, 39.0, 29.0)
    gps[3] = "E"
    gps[4] = (25.0, 54.0, 44.0)
    return exif


def two_halves(width: int = 400, height: int = 200) -> Image.Image:
    """Left half red, right half blue: shows where a rotation moved the picture."""
    picture = Image.new("RGB", (width, height), (255, 0, 0))
    picture.paste((0, 0, 255), (width // 2, 0, width, height))
    return picture


def checkerboard(size: int = 800, square: int = 16) -> Image.Image:
    """A sharp black and white checkerboard."""
    rows = (np.arange(size) // square)[:, None]
    cols = (np.arange(size) // square)[None, :]
    return Image.fromarray(((rows + cols) % 2 * 255).astype(np.uint8)).convert("RGB")


def png_bomb(width: int = 10_000, height: int = 10_000) -> bytes:
    """A valid 1-bit PNG of ``width`` x ``height`` white pixels: 100 megapixels in about 20 kB."""
    row = b"\x00" + b"\xff" * ((width + 7) // 8)  # filter byte "none", then the packed bits
    compressor = zlib.compressobj(9)
    chunks = [compressor.compress(row) for _ in range(height)]
    idat = b"".join(chunks) + compressor.flush()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # bit depth 1, greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@functools.lru_cache(maxsize=4)  # ~2 s of deflate for the 8000 x 5000 default; the bytes never change
def solid_png(width: int = 8000, height: int = 5000, colour: tuple[int, ...] = (200, 120, 90, 255)) -> bytes:
    """A valid 8-bit PNG of ``width`` x ``height`` pixels of one colour (RGBA for four values, RGB for three), built
    row by row: 8000 x 5000 RGBA is ~160 kB that decodes to 160 MB, and building it never holds the picture."""
    row = b"\x00" + bytes(colour) * width  # filter byte "none", then the pixels
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 6 if len(colour) == 4 else 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """The JPEG's marker segments up to the image data: ``[(marker, payload), ...]`` (0xE0 APP0, 0xE1 APP1 ...)."""
    assert data[:2] == b"\xff\xd8", "not a JPEG"
    segments, offset = [], 2
    while offset < len(data):
        assert data[offset] == 0xFF, f"no marker at {offset}"
        marker = data[offset + 1]
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            segments.append((marker, b""))
            break
        length = struct.unpack(">H", data[offset + 2 : offset + 4])[0]
        segments.append((marker, data[offset + 4 : offset + 2 + length]))
        offset += 2 + length
    return segments


TEXTURES = ("fungal", "eczema", "mole")


def texture(kind: str, rng: np.random.Generator, size: int = 160) -> Image.Image:
    """A synthetic "skin" picture whose texture depends on ``kind`` (a stand-in for a condition, for training tests):
    ``fungal`` rings, ``eczema`` fine speckle, ``mole`` one dark blob; on a random skin tone, with random scale,
    position and noise, so two pictures of a kind are never the same."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    tone = np.array([rng.uniform(90, 220), rng.uniform(55, 150), rng.uniform(30, 110)])
    cx, cy = rng.uniform(0.3, 0.7, 2) * size
    radius = np.hypot(x - cx, y - cy)
    if kind == "fungal":
        shade = 40 * np.sin(radius / rng.uniform(3.0, 5.0)) * (radius < size * 0.45)
    elif kind == "eczema":
        shade = 55 * (rng.random((size, size)) > 0.8) * rng.uniform(0.7, 1.0)
    elif kind == "mole":
        shade = -110 * (radius < rng.uniform(0.15, 0.25) * size)
    else:
        raise ValueError(kind)
    pixels = tone + shade[..., None] * np.array([1.0, 0.45, 0.35]) + rng.normal(0, 6, (size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def texture_dataset(folder, *, patients: int = 20, kinds: tuple[str, ...] = TEXTURES, seed: int = 3,
                    second_photo_every: int = 4) -> dict[str, str]:  # fmt: skip
    """A labelled data folder for ``flask skin-model train``: ``folder/<kind>/<patient>-<n>.jpg``, every
    ``second_photo_every``-th patient with two photos, and a ``meta.csv`` (patient ids, Fitzpatrick types).
    Returns file → patient id."""
    import csv
    from pathlib import Path

    rng = np.random.default_rng(seed)
    folder = Path(folder)
    patient_of: dict[str, str] = {}
    for kind in kinds:
        (folder / kind).mkdir(parents=True, exist_ok=True)
        for number in range(patients):
            patient = f"{kind[:2]}{number:03d}"
            for photo in range(2 if number % second_photo_every == 0 else 1):
                name = f"{kind}/{patient}-{photo}.jpg"
                (folder / name).write_bytes(encode(texture(kind, rng), "JPEG", quality=90))
                patient_of[name] = patient
    with (folder / "meta.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "patient_id", "fitzpatrick", "site", "source"])
        for index, (name, patient) in enumerate(sorted(patient_of.items())):
            writer.writerow([name, patient, str(4 + index % 3), "arm", "synthetic"])
    return patient_of
