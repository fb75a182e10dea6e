"""The image pipeline (``app.services.images``) on real files built here: every accepted format, the refusals with
their codes and HTTP statuses, the decompression bomb, metadata stripping and orientation, the 2 MB / SSIM
guarantee, and the usability findings.
"""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageFilter
from skimage.metrics import structural_similarity

from app.services import images
from app.services.images import ImageRejected, check_upload, process, ssim
from tests.photos import (
    GPS_IFD,
    checkerboard,
    encode,
    gps_exif,
    jpeg_segments,
    png_bomb,
    sample_photo,
    solid_png,
    two_halves,
)

APP1, APP2, COM = 0xE1, 0xE2, 0xFE
RED, BLUE = (255, 0, 0), (0, 0, 255)


def _near(pixel, colour, tolerance=40):
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


def _stored(stored):
    return Image.open(io.BytesIO(stored.data))


# --- types ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "params", "expected"),
    [
        ("JPEG", {"quality": 90}, "JPEG"),
        ("PNG", {}, "PNG"),
        ("WEBP", {"quality": 90}, "WEBP"),
        ("HEIF", {"quality": 90}, "HEIF"),
    ],
)
def test_accepted_formats_are_named_and_stored_as_jpeg(fmt, params, expected):
    data = encode(sample_photo(640, 480), fmt, **params)

    assert check_upload(data) == expected
    stored = process(data)

    assert stored.source_format == expected
    assert stored.content_type == "image/jpeg"
    assert stored.data[:3] == b"\xff\xd8\xff"
    assert (stored.width, stored.height) == (640, 480) == _stored(stored).size
    assert stored.source_bytes == len(data)
    assert stored.ssim >= images.MIN_SSIM
    assert set(stored.timings_ms) >= {"decode", "encode", "quality"}


def _pdf() -> bytes:
    return b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(encode(two_halves(), "GIF"), id="gif"),
        pytest.param(encode(two_halves(), "BMP"), id="bmp"),
        pytest.param(encode(two_halves(), "TIFF"), id="tiff"),
        pytest.param(_pdf(), id="pdf"),
        pytest.param(b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', id="svg"),
        pytest.param(b"hello, this is a text file\n", id="text"),
        pytest.param(b"%!PS-Adobe-3.0 EPSF-3.0\n", id="eps"),
        # an AVIF container: ISO BMFF like HEIF, but not a format we accept
        pytest.param(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + b"\x00" * 64, id="avif"),
    ],
)
def test_anything_else_is_an_unsupported_type(data):
    with pytest.raises(ImageRejected) as caught:
        check_upload(data)
    assert (caught.value.code, caught.value.status) == ("unsupported_type", 415)
    assert "JPEG, PNG, HEIC/HEIF or WebP" in caught.value.message
    with pytest.raises(ImageRejected):
        process(data)


def test_the_type_comes_from_the_bytes_not_the_first_letters():
    # A JPEG signature followed by garbage: sniffed as JPEG, then refused as unreadable rather than decoded.
    with pytest.raises(ImageRejected) as caught:
        process(b"\xff\xd8\xff" + b"\x00" * 100)
    assert (caught.value.code, caught.value.status) == ("unreadable", 422)


def test_empty_file_is_unreadable():
    with pytest.raises(ImageRejected) as caught:
        check_upload(b"")
    assert caught.value.code == "unreadable"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "HEIF"])
def test_a_truncated_image_is_unreadable_when_processed(fmt):
    data = encode(sample_photo(640, 480), fmt)
    damaged = data[: len(data) // 2]
    if fmt != "WEBP":  # libwebp's container parser already sees the missing half; the others read the header only
        assert check_upload(damaged) == fmt
    with pytest.raises(ImageRejected) as caught:
        process(damaged)
    assert (caught.value.code, caught.value.status) == ("unreadable", 422)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about the damaged EXIF it skips
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "HEIF"])
def test_damaged_files_give_image_rejected_or_a_stored_picture_never_another_error(fmt):
    rng = random.Random(fmt)
    exif = {"exif": gps_exif(6).tobytes()} if fmt in ("JPEG", "HEIF") else {}
    data = encode(sample_photo(160, 120), fmt, **exif)
    outcomes = set()
    for _ in range(60):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 12)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        if rng.random() < 0.3:
            damaged = damaged[: rng.randrange(8, len(damaged))]
        try:
            stored = process(bytes(damaged))
        except ImageRejected as exc:
            outcomes.add(exc.code)
        else:
            assert stored.data[:3] == b"\xff\xd8\xff"
            outcomes.add("stored")
    assert outcomes <= {"stored", "unreadable", "unsupported_type", "too_many_pixels", "too_compressed"}


# --- caps -------------------------------------------------------------------------------------------------------


def test_bytes_over_the_cap_are_too_large_and_the_message_names_the_limit():
    data = encode(sample_photo(320, 240), "JPEG")
    with pytest.raises(ImageRejected) as caught:
        check_upload(data, max_bytes=len(data) - 1)
    assert (caught.value.code, caught.value.status) == ("too_large", 413)
    assert caught.value.message == f"the file has {len(data)} bytes; the limit is {len(data) - 1}"
    assert check_upload(data, max_bytes=len(data)) == "JPEG"


def test_the_default_byte_cap_is_15_mb():
    assert images.DEFAULT_MAX_BYTES == 15 * 1024 * 1024
    with pytest.raises(ImageRejected) as caught:
        check_upload(b"\xff\xd8\xff" + b"\x00" * images.DEFAULT_MAX_BYTES)
    assert caught.value.code == "too_large"


def test_a_100_megapixel_png_bomb_is_refused_from_its_header():
    bomb = png_bomb()
    assert len(bomb) < 100_000  # a small file ...
    for call in (check_upload, process):
        with pytest.raises(ImageRejected) as caught:
            call(bomb)
        assert (caught.value.code, caught.value.status) == ("too_many_pixels", 413)
        assert caught.value.message == "the image has 100000000 pixels; the limit is 40000000"


def test_pixels_between_the_cap_and_twice_it_are_refused_not_warned_about():
    # Pillow only warns between MAX_IMAGE_PIXELS and twice it; 48 MP must still be refused.
    with pytest.raises(ImageRejected) as caught:
        process(png_bomb(8000, 6000))
    assert caught.value.code == "too_many_pixels"
    assert "48000000 pixels" in caught.value.message


def test_the_pixel_cap_is_a_parameter():
    data = encode(sample_photo(640, 480), "JPEG")
    with pytest.raises(ImageRejected) as caught:
        check_upload(data, max_pixels=640 * 480 - 1)
    assert caught.value.message == f"the image has {640 * 480} pixels; the limit is {640 * 480 - 1}"
    assert check_upload(data, max_pixels=640 * 480) == "JPEG"


def test_more_pixels_a_byte_than_a_photo_has_is_too_compressed_above_4_megapixels():
    bomb = solid_png(3000, 2000, (10, 200, 30))  # 6 MP of one colour in a few kB
    for call in (check_upload, process, images.prepare_upload):
        with pytest.raises(ImageRejected) as caught:
            call(bomb)
        assert (caught.value.code, caught.value.status) == ("too_compressed", 413)
        assert caught.value.message.startswith(f"the image has 6000000 pixels in {len(bomb)} bytes")
        assert "the limit is 100" in caught.value.message
    assert check_upload(bomb, max_pixels_per_byte=6_000_000 // len(bomb) + 1) == "PNG"
    small = solid_png(2000, 2000, (10, 200, 30))  # 4 MP: decoding it costs ~16 MB whatever its file size
    assert check_upload(small) == "PNG" and process(small).width == 2000


def test_a_163_kb_png_of_40_megapixels_is_too_compressed():
    with pytest.raises(ImageRejected) as caught:
        check_upload(solid_png())
    assert caught.value.code == "too_compressed" and "40000000 pixels" in caught.value.message


def test_a_photo_over_the_decode_budget_is_refused_before_decoding(monkeypatch):
    data = encode(sample_photo(800, 600), "PNG")
    with Image.open(io.BytesIO(data)) as opened:
        cost = images.decode_cost(opened)
    decoded = []
    monkeypatch.setattr(images, "_decode", lambda image: decoded.append(image) or Image.new("RGB", (800, 600)))
    with pytest.raises(ImageRejected) as caught:
        process(data, max_decode_bytes=cost - 1)
    assert (caught.value.code, caught.value.status) == ("too_large_to_decode", 413)
    assert caught.value.message == f"decoding the image would take about {cost >> 20} MiB; the limit is " \
                                   f"{(cost - 1) >> 20} MiB"  # fmt: skip
    assert decoded == []
    process(data, max_decode_bytes=cost)
    assert len(decoded) == 1


def test_running_out_of_memory_while_decoding_is_too_large_to_decode(monkeypatch):
    def out_of_memory(image):
        raise MemoryError

    monkeypatch.setattr(images, "_reduced_rgb", out_of_memory)
    with pytest.raises(ImageRejected) as caught:
        process(encode(sample_photo(320, 240), "PNG"))
    assert caught.value.code == "too_large_to_decode"


def _cost(data: bytes) -> int:
    with Image.open(io.BytesIO(data)) as opened:
        full = opened.size
        if opened.format == "JPEG":
            opened.draft("RGB", images._fit(opened.size, images.REDUCE_MIN_SIDE))
        return images.decode_cost(opened, full)


def test_the_decode_cost_counts_what_each_decoder_holds():
    picture = sample_photo(1600, 1200)
    png, grey = _cost(encode(picture, "PNG", compress_level=1)), _cost(encode(picture.convert("L"), "PNG"))
    webp, heif = _cost(encode(picture, "WEBP", quality=60)), _cost(encode(picture, "HEIF", quality=40))
    # 1 byte a pixel < 4 (+ libheif's planes, freed before the strips start) < 4 + WebP's two canvases
    assert grey < png <= heif < webp
    assert png >= 4 * 1600 * 1200 + images.STORED_WORK_BYTES
    large = Image.new("RGB", (4000, 3000), (90, 60, 50))
    baseline = _cost(encode(large, "JPEG", quality=80))
    progressive = _cost(encode(large, "JPEG", quality=80, progressive=True))
    assert baseline < _cost(encode(large, "PNG", compress_level=1))  # a JPEG is decoded at half size here
    assert progressive > baseline  # but a progressive one keeps every coefficient at full size meanwhile


def test_prepare_upload_strips_without_decoding():
    source = encode(sample_photo(640, 480), "JPEG", exif=gps_exif(orientation=6).tobytes())
    upload = images.prepare_upload(source)
    assert (upload.source_format, upload.width, upload.height, upload.source_bytes) == ("JPEG", 640, 480, len(source))
    assert b"PhoneMaker" not in upload.data and dict(Image.open(io.BytesIO(upload.data)).getexif()) == {0x0112: 6}
    assert process(upload.data).width == 480  # the worker still turns it upright


def test_a_jpeg_header_claiming_huge_dimensions_is_refused_without_decoding():
    data = bytearray(encode(sample_photo(64, 48, noise=0), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (20_000).to_bytes(2, "big") + (20_000).to_bytes(2, "big")  # height, width
    with pytest.raises(ImageRejected) as caught:
        process(bytes(data))
    assert caught.value.code == "too_many_pixels"


# --- orientation and metadata -------------------------------------------------------------------------------------


def _icc_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def test_jpeg_orientation_is_applied_and_every_piece_of_metadata_is_gone():
    source = encode(two_halves(400, 200), "JPEG", quality=95, exif=gps_exif(orientation=6).tobytes(),
                    icc_profile=_icc_profile(), comment=b"taken at the clinic")  # fmt: skip
    opened = Image.open(io.BytesIO(source))
    assert dict(opened.getexif().get_ifd(GPS_IFD))  # the source really carries GPS, ICC and a comment
    assert "icc_profile" in opened.info and "comment" in opened.info

    stored = process(source)
    picture = _stored(stored)

    # Orientation 6: the camera was turned; displayed upright, the stored left half (red) is on top.
    assert (stored.width, stored.height) == (200, 400) == picture.size
    assert _near(picture.getpixel((100, 20)), RED) and _near(picture.getpixel((100, 380)), BLUE)
    markers = [marker for marker, _ in jpeg_segments(stored.data)]
    assert APP1 not in markers and APP2 not in markers and COM not in markers  # no EXIF / XMP, no ICC, no comment
    assert not picture.getexif()
    assert not {"exif", "icc_profile", "xmp", "comment", "XML:com.adobe.xmp"} & set(picture.info)
    assert b"PhoneMaker" not in stored.data and b"GPS" not in stored.data


def test_xmp_is_stripped():
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description exif:GPSLatitude="24,39.48S"/></rdf:RDF></x:xmpmeta>')  # fmt: skip
    source = encode(two_halves(), "JPEG", xmp=xmp)
    assert b"GPSLatitude" in source
    stored = process(source)
    assert b"GPSLatitude" not in stored.data and b"xmpmeta" not in stored.data


def test_heic_orientation_is_applied_and_gps_is_gone():
    source = encode(two_halves(400, 200), "HEIF", quality=90, exif=gps_exif(orientation=6).tobytes())
    assert check_upload(source) == "HEIF"

    stored = process(source)
    picture = _stored(stored)

    assert picture.size == (200, 400)
    assert _near(picture.getpixel((100, 20)), RED) and _near(picture.getpixel((100, 380)), BLUE)
    assert APP1 not in [marker for marker, _ in jpeg_segments(stored.data)]
    assert not picture.getexif()


@pytest.mark.parametrize(
    ("orientation", "top_left_colour", "size"),
    [(1, RED, (400, 200)), (3, BLUE, (400, 200)), (6, RED, (200, 400)), (8, BLUE, (200, 400))],
)
def test_each_rotation_is_applied(orientation, top_left_colour, size):
    stored = process(encode(two_halves(400, 200), "JPEG", quality=95, exif=gps_exif(orientation).tobytes()))
    picture = _stored(stored)
    assert picture.size == size
    assert _near(picture.getpixel((10, 10)), top_left_colour)


def test_a_multi_picture_phone_jpeg_is_a_jpeg_and_keeps_only_its_first_picture():
    first, second = Image.new("RGB", (600, 400), (120, 80, 60)), Image.new("RGB", (600, 400), (20, 80, 160))
    source = encode(first, "MPO", save_all=True, append_images=[second])  # MPF index in APP2, like phone cameras
    assert Image.open(io.BytesIO(source)).format == "MPO"

    assert check_upload(source) == "JPEG"
    stored = process(source)

    assert stored.source_format == "JPEG"
    assert _near(_stored(stored).getpixel((5, 5)), (120, 80, 60), 8)
    assert [marker for marker, _ in jpeg_segments(stored.data)].count(APP2) == 0


def test_transparency_becomes_white_not_black():
    picture = Image.new("RGBA", (400, 400), (0, 0, 0, 0))
    picture.paste((200, 30, 30, 255), (100, 100, 300, 300))
    stored = _stored(process(encode(picture, "PNG")))
    assert _near(stored.getpixel((10, 10)), (255, 255, 255), 8)
    assert _near(stored.getpixel((200, 200)), (200, 30, 30))


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "I;16"])
def test_other_colour_modes_are_stored_as_rgb(mode):
    picture = sample_photo(400, 300)
    if mode == "I;16":
        converted = Image.fromarray(np.asarray(picture.convert("L"), dtype=np.uint16) * 257)
        source = encode(converted, "PNG")
    elif mode == "CMYK":
        source = encode(picture.convert("CMYK"), "JPEG", quality=95)
    else:
        source = encode(picture.convert(mode), "PNG")
    stored = process(source)
    assert _stored(stored).mode == "RGB"
    assert stored.ssim >= images.MIN_SSIM


# --- size and SSIM --------------------------------------------------------------------------------------------


def test_a_12_megapixel_photo_is_downscaled_to_at_most_2_mb_with_ssim_at_least_085():
    source = encode(sample_photo(4000, 3000), "JPEG", quality=95)
    assert len(source) > images.STORED_MAX_BYTES

    stored = process(source)

    assert (stored.width, stored.height) == (2000, 1500)  # decoded at half scale: long side within 1536..2048
    assert len(stored.data) <= images.STORED_MAX_BYTES
    assert stored.ssim >= images.MIN_SSIM
    # The reported SSIM is the truth: recompute it against the full-size source resized to the stored size.
    reference = Image.open(io.BytesIO(source)).convert("L").resize((2000, 1500), Image.Resampling.LANCZOS)
    measured = structural_similarity(np.asarray(reference), np.asarray(_stored(stored).convert("L")), data_range=255)
    assert measured >= images.MIN_SSIM
    assert abs(measured - stored.ssim) < 0.02


@pytest.mark.parametrize(
    ("fmt", "size", "stored_size"),
    [
        ("PNG", (2600, 1950), (2048, 1536)),  # under twice 1536: one Lanczos resize to 2048
        ("HEIF", (4032, 3024), (2016, 1512)),  # halved by 2x2 averages, nothing more
        ("WEBP", (1000, 6000), (334, 2000)),  # a long strip: 3x3 averages
    ],
)
def test_large_pictures_of_every_format_are_made_smaller(fmt, size, stored_size):
    stored = process(encode(sample_photo(*size), fmt, quality=90))
    assert (stored.width, stored.height) == stored_size == _stored(stored).size
    assert stored.ssim >= images.MIN_SSIM and len(stored.data) <= images.STORED_MAX_BYTES


def test_a_picture_that_will_not_fit_2_mb_at_full_size_is_made_smaller_until_it_does():
    rng = np.random.default_rng(7)
    noise = Image.fromarray(rng.integers(0, 256, (1536, 2048, 3), dtype=np.uint8))  # incompressible
    stored = process(encode(noise, "PNG"))
    assert len(stored.data) <= images.STORED_MAX_BYTES
    assert max(stored.width, stored.height) <= 2048
    assert _stored(stored).size == (stored.width, stored.height)


def test_when_the_best_quality_will_not_fit_the_picture_is_made_smaller(monkeypatch):
    monkeypatch.setattr(images, "STORED_MAX_BYTES", 120_000)  # a cap the full-size photo cannot meet at any quality
    stored = process(encode(sample_photo(2048, 1536), "PNG"))
    assert len(stored.data) <= 120_000
    assert stored.width < 2048 and _stored(stored).size == (stored.width, stored.height)
    assert (stored.quality.measures["width"], stored.quality.measures["height"]) == (stored.width, stored.height)
    assert stored.ssim >= images.MIN_SSIM


def test_a_strip_narrower_than_the_ssim_window_is_stored_and_measured():
    stored = process(encode(sample_photo(3, 900), "PNG"))
    assert (stored.width, stored.height) == (3, 900)
    assert stored.ssim >= images.MIN_SSIM
    assert "too_small" in stored.quality.problems


def test_small_pictures_are_not_upscaled():
    stored = process(encode(sample_photo(300, 200), "JPEG"))
    assert (stored.width, stored.height) == (300, 200)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ssim_matches_scikit_image(seed):
    rng = np.random.default_rng(seed)
    reference = np.asarray(sample_photo(331, 217, seed=seed).convert("L"))
    distorted = np.clip(reference + rng.normal(0, 5 * seed, reference.shape), 0, 255).astype(np.uint8)
    blurred = np.asarray(Image.fromarray(reference).filter(ImageFilter.GaussianBlur(seed)))
    for test in (distorted, blurred, reference):
        assert ssim(reference, test) == pytest.approx(structural_similarity(reference, test, data_range=255), abs=1e-6)
    assert ssim(reference, reference) == pytest.approx(1.0)


def test_ssim_refuses_pictures_of_different_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        ssim(np.zeros((10, 10), np.uint8), np.zeros((10, 11), np.uint8))


# --- usability --------------------------------------------------------------------------------------------------


def test_a_good_photo_passes():
    stored = process(encode(sample_photo(1200, 900), "JPEG", quality=90))
    assert stored.quality.ok and stored.quality.problems == ()
    assert set(stored.quality.measures) >= {"width", "height", "brightness", "sharpness"}


def test_a_sharp_checkerboard_passes_and_its_blurred_copy_is_blurred():
    sharp = checkerboard()
    blurred = sharp.filter(ImageFilter.GaussianBlur(12))

    sharp_report = process(encode(sharp, "PNG")).quality
    blurred_report = process(encode(blurred, "PNG")).quality

    assert "blurred" not in sharp_report.problems
    assert blurred_report.problems == ("blurred",)
    assert blurred_report.measures["sharpness"] < images.BLUR_MIN_SHARPNESS < sharp_report.measures["sharpness"]


def test_dark_and_bright_photos_are_found():
    photo = np.asarray(sample_photo(800, 600)).astype(np.float64)
    dark = Image.fromarray((photo * 0.25).astype(np.uint8))
    bright = Image.fromarray(np.clip(photo * 0.3 + 200, 0, 255).astype(np.uint8))

    dark_report = process(encode(dark, "JPEG", quality=95)).quality
    bright_report = process(encode(bright, "JPEG", quality=95)).quality

    assert "too_dark" in dark_report.problems and dark_report.measures["brightness"] < images.TOO_DARK_MEAN
    assert "too_bright" in bright_report.problems and bright_report.measures["brightness"] > images.TOO_BRIGHT_MEAN
    assert not dark_report.ok and not bright_report.ok


def test_a_thumbnail_is_too_small():
    report = process(encode(sample_photo(240, 180), "JPEG", quality=95)).quality
    assert "too_small" in report.problems
    assert report.measures["width"] == 240


def test_problems_are_reported_in_a_fixed_order():
    tiny_dark_flat = Image.new("RGB", (100, 80), (10, 10, 10))
    report = process(encode(tiny_dark_flat, "PNG")).quality
    assert report.problems == ("too_small", "too_dark", "blurred")
    assert set(report.problems) <= set(images.PROBLEMS)


def test_pillow_itself_raises_instead_of_warning_once_the_pipeline_is_imported():
    with pytest.raises(Image.DecompressionBombWarning):
        Image.open(io.BytesIO(png_bomb(8000, 6000)))
