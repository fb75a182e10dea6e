"""The image pipeline: check an upload cheaply, then decode, orient, strip and re-encode it for storage.

Photos arrive from pharmacists' phones (Telegram, WhatsApp, the REST upload) as JPEG, PNG, HEIC/HEIF or WebP.
:func:`check_upload` refuses anything else, and anything too big, before a byte is stored or decoded: the type comes
from the magic bytes (never the file name or the client's content type), the pixel count from the header, and so
does the ratio of pixels to bytes, so a decompression bomb (a small file claiming 100 megapixels, or a 163 kB
solid-colour 40-megapixel PNG) costs microseconds, not gigabytes. A web request goes no further than
:func:`prepare_upload`: those checks, then the metadata taken out of the container without decoding a pixel
(:mod:`app.services.image_metadata`); the pixels are decoded only in the inference worker.

:func:`process` (the worker) decodes the picture within a memory budget estimated from the header before any
decoding (:func:`decode_cost`; over it the photo is refused as ``too_large_to_decode``), applies its EXIF orientation,
drops every piece of metadata (EXIF with GPS, XMP, ICC, comments) by re-encoding only the pixels, and stores a JPEG
of at most 2 MB whose SSIM against the original (resized to the stored size) is at least 0.85. It also measures
whether the photo is usable (too small, too dark, too bright, blurred) so the chat can ask for a retake; those
findings never refuse the image.

Pillow only ever parses the four accepted formats here (``Image.open(..., formats=...)``): its other decoders
(EPS through Ghostscript, and the rest) are never reached from an upload.
"""

from __future__ import annotations

import io
import re
import struct
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pillow_heif
from PIL import Image

from app.services import image_metadata

pillow_heif.register_heif_opener()

DEFAULT_MAX_BYTES = 15 * 1024 * 1024  # IMAGE_MAX_BYTES: a 12-MP phone JPEG is 3-8 MB, a PNG screenshot more
DEFAULT_MAX_PIXELS = 40_000_000  # IMAGE_MAX_PIXELS: above the 12-50 MP of phone cameras' default modes
# IMAGE_MAX_PIXELS_PER_BYTE: phone photos hold 2-15 pixels a byte (a chat app's recompressed JPEG up to ~40); a PNG
# of one colour holds ~240, the most deflate allows. Pictures below RATIO_FREE_PIXELS are not held to it: decoding
# them costs at most ~16 MB, whatever the file's size.
DEFAULT_MAX_PIXELS_PER_BYTE = 100
RATIO_FREE_PIXELS = 4_000_000
# IMAGE_DECODE_MAX_BYTES: the memory one photo's decode may take in the worker, as decode_cost estimates it from the
# header. A 12-MP photo needs 12 MB (JPEG) to 190 MB (WebP); a 40-MP PNG 160 MB; a 40-MP HEIC about 320 MB.
DEFAULT_DECODE_MAX_BYTES = 256 * 1024 * 1024
STORED_MAX_BYTES = 2 * 1024 * 1024
STORED_MAX_SIDE = 2048  # long side kept; more detail than the model or a person reading the consultation needs
# A large photo is first made smaller by a whole factor while its long side stays at least this: a JPEG by decoding
# at 1/2, 1/4 or 1/8 scale (libjpeg's scaled IDCT), anything else by averaging factor x factor blocks. Either costs a
# fraction of a full-size decode plus a Lanczos resize: a 4032x3024 phone photo becomes 2016x1512 directly.
REDUCE_MIN_SIDE = 1536
MIN_SSIM = 0.85
JPEG_QUALITIES = (85, 75, 65)  # tried in order; the first whose file fits STORED_MAX_BYTES is measured
CONTENT_TYPE = "image/jpeg"

# Usability thresholds, measured on the stored picture's luma scaled to QUALITY_SIDE on its long side, so that the
# blur measure does not depend on the camera's resolution.
QUALITY_SIDE = 512
MIN_SHORT_SIDE = 320  # px of the stored picture; Telegram's smaller previews (90, 320 px) are too coarse to read
TOO_DARK_MEAN = 45.0  # mean luma 0-255 below this: underexposed
TOO_BRIGHT_MEAN = 215.0  # mean luma above this: washed out (flash glare, sky)
BLUR_MIN_SHARPNESS = 25.0  # variance of the Laplacian below this: out of focus or shaken (skin is smooth: kept low)

PROBLEMS = ("too_small", "too_dark", "too_bright", "blurred")
FORMATS = ("JPEG", "PNG", "HEIF", "WEBP")

_STATUS = {"unsupported_type": 415, "too_large": 413, "too_many_pixels": 413, "too_compressed": 413,
           "too_large_to_decode": 413, "unreadable": 422}  # fmt: skip
# ISO BMFF brands of HEIF still images and sequences (ISO/IEC 23008-12); AVIF ("avif", "avis") is not accepted.
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
_HEIC_BRANDS = _HEIF_BRANDS - {b"mif1", b"msf1"}

# Pillow raises DecompressionBombError above twice MAX_IMAGE_PIXELS and only warns between one and two times it; the
# warning is turned into an error so that nothing over the cap is ever decoded, whoever calls Pillow.
Image.MAX_IMAGE_PIXELS = DEFAULT_MAX_PIXELS
warnings.simplefilter("error", Image.DecompressionBombWarning)


class ImageRejected(Exception):
    """The upload cannot be used at all (as opposed to a usable photo of poor quality).

    Attributes:
        code: ``unsupported_type``, ``too_large`` (bytes), ``too_many_pixels``, ``too_compressed`` (more pixels a
            byte than photos have: a likely decompression bomb), ``too_large_to_decode`` (over the worker's memory
            budget; found in the worker only) or ``unreadable``.
        message: English, names the limit (shown to API clients; the chat uses its own catalog texts by code).
        status: the HTTP status for the REST API (415; 413 for the four caps; 422).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = _STATUS[code]


@dataclass(frozen=True)
class QualityReport:
    """Whether a photo is good enough to read, and the measures behind the verdict.

    Attributes:
        ok: no problem found.
        problems: a subset of :data:`PROBLEMS`, in that order.
        measures: ``width``, ``height`` (stored), ``brightness`` (mean luma 0-255), ``sharpness`` (variance of the
            Laplacian at :data:`QUALITY_SIDE`).
    """

    ok: bool
    problems: tuple[str, ...]
    measures: dict = field(default_factory=dict)


@dataclass(frozen=True)
class StoredImage:
    """The picture as it is stored: a clean JPEG, and what it took to make it."""

    data: bytes
    content_type: str
    width: int
    height: int
    source_format: str
    source_bytes: int
    ssim: float
    quality: QualityReport
    timings_ms: dict


# --- the cheap pre-check ----------------------------------------------------------------------------------------


def sniff(data: bytes) -> str | None:
    """The accepted format the magic bytes announce (``JPEG``, ``PNG``, ``HEIF``, ``WEBP``), else ``None``."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp" and _is_heif(data):
        return "HEIF"
    return None


def _is_heif(data: bytes) -> bool:
    """An ISO BMFF ``ftyp`` box whose brands say HEIF (``mif1`` alone is also AVIF's brand: HEVC must be named)."""
    size = struct.unpack(">I", data[:4])[0]
    if size < 16 or size > min(len(data), 4096):
        return False
    major = data[8:12]
    compatible = {data[i : i + 4] for i in range(16, size - 3, 4)}
    brands = {major} | compatible
    if b"avif" in brands or b"avis" in brands:
        return bool(brands & _HEIC_BRANDS)
    return bool(brands & _HEIF_BRANDS)


def upload_caps(config) -> dict:
    """The caps in an app's settings, as keyword arguments of :func:`check_upload`, :func:`prepare_upload` and
    :func:`process` (which also takes ``max_decode_bytes``)."""
    return {"max_bytes": config["IMAGE_MAX_BYTES"], "max_pixels": config["IMAGE_MAX_PIXELS"],
            "max_pixels_per_byte": config["IMAGE_MAX_PIXELS_PER_BYTE"]}  # fmt: skip


def check_upload(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS,
                 max_pixels_per_byte: int = DEFAULT_MAX_PIXELS_PER_BYTE) -> str:  # fmt: skip
    """Cheap pre-check before storing anything: type, byte cap, pixel cap and pixels a byte from the header (nothing
    is decoded).

    Args:
        data: the uploaded file.
        max_bytes: the byte cap (``IMAGE_MAX_BYTES``).
        max_pixels: the pixel cap (``IMAGE_MAX_PIXELS``).
        max_pixels_per_byte: the decompression-bomb ratio (``IMAGE_MAX_PIXELS_PER_BYTE``), for pictures of more
            than :data:`RATIO_FREE_PIXELS`.

    Returns:
        ``JPEG``, ``PNG``, ``HEIF`` or ``WEBP``.

    Raises:
        ImageRejected: ``unsupported_type``, ``too_large``, ``too_many_pixels``, ``too_compressed`` or
            ``unreadable`` (a broken header).
    """
    with _open(data, max_bytes=max_bytes, max_pixels=max_pixels, max_pixels_per_byte=max_pixels_per_byte) as image:
        return _format_name(image)


@dataclass(frozen=True)
class Upload:
    """An upload as a web request may store it: checked by its header, metadata out, not one pixel decoded."""

    data: bytes
    source_format: str
    width: int
    height: int
    source_bytes: int


def prepare_upload(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS,
                   max_pixels_per_byte: int = DEFAULT_MAX_PIXELS_PER_BYTE) -> Upload:  # fmt: skip
    """All a web request does with a photo: :func:`check_upload`, then EXIF (with GPS), XMP, ICC and comments taken
    out of the container losslessly (:mod:`app.services.image_metadata`), the orientation kept. Time and memory
    follow the file's size, never its pixel count; the worker decodes it later (:func:`process`).

    Raises:
        ImageRejected: as :func:`check_upload`; ``unreadable`` when the container is too damaged to strip.
    """
    with _open(data, max_bytes=max_bytes, max_pixels=max_pixels, max_pixels_per_byte=max_pixels_per_byte) as image:
        kind, (width, height) = _format_name(image), image.size
    try:
        clean = image_metadata.strip(data, kind)
    except image_metadata.MetadataError:
        raise ImageRejected("unreadable", f"the {kind} file's structure is damaged") from None
    return Upload(data=clean, source_format=kind, width=width, height=height, source_bytes=len(data))


def _open(data: bytes, *, max_bytes: int, max_pixels: int, max_pixels_per_byte: int) -> Image.Image:
    """Open lazily (header only) after the byte and type checks, and enforce the pixel cap and the ratio."""
    if not data:
        raise ImageRejected("unreadable", "the file is empty")
    if len(data) > max_bytes:
        raise ImageRejected("too_large", f"the file has {len(data)} bytes; the limit is {max_bytes}")
    kind = sniff(data)
    if kind is None:
        raise ImageRejected("unsupported_type", "the file is not a JPEG, PNG, HEIC/HEIF or WebP image")
    if max_pixels > (Image.MAX_IMAGE_PIXELS or 0):
        Image.MAX_IMAGE_PIXELS = max_pixels  # only ever raised, to the configured cap; the check below is per call
    try:
        image = Image.open(io.BytesIO(data), formats=[kind])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected("too_many_pixels", _pixels_message(_bomb_pixels(exc), max_pixels)) from None
    except MemoryError:
        raise
    except Exception:  # any decoder failure on untrusted bytes means the file cannot be read
        raise ImageRejected("unreadable", f"the {kind} file cannot be read") from None
    pixels = image.width * image.height
    if pixels > max_pixels:
        image.close()
        raise ImageRejected("too_many_pixels", _pixels_message(pixels, max_pixels))
    if pixels == 0:
        image.close()
        raise ImageRejected("unreadable", f"the {kind} file has no pixels")
    if pixels > RATIO_FREE_PIXELS and pixels > max_pixels_per_byte * len(data):
        image.close()
        raise ImageRejected("too_compressed", f"the image has {pixels} pixels in {len(data)} bytes, "
                                              f"{pixels // len(data)} a byte; the limit is {max_pixels_per_byte} "
                                              "(a likely decompression bomb)")  # fmt: skip
    return image


def _bomb_pixels(exc: Exception) -> int | None:
    """The pixel count in Pillow's refusal ("Image size (100000000 pixels) exceeds limit of ..."), for the message."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    return int(found.group(1)) if found else None


def _pixels_message(pixels: int | None, max_pixels: int) -> str:
    if pixels is None:
        return f"the image has more pixels than the limit of {max_pixels}"
    return f"the image has {pixels} pixels; the limit is {max_pixels}"


def _format_name(image: Image.Image) -> str:
    # A phone JPEG carrying an MPF index (a depth map, a preview) opens as MPO; it is still a JPEG.
    return "JPEG" if image.format in ("JPEG", "MPO") else str(image.format)


# --- decode, orient, strip, re-encode -------------------------------------------------------------------------


def process(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS,
            max_pixels_per_byte: int = DEFAULT_MAX_PIXELS_PER_BYTE,
            max_decode_bytes: int = DEFAULT_DECODE_MAX_BYTES) -> StoredImage:  # fmt: skip
    """Make the stored copy of an upload: oriented, without metadata, at most 2 MB, SSIM at least 0.85. The worker's
    job (the inference queue), never a web request's: it decodes the picture.

    Args:
        data: the uploaded file.
        max_bytes: the byte cap (``IMAGE_MAX_BYTES``).
        max_pixels: the pixel cap (``IMAGE_MAX_PIXELS``).
        max_pixels_per_byte: the decompression-bomb ratio (``IMAGE_MAX_PIXELS_PER_BYTE``).
        max_decode_bytes: the memory budget of the decode (``IMAGE_DECODE_MAX_BYTES``), against
            :func:`decode_cost`.

    Returns:
        StoredImage: the JPEG and its measures; ``quality`` says whether a retake is needed.

    Raises:
        ImageRejected: as :func:`check_upload`; ``too_large_to_decode`` over the memory budget (or when the
            decode runs out of memory); ``unreadable`` when the pixels cannot be decoded.
    """
    started = time.perf_counter()
    with _open(data, max_bytes=max_bytes, max_pixels=max_pixels, max_pixels_per_byte=max_pixels_per_byte) as image:
        source_format = _format_name(image)
        full_size = image.size
        if source_format == "JPEG":
            # libjpeg's scaled IDCT: decoded at 1/2 to 1/8 of the size, for a fraction of the time and memory.
            image.draft("RGB", _fit(image.size, REDUCE_MIN_SIDE))
        cost = decode_cost(image, full_size)
        if cost > max_decode_bytes:
            raise ImageRejected("too_large_to_decode", f"decoding the image would take about {cost >> 20} MiB; the "
                                                       f"limit is {max_decode_bytes >> 20} MiB")  # fmt: skip
        try:
            picture = _decode(image)
        except MemoryError:
            raise ImageRejected("too_large_to_decode", "the image did not fit in memory when decoded") from None
        except Exception:  # as in _open: Pillow and libheif raise many types on damaged data
            raise ImageRejected("unreadable", f"the {source_format} image data is damaged or incomplete") from None
    decoded = time.perf_counter()
    encoded, ssim_value, picture = _encode(picture)
    done_encoding = time.perf_counter()
    report = assess(picture)
    finished = time.perf_counter()
    return StoredImage(
        data=encoded,
        content_type=CONTENT_TYPE,
        width=picture.width,
        height=picture.height,
        source_format=source_format,
        source_bytes=len(data),
        ssim=ssim_value,
        quality=report,
        timings_ms={
            "decode": _ms(started, decoded),
            "encode": _ms(decoded, done_encoding),
            "quality": _ms(done_encoding, finished),
            "total": _ms(started, finished),
        },
    )


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000, 1)


# Pillow keeps "1", "L" and "P" pictures in 1 byte a pixel, 16-bit grey in 2, every other mode in 4 (RGB too).
_PIXEL_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
# Converted and made smaller a strip of about this many pixels at a time: the full-size picture is never copied.
STRIP_PIXELS = 1 << 20


# Encoding the stored copy, its SSIM and the quality measures: never more than this, since the picture is at most
# STORED_MAX_SIDE by then (measured: ~35 MB at 2048 x 1536).
STORED_WORK_BYTES = 48 << 20


def decode_cost(image: Image.Image, full_size: tuple[int, int] | None = None) -> int:
    """The memory, in bytes, that :func:`process` takes at its peak for ``image``, estimated from the header alone
    (opened, not loaded; a JPEG after its ``draft``).

    What is counted (measured with ``/proc/self/status`` VmHWM on Pillow 13 and pillow-heif 1.8; the estimate is
    above the measure for every format): Pillow's decoded picture; what the format's decoder holds while it decodes
    (a progressive JPEG's coefficients at full size, 2 bytes each; libheif's planes; the bytes Pillow copies a WebP
    frame from) and after it (WebP's canvas, twice); the smaller copy and one strip on its way there; and
    :data:`STORED_WORK_BYTES` for the rest.

    Args:
        image: the opened picture.
        full_size: its size before a JPEG ``draft`` (default: ``image.size``).
    """
    width, height = image.size
    pixels = width * height
    kind = _format_name(image)
    during, after = 0, 0  # the decoder's own buffers, while it decodes and once it has
    if kind == "JPEG" and image.info.get("progressive"):
        full_width, full_height = full_size or image.size
        layers = getattr(image, "layer", None) or [("", 1, 1, 0)] * 3
        most_h, most_v = max(layer[1] for layer in layers), max(layer[2] for layer in layers)
        during = 2 * sum(full_width * full_height * layer[1] * layer[2] // (most_h * most_v) for layer in layers)
    elif kind == "WEBP":
        during, after = 4 * pixels, 8 * pixels
    elif kind == "HEIF":
        during = (4 if (image.info.get("bit_depth") or 8) <= 8 else 8) * pixels
    factor = max(1, max(width, height) // REDUCE_MIN_SIDE)
    smaller = 4 * (-(-width // factor)) * (-(-height // factor))
    strip = 16 * min(pixels, STRIP_PIXELS + width * factor)
    return pixels * _PIXEL_BYTES.get(image.mode, 4) + after + max(during, smaller + strip) + STORED_WORK_BYTES


# EXIF orientation → the transposition that makes the picture upright (as ImageOps.exif_transpose).
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}  # fmt: skip
ORIENTATION = 0x0112


def _decode(image: Image.Image) -> Image.Image:
    """Pixels only, upright, RGB, at most :data:`STORED_MAX_SIDE` on the long side.

    A large picture is made smaller by a whole factor while its long side stays at least :data:`REDUCE_MIN_SIDE`
    (averaging factor x factor blocks), converted to RGB and reduced a strip at a time, and turned upright only
    then: the one full-size picture in memory is the decoder's.
    """
    image.load()
    orientation = image.getexif().get(ORIENTATION)
    picture = _reduced_rgb(image)
    if orientation in _UPRIGHT:
        picture = picture.transpose(_UPRIGHT[orientation])
    target = _fit(picture.size, STORED_MAX_SIDE)
    if target != picture.size:
        picture = picture.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
    picture.info.clear()  # ICC, EXIF, XMP and comments ride in info; the JPEG encoder copies some of them from it
    return picture


def _reduced_rgb(image: Image.Image) -> Image.Image:
    """``image`` in RGB (on white where transparent), made smaller by a whole factor, a strip at a time."""
    width, height = image.size
    factor = max(1, max(width, height) // REDUCE_MIN_SIDE)
    rows = max(factor, STRIP_PIXELS // width // factor * factor)  # whole blocks: strips average as the picture does
    picture = Image.new("RGB", (-(-width // factor), -(-height // factor)))
    for top in range(0, height, rows):
        strip = _to_rgb(image.crop((0, top, width, min(top + rows, height))))
        picture.paste(strip.reduce(factor) if factor > 1 else strip, (0, top // factor))
    return picture


def _fit(size: tuple[int, int], side: int) -> tuple[int, int]:
    width, height = size
    scale = min(1.0, side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB on white: a transparent PNG or WebP would otherwise turn black where it is transparent."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.point(lambda value: value / 257).convert("L")  # 16-bit grey to 8-bit before RGB
    return image.convert("RGB") if image.mode != "RGB" else image


def _encode(picture: Image.Image) -> tuple[bytes, float, Image.Image]:
    """The first JPEG (largest size, then highest quality) within :data:`STORED_MAX_BYTES` and :data:`MIN_SSIM`,
    its SSIM, and the picture it encodes (``picture`` itself, or a smaller copy when it had to shrink)."""
    candidate = picture
    best: tuple[bytes, float, Image.Image] | None = None
    while True:
        reference = _luma(candidate)
        for quality in JPEG_QUALITIES:
            data = _jpeg(candidate, quality)
            if len(data) > STORED_MAX_BYTES:
                continue
            with Image.open(io.BytesIO(data), formats=["JPEG"]) as stored:
                value = ssim(reference, _luma(stored))
            if value >= MIN_SSIM:
                return data, value, candidate
            if best is None or value > best[1]:
                best = (data, value, candidate)
            break  # a lower quality only lowers SSIM: try a smaller picture at the best quality instead
        if max(candidate.size) <= QUALITY_SIDE:
            # Reached only by pathological content (pure noise); the best candidate seen is stored.
            if best is None:
                best = (_jpeg(candidate, JPEG_QUALITIES[-1]), 0.0, candidate)
            return best
        candidate = candidate.resize(_fit(candidate.size, int(max(candidate.size) * 0.75)), Image.Resampling.LANCZOS)


def _jpeg(picture: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    # exif=b"" and icc_profile=None: nothing from the source may ride along; 4:2:0 as every camera does.
    picture.save(buffer, "JPEG", quality=quality, optimize=True, subsampling="4:2:0", exif=b"", icc_profile=None)
    return buffer.getvalue()


# --- SSIM ----------------------------------------------------------------------------------------------------

SSIM_WINDOW = 7  # the uniform 7x7 window of scikit-image's structural_similarity defaults
_K1, _K2, _DATA_RANGE = 0.01, 0.03, 255.0


def _luma(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"))


SSIM_BAND_PIXELS = 1 << 18  # the SSIM map is computed this many values at a time: a few MB, not ~190 MB at 3 MP


def ssim(reference: np.ndarray, test: np.ndarray) -> float:
    """Mean structural similarity (Wang et al. 2004) of two 8-bit grey images of equal shape.

    Uniform 7x7 window, sample covariance, K1 = 0.01, K2 = 0.03, border of 3 pixels left out: the same definition as
    ``skimage.metrics.structural_similarity(reference, test, data_range=255)`` (equal to about 1e-7). Window sums
    are exact integer running sums; only the final formula is in float32, which halves the time on a 3-MP picture.
    The map is computed in bands of rows (each with the window's 6 rows of overlap), so memory stays a few MB.
    """
    if reference.shape != test.shape:
        raise ValueError(f"images differ in shape: {reference.shape} and {test.shape}")
    window = SSIM_WINDOW
    if min(reference.shape) < window:
        # Narrower than one window (a strip a few pixels wide): repeat the edge pixels up to the window's size.
        pad = [(0, max(0, window - side)) for side in reference.shape]
        reference, test = np.pad(reference, pad, mode="edge"), np.pad(test, pad, mode="edge")
    height, width = reference.shape
    rows = max(1, SSIM_BAND_PIXELS // width)  # map rows a band
    last = height - window + 1  # map rows in all
    total, count = 0.0, 0
    for top in range(0, last, rows):
        bottom = min(top + rows, last)
        values = _ssim_map(reference[top : bottom + window - 1], test[top : bottom + window - 1])
        total += float(values.sum(dtype=np.float64))
        count += values.size
    return total / count


def _ssim_map(reference: np.ndarray, test: np.ndarray) -> np.ndarray:
    window = SSIM_WINDOW
    # int32 running sums of squares stay exact while a column (or a row of window-high strips) sums below 2**31.
    height, width = reference.shape
    exact32 = max(height, width * window) * 255 * 255 < 2**31
    dtype = np.int32 if exact32 else np.int64
    x, y = reference.astype(dtype), test.astype(dtype)
    count = window * window

    def sums(values: np.ndarray) -> np.ndarray:
        return _window_sums(values, window).astype(np.float32)

    sum_x, sum_y = sums(x), sums(y)
    mean_x, mean_y = sum_x / count, sum_y / count
    var_x = (sums(x * x) - sum_x * mean_x) / (count - 1)
    var_y = (sums(y * y) - sum_y * mean_y) / (count - 1)
    cov_xy = (sums(x * y) - sum_x * mean_y) / (count - 1)
    c1, c2 = np.float32((_K1 * _DATA_RANGE) ** 2), np.float32((_K2 * _DATA_RANGE) ** 2)
    numerator = (2 * mean_x * mean_y + c1) * (2 * cov_xy + c2)
    denominator = (mean_x * mean_x + mean_y * mean_y + c1) * (var_x + var_y + c2)
    return numerator / denominator


def _window_sums(values: np.ndarray, window: int) -> np.ndarray:
    """Sum over every full ``window`` x ``window`` square (the valid part only), by running sums per axis."""
    running = np.cumsum(values, axis=0, dtype=values.dtype)
    rows = running[window - 1 :].copy()
    rows[1:] -= running[:-window]
    running = np.cumsum(rows, axis=1, dtype=values.dtype)
    sums = running[:, window - 1 :].copy()
    sums[:, 1:] -= running[:, :-window]
    return sums


# --- usability -------------------------------------------------------------------------------------------------


def assess(picture: Image.Image) -> QualityReport:
    """Too small, too dark, too bright or blurred: the findings that make the chat ask for a retake."""
    grey = picture.convert("L")
    small = grey.resize(_fit(grey.size, QUALITY_SIDE), Image.Resampling.BOX) if max(grey.size) > QUALITY_SIDE else grey
    luma = np.asarray(small, dtype=np.float64)
    brightness = float(luma.mean())
    sharpness = laplacian_variance(luma)
    problems = []
    if min(picture.size) < MIN_SHORT_SIDE:
        problems.append("too_small")
    if brightness < TOO_DARK_MEAN:
        problems.append("too_dark")
    if brightness > TOO_BRIGHT_MEAN:
        problems.append("too_bright")
    if sharpness < BLUR_MIN_SHARPNESS:
        problems.append("blurred")
    measures = {
        "width": picture.width,
        "height": picture.height,
        "brightness": round(brightness, 1),
        "sharpness": round(sharpness, 1),
    }
    return QualityReport(ok=not problems, problems=tuple(problems), measures=measures)


def laplacian_variance(luma: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian over the interior: low for a picture without sharp edges."""
    if min(luma.shape) < 3:
        return 0.0
    centre = luma[1:-1, 1:-1]
    laplacian = luma[:-2, 1:-1] + luma[2:, 1:-1] + luma[1:-1, :-2] + luma[1:-1, 2:] - 4 * centre
    return float(laplacian.var())
