"""Metadata out of an uploaded photo without decoding a pixel: what a web request can afford before it stores one.

A REST upload is stored as it came, for the inference worker to decode (:mod:`app.services.images`), so the
request must not store the EXIF GPS position, the camera's serial number or an XMP packet with it. Each format's
container is rewritten here, losslessly (the compressed picture data is copied byte for byte), in time and memory
proportional to the file, never to its pixel count:

* JPEG: every ``APPn`` segment (EXIF, XMP, ICC, MPF, maker notes ...) and every comment is dropped, except Adobe's
  ``APP14``, whose colour transform flag the decoder needs; so is everything after the first picture's end (an MPO's
  other pictures, a phone's trailer, a motion photo's video).
* PNG: only ``IHDR``, ``PLTE``, ``tRNS``, ``IDAT`` and ``IEND`` are kept (``eXIf``, text chunks, ``iCCP``, ``tIME``
  and private chunks go; an APNG keeps its still picture).
* WebP: only the picture's chunks are kept (``VP8X``, ``VP8``, ``VP8L``, ``ALPH``, ``ANIM``, ``ANMF``); ``EXIF``,
  ``XMP`` and ``ICCP`` go, and the ``VP8X`` flags follow.
* HEIF: items are found by byte offsets (``iloc``), so none can be cut out without rewriting them all; instead the
  bytes of every ``Exif`` item are overwritten in place with an empty EXIF, and those of every ``mime`` item (XMP)
  with spaces.

The EXIF orientation of a JPEG, PNG or WebP is kept, as a minimal EXIF holding that one tag, so that the worker
still turns the picture upright; a HEIF file carries its rotation in the container (``irot``/``imir``), which stays.
"""

from __future__ import annotations

import re
import struct
import zlib

ORIENTATION = 0x0112


class MetadataError(ValueError):
    """The container is not laid out as its format says: nothing can be stripped from it with certainty."""


def strip(data: bytes, kind: str) -> bytes:
    """``data`` without its metadata, the orientation kept (see the module docstring).

    Args:
        data: a file whose format the magic bytes have already named.
        kind: ``JPEG``, ``PNG``, ``WEBP`` or ``HEIF`` (:func:`app.services.images.sniff`).

    Raises:
        MetadataError: a broken container (truncated, a length pointing past the end, an unknown layout).
    """
    try:
        return _STRIPPERS[kind](data)
    except (struct.error, IndexError) as exc:
        raise MetadataError(f"the {kind} container is damaged") from exc


# --- EXIF orientation ---------------------------------------------------------------------------------------------


def orientation_of(tiff: bytes) -> int | None:
    """The orientation tag (1-8) of IFD0 in a TIFF-structured EXIF block, or ``None`` (absent, unreadable)."""
    if tiff.startswith(b"Exif\x00\x00"):
        tiff = tiff[6:]
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return None
    ifd = struct.unpack(order + "I", tiff[4:8])[0]
    if ifd + 2 > len(tiff):
        return None
    count = struct.unpack(order + "H", tiff[ifd : ifd + 2])[0]
    for index in range(count):
        entry = ifd + 2 + 12 * index
        if entry + 12 > len(tiff):
            return None
        tag, kind, _, value = struct.unpack(order + "HHI4s", tiff[entry : entry + 12])
        if tag == ORIENTATION and kind == 3:  # SHORT, stored in the first two bytes of the value field
            found = struct.unpack(order + "H", value[:2])[0]
            return found if 1 <= found <= 8 else None
    return None


_XMP_ORIENTATION = re.compile(rb'tiff:Orientation(?:="|>)([1-8])')


def _xmp_orientation(packet: bytes) -> int | None:
    # Pillow reads the orientation from XMP when EXIF has none; so must the minimal EXIF that replaces both.
    found = _XMP_ORIENTATION.search(packet)
    return int(found.group(1)) if found else None


def minimal_exif(orientation: int) -> bytes:
    """A big-endian TIFF block with IFD0 holding only the orientation tag."""
    entry = struct.pack(">HHIHH", ORIENTATION, 3, 1, orientation, 0)  # SHORT, one value, left in its 4-byte field
    return b"MM\x00\x2a" + struct.pack(">IH", 8, 1) + entry + b"\0" * 4  # header, IFD0 of one entry, no next IFD


def _turned(orientation: int | None) -> bool:
    return orientation is not None and orientation != 1


# --- JPEG ---------------------------------------------------------------------------------------------------------

_SOI, _EOI, _SOS, _APP1, _APP14, _COM = 0xD8, 0xD9, 0xDA, 0xE1, 0xEE, 0xFE
# A marker inside entropy-coded data: 0xFF followed by neither a stuffed 0x00, a restart marker nor more fill.
_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def _dropped(marker: int, payload: bytes) -> bool:
    if marker == _APP14:
        return not payload.startswith(b"Adobe")
    return 0xE0 <= marker <= 0xEF or marker == _COM


def _jpeg(data: bytes) -> bytes:
    if data[:2] != b"\xff\xd8":
        raise MetadataError("a JPEG starts with SOI")
    kept: list[bytes] = []
    orientation: int | None = None
    xmp_orientation: int | None = None
    position = 2
    # Header segments, up to and including the first start of scan.
    while True:
        if data[position] != 0xFF:
            raise MetadataError("a JPEG segment starts with 0xFF")
        while data[position] == 0xFF:  # fill bytes
            position += 1
        marker = data[position]
        position += 1
        if marker in (_EOI, _SOI):
            raise MetadataError("a JPEG without a picture")
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # standalone markers
            kept.append(bytes((0xFF, marker)))
            continue
        length = struct.unpack(">H", data[position : position + 2])[0]
        end = position + length
        if length < 2 or end > len(data):
            raise MetadataError("a JPEG segment runs past the end of the file")
        payload = data[position + 2 : end]
        if marker == _APP1 and payload.startswith(b"Exif\x00\x00") and orientation is None:
            orientation = orientation_of(payload[6:])
        elif marker == _APP1 and payload.startswith(b"http://ns.adobe.com/xap/1.0/"):
            xmp_orientation = xmp_orientation or _xmp_orientation(payload)
        if not _dropped(marker, payload):
            kept.append(data[position - 2 : end])
        position = end
        if marker == _SOS:
            break
    # Entropy-coded data, with the markers between scans (progressive JPEG), up to the first picture's end.
    while True:
        found = _MARKER.search(data, position)
        if found is None:  # truncated: keep what there is (the decoder will say whether it can be read)
            kept.append(data[position:])
            break
        kept.append(data[position : found.start()])
        marker = data[found.start() + 1]
        if marker == _EOI:
            kept.append(b"\xff\xd9")
            break  # MPF pictures, trailers and motion-photo videos after it are dropped
        length = struct.unpack(">H", data[found.start() + 2 : found.start() + 4])[0]
        end = found.start() + 2 + length
        if length < 2 or end > len(data):
            raise MetadataError("a JPEG segment runs past the end of the file")
        if not _dropped(marker, data[found.start() + 4 : end]):
            kept.append(data[found.start() : end])
        position = end
    orientation = orientation or xmp_orientation
    exif = []
    if _turned(orientation):
        block = b"Exif\x00\x00" + minimal_exif(orientation)
        exif = [b"\xff\xe1" + struct.pack(">H", len(block) + 2) + block]
    return b"".join([b"\xff\xd8", *exif, *kept])


# --- PNG ----------------------------------------------------------------------------------------------------------

_PNG_KEPT = {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"}


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png(data: bytes) -> bytes:
    kept: list[bytes] = []
    orientation: int | None = None
    xmp_orientation: int | None = None
    position = 8
    while True:
        if position + 8 > len(data):
            raise MetadataError("the PNG file ends before IEND")
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        end = position + 12 + length
        if end > len(data):
            raise MetadataError("a PNG chunk runs past the end of the file")
        payload = data[position + 8 : end - 4]
        if kind == b"eXIf":
            orientation = orientation_of(payload)
        elif kind == b"iTXt" and payload.startswith(b"XML:com.adobe.xmp\x00"):
            xmp_orientation = _xmp_orientation(payload)
        if kind in _PNG_KEPT:
            kept.append(data[position:end])
        position = end
        if kind == b"IEND":
            break
    if not kept or kept[0][4:8] != b"IHDR":
        raise MetadataError("a PNG starts with IHDR")
    orientation = orientation or xmp_orientation
    exif = [_png_chunk(b"eXIf", minimal_exif(orientation))] if _turned(orientation) else []
    return b"".join([data[:8], kept[0], *exif, *kept[1:]])  # eXIf before IDAT, so readers need not decode first


# --- WebP ---------------------------------------------------------------------------------------------------------

_WEBP_KEPT = {b"VP8X", b"VP8 ", b"VP8L", b"ALPH", b"ANIM", b"ANMF"}
_VP8X_ICC, _VP8X_EXIF, _VP8X_XMP = 0x20, 0x08, 0x04


def _webp_chunk(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) % 2 else b"")


def _webp(data: bytes) -> bytes:
    size = struct.unpack("<I", data[4:8])[0]
    end_of_riff = min(len(data), 8 + size)
    chunks: list[tuple[bytes, bytes]] = []
    orientation: int | None = None
    xmp_orientation: int | None = None
    position = 12
    while position + 8 <= end_of_riff:
        kind, length = struct.unpack("<4sI", data[position : position + 8])
        end = position + 8 + length
        if end > len(data):
            raise MetadataError("a WebP chunk runs past the end of the file")
        payload = data[position + 8 : end]
        if kind == b"EXIF":
            orientation = orientation_of(payload)
        elif kind == b"XMP ":
            xmp_orientation = _xmp_orientation(payload)
        elif kind in _WEBP_KEPT:
            chunks.append((kind, payload))
        position = end + (length % 2)
    if not chunks:
        raise MetadataError("a WebP file without a picture")
    orientation = orientation or xmp_orientation
    if chunks[0][0] == b"VP8X":
        header = bytearray(chunks[0][1])
        header[0] &= ~(_VP8X_ICC | _VP8X_EXIF | _VP8X_XMP) & 0xFF
        if _turned(orientation):
            header[0] |= _VP8X_EXIF
            chunks.append((b"EXIF", minimal_exif(orientation)))
        chunks[0] = (b"VP8X", bytes(header))
    # (EXIF needs the extended format's VP8X header; a simple file has none, so it had no orientation to keep.)
    body = b"WEBP" + b"".join(_webp_chunk(kind, payload) for kind, payload in chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


# --- HEIF ---------------------------------------------------------------------------------------------------------


def _boxes(data: bytes, start: int, end: int):
    """``(type, payload start, box end)`` of each box between ``start`` and ``end``."""
    position = start
    while position + 8 <= end:
        size, kind = struct.unpack(">I4s", data[position : position + 8])
        header = 8
        if size == 1:
            size = struct.unpack(">Q", data[position + 8 : position + 16])[0]
            header = 16
        elif size == 0:
            size = end - position
        if size < header or position + size > end:
            raise MetadataError("a HEIF box runs past its parent")
        yield kind, position + header, position + size
        position += size


def _uint(data: bytes, position: int, size: int) -> tuple[int, int]:
    if size == 0:
        return 0, position
    if size not in (4, 8, 2):
        raise MetadataError("an iloc field of an unknown size")
    return int.from_bytes(data[position : position + size], "big"), position + size


def _item_types(data: bytes, start: int, end: int) -> dict[int, bytes]:
    """``iinf``: item id → item type (``mime`` for the old, typeless ``infe`` versions, which carry MIME data)."""
    version = data[start]
    position = start + 4 + (2 if version == 0 else 4)
    types = {}
    for kind, payload, box_end in _boxes(data, position, end):
        if kind != b"infe":
            continue
        entry_version = data[payload]
        if entry_version < 2:
            item_id, item_type = struct.unpack(">H", data[payload + 4 : payload + 6])[0], b"mime"
        elif entry_version == 2:
            item_id = struct.unpack(">H", data[payload + 4 : payload + 6])[0]
            item_type = data[payload + 8 : payload + 12]
        else:
            item_id = struct.unpack(">I", data[payload + 4 : payload + 8])[0]
            item_type = data[payload + 10 : payload + 14]
        if payload + 12 > box_end:
            raise MetadataError("a HEIF item entry is cut short")
        types[item_id] = item_type
    return types


def _item_extents(data: bytes, start: int, idat: int | None) -> dict[int, list[tuple[int, int]]]:
    """``iloc``: item id → its byte ranges ``(offset, length)`` in the file."""
    version = data[start]
    position = start + 4
    offset_size, length_size = data[position] >> 4, data[position] & 15
    base_size, index_size = data[position + 1] >> 4, (data[position + 1] & 15 if version in (1, 2) else 0)
    position += 2
    count_size = 2 if version < 2 else 4
    count, position = int.from_bytes(data[position : position + count_size], "big"), position + count_size
    found: dict[int, list[tuple[int, int]]] = {}
    for _ in range(count):
        item_id, position = int.from_bytes(data[position : position + count_size], "big"), position + count_size
        method = 0
        if version in (1, 2):
            method = struct.unpack(">H", data[position : position + 2])[0] & 15
            position += 2
        position += 2  # data_reference_index
        base, position = _uint(data, position, base_size)
        extent_count, position = struct.unpack(">H", data[position : position + 2])[0], position + 2
        extents = []
        for _ in range(extent_count):
            _, position = _uint(data, position, index_size)
            offset, position = _uint(data, position, offset_size)
            length, position = _uint(data, position, length_size)
            extents.append((method, base + offset, length))
        resolved = []
        for method_used, offset, length in extents:
            if method_used == 1:
                if idat is None:
                    raise MetadataError("a HEIF item in an idat box that is not there")
                offset += idat
            elif method_used != 0:
                offset = -1  # built from other items: resolved only if it turns out to be metadata (refused)
            resolved.append((offset, length))
        found[item_id] = resolved
    return found


def _blank_exif(length: int) -> bytes:
    # The item's 4-byte offset to the TIFF header (0), then a TIFF header and an IFD0 without entries.
    empty = b"\0\0\0\0" + b"MM\x00\x2a" + struct.pack(">IHI", 8, 0, 0)
    return empty + b"\0" * (length - len(empty)) if length >= len(empty) else b"\0" * length


def _heif(data: bytes) -> bytes:
    meta = next(((payload, end) for kind, payload, end in _boxes(data, 0, len(data)) if kind == b"meta"), None)
    if meta is None:
        raise MetadataError("a HEIF file without a meta box")
    children = {kind: (payload, end) for kind, payload, end in _boxes(data, meta[0] + 4, meta[1])}
    if b"iinf" not in children or b"iloc" not in children:
        raise MetadataError("a HEIF meta box without iinf or iloc")
    types = _item_types(data, *children[b"iinf"])
    idat = children[b"idat"][0] if b"idat" in children else None
    extents = _item_extents(data, children[b"iloc"][0], idat)
    cleaned = bytearray(data)
    for item_id, item_type in types.items():
        if item_type not in (b"Exif", b"mime"):
            continue
        ranges = extents.get(item_id, [])
        total = sum(length for _, length in ranges)
        if any(offset < 0 or length == 0 or offset + length > len(data) for offset, length in ranges):
            raise MetadataError("a HEIF metadata item that cannot be located")
        filler = _blank_exif(total) if item_type == b"Exif" else b" " * total
        written = 0
        for offset, length in ranges:
            cleaned[offset : offset + length] = filler[written : written + length]
            written += length
    return bytes(cleaned)


_STRIPPERS = {"JPEG": _jpeg, "PNG": _png, "WEBP": _webp, "HEIF": _heif}
