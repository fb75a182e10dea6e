"""Reading an appointment upload: the bytes decoded, the CSV parsed, the header checked, errors collected.

What is tolerated: a UTF-8 BOM (or a UTF-16 file with its BOM, as Excel's "Unicode text" saves), ``;``, ``,`` or
tab separators (whichever the header line uses most), CRLF, quoted fields (also across lines), blank lines and
rows of empty cells. Bytes that are not UTF-8 are read as Windows-1252, what spreadsheets on Windows save by
default (so "Tšhabong" survives); a file with NUL bytes is refused as binary (an ``.xlsx`` sent by mistake).

Error ``line`` numbers are the file's physical lines with the header as line 1 (a row whose quoted field spans
lines is reported at the line it starts on); ``column`` is the header name, ``None`` for the whole row or file.
"""

from __future__ import annotations

import codecs
import csv
import io

REQUIRED = ("patient_phone", "appointment_datetime")
OPTIONAL = ("language", "patient_name", "external_ref", "clinic_id", "repeat_every_days", "repeat_count")
COLUMNS = REQUIRED + OPTIONAL
MAX_ERRORS = 1000  # errors listed in a report; error_count has them all
SEPARATORS = (",", ";", "\t")


class Errors:
    """The report's errors: the first MAX_ERRORS kept, all counted."""

    def __init__(self) -> None:
        self.items: list[dict] = []
        self.count = 0

    def add(self, line: int, column: str | None, message: str) -> None:
        self.count += 1
        if len(self.items) < MAX_ERRORS:
            self.items.append({"line": line, "column": column, "message": message})

    def merge(self, other: Errors) -> None:
        self.items = sorted(self.items + other.items, key=lambda e: e["line"])[:MAX_ERRORS]
        self.count += other.count

    def report(self, imported: int = 0, updated: int = 0, unchanged: int = 0) -> dict:
        errors = sorted(self.items, key=lambda e: e["line"])  # stable: a row's errors keep their column order
        return {"imported": imported, "updated": updated, "unchanged": unchanged, "errors": errors,
                "error_count": self.count}  # fmt: skip


def encoding(data: bytes) -> tuple[str, str]:
    """The codec and error handler the file's bytes are read with."""
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", "replace"  # the BOM dropped
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", "strict"
    if data.isascii():  # most files: no need to decode them to know
        return "utf-8", "strict"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        # Spreadsheets on Windows save "CSV" as Windows-1252; the few bytes it leaves undefined become U+FFFD.
        return "cp1252", "replace"
    return "utf-8", "strict"


def lines(data: bytes, codec: str, handler: str, newline: str | None) -> io.TextIOWrapper:
    """The file's text, line by line, decoded as it is read: no copy of the whole text is made (a str of the file,
    and a StringIO over it takes four bytes a character: ~30 MB for a 100,000-row file, beside its records)."""
    return io.TextIOWrapper(io.BytesIO(data), codec, handler, newline=newline)


def read(data: bytes, errors: Errors) -> tuple[dict[str, int], list[tuple[int, list[str]]]] | None:
    """The header's column positions and the non-blank records with their first line; None after a file error."""
    codec, handler = encoding(data)
    try:
        # A NUL character comes from a NUL byte in every codec here but UTF-16, whose text is checked (and
        # decoded strictly: a broken one is refused).
        binary = "\x00" in data.decode(codec) if codec == "utf-16" else b"\x00" in data
    except UnicodeDecodeError:
        errors.add(1, None, "The file could not be read as text; save it as CSV (UTF-8).")
        return None
    if binary:
        errors.add(1, None, "This is not a CSV file (it looks like a spreadsheet or other binary file); save it "
                            "as CSV.")  # fmt: skip
        return None
    first = next((line for line in lines(data, codec, handler, None) if line.strip()), "")
    separator = max(SEPARATORS, key=first.count)  # ties (none at all) go to the comma, listed first
    reader = csv.reader(lines(data, codec, handler, ""), delimiter=separator, strict=False)
    records: list[tuple[int, list[str]]] = []
    header: tuple[int, list[str]] | None = None
    last = 0
    try:
        for cells in reader:
            start, last = last + 1, reader.line_num
            if not (cells and cells[0].strip()) and not "".join(cells).strip():
                continue  # blank line, or a row of empty cells
            if header is None:
                header = (start, cells)
            else:
                records.append((start, cells))
    except csv.Error as exc:
        errors.add(last + 1, None, f"The file is not valid CSV here: {exc}.")
        return None
    if header is None:
        errors.add(1, None, "The file is empty: it needs a header row (patient_phone, appointment_datetime, ...).")
        return None
    line, names = header
    columns: dict[str, int] = {}
    for position, raw in enumerate(names):
        name = raw.strip().lower()
        if not name:
            continue
        if name not in COLUMNS:
            errors.add(line, raw.strip(), f"Unknown column; the columns are: {', '.join(COLUMNS)}.")
        elif name in columns:
            errors.add(line, name, "This column appears twice.")
        else:
            columns[name] = position
    for name in REQUIRED:
        if name not in columns:
            errors.add(line, name, "This required column is missing from the header row.")
    return None if errors.count else (columns, records)
