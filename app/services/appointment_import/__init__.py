"""CSV import of appointments (``POST /api/v1/appointments/upload``): every row validated, 100,000 rows at once.

The file: a header row, then one appointment per row. Columns (names case-insensitive, spaces around them
ignored): ``patient_phone`` and ``appointment_datetime`` required; ``language``, ``patient_name``,
``external_ref``, ``clinic_id``, ``repeat_every_days`` and ``repeat_count`` optional (the last two start a series of
recurring visits, :mod:`.repeats`). A header that names any other column is refused as a whole (a typo
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
time, language, or a name where the clinic's record of the patient has none) is ``updated``; a new time moves the
appointment through :func:`appointments.reschedule` (new reminders, the patient told); cancelled or past
appointments are left alone (``unchanged``). Names go to the uploading clinic's own record of each patient
(:class:`PatientRecord`); another clinic's record of the same number is never read or changed.

Speed (100,000 rows in one upload): rows are validated in plain Python with per-value caches (times, reminder plans:
a week of appointments has few distinct times; phone numbers that need phonenumbers), in chunks of ``CHUNK_ROWS``
(the first one smaller). Writing is mostly PostgreSQL's work and everything else Python's, so the import keeps both
of the machine's cores busy by doing its Python work while PostgreSQL stores: binary ``COPY`` on PostgreSQL, each
table's rows made ready while the previous table's are stored, a chunk's appointments still streaming (psycopg's
queued writer) while the next chunk is validated, looked up and decided. What is stored under a chunk's numbers and
keys is read with one array parameter a query, on a connection of its own (:class:`.writer.Lookups`), as the
import's connection is busy. Each chunk is one step of one transaction, written with no ORM object per row (``INSERT
... ON CONFLICT DO NOTHING`` through a temporary table when a concurrent upload got there first); SQLite gets one
executemany ``INSERT`` a table (the import holds its write lock) and reads in that transaction, chunked ``IN``
lists. New rows go in key order, with ascending ids, which halves PostgreSQL's index work. Only the rare moved rows
and the booking confirmations go through the ORM, at the end.

The package: :mod:`.reader` decodes and parses the file and checks its header, :mod:`.rows` validates the rows,
:mod:`.writer` decides what each row does and writes it, through :mod:`.bulk`, the one place that knows the
backend (PostgreSQL or SQLite). This module runs them: :func:`import_csv`.
"""

from __future__ import annotations

import contextlib
import gc
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import BinaryIO

from app.errors import Forbidden, NotFound
from app.extensions import db
from app.models import Clinic, utcnow
from app.services import audit
from app.services.appointment_import import repeats
from app.services.appointment_import.bulk import Bulk
from app.services.appointment_import.reader import COLUMNS, MAX_ERRORS, OPTIONAL, REQUIRED, Errors, read
from app.services.appointment_import.rows import (
    MSG_DATETIME,
    MSG_LANGUAGE,
    MSG_NO_CLINIC,
    MSG_OTHER_CLINIC,
    MSG_PAST,
    MSG_REF_TAKEN,
    MSG_REQUIRED,
    MSG_UNKNOWN_CLINIC,
    load_clinics,
    targets,
    validate,
)
from app.services.appointment_import.writer import Lookups, Writer

__all__ = [
    "COLUMNS",
    "MAX_ERRORS",
    "MSG_DATETIME",
    "MSG_LANGUAGE",
    "MSG_NO_CLINIC",
    "MSG_OTHER_CLINIC",
    "MSG_PAST",
    "MSG_REF_TAKEN",
    "MSG_REQUIRED",
    "MSG_UNKNOWN_CLINIC",
    "OPTIONAL",
    "REQUIRED",
    "import_csv",
]


def import_csv(actor, data: bytes | BinaryIO, *, clinic_id: uuid.UUID | None = None, atomic: bool = False,
               now: datetime | None = None) -> dict:  # fmt: skip
    """Import appointments from a CSV file, validating every row; commits (it is the unit of work).

    Valid rows are imported and invalid ones reported; with ``atomic`` any error imports nothing. A file-level
    error (unreadable file, missing or unknown column) imports nothing either way. One audit row records the
    upload (counts only).

    Args:
        actor: the :class:`app.security.Actor`. Staff import for their own clinic; an admin names the clinic with
            ``clinic_id`` and/or a ``clinic_id`` column.
        data: the file's bytes, or a binary file to read them from (the upload endpoint passes the request's
            file: its bytes are then freed once parsed instead of being held by the caller to the end).
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


def _import(actor, data: bytes | BinaryIO, default_id: uuid.UUID | None, atomic: bool, now: datetime) -> dict:
    errors = Errors()  # the file's and the validation's
    parsed = read(data if isinstance(data, bytes) else data.read(), errors)
    writer = Writer(actor, now, atomic, Errors())
    rows_seen = 0
    if parsed is not None:
        (columns, records), parsed = parsed, None  # validation frees the records as it goes
        rows_seen = len(records)
        records, repeating = repeats.split(columns, records, errors)  # recurring visits: see .repeats
        clinics = targets(actor, load_clinics(default_id, columns, records))
        keys = {}
        lookups = Lookups(writer, [clinic for clinic, *_ in clinics.values() if clinic is not None])
        chunks = validate(columns, records, clinics, now, errors)
        ahead = [next(chunks, None)]

        def validate_next() -> None:  # the writer calls it while the database stores the chunk before
            ahead.append(next(chunks, None))

        try:
            with _reading_aside(writer.bulk) as execute:
                while (rows := ahead.pop()) is not None:
                    if repeating:
                        keys.update((row.line, (row.clinic.id, row.key)) for row in rows if row.line in repeating)
                    if not (atomic and (errors.count or writer.errors.count)):
                        writer.add(rows, lookups(rows, execute or db.session.execute), validate_next)
                    if not ahead:
                        validate_next()
            writer.finish(failed=atomic and errors.count > 0)
            if repeating and not (atomic and errors.count):
                repeats.apply(repeating, keys)
        except BaseException:
            writer.abort()
            db.session.rollback()
            raise
    errors.merge(writer.errors)
    audit.record(actor, "appointment.import", "clinic", default_id,
                 {"rows": rows_seen, "imported": writer.imported, "updated": writer.updated,
                  "unchanged": writer.unchanged, "error_count": errors.count, "atomic": atomic})  # fmt: skip
    db.session.commit()
    return errors.report(writer.imported, writer.updated, writer.unchanged)


@contextlib.contextmanager
def _reading_aside(bulk: Bulk) -> Iterator[Callable | None]:
    """A connection of its own for :class:`Lookups` to read on while the import's own connection is busy storing
    rows, when the backend allows it (PostgreSQL; autocommit: it reads committed rows only); ``None`` on SQLite,
    whose reads then stay in the import's transaction."""
    if not bulk.reads_aside:
        yield None
        return
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        yield connection.execute


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
