"""Metadata out of uploads without decoding (``app.services.image_metadata``), on real files built here: EXIF with
GPS, XMP, ICC and comments gone from every accepted format, the orientation kept, the pixels untouched, and a
damaged container refused, never a crash."""

from __future__ import annotations

import io
import random
import struct

import numpy as np
import pytest
from PIL import Image, ImageCms

from app.services import image_metadata
from app.services.image_metadata import MetadataError, strip
from tests.photos import GPS_IFD, ORIENTATION, encode, gps_exif, jpeg_segments, sample_photo, two_halves

XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description exif:GPSLatitude="24,39.48S"/></rdf:RDF></x:xmpmeta>')  # fmt: skip
APP1, APP2, APP14, COM = 0xE1, 0xE2, 0xEE, 0xFE


def _icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as picture:
        return np.asarray(picture)


METADATA = {
    "JPEG": {"exif": gps_exif(6).tobytes(), "xmp": XMP, "icc_profile": _icc(), "comment": b"taken at the clinic"},
    "PNG": {"exif": gps_exif(6).tobytes(), "icc_profile": _icc(), "pnginfo": None},
    "WEBP": {"exif": gps_exif(6).tobytes(), "xmp": XMP, "icc_profile": _icc(), "quality": 90},
    "HEIF": {"exif": gps_exif(6).tobytes(), "xmp": XMP, "quality": 90},
}


def _source(fmt: str) -> bytes:
    params = dict(METADATA[fmt])
    if fmt == "PNG":
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_text("Comment", "GPSLatitude 24,39.48S")
        info.add_itxt("XML:com.adobe.xmp", XMP.decode())
        params["pnginfo"] = info
    return encode(sample_photo(320, 240), fmt, **params)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "HEIF"])
def test_gps_xmp_icc_and_comments_go_the_orientation_and_every_pixel_stay(fmt):
    source = _source(fmt)
    assert b"PhoneMaker" in source and b"GPSLatitude" in source  # the source really carries them

    stripped = strip(source, fmt)

    for secret in (b"PhoneMaker", b"CameraApp", b"GPSLatitude", b"xmpmeta", b"taken at the clinic"):
        assert secret not in stripped, secret
    with Image.open(io.BytesIO(stripped)) as picture:
        exif = picture.getexif()
        assert not exif.get_ifd(GPS_IFD) and 0x010F not in exif  # no GPS, no camera make
        assert not picture.info.get("icc_profile")
        if fmt != "HEIF":  # HEIF keeps its rotation in the container (irot), not in EXIF
            assert dict(exif) == {ORIENTATION: 6}
    assert np.array_equal(_pixels(stripped), _pixels(source))  # lossless: the compressed data is copied


def test_a_jpeg_without_orientation_gets_no_exif_at_all():
    source = encode(two_halves(), "JPEG", exif=gps_exif(1).tobytes(), comment=b"hello")
    markers = [marker for marker, _ in jpeg_segments(strip(source, "JPEG"))]
    assert APP1 not in markers and COM not in markers and 0xE0 not in markers  # not even JFIF's APP0


def test_an_orientation_only_in_xmp_is_kept_as_exif():
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description tiff:Orientation="8"/></x:xmpmeta>'
    stripped = strip(encode(two_halves(), "JPEG", xmp=xmp), "JPEG")
    assert dict(Image.open(io.BytesIO(stripped)).getexif()) == {ORIENTATION: 8}
    assert b"xmpmeta" not in stripped


def test_only_the_first_picture_of_a_multi_picture_jpeg_and_nothing_after_it_is_kept():
    first, second = Image.new("RGB", (600, 400), (120, 80, 60)), Image.new("RGB", (600, 400), (20, 80, 160))
    source = encode(first, "MPO", save_all=True, append_images=[second], exif=gps_exif(3).tobytes())
    source += b"MotionPhoto_Data: a video of the clinic"  # a phone's trailer after the pictures

    stripped = strip(source, "JPEG")

    assert APP2 not in [marker for marker, _ in jpeg_segments(stripped)]  # the MPF index is gone
    assert stripped.endswith(b"\xff\xd9") and b"MotionPhoto" not in stripped
    with Image.open(io.BytesIO(stripped)) as picture:
        assert picture.format == "JPEG" and picture.getexif()[ORIENTATION] == 3
        assert np.array_equal(np.asarray(picture), _pixels(encode(first, "JPEG")))


@pytest.mark.parametrize(
    ("picture", "params"),
    [
        (sample_photo(400, 300), {"progressive": True, "quality": 90}),
        (sample_photo(400, 300).convert("CMYK"), {"quality": 90}),  # Adobe APP14: the decoder needs its transform
        (sample_photo(400, 300).convert("L"), {"quality": 90}),
    ],
    ids=["progressive", "cmyk", "grey"],
)
def test_other_jpeg_kinds_decode_to_the_same_pixels(picture, params):
    source = encode(picture, "JPEG", exif=gps_exif(6).tobytes(), **params)
    stripped = strip(source, "JPEG")
    assert np.array_equal(_pixels(stripped), _pixels(source))
    if picture.mode == "CMYK":
        assert APP14 in [marker for marker, _ in jpeg_segments(stripped)]


@pytest.mark.parametrize("mode", ["RGBA", "P", "LA"])
def test_png_transparency_and_palettes_stay(mode):
    picture = sample_photo(200, 150).convert("RGBA")
    picture.putalpha(128)
    picture = picture.convert(mode) if mode != "P" else picture.convert("P")
    params = {"transparency": 0} if mode == "P" else {}
    source = encode(picture, "PNG", exif=gps_exif(6).tobytes(), **params)
    stripped = strip(source, "PNG")
    assert np.array_equal(_pixels(stripped), _pixels(source))
    assert Image.open(io.BytesIO(stripped)).info.get("transparency") == Image.open(io.BytesIO(source)).info.get(
        "transparency"
    )


def test_the_minimal_exif_reads_back():
    for orientation in range(1, 9):
        assert image_metadata.orientation_of(image_metadata.minimal_exif(orientation)) == orientation
        exif = Image.Exif()
        exif.load(b"Exif\x00\x00" + image_metadata.minimal_exif(orientation))
        assert dict(exif) == {ORIENTATION: orientation}


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "HEIF"])
def test_a_damaged_container_is_refused_or_stripped_never_another_error(fmt):
    rng = random.Random(fmt)
    source = _source(fmt)
    outcomes = set()
    for _ in range(200):
        damaged = bytearray(source)
        for _ in range(rng.randint(1, 8)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        if rng.random() < 0.3:
            damaged = damaged[: rng.randrange(16, len(damaged))]
        try:
            strip(bytes(damaged), fmt)
        except MetadataError:
            outcomes.add("refused")
        else:
            outcomes.add("stripped")
    assert outcomes == {"refused", "stripped"}


def test_a_heif_exif_item_is_blanked_in_place():
    source = _source("HEIF")
    stripped = strip(source, "HEIF")
    assert len(stripped) == len(source)  # offsets into the file stay valid
    changed = [i for i, (a, b) in enumerate(zip(source, stripped, strict=True)) if a != b]
    assert changed and b"PhoneMaker" in source[min(changed) : max(changed) + 1]


def test_a_truncated_png_is_refused():
    source = encode(sample_photo(64, 48), "PNG")
    with pytest.raises(MetadataError):
        strip(source[: len(source) - 20], "PNG")
    with pytest.raises(MetadataError):
        strip(source[:8] + struct.pack(">I", 10**6) + b"IHDR", "PNG")
