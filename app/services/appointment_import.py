"""CSV import of appointments (``POST /api/v1/appointments/upload``): every row validated, 100,000 rows at once.

The file: a header row, then one appointment per row. Columns (names case-insensitive, spaces around them
ignored): ``patient_phone`` and ``appointment_datetime`` required; ``language``, ``patient_name``,
``external_ref`` and ``clinic_id`` optional. A header that names any other column is refused as a whole (a typo
such as ``patient_phnoe`` must not silently drop data); so is one without a required column. Columns with an
empty header (spreadsheets add them) are ignored, but a value in one is a row error: it usually means an unquoted
separator inside a field shifted the row.

What is tolerated: a UTF-8 BOM (or a UTF-16 file with its BOM, as Excel's "Unicode text" saves), ``;``, ``,`` or
tab separators (whichever the header line uses most), CRLF, quoted fields (also across lines), blank lines and
rows of empty cells. Bytes that are not UTF-8 are read as Windows-1252, what spreadsheets on Windows save by
default (so "Tšhabong" survives); a file with NUL bytes is refused as binary (an ``.xlsx`` sent by mistake).

Error ``line`` numbers are the file's physical lines with the header as line 1 (a row whose quoted field spans
lines is reported at the line it starts on); ``column`` is the header name, ``None`` for the whole row or file.

Re-uploading a file changes nothing: each row's key (:func:`appointments.import_key`: the external reference,
else number + time) is unique per clinic. A known key whose row says something new (for a referenced row: a new
time, language, or a name for a patient without one) is ``updated``; a new time moves the appointment through
:func:`appointments.reschedule` (new reminders, the patient told); cancelled or past appointments are left alone
(``unchanged``).

Speed (100,000 rows in one upload): rows are validated in plain Python with per-value caches (phone numbers,
times, reminder plans: a week of appointments has few distinct times), in chunks of ``CHUNK_ROWS``, by a second
thread while this one writes the previous chunk; writing is mostly PostgreSQL's work, so the two overlap on the
machine's two cores. Each chunk is one step of one transaction: what exists is read with one array parameter
(chunked ``IN`` lists on SQLite), then contacts, patients and appointments are written with no ORM object per
row: binary ``COPY`` on PostgreSQL (``INSERT ... ON CONFLICT DO NOTHING`` through a temporary table when a
concurrent upload got there first), one executemany ``INSERT ... ON CONFLICT DO NOTHING`` on SQLite; new rows go
in key order, with ascending ids, which halves PostgreSQL's index work. Only the rare moved rows and the booking
confirmations go through the ORM, at the end.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gc
import io
import os
import re
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from operator import attrgetter
from queue import SimpleQueue

import phonenumbers
from sqlalchemy import and_, any_, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from app.errors import Forbidden, NotFound, ServiceError
from app.extensions import db
from app.models import Appointment, Clinic, Contact, Patient, utcnow
from app.models.appointment import ACTIVE_STATUSES, STATUS_SCHEDULED
from app.models.base import UTCDateTime
from app.services import appointments, audit
from app.services.phones import to_e164

REQUIRED = ("patient_phone", "appointment_datetime")
OPTIONAL = ("language", "patient_name", "external_ref", "clinic_id")
COLUMNS = REQUIRED + OPTIONAL
MAX_ERRORS = 1000  # errors listed in a report; error_count has them all
NAME_LENGTH = 200  # Patient.name
REF_LENGTH = 100  # Appointment.external_ref
CHUNK = 2000  # values per IN (...) query: well under SQLite's bound-parameter limit
CHUNK_ROWS = 10_000  # rows validated, then written, at a time
LANGUAGE_WORDS = {"en": "en", "english": "en", "tn": "tn", "setswana": "tn"}
SEPARATORS = (",", ";", "\t")
SEPARATOR = "\x1f"  # ASCII unit separator: between the values of one array parameter

_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?")
MSG_REQUIRED = "Required."
MSG_DATETIME = (
    "Not a date and time: write it as 2026-12-01T09:00:00+02:00, or as 2026-12-01 09:00 in the clinic's time."
)
MSG_PAST = "This time is in the past."
MSG_LANGUAGE = "Use en or tn (English or Setswana)."
MSG_OTHER_CLINIC = "You can import appointments for your own clinic only."
MSG_NO_CLINIC = "No clinic for this row: give clinic_id in the row or for the whole upload."
MSG_UNKNOWN_CLINIC = "No clinic with this id."
MSG_REF_TAKEN = "This external_ref belongs to an appointment of another phone number."


class _Errors:
    """The report's errors: the first MAX_ERRORS kept, all counted."""

    def __init__(self) -> None:
        self.items: list[dict] = []
        self.count = 0

    def add(self, line: int, column: str | None, message: str) -> None:
        self.count += 1
        if len(self.items) < MAX_ERRORS:
            self.items.append({"line": line, "column": column, "message": message})

    def merge(self, other: _Errors) -> None:
        self.items = sorted(self.items + other.items, key=lambda e: e["line"])[:MAX_ERRORS]
        self.count += other.count

    def report(self, imported: int = 0, updated: int = 0, unchanged: int = 0) -> dict:
        errors = sorted(self.items, key=lambda e: e["line"])  # stable: a row's errors keep their column order
        return {"imported": imported, "updated": updated, "unchanged": unchanged, "errors": errors,
                "error_count": self.count}  # fmt: skip


@dataclass(slots=True)
class _Row:
    """One valid row, normalised."""

    line: int
    clinic: Clinic
    phone: str
    at: datetime
    language: str | None
    name: str | None
    ref: str | None
    key: str


@dataclass(slots=True)
class _Existing:
    """An appointment already in the database under a key of this file, and what the file wants it to become."""

    id: uuid.UUID
    phone: str
    status: str
    at: datetime
    language: str | None
    new_at: datetime | None = None
    new_language: str | None = None
    line: int = 0  # the row that moves it


@dataclass(slots=True)
class _Person:
    """A phone number of this file: its contact and patient (ids ``None`` until created)."""

    contact_id: uuid.UUID | None = None
    contact_language: str | None = None
    patient_id: uuid.UUID | None = None
    name: str | None = None
    channel: str = "sms"
    set_language: str | None = None  # fill the contact's empty language
    set_name: str | None = None  # fill the patient's empty name


def import_csv(actor, data: bytes, *, clinic_id: uuid.UUID | None = None, atomic: bool = False,
               now: datetime | None = None) -> dict:  # fmt: skip
    """Import appointments from a CSV file, validating every row; commits (it is the unit of work).

    Valid rows are imported and invalid ones reported; with ``atomic`` any error imports nothing. A file-level
    error (unreadable file, missing or unknown column) imports nothing either way. One audit row records the
    upload (counts only).

    Args:
        actor: the :class:`app.security.Actor`. Staff import for their own clinic; an admin names the clinic with
            ``clinic_id`` and/or a ``clinic_id`` column.
        data: the file's bytes.
        clinic_id: the clinic of rows without a ``clinic_id`` value (admins; staff may only name their own).
        atomic: all or nothing.
        now: the current time (rows before it are refused; reminders are planned from it).

    Returns:
        ``{"imported", "updated", "unchanged", "errors": [{"line", "column", "message"}], "error_count"}``;
        ``errors`` lists at most 1,000, ``error_count`` counts them all.

    Raises:
        Forbidden: the actor may not import (or not for ``clinic_id``). NotFound: ``clinic_id`` is unknown.
    """
    now = now or utcnow()
    default_id = _default_clinic_id(actor, clinic_id)
    with _without_cycle_collection():
        return _import(actor, data, default_id, atomic, now)


@contextlib.contextmanager
def _without_cycle_collection() -> Iterator[None]:
    """Python's cycle collector off for the import: it would walk the ever more objects an upload holds (rows,
    cells, caches) again and again and take half of the validation's time. Reference counting still frees
    everything; the collector resumes afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _import(actor, data: bytes, default_id: uuid.UUID | None, atomic: bool, now: datetime) -> dict:
    errors = _Errors()  # the file's and the validation's (written by the validating thread)
    parsed = _read(data, errors)
    writer = _Writer(actor, now, atomic, _Errors())
    rows_seen = 0
    if parsed is not None:
        columns, records = parsed
        rows_seen = len(records)
        targets = _targets(actor, _load_clinics(default_id, columns, records))
        try:
            with _Validation(columns, records, targets, now, errors) as chunks:
                for rows in chunks:
                    if not (atomic and (errors.count or writer.errors.count)):
                        writer.add(rows)
            writer.finish(failed=atomic and errors.count > 0)
        except BaseException:
            db.session.rollback()
            raise
    errors.merge(writer.errors)
    audit.record(actor, "appointment.import", "clinic", default_id,
                 {"rows": rows_seen, "imported": writer.imported, "updated": writer.updated,
                  "unchanged": writer.unchanged, "error_count": errors.count, "atomic": atomic})  # fmt: skip
    db.session.commit()
    return errors.report(writer.imported, writer.updated, writer.unchanged)


def _default_clinic_id(actor, clinic_id: uuid.UUID | None) -> uuid.UUID | None:
    if getattr(actor, "is_admin", False):
        if clinic_id is not None and db.session.get(Clinic, clinic_id) is None:
            raise NotFound(MSG_UNKNOWN_CLINIC)
        return clinic_id
    if getattr(actor, "role", None) != "staff" or actor.clinic_id is None:
        raise Forbidden("Only clinic staff and admins can import appointments.")
    if clinic_id is not None and clinic_id != actor.clinic_id:
        raise Forbidden(MSG_OTHER_CLINIC)
    return actor.clinic_id


# --- Reading the file -------------------------------------------------------------------------------------------


def _decode(data: bytes) -> str:
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8) :].decode("utf-8", errors="replace")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # Spreadsheets on Windows save "CSV" as Windows-1252; the few bytes it leaves undefined become U+FFFD.
        return data.decode("cp1252", errors="replace")


def _read(data: bytes, errors: _Errors) -> tuple[dict[str, int], list[tuple[int, list[str]]]] | None:
    """The header's column positions and the non-blank records with their first line; None after a file error."""
    try:
        text = _decode(data)
    except UnicodeDecodeError:
        errors.add(1, None, "The file could not be read as text; save it as CSV (UTF-8).")
        return None
    if "\x00" in text:
        errors.add(1, None, "This is not a CSV file (it looks like a spreadsheet or other binary file); save it "
                            "as CSV.")  # fmt: skip
        return None
    first = next((line for line in text.splitlines() if line.strip()), "")
    separator = max(SEPARATORS, key=first.count)  # ties (none at all) go to the comma, listed first
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=separator, strict=False)
    records: list[tuple[int, list[str]]] = []
    header: tuple[int, list[str]] | None = None
    last = 0
    try:
        for cells in reader:
            start, last = last + 1, reader.line_num
            if not "".join(cells).strip():
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


def _load_clinics(default_id: uuid.UUID | None, columns: dict[str, int],
                  records: list[tuple[int, list[str]]]) -> dict[str, Clinic | None]:  # fmt: skip
    """Every clinic the file names (by the text of its id; None: unknown), and the default one under ``""``."""
    texts: set[str] = set()
    position = columns.get("clinic_id")
    if position is not None:
        texts = {cells[position].strip().lower() for _, cells in records if position < len(cells)}
        texts.discard("")
    ids: dict[str, uuid.UUID | None] = {}
    for text in texts:
        try:
            ids[text] = uuid.UUID(text)
        except ValueError:
            ids[text] = None
    wanted = {i for i in ids.values() if i is not None} | ({default_id} if default_id else set())
    found = {c.id: c for c in db.session.scalars(select(Clinic).where(Clinic.id.in_(wanted)))} if wanted else {}
    clinics: dict[str, Clinic | None] = {text: found.get(i) if i else None for text, i in ids.items()}
    clinics[""] = found.get(default_id) if default_id else None
    return clinics


# --- Validating rows --------------------------------------------------------------------------------------------


class _Phones:
    """Phone numbers of one clinic's country in E.164, each distinct value worked out once.

    Spreadsheets drop the leading ``+``: digits that are no national number are read as international. Numbers
    already in international form take a fast path (:func:`_quick_e164`); everything else goes through
    :func:`app.services.phones.to_e164`.
    """

    def __init__(self, region: str) -> None:
        self.region = region
        self.cache: dict[str, tuple[str | None, str | None]] = {}
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        self.national_max = max(metadata.general_desc.possible_length) + len(metadata.national_prefix or "")
        prefix = metadata.national_prefix_for_parsing
        self.national_prefix = re.compile(prefix) if prefix else None

    def read(self, value: str) -> tuple[str | None, str | None]:
        """``(e164, None)`` or ``(None, error message)``."""
        found = self.cache.get(value)
        if found is None:
            found = self.cache[value] = self._read(value.strip())
        return found

    def _read(self, text: str) -> tuple[str | None, str | None]:
        if not text:
            return None, MSG_REQUIRED
        plus = text[0] == "+"
        digits = text[1:] if plus else text
        if digits.isascii() and digits.isdigit():
            international = plus or (
                len(digits) > self.national_max
                and digits[0] != "0"
                and not (self.national_prefix and self.national_prefix.match(digits))
            )
            if international and (quick := _quick_e164(digits)):
                return quick, None
        try:
            return to_e164(text, self.region), None
        except ValueError as exc:
            if not plus and digits.isascii() and digits.isdigit():
                try:
                    return to_e164("+" + digits), None
                except ValueError:
                    pass
            return None, str(exc)


def _quick_e164(digits: str) -> str | None:
    """``+digits`` when it is a valid number of a country code that belongs to one country; else None (not
    known here: ask :func:`to_e164`). Exactly phonenumbers' ``is_valid_number`` for such numbers, precompiled:
    parsing and validating cost ~20 µs a number, too slow for 100,000 distinct numbers."""
    country = _country_checks.get(digits[:3])
    if country is None:
        country = _country_checks[digits[:3]] = _country_check(digits[:3])
    size, check = country
    return "+" + digits if check is not None and check(digits[size:]) else None


_country_checks: dict[str, tuple[int, object]] = {}  # the first 3 digits → (country code length, check)


def _country_check(start: str) -> tuple[int, object]:
    """The country code a number starting with ``start`` has, and its number check (None: ask phonenumbers)."""
    if not start or start[0] == "0":
        return 0, None
    for size in range(1, len(start) + 1):
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(start[:size]))
        if regions:
            return size, _validator(regions[0]) if len(regions) == 1 else None
    return 0, None


@cache
def _validator(region: str):
    """A check of national significant numbers: True only where phonenumbers' ``_number_type_helper(...) !=
    UNKNOWN`` is, with one regular expression per length. False (ask phonenumbers) for leading zeros and numbers
    a national prefix could be stripped from; None for codes without metadata (non-geographic)."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None:
        return None
    # An international number's national part is stripped of a national prefix when one matches at its start.
    prefix = re.compile(metadata.national_prefix_for_parsing) if metadata.national_prefix_for_parsing else None
    types = [metadata.premium_rate, metadata.toll_free, metadata.shared_cost, metadata.voip, metadata.personal_number,
             metadata.pager, metadata.uan, metadata.voicemail, metadata.fixed_line]  # fmt: skip
    if not metadata.same_mobile_and_fixed_line_pattern:
        types.append(metadata.mobile)
    general = metadata.general_desc
    if general is None or not general.national_number_pattern:
        return None
    by_length: dict[int, re.Pattern] = {}
    for length in range(1, 18):
        if general.possible_length and length not in general.possible_length:
            continue
        patterns = [
            desc.national_number_pattern
            for desc in types
            if desc is not None
            and desc.national_number_pattern
            and (not desc.possible_length or length in desc.possible_length)
        ]
        if patterns:
            alternatives = "|".join(f"(?:{p})" for p in patterns)
            by_length[length] = re.compile(f"(?=(?:{general.national_number_pattern})$)(?:{alternatives})")

    def check(national: str) -> bool:
        pattern = by_length.get(len(national))
        if pattern is None or national[:1] in ("", "0") or (prefix is not None and prefix.match(national)):
            return False
        return pattern.fullmatch(national) is not None

    return check


class _Times:
    """Appointment times of one clinic's zone as UTC, each distinct value worked out once."""

    def __init__(self, clinic: Clinic) -> None:
        self.zone = appointments.zone(clinic)
        self.cache: dict[str, datetime | None] = {}

    def read(self, value: str) -> datetime | None:
        if value in self.cache:
            return self.cache[value]
        text = value.strip().upper()
        at = None
        if _DATETIME.fullmatch(text):
            try:
                moment = datetime.fromisoformat(text)
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=self.zone)
                at = moment.astimezone(UTC)
            except (ValueError, OverflowError):
                at = None
        self.cache[value] = at
        return at


def _targets(actor, clinics: dict[str, Clinic | None]) -> dict[str, tuple]:
    """For each ``clinic_id`` text of the file (``""``: none given): ``(clinic, phone reader, time reader)``, or
    ``(None, error message, None)``. Worked out here, so the validating thread never touches an ORM object."""
    staff_clinic = None if getattr(actor, "is_admin", False) else actor.clinic_id
    phones: dict[str, _Phones] = {}
    targets: dict[str, tuple] = {}
    for text, clinic in clinics.items():
        if clinic is None:
            targets[text] = (None, MSG_UNKNOWN_CLINIC if text else MSG_NO_CLINIC, None)
        elif staff_clinic is not None and clinic.id != staff_clinic:
            targets[text] = (None, MSG_OTHER_CLINIC, None)
        else:
            if clinic.country not in phones:
                phones[clinic.country] = _Phones(clinic.country)
            targets[text] = (clinic, phones[clinic.country], _Times(clinic))
    return targets


def _validate(columns: dict[str, int], records: list[tuple[int, list[str]]], targets: dict[str, tuple],
              now: datetime, errors: _Errors) -> Iterator[list[_Row]]:  # fmt: skip
    """The valid rows, normalised, ``CHUNK_ROWS`` records at a time; every problem of the others goes to
    ``errors``. Pure Python: no database, no ORM attribute."""
    add = errors.add
    known = set(columns.values())
    width = max(known) + 1
    gaps = len(known) < width  # columns with an empty header between named ones
    p_phone, p_at = columns["patient_phone"], columns["appointment_datetime"]
    p_language, p_name = columns.get("language"), columns.get("patient_name")
    p_ref, p_clinic = columns.get("external_ref"), columns.get("clinic_id")
    import_key = appointments.import_key
    for start in range(0, len(records), CHUNK_ROWS):
        rows: list[_Row] = []
        for line, cells in records[start : start + CHUNK_ROWS]:
            size = len(cells)
            if size < width:
                cells = cells + [""] * (width - size)
            if size > width or gaps:
                stray = next((i for i, cell in enumerate(cells) if i not in known and cell.strip()), None)
                if stray is not None:
                    add(line, None, f"A value in column {stray + 1}, which has no header: is a separator inside "
                                    f"a field without quotes?")  # fmt: skip
                    continue
            ok = True
            clinic, phones, times = targets[cells[p_clinic].strip().lower() if p_clinic is not None else ""]
            phone = at = None
            if clinic is None:
                add(line, "clinic_id", phones)
                ok = False
            else:
                raw = cells[p_phone]
                found = phones.cache.get(raw)
                phone, problem = found if found is not None else phones.read(raw)
                if problem:
                    add(line, "patient_phone", problem)
                    ok = False
                raw = cells[p_at]
                at = times.cache[raw] if raw in times.cache else times.read(raw)
                if at is None:
                    add(line, "appointment_datetime", MSG_REQUIRED if not raw.strip() else MSG_DATETIME)
                    ok = False
                elif at <= now:
                    add(line, "appointment_datetime", MSG_PAST)
                    ok = False
            language = None
            if p_language is not None:
                word = cells[p_language].strip()
                if word:
                    language = LANGUAGE_WORDS.get(word.lower())
                    if language is None:
                        add(line, "language", MSG_LANGUAGE)
                        ok = False
            name = cells[p_name].strip() or None if p_name is not None else None
            if name is not None and len(name) > NAME_LENGTH:
                add(line, "patient_name", f"At most {NAME_LENGTH} characters.")
                ok = False
            ref = cells[p_ref].strip() or None if p_ref is not None else None
            if ref is not None and (len(ref) > REF_LENGTH or not ref.isprintable()):
                add(line, "external_ref", f"At most {REF_LENGTH} characters, and no control characters.")
                ok = False
            if ok:
                key = import_key(external_ref=ref, phone=phone, at=at)
                rows.append(_Row(line, clinic, phone, at, language, name, ref, key))
        yield rows


class _Validation:
    """:func:`_validate` run by a second thread, ahead of the caller: ``with _Validation(...) as chunks``.

    Validating is Python work and writing mostly PostgreSQL's: while this thread waits for the database, the
    other validates the next chunk. Leaving the block stops and joins the thread, also on an error.
    """

    def __init__(self, *args) -> None:
        self.chunks = _validate(*args)
        self.queue: SimpleQueue = SimpleQueue()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="appointment-import-validation", daemon=True)

    def _run(self) -> None:
        try:
            for rows in self.chunks:
                if self.stop.is_set():
                    return
                self.queue.put(rows)
        except BaseException as exc:  # handed to the consuming thread
            self.queue.put(exc)
        self.queue.put(None)

    def __enter__(self) -> Iterator[list[_Row]]:
        self.thread.start()
        return iter(self._next, None)

    def _next(self) -> list[_Row] | None:
        item = self.queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        self.thread.join()


# --- Writing ----------------------------------------------------------------------------------------------------


def _insert(table):
    """A Core INSERT that can skip rows violating a unique constraint (ON CONFLICT DO NOTHING), on both backends."""
    insert = postgresql.insert if db.session.get_bind().dialect.name == "postgresql" else sqlite.insert
    return insert(table)


def _chunks(values: Iterable, size: int = CHUNK) -> Iterator[list]:
    values = list(values)
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _matching(column, values: Iterable) -> Iterator:
    """WHERE clauses that together match ``column`` against all ``values``: one array parameter on PostgreSQL
    (``= ANY``: one statement, one index probe per value), chunked ``IN`` lists on SQLite."""
    values = list(values)
    if db.session.get_bind().dialect.name == "postgresql":
        if values:
            # One text joined by a separator no value contains (phones are digits, references are printable):
            # psycopg dumps a 100,000-item list parameter item by item, in Python.
            yield column == any_(func.string_to_array(bindparam(None, SEPARATOR.join(values)), SEPARATOR))
        return
    for chunk in _chunks(values):
        yield column.in_(chunk)


def _load_people(phones: set[str]) -> dict[str, _Person]:
    """The contact and patient (if any) of every number."""
    people = {phone: _Person() for phone in phones}
    for where in _matching(Contact.address, phones):
        found = db.session.execute(
            select(Contact.address, Contact.id, Contact.language, Patient.id, Patient.name, Patient.preferred_channel)
            .outerjoin(Patient, Patient.contact_id == Contact.id)
            .where(where)
        )
        for address, contact_id, language, patient_id, name, channel in found:
            person = people[address]
            person.contact_id, person.contact_language = contact_id, language
            if patient_id is not None:
                person.patient_id, person.name, person.channel = patient_id, name, channel
    return people


def _load_existing(rows: list[_Row]) -> dict[tuple[Clinic, str], _Existing]:
    """The appointments already stored under the keys of ``rows``, per (clinic, key)."""
    keys: dict[Clinic, set[str]] = {}
    for row in rows:
        keys.setdefault(row.clinic, set()).add(row.key)
    existing: dict[tuple[Clinic, str], _Existing] = {}
    for clinic, clinic_keys in keys.items():
        for where in _matching(Appointment.import_key, clinic_keys):
            found = db.session.execute(
                select(
                    Appointment.import_key,
                    Appointment.id,
                    Patient.phone,
                    Appointment.status,
                    Appointment.appointment_datetime,
                    Appointment.language,
                )  # fmt: skip
                .join(Patient, Patient.id == Appointment.patient_id)
                .where(Appointment.clinic_id == clinic.id, where)
            )
            for key, *fields in found:
                existing[(clinic, key)] = _Existing(*fields)
    return existing


class _Writer:
    """Decides what each valid row does and writes it, a chunk of rows at a time, all in the session's one
    transaction; :meth:`finish` does the rest (moves, fills, booking confirmations) or rolls it all back.

    Keys are (Clinic object, import key): a Clinic hashes by identity, in C (``UUID.__hash__`` is Python code).
    """

    def __init__(self, actor, now: datetime, atomic: bool, errors: _Errors) -> None:
        self.actor, self.now, self.atomic, self.errors = actor, now, atomic, errors
        self.people: dict[str, _Person] = {}  # every number of the file's valid rows
        self.existing: dict[tuple[Clinic, str], _Existing] = {}  # stored appointments under the file's keys
        self.looked: set[tuple[Clinic, str]] = set()  # keys already looked up
        self.new: dict[tuple[Clinic, str], _Row] = {}  # appointments the file adds
        self.ids: dict[tuple[Clinic, str], object] = {}  # ... their ids, once written
        self.changed: set[tuple[Clinic, str]] = set()  # ... written ones a later row changes
        self.confirm: list = []  # ids of new appointments whose clinic sends booking confirmations
        self.imported = self.updated = self.unchanged = 0

    def add(self, rows: list[_Row]) -> None:
        """Decide and write one chunk of valid rows."""
        lookup = [row for row in rows if (row.clinic, row.key) not in self.looked]
        self.looked.update((row.clinic, row.key) for row in lookup)
        self.existing.update(_load_existing(lookup))
        self.people.update(_load_people({row.phone for row in rows} - self.people.keys()))
        fresh = [row for row in rows if self._decide(row)]
        _create_people(self.people, [row.phone for row in fresh])
        written = _insert_appointments(self.actor, fresh, self.people, self.now)
        confirms = {clinic: clinic.booking_confirmation for clinic in {row.clinic for row in fresh}}
        for row, appointment_id in written:
            self.ids[(row.clinic, row.key)] = appointment_id
            if confirms[row.clinic]:
                self.confirm.append(appointment_id)
        lost = len(fresh) - len(written)  # a concurrent upload stored them first
        self.imported, self.unchanged = self.imported - lost, self.unchanged + lost

    def _decide(self, row: _Row) -> bool:
        """Count the row; True when it is a new appointment to write."""
        slot = (row.clinic, row.key)
        person = self.people[row.phone]
        first = self.new.get(slot)
        if first is not None:  # the same key earlier in this file
            if first.phone != row.phone:
                self.errors.add(row.line, "external_ref", MSG_REF_TAKEN)
                return False
            changed = _fill(person, row)
            if row.at != first.at or (row.language and row.language != first.language):
                first.at, first.language, changed = row.at, row.language or first.language, True
                if slot in self.ids:
                    self.changed.add(slot)
            self._count(changed)
            return False
        stored = self.existing.get(slot)
        if stored is None:
            self.new[slot] = row
            _fill(person, row)
            self.imported += 1
            return True
        if stored.phone != row.phone:
            self.errors.add(row.line, "external_ref", MSG_REF_TAKEN)
            return False
        if stored.status not in ACTIVE_STATUSES:
            self.unchanged += 1
            return False
        changed = False
        if row.ref and row.at != (stored.new_at or stored.at):
            stored.new_at, stored.line, changed = row.at, row.line, True
        if row.language and row.language != (stored.new_language or stored.language):
            stored.new_language, changed = row.language, True
        self._count(_fill(person, row) or changed)
        return False

    def _count(self, changed: bool) -> None:
        if changed:
            self.updated += 1
        else:
            self.unchanged += 1

    def finish(self, *, failed: bool = False) -> None:
        """Write what needs the whole file, or roll everything back when an atomic upload had an error."""
        if not (failed or (self.atomic and self.errors.count)):
            _fill_people(self.people)
            self._write_changes()
            _update_existing(self.actor, self.existing, self.errors)
        if failed or (self.atomic and self.errors.count):
            db.session.rollback()
            self.imported = self.updated = self.unchanged = 0
            return
        if self.confirm:
            _confirm_bookings(self.confirm)

    def _write_changes(self) -> None:
        """New appointments of this file written before a later row of it changed their time or language."""
        if not self.changed:
            return
        values = []
        for slot in self.changed:
            row = self.new[slot]
            send_at, offset = appointments.next_reminder(row.clinic, row.at, STATUS_SCHEDULED, self.now)
            values.append({"_id": _as_uuid(self.ids[slot]), "_at": row.at, "_language": row.language,
                           "_send_at": send_at, "_offset": offset})  # fmt: skip
        table = Appointment.__table__
        db.session.execute(
            update(table)
            .where(table.c.id == bindparam("_id"))
            .values(
                appointment_datetime=bindparam("_at"),
                language=bindparam("_language"),
                next_reminder_at=bindparam("_send_at"),
                next_reminder_offset=bindparam("_offset"),
                updated_at=utcnow(),
            ),  # fmt: skip
            values,
        )


def _fill(person: _Person, row: _Row) -> bool:
    """Apply :func:`appointments.patient_for`'s rules (a name fills an empty one; a language is kept only where
    the person has none); True when the row changes the person."""
    changed = False
    if row.name and not (person.name or person.set_name):
        person.set_name, changed = row.name, True
    if row.language and not (person.contact_language or person.set_language):
        person.set_language, changed = row.language, True
    return changed


CONTACT_COLUMNS = ("id", "address", "language", "created_at", "updated_at")
PATIENT_COLUMNS = ("id", "phone", "contact_id", "name", "preferred_channel", "created_at", "updated_at")
APPOINTMENT_COLUMNS = ("id", "clinic_id", "patient_id", "appointment_datetime", "language", "status",
                       "reminders_sent", "external_ref", "import_key", "channel", "next_reminder_at",
                       "next_reminder_offset", "created_by", "created_at", "updated_at")  # fmt: skip


def _create_people(people: dict[str, _Person], phones: list[str]) -> None:
    """Contacts and patients for the numbers of new appointments that have none, in bulk."""
    now = utcnow()
    # In order of number, with ids in ascending order: the unique indexes (address, phone, id, contact_id) then
    # take the rows in key order, which PostgreSQL's B-trees do in half the time random order takes.
    phones = sorted(set(phones))
    ids = iter(_new_ids(len(phones)) + _new_ids(len(phones)))
    as_id = _id_form()
    contacts = []
    for phone in phones:
        person = people[phone]
        if person.contact_id is None:
            person.contact_id, person.contact_language = next(ids), person.set_language
            person.set_language = None
            contacts.append((person.contact_id, phone, person.contact_language, now, now))
    stored = _insert_rows(Contact.__table__, CONTACT_COLUMNS, contacts, key=1)
    for row in contacts:
        if row[1] not in stored:  # created concurrently: use that one
            people[row[1]].contact_id = db.session.scalar(select(Contact.id).where(Contact.address == row[1]))
    patients = []
    for phone in phones:
        person = people[phone]
        if person.patient_id is None:
            person.patient_id, person.name, person.set_name = next(ids), person.set_name, None
            patients.append((person.patient_id, phone, as_id(person.contact_id), person.name, "sms", now, now))
    stored = _insert_rows(Patient.__table__, PATIENT_COLUMNS, patients, key=1)
    for row in patients:
        if row[1] not in stored:
            patient_id, channel = db.session.execute(
                select(Patient.id, Patient.preferred_channel).where(Patient.phone == row[1])
            ).one()
            people[row[1]].patient_id, people[row[1]].channel = patient_id, channel


def _insert_rows(table, columns: tuple[str, ...], rows: list[tuple], *, key: int) -> set:
    """Insert ``rows`` (values in ``columns`` order), skipping any that a concurrent transaction wrote first
    (unique constraints); the ``key``-th values of the rows written.

    PostgreSQL: binary ``COPY`` straight into the table, several times faster than any INSERT; should a unique
    constraint fail (a concurrent upload of the same rows), the savepoint is rolled back and the rows go through
    a temporary table and ``INSERT ... ON CONFLICT DO NOTHING``. SQLite: one executemany INSERT.
    """
    if not rows:
        return set()
    dialect = db.session.get_bind().dialect
    if dialect.name != "postgresql":
        # The import's transaction holds SQLite's one write lock since its first statement (BEGIN IMMEDIATE): no
        # other transaction can have written these rows since they were looked up, so a plain executemany of
        # the values as SQLAlchemy would bind them does (at twice the speed of SQLAlchemy's own executemany).
        statement = _insert(table).compile(dialect=dialect, column_keys=list(columns))
        order = [columns.index(name) for name in statement.positiontup]
        processors = [(i, _bind(table.c[columns[i]].type, dialect)) for i in order]
        values = [tuple(p(row[i]) if p else row[i] for i, p in processors) for row in rows]
        _driver().executemany(str(statement), values)
        return {row[key] for row in rows}
    import psycopg
    from psycopg import sql

    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    target = sql.Identifier(table.name)
    types = [_PG_TYPES[type(table.c[name].type).__name__] for name in columns]
    copy = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)")
    try:
        with db.session.begin_nested():
            _copy(copy.format(target, names), types, rows)
        return {row[key] for row in rows}
    except psycopg.errors.UniqueViolation:
        pass
    scratch = sql.Identifier("import_rows")
    _driver().execute(sql.SQL("CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA")
                      .format(scratch, names, target))  # fmt: skip
    _copy(copy.format(scratch, names), types, rows)
    insert = sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT DO NOTHING RETURNING {}")
    written = _driver().execute(insert.format(target, names, names, scratch, sql.Identifier(columns[key]))).fetchall()
    _driver().execute(sql.SQL("DROP TABLE {}").format(scratch))
    return {value.bytes if isinstance(value, uuid.UUID) and isinstance(rows[0][key], bytes) else value
            for (value,) in written}  # fmt: skip


# Binary COPY sends each value as its length and bytes, no type: a uuid goes as its 16 bytes, dumped by psycopg's
# (C) bytea dumper. Building uuid.UUID objects and dumping them in Python would cost more than the rest of a row.
_PG_TYPES = {"Uuid": "bytea", "String": "text", "UTCDateTime": "timestamptz", "Integer": "int4", "Boolean": "bool"}


def _bind(column_type, dialect):
    """SQLAlchemy's bind processor of a column type; memoised for times (a file has few distinct ones)."""
    process = column_type.dialect_impl(dialect).bind_processor(dialect)
    if process is None or not isinstance(column_type, UTCDateTime):
        return process
    memo: dict = {}

    def memoised(value):
        if value not in memo:
            memo[value] = process(value)
        return memo[value]

    return memoised


def _driver():
    """The psycopg connection under the session's connection (same transaction)."""
    return db.session.connection().connection.driver_connection


_VERSION_4 = bytes(b & 0x0F | 0x40 for b in range(256))
_VARIANT = bytes(b & 0x3F | 0x80 for b in range(256))


def _new_ids(count: int) -> list:
    """Random version-4 UUIDs for new rows, in ascending order, in the form :func:`_id_form` gives."""
    if db.session.get_bind().dialect.name != "postgresql":
        return sorted((uuid.uuid4() for _ in range(count)), key=attrgetter("int"))
    raw = bytearray(os.urandom(16 * count))
    raw[6::16] = raw[6::16].translate(_VERSION_4)
    raw[8::16] = raw[8::16].translate(_VARIANT)
    raw = bytes(raw)
    return sorted([raw[i : i + 16] for i in range(0, 16 * count, 16)])


def _id_form():
    """How ids go into the rows :func:`_insert_rows` writes: ``uuid.UUID`` on SQLite, 16 bytes on PostgreSQL."""
    if db.session.get_bind().dialect.name != "postgresql":
        return lambda value: value
    return lambda value: value.bytes if value.__class__ is uuid.UUID else value


def _as_uuid(value) -> uuid.UUID:
    return uuid.UUID(bytes=value) if value.__class__ is bytes else value


def _copy(statement, types: list[str], rows: list[tuple]) -> None:
    from psycopg.types.string import BytesBinaryDumper

    with _driver().cursor() as cursor, cursor.copy(statement) as copy:
        # By oid, bytea would get the DB-API Binary wrapper's dumper (Python code); this one is psycopg's C one.
        cursor.adapters.register_dumper(None, BytesBinaryDumper)
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)


def _fill_people(people: dict[str, _Person]) -> None:
    """Existing contacts' empty languages and patients' empty names, from the file."""
    contacts = [{"_id": _as_uuid(p.contact_id), "_language": p.set_language} for p in people.values() if p.set_language]
    patients = [{"_id": _as_uuid(p.patient_id), "_name": p.set_name} for p in people.values() if p.set_name]
    table = Contact.__table__
    if contacts:
        db.session.execute(
            update(table)
            .where(and_(table.c.id == bindparam("_id"), table.c.language.is_(None)))
            .values(language=bindparam("_language"), updated_at=utcnow()),
            contacts,
        )
    table = Patient.__table__
    if patients:
        db.session.execute(
            update(table)
            .where(and_(table.c.id == bindparam("_id"), table.c.name.is_(None)))
            .values(name=bindparam("_name"), updated_at=utcnow()),
            patients,
        )


def _insert_appointments(actor, rows: list[_Row], people: dict[str, _Person], now: datetime) -> list[tuple]:
    """The new appointments, reminders planned, in bulk; ``(row, id)`` of those written (see :func:`_id_form`)."""
    plans: dict[tuple[Clinic, datetime], tuple[datetime | None, int | None]] = {}
    clinic_ids: dict[Clinic, uuid.UUID] = {}
    next_reminder = appointments.next_reminder
    as_id = _id_form()
    created_by = getattr(actor, "user_id", None)
    created_by = as_id(created_by) if created_by else None
    stamp = utcnow()
    values = []
    ids = _new_ids(len(rows))
    # By time, with ids in ascending order: four of the table's indexes then take the rows in key order.
    ordered = sorted(rows, key=attrgetter("at"))
    for row, appointment_id in zip(ordered, ids, strict=True):
        clinic, at = row.clinic, row.at
        plan = plans.get((clinic, at))
        if plan is None:
            plan = plans[(clinic, at)] = next_reminder(clinic, at, STATUS_SCHEDULED, now)
            clinic_ids[clinic] = as_id(clinic.id)
        person = people[row.phone]
        values.append((appointment_id, clinic_ids[clinic], as_id(person.patient_id), at, row.language,
                       STATUS_SCHEDULED, 0, row.ref, row.key, person.channel, plan[0], plan[1], created_by, stamp,
                       stamp))  # fmt: skip
    written = _insert_rows(Appointment.__table__, APPOINTMENT_COLUMNS, values, key=0)
    return [(row, value[0]) for row, value in zip(ordered, values, strict=True) if value[0] in written]


def _update_existing(actor, existing: dict[tuple[Clinic, str], _Existing], errors: _Errors) -> None:
    """Stored appointments the file changes: languages in bulk; new times through :func:`appointments.reschedule`
    (reminders re-planned, the patient told), one at a time: they are rare. A file whose rows of one key end
    where the appointment already is changes nothing."""
    moves, languages = [], []
    for stored in existing.values():
        if stored.new_at is not None and stored.new_at != stored.at:
            moves.append(stored)
        elif stored.new_language and stored.new_language != stored.language:
            languages.append({"_id": stored.id, "_language": stored.new_language})
    table = Appointment.__table__
    if languages:
        db.session.execute(
            update(table).where(table.c.id == bindparam("_id")).values(language=bindparam("_language"),
                                                                       updated_at=utcnow()),
            languages,
        )  # fmt: skip
    for stored in moves:
        appointment = db.session.get(Appointment, stored.id)
        if stored.new_language:
            appointment.language = stored.new_language  # first, so the patient is told in it
        try:
            with db.session.begin_nested():
                appointments.reschedule(actor, appointment, stored.new_at)
        except ServiceError as exc:  # changed meanwhile (e.g. cancelled by the patient a moment ago)
            errors.add(stored.line, "appointment_datetime", exc.message)


def _confirm_bookings(ids: list) -> None:
    """The booking confirmation of each new appointment of a clinic that sends them."""
    for chunk in _chunks(map(_as_uuid, ids), 500):
        for appointment in db.session.scalars(select(Appointment).where(Appointment.id.in_(chunk))).unique():
            if appointment.clinic.booking_confirmation:
                appointments.notify(appointment, "appointment_booked", "booked")
