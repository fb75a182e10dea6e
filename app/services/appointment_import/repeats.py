"""The optional ``repeat_every_days`` and ``repeat_count`` columns: a row with them starts a series of recurring
visits (:mod:`app.services.series`) at the appointment it imports.

Kept apart from the row validation and the bulk writer: the values are checked before the rows are (a row with a
bad value is reported and not imported), and the series are made after the writer, for the few rows that have
them, by their import key. A re-upload finds the appointment already in a series and changes nothing.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select, tuple_

from app.extensions import db
from app.models import Appointment
from app.services import series
from app.services.appointment_import.reader import Errors

EVERY, COUNT = "repeat_every_days", "repeat_count"
COLUMNS = (EVERY, COUNT)


def split(columns: dict[str, int], records: list[tuple[int, list[str]]],
          errors: Errors) -> tuple[list[tuple[int, list[str]]], dict[int, tuple[int, int | None]]]:  # fmt: skip
    """The records to validate (without those whose repeat values are bad, reported in ``errors``), and each
    repeating row's ``(every_days, count)`` by line."""
    p_every, p_count = columns.get(EVERY), columns.get(COUNT)
    if p_every is None and p_count is None:
        return records, {}
    kept, repeats = [], {}
    for line, cells in records:
        every = _cell(cells, p_every)
        count = _cell(cells, p_count)
        problem = None
        if count and not every:
            problem = (COUNT, f"Give {EVERY} too (the days between visits).")
        elif every and not (every.isdigit() and 1 <= int(every) <= series.MAX_EVERY_DAYS):
            problem = (EVERY, f"A whole number of days from 1 to {series.MAX_EVERY_DAYS}.")
        elif count and not (count.isdigit() and 2 <= int(count) <= series.MAX_COUNT):
            problem = (COUNT, f"A whole number of visits from 2 to {series.MAX_COUNT}, or empty for an open series.")
        if problem:
            errors.add(line, *problem)
            continue
        kept.append((line, cells))
        if every:
            repeats[line] = (int(every), int(count) if count else None)
    return kept, repeats


def _cell(cells: list[str], position: int | None) -> str:
    return cells[position].strip() if position is not None and position < len(cells) else ""


def apply(repeats: dict[int, tuple[int, int | None]], keys: dict[int, tuple[uuid.UUID, str]]) -> int:
    """Start the series of the imported repeating rows (``keys``: line → (clinic id, import key)); returns how many
    were started. In the caller's transaction."""
    wanted = {keys[line]: repeats[line] for line in repeats if line in keys}
    if not wanted:
        return 0
    started = 0
    pairs = list(wanted)
    for start in range(0, len(pairs), 500):
        chunk = pairs[start : start + 500]
        for appointment in db.session.scalars(
            select(Appointment).where(tuple_(Appointment.clinic_id, Appointment.import_key).in_(chunk))
        ):
            if appointment.series_id is None:
                every, count = wanted[(appointment.clinic_id, appointment.import_key)]
                series.start(appointment, every, count)
                started += 1
    return started
