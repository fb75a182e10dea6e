"""Validating an appointment upload's rows: every value checked and normalised.

Rows are validated in plain Python with per-value caches (times: a week of appointments has few distinct times;
phone numbers that need phonenumbers), in chunks of ``CHUNK_ROWS`` (:func:`validate`), each while the database
stores the chunk before it. Validation touches neither the database nor an ORM attribute (the session's
connection may be busy with a COPY then): the clinics are looked up first (:func:`load_clinics`, :func:`targets`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

import phonenumbers
from sqlalchemy import select

from app.extensions import db
from app.models import Clinic
from app.services import appointments
from app.services.appointment_import.reader import Errors
from app.services.phones import to_e164

NAME_LENGTH = 200  # Patient.name
REF_LENGTH = 100  # Appointment.external_ref
CHUNK_ROWS = 10_000  # rows validated, then written, at a time
LANGUAGE_WORDS = {"en": "en", "english": "en", "tn": "tn", "setswana": "tn"}

_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?")
# d/m/y with "/", "." or "-", a 2- or 4-digit year, then the time: how Botswana's and Ghana's clinic systems export.
_SLASHED = re.compile(r"(\d{1,2})([/.-])(\d{1,2})\2(\d{4}|\d{2})(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?)?")
# The order each clinic country writes a d/m/y date in. A country not listed here gets ISO dates only: 05/03/2030
# is 5 March in Gaborone and 3 May in New York, and a wrong guess books a patient on the wrong day.
DATE_ORDER = {"BW": "day_first", "GH": "day_first"}
MSG_REQUIRED = "Required."
MSG_DATETIME = (
    "Not a date and time: write it as 2026-12-01T09:00:00+02:00, or as 2026-12-01 09:00 in the clinic's time."
)
MSG_DATETIME_DAY_FIRST = (
    "Not a date and time: write it as 2026-12-01T09:00:00+02:00, or in the clinic's time as 2026-12-01 09:00, "
    "01/12/2026 09:00 or 1/12/26 09:00 (day first)."
)
MSG_NO_TIME = "A date without a time: add the time, as in 01/12/2026 09:00 or 2026-12-01 09:00."
MSG_MONTH_FIRST = (
    "No month {month}: this clinic writes dates day first (dd/mm/yyyy HH:MM, as 01/12/2026 09:00); "
    "write 2026-12-01 09:00 to be sure."
)
MSG_PAST = "This time is in the past."
MSG_LANGUAGE = "Use en or tn (English or Setswana)."
MSG_OTHER_CLINIC = "You can import appointments for your own clinic only."
MSG_NO_CLINIC = "No clinic for this row: give clinic_id in the row or for the whole upload."
MSG_UNKNOWN_CLINIC = "No clinic with this id."
MSG_REF_TAKEN = "This external_ref belongs to an appointment of another phone number."


@dataclass(slots=True)
class Row:
    """One valid row, normalised."""

    line: int
    clinic: Clinic
    phone: str
    at: datetime
    language: str | None
    name: str | None
    ref: str | None
    key: str


def load_clinics(default_id: uuid.UUID | None, columns: dict[str, int],
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


class Phones:
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
        text = value.strip()
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
        # Only what needs phonenumbers is remembered: the quick path costs less than a cache of every number of
        # a 100,000-row file would hold in memory.
        found = self.cache.get(text)
        if found is None:
            found = self.cache[text] = self._parse(text, plus, digits)
        return found

    def _parse(self, text: str, plus: bool, digits: str) -> tuple[str | None, str | None]:
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


class Times:
    """Appointment times of one clinic's zone as UTC, each distinct value worked out once.

    ISO 8601 is read everywhere (an offset is kept; none means the clinic's time). Where the clinic's country writes
    dates day first (:data:`DATE_ORDER`), ``dd/mm/yyyy HH:MM`` and ``d/m/yy H:MM`` (also with ``.`` or ``-``) are
    clinic times too. What such a date cannot mean there (a 13th month: a month-first export) is refused, and
    :meth:`problem` says why and which formats are accepted.
    """

    def __init__(self, clinic: Clinic) -> None:
        self.zone = appointments.zone(clinic)
        self.day_first = DATE_ORDER.get(clinic.country) == "day_first"
        self.cache: dict[str, datetime | None] = {}

    def read(self, value: str) -> datetime | None:
        if value in self.cache:
            return self.cache[value]
        text = value.strip().upper()
        at = None
        try:
            if _DATETIME.fullmatch(text):
                moment = datetime.fromisoformat(text)
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=self.zone)
                at = moment.astimezone(UTC)
            elif self.day_first and (found := _SLASHED.fullmatch(text)) and found[5] is not None:
                day, _, month, year, hour, minute, second = found.groups()
                year = int(year) + 2000 if len(year) == 2 else int(year)
                moment = datetime(year, int(month), int(day), int(hour), int(minute), int(second or 0),
                                  tzinfo=self.zone)  # fmt: skip
                at = moment.astimezone(UTC)
        except (ValueError, OverflowError):
            at = None
        self.cache[value] = at
        return at

    def problem(self, value: str) -> str:
        """Why ``value``, which :meth:`read` refused, is not a time here, naming the formats accepted."""
        if not self.day_first:
            return MSG_DATETIME
        found = _SLASHED.fullmatch(value.strip())
        if found and 12 < int(found[3]) <= 31 and int(found[1]) <= 12:
            return MSG_MONTH_FIRST.format(month=int(found[3]))
        if (found and found[5] is None) or re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
            return MSG_NO_TIME
        return MSG_DATETIME_DAY_FIRST


def targets(actor, clinics: dict[str, Clinic | None]) -> dict[str, tuple]:
    """For each ``clinic_id`` text of the file (``""``: none given): ``(clinic, phone reader, time reader)``, or
    ``(None, error message, None)``. Worked out here, so validation never touches an ORM object."""
    staff_clinic = None if getattr(actor, "is_admin", False) else actor.clinic_id
    phones: dict[str, Phones] = {}
    targets: dict[str, tuple] = {}
    for text, clinic in clinics.items():
        if clinic is None:
            targets[text] = (None, MSG_UNKNOWN_CLINIC if text else MSG_NO_CLINIC, None)
        elif staff_clinic is not None and clinic.id != staff_clinic:
            targets[text] = (None, MSG_OTHER_CLINIC, None)
        else:
            if clinic.country not in phones:
                phones[clinic.country] = Phones(clinic.country)
            targets[text] = (clinic, phones[clinic.country], Times(clinic))
    return targets


def validate(columns: dict[str, int], records: list[tuple[int, list[str]]], targets: dict[str, tuple],
              now: datetime, errors: Errors) -> Iterator[list[Row]]:  # fmt: skip
    """The valid rows, normalised, ``CHUNK_ROWS`` records at a time; every problem of the others goes to
    ``errors``. Pure Python: no database, no ORM attribute. It empties ``records`` as it goes (an upload's records
    are its largest part), so the caller must not need them afterwards."""
    add = errors.add
    known = set(columns.values())
    width = max(known) + 1
    gaps = len(known) < width  # columns with an empty header between named ones
    p_phone, p_at = columns["patient_phone"], columns["appointment_datetime"]
    p_language, p_name = columns.get("language"), columns.get("patient_name")
    p_ref, p_clinic = columns.get("external_ref"), columns.get("clinic_id")
    import_key = appointments.import_key
    # A small first chunk: the database starts writing sooner, while the next one is validated.
    starts = [0, *range(max(1, CHUNK_ROWS // 5), len(records), CHUNK_ROWS)] if records else []
    for start, end in zip(starts, [*starts[1:], len(records)], strict=True):
        rows: list[Row] = []
        chunk = records[start:end]
        records[start:end] = [None] * len(chunk)  # freed once validated: the caller is done with them
        for line, cells in chunk:
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
                phone, problem = phones.read(raw)
                if problem:
                    add(line, "patient_phone", problem)
                    ok = False
                raw = cells[p_at]
                at = times.cache[raw] if raw in times.cache else times.read(raw)
                if at is None:
                    add(line, "appointment_datetime", MSG_REQUIRED if not raw.strip() else times.problem(raw))
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
                rows.append(Row(line, clinic, phone, at, language, name, ref, key))
        yield rows
